//! The commands: each turns resolved settings into output files and an exit status.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::cli::{RunArgs, VersionArgs, VersionFormat};
use crate::deploy::version::{self as repo_version, VersionError};
use crate::evaluate::{self, Action};
use crate::inventory::live;
use crate::inventory::snapshot::{self, SnapshotError};
use crate::plan;
use crate::report::{self, Mode, PolicyRef, Report, ReportInput};
use crate::settings::{self, SettingsError};

/// Exit codes of the CLI contract.
pub const EXIT_OK: u8 = 0;
pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_INPUT: u8 = 2;
pub const EXIT_FINDINGS: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("`{}` is not empty\nhint: write a snapshot into a new or empty folder", .0.display())]
    OutNotEmpty(std::path::PathBuf),
    #[error(
        "enforce needs a backup location: pass `--backup DIR|gs://BUCKET/PREFIX` or set `safety.backup` in the policy"
    )]
    NoBackup,
    #[error(
        "enforce needs the reviewed plan: pass `--plan REPORT.json` (or `--no-review` to plan and delete in one go)"
    )]
    NoPlan,
    #[error("cannot read the plan `{path}`: {message}")]
    PlanUnreadable { path: String, message: String },
    #[error(transparent)]
    Plan(Box<crate::enforce::PlanError>),
    #[error("`--only {0}`: {1}")]
    Only(String, String),
    #[error(transparent)]
    Backup(Box<crate::enforce::backup::BackupError>),
    #[error(transparent)]
    Cluster(Box<crate::inventory::cluster::ClusterError>),
    #[error(transparent)]
    Lease(Box<crate::enforce::lease::LeaseError>),
    #[error("enforce needs the cluster and cannot use it: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Deploy(Box<crate::deploy::DeployError>),
    #[error(transparent)]
    Lint(Box<crate::lint::LintError>),
    #[error(
        "this cluster account may not delete what the plan deletes (missing {0}); nothing was deleted and the Lease was not taken\nhint: run enforce as the ServiceAccount `driftsweep-enforce` (k8s/driftsweep/enforce-job.yaml), the only one bound to the ClusterRole `driftsweep-delete`"
    )]
    NotPermitted(String),
    #[error("cannot write `{}`", path.display())]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Version(e) if e.is_bad_input() => EXIT_INPUT,
            CommandError::Version(_) => EXIT_RUNTIME,
            CommandError::Settings(_)
            | CommandError::Snapshot(_)
            | CommandError::OutNotEmpty(_)
            | CommandError::NoBackup
            | CommandError::NoPlan
            | CommandError::PlanUnreadable { .. }
            | CommandError::Plan(_)
            | CommandError::Only(..)
            | CommandError::Lint(_) => EXIT_INPUT,
            CommandError::Write { .. }
            | CommandError::Runtime(_)
            | CommandError::Backup(_)
            | CommandError::Cluster(_)
            | CommandError::Lease(_)
            | CommandError::Unreachable(_)
            | CommandError::NotPermitted(_) => EXIT_RUNTIME,
            CommandError::Deploy(e) if e.is_refusal() => EXIT_INPUT,
            CommandError::Deploy(_) => EXIT_RUNTIME,
        }
    }
}

impl From<crate::enforce::PlanError> for CommandError {
    fn from(e: crate::enforce::PlanError) -> Self {
        CommandError::Plan(Box::new(e))
    }
}

impl From<crate::enforce::backup::BackupError> for CommandError {
    fn from(e: crate::enforce::backup::BackupError) -> Self {
        CommandError::Backup(Box::new(e))
    }
}

impl From<crate::inventory::cluster::ClusterError> for CommandError {
    fn from(e: crate::inventory::cluster::ClusterError) -> Self {
        CommandError::Cluster(Box::new(e))
    }
}

impl From<crate::enforce::lease::LeaseError> for CommandError {
    fn from(e: crate::enforce::lease::LeaseError) -> Self {
        CommandError::Lease(Box::new(e))
    }
}

