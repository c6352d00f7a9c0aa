//! Zonal persistent disks (`gcp.disks`). A disk holds data, so only one that is `READY`,
//! attached to no instance (`users` empty) and unattached for at least `safety.min_age_hours`
//! (counted from its last detach as well as its creation) is ever a deletion candidate, and
//! enforce takes a final snapshot of it, waiting for that operation, before it deletes it. A
//! disk GKE made for a PersistentVolume (`pvc-*`, a description naming `kubernetes.io/`) is
//! the PersistentVolume's, audited there.
//!
//! Disks are named `ZONE/NAME`. The snapshot file `disks.json` holds the REST list body
//! `snapshot` writes, the aggregated list, or gcloud's array. Regional disks are not audited
//! yet (the aggregated list's `regions/` scopes are skipped): what is not listed is never
//! deleted.

use google_cloud_compute_v1::client::Disks;
use serde_json::Value;

use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_common::{
    labels, required, scoped_items, short_name, strings, text, time,
};
use crate::inventory::gcp_live::{
    COMPUTE, GcpClients, GcpDelete, aggregated_list, client, compute_deleted, get,
};
use crate::inventory::{GcpKind, GcpResource};

pub const FILE: &str = "disks.json";

/// The only status a disk can be deleted in.
pub const READY: &str = "READY";

/// The label the final snapshot carries, naming the disk it was taken of.
pub const FINAL_SNAPSHOT_LABEL: &str = "driftsweep-final-snapshot-of";

pub static KIND: Kind = Kind {
    kind: GcpKind::Disk,
    what: "disks",
    audited: |p| p.disks.is_some(),
    allowed: |p| p.disks.as_ref().map(|a| a.allowed.as_slice()),
    floor: &["gke-*", "pvc-*", "k8s-*"],
    list,
    parse,
    current,
    delete,
    reverify: Reverify {
        id: Some("id"),
        created: Some("creationTimestamp"),
    },
    auditor: &["compute.disks.list"],
    enforcer: &[
        "compute.disks.get",
        "compute.disks.createSnapshot",
        "compute.snapshots.create",
        "compute.disks.delete",
        "compute.zoneOperations.get",
    ],
};

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let items = zonal(clients).await;
        listed.store(KIND.what, FILE, "items", items);
        listed
    })
}

/// Every zonal disk (the regional ones are not audited).
async fn zonal(clients: &GcpClients) -> Result<Vec<Value>, String> {
    let mut disks = every_disk(clients).await?;
    disks.retain(|d| d.get("zone").is_some());
    Ok(disks)
}

/// Every disk, zonal and regional, through the aggregated list (every page; an unreachable
/// scope fails it). Read once per run: the disks and the snapshots' sources are both it.
pub(super) async fn every_disk(clients: &GcpClients) -> Result<Vec<Value>, String> {
    let all = clients
        .shared_list("disks.aggregatedList", || async {
            let c = client!(clients, Disks, COMPUTE)?;
            aggregated_list!(c, clients.project, "disks.aggregatedList", "", disks)
                .map(Value::Array)
        })
        .await?;
    match all {
        Value::Array(disks) => Ok(disks),
        other => Err(format!("disks.aggregatedList: not a list: {other}")),
    }
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    parse_file(files, FILE, parse_disks)
}

/// Zonal disks of a list body, an aggregated list body or gcloud's array, named `ZONE/NAME`.
/// A regional disk in the file is skipped (not audited).
pub fn parse_disks(body: &Value) -> Result<Vec<GcpResource>, String> {
    let mut disks = Vec::new();
    for (path, o) in scoped_items(body, "disks")? {
        let short = required(o, &path, "name")?;
        let Some(zone) = text(o, "zone").map(|z| short_name(&z).to_string()) else {
            continue;
        };
        let created = time(o, &path, "creationTimestamp")?;
        let detached = time(o, &path, "lastDetachTimestamp")?;
        disks.push(GcpResource {
            id: text(o, "id"),
            self_link: text(o, "selfLink"),
            resource_name: text(o, "selfLink")
                .and_then(|l| l.find("projects/").map(|i| l[i..].to_string())),
            created,
            detached,
            description: text(o, "description"),
            labels: labels(o),
            status: text(o, "status"),
            used_by: strings(o, "users"),
            ..GcpResource::of(GcpKind::Disk, &format!("{zone}/{short}"))
        });
    }
    Ok(disks)
}

/// `ZONE/NAME` → (zone, name).
fn split(name: &str) -> Result<(&str, &str), String> {
    name.split_once('/')
        .ok_or_else(|| format!("disk `{name}` is not named ZONE/NAME"))
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        let (zone, short) = split(target.name)?;
        let c = client!(clients, Disks, COMPUTE)?;
        get!(
            c.get()
                .set_project(clients.project.clone())
                .set_zone(zone)
                .set_disk(short)
                .send(),
            "disks.get"
        )
    })
}

