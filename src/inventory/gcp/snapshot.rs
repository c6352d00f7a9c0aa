//! Compute disk snapshots (`gcp.snapshots`): retention per source disk, as image versions have
//! per repository. A snapshot holds the only copy of its data once its disk is gone, so what
//! keeps one is asked of every list that could prove it: the snapshots themselves (status,
//! labels, the schedule that made them) and every disk of the project (a snapshot schedule's
//! snapshots are the schedule's to expire while the disk, or another disk the schedule runs
//! on, exists).
//!
//! Snapshots are global and named `NAME`. Two snapshot files: `snapshots.json`, the REST list
//! body (or gcloud's array), and `snapshotDisks.json`, every disk, zonal and regional (the
//! aggregated list `snapshot` writes, the aggregated body, or `gcloud compute disks list
//! --format=json`). The second is required beside the first: without it nothing proves a
//! schedule's disk gone.

use std::collections::{BTreeMap, BTreeSet};

use google_cloud_compute_v1::client::Snapshots;
use serde_json::{Map, Value};

use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_common::{
    labels, required, scoped_items, short_name, strings, text, time,
};
use crate::inventory::gcp_live::{
    COMPUTE, GcpClients, GcpDelete, client, compute_deleted, compute_list, get,
};
use crate::inventory::{GcpKind, GcpResource};

pub const FILE: &str = "snapshots.json";
pub const DISKS: &str = "snapshotDisks.json";

/// The only status a snapshot is deleted in.
pub const READY: &str = "READY";

pub static KIND: Kind = Kind {
    kind: GcpKind::Snapshot,
    what: "disk snapshots",
    audited: |p| p.snapshots.is_some(),
    allowed: |p| p.snapshots.as_ref().map(|s| s.allowed.as_slice()),
    // `snapshot-<uid>`: the names the GCE PD CSI driver gives the snapshots of Kubernetes
    // VolumeSnapshots (the cluster's VolumeSnapshotContent owns them).
    floor: &["gke-*", "snapshot-*"],
    list,
    parse,
    current,
    delete,
    reverify: Reverify {
        id: Some("id"),
        created: Some("creationTimestamp"),
    },
    auditor: &["compute.snapshots.list", "compute.disks.list"],
    enforcer: &[
        "compute.snapshots.get",
        "compute.snapshots.delete",
        "compute.globalOperations.get",
    ],
};

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let snapshots = match client!(clients, Snapshots, COMPUTE) {
            Ok(c) => compute_list!(c, clients.project.clone(), "snapshots.list"),
            Err(e) => Err(e),
        };
        listed.store(KIND.what, FILE, "items", snapshots);
        let disks = super::disk::every_disk(clients).await;
        listed.store("disks (the sources of snapshots)", DISKS, "items", disks);
        listed
    })
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    let Some(mut snapshots) = parse_file(files, FILE, parse_snapshots)? else {
        return Ok(None);
    };
    let Some(disks) = parse_file(files, DISKS, parse_disks)? else {
        return Err(FileError {
            file: DISKS.to_string(),
            message: format!(
                "absent beside `{FILE}`: without every disk nothing proves a snapshot schedule's disk gone; record it with `gcloud compute disks list --format=json`"
            ),
        });
    };
    for (s, schedule) in &mut snapshots {
        s.managed_by = disks.keeper(s, schedule.as_deref());
    }
    Ok(Some(snapshots.into_iter().map(|(s, _)| s).collect()))
}

/// `https://…/compute/v1/projects/p/zones/z/disks/d` → `projects/p/zones/z/disks/d`.
fn relative(link: &str) -> &str {
    link.find("projects/").map_or(link, |i| &link[i..])
}

