//! Cloud Logging buckets (`gcp.log_buckets`), the stores logs are kept in. `_Default` and
//! `_Required` are the project's own (the floor). A bucket a sink writes to is named by that
//! sink (its `destination`): it is in use while a kept sink writes to it, and a bucket only
//! orphan sinks write to is deleted after them (`chain_rank`; enforce skips it when such a
//! sink was not deleted). Without the sinks (a failed list, a snapshot without
//! `logSinks.json`) no bucket is unused. A locked bucket is kept (its logs cannot be deleted
//! before their retention ends), and one already `DELETE_REQUESTED` is pending deletion.
//!
//! Buckets are named `LOCATION/BUCKET` (`global/audit`, `europe-west1/eu-logs`). Snapshot
//! files: `logBuckets.json` (the REST list body over `locations/-`, lifecycle states by name,
//! or `gcloud logging buckets list --format=json`) and the sinks' `logSinks.json`. A delete is
//! soft: the bucket stays `DELETE_REQUESTED` for 7 days, and `gcloud logging buckets
//! undelete` brings it back. Sinks of other projects, folders or the organization writing
//! here cannot be seen with project permissions (docs/guide.md says so).

use google_cloud_logging_v2::client::ConfigServiceV2;
use serde_json::{Value, json};

use super::log_sink::{self, LOGGING};
use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_common::{Item, items, required, scoped_items, text, time};
use crate::inventory::gcp_live::{
    GcpClients, GcpDelete, client, get, list_paged, to_json, with_retries,
};
use crate::inventory::{GcpKind, GcpResource, Referrer};

pub const FILE: &str = "logBuckets.json";

/// The only lifecycle state a bucket is deleted in.
pub const ACTIVE: &str = "ACTIVE";
/// Deleted, restorable until Google purges it 7 days later.
pub const DELETE_REQUESTED: &str = "DELETE_REQUESTED";

pub static KIND: Kind = Kind {
    kind: GcpKind::LogBucket,
    what: "log buckets",
    audited: |p| p.log_buckets.is_some(),
    allowed: |p| p.log_buckets.as_ref().map(|a| a.allowed.as_slice()),
    floor: log_sink::FLOOR,
    list,
    parse,
    current,
    delete,
    // No id: the creation time tells a bucket made again under the name; the update time is
    // the record's etag (a bucket changed since review is not deleted).
    reverify: Reverify {
        id: None,
        created: Some("createTime"),
    },
    // The sinks are read again before a delete, with this role (the enforce account holds it
    // too).
    auditor: &["logging.buckets.list", "logging.sinks.list"],
    enforcer: &["logging.buckets.get", "logging.buckets.delete"],
};

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let buckets = buckets(clients).await;
        listed.store(KIND.what, FILE, "buckets", buckets);
        let sinks = log_sink::listed_sinks(clients).await;
        listed.store_body(
            "log sinks (what writes to log buckets)",
            log_sink::FILE,
            sinks,
        );
        listed
    })
}

/// Every bucket of every location, every page, as REST JSON with lifecycle states by name (as
/// the API's plain JSON and gcloud give them; the client asks for numbers).
async fn buckets(clients: &GcpClients) -> Result<Vec<Value>, String> {
    let c = client!(clients, ConfigServiceV2, LOGGING)?;
    let parent = format!("projects/{}/locations/-", clients.project);
    let mut buckets = list_paged(
        |token| {
            let c = c.clone();
            let parent = parent.clone();
            async move {
                let page = c
                    .list_buckets()
                    .set_parent(parent)
                    .set_page_size(200)
                    .set_page_token(token)
                    .send()
                    .await?;
                Ok((to_json(page.buckets), page.next_page_token))
            }
        },
        "buckets.list",
    )
    .await?;
    for b in &mut buckets {
        named_state(b);
    }
    Ok(buckets)
}

