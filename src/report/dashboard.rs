//! The version dashboard and the success metrics: what the team set out to reach (deploys
//! above 99.5 % healthy, rollbacks under 5 minutes, every service on the repository's
//! version, under 5 % orphaned objects), measured on every audit.
//!
//! Pure: built from the policy, the inventory (workloads, the registry's tags and the deploy
//! records' metadata, which the audit reads without reading any Secret value) and the
//! report's own counts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::deploy::history;
use crate::inventory::registry::ImageRef;
use crate::inventory::{Inventory, KubeObject};
use crate::policy::Policy;

/// Deploys healthy, in percent, at or above which reliability is green.
pub const DEPLOY_SUCCESS_TARGET: f64 = 99.5;
/// A rollback taking this many seconds or more is red.
pub const ROLLBACK_SECONDS_TARGET: f64 = 300.0;
/// Services on the repository version, in percent, needed for green.
pub const CONSISTENCY_TARGET: f64 = 100.0;
/// Audited objects planned for deletion, in percent, below which orphans are green.
pub const ORPHANS_TARGET: f64 = 5.0;

/// Annotations a deploy record carries besides its version and digests (metadata, so the
/// audit can measure without reading the record itself).
pub const DURATION_ANNOTATION: &str = "driftsweep.io/duration-seconds";
pub const ROLLBACK_TO_ANNOTATION: &str = "driftsweep.io/rollback-to";
pub const FINISHED_ANNOTATION: &str = "driftsweep.io/finished-at";

/// Per service and environment: the repository's version against what runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    /// `driftsweep version` of the policy's repository, or `--version`; `null` when neither.
    pub repository_version: Option<String>,
    pub services: Vec<ServiceRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRow {
    pub service: String,
    pub environment: String,
    pub namespace: String,
    /// The version its workloads run (from their image tags; `v` added to a semver tag),
    /// several joined by `, ` while they differ.
    pub deployed_version: Option<String>,
    /// The digest that runs: from the image reference, the registry's tag, or the deploy
    /// record that pinned it.
    pub deployed_digest: Option<String>,
    /// Whether it runs the repository version; `null` when either is unknown.
    pub matches: Option<bool>,
    /// The environment's newest deploy record.
    pub last_deploy: Option<LastDeploy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastDeploy {
    /// The record's name, `driftsweep.deploy.<env>.v<N>`.
    pub record: String,
    pub version: String,
    /// `healthy`, `failed`, `rolled-back`, `rollback-failed`, `interrupted` or `pending`.
    pub result: String,
    /// `true` when it was a rollback.
    pub rollback: bool,
    pub at: Option<DateTime<Utc>>,
    /// Hours between `at` and the report's `evaluated_at`.
    pub age_hours: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Green,
    Red,
    /// Nothing to measure yet (no deploy records, no repository version).
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Green => "green",
            Status::Red => "red",
            Status::Unknown => "unknown",
        }
    }
}

/// One success metric against its target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// `deployment-success-rate`, `rollback-time-last`, `rollback-time-median`,
    /// `version-consistency` or `orphaned-resources`.
    pub name: String,
    pub title: String,
    pub value: Option<f64>,
    /// `%` or `s`.
    pub unit: String,
    /// The target in words: `>= 99.5 %`, `< 300 s`.
    pub target: String,
    pub status: Status,
    /// How the value was measured: `39 of 40 deploys healthy`.
    pub detail: String,
}

impl Metric {
    /// The value in words: `97.5 %`, `2 min 5 s`, `unknown`.
    pub fn value_text(&self) -> String {
        match (self.value, self.unit.as_str()) {
            (None, _) => "unknown".to_string(),
            (Some(v), "s") => duration_words(v),
            (Some(v), unit) => format!("{} {unit}", percent(v)),
        }
    }
}