/// A `compute#snapshotList` body or gcloud's array: each snapshot, with the snapshot schedule
/// that made it (`None` when a person or a program did).
pub fn parse_snapshots(body: &Value) -> Result<Vec<(GcpResource, Option<String>)>, String> {
    scoped_items(body, "snapshots")?
        .into_iter()
        .map(|(path, o)| {
            let schedule = text(o, "sourceSnapshotSchedulePolicy")
                .filter(|s| !s.is_empty())
                .map(|s| relative(&s).to_string())
                // Made by a schedule that is not named: no disk's schedule matches it.
                .or_else(|| auto_created(o).then(String::new));
            let source = text(o, "sourceDiskId")
                .filter(|s| !s.is_empty())
                .or_else(|| text(o, "sourceDisk").map(|d| relative(&d).to_string()));
            let resource = GcpResource {
                id: text(o, "id"),
                self_link: text(o, "selfLink"),
                resource_name: text(o, "selfLink").map(|l| relative(&l).to_string()),
                created: time(o, &path, "creationTimestamp")?,
                description: text(o, "description"),
                labels: labels(o),
                status: text(o, "status"),
                source,
                ..GcpResource::of(GcpKind::Snapshot, required(o, &path, "name")?)
            };
            Ok((resource, schedule))
        })
        .collect()
}

fn auto_created(o: &Map<String, Value>) -> bool {
    matches!(o.get("autoCreated"), Some(Value::Bool(true)))
        || matches!(o.get("autoCreated"), Some(Value::String(s)) if s == "true")
}

/// Every disk of the project, as snapshots name them.
#[derive(Debug, Default)]
pub struct DiskIndex {
    /// Ids and relative links (`projects/p/zones/z/disks/d`) of the disks that exist.
    exists: BTreeSet<String>,
    /// Snapshot schedule (relative link) → a disk it runs on.
    schedules: BTreeMap<String, String>,
}

impl DiskIndex {
    /// Why a snapshot a schedule made is the schedule's to expire, if it is: its disk still
    /// exists, or the schedule still runs on another disk.
    fn keeper(&self, s: &GcpResource, schedule: Option<&str>) -> Option<String> {
        let schedule = schedule?;
        let named = if schedule.is_empty() {
            "a snapshot schedule".to_string()
        } else {
            format!("snapshot schedule `{}`", short_name(schedule))
        };
        if let Some(source) = s.source.as_deref()
            && self.exists.contains(source)
        {
            return Some(format!(
                "made by {named} of its disk, which still exists: the schedule's retention expires it"
            ));
        }
        self.schedules.get(schedule).map(|disk| {
            format!(
                "made by snapshot schedule `{}`, which still runs on disk `{disk}`: the schedule's retention expires it",
                short_name(schedule)
            )
        })
    }
}

/// Disks of an aggregated list body, a list body or gcloud's array, zonal and regional.
pub fn parse_disks(body: &Value) -> Result<DiskIndex, String> {
    let mut index = DiskIndex::default();
    for (path, o) in scoped_items(body, "disks")? {
        let name = required(o, &path, "name")?;
        if let Some(id) = text(o, "id") {
            index.exists.insert(id);
        }
        if let Some(link) = text(o, "selfLink") {
            index.exists.insert(relative(&link).to_string());
        }
        for policy in strings(o, "resourcePolicies") {
            index
                .schedules
                .entry(relative(&policy).to_string())
                .or_insert_with(|| name.to_string());
        }
    }
    Ok(index)
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        let c = client!(clients, Snapshots, COMPUTE)?;
        get!(
            c.get()
                .set_project(clients.project.clone())
                .set_snapshot(target.name)
                .send(),
            "snapshots.get"
        )
    })
}

