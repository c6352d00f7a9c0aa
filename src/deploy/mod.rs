//! Deploy: put the repository's current version on one environment, every service on that
//! one version, images pinned by digest, and go back to the last good deploy when it fails.
//!
//! ```text
//! version ─► resolve (tag → digest, twice; never another digest than history recorded)
//!   ─► render (the environment's manifests, images pinned, labels) ─► lock (Lease per
//!   environment) ─► server-side dry run of everything ─► apply ─► wait ─► history record
//!                                                    └─ failure ─► rollback to the last good
//!                                                       record's exact render, its own timeout
//! ```
//! Everything that can be refused is refused before the cluster is written to.

pub mod apply;
pub mod bluegreen;
pub mod history;
pub mod render;
pub mod report;
pub mod rollout;
pub mod version;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use crate::enforce::lease::{Lease, LeaseError};
use crate::inventory::cluster::{Cluster, ClusterError, KubeTarget};
use crate::inventory::registry::client::RegistryClient;
use crate::policy::{Accepts, DeployPolicy, Environment, Policy, Strategy};
use bluegreen::Colour;
use history::{HistoryError, Outcome, Record, Stored};
use render::Pin;
use report::{DeployReport, Pruned, ServiceChange, VersionDigest};
use version::{Version, VersionError};

/// The Lease that lets one deploy or rollback at a time into an environment's namespace.
pub const LOCK_NAME: &str = "driftsweep-deploy";

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(
        "the policy has no `deploy` section\nhint: add `deploy.services` and `deploy.environments` (see `driftsweep policy reference`)"
    )]
    NoDeploySection,
    #[error("no environment `{name}` in `deploy.environments` (it has: {known})")]
    UnknownEnvironment { name: String, known: String },
    /// Refused before anything was applied: bad version, missing image, overwritten tag,
    /// unpromoted version, a render or a dry run that cannot succeed.
    #[error("refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error(transparent)]
    Manifests(#[from] crate::manifests::ManifestError),
    #[error(transparent)]
    History(Box<HistoryError>),
    #[error(transparent)]
    Lease(Box<LeaseError>),
    #[error(transparent)]
    Cluster(Box<ClusterError>),
    #[error("the registry cannot tell what `{reference}` is: {message}")]
    Registry { reference: String, message: String },
}

impl From<HistoryError> for DeployError {
    fn from(e: HistoryError) -> Self {
        DeployError::History(Box::new(e))
    }
}

impl From<LeaseError> for DeployError {
    fn from(e: LeaseError) -> Self {
        DeployError::Lease(Box::new(e))
    }
}

impl From<ClusterError> for DeployError {
    fn from(e: ClusterError) -> Self {
        DeployError::Cluster(Box::new(e))
    }
}

impl DeployError {
    /// 2 for what was refused (nothing applied), 1 for what failed at run time.
    pub fn is_refusal(&self) -> bool {
        match self {
            DeployError::Version(e) => e.is_bad_input(),
            other => matches!(
                other,
                DeployError::NoDeploySection
                    | DeployError::UnknownEnvironment { .. }
                    | DeployError::Refused(_)
                    | DeployError::Manifests(_)
            ),
        }
    }
}

/// What a deploy or rollback works with.
pub struct Context<'a> {
    pub policy: &'a Policy,
    /// Relative manifest paths resolve against this folder (the policy's).
    pub policy_dir: &'a Path,
    pub cluster: &'a Cluster,
    pub registry: &'a RegistryClient,
    /// Who runs it, for the record: `user@host`.
    pub who: String,
    /// The run's id, for the Lease holder and prune backups.
    pub run_id: String,
}

/// `driftsweep deploy`'s request.
pub struct DeployRequest {
    pub environment: String,
    /// `--version`; else the version of `repo`.
    pub version: Option<String>,
    pub repo: PathBuf,
    pub dry_run: bool,
    pub prune: bool,
    /// Where pruned objects are backed up (required with `--prune`).
    pub backup: Option<String>,
}

fn deploy_policy(policy: &Policy) -> Result<&DeployPolicy, DeployError> {
    policy.deploy.as_ref().ok_or(DeployError::NoDeploySection)
}

