//! URL maps (`gcp.url_maps`), global and regional: the third part of a load balancer's
//! chain. HTTP(S) target proxies name a URL map (`urlMap`); it is in use while a kept proxy
//! names it, and one only orphan proxies name is deleted after them. A gRPC proxy (Cloud
//! Service Mesh) names URL maps too: gRPC proxies are listed but not audited, so a map one
//! names is always kept. Without the proxies' files no map is unused.
//!
//! Named `NAME` or `REGION/NAME`; snapshot file `urlMaps.json` (global and regional items),
//! with `targetGrpcProxies.json` and the proxies' files.

use google_cloud_compute_v1::client::{RegionUrlMaps, TargetGrpcProxies, UrlMaps};
use serde_json::{Value, json};

use super::chain::{self, global_and_regional};
use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_live::{
    COMPUTE, GcpClients, GcpDelete, client, compute_delete, compute_deleted, compute_get,
    compute_list,
};
use crate::inventory::{GcpKind, GcpResource};

pub const FILE: &str = "urlMaps.json";

/// gRPC proxies, read for the URL maps they name.
pub const GRPC_PROXIES: &str = "targetGrpcProxies.json";

pub static KIND: Kind = Kind {
    kind: GcpKind::UrlMap,
    what: "URL maps",
    audited: |p| p.url_maps.is_some(),
    allowed: |p| p.url_maps.as_ref().map(|a| a.allowed.as_slice()),
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
        "compute.targetHttpProxies.list",
        "compute.targetHttpsProxies.list",
        "compute.targetSslProxies.list",
        "compute.targetTcpProxies.list",
        "compute.targetGrpcProxies.list",
        "compute.urlMaps.list",
    ],
    enforcer: &[
        "compute.urlMaps.get",
        "compute.urlMaps.delete",
        "compute.globalOperations.get",
        "compute.regionUrlMaps.get",
        "compute.regionUrlMaps.delete",
        "compute.regionOperations.get",
    ],
};

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let maps = listed_maps(clients).await;
        listed.store_body(KIND.what, FILE, maps);
        super::target_proxy::list_proxies(clients, &mut listed).await;
        let grpc = clients
            .shared_list(GRPC_PROXIES, || async {
                let c = client!(clients, TargetGrpcProxies, COMPUTE)?;
                compute_list!(c, clients.project.clone(), "targetGrpcProxies.list")
                    .map(|i| json!({"items": i}))
            })
            .await;
        listed.store_body("gRPC proxies", GRPC_PROXIES, grpc);
        listed
    })
}

/// Every URL map, global and regional; the backend services and buckets read it too.
pub async fn listed_maps(clients: &GcpClients) -> Result<Value, String> {
    global_and_regional!(clients, FILE, UrlMaps, url_maps, "urlMaps")
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    let Some(mut maps) = parse_file(files, FILE, |b| {
        chain::parse_parts(GcpKind::UrlMap, b, "urlMaps", chain::nothing_more)
    })?
    else {
        return Ok(None);
    };
    match chain::proxies_naming(files, "urlMaps", &["http", "https"], "urlMap")? {
        Ok(named) => chain::refer(&mut maps, GcpKind::TargetProxy, &named),
        Err(file) => chain::unproven(&mut maps, "target proxies", &file),
    }
    let grpc = chain::named_in(
        files,
        GRPC_PROXIES,
        "targetGrpcProxies",
        "urlMaps",
        &|_, short| short.to_string(),
        &|o| chain::field_of(o, "urlMap"),
    )?;
    match grpc {
        Some(named) => chain::used(&mut maps, "gRPC proxy", &named),
        None => chain::unproven(&mut maps, "gRPC proxies", GRPC_PROXIES),
    }
    Ok(Some(maps))
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        match super::forwarding_rule::split(target.name) {
            (Some(r), n) => {
                compute_get!("regionUrlMaps.get", clients, RegionUrlMaps, set_url_map(n), region r)
            }
            (None, n) => compute_get!("urlMaps.get", clients, UrlMaps, set_url_map(n)),
        }
    })
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    Box::pin(async move {
        // A proxy that names it since the audit makes the API refuse
        // (`resourceInUseByAnotherResource`): a skip, not a failure.
        let result = match super::forwarding_rule::split(d.name) {
            (Some(r), n) => compute_delete!(clients, RegionUrlMaps, set_url_map(n), region r),
            (None, n) => compute_delete!(clients, UrlMaps, set_url_map(n)),
        };
        compute_deleted(result)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::gcp::chain::by_name;
    use std::collections::BTreeMap;

    const H: &str = "https://www.googleapis.com/compute/v1/projects/p";

    fn files() -> BTreeMap<String, Value> {
        let mut files = BTreeMap::new();
        files.insert(
            FILE.to_string(),
            json!({"items": [{"name": "web"}, {"name": "mesh"}, {"name": "lonely"},
                {"name": "web", "region": format!("{H}/regions/us-central1")}]}),
        );
        for (_, _, global, regional) in super::super::target_proxy::TYPES {
            for f in std::iter::once(*global).chain(*regional) {
                files.insert(f.to_string(), json!({"items": []}));
            }
        }
        files.insert(
            "targetHttpsProxies.json".to_string(),
            json!({"items": [{"name": "p", "urlMap": format!("{H}/global/urlMaps/web")}]}),
        );
        files.insert(
            "regionTargetHttpProxies.json".to_string(),
            json!({"items": [{"name": "rp", "region": format!("{H}/regions/us-central1"),
                "urlMap": format!("{H}/regions/us-central1/urlMaps/web")}]}),
        );
        files.insert(
            GRPC_PROXIES.to_string(),
            json!({"items": [{"name": "g", "urlMap": format!("{H}/global/urlMaps/mesh")}]}),
        );
        files
    }

    #[test]
    fn a_url_map_knows_the_proxies_that_name_it() {
        let maps = parse(&files()).unwrap().unwrap();
        assert_eq!(by_name(&maps, "web").referrers[0].name, "https/p");
        assert_eq!(
            by_name(&maps, "us-central1/web").referrers[0].name,
            "us-central1/http/rp"
        );
        assert_eq!(by_name(&maps, "mesh").used_by, ["gRPC proxy g"]);
        let lonely = by_name(&maps, "lonely");
        assert!(lonely.referrers.is_empty() && lonely.used_by.is_empty());
    }

    #[test]
    fn no_url_map_is_unused_without_every_file_that_could_name_it() {
        for missing in [GRPC_PROXIES, "regionTargetHttpsProxies.json"] {
            let mut files = files();
            files.remove(missing);
            let maps = parse(&files).unwrap().unwrap();
            assert!(
                !by_name(&maps, "lonely").used_by.is_empty(),
                "{missing} absent: kept"
            );
        }
    }
}