/// Why the snapshot read again must not be deleted, if it must not.
pub fn still_deletable(current: &Value, delete_final: bool) -> Result<(), String> {
    let status = current.get("status").and_then(Value::as_str).unwrap_or("");
    if status != READY {
        return Err(format!(
            "not ready since the audit (status {})",
            if status.is_empty() { "unknown" } else { status }
        ));
    }
    let is_final = current
        .pointer(&format!("/labels/{}", super::disk::FINAL_SNAPSHOT_LABEL))
        .is_some();
    if is_final && !delete_final {
        return Err(
            "it is driftsweep's final snapshot of a deleted disk (`delete_final_snapshots` is off)"
                .to_string(),
        );
    }
    Ok(())
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    use google_cloud_lro::Poller as _;
    Box::pin(async move {
        let delete_final = d
            .policy
            .snapshots
            .as_ref()
            .is_some_and(|s| s.delete_final_snapshots);
        if let Err(why) = still_deletable(d.current, delete_final) {
            return Ok(GcpDelete::Skipped(why));
        }
        let c = client!(clients, Snapshots, COMPUTE)?;
        let deleted = compute_deleted(
            c.delete()
                .set_project(clients.project.clone())
                .set_snapshot(d.name)
                .poller()
                .until_done()
                .await,
        )?;
        Ok(match deleted {
            GcpDelete::Deleted(_) => GcpDelete::Deleted(Some(
                "a deleted snapshot's data cannot be brought back; its record is in the backup"
                    .to_string(),
            )),
            other => other,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const Z: &str = "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a";

    fn files(snapshots: Value, disks: Option<Value>) -> BTreeMap<String, Value> {
        let mut f = BTreeMap::from([(FILE.to_string(), snapshots)]);
        if let Some(d) = disks {
            f.insert(DISKS.to_string(), d);
        }
        f
    }

    #[test]
    fn a_schedule_snapshot_is_the_schedules_while_its_disk_or_the_schedule_lives() {
        let policy = "https://www.googleapis.com/compute/v1/projects/p/regions/us-central1/resourcePolicies/daily";
        let other = "https://www.googleapis.com/compute/v1/projects/p/regions/us-central1/resourcePolicies/weekly";
        let snapshots = json!({"items": [
            {"name": "of-live", "status": "READY", "sourceDisk": format!("{Z}/disks/data"),
             "sourceDiskId": "11", "autoCreated": true, "sourceSnapshotSchedulePolicy": policy},
            {"name": "schedule-lives", "status": "READY", "sourceDisk": format!("{Z}/disks/gone"),
             "sourceDiskId": "12", "autoCreated": true, "sourceSnapshotSchedulePolicy": policy},
            {"name": "both-gone", "status": "READY", "sourceDisk": format!("{Z}/disks/gone"),
             "sourceDiskId": "12", "autoCreated": true, "sourceSnapshotSchedulePolicy": other},
            {"name": "manual", "status": "READY", "sourceDisk": format!("{Z}/disks/data"),
             "sourceDiskId": "11"}
        ]});
        let disks = json!({"items": {"zones/us-central1-a": {"disks": [
            {"name": "data", "id": "11", "selfLink": format!("{Z}/disks/data"),
             "resourcePolicies": [policy]}]},
            "regions/us-central1": {"warning": {"code": "NO_RESULTS_ON_PAGE"}}}});
        let parsed = parse(&files(snapshots, Some(disks))).unwrap().unwrap();
        let by = |n: &str| parsed.iter().find(|s| s.name == n).unwrap();
        assert!(
            by("of-live")
                .managed_by
                .as_deref()
                .unwrap()
                .contains("still exists")
        );
        assert!(
            by("schedule-lives")
                .managed_by
                .as_deref()
                .unwrap()
                .contains("still runs on disk `data`")
        );
        assert_eq!(by("both-gone").managed_by, None);
        assert_eq!(by("manual").managed_by, None, "a person's snapshot");
        assert_eq!(by("manual").source.as_deref(), Some("11"));
    }

    #[test]
    fn snapshots_without_the_disks_beside_them_are_refused() {
        let e = parse(&files(json!({"items": []}), None)).unwrap_err();
        assert_eq!(e.file, DISKS);
        let gcloud = json!([{"name": "s", "sourceDisk": format!("{Z}/disks/d")}]);
        let parsed = parse(&files(gcloud, Some(json!([])))).unwrap().unwrap();
        assert_eq!(
            parsed[0].source.as_deref(),
            Some("projects/p/zones/us-central1-a/disks/d"),
            "no id: the disk's link groups it"
        );
        assert!(
            parse_snapshots(&json!({"items": [{"status": "READY"}]}))
                .unwrap_err()
                .contains("name")
        );
    }

    #[test]
    fn a_snapshot_is_deleted_only_while_ready_and_final_snapshots_only_when_allowed() {
        assert!(still_deletable(&json!({"status": "READY"}), false).is_ok());
        assert!(still_deletable(&json!({"status": "CREATING"}), false).is_err());
        assert!(still_deletable(&json!({}), true).is_err());
        let fin = json!({"status": "READY", "labels": {"driftsweep-final-snapshot-of": "data"}});
        assert!(still_deletable(&fin, false).is_err());
        assert!(still_deletable(&fin, true).is_ok());
    }
}