fn percent(v: f64) -> String {
    let rounded = (v * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

pub fn duration_words(seconds: f64) -> String {
    let s = seconds.round() as i64;
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// `match`, `differs` or `?`.
pub fn match_words(matches: Option<bool>) -> &'static str {
    match matches {
        Some(true) => "match",
        Some(false) => "differs",
        None => "?",
    }
}

/// `last deploy v1.4.2 healthy, 2.5 days ago` (or `rollback to …`).
pub fn last_deploy_words(last: Option<&LastDeploy>) -> String {
    let Some(l) = last else {
        return "no deploy recorded".to_string();
    };
    let age = match l.age_hours {
        Some(h) if h < 48.0 => format!(", {h} h ago"),
        Some(h) => format!(", {:.1} days ago", h / 24.0),
        None => String::new(),
    };
    format!(
        "last {} {} {}{age}",
        if l.rollback { "rollback to" } else { "deploy" },
        l.version,
        l.result
    )
}

/// A deploy record, as its metadata tells it.
struct RecordMeta<'a> {
    object: &'a KubeObject,
    environment: String,
    sequence: u64,
    result: String,
    version: String,
    rollback: bool,
    duration: Option<f64>,
    at: Option<DateTime<Utc>>,
    digests: BTreeMap<String, String>,
}

fn records(objects: &[KubeObject]) -> Vec<RecordMeta<'_>> {
    let mut out: Vec<RecordMeta> = objects
        .iter()
        .filter(|o| o.kind == "Secret" && o.secret_type.as_deref() == Some(history::SECRET_TYPE))
        .filter_map(|o| {
            let environment = o.labels.get(history::ENVIRONMENT_LABEL)?.clone();
            let sequence = o
                .labels
                .get("driftsweep.io/sequence")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let finished = o
                .annotations
                .get(FINISHED_ANNOTATION)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            Some(RecordMeta {
                object: o,
                environment,
                sequence,
                result: o
                    .labels
                    .get(history::RESULT_LABEL)
                    .cloned()
                    .unwrap_or_else(|| "pending".to_string()),
                version: o
                    .annotations
                    .get(history::VERSION_ANNOTATION)
                    .cloned()
                    .unwrap_or_default(),
                rollback: o.annotations.contains_key(ROLLBACK_TO_ANNOTATION),
                duration: o
                    .annotations
                    .get(DURATION_ANNOTATION)
                    .and_then(|d| d.parse().ok()),
                at: finished.or(o.created),
                digests: o
                    .annotations
                    .get(history::DIGESTS_ANNOTATION)
                    .and_then(|a| serde_json::from_str(a).ok())
                    .unwrap_or_default(),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.environment, a.sequence).cmp(&(&b.environment, b.sequence)));
    out
}

fn same_version(a: &str, b: &str) -> bool {
    a.trim_start_matches('v') == b.trim_start_matches('v')
}

/// A tag as a version: `1.4.0` is `v1.4.0`; anything else as it is.
fn version_of_tag(tag: &str) -> String {
    if semver::Version::parse(tag).is_ok() {
        format!("v{tag}")
    } else {
        tag.to_string()
    }
}

/// The dashboard; `None` when the policy deploys nothing (no services, no environments).
pub fn dashboard(
    policy: &Policy,
    inventory: &Inventory,
    repository_version: Option<&str>,
    now: DateTime<Utc>,
) -> Option<Dashboard> {
    let deploy = policy.deploy.as_ref()?;
    let objects = inventory.kubernetes_objects();
    let records = records(objects);
    let tag_digest = |repository: &str, tag: &str| -> Option<String> {
        inventory
            .registry
            .iter()
            .find(|r| r.name == repository)?
            .versions
            .iter()
            .find(|v| v.tags.iter().any(|t| t == tag))
            .map(|v| v.digest.clone())
    };
    let digest_version = |repository: &str, digest: &str| -> Option<String> {
        inventory
            .registry
            .iter()
            .find(|r| r.name == repository)?
            .versions
            .iter()
            .find(|v| v.digest == digest)?
            .tags
            .iter()
            .find(|t| semver::Version::parse(t).is_ok())
            .map(|t| version_of_tag(t))
    };
    let mut rows = Vec::new();
    for (environment, env) in &deploy.environments {
        let namespace = &env.namespace;
        let last = records.iter().rfind(|r| &r.environment == environment);
        let last_deploy = last.map(|r| LastDeploy {
            record: r.object.name.clone(),
            version: r.version.clone(),
            result: r.result.clone(),
            rollback: r.rollback,
            at: r.at,
            age_hours: r
                .at
                .map(|t| ((now - t).num_minutes() as f64 / 60.0 * 10.0).round() / 10.0),
        });
        for service in &deploy.services {
            let workloads: Vec<&KubeObject> = objects
                .iter()
                .filter(|o| {
                    o.namespace.as_deref() == Some(namespace.as_str())
                        && matches!(o.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet")
                        && o.containers.iter().any(|c| {
                            ImageRef::parse(&c.image).is_some_and(|r| r.repository == service.image)
                        })
                })
                .collect();
            // Blue-green: the idle colour at zero is not what serves.
            let serving: Vec<&KubeObject> = if workloads.iter().any(|w| w.replicas != Some(0)) {
                workloads
                    .iter()
                    .copied()
                    .filter(|w| w.replicas != Some(0))
                    .collect()
            } else {
                workloads
            };
            let mut versions: Vec<String> = Vec::new();
            let mut digests: Vec<String> = Vec::new();
            for w in &serving {
                for c in &w.containers {
                    let Some(r) =
                        ImageRef::parse(&c.image).filter(|r| r.repository == service.image)
                    else {
                        continue;
                    };
                    let digest = r
                        .digest
                        .clone()
                        .or_else(|| r.tag.as_deref().and_then(|t| tag_digest(&r.repository, t)));
                    let version = match &r.tag {
                        Some(t) => Some(version_of_tag(t)),
                        // By digest alone: the registry's version tag of that digest, else the
                        // deploy record that pinned it, else the workload's version label.
                        None => digest
                            .as_deref()
                            .and_then(|d| digest_version(&r.repository, d))
                            .or_else(|| {
                                records
                                    .iter()
                                    .rev()
                                    .find(|rec| {
                                        rec.digests.values().any(|p| {
                                            Some(
                                                p.rsplit_once('@')
                                                    .map(|(_, d)| d)
                                                    .unwrap_or_default(),
                                            ) == digest.as_deref()
                                        })
                                    })
                                    .map(|rec| rec.version.clone())
                            })
                            .or_else(|| w.labels.get("app.kubernetes.io/version").cloned()),
                    };
                    if let Some(v) = version
                        && !versions.contains(&v)
                    {
                        versions.push(v);
                    }
                    if let Some(d) = digest
                        && !digests.contains(&d)
                    {
                        digests.push(d);
                    }
                }
            }
            versions.sort();
            digests.sort();
            let matches = match (repository_version, versions.is_empty()) {
                (Some(repo), false) => Some(versions.iter().all(|v| same_version(v, repo))),
                _ => None,
            };
            rows.push(ServiceRow {
                service: service.name.clone(),
                environment: environment.clone(),
                namespace: namespace.clone(),
                deployed_version: (!versions.is_empty()).then(|| versions.join(", ")),
                deployed_digest: (!digests.is_empty()).then(|| digests.join(", ")),
                matches,
                last_deploy: last_deploy.clone(),
            });
        }
    }
    Some(Dashboard {
        repository_version: repository_version.map(str::to_string),
        services: rows,
    })
}

fn metric(
    name: &str,
    title: &str,
    value: Option<f64>,
    unit: &str,
    target: String,
    good: impl Fn(f64) -> bool,
    detail: String,
) -> Metric {
    Metric {
        name: name.to_string(),
        title: title.to_string(),
        value,
        unit: unit.to_string(),
        target,
        status: match value {
            None => Status::Unknown,
            Some(v) if good(v) => Status::Green,
            Some(_) => Status::Red,
        },
        detail,
    }
}

/// The success metrics. `audited` and `planned` are the report's object count and planned
/// deletions.
pub fn metrics(
    inventory: &Inventory,
    dashboard: Option<&Dashboard>,
    audited: usize,
    planned: usize,
) -> Vec<Metric> {
    let records = records(inventory.kubernetes_objects());
    let finished: Vec<&RecordMeta> = records
        .iter()
        .filter(|r| !r.rollback && r.result != "pending")
        .collect();
    let healthy = finished.iter().filter(|r| r.result == "healthy").count();
    let environments: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r.environment.as_str()).collect();
    let success = (!finished.is_empty()).then(|| healthy as f64 * 100.0 / finished.len() as f64);
    let mut out = vec![metric(
        "deployment-success-rate",
        "Deployment success rate",
        success,
        "%",
        format!(">= {DEPLOY_SUCCESS_TARGET} %"),
        |v| v >= DEPLOY_SUCCESS_TARGET,
        if finished.is_empty() {
            "no finished deploy in the history".to_string()
        } else {
            format!(
                "{healthy} of {} deploys healthy, over the deploy history of {} (the records each environment keeps)",
                finished.len(),
                environments.into_iter().collect::<Vec<_>>().join(", ")
            )
        },
    )];

    let mut rollbacks: Vec<&RecordMeta> = records
        .iter()
        .filter(|r| r.rollback && r.duration.is_some() && r.result != "pending")
        .collect();
    rollbacks.sort_by_key(|r| r.at);
    let last = rollbacks.last().and_then(|r| r.duration);
    let mut times: Vec<f64> = rollbacks.iter().filter_map(|r| r.duration).collect();
    times.sort_by(f64::total_cmp);
    let median = match times.len() {
        0 => None,
        n if n % 2 == 1 => Some(times[n / 2]),
        n => Some((times[n / 2 - 1] + times[n / 2]) / 2.0),
    };
    let target = format!("< {} s", ROLLBACK_SECONDS_TARGET as u64);
    out.push(metric(
        "rollback-time-last",
        "Last rollback time",
        last,
        "s",
        target.clone(),
        |v| v < ROLLBACK_SECONDS_TARGET,
        match rollbacks.last() {
            Some(r) => format!(
                "{} to {}, on {}",
                r.object.name,
                r.version,
                r.at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| "an unknown time".to_string())
            ),
            None => "no rollback in the history".to_string(),
        },
    ));
    out.push(metric(
        "rollback-time-median",
        "Median rollback time",
        median,
        "s",
        target,
        |v| v < ROLLBACK_SECONDS_TARGET,
        match times.len() {
            0 => "no rollback in the history".to_string(),
            1 => "over 1 rollback".to_string(),
            n => format!("over {n} rollbacks"),
        },
    ));

    let rows = dashboard.map(|d| d.services.as_slice()).unwrap_or_default();
    let on_version = rows.iter().filter(|r| r.matches == Some(true)).count();
    let known = dashboard.is_some_and(|d| d.repository_version.is_some()) && !rows.is_empty();
    out.push(metric(
        "version-consistency",
        "Version consistency",
        known.then(|| on_version as f64 * 100.0 / rows.len() as f64),
        "%",
        format!(">= {CONSISTENCY_TARGET} %"),
        |v| v >= CONSISTENCY_TARGET,
        match dashboard.and_then(|d| d.repository_version.as_deref()) {
            Some(v) if !rows.is_empty() => format!(
                "{on_version} of {} services (per environment) run the repository version {v}",
                rows.len()
            ),
            Some(_) => "the policy deploys no service".to_string(),
            None => "the repository version is unknown (pass `--version`, or audit from the repository's checkout)".to_string(),
        },
    ));

    out.push(metric(
        "orphaned-resources",
        "Orphaned resources",
        (audited > 0).then(|| planned as f64 * 100.0 / audited as f64),
        "%",
        format!("< {ORPHANS_TARGET} %"),
        |v| v < ORPHANS_TARGET,
        format!("{planned} of {audited} audited objects planned for deletion"),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_people_write_them() {
        assert_eq!(duration_words(42.4), "42 s");
        assert_eq!(duration_words(125.0), "2 min 5 s");
        assert_eq!(percent(97.5), "97.5");
        assert_eq!(percent(100.0), "100");
        assert_eq!(percent(2.0 / 3.0 * 100.0), "66.7");
        assert_eq!(version_of_tag("1.4.0"), "v1.4.0");
        assert_eq!(version_of_tag("main"), "main");
        assert!(same_version("v1.4.0", "1.4.0"));
    }
}
