//! Cloud Logging sinks (`gcp.log_sinks`): a sink outside the allowlist routes the project's
//! logs somewhere the repository does not know, so it is an orphan. `_Default` and
//! `_Required` are the project's own (the floor). A sink names the log bucket it writes to
//! (`destination`), so the log bucket kind reads the sinks too: an orphan sink is deleted
//! before the bucket only it writes to (`chain_rank`).
//!
//! Sinks are named by their id (`my-sink`). The API gives a sink no id, so enforce tells the
//! reviewed sink from one made again under its name by its creation time and writer identity,
//! and deletes it only while it still writes where it wrote when reviewed (`destination` is
//! the record's etag). The snapshot file `logSinks.json` holds the REST list body
//! `{"sinks": [...]}` or the array `gcloud logging sinks list --format=json` prints. A sink
//! delete is immediate (no operation); the backup holds what re-creates it.

use google_cloud_logging_v2::client::ConfigServiceV2;
use serde_json::{Value, json};

use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_common::{Item, items, required, scoped_items, short_name, text, time};
use crate::inventory::gcp_live::{
    GcpClients, GcpDelete, client, get, list_paged, to_json, with_retries,
};
use crate::inventory::{GcpKind, GcpResource};

pub const FILE: &str = "logSinks.json";
pub(crate) const LOGGING: &str = "DRIFTSWEEP_GCP_LOGGING_ENDPOINT";

/// The sinks every project has; `_Required` cannot be deleted, `_Default` feeds `_Default`.
pub const FLOOR: &[&str] = &["_Default", "_Required"];

pub static KIND: Kind = Kind {
    kind: GcpKind::LogSink,
    what: "log sinks",
    audited: |p| p.log_sinks.is_some(),
    allowed: |p| p.log_sinks.as_ref().map(|a| a.allowed.as_slice()),
    floor: FLOOR,
    list,
    parse,
    current,
    delete,
    // No id: the writer identity is what Google gave this sink, the creation time tells a
    // sink made again under the name.
    reverify: Reverify {
        id: Some("writerIdentity"),
        created: Some("createTime"),
    },
    auditor: &["logging.sinks.list"],
    enforcer: &["logging.sinks.get", "logging.sinks.delete"],
};

/// Every sink of the project, every page, as the body of `logSinks.json`. Read once per run:
/// the log bucket kind reads it too.
pub(crate) async fn listed_sinks(clients: &GcpClients) -> Result<Value, String> {
    clients
        .shared_list(FILE, || async {
            sinks(clients).await.map(|s| json!({ "sinks": s }))
        })
        .await
}

/// Every sink of the project, every page, as REST JSON (not shared: enforce reads them again).
pub(crate) async fn sinks(clients: &GcpClients) -> Result<Vec<Value>, String> {
    let c = client!(clients, ConfigServiceV2, LOGGING)?;
    let parent = format!("projects/{}", clients.project);
    list_paged(
        |token| {
            let c = c.clone();
            let parent = parent.clone();
            async move {
                let page = c
                    .list_sinks()
                    .set_parent(parent)
                    .set_page_size(200)
                    .set_page_token(token)
                    .send()
                    .await?;
                Ok((to_json(page.sinks), page.next_page_token))
            }
        },
        "sinks.list",
    )
    .await
}

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let sinks = listed_sinks(clients).await;
        listed.store_body(KIND.what, FILE, sinks);
        listed
    })
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    parse_file(files, FILE, parse_sinks)
}

/// The sinks of a list body (`{"sinks": [...]}`) or gcloud's array.
pub fn sinks_of(body: &Value) -> Result<Vec<Item<'_>>, String> {
    match body {
        Value::Array(_) => scoped_items(body, "sinks"),
        _ => items(body, "sinks"),
    }
}

/// A sink's id: the API and gcloud name a sink by it; a full name is cut to it.
pub fn sink_id<'a>(path: &str, o: &'a serde_json::Map<String, Value>) -> Result<&'a str, String> {
    Ok(short_name(required(o, path, "name")?))
}

/// The full name of the log bucket a sink destination names
/// (`logging.googleapis.com/projects/P/locations/L/buckets/B` → `projects/P/locations/L/buckets/B`).
/// Other destinations (Cloud Storage, BigQuery, Pub/Sub) name none.
pub fn bucket_of(destination: &str) -> Option<&str> {
    let path = destination.strip_prefix("logging.googleapis.com/")?;
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["projects", p, "locations", l, "buckets", b]
            if [p, l, b].iter().all(|s| !s.is_empty()) =>
        {
            Some(path)
        }
        _ => None,
    }
}

