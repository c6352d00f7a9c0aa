//! Findings → Plan: the order deletions run in, and the safety gates checked before the
//! first one. A plan over a gate is blocked: nothing is deleted, and the report says by how
//! much it is over.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::evaluate::{Action, Finding, Findings};
use crate::inventory::Provider;
use crate::policy::Safety;

/// Why a plan will not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blocked {
    /// The gate that tripped: `max-deletions` or `min-age`.
    pub gate: String,
    pub limit: u64,
    pub count: u64,
    pub message: String,
}

/// The deletions of a run, in order, and whether a gate blocks them.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Indexes into `Findings::items`, in the order enforce deletes them.
    pub deletions: Vec<usize>,
    pub blocked: Option<Blocked>,
}

/// Contents before containers: namespaced objects before their namespace, an index before
/// its child manifests (a registry refuses to delete a child its index still names).
/// Kubernetes objects go from the outside in: what sends traffic (Ingresses, Services) before
/// what serves it, what makes Pods before what Pods read, so that no running Pod is left
/// without its ConfigMap, Secret, account or claim, and no Pod is left reachable after its
/// NetworkPolicy is gone.
fn stage(f: &Finding) -> (Provider, u8) {
    let stage = match f.provider {
        Provider::Kubernetes if f.kind == "Namespace" && f.namespace.is_none() => 20,
        Provider::Kubernetes => match f.kind.as_str() {
            "Ingress" => 0,
            "Service" => 1,
            "HorizontalPodAutoscaler" => 2,
            "CronJob" => 3,
            "Deployment" | "StatefulSet" | "DaemonSet" | "Job" => 4,
            "PodDisruptionBudget" | "NetworkPolicy" => 6,
            "RoleBinding" => 7,
            "Role" => 8,
            "ConfigMap" | "Secret" | "ServiceAccount" | "PersistentVolumeClaim" => 9,
            "PersistentVolume" => 10,
            // Custom resources: after the workloads, before what Pods read.
            _ => 5,
        },
        Provider::Registry if f.identity.parent.is_some() => 1,
        // Load balancers top-down: forwarding rules, then target proxies, ...
        Provider::Gcp => {
            crate::inventory::GcpKind::parse(&f.kind).map_or(0, crate::inventory::gcp::chain_rank)
        }
        _ => 0,
    };
    (f.provider, stage)
}

pub fn plan(findings: &mut Findings, safety: &Safety, now: DateTime<Utc>) -> Plan {
    let mut deletions: Vec<usize> = findings
        .items
        .iter()
        .enumerate()
        .filter(|(_, f)| f.action == Action::Delete)
        .map(|(i, _)| i)
        .collect();
    deletions.sort_by(|&a, &b| {
        let (fa, fb) = (&findings.items[a], &findings.items[b]);
        (stage(fa), &fa.kind, &fa.namespace, &fa.name).cmp(&(
            stage(fb),
            &fb.kind,
            &fb.namespace,
            &fb.name,
        ))
    });
    for (order, &i) in deletions.iter().enumerate() {
        findings.items[i].plan_order = Some(order + 1);
    }

    let blocked = gates(findings, &deletions, safety, now);
    Plan { deletions, blocked }
}

/// The safety gates over `deletions` (indexes into `findings.items`): the first that trips.
pub fn gates(
    findings: &Findings,
    deletions: &[usize],
    safety: &Safety,
    now: DateTime<Utc>,
) -> Option<Blocked> {
    let count = deletions.len() as u64;
    let limit = u64::from(safety.max_deletions);
    let min_age = Duration::hours(i64::from(safety.min_age_hours));
    let too_young = deletions
        .iter()
        .filter(|&&i| {
            findings.items[i]
                .created_at
                .is_some_and(|t| now - t < min_age)
        })
        .count() as u64;
    if count > limit {
        Some(Blocked {
            gate: "max-deletions".to_string(),
            limit,
            count,
            message: format!(
                "the plan deletes {count} objects, over `safety.max_deletions` ({limit}) by {}; nothing will be deleted. Review the report, then raise the limit or narrow the policy.",
                count - limit
            ),
        })
    } else if let Some(blocked) = ratio_gate(findings, deletions, safety.max_deletion_ratio) {
        Some(blocked)
    } else if too_young > 0 {
        // Evaluate keeps everything younger than the minimum age; reaching this is a bug,
        // and the plan refuses rather than trusting it.
        Some(Blocked {
            gate: "min-age".to_string(),
            limit: u64::from(safety.min_age_hours),
            count: too_young,
            message: format!(
                "{too_young} planned deletions are younger than `safety.min_age_hours` ({}); nothing will be deleted",
                safety.min_age_hours
            ),
        })
    } else {
        None
    }
}

