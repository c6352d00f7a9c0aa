//! Target proxies (`gcp.target_proxies`): HTTP, HTTPS, SSL and TCP, global and regional (HTTP,
//! HTTPS, TCP), the second part of a load balancer's chain. A proxy is named by forwarding
//! rules (`target`); it is in use while a kept forwarding rule names it, and an orphan
//! forwarding rule's proxy is deleted after it (`plan` orders the chain top-down, and enforce
//! deletes a proxy only once every orphan rule naming it is gone). Without the forwarding
//! rules (a failed list, a snapshot without `forwardingRules.json`) no proxy is unused.
//!
//! A proxy is named `TYPE/NAME` (`https/web`) or, regional, `REGION/TYPE/NAME`: each type is its
//! own collection, so a name is unique only within its type (and region). Snapshot files: the
//! global lists `targetHttpProxies.json`, `targetHttpsProxies.json`, `targetSslProxies.json`,
//! `targetTcpProxies.json` (the HTTPS and SSL ones shared with the certificates, read once),
//! and the regional ones `regionTargetHttpProxies.json`, `regionTargetHttpsProxies.json`,
//! `regionTargetTcpProxies.json` (from the aggregated lists).

use google_cloud_compute_v1::client::{
    RegionTargetHttpProxies, RegionTargetHttpsProxies, RegionTargetTcpProxies, TargetHttpProxies,
    TargetHttpsProxies, TargetSslProxies, TargetTcpProxies,
};
use serde_json::{Value, json};

use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_common::{labels, required, scoped_items, short_name, text, time};
use crate::inventory::gcp_live::{
    COMPUTE, GcpClients, GcpDelete, aggregated_list, client, compute_delete, compute_deleted,
    compute_get, compute_list,
};
use crate::inventory::{GcpKind, GcpResource, Referrer};

/// The proxy types: the name's `TYPE`, the collection in links, and the snapshot files of the
/// global and the regional list (`None`: the type has no regional proxies).
pub const TYPES: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "http",
        "targetHttpProxies",
        "targetHttpProxies.json",
        Some("regionTargetHttpProxies.json"),
    ),
    (
        "https",
        "targetHttpsProxies",
        super::ssl_certificate::HTTPS_PROXIES,
        Some("regionTargetHttpsProxies.json"),
    ),
    (
        "ssl",
        "targetSslProxies",
        super::ssl_certificate::SSL_PROXIES,
        None,
    ),
    (
        "tcp",
        "targetTcpProxies",
        "targetTcpProxies.json",
        Some("regionTargetTcpProxies.json"),
    ),
];

pub static KIND: Kind = Kind {
    kind: GcpKind::TargetProxy,
    what: "target proxies",
    audited: |p| p.target_proxies.is_some(),
    allowed: |p| p.target_proxies.as_ref().map(|a| a.allowed.as_slice()),
    floor: super::forwarding_rule::FLOOR,
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
        "compute.targetHttpProxies.list",
        "compute.targetHttpsProxies.list",
        "compute.targetSslProxies.list",
        "compute.targetTcpProxies.list",
    ],
    enforcer: &[
        "compute.targetHttpProxies.get",
        "compute.targetHttpProxies.delete",
        "compute.targetHttpsProxies.get",
        "compute.targetHttpsProxies.delete",
        "compute.targetSslProxies.get",
        "compute.targetSslProxies.delete",
        "compute.targetTcpProxies.get",
        "compute.targetTcpProxies.delete",
        "compute.globalOperations.get",
        "compute.regionTargetHttpProxies.get",
        "compute.regionTargetHttpProxies.delete",
        "compute.regionTargetHttpsProxies.get",
        "compute.regionTargetHttpsProxies.delete",
        "compute.regionTargetTcpProxies.get",
        "compute.regionTargetTcpProxies.delete",
        "compute.regionOperations.get",
    ],
};

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let rules = super::forwarding_rule::listed_rules(clients).await;
        listed.store_body("forwarding rules", super::forwarding_rule::FILE, rules);
        list_proxies(clients, &mut listed).await;
        listed
    })
}