fn environment<'p>(d: &'p DeployPolicy, name: &str) -> Result<&'p Environment, DeployError> {
    d.environments
        .get(name)
        .ok_or_else(|| DeployError::UnknownEnvironment {
            name: name.to_string(),
            known: d
                .environments
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn timeout(d: &DeployPolicy) -> Duration {
    Duration::from_secs(u64::from(d.timeout_minutes) * 60)
}

/// The version to deploy, and the commit it names when the repository tells.
fn choose_version(req: &DeployRequest) -> Result<(Version, Option<String>, bool), DeployError> {
    let described = version::describe(&req.repo);
    match &req.version {
        Some(text) => {
            let v = version::parse_version(text)?;
            let (commit, dirty) = match described {
                Ok(d) => (Some(d.commit), d.dirty.is_some()),
                Err(_) => (None, false),
            };
            Ok((v, commit, dirty))
        }
        None => {
            let d = described?;
            Ok((d.version, Some(d.commit), d.dirty.is_some()))
        }
    }
}

/// Which versions an environment takes.
fn check_accepts(
    name: &str,
    env: &Environment,
    v: &Version,
    dirty: bool,
) -> Result<(), DeployError> {
    if env.accepts == Accepts::Release && !v.is_release() {
        return Err(DeployError::Refused(format!(
            "`{v}` is not a release: environment `{name}` accepts only release versions (`vX.Y.Z`)\nhint: tag a release, deploy it to the environments before `{name}`, then promote it"
        )));
    }
    if env.accepts == Accepts::Release && dirty {
        return Err(DeployError::Refused(format!(
            "the work tree has uncommitted changes, and environment `{name}` takes only what is committed\nhint: commit or stash them; the manifests deployed must be the ones the release names"
        )));
    }
    Ok(())
}

/// Tag → digest for every service: read twice (a tag that moves while we look is refused),
/// and never another digest than a record of the same version holds (an overwritten tag).
async fn resolve(
    registry: &RegistryClient,
    d: &DeployPolicy,
    v: &Version,
    recorded: &[&Record],
) -> Result<Vec<Pin>, DeployError> {
    let tag = v.tag();
    let mut pins = Vec::new();
    let mut refusals = Vec::new();
    for service in &d.services {
        let reference = format!("{}:{tag}", service.image);
        let read = || async {
            registry
                .resolve_tag(&service.image, &tag)
                .await
                .map_err(|e| DeployError::Registry {
                    reference: reference.clone(),
                    message: e.to_string(),
                })
        };
        let first = read().await?;
        let second = read().await?;
        let (Some(first), Some(second)) = (first, second) else {
            refusals.push(format!(
                "service {}: no image `{reference}` in the registry\nhint: build and push it (every service is released on one version)",
                service.name
            ));
            continue;
        };
        if first != second {
            refusals.push(format!(
                "service {}: `{reference}` named {first} and then {second}: someone is pushing to that tag",
                service.name
            ));
            continue;
        }
        for r in recorded {
            if let Some(was) = r.digest_of(&service.name)
                && was != first
            {
                refusals.push(format!(
                    "service {}: `{reference}` now names {first}, but it was {was} when {} was deployed to `{}` (record v{}): the tag was overwritten\nhint: release a new version; a version's images never change",
                    service.name, r.version, r.environment, r.sequence
                ));
                break;
            }
        }
        pins.push(Pin {
            service: service.name.clone(),
            image: service.image.clone(),
            tag: tag.clone(),
            digest: first,
        });
    }
    if refusals.is_empty() {
        Ok(pins)
    } else {
        Err(DeployError::Refused(refusals.join("\n")))
    }
}

fn holder(ctx: &Context<'_>, what: &str) -> String {
    format!("{what} {} by {}", ctx.run_id, ctx.who)
}

/// Marks the records a dead deploy left `pending` as `interrupted` (the lock is held, so no
/// live deploy owns them).
async fn close_interrupted(cluster: &Cluster, records: &mut [Stored]) -> Result<(), DeployError> {
    for stored in records
        .iter_mut()
        .filter(|s| s.record.result == Outcome::Pending)
    {
        stored.record.result = Outcome::Interrupted;
        stored.record.reason =
            Some("the deploy stopped before it finished (killed or lost its lock)".to_string());
        history::update(cluster, stored).await?;
    }
    Ok(())
}

fn next_sequence(records: &[Stored]) -> u64 {
    records.iter().map(|s| s.record.sequence).max().unwrap_or(0) + 1
}

/// Applies `targets` in order and waits for them, within `timeout`. An apply that fails is a
/// failed wait with its reason.
async fn apply_and_wait(
    cluster: &Cluster,
    targets: &[apply::Target],
    timeout: Duration,
) -> rollout::WaitOutcome {
    let started = std::time::Instant::now();
    let mut watched = Vec::new();
    for target in targets {
        match apply::apply(cluster, target, false).await {
            Ok(applied) => watched.push(rollout::Watched::applied(target, &applied)),
            Err(e) => {
                return rollout::WaitOutcome {
                    result: "failed".to_string(),
                    reason: Some(format!(
                        "applying {}: {e}",
                        render::describe(&target.object)
                    )),
                    seconds: started.elapsed().as_secs_f64(),
                    objects: Vec::new(),
                };
            }
        }
    }
    rollout::wait(cluster, &watched, timeout).await
}

/// `driftsweep deploy`.
pub async fn deploy(ctx: &Context<'_>, req: &DeployRequest) -> Result<DeployReport, DeployError> {
    let started = Utc::now();
    let d = deploy_policy(ctx.policy)?;
    let env = environment(d, &req.environment)?;
    let namespace = env.namespace.clone();
    if req.prune && req.backup.is_none() && !req.dry_run {
        return Err(DeployError::Refused(
            "`--prune` deletes, so it needs a backup location: pass `--backup DIR|gs://BUCKET/PREFIX` or set `safety.backup`".to_string(),
        ));
    }
    let (v, commit, dirty) = choose_version(req)?;
    check_accepts(&req.environment, env, &v, dirty)?;

    // Every record of this version, here and where it is promoted from, pins its digests.
    let records = history::list(ctx.cluster, &namespace, &req.environment).await?;
    let mut same_version: Vec<Record> = records
        .iter()
        .filter(|s| s.record.version == v.to_string() && s.record.good())
        .map(|s| s.record.clone())
        .collect();
    if let Some(from) = &env.promote_from {
        let from_env = environment(d, from)?;
        let promoted = history::list(ctx.cluster, &from_env.namespace, from).await?;
        let healthy: Vec<Record> = promoted
            .iter()
            .filter(|s| s.record.version == v.to_string() && s.record.good())
            .map(|s| s.record.clone())
            .collect();
        if healthy.is_empty() {
            return Err(DeployError::Refused(format!(
                "`{v}` was never deployed healthy to `{from}`, which `{}` is promoted from\nhint: `driftsweep deploy --env {from} --version {v}` first",
                req.environment
            )));
        }
        same_version.extend(healthy);
    }
    let recorded: Vec<&Record> = same_version.iter().collect();
    let pins = resolve(ctx.registry, d, &v, &recorded).await?;

    let kubernetes = ctx
        .policy
        .kubernetes
        .as_ref()
        .ok_or(DeployError::NoDeploySection)?;
    let documents = crate::manifests::documents(&kubernetes.manifests, ctx.policy_dir)?;
    let rendered = render::render(&documents, &namespace, &v, &pins).map_err(|problems| {
        DeployError::Refused(format!(
            "the render of `{namespace}` cannot be deployed:\n  {}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        ))
    })?;
    let (gz, sha) = history::pack(&rendered)?;
    let targets = apply::targets(ctx.cluster, &rendered)
        .await
        .map_err(DeployError::Refused)?;

    let previous = records.iter().rev().find(|s| s.record.good());
    let mut report =
        DeployReport::new("deploy", req.dry_run, &req.environment, &namespace, started);
    report.version = v.to_string();
    report.commit = commit.clone();
    report.dirty = dirty;
    report.who = ctx.who.clone();
    report.services = service_changes(&pins, &v.to_string(), previous.map(|s| &s.record));

    let strategy = d.strategy_of(env);
    if req.dry_run {
        let (preview_targets, blue_green) = match strategy {
            Strategy::Rolling => (targets.clone(), false),
            Strategy::BlueGreen => {
                let last_good = records.iter().rev().find(|s| s.record.good());
                let active = current_colour(ctx.cluster, &namespace, last_good).await?;
                let plan = colour_plan(d, &rendered, active.map_or(Colour::Blue, Colour::other))?;
                (
                    apply::targets(ctx.cluster, &plan_objects(&plan))
                        .await
                        .map_err(DeployError::Refused)?,
                    true,
                )
            }
        };
        report.changes = apply::preview(ctx.cluster, &preview_targets)
            .await
            .map_err(|p| DeployError::Refused(p.join("\n")))?;
        if req.prune {
            report.pruned = prune_candidates(
                ctx.cluster,
                &namespace,
                &preview_targets,
                &records,
                blue_green,
            )
            .await?
            .into_iter()
            .map(|t| Pruned {
                object: format!("{} {}/{}", t.kind, namespace, t.name),
                outcome: "would-prune".to_string(),
                reason: None,
                backup: None,
            })
            .collect();
        }
        report.result = "would-deploy".to_string();
        return Ok(report.finish());
    }

    let lock = Lease::acquire_named(
        ctx.cluster,
        &namespace,
        LOCK_NAME,
        &holder(ctx, &format!("deploy {v}")),
    )
    .await?;
    let outcome = async {
        let mut records = history::list(ctx.cluster, &namespace, &req.environment).await?;
        close_interrupted(ctx.cluster, &mut records).await?;
        let new = NewRelease {
            version: v.to_string(),
            commit: commit.clone(),
            dirty,
            pins: pins.clone(),
            render: rendered.clone(),
            gz: gz.clone(),
            sha: sha.clone(),
            started,
        };
        if strategy == Strategy::BlueGreen {
            return deploy_blue_green(ctx, d, &req.environment, &namespace, &new, &records, req, &mut report).await;
        }
        // Blue-green → rolling: the running version comes up rolling first.
        if !bluegreen::live_active(ctx.cluster, &namespace).await?.is_empty() {
            let converted = convert_to_rolling(ctx, d, &req.environment, &namespace, &records).await?;
            let bg = report.blue_green.get_or_insert_with(Default::default);
            bg.converted = Some(converted.record.clone());
            bg.scaled_down.extend(converted.scaled_down.clone());
            if !converted.healthy {
                report.result = "failed".to_string();
                report.reason = Some(format!(
                    "converting to rolling failed, nothing of {v} was applied: {}",
                    converted.wait.reason.clone().unwrap_or_default()
                ));
                report.wait = Some(converted.wait);
                return Ok(());
            }
            records = history::list(ctx.cluster, &namespace, &req.environment).await?;
        }
        report.changes = apply::preview(ctx.cluster, &targets)
            .await
            .map_err(|p| DeployError::Refused(p.join("\n")))?;
        let to_prune = if req.prune {
            prune_candidates(ctx.cluster, &namespace, &targets, &records, false).await?
        } else {
            Vec::new()
        };
        let last_good = records.iter().rev().find(|s| s.record.good()).cloned();
        let unchanged = report.changes.iter().all(|c| c.action == "unchanged")
            && to_prune.is_empty()
            && last_good.as_ref().is_some_and(|s| s.record.render_sha256 == sha);
        if unchanged {
            report.result = "unchanged".to_string();
            return Ok(());
        }
        let mut stored = history::create(
            ctx.cluster,
            &new.record(&req.environment, &namespace, next_sequence(&records), ctx, Strategy::Rolling),
            &gz,
        )
        .await?;
        report.record = Some(stored.name.clone());
        let wait = apply_and_wait(ctx.cluster, &targets, timeout(d)).await;
        let healthy = wait.healthy();
        stored.record.reason = wait.reason.clone();
        report.reason = wait.reason.clone();
        report.wait = Some(wait);
        if healthy {
            if !to_prune.is_empty() {
                report.pruned = prune(ctx, &to_prune, req.backup.as_deref()).await;
            }
            stored.record.result = Outcome::Healthy;
            report.result = "deployed".to_string();
        } else {
            stored.record.result = Outcome::Failed;
            report.result = "failed".to_string();
            match &last_good {
                Some(good) => {
                    let rolled = rollback_to(ctx, d, &req.environment, &namespace, good, &records, Some(stored.record.sequence), Strategy::Rolling).await?;
                    stored.record.result = if rolled.healthy { Outcome::RolledBack } else { Outcome::RollbackFailed };
                    report.result = stored.record.result.as_str().to_string();
                    report.rollback = Some(rolled.report);
                }
                None => {
                    report.errors.push(
                        "no earlier healthy deploy of this environment to roll back to: the failed version stays applied".to_string(),
                    );
                }
            }
        }
        finish_record(ctx.cluster, &mut stored, started).await?;
        let all = history::list(ctx.cluster, &namespace, &req.environment).await?;
        history::prune(ctx.cluster, &all, d.history as usize).await?;
        Ok::<(), DeployError>(())
    }
    .await;
    lock.release().await;
    outcome?;
    Ok(report.finish())
}

/// What a deploy brings: the version, its pins, and the render with its packed form.
struct NewRelease {
    version: String,
    commit: Option<String>,
    dirty: bool,
    pins: Vec<Pin>,
    render: Vec<Value>,
    gz: Vec<u8>,
    sha: String,
    started: chrono::DateTime<Utc>,
}

impl NewRelease {
    fn of_record(stored: &Stored) -> Result<NewRelease, DeployError> {
        let render = stored.render()?;
        let (gz, sha) = history::pack(&render)?;
        Ok(NewRelease {
            version: stored.record.version.clone(),
            commit: stored.record.commit.clone(),
            dirty: stored.record.dirty,
            pins: stored.record.services.clone(),
            render,
            gz,
            sha,
            started: Utc::now(),
        })
    }

    fn record(
        &self,
        environment: &str,
        namespace: &str,
        sequence: u64,
        ctx: &Context<'_>,
        strategy: Strategy,
    ) -> Record {
        Record {
            schema: history::RECORD_SCHEMA.to_string(),
            environment: environment.to_string(),
            namespace: namespace.to_string(),
            sequence,
            version: self.version.clone(),
            commit: self.commit.clone(),
            dirty: self.dirty,
            services: self.pins.clone(),
            who: ctx.who.clone(),
            started_at: self.started,
            finished_at: None,
            duration_seconds: None,
            result: Outcome::Pending,
            reason: None,
            rollback_to: None,
            render_sha256: self.sha.clone(),
            strategy: Some(strategy.as_str().to_string()),
            colour: None,
            previous_colour: None,
            scale_down_at: None,
        }
    }
}

/// Stamps the end of a record and writes it.
async fn finish_record(
    cluster: &Cluster,
    stored: &mut Stored,
    started: chrono::DateTime<Utc>,
) -> Result<(), DeployError> {
    let finished = Utc::now();
    stored.record.finished_at = Some(finished);
    stored.record.duration_seconds = Some((finished - started).num_milliseconds() as f64 / 1000.0);
    history::update(cluster, stored).await?;
    Ok(())
}

fn service_images(d: &DeployPolicy) -> Vec<String> {
    d.services.iter().map(|s| s.image.clone()).collect()
}

fn colour_plan(
    d: &DeployPolicy,
    render: &[Value],
    colour: Colour,
) -> Result<bluegreen::Coloured, DeployError> {
    bluegreen::colourise(render, &service_images(d), colour, d.preview).map_err(|problems| {
        DeployError::Refused(format!(
            "the blue-green render cannot be deployed:\n  {}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        ))
    })
}

/// Every object a release at the plan's colour applies, as the dry run checks them.
fn plan_objects(plan: &bluegreen::Coloured) -> Vec<Value> {
    let mut out = plan.shared.clone();
    out.extend(plan.deployments.iter().map(|d| d.object.clone()));
    out.extend(
        plan.services
            .iter()
            .map(|s| bluegreen::with_colour(s, plan.colour)),
    );
    out.extend(
        plan.previews
            .iter()
            .map(|s| bluegreen::with_colour(s, plan.colour)),
    );
    out
}

/// The colour users are on: what the live Services select; when no Service tells (none
/// carries the colour yet, or the repository has none), the last good blue-green record's.
/// Services that disagree (a switch that died halfway) count as the record's colour.
async fn current_colour(
    cluster: &Cluster,
    namespace: &str,
    last_good: Option<&Stored>,
) -> Result<Option<Colour>, DeployError> {
    let live = bluegreen::live_active(cluster, namespace).await?;
    let recorded = last_good
        .filter(|g| g.record.blue_green())
        .and_then(|g| g.record.colour.as_deref())
        .and_then(Colour::parse);
    Ok(match live.len() {
        0 => recorded,
        1 => live.first().copied(),
        _ => {
            tracing::warn!(
                "the Services select different colours (a switch stopped halfway): they are switched to one before anything else"
            );
            recorded.or(Some(Colour::Blue))
        }
    })
}

/// A conversion that ran first (rolling → blue-green or back).
struct Converted {
    healthy: bool,
    record: String,
    wait: rollout::WaitOutcome,
    scaled_down: Vec<String>,
}

/// `deploy` with `strategy: blue-green`; the caller holds the lock.
#[allow(clippy::too_many_arguments)]
async fn deploy_blue_green(
    ctx: &Context<'_>,
    d: &DeployPolicy,
    environment: &str,
    namespace: &str,
    new: &NewRelease,
    records: &[Stored],
    req: &DeployRequest,
    report: &mut DeployReport,
) -> Result<(), DeployError> {
    let delay = bluegreen::delay(d.scale_down_delay_minutes);
    let mut bg = bluegreen::BlueGreenReport {
        scaled_down: bluegreen::scale_down_expired(ctx.cluster, namespace, Utc::now()).await?,
        ..Default::default()
    };
    let mut records = records.to_vec();
    let last_good = records.iter().rev().find(|s| s.record.good()).cloned();
    let mut active = current_colour(ctx.cluster, namespace, last_good.as_ref()).await?;
    // Rolling → blue-green: what runs now comes up as blue and users switch to it (the same
    // version, so nobody sees a change), the rolling Deployments go to zero, then the new
    // version is a normal blue-green release to green.
    if active.is_none()
        && let Some(good) = last_good.as_ref().filter(|g| !g.record.blue_green())
    {
        let converted =
            convert_to_blue_green(ctx, d, environment, namespace, good, &records, delay).await?;
        bg.converted = Some(converted.record.clone());
        bg.scaled_down.extend(converted.scaled_down.clone());
        if !converted.healthy {
            report.result = "failed".to_string();
            report.reason = Some(format!(
                "converting to blue-green failed, users stay on the rolling Deployments and nothing of {} was applied: {}",
                new.version,
                converted.wait.reason.clone().unwrap_or_default()
            ));
            report.wait = Some(converted.wait);
            report.blue_green = Some(bg);
            return Ok(());
        }
        active = Some(Colour::Blue);
        records = history::list(ctx.cluster, namespace, environment).await?;
    }
    let last_good = records.iter().rev().find(|s| s.record.good());
    let idle = active.map_or(Colour::Blue, Colour::other);
    let plan = colour_plan(d, &new.render, idle)?;
    if bluegreen::live_active(ctx.cluster, namespace).await?.len() > 1
        && let Some(serving) = active
    {
        bluegreen::switch(ctx.cluster, &plan, serving, None)
            .await
            .map_err(|e| {
                DeployError::Refused(format!("repairing a half-done switch to {serving}: {e}"))
            })?;
    }
    let targets = apply::targets(ctx.cluster, &plan_objects(&plan))
        .await
        .map_err(DeployError::Refused)?;
    report.changes = apply::preview(ctx.cluster, &targets)
        .await
        .map_err(|p| DeployError::Refused(p.join("\n")))?;
    let to_prune = if req.prune {
        prune_candidates(ctx.cluster, namespace, &targets, &records, true).await?
    } else {
        Vec::new()
    };
    let unchanged = to_prune.is_empty()
        && last_good.is_some_and(|g| {
            g.record.blue_green()
                && g.record.render_sha256 == new.sha
                && g.record.colour.as_deref() == active.map(Colour::as_str)
        });
    if unchanged {
        report.result = "unchanged".to_string();
        report.blue_green = Some(bg);
        return Ok(());
    }
    let mut record = new.record(
        environment,
        namespace,
        next_sequence(&records),
        ctx,
        Strategy::BlueGreen,
    );
    record.colour = Some(idle.as_str().to_string());
    record.previous_colour = active.map(|c| c.as_str().to_string());
    let mut stored = history::create(ctx.cluster, &record, &new.gz).await?;
    report.record = Some(stored.name.clone());
    let released =
        bluegreen::release(ctx.cluster, namespace, &plan, active, delay, timeout(d)).await?;
    let healthy = released.healthy();
    stored.record.reason = released.wait.reason.clone();
    stored.record.scale_down_at = released.report.scale_down_at;
    report.reason = released.wait.reason.clone();
    bg.colour = released.report.colour;
    bg.previous_colour = released.report.previous_colour;
    bg.switched = released.report.switched;
    bg.switch_seconds = released.report.switch_seconds;
    bg.scale_down_at = released.report.scale_down_at;
    bg.scaled_down.extend(released.report.scaled_down);
    report.wait = Some(released.wait);
    if healthy {
        if !to_prune.is_empty() {
            report.pruned = prune(ctx, &to_prune, req.backup.as_deref()).await;
        }
        stored.record.result = Outcome::Healthy;
        report.result = "deployed".to_string();
    } else {
        // Never switched to: users are where they were, so there is nothing to roll back.
        stored.record.result = Outcome::Failed;
        report.result = "failed".to_string();
        report.errors.push(format!(
            "the new colour ({idle}) was never switched to and is scaled to zero: users stay on {}",
            active.map_or("what ran before", Colour::as_str)
        ));
    }
    report.blue_green = Some(bg);
    finish_record(ctx.cluster, &mut stored, new.started).await?;
    let all = history::list(ctx.cluster, namespace, environment).await?;
    history::prune(ctx.cluster, &all, d.history as usize).await?;
    Ok(())
}

/// Rolling → blue-green on an environment with deploys: the last good render comes up as
/// blue, the Services switch to it, the rolling Deployments go to zero. Recorded as its own
/// deploy of that version, so a rollback inside the delay of the next deploy finds it.
async fn convert_to_blue_green(
    ctx: &Context<'_>,
    d: &DeployPolicy,
    environment: &str,
    namespace: &str,
    good: &Stored,
    records: &[Stored],
    delay: chrono::Duration,
) -> Result<Converted, DeployError> {
    let release = NewRelease::of_record(good)?;
    let plan = colour_plan(d, &release.render, Colour::Blue)?;
    let mut record = release.record(
        environment,
        namespace,
        next_sequence(records),
        ctx,
        Strategy::BlueGreen,
    );
    record.colour = Some(Colour::Blue.as_str().to_string());
    record.reason = Some(format!(
        "converted from rolling: {} as blue",
        good.record.version
    ));
    let mut stored = history::create(ctx.cluster, &record, &release.gz).await?;
    let released =
        bluegreen::release(ctx.cluster, namespace, &plan, None, delay, timeout(d)).await?;
    let healthy = released.healthy();
    let mut scaled_down = released.report.scaled_down.clone();
    if healthy {
        scaled_down.extend(
            bluegreen::scale_rolling_to_zero(
                ctx.cluster,
                namespace,
                &release.render,
                &service_images(d),
            )
            .await?,
        );
        stored.record.result = Outcome::Healthy;
    } else {
        stored.record.result = Outcome::Failed;
        stored.record.reason = released.wait.reason.clone();
    }
    finish_record(ctx.cluster, &mut stored, release.started).await?;
    Ok(Converted {
        healthy,
        record: stored.name.clone(),
        wait: released.wait,
        scaled_down,
    })
}

/// Blue-green → rolling: the colour users are not on goes to zero, the last good render is
/// applied rolling (its Services without the colour key now select the rolling Pods and the
/// active colour's, both of that one version), then both colours go to zero.
async fn convert_to_rolling(
    ctx: &Context<'_>,
    d: &DeployPolicy,
    environment: &str,
    namespace: &str,
    records: &[Stored],
) -> Result<Converted, DeployError> {
    let good = records
        .iter()
        .rev()
        .find(|s| s.record.good())
        .ok_or_else(|| {
            DeployError::Refused(format!(
                "`{environment}` runs blue-green but has no healthy deploy record to convert to rolling from\nhint: deploy once more with `strategy: blue-green`, then switch"
            ))
        })?;
    let active = current_colour(ctx.cluster, namespace, Some(good)).await?;
    if let Some(active) = active {
        // The idle colour may still run the version before: it must not get users now.
        let plan = colour_plan(d, &good.render()?, active.other())?;
        for dep in &plan.deployments {
            let name = bluegreen::coloured_name(&dep.base, active.other());
            if ctx
                .cluster
                .send_json(rollout::get(&format!(
                    "/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
                )))
                .await
                .is_ok()
            {
                bluegreen::scale(ctx.cluster, namespace, &name, 0, None).await?;
            }
        }
    }
    let release = NewRelease::of_record(good)?;
    let targets = apply::targets(ctx.cluster, &release.render)
        .await
        .map_err(DeployError::Refused)?;
    let mut record = release.record(
        environment,
        namespace,
        next_sequence(records),
        ctx,
        Strategy::Rolling,
    );
    record.reason = Some(format!(
        "converted from blue-green: {} rolling",
        good.record.version
    ));
    let mut stored = history::create(ctx.cluster, &record, &release.gz).await?;
    let wait = apply_and_wait(ctx.cluster, &targets, timeout(d)).await;
    let healthy = wait.healthy();
    let mut scaled_down = Vec::new();
    if healthy {
        scaled_down = bluegreen::scale_colours_to_zero(ctx.cluster, namespace).await?;
        stored.record.result = Outcome::Healthy;
    } else {
        stored.record.result = Outcome::Failed;
        stored.record.reason = wait.reason.clone();
    }
    finish_record(ctx.cluster, &mut stored, release.started).await?;
    Ok(Converted {
        healthy,
        record: stored.name.clone(),
        wait,
        scaled_down,
    })
}

/// `driftsweep deploy --finish`: only scale to zero the old colours whose delay has passed.
pub async fn finish(
    ctx: &Context<'_>,
    environment_name: &str,
) -> Result<DeployReport, DeployError> {
    let started = Utc::now();
    let d = deploy_policy(ctx.policy)?;
    let env = environment(d, environment_name)?;
    let namespace = env.namespace.clone();
    let lock =
        Lease::acquire_named(ctx.cluster, &namespace, LOCK_NAME, &holder(ctx, "finish")).await?;
    let outcome = async {
        let records = history::list(ctx.cluster, &namespace, environment_name).await?;
        let mut report = DeployReport::new("finish", false, environment_name, &namespace, started);
        report.who = ctx.who.clone();
        report.version = records
            .iter()
            .rev()
            .find(|s| s.record.good())
            .map(|s| s.record.version.clone())
            .unwrap_or_default();
        let scaled = bluegreen::scale_down_expired(ctx.cluster, &namespace, Utc::now()).await?;
        report.result = "finished".to_string();
        report.blue_green = Some(bluegreen::BlueGreenReport {
            scaled_down: scaled,
            ..Default::default()
        });
        Ok::<_, DeployError>(report)
    }
    .await;
    lock.release().await;
    Ok(outcome?.finish())
}

/// A rollback that ran: whether it is healthy, and what the report says of it.
struct Rolled {
    healthy: bool,
    report: report::RollbackReport,
    blue_green: Option<bluegreen::BlueGreenReport>,
}

/// Re-applies `target`'s exact render (no tag resolved again) with a full timeout of its own,
/// and records it. Blue-green: the render comes up as the idle colour and is switched to
/// like a deploy. The caller holds the lock.
#[allow(clippy::too_many_arguments)]
async fn rollback_to(
    ctx: &Context<'_>,
    d: &DeployPolicy,
    environment: &str,
    namespace: &str,
    target: &Stored,
    records: &[Stored],
    failed_sequence: Option<u64>,
    strategy: Strategy,
) -> Result<Rolled, DeployError> {
    let release = NewRelease::of_record(target)?;
    let started = release.started;
    let sequence = next_sequence(records).max(failed_sequence.map_or(0, |s| s + 1));
    let mut record = release.record(environment, namespace, sequence, ctx, strategy);
    record.rollback_to = Some(target.record.sequence);
    let (mut stored, wait, blue_green) = match strategy {
        Strategy::Rolling => {
            let targets = apply::targets(ctx.cluster, &release.render)
                .await
                .map_err(DeployError::Refused)?;
            let stored = history::create(ctx.cluster, &record, &release.gz).await?;
            let wait = apply_and_wait(ctx.cluster, &targets, timeout(d)).await;
            (stored, wait, None)
        }
        Strategy::BlueGreen => {
            let last_good = records.iter().rev().find(|s| s.record.good());
            let active = current_colour(ctx.cluster, namespace, last_good).await?;
            let idle = active.map_or(Colour::Blue, Colour::other);
            let plan = colour_plan(d, &release.render, idle)?;
            record.colour = Some(idle.as_str().to_string());
            record.previous_colour = active.map(|c| c.as_str().to_string());
            let stored = history::create(ctx.cluster, &record, &release.gz).await?;
            let delay = bluegreen::delay(d.scale_down_delay_minutes);
            let released =
                bluegreen::release(ctx.cluster, namespace, &plan, active, delay, timeout(d))
                    .await?;
            let mut wait = released.wait.clone();
            if !released.healthy() && wait.healthy() {
                wait.result = "failed".to_string();
            }
            (stored, wait, Some(released.report))
        }
    };
    let healthy = wait.healthy();
    stored.record.result = if healthy {
        Outcome::Healthy
    } else {
        Outcome::Failed
    };
    stored.record.reason = wait.reason.clone();
    stored.record.scale_down_at = blue_green.as_ref().and_then(|b| b.scale_down_at);
    finish_record(ctx.cluster, &mut stored, started).await?;
    Ok(Rolled {
        healthy,
        report: report::RollbackReport {
            to_version: target.record.version.clone(),
            to_record: target.name.clone(),
            record: stored.name.clone(),
            result: if healthy { "healthy" } else { "failed" }.to_string(),
            wait,
        },
        blue_green,
    })
}

/// `driftsweep rollback`: to the good deploy before the current one, or to `to`.
pub async fn rollback(
    ctx: &Context<'_>,
    environment_name: &str,
    to: Option<&str>,
) -> Result<DeployReport, DeployError> {
    let started = Utc::now();
    let d = deploy_policy(ctx.policy)?;
    let env = environment(d, environment_name)?;
    let namespace = env.namespace.clone();
    let wanted = to.map(version::parse_version).transpose()?;
    let lock =
        Lease::acquire_named(ctx.cluster, &namespace, LOCK_NAME, &holder(ctx, "rollback")).await?;
    let outcome = async {
        let mut records = history::list(ctx.cluster, &namespace, environment_name).await?;
        close_interrupted(ctx.cluster, &mut records).await?;
        let good: Vec<&Stored> = records.iter().filter(|s| s.record.good()).collect();
        let target = match &wanted {
            Some(v) => good
                .iter()
                .rev()
                .find(|s| s.record.version == v.to_string())
                .copied()
                .ok_or_else(|| {
                    DeployError::Refused(format!(
                        "no healthy deploy of `{v}` in `{environment_name}`'s history\nhint: `driftsweep history --env {environment_name}` lists what can be rolled back to"
                    ))
                })?,
            None => {
                let current = good.last().map(|s| s.record.version.clone());
                good.iter()
                    .rev()
                    .find(|s| Some(&s.record.version) != current.as_ref())
                    .copied()
                    .ok_or_else(|| {
                        DeployError::Refused(format!(
                            "`{environment_name}` has no earlier healthy deploy of another version to roll back to"
                        ))
                    })?
            }
        };
        check_images(ctx.registry, &target.record).await?;
        let mut report =
            DeployReport::new("rollback", false, environment_name, &namespace, started);
        report.version = target.record.version.clone();
        report.commit = target.record.commit.clone();
        report.who = ctx.who.clone();
        let current = good.last();
        report.services = service_changes(
            &target.record.services,
            &target.record.version,
            current.map(|s| &s.record),
        );
        let strategy = d.strategy_of(env);
        let render = target.render()?;
        let mut scaled = Vec::new();
        let preview_objects = match strategy {
            Strategy::Rolling => render.clone(),
            Strategy::BlueGreen => {
                scaled = bluegreen::scale_down_expired(ctx.cluster, &namespace, Utc::now()).await?;
                let active = current_colour(ctx.cluster, &namespace, current.copied()).await?;
                let idle = active.map_or(Colour::Blue, Colour::other);
                let plan = colour_plan(d, &render, idle)?;
                // Inside the delay: the colour users left still runs the target; switch back.
                if let Some(active) = active {
                    let delay = bluegreen::delay(d.scale_down_delay_minutes);
                    if let Some(mut bg) =
                        bluegreen::fast_rollback(ctx.cluster, &namespace, &plan, active, delay).await?
                    {
                        let release = NewRelease::of_record(target)?;
                        let mut record = release.record(environment_name, &namespace, next_sequence(&records), ctx, Strategy::BlueGreen);
                        record.started_at = started;
                        record.rollback_to = Some(target.record.sequence);
                        record.colour = Some(idle.as_str().to_string());
                        record.previous_colour = Some(active.as_str().to_string());
                        record.scale_down_at = bg.scale_down_at;
                        record.result = Outcome::Healthy;
                        record.reason = Some(format!("switched back to {idle} inside the scale-down delay"));
                        let mut stored = history::create(ctx.cluster, &record, &release.gz).await?;
                        finish_record(ctx.cluster, &mut stored, started).await?;
                        scaled.append(&mut bg.scaled_down);
                        bg.scaled_down = scaled;
                        report.record = Some(stored.name.clone());
                        report.result = "rolled-back".to_string();
                        report.blue_green = Some(bg);
                        let all = history::list(ctx.cluster, &namespace, environment_name).await?;
                        history::prune(ctx.cluster, &all, d.history as usize).await?;
                        return Ok::<_, DeployError>(report);
                    }
                }
                plan_objects(&plan)
            }
        };
        let targets = apply::targets(ctx.cluster, &preview_objects)
            .await
            .map_err(DeployError::Refused)?;
        report.changes = apply::preview(ctx.cluster, &targets)
            .await
            .map_err(|p| DeployError::Refused(p.join("\n")))?;
        let rolled = rollback_to(ctx, d, environment_name, &namespace, target, &records, None, strategy).await?;
        if let Some(mut bg) = rolled.blue_green.clone() {
            scaled.append(&mut bg.scaled_down);
            bg.scaled_down = scaled;
            report.blue_green = Some(bg);
        }
        report.record = Some(rolled.report.record.clone());
        report.reason = rolled.report.wait.reason.clone();
        report.result = if rolled.healthy { "rolled-back" } else { "rollback-failed" }.to_string();
        report.wait = Some(rolled.report.wait);
        let all = history::list(ctx.cluster, &namespace, environment_name).await?;
        history::prune(ctx.cluster, &all, d.history as usize).await?;
        Ok::<_, DeployError>(report)
    }
    .await;
    lock.release().await;
    Ok(outcome?.finish())
}

/// A rollback's images must still be what the record saw: each digest still in the registry,
/// and its tag not moved to another one.
async fn check_images(registry: &RegistryClient, record: &Record) -> Result<(), DeployError> {
    let mut refusals = Vec::new();
    for pin in &record.services {
        let by_tag = registry
            .resolve_tag(&pin.image, &pin.tag)
            .await
            .map_err(|e| DeployError::Registry {
                reference: format!("{}:{}", pin.image, pin.tag),
                message: e.to_string(),
            })?;
        let by_digest = registry
            .resolve_tag(&pin.image, &pin.digest)
            .await
            .map_err(|e| DeployError::Registry {
                reference: format!("{}@{}", pin.image, pin.digest),
                message: e.to_string(),
            })?;
        if by_digest.is_none() {
            refusals.push(format!(
                "service {}: `{}@{}` is no longer in the registry: the rollback's Pods could not start",
                pin.service, pin.image, pin.digest
            ));
        } else if let Some(now) = by_tag
            && now != pin.digest
        {
            refusals.push(format!(
                "service {}: `{}:{}` now names {now}, not the {} that was deployed: the tag was overwritten",
                pin.service, pin.image, pin.tag, pin.digest
            ));
        }
    }
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(DeployError::Refused(refusals.join("\n")))
    }
}

/// Objects driftsweep deployed in `namespace` (labelled `managed-by: driftsweep`) of the kinds
/// its renders hold, that the new render no longer has. Never a deploy record, an object with
/// an owner, or one opted out.
async fn prune_candidates(
    cluster: &Cluster,
    namespace: &str,
    targets: &[apply::Target],
    records: &[Stored],
    blue_green: bool,
) -> Result<Vec<KubeTarget>, DeployError> {
    let mut kinds: Vec<(String, String)> = targets
        .iter()
        .map(|t| (t.info.api_version(), t.info.kind.clone()))
        .collect();
    for stored in records.iter().filter(|s| s.record.good()) {
        if let Ok(render) = stored.render() {
            for o in render {
                let text = |p: &str| {
                    o.pointer(p)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                kinds.push((text("/apiVersion"), text("/kind")));
            }
        }
    }
    kinds.sort();
    kinds.dedup();
    let selector = format!("{}={}", render::MANAGED_BY_LABEL, render::MANAGED_BY);
    let mut out = Vec::new();
    for (api_version, kind) in kinds {
        let info = cluster.resolve(&api_version, &kind).await?;
        let uri = format!(
            "{}?labelSelector={}",
            info.collection(Some(namespace)),
            crate::inventory::url_encode(&selector)
        );
        let list = cluster.send_json(rollout::get(&uri)).await?;
        for item in list
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = |p: &str| item.pointer(p).and_then(Value::as_str);
            let name = text("/metadata/name").unwrap_or_default().to_string();
            let in_render = targets
                .iter()
                .any(|t| t.info.kind == kind && t.name == name);
            let record = item
                .pointer(&format!(
                    "/metadata/labels/{}",
                    history::RECORD_LABEL.replace('/', "~1")
                ))
                .is_some()
                || text("/type") == Some(history::SECRET_TYPE);
            let owned = item
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|o| !o.is_empty());
            let opted_out = item
                .pointer("/metadata/annotations/driftsweep.io~1keep")
                .and_then(Value::as_str)
                .is_some_and(|v| !matches!(v, "false" | "no" | "0" | "off"));
            // Both colours and the previews are blue-green's own while it deploys: the idle
            // colour is no render's, and still a rollback's way back.
            let colour = blue_green && bluegreen::is_colour_object(item);
            if in_render || record || owned || opted_out || colour {
                continue;
            }
            out.push(KubeTarget {
                api_version: info.api_version(),
                kind: kind.clone(),
                namespace: Some(namespace.to_string()),
                name,
                uid: text("/metadata/uid").map(str::to_string),
                resource_version: text("/metadata/resourceVersion").map(str::to_string),
            });
        }
    }
    Ok(out)
}

/// Deletes what left the render through enforce's machinery: re-read, server dry run, backup,
/// delete with preconditions. One failure does not stop the others.
async fn prune(ctx: &Context<'_>, targets: &[KubeTarget], backup: Option<&str>) -> Vec<Pruned> {
    use crate::enforce::backup::{Backup, Store};
    let describe = |t: &KubeTarget| {
        format!(
            "{} {}/{}",
            t.kind,
            t.namespace.as_deref().unwrap_or(""),
            t.name
        )
    };
    let failed = |t: &KubeTarget, why: String| Pruned {
        object: describe(t),
        outcome: "failed".to_string(),
        reason: Some(why),
        backup: None,
    };
    let Some(location) = backup else {
        return targets
            .iter()
            .map(|t| failed(t, "no backup location".to_string()))
            .collect();
    };
    let backup = match Store::open(location).await {
        Ok(store) => Backup::open(store, &ctx.run_id).await,
        Err(e) => Err(e),
    };
    let backup = match backup {
        Ok(b) => b,
        Err(e) => {
            return targets
                .iter()
                .map(|t| failed(t, format!("not pruned: {e}")))
                .collect();
        }
    };
    let mut out = Vec::new();
    for t in targets {
        let prepared = match ctx.cluster.prepare_delete(t).await {
            Ok(Ok(p)) => p,
            Ok(Err(outcome)) => {
                out.push(Pruned {
                    object: describe(t),
                    outcome: format!("{outcome:?}").to_lowercase(),
                    reason: None,
                    backup: None,
                });
                continue;
            }
            Err(e) => {
                out.push(failed(t, e.to_string()));
                continue;
            }
        };
        let location = match backup.kubernetes(&prepared.object, None).await {
            Ok(l) => l,
            Err(e) => {
                out.push(failed(t, format!("not pruned: {e}")));
                continue;
            }
        };
        out.push(match ctx.cluster.delete(&prepared).await {
            Ok(outcome) => Pruned {
                object: describe(t),
                outcome: match outcome {
                    crate::inventory::cluster::DeleteOutcome::Deleted => "pruned".to_string(),
                    crate::inventory::cluster::DeleteOutcome::AlreadyGone => {
                        "already-gone".to_string()
                    }
                    crate::inventory::cluster::DeleteOutcome::Skipped(_) => "skipped".to_string(),
                },
                reason: match outcome {
                    crate::inventory::cluster::DeleteOutcome::Skipped(why) => Some(why),
                    _ => None,
                },
                backup: Some(location),
            },
            Err(e) => Pruned {
                object: describe(t),
                outcome: "failed".to_string(),
                reason: Some(e.to_string()),
                backup: Some(location),
            },
        });
    }
    out
}

/// Renders every environment offline (a stand-in digest for each service), so that `policy
/// check` reports what would make a deploy refuse its render.
pub fn check_renders(policy: &Policy, policy_dir: &Path) -> Result<Vec<String>, DeployError> {
    let d = deploy_policy(policy)?;
    let Some(kubernetes) = &policy.kubernetes else {
        return Ok(Vec::new());
    };
    let documents = crate::manifests::documents(&kubernetes.manifests, policy_dir)?;
    let v = version::parse_version("v0.0.0")?;
    let pins: Vec<Pin> = d
        .services
        .iter()
        .map(|s| Pin {
            service: s.name.clone(),
            image: s.image.clone(),
            tag: v.tag(),
            digest: format!("sha256:{}", "0".repeat(64)),
        })
        .collect();
    let mut problems = Vec::new();
    let images = service_images(d);
    for (name, env) in &d.environments {
        match render::render(&documents, &env.namespace, &v, &pins) {
            Err(p) => problems.extend(p.iter().map(|p| format!("environment `{name}`: {p}"))),
            Ok(rendered) if d.strategy_of(env) == Strategy::BlueGreen => {
                if let Err(p) = bluegreen::colourise(&rendered, &images, Colour::Blue, d.preview) {
                    problems.extend(
                        p.iter()
                            .map(|p| format!("environment `{name}` (blue-green): {p}")),
                    );
                }
            }
            Ok(_) => {}
        }
    }
    Ok(problems)
}

/// `driftsweep history`: the records of one environment, oldest first.
pub async fn list_history(
    cluster: &Cluster,
    policy: &Policy,
    environment_name: &str,
) -> Result<Vec<Record>, DeployError> {
    let d = deploy_policy(policy)?;
    let env = environment(d, environment_name)?;
    Ok(history::list(cluster, &env.namespace, environment_name)
        .await?
        .into_iter()
        .map(|s| s.record)
        .collect())
}

/// Each service's change: from what `previous` (the last good record) ran to `pins` at
/// `version`.
fn service_changes(pins: &[Pin], version: &str, previous: Option<&Record>) -> Vec<ServiceChange> {
    pins.iter()
        .map(|p| ServiceChange {
            service: p.service.clone(),
            image: p.image.clone(),
            from: previous.and_then(|r| {
                r.digest_of(&p.service).map(|digest| VersionDigest {
                    version: r.version.clone(),
                    digest: digest.to_string(),
                })
            }),
            to: VersionDigest {
                version: version.to_string(),
                digest: p.digest.clone(),
            },
            reference: p.reference(),
        })
        .collect()
}
