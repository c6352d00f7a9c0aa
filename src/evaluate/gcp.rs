//! GCP verdicts: allowlists, with a floor for what Google and GKE create.

use std::collections::HashMap;

use super::{Action, Clock, Finding, Identity, Reason};
use crate::inventory::{GcpKind, GcpResource, Inventory, Protects, Provider};
use crate::policy::{GcpPolicy, Glob, any_match};

/// Names Google or GKE give the resources they create and depend on.
fn floor_patterns(kind: GcpKind) -> &'static [&'static str] {
    crate::inventory::gcp::kind(kind).map_or(&[], |k| k.floor)
}

/// A regional or zonal resource's own name (`us-central1/ip` → `ip`): the floor and the
/// allowlists name resources, not their locations.
fn short_name(name: &str) -> &str {
    if name.contains('@') {
        return name;
    }
    name.rsplit('/').next().unwrap_or(name)
}

/// The label GCP resources carry to opt out (GCP label keys cannot hold `.` or `/`).
pub const GCP_OPT_OUT_LABEL: &str = "driftsweep-keep";

fn is_system_managed(r: &GcpResource, project: Option<&str>) -> bool {
    let kind = r.kind();
    if floor_patterns(kind)
        .iter()
        .any(|p| Glob::new(p).is_ok_and(|g| g.is_match(short_name(&r.name))))
    {
        return true;
    }
    // Accounts the project's users create are `NAME@PROJECT.iam.gserviceaccount.com`; every
    // other domain (`gcp-sa-*`, `*-robot`, `developer.`, ...) belongs to a Google service agent.
    if kind == GcpKind::IamServiceAccount
        && r.name
            .rsplit_once('@')
            .is_none_or(|(_, domain)| match project {
                Some(p) => domain != format!("{p}.iam.gserviceaccount.com"),
                // Without the project: Google's agents live in `gcp-sa-*` and similar
                // domains; any other `*.iam.gserviceaccount.com` is a user's account.
                None => {
                    !domain.ends_with(".iam.gserviceaccount.com") || domain.starts_with("gcp-sa-")
                }
            })
    {
        return true;
    }
    // GKE load balancers write their Service into the description of the firewall rules and
    // addresses they make.
    if matches!(
        kind,
        GcpKind::FirewallRule
            | GcpKind::Address
            | GcpKind::Disk
            | GcpKind::Snapshot
            | GcpKind::ForwardingRule
            | GcpKind::TargetProxy
            | GcpKind::UrlMap
            | GcpKind::BackendService
            | GcpKind::BackendBucket
            | GcpKind::HealthCheck
    ) && r
        .description
        .as_deref()
        .is_some_and(|d| d.contains("kubernetes.io/"))
    {
        return true;
    }
    r.labels.keys().any(|k| k.starts_with("goog-"))
}

fn allowlist(policy: &GcpPolicy, kind: GcpKind) -> Option<&[Glob]> {
    crate::inventory::gcp::kind(kind).and_then(|k| (k.allowed)(policy))
}

