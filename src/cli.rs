//! Command-line types only; no logic. Every flag says what it does, with an example.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str =
    "Keeps a Kubernetes cluster and its Google Cloud project equal to what one repository defines.";

const LONG_ABOUT: &str = "\
Keeps a Kubernetes cluster and its Google Cloud project equal to what one repository defines.

driftsweep audits namespaces, ConfigMaps, Secrets, ServiceAccounts, PVCs, container image
versions, firewall rules, buckets, service accounts and certificates against the repository's
policy and manifests, and reports what should go. It never deletes in a dry run (the default):
anything in use, managed by Kubernetes/GKE/Google, opted out or too young is kept.";

const EXAMPLES: &str = "\
Examples:
  driftsweep run --policy policies/aia.yaml --snapshot examples/snapshot --markdown report.md
  driftsweep policy check policies/aia.yaml
  driftsweep policy schema > policy.schema.json
  driftsweep version            # the repository's version, from its git tags
  driftsweep --version          # this program's own version

Exit codes: 0 success; 1 runtime failure (some lists failed; the report lists the rest);
2 bad input (policy, flags, snapshot); 3 findings present and --fail-on-findings given.";

#[derive(Debug, Parser)]
#[command(
    name = "driftsweep",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    disable_version_flag = true
)]
pub struct Cli {
    /// Print this program's own version. The repository's version (from its git tags) is the
    /// `version` command.
    #[arg(short = 'V', long = "version", action = ArgAction::Version)]
    pub program_version: (),

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit the cluster, registry and project against the policy and write the report.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Check a policy file, or print the policy's JSON Schema or reference.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Record the live inventory in the snapshot folder format, to replay with `run --snapshot`.
    #[command(after_help = SNAPSHOT_EXAMPLES)]
    Snapshot(SnapshotArgs),
    /// Re-create the Kubernetes objects an enforce run backed up and deleted.
    #[command(after_help = RESTORE_EXAMPLES)]
    Restore(RestoreArgs),
    /// Deploy the repository's version to one environment: images pinned by digest, health
    /// waited for, rolled back automatically when it fails.
    #[command(after_help = DEPLOY_EXAMPLES)]
    Deploy(DeployArgs),
    /// Go back to the environment's previous healthy deploy (or `--to` a version), applying
    /// exactly what that deploy applied.
    #[command(after_help = ROLLBACK_EXAMPLES)]
    Rollback(RollbackArgs),
    /// List an environment's deploys: version, digests, who, when, how long, result.
    #[command(after_help = HISTORY_EXAMPLES)]
    History(HistoryArgs),
    /// Print the repository's version, from its git tags (this program's own: `--version`).
    #[command(long_about = VERSION_ABOUT, after_help = VERSION_EXAMPLES)]
    Version(VersionArgs),
    /// Check the repository's own files (manifests, Cloud Build, Dockerfiles, compose) for
    /// `latest` and mutable images, version mismatches, duplicate objects and unsafe rollouts.
    #[command(after_help = LINT_EXAMPLES)]
    Lint(LintArgs),
}

const LINT_EXAMPLES: &str = "\
Examples:
  driftsweep lint --policy policies/aia.yaml
  driftsweep lint --policy examples/repository/policy.yaml --format sarif > lint.sarif

It reads the manifests of `kubernetes.manifests` and the files of `lint.paths` (globs relative
to the policy). Every finding names file:line:column, its rule and the fix.

Exit codes: 0 no findings (or findings without --fail-on-findings); 2 a file or the policy
cannot be read; 3 findings present and --fail-on-findings given.";

#[derive(Debug, Args)]
pub struct LintArgs {
    /// The policy file, e.g. `policies/aia.yaml` (or `DRIFTSWEEP_POLICY`).
    #[arg(long, value_name = "FILE", env = "DRIFTSWEEP_POLICY")]
    pub policy: PathBuf,

    /// `text` for people, `json` (`driftsweep.lint/v1`) for scripts, `sarif` (2.1.0) for
    /// code-scanning tools.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub format: LintFormat,