/// `driftsweep run`: evaluate, plan, write the reports, print the summary.
pub fn run(args: &RunArgs) -> Result<u8, CommandError> {
    if args.enforce {
        return enforce(args);
    }
    let started_at = Utc::now();
    let clock = std::time::Instant::now();
    let phase = |what: &str| {
        tracing::debug!(ms = clock.elapsed().as_millis() as u64, "{what}");
    };
    let settings = settings::resolve_run(args)?;
    // The dashboard's version reads git; it needs nothing from the sources, so it is read
    // while they are.
    let repository_version = {
        let tag = settings.desired.version.clone();
        let dir = settings.policy.dir().to_path_buf();
        std::thread::spawn(move || repository_version(tag.as_deref(), &dir))
    };
    let (inventory, source) = match &settings.snapshot {
        Some(dir) => (snapshot::read(dir)?, format!("snapshot:{}", dir.display())),
        None => {
            let runtime = read_runtime()?;
            let policy = &settings.policy.policy;
            let live = runtime.block_on(async {
                let sources = live::Sources::connect(policy, &settings.cluster).await;
                live::read(policy, &settings.desired, &sources).await
            });
            (live.inventory, "live".to_string())
        }
    };
    phase("sources read");
    tracing::info!(
        kubernetes = inventory.kubernetes_objects().len(),
        repositories = inventory.registry.len(),
        gcp = inventory.gcp.len(),
        source = %source,
        "inventory read"
    );
    let mut findings = evaluate::evaluate(
        &settings.policy.policy,
        &settings.desired,
        &inventory,
        settings.now,
    );
    let plan = plan::plan(&mut findings, &settings.policy.policy.safety, settings.now);
    phase("evaluated and planned");
    let failed = findings.gaps.iter().any(|g| g.failed);
    let has_findings = findings.items.iter().any(|f| f.action != Action::Keep);
    let mut report = Report::new(
        ReportInput {
            run_id: run_id(started_at),
            mode: Mode::DryRun,
            started_at,
            evaluated_at: settings.now,
            policy: PolicyRef {
                name: settings.policy.policy.name.clone(),
                digest: settings.policy.digest.clone(),
                path: settings.policy.path.display().to_string(),
            },
            source,
        },
        findings,
        &plan,
    );

    let repository_version = repository_version.join().unwrap_or_else(|_| {
        tracing::info!("no repository version for the dashboard: its reader panicked");
        None
    });
    report.dashboard = report::dashboard::dashboard(
        &settings.policy.policy,
        &inventory,
        repository_version.as_deref(),
        settings.now,
    );
    let totals = &report.summary.total;
    report.metrics = report::dashboard::metrics(
        &inventory,
        report.dashboard.as_ref(),
        totals.delete + totals.drift + totals.keep,
        totals.delete,
    );
    phase("report assembled");
    if let Some(archive) = &settings.archive {
        // Never fails the run: an unreadable archive is a trend that says so.
        report.trend = Some(match runtime() {
            Ok(rt) => rt.block_on(report::trend::read(archive, &report)),
            Err(e) => report::trend::unreadable(archive, &report, &format!("{e:#}")),
        });
    }

    let alerted = alert(&settings, &mut report);
    write_outputs(&settings, &report)?;
    phase("outputs written");
    // Delivery comes last: the files above are written whatever happens to it.
    let delivered = deliver(&settings, &report);
    // Freeing tens of thousands of records and findings takes tens of milliseconds, on a
    // core the renderers above need (a small node has two): it is done last, on a thread the
    // exit does not wait for.
    std::thread::spawn(move || drop((inventory, report)));

    Ok(if failed || !delivered || !alerted {
        EXIT_RUNTIME
    } else if settings.fail_on_findings && has_findings {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    })
}

/// The repository's version for the dashboard: `--version`, else `driftsweep version` of the
/// repository holding the policy; `None` outside a git checkout (a container image).
fn repository_version(tag: Option<&str>, dir: &Path) -> Option<String> {
    if let Some(tag) = tag {
        return Some(format!("v{tag}"));
    }
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match repo_version::describe_head(dir) {
        Ok(v) => Some(v.version.to_string()),
        Err(e) => {
            tracing::info!(error = %e, "no repository version for the dashboard");
            None
        }
    }
}

/// Sends the alerts `--alert` asks for and records their outcomes in the report (so they are
/// in the files written next). Answers whether every alert was sent.
fn alert(settings: &settings::RunSettings, report: &mut Report) -> bool {
    let Some(alerts) = &settings.alerts else {
        return true;
    };
    let link = match (&settings.archive, &settings.report) {
        (Some(prefix), _) => Some(report::alerts::archive_link(&prefix.for_report(report))),
        (None, Some(path)) if path.as_os_str() != "-" => Some(absolute(path)),
        _ => None,
    };
    let wanted = report::alerts::for_report(report, link);
    report.alerts = send_alerts(alerts, &wanted);
    report::alerts::print_outcomes(&report.alerts)
}