/// Every proxy file (each type, global and regional), each list read once per run: the URL
/// maps and backend services below the proxies read them too.
pub async fn list_proxies(clients: &GcpClients, listed: &mut Listed) {
    // The HTTPS and SSL ones, read once with the certificates' kinds.
    super::ssl_certificate::proxies(clients, listed).await;
    let p = &clients.project;
    let http = clients
        .shared_list("targetHttpProxies.json", || async {
            let c = client!(clients, TargetHttpProxies, COMPUTE)?;
            compute_list!(c, p.clone(), "targetHttpProxies.list").map(|i| json!({"items": i}))
        })
        .await;
    let tcp = clients
        .shared_list("targetTcpProxies.json", || async {
            let c = client!(clients, TargetTcpProxies, COMPUTE)?;
            compute_list!(c, p.clone(), "targetTcpProxies.list").map(|i| json!({"items": i}))
        })
        .await;
    let regional_http = clients
        .shared_list("regionTargetHttpProxies.json", || async {
            let c = client!(clients, TargetHttpProxies, COMPUTE)?;
            aggregated_list!(
                c,
                p,
                "targetHttpProxies.aggregatedList",
                "regions/",
                target_http_proxies
            )
            .map(|i| json!({"items": i}))
        })
        .await;
    let regional_https = clients
        .shared_list("regionTargetHttpsProxies.json", || async {
            let c = client!(clients, TargetHttpsProxies, COMPUTE)?;
            aggregated_list!(
                c,
                p,
                "targetHttpsProxies.aggregatedList",
                "regions/",
                target_https_proxies
            )
            .map(|i| json!({"items": i}))
        })
        .await;
    let regional_tcp = clients
        .shared_list("regionTargetTcpProxies.json", || async {
            let c = client!(clients, TargetTcpProxies, COMPUTE)?;
            aggregated_list!(
                c,
                p,
                "targetTcpProxies.aggregatedList",
                "regions/",
                target_tcp_proxies
            )
            .map(|i| json!({"items": i}))
        })
        .await;
    for (file, body) in [
        ("targetHttpProxies.json", http),
        ("targetTcpProxies.json", tcp),
        ("regionTargetHttpProxies.json", regional_http),
        ("regionTargetHttpsProxies.json", regional_https),
        ("regionTargetTcpProxies.json", regional_tcp),
    ] {
        listed.store_body(KIND.what, file, body);
    }
}

/// What a compute link names: `(Some(region) | None, collection, name)`.
pub fn link_parts(link: &str) -> Option<(Option<&str>, &str, &str)> {
    let path = &link[link.find("projects/")?..];
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["projects", _, "global", coll, name] => Some((None, coll, name)),
        ["projects", _, "regions", region, coll, name] => Some((Some(region), coll, name)),
        _ => None,
    }
}

/// The report name of the proxy a forwarding rule's `target` names; `None` when the target
/// is no proxy of ours (a target pool, an instance, a gRPC proxy, a service attachment).
pub fn proxy_name(target: &str) -> Option<String> {
    let (region, coll, name) = link_parts(target)?;
    let ty = TYPES.iter().find(|t| t.1 == coll)?.0;
    Some(match region {
        Some(r) => format!("{r}/{ty}/{name}"),
        None => format!("{ty}/{name}"),
    })
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    let mut proxies = Vec::new();
    let mut any = false;
    for (ty, _, global, regional) in TYPES {
        for file in std::iter::once(*global).chain(*regional) {
            if let Some(mut found) = parse_file(files, file, |b| parse_proxies(ty, b))? {
                any = true;
                proxies.append(&mut found);
            }
        }
    }
    if !any {
        return Ok(None);
    }
    let rules = parse_file(
        files,
        super::forwarding_rule::FILE,
        super::forwarding_rule::parse_forwarding_rules,
    )?;
    match rules {
        Some(rules) => {
            for rule in rules {
                let Some(target) = rule.references.first() else {
                    continue;
                };
                for p in proxies.iter_mut().filter(|p| &p.name == target) {
                    p.referrers.push(Referrer {
                        kind: GcpKind::ForwardingRule,
                        name: rule.name.clone(),
                    });
                }
            }
        }
        // Nothing proves a proxy unused without the rules that could name it.
        None => {
            for p in &mut proxies {
                p.used_by = vec![format!(
                    "forwarding rules (not recorded: {})",
                    super::forwarding_rule::FILE
                )];
            }
        }
    }
    Ok(Some(proxies))
}

/// The proxies of one type in a list body, an aggregated body or gcloud's array, named
/// `[REGION/]TYPE/NAME`.
pub fn parse_proxies(ty: &str, body: &Value) -> Result<Vec<GcpResource>, String> {
    let field = TYPES.iter().find(|t| t.0 == ty).map_or("items", |t| t.1);
    scoped_items(body, field)?
        .into_iter()
        .map(|(path, o)| {
            let short = required(o, &path, "name")?;
            let name = report_name(ty, o, short);
            Ok(GcpResource {
                id: text(o, "id"),
                self_link: text(o, "selfLink"),
                resource_name: super::forwarding_rule::resource_name(o),
                etag: text(o, "fingerprint"),
                created: time(o, &path, "creationTimestamp")?,
                description: text(o, "description"),
                labels: labels(o),
                ..GcpResource::of(GcpKind::TargetProxy, &name)
            })
        })
        .collect()
}

/// A proxy's report name, `[REGION/]TYPE/NAME`.
pub fn report_name(ty: &str, o: &serde_json::Map<String, Value>, short: &str) -> String {
    match text(o, "region") {
        Some(r) => format!("{}/{ty}/{short}", short_name(&r)),
        None => format!("{ty}/{short}"),
    }
}

