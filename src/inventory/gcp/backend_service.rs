//! Backend services (`gcp.backend_services`), global and regional: the fourth part of a load
//! balancer's chain. URL maps name them (anywhere in the map: default services, path and
//! route rules, weighted services, mirrors), so do TCP and SSL proxies (`service`) and
//! passthrough forwarding rules (`backendService`). A service is in use while a kept part
//! names it; one only orphan parts name is deleted after them. Without every one of those
//! files no service is unused.
//!
//! A service of scheme `INTERNAL_SELF_MANAGED` is always kept: Cloud Service Mesh routes
//! (Network Services' `HTTPRoute`, `GRPCRoute`, ...) name it and are not listed. Nor is a URL
//! map of another project that names a service here (cross-project service referencing):
//! such services belong in the allowlist (the guide says so).
//!
//! Named `NAME` or `REGION/NAME`; snapshot file `backendServices.json`.

use google_cloud_compute_v1::client::{BackendServices, RegionBackendServices};
use serde_json::Value;

use super::chain::{self, global_and_regional};
use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_live::{
    GcpClients, GcpDelete, compute_delete, compute_deleted, compute_get,
};
use crate::inventory::{GcpKind, GcpResource};

pub const FILE: &str = "backendServices.json";

pub static KIND: Kind = Kind {
    kind: GcpKind::BackendService,
    what: "backend services",
    audited: |p| p.backend_services.is_some(),
    allowed: |p| p.backend_services.as_ref().map(|a| a.allowed.as_slice()),
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
        "compute.urlMaps.list",
        "compute.backendServices.list",
    ],
    enforcer: &[
        "compute.backendServices.get",
        "compute.backendServices.delete",
        "compute.globalOperations.get",
        "compute.regionBackendServices.get",
        "compute.regionBackendServices.delete",
        "compute.regionOperations.get",
    ],
};

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let services = listed_services(clients).await;
        listed.store_body(KIND.what, FILE, services);
        let maps = super::url_map::listed_maps(clients).await;
        listed.store_body("URL maps", super::url_map::FILE, maps);
        let rules = super::forwarding_rule::listed_rules(clients).await;
        listed.store_body("forwarding rules", super::forwarding_rule::FILE, rules);
        super::target_proxy::list_proxies(clients, &mut listed).await;
        listed
    })
}

/// Every backend service, global and regional; the health checks read it too.
pub async fn listed_services(clients: &GcpClients) -> Result<Value, String> {
    global_and_regional!(
        clients,
        FILE,
        BackendServices,
        backend_services,
        "backendServices"
    )
}

/// Why a backend service is kept whatever names it: what may name it is not listed.
pub fn unlisted_referrers(scheme: Option<&str>) -> Option<String> {
    match scheme {
        Some("INTERNAL_SELF_MANAGED") => Some(
            "load balancing scheme INTERNAL_SELF_MANAGED: Cloud Service Mesh routes may name it, and they are not listed".to_string(),
        ),
        Some(_) => None,
        None => Some("load balancing scheme unknown".to_string()),
    }
}

