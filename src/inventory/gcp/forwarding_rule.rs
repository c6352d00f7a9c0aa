//! Forwarding rules (`gcp.forwarding_rules`), regional and global: the top of a load
//! balancer's chain (forwarding rule → target proxy → URL map → backend service or bucket →
//! health check). Nothing in the chain references a forwarding rule, so the allowlist, the
//! floor (GKE's Ingress, Gateway and Service load balancers) and the opt-out label keep it.
//!
//! Two things outside the chain can name a forwarding rule and are not listed: a route whose
//! next hop is an internal passthrough load balancer (`nextHopIlb`), and a Private Service
//! Connect service attachment publishing a producer's internal load balancer
//! (`targetService`). So an internal forwarding rule (`loadBalancingScheme` `INTERNAL*`) is
//! always kept: what is not listed cannot be proved unused.
//!
//! Regional rules are named `REGION/NAME`, global ones `NAME`, in one snapshot file
//! `forwardingRules.json` (the REST list body, the aggregated list, or gcloud's array).
//! Their `fingerprint` is the record's etag: a rule changed since review is not deleted.

use google_cloud_compute_v1::client::{ForwardingRules, GlobalForwardingRules};
use serde_json::{Value, json};

use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_common::{labels, required, scoped_items, short_name, text, time};
use crate::inventory::gcp_live::{
    COMPUTE, GcpClients, GcpDelete, aggregated_list, client, compute_delete, compute_deleted,
    compute_get, compute_list,
};
use crate::inventory::{GcpKind, GcpResource};

pub const FILE: &str = "forwardingRules.json";

/// The names GKE gives the load balancer parts it makes: Ingress (`k8s-fw-*`, `k8s2-*`),
/// Gateway (`gkegw1-*`), the legacy and subsetting Service load balancers (`k8s1-*`,
/// `k8s2-*`), and Private Service Connect automation's (`sca-auto-*`).
pub const FLOOR: &[&str] = &["gke-*", "k8s-*", "k8s1-*", "k8s2-*", "gkegw*", "sca-auto-*"];

pub static KIND: Kind = Kind {
    kind: GcpKind::ForwardingRule,
    what: "forwarding rules",
    audited: |p| p.forwarding_rules.is_some(),
    allowed: |p| p.forwarding_rules.as_ref().map(|a| a.allowed.as_slice()),
    floor: FLOOR,
    list,
    parse,
    current,
    delete,
    reverify: Reverify {
        id: Some("id"),
        created: Some("creationTimestamp"),
    },
    auditor: &[
        "compute.forwardingRules.list",
        "compute.globalForwardingRules.list",
    ],
    enforcer: &[
        "compute.forwardingRules.get",
        "compute.forwardingRules.delete",
        "compute.regionOperations.get",
        "compute.globalForwardingRules.get",
        "compute.globalForwardingRules.delete",
        "compute.globalOperations.get",
    ],
};

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let rules = listed_rules(clients).await;
        listed.store_body(KIND.what, FILE, rules);
        listed
    })
}

/// Every forwarding rule, regional (the aggregated list, every page; an unreachable region
/// fails it) and global, as the body of `forwardingRules.json`. Read once per run: the kinds
/// below a forwarding rule read it too.
pub async fn listed_rules(clients: &GcpClients) -> Result<Value, String> {
    clients
        .shared_list(FILE, || async {
            let c = client!(clients, ForwardingRules, COMPUTE)?;
            let mut items = aggregated_list!(
                c,
                clients.project,
                "forwardingRules.aggregatedList",
                "regions/",
                forwarding_rules
            )?;
            let g = client!(clients, GlobalForwardingRules, COMPUTE)?;
            items.extend(compute_list!(
                g,
                clients.project.clone(),
                "globalForwardingRules.list"
            )?);
            Ok(json!({ "items": items }))
        })
        .await
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    parse_file(files, FILE, parse_forwarding_rules)
}

/// `REGION/NAME` of a regional resource (from its `region` link), else `NAME`.
pub fn scoped_name(o: &serde_json::Map<String, Value>, short: &str) -> String {
    match text(o, "region") {
        Some(r) => format!("{}/{short}", short_name(&r)),
        None => short.to_string(),
    }
}

/// `projects/P/regions/R/forwardingRules/N`, from the link the API gives a resource.
pub fn resource_name(o: &serde_json::Map<String, Value>) -> Option<String> {
    text(o, "selfLink").and_then(|l| l.find("projects/").map(|i| l[i..].to_string()))
}

