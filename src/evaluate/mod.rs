//! Decisions: `(Policy, Desired, Inventory, now) -> Findings`, pure and replayable.
//!
//! Keep always wins over delete: every rule that can keep a record is asked, every reason it
//! gives is recorded, and a record is deleted only when no rule keeps it. Nothing here does
//! I/O or reads the clock; `now` is an argument so that any run can be replayed.

mod drift;
mod gcp;
mod kubernetes;
mod registry;

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::inventory::{Gap, Inventory, Provider};
use crate::manifests::Desired;
use crate::policy::Policy;

/// What a run proposes for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Delete,
    Drift,
    Keep,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Delete => "delete",
            Action::Drift => "drift",
            Action::Keep => "keep",
        })
    }
}

/// Why. Stable codes: the report's `reasons[]`. Codes are only ever added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    // Keep.
    SystemManaged,
    ProtectedNamespace,
    OptOut,
    InUse,
    Owned,
    DefinedInRepository,
    KeepRule,
    RecentVersion,
    WithinMaxAge,
    TooYoung,
    AgeUnknown,
    InAllowlist,
    IndexChild,
    PossibleIndexChild,
    PvcDeletionDisabled,
    NotEmpty,
    RetentionLocked,
    ReferencesUnknown,
    ListingIncomplete,
    Terminating,
    UsedOnlyByOrphans,
    ManagedElsewhere,
    ReferencedFromRepository,
    PvDeletionDisabled,
    FinalSnapshot,
    DatabaseDeletionDisabled,
    DeletionProtected,
    ReadReplica,
    FinalBackup,
    // Delete.
    NotInRepository,
    OtherVersion,
    NotInAllowlist,
    Expired,
    ForeignImage,
    IndexDeleted,
    // Drift.
    Missing,
    VersionDrift,
}

impl Reason {
    /// The reason in words, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::SystemManaged => "created and managed by Kubernetes, GKE or Google",
            Reason::ProtectedNamespace => "in a protected namespace",
            Reason::OptOut => "carries the opt-out annotation",
            Reason::InUse => "in use by a workload, Pod or other object",
            Reason::Owned => "owned by an existing object",
            Reason::DefinedInRepository => "defined by the repository",
            Reason::KeepRule => "matches a keep rule of the policy",
            Reason::RecentVersion => "one of the newest versions kept",
            Reason::WithinMaxAge => "younger than the maximum age",
            Reason::TooYoung => "younger than the minimum age for deletion",
            Reason::AgeUnknown => "its age is not known",
            Reason::InAllowlist => "in the policy's allowlist",
            Reason::IndexChild => "platform image of a kept multi-arch index",
            Reason::PossibleIndexChild => {
                "may belong to a multi-arch index whose manifest was not read"
            }
            Reason::PvcDeletionDisabled => "PVC deletion is off (`delete_pvcs: false`)",
            Reason::NotEmpty => "the bucket still holds objects",
            Reason::RetentionLocked => "the bucket has a locked retention policy",
            Reason::ReferencesUnknown => "what uses it could not be read completely",
            Reason::ListingIncomplete => "its listing failed or is incomplete",
            Reason::Terminating => "already being deleted",
            Reason::UsedOnlyByOrphans => {
                "used only by objects planned for deletion: kept until they are gone"
            }
            Reason::ManagedElsewhere => {
                "managed by another tool or controller (Helm, Argo CD, Flux, cert-manager, GKE)"
            }
            Reason::ReferencedFromRepository => "the repository's objects still point at it",
            Reason::PvDeletionDisabled => "PV deletion is off (`delete_pvs: false`)",
            Reason::FinalSnapshot => {
                "the final snapshot of a disk driftsweep deleted (`delete_final_snapshots: false`)"
            }
            Reason::DatabaseDeletionDisabled => {
                "Cloud SQL instance deletion is off (`delete_databases: false`)"
            }
            Reason::DeletionProtected => "deletion protection is on",
            Reason::ReadReplica => {
                "a read replica (Cloud SQL backs none up): deleted by hand, with its primary"
            }
            Reason::FinalBackup => {
                "the final backup of a deleted Cloud SQL instance, or driftsweep's backup before deleting one (`delete_final_backups: false`)"
            }
            Reason::NotInRepository => "not defined by the repository",
            Reason::OtherVersion => {
                "a workload of the product on a version the repository does not deploy"
            }
            Reason::NotInAllowlist => "not in the policy's allowlist",
            Reason::Expired => "older than the maximum age and not among the newest versions",
            Reason::ForeignImage => "not one of the repository's images",
            Reason::IndexDeleted => "platform image of a multi-arch index that is deleted",
            Reason::Missing => "defined by the repository but missing",
            Reason::VersionDrift => "runs other images than the repository defines",
        }
    }

    pub fn code(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// What enforce needs to delete exactly this record, and what the report shows of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_at: Option<DateTime<Utc>>,
    /// Child manifests: the index they belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// Load balancer parts: the parts this run also deletes that name this one (`KIND
    /// NAME`). Enforce deletes it only after every one of them is gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
}

