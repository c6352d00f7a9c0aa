//! What keeps a Cloud SQL instance beyond the allowlist: a database is data, so deleting one
//! is opted into (`delete_databases`), and anything that could still connect to it keeps it.
//! Only the cluster's Pods and workloads show that: when they were not read, every instance
//! is kept (unless `protect_in_use: false`).

use super::Reason;
use crate::inventory::gcp::sql_instance::{PRIMARY, RUNNABLE};
use crate::inventory::{GcpResource, Inventory, Provider, SqlFacts};
use crate::policy::GcpPolicy;

/// Pushes what keeps `r` to `keep`, and returns what the report should say about it.
pub(super) fn keeps(
    policy: &GcpPolicy,
    inventory: &Inventory,
    r: &GcpResource,
    keep: &mut Vec<Reason>,
) -> Option<String> {
    let p = policy.sql_instances.as_ref()?;
    let facts = r.sql.as_deref().cloned().unwrap_or_default();
    let mut detail = None;
    if !p.delete_databases {
        keep.push(Reason::DatabaseDeletionDisabled);
    }
    if facts.deletion_protection {
        keep.push(Reason::DeletionProtected);
    }
    if let Some(primary) = &facts.primary {
        keep.push(Reason::ReadReplica);
        detail = Some(format!("read replica of {primary}"));
    } else if facts.instance_type.as_deref() != Some(PRIMARY) {
        keep.push(Reason::SystemManaged);
        detail = Some(format!(
            "instance type {}",
            facts.instance_type.as_deref().unwrap_or("unknown")
        ));
    }
    if r.status.as_deref() != Some(RUNNABLE) {
        keep.push(Reason::InUse);
        detail = Some(format!(
            "state {}",
            r.status.as_deref().unwrap_or("unknown")
        ));
    }
    let users = referenced_by(inventory, r, &facts);
    if !users.is_empty() {
        keep.push(Reason::InUse);
        detail = Some(format!("connected to by {}", users.join(", ")));
    }
    // Any Kubernetes list that failed could have held the one workload that connects to it.
    let unread = inventory.kubernetes.is_none()
        || inventory
            .gaps
            .iter()
            .any(|g| g.provider == Provider::Kubernetes);
    if p.protect_in_use && unread {
        keep.push(Reason::ReferencesUnknown);
        if users.is_empty() {
            detail = Some(
                "the cluster's workloads were not read completely, so what connects to it is not known"
                    .to_string(),
            );
        }
    }
    detail
}

/// The cluster objects (any, kept or not: an orphan's reference keeps the instance until the
/// orphan is gone) whose spec names the instance's connection name or one of its addresses.
fn referenced_by(inventory: &Inventory, r: &GcpResource, facts: &SqlFacts) -> Vec<String> {
    let connection = facts
        .connection_name
        .as_deref()
        .map(str::to_ascii_lowercase);
    let project = facts.project.to_ascii_lowercase();
    let name = r.name.to_ascii_lowercase();
    let names_it = |reference: &str| {
        if Some(reference) == connection.as_deref()
            || facts.addresses.iter().any(|a| a == reference)
        {
            return true;
        }
        // The same project and instance in another region's spelling: still this one.
        let mut parts = reference.rsplitn(3, ':');
        let (instance, _region, of_project) = (parts.next(), parts.next(), parts.next());
        instance == Some(name.as_str()) && of_project == Some(project.as_str())
    };
    let mut users: Vec<String> = inventory
        .kubernetes_objects()
        .iter()
        .filter(|o| o.cloud_sql_refs.iter().any(|c| names_it(c)))
        .map(|o| match &o.namespace {
            Some(ns) => format!("{} {ns}/{}", o.kind, o.name),
            None => format!("{} {}", o.kind, o.name),
        })
        .collect();
    users.sort();
    users.dedup();
    users
}