/// The services of `body`, each with what keeps it that no listed part shows.
pub fn parse_services(body: &Value) -> Result<Vec<GcpResource>, String> {
    chain::parse_parts(GcpKind::BackendService, body, "backendServices", |s, o| {
        s.purpose = crate::inventory::gcp_common::text(o, "loadBalancingScheme");
        s.used_by.extend(unlisted_referrers(s.purpose.as_deref()));
    })
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    let Some(mut services) = parse_file(files, FILE, parse_services)? else {
        return Ok(None);
    };
    const COLL: &str = "backendServices";
    let maps = chain::named_in(
        files,
        super::url_map::FILE,
        "urlMaps",
        COLL,
        &super::forwarding_rule::scoped_name,
        &chain::everything,
    )?;
    match maps {
        Some(named) => chain::refer(&mut services, GcpKind::UrlMap, &named),
        None => chain::unproven(&mut services, "URL maps", super::url_map::FILE),
    }
    match chain::proxies_naming(files, COLL, &["ssl", "tcp"], "service")? {
        Ok(named) => chain::refer(&mut services, GcpKind::TargetProxy, &named),
        Err(file) => chain::unproven(&mut services, "target proxies", &file),
    }
    let rules = chain::named_in(
        files,
        super::forwarding_rule::FILE,
        "forwardingRules",
        COLL,
        &super::forwarding_rule::scoped_name,
        &|o| chain::field_of(o, "backendService"),
    )?;
    match rules {
        Some(named) => chain::refer(&mut services, GcpKind::ForwardingRule, &named),
        None => chain::unproven(
            &mut services,
            "forwarding rules",
            super::forwarding_rule::FILE,
        ),
    }
    Ok(Some(services))
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        match super::forwarding_rule::split(target.name) {
            (Some(r), n) => compute_get!(
                "regionBackendServices.get",
                clients,
                RegionBackendServices,
                set_backend_service(n),
                region r
            ),
            (None, n) => compute_get!(
                "backendServices.get",
                clients,
                BackendServices,
                set_backend_service(n)
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
        let result = match super::forwarding_rule::split(d.name) {
            (Some(r), n) => compute_delete!(
                clients,
                RegionBackendServices,
                set_backend_service(n),
                region r
            ),
            (None, n) => compute_delete!(clients, BackendServices, set_backend_service(n)),
        };
        compute_deleted(result)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::gcp::chain::by_name;
    use serde_json::json;
    use std::collections::BTreeMap;

    const H: &str = "https://www.googleapis.com/compute/v1/projects/p";

    fn files() -> BTreeMap<String, Value> {
        let mut files = BTreeMap::new();
        files.insert(
            FILE.to_string(),
            json!({"items": [
                {"name": "web", "loadBalancingScheme": "EXTERNAL_MANAGED"},
                {"name": "tcp", "loadBalancingScheme": "EXTERNAL_MANAGED"},
                {"name": "ilb", "loadBalancingScheme": "INTERNAL",
                    "region": format!("{H}/regions/r")},
                {"name": "mesh", "loadBalancingScheme": "INTERNAL_SELF_MANAGED"},
                {"name": "lonely", "loadBalancingScheme": "EXTERNAL_MANAGED"}]}),
        );
        for (_, _, global, regional) in super::super::target_proxy::TYPES {
            for f in std::iter::once(*global).chain(*regional) {
                files.insert(f.to_string(), json!({"items": []}));
            }
        }
        files.insert(
            super::super::url_map::FILE.to_string(),
            json!({"items": [{"name": "m", "pathMatchers": [{"pathRules": [
                {"service": format!("{H}/global/backendServices/web")}]}]}]}),
        );
        files.insert(
            "targetTcpProxies.json".to_string(),
            json!({"items": [{"name": "t", "service": format!("{H}/global/backendServices/tcp")}]}),
        );
        files.insert(
            super::super::forwarding_rule::FILE.to_string(),
            json!({"items": [{"name": "fr", "region": format!("{H}/regions/r"),
                "backendService": format!("{H}/regions/r/backendServices/ilb")}]}),
        );
        files
    }

    #[test]
    fn a_backend_service_knows_every_part_that_names_it() {
        let s = parse(&files()).unwrap().unwrap();
        let referrer = |n: &str| {
            let r = &by_name(&s, n).referrers[0];
            (r.kind, r.name.clone())
        };
        assert_eq!(referrer("web"), (GcpKind::UrlMap, "m".to_string()));
        assert_eq!(referrer("tcp"), (GcpKind::TargetProxy, "tcp/t".to_string()));
        assert_eq!(
            referrer("r/ilb"),
            (GcpKind::ForwardingRule, "r/fr".to_string())
        );
        assert!(by_name(&s, "mesh").used_by[0].contains("Service Mesh"));
        let lonely = by_name(&s, "lonely");
        assert!(lonely.referrers.is_empty() && lonely.used_by.is_empty());
    }

    #[test]
    fn no_backend_service_is_unused_without_every_file_that_could_name_it() {
        for missing in [
            super::super::url_map::FILE,
            super::super::forwarding_rule::FILE,
            "regionTargetTcpProxies.json",
        ] {
            let mut files = files();
            files.remove(missing);
            let s = parse(&files).unwrap().unwrap();
            assert!(
                !by_name(&s, "lonely").used_by.is_empty(),
                "{missing} absent: kept"
            );
        }
        assert!(unlisted_referrers(None).is_some(), "unknown scheme: kept");
    }
}