/// One container whose image differs from the repository's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageDrift {
    pub container: String,
    /// What the repository's manifest names (`None`: the container is not in the manifest).
    pub expected: Option<String>,
    /// What the cluster runs (`None`: the container is missing from the cluster).
    pub actual: Option<String>,
}

/// One verdict on one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub provider: Provider,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub action: Action,
    pub reasons: Vec<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub identity: Identity,
    /// Human detail: why, in numbers (`12 newer versions`, `defined in k8s/aia/api.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<ImageDrift>,
    /// Deletions: the position in the plan (1-based), in the order enforce deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_order: Option<usize>,
    /// Enforce reports: what happened to this planned deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Enforce reports: the reviewed plan names it, but this run's audit does not (gone,
    /// unlisted, or never audited: an object added to the plan by hand). Shown with its
    /// outcome; not counted in the summary's `delete`, `drift` and `keep`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reviewed_only: bool,
    /// Namespaces planned for deletion: what they hold (of the kinds listed), which the
    /// deletion takes along.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<NamespaceContents>,
}

/// What a namespace holds, counted from the inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceContents {
    /// Objects by kind, of the kinds the run listed.
    pub objects: std::collections::BTreeMap<String, usize>,
    /// Pods in phase `Running`.
    pub running_pods: usize,
}

impl NamespaceContents {
    /// `1 Deployment, 3 Pods (2 running), 2 ConfigMaps`: workloads and Pods first, then what
    /// holds data, then the rest by name.
    pub fn describe(&self) -> String {
        const ORDER: &[&str] = &[
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "CronJob",
            "Job",
            "ReplicaSet",
            "ReplicationController",
            "Pod",
            "PersistentVolumeClaim",
            "Secret",
            "ConfigMap",
            "ServiceAccount",
        ];
        let rank = |k: &str| ORDER.iter().position(|o| *o == k).unwrap_or(ORDER.len());
        let mut kinds: Vec<(&String, &usize)> = self.objects.iter().collect();
        kinds.sort_by_key(|(k, _)| (rank(k), k.as_str()));
        let parts: Vec<String> = kinds
            .into_iter()
            .map(|(kind, &n)| {
                let mut text = format!("{n} {}", if n == 1 { kind.clone() } else { plural(kind) });
                if kind == "Pod" {
                    text.push_str(&match self.running_pods {
                        0 => " (none running)".to_string(),
                        r => format!(" ({r} running)"),
                    });
                }
                text
            })
            .collect();
        parts.join(", ")
    }
}

fn plural(kind: &str) -> String {
    if kind.ends_with('s') || kind.ends_with("sh") || kind.ends_with('x') {
        format!("{kind}es")
    } else if let Some(stem) = kind.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{kind}s")
    }
}

/// What enforce did with one planned deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: OutcomeStatus,
    /// Why it was skipped, or the error when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where the object was backed up before its delete was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeStatus {
    Deleted,
    /// Gone before this run deleted it (an earlier, interrupted run, or someone else).
    AlreadyGone,
    Skipped,
    Failed,
    /// Service accounts, first phase: disabled; a later run deletes them.
    Disabled,
}