    /// Exit 3 when there is any finding.
    #[arg(long)]
    pub fail_on_findings: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    Text,
    Json,
    Sarif,
}

const DEPLOY_EXAMPLES: &str = "\
Examples:
  # What would change, applying nothing (server-side dry run):
  driftsweep deploy --policy policies/aia.yaml --env staging --dry-run
  # Deploy the version of the checkout (`driftsweep version`), or a given one:
  driftsweep deploy --policy policies/aia.yaml --env staging
  driftsweep deploy --policy policies/aia.yaml --env production --version v1.4.0 --report deploy.json
  # Blue-green: scale the old colour to zero once its delay has passed (deploys nothing):
  driftsweep deploy --policy policies/aia.yaml --env production --finish

With `deploy.strategy: blue-green` (or the environment's `strategy`), the new version comes up
as the idle colour (`<name>-blue` or `<name>-green`), every Service switches to it only once
all of it is healthy, and the old colour stays at full scale for `scale_down_delay_minutes`:
a `rollback` until then is a switch back. A colour that fails is never switched to.

Refused, with nothing applied (exit 2): `latest` or a version that is not semver; a
pre-release for an environment that takes releases only; a version never deployed healthy to
the environment it is promoted from; a service image missing at that tag; a tag that names
another digest than when it was first deployed; a render where a service would run another
version; a field another manager owns, or an immutable field changed. One deploy per
environment at a time (Lease `driftsweep-deploy` in its namespace).

Exit codes: 0 deployed (or nothing to do); 1 the deploy failed (the report says whether the
automatic rollback is healthy); 2 refused or bad input.";

const ROLLBACK_EXAMPLES: &str = "\
Examples:
  driftsweep rollback --policy policies/aia.yaml --env production
  driftsweep rollback --policy policies/aia.yaml --env production --to v1.3.2

It re-applies the recorded render of that deploy with its recorded digests (no tag is resolved
again), after checking each digest is still in the registry and its tag was not overwritten.
Blue-green, inside the scale-down delay: the colour users left still runs that deploy, so the
rollback only switches the Services back (seconds); after the delay it brings that deploy up
as the idle colour and switches, like a deploy.";

const HISTORY_EXAMPLES: &str = "\
Examples:
  driftsweep history --policy policies/aia.yaml --env production
  driftsweep history --policy policies/aia.yaml --env production --format json";

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The policy file with the `deploy` section, e.g. `policies/aia.yaml`.
    #[arg(long, value_name = "FILE", env = "DRIFTSWEEP_POLICY")]
    pub policy: PathBuf,

    /// The environment, a key of `deploy.environments`, e.g. `staging`.
    #[arg(long = "env", value_name = "NAME")]
    pub environment: String,

    /// The version to deploy, e.g. `v1.4.0` (never `latest`). Default: the repository's
    /// version, as `driftsweep version` computes it.
    #[arg(long = "version", value_name = "VERSION", env = "DRIFTSWEEP_VERSION")]
    pub release_version: Option<String>,

    /// The git repository whose version is deployed (default: the policy file's folder).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// Print what would be created, changed (with the fields) and pruned; apply nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Blue-green: deploy nothing; only scale to zero the old colour's Deployments whose
    /// `scale_down_delay_minutes` has passed (never a colour a Service selects), under the
    /// environment's lock. Every deploy and rollback does this first; run it on a schedule
    /// (e.g. a CronJob every 5 minutes) so the old colour goes on time.
    #[arg(long, conflicts_with_all = ["dry_run", "prune"])]
    pub finish: bool,

    /// Also delete the objects an earlier deploy made (labelled `app.kubernetes.io/managed-by:
    /// driftsweep`) that the new render no longer has, after the new version is healthy: each
    /// re-read, dry-run, backed up and deleted with preconditions.
    #[arg(long)]
    pub prune: bool,

    /// Where `--prune` backs up what it deletes: a folder or `gs://BUCKET/PREFIX` (default:
    /// `safety.backup`).
    #[arg(long, value_name = "DIR|gs://…", env = "DRIFTSWEEP_BACKUP")]
    pub backup: Option<String>,

    /// Write the deploy report (JSON, schema `driftsweep.deploy/v1`) to FILE; `-` for stdout.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Email the deploy report to the policy's `report.email` recipients.
    #[arg(long)]
    pub email: bool,

    /// Alert the policy's `alerts` webhooks (Google Chat, Slack) when the deploy fails or is
    /// rolled back automatically. A failed alert is reported and exits 1.
    #[arg(long)]
    pub alert: bool,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The policy file with the `deploy` section.
    #[arg(long, value_name = "FILE", env = "DRIFTSWEEP_POLICY")]
    pub policy: PathBuf,

    /// The environment, a key of `deploy.environments`.
    #[arg(long = "env", value_name = "NAME")]
    pub environment: String,

    /// Roll back to this version's newest healthy deploy, e.g. `--to v1.3.2`. Default: the
    /// newest healthy deploy of another version than the current one.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,

    /// Write the report (JSON) to FILE; `-` for stdout.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Email the report to the policy's `report.email` recipients.
    #[arg(long)]
    pub email: bool,

    /// Alert the policy's `alerts` webhooks (Google Chat, Slack) when the rollback fails.
    #[arg(long)]
    pub alert: bool,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The policy file with the `deploy` section.
    #[arg(long, value_name = "FILE", env = "DRIFTSWEEP_POLICY")]
    pub policy: PathBuf,

    /// The environment, a key of `deploy.environments`.
    #[arg(long = "env", value_name = "NAME")]
    pub environment: String,

    /// `table` (default) or `json` (the records).
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    pub format: HistoryFormat,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum HistoryFormat {
    Table,
    Json,
}

const VERSION_ABOUT: &str = "\
Print the repository's version, computed from its git tags (what `${VERSION}` in manifests and a
deploy name). This program's own version is `driftsweep --version`.

  HEAD exactly on a version tag      that tag: v1.2.3, v1.2.3-rc.1, v1.2.3+build.5
  otherwise                          <last tag>-dev.g<12 hex of HEAD>: v1.2.3-dev.g0123456789ab
                                     (a pre-release base gets .dev.g…: v1.2.3-rc.1.dev.g…)
  no version tag reachable           v0.0.0-dev.g<12 hex of HEAD>

