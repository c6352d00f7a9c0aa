//! Cloud Storage buckets (`gcp.buckets`), through the Cloud Storage JSON API (the official
//! bucket client is gRPC-only). A bucket's emptiness comes from an objects list when one was
//! read (`objects/<bucket>.json`); otherwise it is unknown and enforce checks it before
//! deleting. Only an empty bucket is deleted unless the policy says otherwise, never one with
//! a locked retention policy.

use serde_json::{Value, json};

use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_common::{items, labels, required, text, time};
use crate::inventory::gcp_live::{GcpClients, GcpDelete};
use crate::inventory::{GcpKind, GcpResource};
use crate::policy::GcpPolicy;

pub const FILE: &str = "buckets.json";

pub static KIND: Kind = Kind {
    kind: GcpKind::Bucket,
    what: "buckets",
    audited: |p| p.buckets.is_some(),
    allowed: |p| p.buckets.as_ref().map(|b| b.allowed.as_slice()),
    floor: &[
        "*_cloudbuild",
        "artifacts.*",
        "*.appspot.com",
        "gcf-*",
        "run-sources-*",
    ],
    list,
    parse,
    current,
    delete,
    // A bucket's id is its name.
    reverify: Reverify {
        id: None,
        created: Some("timeCreated"),
    },
    auditor: &["storage.buckets.list", "storage.objects.list"],
    enforcer: &[
        "storage.buckets.get",
        "storage.buckets.delete",
        "storage.objects.delete",
    ],
};

/// The objects list of one bucket, as a snapshot stores it.
fn objects_file(bucket: &str) -> String {
    format!("objects/{bucket}.json")
}

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        read_buckets(clients, &mut listed).await;
        listed
    })
}

/// Every page of the bucket list, then one object of each bucket (enough to know it is not
/// empty; unknown stays unknown).
async fn read_buckets(clients: &GcpClients, listed: &mut Listed) {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = format!("/storage/v1/b?project={}&maxResults=500", clients.project);
        if let Some(t) = &token {
            path.push_str(&format!("&pageToken={t}"));
        }
        match clients.storage_get(&path).await {
            Ok(page) => {
                if let Some(Value::Array(got)) = page.get("items") {
                    items.extend(got.iter().cloned());
                }
                token = page
                    .get("nextPageToken")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            Err(e) => return listed.failed.push((KIND.what.to_string(), e)),
        }
    }
    let body = json!({ "items": items });
    let names: Vec<String> = match parse_buckets(&body) {
        Ok(b) => b.into_iter().map(|b| b.name).collect(),
        Err(e) => return listed.failed.push((KIND.what.to_string(), e)),
    };
    listed.files.insert(FILE.to_string(), body);
    for name in names {
        let path = format!("/storage/v1/b/{name}/o?maxResults=1");
        match clients.storage_get(&path).await {
            Ok(objects) if objects_list_is_empty(&objects).is_ok() => {
                listed.files.insert(objects_file(&name), objects);
            }
            Ok(_) => tracing::warn!(bucket = %name, "bucket contents not understood"),
            Err(e) => tracing::warn!(bucket = %name, error = %e, "bucket contents not read"),
        }
    }
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    let Some(mut buckets) = parse_file(files, FILE, parse_buckets)? else {
        return Ok(None);
    };
    for bucket in &mut buckets {
        if let Some(empty) = parse_file(files, &objects_file(&bucket.name), objects_list_is_empty)?
        {
            bucket.empty = Some(empty);
        }
    }
    Ok(Some(buckets))
}

/// A `storage#buckets` response.
pub fn parse_buckets(body: &Value) -> Result<Vec<GcpResource>, String> {
    items(body, "items")?
        .into_iter()
        .map(|(path, o)| {
            Ok(GcpResource {
                id: text(o, "id"),
                self_link: text(o, "selfLink"),
                etag: text(o, "etag").or_else(|| text(o, "metageneration")),
                created: time(o, &path, "timeCreated")?,
                labels: labels(o),
                retention_locked: o
                    .get("retentionPolicy")
                    .and_then(|r| r.get("isLocked"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                ..GcpResource::of(GcpKind::Bucket, required(o, &path, "name")?)
            })
        })
        .collect()
}

/// A `storage#objects` response for one bucket: true when it lists no object.
pub fn objects_list_is_empty(body: &Value) -> Result<bool, String> {
    Ok(items(body, "items")?.is_empty()
        && body
            .get("prefixes")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty))
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        match clients
            .storage_get(&format!("/storage/v1/b/{}", target.name))
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.contains("404") => Ok(None),
            Err(e) => Err(e),
        }
    })
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    Box::pin(delete_bucket(clients, d.name, d.current, d.policy))
}

/// Only an empty bucket, unless `delete_non_empty`; never one with a locked retention.
async fn delete_bucket(
    clients: &GcpClients,
    name: &str,
    current: &Value,
    policy: &GcpPolicy,
) -> Result<GcpDelete, String> {
    if current
        .pointer("/retentionPolicy/isLocked")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Ok(GcpDelete::Skipped(
            "its retention policy is locked".to_string(),
        ));
    }
    let delete_non_empty = policy.buckets.as_ref().is_some_and(|b| b.delete_non_empty);
    let objects = clients
        .storage_get(&format!("/storage/v1/b/{name}/o?maxResults=1"))
        .await?;
    let empty = objects_list_is_empty(&objects)?;
    let mut note = None;
    if !empty {
        if !delete_non_empty {
            return Ok(GcpDelete::Skipped(
                "not empty (set `gcp.buckets.delete_non_empty` to delete its objects too)"
                    .to_string(),
            ));
        }
        let count = empty_bucket(clients, name).await?;
        note = Some(format!(
            "{count} objects deleted first; object data is not backed up"
        ));
    }
    match clients
        .storage_send(reqwest::Method::DELETE, &format!("/storage/v1/b/{name}"))
        .await?
    {
        200..=299 => Ok(GcpDelete::Deleted(note)),
        404 => Ok(GcpDelete::AlreadyGone),
        409 | 412 => Ok(GcpDelete::Skipped(
            "not empty: objects were written since".to_string(),
        )),
        status => Err(format!("deleting bucket {name}: HTTP {status}")),
    }
}

async fn empty_bucket(clients: &GcpClients, name: &str) -> Result<usize, String> {
    let mut count = 0;
    loop {
        let page = clients
            .storage_get(&format!("/storage/v1/b/{name}/o?maxResults=1000"))
            .await?;
        let items: Vec<String> = page
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        if items.is_empty() {
            return Ok(count);
        }
        for object in items {
            let encoded: String = crate::inventory::url_encode(&object);
            match clients
                .storage_send(
                    reqwest::Method::DELETE,
                    &format!("/storage/v1/b/{name}/o/{encoded}"),
                )
                .await?
            {
                200..=299 | 404 => count += 1,
                status => {
                    return Err(format!("deleting object {object} of {name}: HTTP {status}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_locked_retention() {
        let list = json!({"items": [{"name": "b", "timeCreated": "2025-01-01T00:00:00.000Z",
            "retentionPolicy": {"retentionPeriod": "86400", "isLocked": true}}]});
        assert!(parse_buckets(&list).unwrap()[0].retention_locked);
        assert!(objects_list_is_empty(&json!({"kind": "storage#objects"})).unwrap());
        assert!(!objects_list_is_empty(&json!({"items": [{"name": "o"}]})).unwrap());
    }
}