/// Forwarding rules of any of the shapes above; regional ones named `REGION/NAME`.
pub fn parse_forwarding_rules(body: &Value) -> Result<Vec<GcpResource>, String> {
    scoped_items(body, "forwardingRules")?
        .into_iter()
        .map(|(path, o)| {
            let short = required(o, &path, "name")?;
            Ok(GcpResource {
                id: text(o, "id"),
                self_link: text(o, "selfLink"),
                resource_name: resource_name(o),
                etag: text(o, "fingerprint"),
                created: time(o, &path, "creationTimestamp")?,
                description: text(o, "description"),
                labels: labels(o),
                purpose: text(o, "loadBalancingScheme"),
                references: text(o, "target")
                    .and_then(|t| super::target_proxy::proxy_name(&t))
                    .into_iter()
                    .collect(),
                ..GcpResource::of(GcpKind::ForwardingRule, &scoped_name(o, short))
            })
        })
        .collect()
}

/// Why a forwarding rule is kept whatever the allowlist says: an internal one may be what a
/// route or a service attachment (neither listed) names; one of unknown scheme may be internal.
pub fn unlisted_referrers(scheme: Option<&str>) -> Option<String> {
    match scheme {
        Some(s) if s.starts_with("INTERNAL") => Some(format!(
            "load balancing scheme {s}: a route's next hop or a service attachment may name it, and neither is listed"
        )),
        Some(_) => None,
        // The API always says; a recorded file that does not proves nothing.
        None => Some("load balancing scheme unknown".to_string()),
    }
}

/// `REGION/NAME` → (Some(region), name); `NAME` → (None, name).
pub fn split(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((region, short)) => (Some(region), short),
        None => (None, name),
    }
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        match split(target.name) {
            (Some(region), short) => {
                compute_get!("forwardingRules.get", clients, ForwardingRules, set_forwarding_rule(short), region region)
            }
            (None, short) => compute_get!(
                "globalForwardingRules.get",
                clients,
                GlobalForwardingRules,
                set_forwarding_rule(short)
            ),
        }
    })
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    Box::pin(async move {
        let scheme = d.current.get("loadBalancingScheme").and_then(Value::as_str);
        if let Some(why) = unlisted_referrers(scheme) {
            return Ok(GcpDelete::Skipped(why));
        }
        let result = match split(d.name) {
            (Some(region), short) => compute_delete!(
                clients,
                ForwardingRules,
                set_forwarding_rule(short),
                region region
            ),
            (None, short) => {
                compute_delete!(clients, GlobalForwardingRules, set_forwarding_rule(short))
            }
        };
        compute_deleted(result)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_rules_are_read_from_every_shape_a_user_may_record() {
        let regional = json!({"name": "fr", "loadBalancingScheme": "EXTERNAL_MANAGED",
            "fingerprint": "abc=", "region":
            "https://www.googleapis.com/compute/v1/projects/p/regions/us-central1",
            "selfLink": "https://www.googleapis.com/compute/v1/projects/p/regions/us-central1/forwardingRules/fr"});
        let global = json!({"name": "web", "target": "t"});
        let rest = json!({"items": [regional.clone(), global.clone()]});
        let aggregated = json!({"items": {
            "regions/us-central1": {"forwardingRules": [regional.clone()]},
            "global": {"forwardingRules": [global.clone()]},
            "regions/europe-west1": {"warning": {"code": "NO_RESULTS_ON_PAGE"}}}});
        for body in [&rest, &json!([regional, global]), &aggregated] {
            let r = parse_forwarding_rules(body).unwrap();
            let names: Vec<_> = r.iter().map(|r| r.name.as_str()).collect();
            assert!(
                names.contains(&"us-central1/fr") && names.contains(&"web"),
                "{names:?}"
            );
            let fr = r.iter().find(|r| r.name == "us-central1/fr").unwrap();
            assert_eq!(fr.etag.as_deref(), Some("abc="));
            assert_eq!(
                fr.resource_name.as_deref(),
                Some("projects/p/regions/us-central1/forwardingRules/fr")
            );
            assert_eq!(fr.purpose.as_deref(), Some("EXTERNAL_MANAGED"));
        }
        assert_eq!(
            parse_forwarding_rules(&json!({"items": [{"target": "t"}]})).unwrap_err(),
            "items[0].name: missing"
        );
    }

    #[test]
    fn an_internal_forwarding_rule_is_never_proved_unused() {
        for scheme in ["INTERNAL", "INTERNAL_MANAGED", "INTERNAL_SELF_MANAGED"] {
            assert!(unlisted_referrers(Some(scheme)).is_some(), "{scheme}");
        }
        assert!(unlisted_referrers(Some("EXTERNAL_MANAGED")).is_none());
        assert!(unlisted_referrers(None).is_some(), "unknown: kept");
    }
}