fn send_alerts(
    settings: &report::alerts::AlertSettings,
    alerts: &[report::alerts::Alert],
) -> Vec<report::alerts::AlertOutcome> {
    if alerts.is_empty() {
        return Vec::new();
    }
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(report::alerts::send(settings, alerts)),
        Err(e) => alerts
            .iter()
            .map(|a| report::alerts::AlertOutcome {
                channel: "all".to_string(),
                event: a.event,
                status: "failed".to_string(),
                error: Some(format!("cannot start the async runtime: {e}")),
            })
            .collect(),
    }
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Writes the report files asked for and prints the summary.
fn write_outputs(settings: &settings::RunSettings, report: &Report) -> Result<(), CommandError> {
    type Render = fn(&Report) -> String;
    let rendered: [(&Option<PathBuf>, Render); 3] = [
        (&settings.markdown, report::markdown),
        (&settings.html, report::html),
        (&settings.email_preview, report::email::preview_body),
    ];
    // The files are independent renderings of one report: at cluster scale each takes tens of
    // milliseconds, so they are written side by side, each whole or not at all.
    let (json, others) = std::thread::scope(|scope| {
        let others: Vec<_> = rendered
            .iter()
            .filter_map(|(path, render)| path.as_deref().map(|p| (p, *render)))
            .map(|(path, render)| (path, scope.spawn(move || write_file(path, &render(report)))))
            .collect();
        let json = settings.report.as_deref().map(|path| {
            let written = if path.as_os_str() == "-" {
                report
                    .write_json(std::io::stdout().lock())
                    .map_err(|source| CommandError::Write {
                        path: path.to_path_buf(),
                        source,
                    })
            } else {
                write_file_with(path, |file| report.write_json(file))
            };
            (path, written)
        });
        let others: Vec<_> = others
            .into_iter()
            .map(|(path, handle)| {
                let written = handle.join().unwrap_or_else(|_| {
                    Err(CommandError::Write {
                        path: path.to_path_buf(),
                        source: std::io::Error::other("the writer panicked"),
                    })
                });
                (path, written)
            })
            .collect();
        (json, others)
    });
    let mut written = Vec::new();
    for (path, result) in json.into_iter().chain(others) {
        result?;
        if path.as_os_str() != "-" {
            written.push(path.display().to_string());
        }
    }
    let mut summary = report::terminal(report);
    if !written.is_empty() {
        summary.push_str(&format!("  reports: {}\n", written.join(", ")));
    }
    eprint!("{summary}");

    Ok(())
}

/// Archives and emails the report as asked. Failures are printed, never lost: the report is
/// already on disk. Returns false when any delivery failed.
fn deliver(settings: &settings::RunSettings, report: &Report) -> bool {
    if settings.archive.is_none() && settings.email.is_none() {
        return true;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return false;
        }
    };
    let mut ok = true;
    runtime.block_on(async {
        if let Some(prefix) = &settings.archive {
            let stored = match report::archive::client().await {
                Ok(client) => report::archive::store(&client, prefix, report).await,
                Err(e) => Err(e),
            };
            match stored {
                Ok(location) => eprintln!("  archived: {location}"),
                Err(e) => {
                    ok = false;
                    eprintln!("error: {:#}", anyhow::Error::new(e));
                }
            }
        }
        if let Some(email) = &settings.email {
            let policy = &settings.policy.policy;
            let target = policy
                .gcp
                .as_ref()
                .and_then(|g| g.project.as_deref())
                .unwrap_or(policy.name.as_str());
            let sent = match report::email::compose(report, target, email) {
                Ok(message) => report::email::send(email, &message).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(()) => eprintln!(
                    "  emailed: {}",
                    email
                        .to
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Err(e) => {
                    ok = false;
                    eprintln!(
                        "error: the report was not emailed: {:#}",
                        anyhow::Error::new(e)
                    );
                }
            }
        }
    });
    ok
}

fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)
}

/// The runtime of a read that changes nothing (the dry run's audit, `snapshot`): one thread.
/// Every source is network-bound, and on a 2-core node the API server needs the other core.
/// Measured at 27,000 objects (BENCHMARKS.md), two workers spent a third more CPU than one
/// thread (30,000 context switches: each response chunk was handed between threads) and
/// finished no sooner. Runs that delete keep [`runtime`]: their Lease is renewed by a task
/// that must run even while the run's own future is busy.
fn read_runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)
}

