//! Backend buckets (`gcp.backend_buckets`): a Cloud Storage bucket served through a load
//! balancer, named by URL maps (anywhere in the map). Global ones only (regional backend
//! buckets are not listed, so none is deleted). A backend bucket is in use while a kept URL map
//! names it; one only orphan maps name is deleted after them, and without the URL maps'
//! file none is unused. Deleting one leaves its Cloud Storage bucket alone.
//!
//! Snapshot file `backendBuckets.json`.

use google_cloud_compute_v1::client::BackendBuckets;
use serde_json::{Value, json};

use super::chain;
use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_live::{
    COMPUTE, GcpClients, GcpDelete, client, compute_delete, compute_deleted, compute_get,
    compute_list,
};
use crate::inventory::{GcpKind, GcpResource};

pub const FILE: &str = "backendBuckets.json";

pub static KIND: Kind = Kind {
    kind: GcpKind::BackendBucket,
    what: "backend buckets",
    audited: |p| p.backend_buckets.is_some(),
    allowed: |p| p.backend_buckets.as_ref().map(|a| a.allowed.as_slice()),
    floor: super::forwarding_rule::FLOOR,
    list,
    parse,
    current,
    delete,
    reverify: Reverify {
        id: Some("id"),
        created: Some("creationTimestamp"),
    },
    auditor: &["compute.urlMaps.list", "compute.backendBuckets.list"],
    enforcer: &[
        "compute.backendBuckets.get",
        "compute.backendBuckets.delete",
        "compute.globalOperations.get",
    ],
};

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let buckets = async {
            let c = client!(clients, BackendBuckets, COMPUTE)?;
            compute_list!(c, clients.project.clone(), "backendBuckets.list")
                .map(|i| json!({"items": i}))
        }
        .await;
        listed.store_body(KIND.what, FILE, buckets);
        let maps = super::url_map::listed_maps(clients).await;
        listed.store_body("URL maps", super::url_map::FILE, maps);
        listed
    })
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    let Some(mut buckets) = parse_file(files, FILE, |b| {
        chain::parse_parts(
            GcpKind::BackendBucket,
            b,
            "backendBuckets",
            chain::nothing_more,
        )
    })?
    else {
        return Ok(None);
    };
    let maps = chain::named_in(
        files,
        super::url_map::FILE,
        "urlMaps",
        "backendBuckets",
        &super::forwarding_rule::scoped_name,
        &chain::everything,
    )?;
    match maps {
        Some(named) => chain::refer(&mut buckets, GcpKind::UrlMap, &named),
        None => chain::unproven(&mut buckets, "URL maps", super::url_map::FILE),
    }
    Ok(Some(buckets))
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        compute_get!(
            "backendBuckets.get",
            clients,
            BackendBuckets,
            set_backend_bucket(target.name)
        )
    })
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    Box::pin(async move {
        compute_deleted(compute_delete!(
            clients,
            BackendBuckets,
            set_backend_bucket(d.name)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_backend_bucket_is_kept_by_the_url_maps_naming_it_and_without_them() {
        let h = "https://www.googleapis.com/compute/v1/projects/p";
        let mut files = BTreeMap::new();
        files.insert(
            FILE.to_string(),
            json!({"items": [{"name": "assets"}, {"name": "lonely"}]}),
        );
        let buckets = parse(&files).unwrap().unwrap();
        assert!(
            buckets.iter().all(|b| !b.used_by.is_empty()),
            "no URL maps: kept"
        );
        files.insert(
            super::super::url_map::FILE.to_string(),
            json!({"items": [{"name": "m", "defaultService": format!("{h}/global/backendBuckets/assets")}]}),
        );
        let buckets = parse(&files).unwrap().unwrap();
        assert_eq!(buckets[0].referrers[0].name, "m");
        assert!(buckets[1].referrers.is_empty() && buckets[1].used_by.is_empty());
    }
}