/// Log sinks, named by their id; `references` holds the full name of the log bucket each
/// writes to (any project's: the bucket kind matches its own).
pub fn parse_sinks(body: &Value) -> Result<Vec<GcpResource>, String> {
    sinks_of(body)?
        .into_iter()
        .map(|(path, o)| {
            let name = sink_id(&path, o)?;
            let destination = text(o, "destination").filter(|d| !d.is_empty());
            Ok(GcpResource {
                id: text(o, "writerIdentity"),
                etag: destination.clone(),
                created: time(o, &path, "createTime")?,
                description: text(o, "description"),
                disabled: Some(matches!(o.get("disabled"), Some(Value::Bool(true)))),
                references: destination
                    .as_deref()
                    .and_then(bucket_of)
                    .map(str::to_string)
                    .into_iter()
                    .collect(),
                ..GcpResource::of(GcpKind::LogSink, name)
            })
        })
        .collect()
}

fn full_name(clients: &GcpClients, name: &str) -> String {
    format!("projects/{}/sinks/{name}", clients.project)
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        let c = client!(clients, ConfigServiceV2, LOGGING)?;
        get!(
            c.get_sink()
                .set_sink_name(full_name(clients, target.name))
                .send(),
            "sinks.get"
        )
    })
}

/// Why the sink read again must not be deleted: it writes elsewhere than when reviewed.
pub fn still_the_reviewed(
    current: &Value,
    reviewed_destination: Option<&str>,
) -> Result<(), String> {
    let now = current.get("destination").and_then(Value::as_str);
    if now != reviewed_destination {
        return Err(format!(
            "changed since review: its destination is now {} (was {})",
            now.unwrap_or("none"),
            reviewed_destination.unwrap_or("none")
        ));
    }
    Ok(())
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    Box::pin(async move {
        if let Err(why) = still_the_reviewed(d.current, d.etag) {
            return Ok(GcpDelete::Skipped(why));
        }
        let c = client!(clients, ConfigServiceV2, LOGGING)?;
        let name = full_name(clients, d.name);
        let deleted = with_retries("sinks.delete", || {
            c.delete_sink().set_sink_name(name.clone()).send()
        })
        .await;
        match deleted {
            Ok(()) => {
                let destination = d
                    .current
                    .get("destination")
                    .and_then(Value::as_str)
                    .unwrap_or("DESTINATION");
                Ok(GcpDelete::Deleted(Some(format!(
                    "re-create it from its backup: gcloud logging sinks create {} {destination} --log-filter=FILTER --project {} (then grant its new writer identity on the destination again)",
                    d.name, clients.project
                ))))
            }
            Err(e) if e.contains("404") || e.contains("NOT_FOUND") => Ok(GcpDelete::AlreadyGone),
            Err(e) => Err(e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_are_read_from_the_list_body_and_gclouds_array() {
        let one = json!({"name": "aia-audit", "createTime": "2026-01-01T00:00:00Z",
            "writerIdentity": "serviceAccount:w@gcp-sa-logging.iam.gserviceaccount.com",
            "destination": "logging.googleapis.com/projects/p/locations/global/buckets/audit"});
        for body in [json!({"sinks": [one.clone()]}), json!([one])] {
            let s = parse_sinks(&body).unwrap();
            assert_eq!(s[0].name, "aia-audit");
            assert_eq!(
                s[0].created.unwrap().to_rfc3339(),
                "2026-01-01T00:00:00+00:00"
            );
            assert_eq!(
                s[0].references,
                ["projects/p/locations/global/buckets/audit"]
            );
            assert!(s[0].id.as_deref().unwrap().starts_with("serviceAccount:"));
            assert!(s[0].etag.as_deref().unwrap().ends_with("/buckets/audit"));
        }
        let gcs = json!({"sinks": [{"name": "to-gcs", "destination": "storage.googleapis.com/b"}]});
        assert!(parse_sinks(&gcs).unwrap()[0].references.is_empty());
        assert!(parse_sinks(&json!({})).unwrap().is_empty());
        assert!(
            parse_sinks(&json!({"sinks": [{"destination": "x"}]}))
                .unwrap_err()
                .contains("name")
        );
    }

    #[test]
    fn a_destination_names_a_log_bucket_only_when_it_is_one() {
        let d = "logging.googleapis.com/projects/p/locations/europe-west1/buckets/b";
        assert_eq!(
            bucket_of(d),
            Some("projects/p/locations/europe-west1/buckets/b")
        );
        assert_eq!(bucket_of("storage.googleapis.com/b"), None);
        assert_eq!(
            bucket_of("bigquery.googleapis.com/projects/p/datasets/d"),
            None
        );
        assert_eq!(
            bucket_of("logging.googleapis.com/projects/p/locations/global/buckets/"),
            None
        );
    }

    #[test]
    fn a_sink_is_deleted_only_while_it_writes_where_it_did_when_reviewed() {
        let d = "logging.googleapis.com/projects/p/locations/global/buckets/a";
        assert!(still_the_reviewed(&json!({"destination": d}), Some(d)).is_ok());
        assert!(
            still_the_reviewed(&json!({"destination": "storage.googleapis.com/x"}), Some(d))
                .is_err()
        );
        assert!(still_the_reviewed(&json!({}), Some(d)).is_err());
    }
}