pub(super) fn evaluate(
    policy: &GcpPolicy,
    inventory: &Inventory,
    clock: Clock,
    out: &mut Vec<Finding>,
) {
    let delete_non_empty = policy.buckets.as_ref().is_some_and(|b| b.delete_non_empty);
    let retention = policy
        .snapshots
        .as_ref()
        .map(|s| snapshot::Retention::new(s, &inventory.gcp, clock));
    let sql_retention = policy
        .sql_backups
        .as_ref()
        .map(|s| sql_backup::Retention::new(s, &inventory.gcp, clock));
    // A load balancer part is judged after the parts that name it (stable: the other kinds
    // keep their order).
    let mut order: Vec<&GcpResource> = inventory.gcp.iter().collect();
    order.sort_by_key(|r| crate::inventory::gcp::chain_rank(r.kind()));
    let mut decided: HashMap<(GcpKind, &str), Action> = HashMap::new();
    for r in order {
        let kind = r.kind();
        let Some(allowed) = allowlist(policy, kind) else {
            continue;
        };
        // A part that names this one keeps it unless that part is deleted too; a part not
        // judged here (its kind not audited) keeps it.
        let mut used_by = r.used_by.clone();
        let mut after = Vec::new();
        for referrer in &r.referrers {
            let name = format!("{} {}", referrer.kind.as_str(), referrer.name);
            match decided.get(&(referrer.kind, referrer.name.as_str())) {
                Some(Action::Delete) => after.push(name),
                _ => used_by.push(name),
            }
        }
        let mut keep = Vec::new();
        if any_match(allowed, &r.name) || any_match(allowed, short_name(&r.name)) {
            keep.push(Reason::InAllowlist);
        }
        if is_system_managed(r, policy.project.as_deref()) {
            keep.push(Reason::SystemManaged);
        }
        if super::opts_out(r.labels.get(GCP_OPT_OUT_LABEL)) {
            keep.push(Reason::OptOut);
        }
        if !used_by.is_empty() {
            keep.push(Reason::InUse);
        }
        if inventory.has_gap(&Protects::Gcp(kind)) {
            keep.push(Reason::ListingIncomplete);
        }
        if kind == GcpKind::Bucket {
            if r.retention_locked {
                keep.push(Reason::RetentionLocked);
            }
            if r.empty == Some(false) && !delete_non_empty {
                keep.push(Reason::NotEmpty);
            }
        }
        let mut detail = None;
        if kind == GcpKind::Address {
            use crate::inventory::gcp::address::{RESERVED, USER_PURPOSES};
            // Attached, being reserved, or of unknown status: only `RESERVED` is unused.
            if r.used_by.is_empty() && r.status.as_deref() != Some(RESERVED) {
                keep.push(Reason::InUse);
                detail = Some(format!(
                    "status {}",
                    r.status.as_deref().unwrap_or("unknown")
                ));
            }
            if let Some(purpose) = r.purpose.as_deref()
                && !USER_PURPOSES.contains(&purpose)
            {
                keep.push(Reason::SystemManaged);
                detail = Some(format!("purpose {purpose}: held by a Google service"));
            }
        }
        if kind == GcpKind::Disk && r.used_by.is_empty() && r.status.as_deref() != Some("READY") {
            keep.push(Reason::InUse);
            detail = Some(format!(
                "status {}",
                r.status.as_deref().unwrap_or("unknown")
            ));
        }
        if kind == GcpKind::Snapshot
            && let Some(retention) = &retention
        {
            detail = retention.judge(r, &mut keep);
        }
        if kind == GcpKind::SqlBackup
            && let Some(retention) = &sql_retention
        {
            detail = retention.judge(r, &mut keep);
        }
        if kind == GcpKind::ForwardingRule
            && let Some(why) =
                crate::inventory::gcp::forwarding_rule::unlisted_referrers(r.purpose.as_deref())
        {
            keep.push(Reason::InUse);
            detail = Some(why);
        }
        if kind == GcpKind::LogBucket
            && let Some(why) = log_bucket::judge(r, &mut keep)
        {
            detail = Some(why);
        }
        if kind == GcpKind::SqlInstance
            && let Some(why) = sql::keeps(policy, inventory, r, &mut keep)
        {
            detail = Some(why);
        }
        // The IAM API reports no creation time; service accounts are disabled before they
        // are deleted instead.
        // A disk is unused only since it was last detached.
        let since = match (r.created, r.detached) {
            (Some(c), Some(d)) => Some(c.max(d)),
            (c, d) => c.or(d),
        };
        if kind != GcpKind::IamServiceAccount
            && let Some(reason) = clock.age_reason(since)
        {
            keep.push(reason);
        }
        let mut f = Finding::new(Provider::Gcp, kind.as_str(), None, &r.name);
        f.created_at = r.created;
        f.identity = Identity {
            id: r.id.clone(),
            self_link: r.self_link.clone(),
            etag: r.etag.clone(),
            resource_name: r.resource_name.clone(),
            ..Identity::default()
        };
        if !used_by.is_empty() {
            f.detail = Some(format!("used by {}", used_by.join(", ")));
        } else if detail.is_some() {
            f.detail = detail;
        } else if kind == GcpKind::Bucket && r.empty.is_none() {
            f.detail =
                Some("contents not read; enforce deletes it only if it is empty".to_string());
        }
        let delete_reason = match kind {
            GcpKind::Snapshot | GcpKind::SqlBackup => Reason::Expired,
            _ => Reason::NotInAllowlist,
        };
        let mut f = f.decide(keep, delete_reason);
        if f.action == Action::Delete {
            f.identity.after = after;
        }
        decided.insert((kind, r.name.as_str()), f.action);
        out.push(f);
    }
}

mod log_bucket;
mod snapshot;
mod sql_backup;

mod sql;
#[cfg(test)]
mod tests;