/// `driftsweep snapshot`: records what the live sources read.
pub fn snapshot(args: &crate::cli::SnapshotArgs) -> Result<u8, CommandError> {
    let (policy, desired) = settings::load_policy(&args.policy, None)?;
    if args.out.exists()
        && std::fs::read_dir(&args.out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(CommandError::OutNotEmpty(args.out.clone()));
    }
    let recorded_at = Utc::now();
    let cluster = settings::cluster_options(&args.cluster);
    let mut live = read_runtime()?.block_on(async {
        let sources = live::Sources::connect(&policy.policy, &cluster).await;
        live::read_for_snapshot(&policy.policy, &desired, &sources).await
    });
    live::write_snapshot(&args.out, &mut live, recorded_at).map_err(|source| {
        CommandError::Write {
            path: args.out.clone(),
            source,
        }
    })?;
    let versions: usize = live
        .inventory
        .registry
        .iter()
        .map(|r| r.versions.len())
        .sum();
    eprintln!(
        "snapshot `{}`: {} Kubernetes objects, {} repositories, {versions} image versions",
        args.out.display(),
        live.inventory.kubernetes_objects().len(),
        live.listings.len()
    );
    let mut failed = false;
    for g in &live.inventory.gaps {
        failed |= g.failed;
        eprintln!(
            "  {}: {} {}: {}",
            if g.failed { "error" } else { "note" },
            g.provider,
            g.what,
            g.error
        );
    }
    Ok(if failed { EXIT_RUNTIME } else { EXIT_OK })
}

/// `20261129T073000Z-1a2b3c`: sortable by time, unique per process.
fn run_id(started_at: chrono::DateTime<Utc>) -> String {
    use sha2::{Digest, Sha256};
    let seed = format!(
        "{}-{}-{:?}",
        started_at.timestamp_nanos_opt().unwrap_or_default(),
        std::process::id(),
        std::thread::current().id()
    );
    let hash = format!("{:x}", Sha256::digest(seed.as_bytes()));
    format!("{}-{}", started_at.format("%Y%m%dT%H%M%SZ"), &hash[..6])
}

/// Writes through a temporary file and a rename, so a report is either whole or absent.
fn write_file(path: &Path, contents: &str) -> Result<(), CommandError> {
    write_file_with(path, |file| file.write_all(contents.as_bytes()))
}

/// The temporary file `path` is written as, beside it and named after all of it:
/// `report.json` and `report.md`, written at once, must not share one.
fn temporary(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".driftsweep-tmp");
    PathBuf::from(tmp)
}