/// Why the disk read again must not be deleted, if it must not.
pub fn still_unattached(current: &Value) -> Result<(), String> {
    let status = current.get("status").and_then(Value::as_str).unwrap_or("");
    let users = current
        .get("users")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if status != READY || users > 0 {
        return Err(format!(
            "attached or busy since the audit (status {}, {users} users)",
            if status.is_empty() { "unknown" } else { status }
        ));
    }
    Ok(())
}

/// The final snapshot's name: `ds-final-<disk>-<yyyymmddhhmmss>`, cut to GCP's 63 characters.
pub fn final_snapshot_name(disk: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let stamp = now.format("%Y%m%d%H%M%S").to_string();
    let room = 63 - "ds-final--".len() - stamp.len();
    let disk: String = disk.chars().take(room).collect();
    format!("ds-final-{}-{stamp}", disk.trim_end_matches('-'))
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    use google_cloud_lro::Poller as _;
    Box::pin(async move {
        if let Err(why) = still_unattached(d.current) {
            return Ok(GcpDelete::Skipped(why));
        }
        let (zone, short) = split(d.name)?;
        let c = client!(clients, Disks, COMPUTE)?;
        let p = clients.project.clone();
        // The data is the one thing a record cannot bring back: snapshot first, and only a
        // snapshot whose operation finished without error lets the delete go on.
        let snapshot = final_snapshot_name(short, d.now);
        let body = google_cloud_compute_v1::model::Snapshot::new()
            .set_name(snapshot.clone())
            .set_description(format!(
                "driftsweep: final snapshot of {} before deleting it",
                d.name
            ))
            .set_labels([(FINAL_SNAPSHOT_LABEL.to_string(), short.to_string())]);
        let taken = c
            .create_snapshot()
            .set_project(p.clone())
            .set_zone(zone)
            .set_disk(short)
            .set_body(body)
            .poller()
            .until_done()
            .await;
        match compute_deleted(taken) {
            Ok(GcpDelete::Deleted(_)) => {}
            Ok(other) => {
                return Ok(GcpDelete::Skipped(format!(
                    "not deleted: its final snapshot was not taken ({other:?})"
                )));
            }
            Err(e) => {
                return Err(format!(
                    "not deleted: its final snapshot `{snapshot}` failed: {e}"
                ));
            }
        }
        let deleted = compute_deleted(
            c.delete()
                .set_project(p)
                .set_zone(zone)
                .set_disk(short)
                .poller()
                .until_done()
                .await,
        )?;
        Ok(match deleted {
            GcpDelete::Deleted(_) => GcpDelete::Deleted(Some(format!(
                "final snapshot `{snapshot}` taken first; restore with: gcloud compute disks create {short} --zone {zone} --source-snapshot {snapshot} --project {}",
                clients.project
            ))),
            other => other,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn disks_are_named_by_zone_and_their_last_detach_is_read() {
        let z = "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a";
        let body = json!({"items": {
            "zones/us-central1-a": {"disks": [{"name": "data", "zone": z, "status": "READY",
                "creationTimestamp": "2025-01-01T00:00:00.000-08:00",
                "lastDetachTimestamp": "2026-11-28T00:00:00.000-08:00"}]},
            "regions/us-central1": {"disks": [{"name": "regional", "region": "x"}]}}});
        let disks = parse_disks(&body).unwrap();
        assert_eq!(disks.len(), 1, "regional disks are not audited");
        assert_eq!(disks[0].name, "us-central1-a/data");
        assert_eq!(
            disks[0].detached.unwrap().to_rfc3339(),
            "2026-11-28T08:00:00+00:00"
        );
        assert!(
            parse_disks(&json!([{"zone": z}]))
                .unwrap_err()
                .contains("name")
        );
    }

    #[test]
    fn a_disk_is_deleted_only_while_still_ready_and_unattached() {
        assert!(still_unattached(&json!({"status": "READY"})).is_ok());
        assert!(still_unattached(&json!({"status": "READY", "users": ["vm"]})).is_err());
        assert!(still_unattached(&json!({"status": "RESTORING"})).is_err());
        assert!(still_unattached(&json!({})).is_err());
    }

    #[test]
    fn the_final_snapshot_name_is_a_valid_gcp_name() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T07:30:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            final_snapshot_name("data", now),
            "ds-final-data-20261129073000"
        );
        let long = final_snapshot_name(&"x".repeat(63), now);
        assert!(long.len() <= 63, "{long}");
    }
}
