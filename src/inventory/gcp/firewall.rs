//! Compute firewall rules (`gcp.firewall_rules`): a global collection, deleted through a
//! global operation.

use google_cloud_compute_v1::client::Firewalls;
use serde_json::Value;

use super::{Boxed, Deletion, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_common::{items, labels, required, text, time};
use crate::inventory::gcp_live::{
    COMPUTE, GcpClients, GcpDelete, client, compute_deleted, compute_list, get,
};
use crate::inventory::{GcpKind, GcpResource};

pub const FILE: &str = "firewalls.json";

pub static KIND: Kind = Kind {
    kind: GcpKind::FirewallRule,
    what: "firewall rules",
    audited: |p| p.firewall_rules.is_some(),
    allowed: |p| p.firewall_rules.as_ref().map(|a| a.allowed.as_slice()),
    floor: &["gke-*", "k8s-*", "k8s2-*"],
    list,
    parse,
    current,
    delete,
    reverify: Reverify {
        id: Some("id"),
        created: Some("creationTimestamp"),
    },
    auditor: &["compute.firewalls.list"],
    enforcer: &[
        "compute.firewalls.get",
        "compute.firewalls.delete",
        "compute.networks.updatePolicy",
        "compute.globalOperations.get",
    ],
};

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let items = match client!(clients, Firewalls, COMPUTE) {
            Ok(c) => compute_list!(c, clients.project.clone(), "firewalls.list"),
            Err(e) => Err(e),
        };
        listed.store(KIND.what, FILE, "items", items);
        listed
    })
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, super::FileError> {
    parse_file(files, FILE, parse_firewalls)
}

/// A `compute#firewallList` response.
pub fn parse_firewalls(body: &Value) -> Result<Vec<GcpResource>, String> {
    items(body, "items")?
        .into_iter()
        .map(|(path, o)| {
            Ok(GcpResource {
                id: text(o, "id"),
                self_link: text(o, "selfLink"),
                created: time(o, &path, "creationTimestamp")?,
                description: text(o, "description"),
                labels: labels(o),
                ..GcpResource::of(GcpKind::FirewallRule, required(o, &path, "name")?)
            })
        })
        .collect()
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        let c = client!(clients, Firewalls, COMPUTE)?;
        get!(
            c.get()
                .set_project(clients.project.clone())
                .set_firewall(target.name)
                .send(),
            "firewalls.get"
        )
    })
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    use google_cloud_lro::Poller as _;
    Box::pin(async move {
        let c = client!(clients, Firewalls, COMPUTE)?;
        compute_deleted(
            c.delete()
                .set_project(clients.project.clone())
                .set_firewall(d.name)
                .poller()
                .until_done()
                .await,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_firewall_list_and_names_bad_items() {
        let list = json!({"kind": "compute#firewallList", "items": [
            {"name": "a", "id": "1", "creationTimestamp": "2025-02-01T08:00:00.000-08:00"}]});
        let rules = parse_firewalls(&list).unwrap();
        assert_eq!(rules[0].name, "a");
        assert_eq!(
            rules[0].created.unwrap().to_rfc3339(),
            "2025-02-01T16:00:00+00:00"
        );
        let bad = json!({"items": [{"id": "1"}]});
        assert_eq!(parse_firewalls(&bad).unwrap_err(), "items[0].name: missing");
        assert!(parse_firewalls(&json!({"kind": "x"})).unwrap().is_empty());
    }
}
