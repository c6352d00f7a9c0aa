//! Parsed flags + environment + policy file → resolved, validated settings for a run.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::cli::RunArgs;
use crate::manifests::{self, Desired, ManifestError};
use crate::policy::{self, LoadedPolicy, PolicyError};
use crate::report::archive::GcsLocation;
use crate::report::email::EmailSettings;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Manifests(#[from] ManifestError),
    #[error("`--now {0}` is not an RFC 3339 time\nhint: write it like `2026-11-29T07:30:00Z`")]
    Now(String),
    #[error("snapshot metadata `{}`: {message}", path.display())]
    SnapshotMeta { path: PathBuf, message: String },
    #[error(transparent)]
    Email(#[from] crate::report::email::EmailError),
    #[error(transparent)]
    Archive(#[from] crate::report::archive::ArchiveError),
    #[error(
        "`--email` needs a `report.email` section in the policy (recipients, sender, SMTP relay)\nhint: `driftsweep policy schema` shows its fields"
    )]
    NoEmailSection,
    #[error("`--version`: {0}")]
    Version(#[from] crate::deploy::version::VersionError),
    #[error(transparent)]
    Alert(#[from] crate::report::alerts::AlertError),
}

/// Everything a run needs, resolved.
#[derive(Debug)]
pub struct RunSettings {
    pub policy: LoadedPolicy,
    pub desired: Desired,
    /// `None`: read the live APIs.
    pub snapshot: Option<PathBuf>,
    pub now: DateTime<Utc>,
    pub report: Option<PathBuf>,
    pub markdown: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub email_preview: Option<PathBuf>,
    pub fail_on_findings: bool,
    pub email: Option<EmailSettings>,
    pub archive: Option<GcsLocation>,
    /// `--alert`: the webhooks, resolved.
    pub alerts: Option<crate::report::alerts::AlertSettings>,
    pub cluster: crate::inventory::cluster::ClusterOptions,
}

/// Loads the policy and its manifests.
pub fn load_policy(
    path: &Path,
    version: Option<&str>,
) -> Result<(LoadedPolicy, Desired), SettingsError> {
    let policy = policy::load(path)?;
    let desired = match &policy.policy.kubernetes {
        Some(k) => manifests::load(&k.manifests, policy.dir(), version)?,
        None => Desired::default(),
    };
    Ok((policy, desired))
}

pub fn resolve_run(args: &RunArgs) -> Result<RunSettings, SettingsError> {
    // `${VERSION}` stands for the image tag of the version (`v1.2.3` is tagged `1.2.3`).
    let tag = match &args.release_version {
        Some(v) => Some(crate::deploy::version::parse_version(v)?.tag()),
        None => None,
    };
    let (policy, desired) = load_policy(&args.policy, tag.as_deref())?;
    let snapshot = args.snapshot.clone();
    let now = match (&args.now, &snapshot) {
        (Some(text), _) => crate::inventory::kubernetes::parse_time(text)
            .map_err(|_| SettingsError::Now(text.clone()))?,
        (None, Some(dir)) => recorded_at(dir)?.unwrap_or_else(Utc::now),
        (None, None) => Utc::now(),
    };
    let email = email_settings(&policy, args.email)?;
    let archive = match args
        .archive
        .as_ref()
        .or(policy.policy.report.archive.as_ref())
    {
        Some(text) => Some(text.parse::<GcsLocation>()?),
        None => None,
    };
    let alerts = alert_settings(&policy, args.alert)?;
    Ok(RunSettings {
        email,
        archive,
        alerts,
        policy,
        desired,
        snapshot,
        now,
        report: args.report.clone(),
        markdown: args.markdown.clone(),
        html: args.html.clone(),
        email_preview: args.email_preview.clone(),
        fail_on_findings: args.fail_on_findings,
        cluster: cluster_options(&args.cluster),
    })
}

/// `--email`: the policy's `report.email`, resolved; `None` without the flag.
pub fn email_settings(
    policy: &LoadedPolicy,
    wanted: bool,
) -> Result<Option<EmailSettings>, SettingsError> {
    if !wanted {
        return Ok(None);
    }
    let section = policy
        .policy
        .report
        .email
        .as_ref()
        .ok_or(SettingsError::NoEmailSection)?;
    Ok(Some(EmailSettings::resolve(section)?))
}

/// `--alert`: the policy's `alerts` webhooks, resolved; `None` without the flag.
pub fn alert_settings(
    policy: &LoadedPolicy,
    wanted: bool,
) -> Result<Option<crate::report::alerts::AlertSettings>, SettingsError> {
    if !wanted {
        return Ok(None);
    }
    Ok(Some(crate::report::alerts::AlertSettings::resolve(
        policy.policy.alerts.as_ref(),
    )?))
}

pub fn cluster_options(
    args: &crate::cli::ClusterArgs,
) -> crate::inventory::cluster::ClusterOptions {
    crate::inventory::cluster::ClusterOptions {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    }
}

/// `snapshot.json`'s `recorded_at`: a replay decides as of when the snapshot was taken.
fn recorded_at(snapshot: &Path) -> Result<Option<DateTime<Utc>>, SettingsError> {
    crate::inventory::snapshot::meta(snapshot)
        .map(|m| m.recorded_at)
        .map_err(|message| SettingsError::SnapshotMeta {
            path: snapshot.join("snapshot.json"),
            message,
        })
}

/// A positive whole number of seconds from the environment variable `name`, else `default`:
/// the timeouts and deadlines every run has (`DRIFTSWEEP_*_SECONDS`).
pub fn seconds_from_env(name: &str, default: u64) -> std::time::Duration {
    let seconds = std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(default);
    std::time::Duration::from_secs(seconds)
}

/// A credential from the environment: `name`, else the contents of the file `<name>_FILE`
/// names (a mounted Secret key), its trailing newline dropped. `Err` names the file variable
/// and the path that could not be read.
pub fn secret_from_env(name: &str) -> Result<Option<String>, (String, String, std::io::Error)> {
    if let Ok(value) = std::env::var(name) {
        return Ok(Some(value));
    }
    let file_var = format!("{name}_FILE");
    match std::env::var(&file_var) {
        Ok(path) => match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text.trim_end_matches(['\n', '\r']).to_string())),
            Err(source) => Err((file_var, path, source)),
        },
        Err(_) => Ok(None),
    }
}
