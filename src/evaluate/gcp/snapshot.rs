//! Snapshot retention: per source disk, the `keep_recent` newest and everything younger than
//! `max_age_days` are kept, as image versions are per repository. What the floor, the
//! allowlist and the opt-out label keep is decided with every other GCP kind.

use chrono::{DateTime, Duration, Utc};
use rustc_hash::FxHashMap as HashMap;

use crate::evaluate::{Clock, Reason};
use crate::inventory::gcp::disk::FINAL_SNAPSHOT_LABEL;
use crate::inventory::gcp::snapshot::READY;
use crate::inventory::{GcpKind, GcpResource};
use crate::policy::SnapshotPolicy;

/// The snapshots of each source disk, newest first, ranked once per run.
pub(super) struct Retention<'a> {
    policy: &'a SnapshotPolicy,
    clock: Clock,
    /// Source disk → creation times, newest first.
    times: HashMap<String, Vec<DateTime<Utc>>>,
}

/// The group a snapshot is counted in: its disk, or itself when it names none.
fn group(r: &GcpResource) -> String {
    match &r.source {
        Some(s) => s.clone(),
        None => format!("snapshot/{}", r.name),
    }
}

impl<'a> Retention<'a> {
    pub(super) fn new(policy: &'a SnapshotPolicy, all: &[GcpResource], clock: Clock) -> Self {
        let mut times: HashMap<String, Vec<DateTime<Utc>>> = HashMap::default();
        for r in all.iter().filter(|r| r.kind == GcpKind::Snapshot) {
            if let Some(t) = r.created {
                times.entry(group(r)).or_default().push(t);
            }
        }
        for list in times.values_mut() {
            list.sort_unstable_by(|a, b| b.cmp(a));
        }
        Retention {
            policy,
            clock,
            times,
        }
    }

    /// The keep reasons of one snapshot, and the detail the report shows.
    pub(super) fn judge(&self, r: &GcpResource, keep: &mut Vec<Reason>) -> Option<String> {
        let mut detail = None;
        if let Some(t) = r.created {
            // Strictly newer ones: every snapshot tied with the last kept one is kept too.
            let newer = self
                .times
                .get(&group(r))
                .map_or(0, |list| list.partition_point(|other| *other > t));
            if newer < self.policy.keep_recent as usize {
                keep.push(Reason::RecentVersion);
            }
            if self.clock.now - t < Duration::days(i64::from(self.policy.max_age_days)) {
                keep.push(Reason::WithinMaxAge);
            }
            detail = Some(format!(
                "{} days old, {newer} newer snapshot{} of its disk",
                (self.clock.now - t).num_days(),
                if newer == 1 { "" } else { "s" }
            ));
        }
        if let Some(by) = &r.managed_by {
            keep.push(Reason::ManagedElsewhere);
            detail = Some(by.clone());
        }
        if let Some(disk) = r.labels.get(FINAL_SNAPSHOT_LABEL)
            && !self.policy.delete_final_snapshots
        {
            keep.push(Reason::FinalSnapshot);
            detail = Some(format!(
                "driftsweep's final snapshot of disk `{disk}`, which it deleted: the only copy of its data"
            ));
        }
        // Being made, uploaded, deleted, or failed: only a finished snapshot is judged.
        if r.status.as_deref() != Some(READY) {
            keep.push(Reason::InUse);
            detail = Some(format!(
                "status {}",
                r.status.as_deref().unwrap_or("unknown")
            ));
        }
        detail
    }
}