impl OutcomeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Deleted => "deleted",
            OutcomeStatus::AlreadyGone => "already-gone",
            OutcomeStatus::Skipped => "skipped",
            OutcomeStatus::Failed => "failed",
            OutcomeStatus::Disabled => "disabled",
        }
    }
}

impl Finding {
    fn new(provider: Provider, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        Finding {
            provider,
            kind: kind.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            action: Action::Keep,
            reasons: Vec::new(),
            created_at: None,
            identity: Identity::default(),
            detail: None,
            drift: Vec::new(),
            plan_order: None,
            outcome: None,
            reviewed_only: false,
            contents: None,
        }
    }

    /// Sets the action from the reasons gathered: keep if any keep reason, else `delete_reason`.
    fn decide(mut self, keep: Vec<Reason>, delete_reason: Reason) -> Self {
        if keep.is_empty() {
            self.action = Action::Delete;
            self.reasons = vec![delete_reason];
        } else {
            self.action = Action::Keep;
            self.reasons = keep;
            self.reasons.sort();
            self.reasons.dedup();
        }
        self
    }
}

/// Every verdict of one run, and the lists that could not be read.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub items: Vec<Finding>,
    pub gaps: Vec<Gap>,
}

impl Findings {
    pub fn count(&self, action: Action) -> usize {
        self.items.iter().filter(|f| f.action == action).count()
    }
}

/// Age rules shared by every provider.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub now: DateTime<Utc>,
    pub min_age: Duration,
}

impl Clock {
    /// `TooYoung` when younger than the minimum age, `AgeUnknown` when the age is not known.
    pub fn age_reason(&self, created: Option<DateTime<Utc>>) -> Option<Reason> {
        match created {
            None => Some(Reason::AgeUnknown),
            Some(t) if self.now - t < self.min_age => Some(Reason::TooYoung),
            Some(_) => None,
        }
    }
}

/// Decides every record of `inventory`.
pub fn evaluate(
    policy: &Policy,
    desired: &Desired,
    inventory: &Inventory,
    now: DateTime<Utc>,
) -> Findings {
    let clock = Clock {
        now,
        min_age: Duration::hours(i64::from(policy.safety.min_age_hours)),
    };
    // The Kubernetes audit is the largest; the others need nothing from it and run beside it.
    let (mut items, others) = std::thread::scope(|scope| {
        let others = scope.spawn(|| {
            let mut items = Vec::new();
            if inventory.kubernetes.is_some() {
                drift::evaluate(desired, inventory, &mut items);
            }
            if let Some(r) = &policy.registry {
                registry::evaluate(r, desired, inventory, clock, &mut items);
            }
            if let Some(g) = &policy.gcp {
                gcp::evaluate(g, inventory, clock, &mut items);
            }
            items
        });
        let mut items = Vec::new();
        if let Some(k) = &policy.kubernetes {
            kubernetes::evaluate(k, policy, desired, inventory, clock, &mut items);
        }
        (items, others.join())
    });
    match others {
        Ok(others) => {
            // Exactly: growing a vector of tens of thousands of findings doubles it.
            items.reserve_exact(others.len());
            items.extend(others);
        }
        // A panic in an evaluator is a bug; it is not hidden as fewer findings.
        Err(panic) => std::panic::resume_unwind(panic),
    }
    sort_findings(&mut items);
    Findings {
        items,
        gaps: inventory.gaps.clone(),
    }
}

/// Sorts the findings by provider, kind, namespace and name, in the order a stable sort
/// gives, without a stable sort's scratch copy: findings are large, and at cluster scale that
/// copy was 8 MB of the run's peak memory. The positions are sorted (stably), then each finding
/// is moved to its place along the permutation's cycles.
fn sort_findings(items: &mut [Finding]) {
    fn key(f: &Finding) -> (Provider, &str, Option<&str>, &str) {
        (
            f.provider,
            f.kind.as_str(),
            f.namespace.as_deref(),
            f.name.as_str(),
        )
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| key(&items[a]).cmp(&key(&items[b])));
    // `order[i]`: where the finding that belongs at `i` is now. A placed position points at
    // itself.
    for start in 0..order.len() {
        let mut at = start;
        while order[at] != start {
            let from = order[at];
            items.swap(at, from);
            order[at] = at;
            at = from;
        }
        order[at] = at;
    }
}