Version tags are `v` + semver; other tags (`latest`, `release-3`, `1.2`) are ignored. Several
on HEAD: the highest by semver precedence. The last tag is the highest version tag reachable
from HEAD. Uncommitted changes (untracked files included) and shallow clones do not change the
version: they are stated on stderr and in the JSON.";

const VERSION_EXAMPLES: &str = "\
Examples:
  driftsweep version                       # v1.14.2, or v1.14.2-dev.g0123456789ab
  VERSION=$(driftsweep version)            # stdout is the version only; notes go to stderr
  driftsweep version --repo ../aia --format json

JSON fields: version, commit (40 hex), short (12 hex), exact_tag (or null), dirty (null or
{\"files\": N}), shallow.
Exit codes: 0 printed; 2 not a git repository, or no commit yet; 1 the repository is unreadable.";

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// The repository's folder (or any folder inside it), e.g. `--repo ../aia`.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub repo: PathBuf,

    /// `text` prints the version alone; `json` prints every field.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub format: VersionFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VersionFormat {
    Text,
    Json,
}

const RESTORE_EXAMPLES: &str = "\
Examples:
  # Everything one enforce run deleted (its backup folder is printed at the end of the run):
  driftsweep restore gs://aia-prod-backups/driftsweep/20261129T073000Z-1a2b3c
  # One ConfigMap, or a namespace with its contents:
  driftsweep restore backups/20261129T073000Z-1a2b3c --only ConfigMap/aia-staging/api-config
  driftsweep restore backups/20261129T073000Z-1a2b3c --only Namespace/aia-preview

Server-set fields (uid, resourceVersion, status, owner references) are dropped; an object that
exists already is left as it is; objects with an owner are left to it (it re-creates them).
Image versions cannot be restored: the registry deleted their blobs.";

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup folder of one run: a folder or `gs://BUCKET/PREFIX/<run id>` (it holds
    /// `index.json`).
    #[arg(value_name = "BACKUP")]
    pub backup: String,

    /// Restore only this object, as KIND/NAMESPACE/NAME, or KIND/NAME when cluster-scoped
    /// (`Namespace/NAME` restores the namespace with its contents).
    #[arg(long, value_name = "KIND/NS/NAME")]
    pub only: Option<String>,

    /// Also write what was restored as JSON to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

const SNAPSHOT_EXAMPLES: &str = "\
Examples:
  driftsweep snapshot --policy policies/aia.yaml --out snapshots/2026-11-29
  driftsweep run --policy policies/aia.yaml --snapshot snapshots/2026-11-29

It records the cluster (every kind the audit reads, as `List`s of the API's objects; Secrets as
metadata and type only, never their values), the container registries (tags/list bodies with
Google's extension, synthesised when the registry lacks it, and index manifests) and the GCP
project (the REST list bodies of Compute, IAM, Certificate Manager and Cloud Storage).";

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The policy file: it names the registries, repositories and scan roots to record.
    #[arg(long, value_name = "FILE", env = "DRIFTSWEEP_POLICY")]
    pub policy: PathBuf,

    /// An empty or new folder to write the snapshot into, e.g. `--out snapshots/today`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// How to reach the cluster.
#[derive(Debug, Args, Clone, Default)]
pub struct ClusterArgs {
    /// The kubeconfig file, e.g. `--kubeconfig ~/.kube/config`. Default: `KUBECONFIG`, then
    /// `~/.kube/config`, then the pod's service account when running in the cluster.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use, e.g. `--context gke_aia-prod_us-central1_aia`.
    /// Default: the kubeconfig's current context.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

const RUN_EXAMPLES: &str = "\
Examples:
  # Audit the bundled example snapshot, with a Markdown and an HTML report:
  driftsweep run --policy policies/aia.yaml --snapshot examples/snapshot \\
      --report report.json --markdown report.md --html report.html

  # Replay a snapshot as of a fixed time, JSON report on stdout, exit 3 on findings:
  driftsweep run --policy policies/aia.yaml --snapshot snap/ --now 2026-11-29T07:30:00Z \\
      --report - --fail-on-findings";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Report only; delete nothing. This is the default.
    #[arg(long, conflicts_with = "enforce")]
    pub dry_run: bool,

    /// Delete what a reviewed dry-run report plans (`--plan`): each object only if it is still
    /// condemned and still the same object (uid and resourceVersion; digest and tags), after
    /// the safety gates and a backup of it. Holds the Lease `driftsweep` so only one enforce
    /// runs at a time. Needs `--plan` or `--no-review`, and a backup location.
    #[arg(long, conflicts_with = "snapshot")]
    pub enforce: bool,

    /// The reviewed dry-run report (its JSON) to enforce: a file or `gs://…` (an archived
    /// report), e.g. `--plan reports/2026-11-29.json`. Refused when older than
    /// `safety.plan_max_age_hours` or made with another policy.
    #[arg(long, value_name = "REPORT", requires = "enforce")]
    pub plan: Option<String>,

    /// Plan and delete in one go, without a reviewed plan: for automation that accepts the
    /// risk. The safety gates still apply.
    #[arg(long, requires = "enforce", conflicts_with = "plan")]
    pub no_review: bool,

    /// Where enforce backs up each object before deleting it: a folder or
    /// `gs://BUCKET/PREFIX` (default: the policy's `safety.backup`). In a pod use `gs://`.
    #[arg(long, value_name = "DIR|gs://…", env = "DRIFTSWEEP_BACKUP")]
    pub backup: Option<String>,

    /// The policy file, e.g. `policies/aia.yaml`. Relative paths inside it (manifests)
    /// resolve against its folder.
    #[arg(long, value_name = "FILE", env = "DRIFTSWEEP_POLICY")]
    pub policy: PathBuf,

    /// Read the inventory from a snapshot folder instead of live APIs, e.g.
    /// `examples/snapshot` (holds kubernetes/, registry/ and gcp/ API responses). Without it
    /// the cluster (see `--kubeconfig`), the registries (`registry.plain_http_hosts` for HTTP
    /// registries, `DRIFTSWEEP_REGISTRY_USERNAME`/`_PASSWORD` for basic or token auth) and the
    /// GCP project (application default credentials; `DRIFTSWEEP_GCP_*_ENDPOINT` and
    /// `STORAGE_EMULATOR_HOST` point the APIs elsewhere) are read live.
    #[arg(long, value_name = "DIR")]
    pub snapshot: Option<PathBuf>,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Write the JSON report (schema `driftsweep.report/v1`) to FILE; `-` writes it to stdout.
    /// Example: `--report reports/2026-11-29.json`.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Write the Markdown report to FILE, e.g. `--markdown report.md`.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,

    /// Write the standalone HTML report to FILE, e.g. `--html report.html`. Each list shows at
    /// most 1,000 rows and says how many more the JSON report holds.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Email the report to the policy's `report.email` recipients (plain text + HTML, the JSON
    /// report attached). SMTP user and password come from `DRIFTSWEEP_SMTP_USERNAME` and
    /// `DRIFTSWEEP_SMTP_PASSWORD` (or `*_FILE`). The report files are written first; a
    /// failed send is retried, then the run exits 1.
    #[arg(long)]
    pub email: bool,

    /// Send the policy's `alerts` (Google Chat, Slack webhooks; URLs from
    /// `DRIFTSWEEP_GOOGLE_CHAT_WEBHOOK_URL` / `DRIFTSWEEP_SLACK_WEBHOOK_URL` or `*_FILE`): on
    /// version drift and planned deletions in a dry run, on every enforce run. Each links the
    /// archived report (or names the report file). Sent before the report is written, so the
    /// report records each alert's outcome; a failed alert exits 1.
    #[arg(long)]
    pub alert: bool,

    /// Write the HTML body `--email` sends (long lists cut, kept objects counted by reason) to
    /// FILE without sending anything, e.g. `--email-preview mail.html`.
    #[arg(long, value_name = "FILE")]
    pub email_preview: Option<PathBuf>,

    /// Archive the JSON report at `PREFIX/YYYY/MM/DD/<run-id>.json` in Cloud Storage, e.g.
    /// `--archive gs://aia-prod-reports/driftsweep` (default: the policy's `report.archive`).
    /// `STORAGE_EMULATOR_HOST` points it at an emulator.
    #[arg(long, value_name = "gs://BUCKET/PREFIX", env = "DRIFTSWEEP_ARCHIVE")]
    pub archive: Option<String>,

    /// Exit with code 3 when anything is to be deleted or has drifted (for CI gates).
    #[arg(long)]
    pub fail_on_findings: bool,

    /// The release version `${VERSION}` in manifest image tags stands for, e.g.
    /// `--version 1.14.2`. Without it, `${VERSION}` matches any tag when drift is checked.
    #[arg(long = "version", value_name = "VERSION", env = "DRIFTSWEEP_VERSION")]
    pub release_version: Option<String>,

    /// Decide as of this time (RFC 3339), e.g. `--now 2026-11-29T07:30:00Z`. Defaults to the
    /// snapshot's `recorded_at` (snapshot.json) when replaying one, else the current time.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file and its manifests; lists every problem with its line.
    #[command(after_help = "Example:\n  driftsweep policy check policies/aia.yaml")]
    Check {
        /// The policy file, e.g. `policies/aia.yaml`.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the JSON Schema of the policy format (every field, its type and default).
    #[command(after_help = "Example:\n  driftsweep policy schema > policy.schema.json")]
    Schema,
    /// Print the policy reference in Markdown (every field, its type, default and meaning),
    /// generated from the same types as the schema.
    #[command(after_help = "Example:\n  driftsweep policy reference > docs/policy-reference.md")]
    Reference,
}