/// `lifecycleState` by name in a bucket's JSON.
fn named_state(bucket: &mut Value) {
    if let Some(o) = bucket.as_object_mut()
        && let Some(state) = lifecycle(o.get("lifecycleState"))
    {
        o.insert("lifecycleState".to_string(), Value::String(state));
    }
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    let Some(mut buckets) = parse_file(files, FILE, parse_buckets)? else {
        return Ok(None);
    };
    match parse_file(files, log_sink::FILE, log_sink::parse_sinks)? {
        Some(sinks) => {
            for sink in sinks {
                for written in &sink.references {
                    for b in buckets.iter_mut().filter(|b| writes_to(written, b)) {
                        b.referrers.push(Referrer {
                            kind: GcpKind::LogSink,
                            name: sink.name.clone(),
                        });
                    }
                }
            }
        }
        // Nothing proves a bucket unused without the sinks that could write to it.
        None => {
            for b in &mut buckets {
                b.used_by
                    .push(format!("log sinks (not recorded: {})", log_sink::FILE));
            }
        }
    }
    Ok(Some(buckets))
}

/// Whether a sink writing to the bucket `written` (`projects/P/locations/L/buckets/B`) may
/// write to `bucket`: the same location and bucket id. The project is not compared: a
/// destination may name the project by its number, and keeping a bucket a sink of another
/// project's same-named bucket names costs only a missed orphan.
fn writes_to(written: &str, bucket: &GcpResource) -> bool {
    let tail = |full: &str| {
        let parts: Vec<&str> = full.split('/').collect();
        match parts.as_slice() {
            ["projects", _, "locations", l, "buckets", b] => Some(format!("{l}/{b}")),
            _ => None,
        }
    };
    tail(written).is_some_and(|t| t == bucket.name)
}

fn buckets_of(body: &Value) -> Result<Vec<Item<'_>>, String> {
    match body {
        Value::Array(_) => scoped_items(body, "buckets"),
        _ => items(body, "buckets"),
    }
}

/// `lifecycleState` as a name: the client reads numbers (`enum-encoding=int`), the API's plain
/// JSON and gcloud give names.
pub fn lifecycle(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match n.as_i64() {
            Some(0) => "LIFECYCLE_STATE_UNSPECIFIED".to_string(),
            Some(1) => ACTIVE.to_string(),
            Some(2) => DELETE_REQUESTED.to_string(),
            Some(3) => "UPDATING".to_string(),
            Some(4) => "CREATING".to_string(),
            Some(5) => "FAILED".to_string(),
            _ => format!("UNKNOWN ({n})"),
        }),
        _ => None,
    }
}

/// A time as one text, whatever digits of the second it was written with: the record's etag
/// is the bucket's `updateTime`, compared with the one read again.
fn instant(
    o: &serde_json::Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<String>, String> {
    Ok(time(o, path, key)?.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
}

/// Log buckets, named `LOCATION/BUCKET`, their full name kept for enforce.
pub fn parse_buckets(body: &Value) -> Result<Vec<GcpResource>, String> {
    buckets_of(body)?
        .into_iter()
        .map(|(path, o)| {
            let full = required(o, &path, "name")?;
            let parts: Vec<&str> = full.split('/').collect();
            let name = match parts[..] {
                ["projects", p, "locations", location, "buckets", bucket]
                    if [p, location, bucket].iter().all(|s| !s.is_empty()) =>
                {
                    format!("{location}/{bucket}")
                }
                _ => {
                    return Err(format!(
                        "{path}.name: `{full}` is not projects/PROJECT/locations/LOCATION/buckets/BUCKET"
                    ));
                }
            };
            Ok(GcpResource {
                resource_name: Some(full.to_string()),
                etag: instant(o, &path, "updateTime")?,
                created: time(o, &path, "createTime")?,
                description: text(o, "description"),
                // Absent is the API's zero value, unspecified: not known to be active.
                status: Some(
                    lifecycle(o.get("lifecycleState"))
                        .unwrap_or_else(|| "LIFECYCLE_STATE_UNSPECIFIED".to_string()),
                ),
                retention_locked: matches!(o.get("locked"), Some(Value::Bool(true))),
                used_by: analytics(o).into_iter().collect(),
                ..GcpResource::of(GcpKind::LogBucket, &name)
            })
        })
        .collect()
}

/// What may read a bucket upgraded to Log Analytics: its linked BigQuery datasets, and the
/// queries and dashboards over them, none of which is listed.
fn analytics(o: &serde_json::Map<String, Value>) -> Option<String> {
    matches!(o.get("analyticsEnabled"), Some(Value::Bool(true))).then(|| {
        "Log Analytics (analyticsEnabled: linked BigQuery datasets and saved queries may read it, and are not listed)".to_string()
    })
}

/// `LOCATION/BUCKET` → (location, bucket).
fn split(name: &str) -> Result<(&str, &str), String> {
    name.split_once('/')
        .filter(|(l, b)| !l.is_empty() && !b.is_empty() && !b.contains('/'))
        .ok_or_else(|| format!("log bucket `{name}` is not named LOCATION/BUCKET"))
}

fn full_name(project: &str, name: &str) -> Result<String, String> {
    let (location, bucket) = split(name)?;
    Ok(format!(
        "projects/{project}/locations/{location}/buckets/{bucket}"
    ))
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        let name = full_name(&clients.project, target.name)?;
        let c = client!(clients, ConfigServiceV2, LOGGING)?;
        let mut got = get!(c.get_bucket().set_name(name.clone()).send(), "buckets.get")?;
        if let Some(b) = got.as_mut() {
            named_state(b);
        }
        Ok(got)
    })
}