/// The first kind (registry images exempt) whose planned deletions are a larger share of its
/// audited objects than `ratio` allows.
fn ratio_gate(findings: &Findings, deletions: &[usize], ratio: Option<f64>) -> Option<Blocked> {
    let ratio = ratio?;
    let mut audited: std::collections::BTreeMap<(Provider, &str), (u64, u64)> = Default::default();
    for f in findings.items.iter().filter(|f| f.action != Action::Drift) {
        audited.entry((f.provider, f.kind.as_str())).or_default().0 += 1;
    }
    for &i in deletions {
        let f = &findings.items[i];
        audited.entry((f.provider, f.kind.as_str())).or_default().1 += 1;
    }
    audited
        .into_iter()
        .filter(|((provider, _), _)| *provider != Provider::Registry)
        .find(|(_, (total, deleted))| *deleted as f64 > ratio * *total as f64)
        .map(|((_, kind), (total, deleted))| {
            let limit = (ratio * total as f64).floor() as u64;
            Blocked {
                gate: "max-deletion-ratio".to_string(),
                limit,
                count: deleted,
                message: format!(
                    "the plan deletes {deleted} of {total} {kind} objects, over `safety.max_deletion_ratio` ({ratio}, at most {limit}); nothing will be deleted. Review the report, then raise the ratio or narrow the policy."
                ),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::{Identity, Reason};

    fn finding(
        provider: Provider,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        action: Action,
    ) -> Finding {
        Finding {
            provider,
            kind: kind.into(),
            namespace: ns.map(Into::into),
            name: name.into(),
            action,
            reasons: vec![Reason::NotInRepository],
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

    #[test]
    fn contents_before_namespaces_and_indexes_before_children() {
        let mut child = finding(
            Provider::Registry,
            "Image",
            None,
            "h/a@sha256:1",
            Action::Delete,
        );
        child.identity.parent = Some("sha256:2".into());
        let mut findings = Findings {
            items: vec![
                finding(
                    Provider::Kubernetes,
                    "Namespace",
                    None,
                    "a-old",
                    Action::Delete,
                ),
                finding(
                    Provider::Kubernetes,
                    "Secret",
                    Some("z"),
                    "s",
                    Action::Delete,
                ),
                child,
                finding(
                    Provider::Registry,
                    "Image",
                    None,
                    "h/a@sha256:2",
                    Action::Delete,
                ),
                finding(
                    Provider::Kubernetes,
                    "ConfigMap",
                    Some("z"),
                    "kept",
                    Action::Keep,
                ),
            ],
            gaps: vec![],
        };
        let plan = plan(&mut findings, &Safety::default(), Utc::now());
        let names: Vec<_> = plan
            .deletions
            .iter()
            .map(|&i| findings.items[i].name.as_str())
            .collect();
        assert_eq!(names, vec!["s", "a-old", "h/a@sha256:2", "h/a@sha256:1"]);
        assert!(plan.blocked.is_none());
        assert_eq!(findings.items[1].plan_order, Some(1));
        assert_eq!(findings.items[4].plan_order, None);
    }

    #[test]
    fn over_max_deletions_blocks_and_says_by_how_much() {
        let mut findings = Findings {
            items: (0..4)
                .map(|i| {
                    finding(
                        Provider::Gcp,
                        "FirewallRule",
                        None,
                        &format!("r{i}"),
                        Action::Delete,
                    )
                })
                .collect(),
            gaps: vec![],
        };
        let safety = Safety {
            max_deletions: 3,
            ..Safety::default()
        };
        let blocked = plan(&mut findings, &safety, Utc::now()).blocked.unwrap();
        assert_eq!((blocked.limit, blocked.count), (3, 4));
        assert!(blocked.message.contains("by 1"));
        let safety = Safety {
            max_deletions: 4,
            ..Safety::default()
        };
        assert!(plan(&mut findings, &safety, Utc::now()).blocked.is_none());
    }

    #[test]
    fn a_young_deletion_blocks_the_plan() {
        let mut f = finding(Provider::Gcp, "Bucket", None, "b", Action::Delete);
        let now = Utc::now();
        f.created_at = Some(now - Duration::hours(1));
        let mut findings = Findings {
            items: vec![f],
            gaps: vec![],
        };
        let blocked = plan(&mut findings, &Safety::default(), now)
            .blocked
            .unwrap();
        assert_eq!(blocked.gate, "min-age");
    }

    #[test]
    fn a_kind_over_its_deletion_ratio_blocks_but_registry_retention_is_exempt() {
        let mut items: Vec<Finding> = (0..10)
            .map(|i| {
                let action = if i < 4 { Action::Delete } else { Action::Keep };
                finding(
                    Provider::Kubernetes,
                    "ConfigMap",
                    Some("a"),
                    &format!("c{i}"),
                    action,
                )
            })
            .collect();
        items.extend((0..10).map(|i| {
            finding(
                Provider::Registry,
                "Image",
                None,
                &format!("h/a@sha256:{i}"),
                Action::Delete,
            )
        }));
        let mut findings = Findings {
            items,
            gaps: vec![],
        };
        let safety = |ratio| Safety {
            max_deletions: 100,
            max_deletion_ratio: Some(ratio),
            ..Safety::default()
        };
        let blocked = plan(&mut findings, &safety(0.3), Utc::now())
            .blocked
            .unwrap();
        assert_eq!(blocked.gate, "max-deletion-ratio");
        assert_eq!((blocked.limit, blocked.count), (3, 4));
        assert!(
            blocked.message.contains("4 of 10 ConfigMap"),
            "{}",
            blocked.message
        );
        // 40 % is within 0.4; the registry's 100 % never counts.
        assert!(
            plan(&mut findings, &safety(0.4), Utc::now())
                .blocked
                .is_none()
        );
        // Off unless set.
        let off = Safety {
            max_deletions: 100,
            ..Safety::default()
        };
        assert!(plan(&mut findings, &off, Utc::now()).blocked.is_none());
    }
}