/// Writes a file whole or not at all: `write` fills a temporary file beside it, which then
/// replaces it, so a reader never sees half a report.
fn write_file_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), CommandError> {
    let err = |source| CommandError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let tmp = temporary(path);
    let written = std::fs::File::create(&tmp).and_then(|mut file| write(&mut file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    std::fs::rename(&tmp, path).map_err(err)
}

/// `driftsweep policy check FILE`.
pub fn policy_check(file: &Path) -> Result<u8, CommandError> {
    let (policy, desired) = settings::load_policy(file, None)?;
    let p = &policy.policy;
    let mut audited = Vec::new();
    if let Some(k) = &p.kubernetes {
        audited.push(format!(
            "kubernetes ({} namespaces, {} manifest objects)",
            k.namespaces.len(),
            desired.objects.len()
        ));
    }
    if let Some(r) = &p.registry {
        audited.push(format!("registry ({} repositories)", r.repositories.len()));
    }
    if let Some(g) = &p.gcp {
        audited.push(match &g.project {
            Some(p) => format!("gcp (project {p})"),
            None => "gcp".to_string(),
        });
    }
    if let Some(d) = &p.deploy {
        // Each environment's render, offline: what would refuse a deploy shows here first.
        let problems = crate::deploy::check_renders(&policy.policy, policy.dir())
            .map_err(|e| CommandError::Deploy(Box::new(e)))?;
        if !problems.is_empty() {
            return Err(CommandError::Deploy(Box::new(
                crate::deploy::DeployError::Refused(format!(
                    "the deploy render of the manifests fails:\n  {}",
                    problems.join("\n  ")
                )),
            )));
        }
        audited.push(format!(
            "deploy ({} services to {})",
            d.services.len(),
            d.environments
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    eprintln!(
        "policy `{}` is valid: {}",
        file.display(),
        if audited.is_empty() {
            "audits nothing".to_string()
        } else {
            audited.join(", ")
        }
    );
    Ok(EXIT_OK)
}

/// `driftsweep lint`: the findings on stdout in the format asked for, a one-line summary on
/// stderr.
pub fn lint(args: &crate::cli::LintArgs) -> Result<u8, CommandError> {
    use crate::cli::LintFormat;
    let report = crate::lint::lint(&args.policy).map_err(|e| CommandError::Lint(Box::new(e)))?;
    let text = match args.format {
        LintFormat::Text => crate::lint::text(&report),
        LintFormat::Json => {
            let mut t = serde_json::to_string_pretty(&report).unwrap_or_default();
            t.push('\n');
            t
        }
        LintFormat::Sarif => crate::lint::sarif::render(&report),
    };
    write_report_to(Path::new("-"), &text)?;
    eprintln!("{}", crate::lint::summary(&report));
    Ok(if args.fail_on_findings && !report.findings.is_empty() {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    })
}

/// `driftsweep version`: the repository's version on stdout, alone (`$(driftsweep version)`)
/// or as JSON; on stderr, what makes it name something other than the files on disk.
pub fn version(args: &VersionArgs) -> Result<u8, CommandError> {
    let described = repo_version::describe(&args.repo)?;
    let text = match args.format {
        VersionFormat::Text => format!("{}\n", described.version),
        // Strings, an optional count and booleans: serialising them cannot fail.
        VersionFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&described).expect("RepoVersion serialises")
        ),
    };
    write_report_to(Path::new("-"), &text)?;
    if let Some(dirty) = described.dirty {
        let changes = if dirty.files == 1 {
            "change"
        } else {
            "changes"
        };
        eprintln!(
            "note: the work tree has {} uncommitted {changes}; the version names commit `{}`, not what is on disk",
            dirty.files, described.short
        );
    }
    if described.shallow && described.exact_tag.is_none() {
        eprintln!(
            "note: this is a shallow clone: tags beyond its depth are missing, so the last tag may be older than the real one\nhint: fetch the whole history with `git fetch --unshallow --tags`"
        );
    }
    Ok(EXIT_OK)
}

/// `driftsweep policy schema`.
pub fn policy_schema() -> Result<u8, CommandError> {
    let text = serde_json::to_string_pretty(&crate::policy::schema()).unwrap_or_default();
    println!("{text}");
    Ok(EXIT_OK)
}

/// `driftsweep policy reference`: the Markdown policy reference (`docs/policy-reference.md`).
pub fn policy_reference() -> Result<u8, CommandError> {
    print!("{}", crate::policy::reference_markdown());
    Ok(EXIT_OK)
}

/// `driftsweep run --enforce`: re-read, re-evaluate, match the reviewed plan, gate, back up,
/// delete, and report the outcome of every planned action.
pub fn enforce(args: &RunArgs) -> Result<u8, CommandError> {
    use crate::enforce::{self, Executors, backup, lease};

    let started_at = Utc::now();
    let run_id = run_id(started_at);
    let settings = settings::resolve_run(args)?;
    let policy = &settings.policy.policy;
    let location = args
        .backup
        .clone()
        .or_else(|| policy.safety.backup.clone())
        .ok_or(CommandError::NoBackup)?;
    if args.plan.is_none() && !args.no_review {
        return Err(CommandError::NoPlan);
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() && !location.starts_with("gs://") {
        tracing::warn!(
            backup = %location,
            "backing up to a pod's disk, which dies with the pod; use gs://"
        );
    }
    let runtime = runtime()?;
    let reviewed = match &args.plan {
        Some(path) => {
            let report = runtime.block_on(load_plan(path))?;
            enforce::check_plan(
                &report,
                path,
                &settings.policy.digest,
                policy.safety.plan_max_age_hours,
                settings.now,
            )?;
            Some(report)
        }
        None => None,
    };
    let plan_id = reviewed
        .as_ref()
        .map_or_else(|| run_id.clone(), |r| r.run_id.clone());

    let outcome = runtime.block_on(async {
        // Every client is made once: the audit reads and enforce deletes through the same.
        let sources = live::Sources::connect(policy, &settings.cluster).await;
        let cluster = match &sources.cluster {
            Some(Err(e)) => return Err(CommandError::Unreachable(e.clone())),
            _ => sources.cluster(),
        };
        let holder = format!("{run_id} (pid {} on {})", std::process::id(), host_name());
        if let Some(c) = cluster {
            let missing = enforce::missing_permissions(c, reviewed.as_ref(), policy).await?;
            if !missing.is_empty() {
                return Err(CommandError::NotPermitted(missing.join(", ")));
            }
        }
        let held = match cluster {
            Some(c) => {
                Some(lease::Lease::acquire(c, &policy.safety.lease_namespace, &holder).await?)
            }
            None => {
                tracing::warn!("no cluster in the policy: nothing stops two enforce runs at once");
                None
            }
        };
        let result = async {
            let store = backup::Store::open(&location).await?;
            let backup = backup::Backup::open(store, &plan_id).await?;
            let live = live::read(policy, &settings.desired, &sources).await;
            let mut findings =
                crate::evaluate::evaluate(policy, &settings.desired, &live.inventory, settings.now);
            plan::plan(&mut findings, &policy.safety, settings.now);
            let mut selection = enforce::select(findings, reviewed.as_ref());
            let blocked = enforce::gates(&selection, &policy.safety, settings.now);
            if blocked.is_none() {
                let still_leased = || held.as_ref().is_none_or(lease::Lease::held);
                let exec = Executors {
                    cluster,
                    registry: sources.registry.as_ref().and_then(|r| r.as_ref().ok()),
                    gcp: policy
                        .gcp
                        .as_ref()
                        .zip(sources.gcp.as_ref().and_then(|g| g.as_ref().ok()))
                        .map(|(g, c)| (c, g)),
                    now: settings.now,
                    backup: &backup,
                    still_leased: &still_leased,
                };
                enforce::execute(&mut selection, &live.inventory, &exec).await;
            }
            Ok::<_, CommandError>((selection, blocked, backup.location()))
        }
        .await;
        if let Some(lease) = held {
            lease.release().await;
        }
        result
    })?;
    let (selection, blocked, backup_location) = outcome;
    let failed_lists = selection.findings.gaps.iter().any(|g| g.failed);
    let failed_actions = selection.findings.items.iter().any(|f| {
        f.outcome
            .as_ref()
            .is_some_and(|o| o.status == crate::evaluate::OutcomeStatus::Failed)
    });
    let plan_summary = plan::Plan {
        deletions: selection.deletions.clone(),
        blocked: blocked.clone(),
    };
    let mut report = Report::new(
        ReportInput {
            run_id,
            mode: Mode::Enforce,
            started_at,
            evaluated_at: settings.now,
            policy: PolicyRef {
                name: policy.name.clone(),
                digest: settings.policy.digest.clone(),
                path: settings.policy.path.display().to_string(),
            },
            source: "live".to_string(),
        },
        selection.findings,
        &plan_summary,
    );
    let alerted = alert(&settings, &mut report);
    write_outputs(&settings, &report)?;
    if blocked.is_none() {
        eprintln!(
            "  backup: {backup_location} (`driftsweep restore {backup_location}` re-creates the Kubernetes objects; GCP resources are backed up as records, their outcomes say what brings them back; image versions cannot be restored)"
        );
    }
    let delivered = deliver(&settings, &report);
    Ok(
        if blocked.is_some() || failed_lists || failed_actions || !delivered || !alerted {
            EXIT_RUNTIME
        } else {
            EXIT_OK
        },
    )
}

/// `driftsweep deploy`.
pub fn deploy(args: &crate::cli::DeployArgs) -> Result<u8, CommandError> {
    let started_at = Utc::now();
    let (policy, _) = settings::load_policy(&args.policy, None)?;
    let email = settings::email_settings(&policy, args.email)?;
    let alerts = settings::alert_settings(&policy, args.alert)?;
    let request = crate::deploy::DeployRequest {
        environment: args.environment.clone(),
        version: args.release_version.clone(),
        repo: args
            .repo
            .clone()
            .unwrap_or_else(|| policy.dir().to_path_buf()),
        dry_run: args.dry_run,
        prune: args.prune,
        backup: args
            .backup
            .clone()
            .or_else(|| policy.policy.safety.backup.clone()),
    };
    let cluster = settings::cluster_options(&args.cluster);
    let outcome = runtime()?.block_on(async {
        let (cluster, registry) = deploy_clients(&policy.policy, &cluster).await?;
        let ctx = crate::deploy::Context {
            policy: &policy.policy,
            policy_dir: policy.dir(),
            cluster: &cluster,
            registry: &registry,
            who: who(),
            run_id: run_id(started_at),
        };
        Ok::<_, CommandError>(if args.finish {
            crate::deploy::finish(&ctx, &request.environment).await
        } else {
            crate::deploy::deploy(&ctx, &request).await
        })
    })?;
    finish_deploy(
        outcome,
        &policy,
        args.report.as_deref(),
        email.as_ref(),
        alerts.as_ref(),
        &args.environment,
    )
}

/// `driftsweep rollback`.
pub fn rollback(args: &crate::cli::RollbackArgs) -> Result<u8, CommandError> {
    let started_at = Utc::now();
    let (policy, _) = settings::load_policy(&args.policy, None)?;
    let email = settings::email_settings(&policy, args.email)?;
    let alerts = settings::alert_settings(&policy, args.alert)?;
    let cluster = settings::cluster_options(&args.cluster);
    let outcome = runtime()?.block_on(async {
        let (cluster, registry) = deploy_clients(&policy.policy, &cluster).await?;
        let ctx = crate::deploy::Context {
            policy: &policy.policy,
            policy_dir: policy.dir(),
            cluster: &cluster,
            registry: &registry,
            who: who(),
            run_id: run_id(started_at),
        };
        Ok::<_, CommandError>(
            crate::deploy::rollback(&ctx, &args.environment, args.to.as_deref()).await,
        )
    })?;
    finish_deploy(
        outcome,
        &policy,
        args.report.as_deref(),
        email.as_ref(),
        alerts.as_ref(),
        &args.environment,
    )
}

/// `driftsweep history`.
pub fn history(args: &crate::cli::HistoryArgs) -> Result<u8, CommandError> {
    let (policy, _) = settings::load_policy(&args.policy, None)?;
    let cluster = settings::cluster_options(&args.cluster);
    let records = runtime()?.block_on(async {
        let cluster = crate::inventory::cluster::Cluster::connect(&cluster).await?;
        crate::deploy::list_history(&cluster, &policy.policy, &args.environment)
            .await
            .map_err(|e| CommandError::Deploy(Box::new(e)))
    })?;
    let text = match args.format {
        crate::cli::HistoryFormat::Json => {
            serde_json::to_string_pretty(&records).unwrap_or_default() + "\n"
        }
        crate::cli::HistoryFormat::Table => crate::deploy::report::history_table(&records),
    };
    print!("{text}");
    Ok(EXIT_OK)
}

async fn deploy_clients(
    policy: &crate::policy::Policy,
    options: &crate::inventory::cluster::ClusterOptions,
) -> Result<
    (
        crate::inventory::cluster::Cluster,
        crate::inventory::registry::client::RegistryClient,
    ),
    CommandError,
> {
    let cluster = crate::inventory::cluster::Cluster::connect(options).await?;
    cluster
        .probe()
        .await
        .map_err(|e| CommandError::Unreachable(e.to_string()))?;
    let auth = match crate::inventory::gcp_live::GcpAuth::from_env().await {
        Ok(auth) => auth,
        Err(_) => crate::inventory::gcp_live::GcpAuth::anonymous(),
    };
    let registry = live::deploy_registry(policy, &auth)
        .await
        .map_err(CommandError::Unreachable)?;
    Ok((cluster, registry))
}

/// Prints, writes and emails a deploy's report (a refusal too), and picks the exit code.
fn finish_deploy(
    outcome: Result<crate::deploy::report::DeployReport, crate::deploy::DeployError>,
    policy: &crate::policy::LoadedPolicy,
    report_path: Option<&Path>,
    email: Option<&crate::report::email::EmailSettings>,
    alerts: Option<&report::alerts::AlertSettings>,
    environment: &str,
) -> Result<u8, CommandError> {
    let mut report = match outcome {
        Ok(report) => report,
        Err(e) if e.is_refusal() => {
            if let Some(path) = report_path {
                let mut refused = crate::deploy::report::DeployReport::new(
                    "deploy",
                    false,
                    environment,
                    "",
                    Utc::now(),
                );
                refused.result = "refused".to_string();
                refused.reason = Some(e.to_string());
                write_report_to(path, &refused.finish().json())?;
            }
            return Err(CommandError::Deploy(Box::new(e)));
        }
        Err(e) => return Err(CommandError::Deploy(Box::new(e))),
    };
    let mut delivered = true;
    if let Some(settings) = alerts {
        let link = report_path.filter(|p| p.as_os_str() != "-").map(absolute);
        report.alerts = send_alerts(settings, &report::alerts::for_deploy(&report, link));
        delivered = report::alerts::print_outcomes(&report.alerts);
    }
    if let Some(path) = report_path {
        write_report_to(path, &report.json())?;
    }
    eprint!("{}", report.text());
    if let Some(settings) = email {
        let target = policy
            .policy
            .gcp
            .as_ref()
            .and_then(|g| g.project.as_deref())
            .unwrap_or(policy.policy.name.as_str());
        let sent = runtime()?.block_on(async {
            let message = crate::deploy::report::compose(&report, target, settings)?;
            crate::report::email::send(settings, &message).await
        });
        if let Err(e) = sent {
            delivered = false;
            eprintln!(
                "error: the deploy report was not emailed: {:#}",
                anyhow::Error::new(e)
            );
        }
    }
    Ok(if report.succeeded() && delivered {
        EXIT_OK
    } else {
        EXIT_RUNTIME
    })
}

fn write_report_to(path: &Path, text: &str) -> Result<(), CommandError> {
    if path.as_os_str() == "-" {
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|source| CommandError::Write {
                path: path.to_path_buf(),
                source,
            })
    } else {
        write_file(path, text)
    }
}

/// Who runs a deploy, for its record: `DRIFTSWEEP_DEPLOY_WHO`, else `user@host`.
fn who() -> String {
    std::env::var("DRIFTSWEEP_DEPLOY_WHO").unwrap_or_else(|_| {
        format!(
            "{}@{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".to_string()),
            host_name()
        )
    })
}

/// This machine's name, for the Lease holder (a pod's name in a pod): `HOSTNAME` when the
/// environment has it, else the kernel's.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "an unnamed host".to_string())
}

/// Reads a reviewed plan: a file, or an archived report in Cloud Storage.
async fn load_plan(path: &str) -> Result<Report, CommandError> {
    let err = |message: String| CommandError::PlanUnreadable {
        path: path.to_string(),
        message,
    };
    let report: Report = if path.starts_with("gs://") {
        let location: report::archive::GcsLocation =
            path.parse().map_err(|e| err(format!("{e}")))?;
        let client = report::archive::client()
            .await
            .map_err(|e| err(format!("{:#}", anyhow::Error::new(e))))?;
        report::archive::read(&client, &location)
            .await
            .map_err(|e| err(format!("{:#}", anyhow::Error::new(e))))?
    } else {
        let text = crate::input::read_text(Path::new(path), crate::input::PLAN)
            .map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| {
            err(format!(
                "not a driftsweep report ({e}); pass the JSON written by `run --report`"
            ))
        })?
    };
    if report.schema != report::SCHEMA {
        return Err(err(format!(
            "its schema is `{}`, not `{}`",
            report.schema,
            report::SCHEMA
        )));
    }
    Ok(report)
}