/// Why the bucket read again must not be deleted, if it must not: no longer active, locked,
/// or changed since review (`updateTime`, the reviewed record's etag).
pub fn still_deletable(current: &Value, reviewed_update: Option<&str>) -> Result<(), String> {
    let state = lifecycle(current.get("lifecycleState"))
        .unwrap_or_else(|| "LIFECYCLE_STATE_UNSPECIFIED".to_string());
    if state != ACTIVE {
        return Err(format!(
            "not active since the audit (lifecycle state {state})"
        ));
    }
    if matches!(current.get("locked"), Some(Value::Bool(true))) {
        return Err("locked since the audit".to_string());
    }
    if let Some(reader) = current.as_object().and_then(analytics) {
        return Err(format!("read since the audit by {reader}"));
    }
    let now = match current.as_object() {
        Some(o) => instant(o, "bucket", "updateTime")?,
        None => None,
    };
    if now.as_deref() != reviewed_update {
        return Err(format!(
            "changed since review: updated {} (was {})",
            now.as_deref().unwrap_or("never"),
            reviewed_update.unwrap_or("never")
        ));
    }
    Ok(())
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    Box::pin(async move {
        if let Err(why) = still_deletable(d.current, d.etag) {
            return Ok(GcpDelete::Skipped(why));
        }
        let name = full_name(&clients.project, d.name)?;
        // A sink made or pointed here since the audit would write into a deleted bucket.
        let sinks = log_sink::sinks(clients).await.map_err(|e| {
            format!("not deleted: the sinks that may write to it could not be read: {e}")
        })?;
        let sinks = log_sink::parse_sinks(&json!({ "sinks": sinks }))?;
        let probe = GcpResource::of(GcpKind::LogBucket, d.name);
        if let Some(sink) = sinks
            .iter()
            .find(|s| s.references.iter().any(|w| writes_to(w, &probe)))
        {
            return Ok(GcpDelete::Skipped(format!(
                "sink {} writes to it since the audit",
                sink.name
            )));
        }
        let c = client!(clients, ConfigServiceV2, LOGGING)?;
        let deleted = with_retries("buckets.delete", || {
            c.delete_bucket().set_name(name.clone()).send()
        })
        .await;
        let (location, bucket) = split(d.name)?;
        match deleted {
            Ok(()) => Ok(GcpDelete::Deleted(Some(format!(
                "soft-deleted: restorable for 7 days with gcloud logging buckets undelete {bucket} --location {location} --project {}",
                clients.project
            )))),
            Err(e) if e.contains("404") || e.contains("NOT_FOUND") => Ok(GcpDelete::AlreadyGone),
            Err(e) => Err(e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_bucket_names_the_sinks_writing_to_it_and_without_them_is_in_use() {
        let buckets = json!({"buckets": [
            {"name": "projects/p/locations/global/buckets/audit", "lifecycleState": 1,
             "createTime": "2026-01-01T00:00:00Z", "updateTime": "2026-01-02T00:00:00.500000Z"},
            {"name": "projects/p/locations/europe-west1/buckets/old",
             "lifecycleState": "DELETE_REQUESTED", "locked": true},
            {"name": "projects/p/locations/us/buckets/by-number"},
            {"name": "projects/p/locations/global/buckets/analytics", "analyticsEnabled": true}]});
        let sinks = json!([
            {"name": "orphan", "destination":
                "logging.googleapis.com/projects/p/locations/global/buckets/audit"},
            {"name": "numbered", "destination":
                "logging.googleapis.com/projects/123456/locations/us/buckets/by-number"},
            {"name": "to-gcs", "destination": "storage.googleapis.com/old"}]);
        let mut files = BTreeMap::from([(FILE.to_string(), buckets)]);
        let parsed = parse(&files).unwrap().unwrap();
        assert!(
            parsed
                .iter()
                .all(|b| b.used_by.iter().any(|u| u.contains(log_sink::FILE))),
            "no sinks recorded: every bucket in use"
        );
        files.insert(log_sink::FILE.to_string(), sinks);
        let parsed = parse(&files).unwrap().unwrap();
        assert_eq!(parsed[0].name, "global/audit");
        assert!(parsed[0].used_by.is_empty());
        assert_eq!(parsed[0].referrers[0].name, "orphan");
        assert_eq!(parsed[0].referrers[0].kind, GcpKind::LogSink);
        assert_eq!(parsed[0].status.as_deref(), Some(ACTIVE));
        assert_eq!(parsed[0].etag.as_deref(), Some("2026-01-02T00:00:00.500Z"));
        assert_eq!(parsed[1].name, "europe-west1/old");
        assert!(parsed[1].referrers.is_empty() && parsed[1].retention_locked);
        assert_eq!(parsed[1].status.as_deref(), Some(DELETE_REQUESTED));
        // A destination naming the project by number still names the bucket.
        assert_eq!(parsed[2].referrers[0].name, "numbered");
        assert_eq!(
            parsed[2].status.as_deref(),
            Some("LIFECYCLE_STATE_UNSPECIFIED")
        );
        // Log Analytics readers are not listed: in use.
        assert!(parsed[3].used_by[0].contains("analyticsEnabled"));
        assert!(parsed[3].referrers.is_empty());
        assert!(
            parse_buckets(&json!({"buckets": [{"name": "audit"}]}))
                .unwrap_err()
                .contains("projects/PROJECT")
        );
        assert!(parse(&BTreeMap::new()).unwrap().is_none());
    }

    #[test]
    fn a_bucket_is_deleted_only_while_active_unlocked_and_unchanged() {
        let t = Some("2026-01-02T00:00:00Z");
        let ok = json!({"lifecycleState": 1, "updateTime": "2026-01-02T00:00:00Z"});
        assert!(still_deletable(&ok, t).is_ok());
        assert!(
            still_deletable(
                &json!({"lifecycleState": "ACTIVE", "updateTime": "2026-01-02T00:00:00.000Z"}),
                t
            )
            .is_ok()
        );
        assert!(still_deletable(&json!({"lifecycleState": 2, "updateTime": t}), t).is_err());
        assert!(still_deletable(&json!({"updateTime": t}), t).is_err());
        assert!(
            still_deletable(
                &json!({"lifecycleState": 1, "locked": true, "updateTime": t}),
                t
            )
            .is_err()
        );
        assert!(
            still_deletable(
                &json!({"lifecycleState": 1, "analyticsEnabled": true, "updateTime": t}),
                t
            )
            .is_err(),
            "upgraded to Log Analytics since the audit"
        );
        assert!(
            still_deletable(
                &json!({"lifecycleState": 1, "updateTime": "2026-03-01T00:00:00Z"}),
                t
            )
            .is_err(),
            "updated since review"
        );
        assert_eq!(split("global/a").unwrap(), ("global", "a"));
        assert!(split("a").is_err() && split("a/b/c").is_err());
    }
}