/// True when an annotation (or label) value opts out: anything but an explicit no.
pub(crate) fn opts_out(value: Option<&String>) -> bool {
    value.is_some_and(|v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "false" | "no" | "0" | "off"
        )
    })
}

#[cfg(test)]
mod floor_tests;

#[cfg(test)]
mod sort_tests {
    use proptest::prelude::*;

    use super::*;

    fn finding(provider: u8, kind: u8, namespace: Option<u8>, name: u8, detail: usize) -> Finding {
        let provider =
            [Provider::Kubernetes, Provider::Registry, Provider::Gcp][usize::from(provider % 3)];
        let mut f = Finding::new(
            provider,
            &format!("K{}", kind % 3),
            namespace.map(|n| format!("ns{}", n % 3)).as_deref(),
            &format!("n{}", name % 4),
        );
        // Which of equal findings is which: a stable sort keeps them in their first order.
        f.detail = Some(detail.to_string());
        f
    }

    proptest! {
        #[test]
        fn findings_sort_as_a_stable_sort_sorts_them(
            keys in prop::collection::vec((any::<u8>(), any::<u8>(), any::<Option<u8>>(), any::<u8>()), 0..200)
        ) {
            let items: Vec<Finding> = keys
                .iter()
                .enumerate()
                .map(|(i, &(p, k, ns, n))| finding(p, k, ns, n, i))
                .collect();
            let mut expected = items.clone();
            expected.sort_by(|a, b| {
                (a.provider, &a.kind, &a.namespace, &a.name).cmp(&(b.provider, &b.kind, &b.namespace, &b.name))
            });
            let mut sorted = items;
            sort_findings(&mut sorted);
            prop_assert_eq!(sorted, expected);
        }
    }
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Small builders so each rule's test reads like the case it pins.

    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::Value;

    use super::{Action, Findings, Reason};
    use crate::inventory::{Inventory, KubeObject};
    use crate::manifests::{Desired, DesiredObject};
    use crate::policy::{Policy, validate_source};

    pub fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    pub fn policy(yaml: &str) -> Policy {
        validate_source(yaml).unwrap_or_else(|p| panic!("test policy invalid: {p:#?}"))
    }

    pub fn objects(values: Vec<Value>) -> Vec<KubeObject> {
        values
            .into_iter()
            .map(|v| {
                KubeObject::from_value(v).unwrap_or_else(|e| panic!("test object invalid: {e}"))
            })
            .collect()
    }

    pub fn desired(values: Vec<Value>) -> Desired {
        Desired {
            objects: objects(values)
                .into_iter()
                .map(|object| DesiredObject {
                    object,
                    source: "manifests/app.yaml".into(),
                })
                .collect(),
            version: None,
        }
    }

    pub fn cluster(values: Vec<Value>) -> Inventory {
        Inventory {
            kubernetes: Some(objects(values)),
            ..Inventory::default()
        }
    }

    pub fn evaluate(policy: &Policy, desired: &Desired, inventory: &Inventory) -> Findings {
        super::evaluate(policy, desired, inventory, now())
    }

    /// The verdict on one record; panics when it was not reported.
    pub fn verdict(
        findings: &Findings,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> (Action, Vec<Reason>) {
        let f = findings
            .items
            .iter()
            .find(|f| f.kind == kind && f.namespace.as_deref() == namespace && f.name == name)
            .unwrap_or_else(|| panic!("no finding for {kind} {namespace:?}/{name}"));
        (f.action, f.reasons.clone())
    }

    pub fn reported(findings: &Findings, kind: &str, namespace: Option<&str>, name: &str) -> bool {
        findings
            .items
            .iter()
            .any(|f| f.kind == kind && f.namespace.as_deref() == namespace && f.name == name)
    }
}