/// `driftsweep restore BACKUP [--only KIND/NS/NAME]`.
pub fn restore(args: &crate::cli::RestoreArgs) -> Result<u8, CommandError> {
    use crate::enforce::restore::{self, Only, RestoreStatus};
    let only = match &args.only {
        Some(text) => Some(
            text.parse::<Only>()
                .map_err(|e| CommandError::Only(text.clone(), e))?,
        ),
        None => None,
    };
    let cluster_options = settings::cluster_options(&args.cluster);
    let results = runtime()?.block_on(async {
        let cluster = crate::inventory::cluster::Cluster::connect(&cluster_options).await?;
        Ok::<_, CommandError>(restore::restore(&cluster, &args.backup, only.as_ref()).await?)
    })?;
    let mut failed = false;
    for r in &results {
        failed |= r.status == RestoreStatus::Failed;
        let what = match &r.namespace {
            Some(ns) => format!("{} {ns}/{}", r.kind, r.name),
            None => format!("{} {}", r.kind, r.name),
        };
        let status = serde_json::to_value(&r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        match &r.detail {
            Some(d) => eprintln!("  {status}: {what}: {d}"),
            None => eprintln!("  {status}: {what}"),
        }
    }
    if results.is_empty() {
        eprintln!("nothing to restore: no entry of the backup matches");
    }
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&results).unwrap_or_default() + "\n";
        if path.as_os_str() == "-" {
            print!("{text}");
        } else {
            write_file(path, &text)?;
        }
    }
    Ok(if failed { EXIT_RUNTIME } else { EXIT_OK })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_written_at_once_never_share_a_temporary_file() {
        let json = temporary(Path::new("out/report.json"));
        let markdown = temporary(Path::new("out/report.md"));
        assert_ne!(json, markdown);
        assert_eq!(json, Path::new("out/report.json.driftsweep-tmp"));

        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = ["report.json", "report.md", "report.html", "email.html"]
            .iter()
            .map(|name| dir.path().join(name))
            .collect();
        std::thread::scope(|scope| {
            for (i, path) in paths.iter().enumerate() {
                scope.spawn(move || write_file(path, &i.to_string().repeat(100_000)).unwrap());
            }
        });
        for (i, path) in paths.iter().enumerate() {
            assert_eq!(
                std::fs::read_to_string(path).unwrap(),
                i.to_string().repeat(100_000),
                "{}",
                path.display()
            );
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    }
}