/// `[REGION/]TYPE/NAME` → (region, type, name).
pub fn split(name: &str) -> Result<(Option<&str>, &str, &str), String> {
    let parts: Vec<&str> = name.split('/').collect();
    let (region, ty, short) = match parts.as_slice() {
        [ty, short] => (None, *ty, *short),
        [region, ty, short] => (Some(*region), *ty, *short),
        _ => {
            return Err(format!(
                "target proxy `{name}` is not named [REGION/]TYPE/NAME"
            ));
        }
    };
    if !TYPES.iter().any(|t| t.0 == ty) {
        return Err(format!("target proxy `{name}`: unknown type `{ty}`"));
    }
    Ok((region, ty, short))
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        match split(target.name)? {
            (None, "http", n) => compute_get!(
                "targetHttpProxies.get",
                clients,
                TargetHttpProxies,
                set_target_http_proxy(n)
            ),
            (None, "https", n) => compute_get!(
                "targetHttpsProxies.get",
                clients,
                TargetHttpsProxies,
                set_target_https_proxy(n)
            ),
            (None, "ssl", n) => compute_get!(
                "targetSslProxies.get",
                clients,
                TargetSslProxies,
                set_target_ssl_proxy(n)
            ),
            (None, _, n) => compute_get!(
                "targetTcpProxies.get",
                clients,
                TargetTcpProxies,
                set_target_tcp_proxy(n)
            ),
            (Some(r), "http", n) => {
                compute_get!("regionTargetHttpProxies.get", clients, RegionTargetHttpProxies, set_target_http_proxy(n), region r)
            }
            (Some(r), "https", n) => {
                compute_get!("regionTargetHttpsProxies.get", clients, RegionTargetHttpsProxies, set_target_https_proxy(n), region r)
            }
            (Some(r), "tcp", n) => {
                compute_get!("regionTargetTcpProxies.get", clients, RegionTargetTcpProxies, set_target_tcp_proxy(n), region r)
            }
            (Some(_), ty, _) => Err(format!("no regional target proxies of type `{ty}`")),
        }
    })
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    Box::pin(async move {
        // The API refuses to delete a proxy a forwarding rule still names
        // (`resourceInUseByAnotherResource`): that is a skip, not a failure.
        let result = match split(d.name)? {
            (None, "http", n) => {
                compute_delete!(clients, TargetHttpProxies, set_target_http_proxy(n))
            }
            (None, "https", n) => {
                compute_delete!(clients, TargetHttpsProxies, set_target_https_proxy(n))
            }
            (None, "ssl", n) => compute_delete!(clients, TargetSslProxies, set_target_ssl_proxy(n)),
            (None, _, n) => compute_delete!(clients, TargetTcpProxies, set_target_tcp_proxy(n)),
            (Some(r), "http", n) => compute_delete!(
                clients,
                RegionTargetHttpProxies,
                set_target_http_proxy(n),
                region r
            ),
            (Some(r), "https", n) => compute_delete!(
                clients,
                RegionTargetHttpsProxies,
                set_target_https_proxy(n),
                region r
            ),
            (Some(r), "tcp", n) => compute_delete!(
                clients,
                RegionTargetTcpProxies,
                set_target_tcp_proxy(n),
                region r
            ),
            (Some(_), ty, _) => return Err(format!("no regional target proxies of type `{ty}`")),
        };
        compute_deleted(result)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_forwarding_rules_target_names_its_proxy_by_type_and_region() {
        let h = "https://www.googleapis.com/compute/v1/projects/p";
        assert_eq!(
            proxy_name(&format!("{h}/global/targetHttpsProxies/web")).as_deref(),
            Some("https/web")
        );
        assert_eq!(
            proxy_name(&format!("{h}/regions/us-central1/targetTcpProxies/t")).as_deref(),
            Some("us-central1/tcp/t")
        );
        assert_eq!(proxy_name(&format!("{h}/regions/r/targetPools/pool")), None);
        assert_eq!(
            split("us-central1/https/web").unwrap(),
            (Some("us-central1"), "https", "web")
        );
        assert!(split("grpc/x").is_err());
        assert!(split("web").is_err());
    }

    #[test]
    fn proxies_are_named_by_type_and_kept_without_the_forwarding_rules() {
        let mut files = std::collections::BTreeMap::new();
        files.insert(
            "regionTargetHttpsProxies.json".to_string(),
            json!({"items": {"regions/us-central1": {"targetHttpsProxies": [{"name": "a",
                "region": "https://www.googleapis.com/compute/v1/projects/p/regions/us-central1"}]}}}),
        );
        files.insert(
            "targetHttpProxies.json".to_string(),
            json!({"items": [{"name": "b"}]}),
        );
        let proxies = parse(&files).unwrap().unwrap();
        let names: Vec<_> = proxies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["http/b", "us-central1/https/a"]);
        assert!(
            proxies.iter().all(|p| !p.used_by.is_empty()),
            "no forwarding rules recorded: every proxy in use"
        );
        files.insert(
            super::super::forwarding_rule::FILE.to_string(),
            json!({"items": [{"name": "fr", "target":
                "https://www.googleapis.com/compute/v1/projects/p/global/targetHttpProxies/b"}]}),
        );
        let proxies = parse(&files).unwrap().unwrap();
        assert!(proxies.iter().all(|p| p.used_by.is_empty()));
        assert_eq!(proxies[0].referrers[0].name, "fr");
        assert!(proxies[1].referrers.is_empty());
        assert!(parse(&std::collections::BTreeMap::new()).unwrap().is_none());
    }
}
