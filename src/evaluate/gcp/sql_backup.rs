//! Cloud SQL backup retention: per instance, the `keep_recent` newest successful backups and
//! everything younger than `max_age_days` are kept, as snapshots are per disk. The instance
//! allowlist, final backups and any backup not `SUCCESSFUL` keep a backup too.

use chrono::{DateTime, Duration, Utc};
use rustc_hash::FxHashMap as HashMap;

use crate::evaluate::{Clock, Reason};
use crate::inventory::gcp::sql_backup::{FINAL, OWN_PREFIX, SUCCESSFUL, TYPES};
use crate::inventory::{GcpKind, GcpResource};
use crate::policy::{SqlBackupPolicy, any_match};

/// The successful backups of each instance, newest first, ranked once per run.
pub(super) struct Retention<'a> {
    policy: &'a SqlBackupPolicy,
    clock: Clock,
    /// Instance → start times of its successful backups, newest first.
    times: HashMap<String, Vec<DateTime<Utc>>>,
}

/// The group a backup is counted in: its instance (a deleted one's with its deletion time).
fn group(r: &GcpResource) -> &str {
    r.source.as_deref().unwrap_or(&r.name)
}

/// The instance a backup is of: the first part of its name.
fn instance(r: &GcpResource) -> &str {
    r.name.split('/').next().unwrap_or(&r.name)
}

impl<'a> Retention<'a> {
    pub(super) fn new(policy: &'a SqlBackupPolicy, all: &[GcpResource], clock: Clock) -> Self {
        let mut times: HashMap<String, Vec<DateTime<Utc>>> = HashMap::default();
        // Only a successful backup is a restore point: a failed run does not count as one of
        // the newest.
        for r in all
            .iter()
            .filter(|r| r.kind == GcpKind::SqlBackup && r.status.as_deref() == Some(SUCCESSFUL))
        {
            if let Some(t) = r.created {
                times.entry(group(r).to_string()).or_default().push(t);
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

    /// The keep reasons of one backup, and the detail the report shows.
    pub(super) fn judge(&self, r: &GcpResource, keep: &mut Vec<Reason>) -> Option<String> {
        let mut detail = None;
        if let Some(t) = r.created {
            // Strictly newer ones: every backup tied with the last kept one is kept too.
            let newer = self
                .times
                .get(group(r))
                .map_or(0, |list| list.partition_point(|other| *other > t));
            if newer < self.policy.keep_recent as usize {
                keep.push(Reason::RecentVersion);
            }
            if self.clock.now - t < Duration::days(i64::from(self.policy.max_age_days)) {
                keep.push(Reason::WithinMaxAge);
            }
            detail = Some(format!(
                "{} days old, {newer} newer successful backup{} of instance `{}`",
                (self.clock.now - t).num_days(),
                if newer == 1 { "" } else { "s" },
                group(r)
            ));
        }
        let instance = instance(r);
        if any_match(&self.policy.allowed, instance) {
            keep.push(Reason::InAllowlist);
        }
        let kind = r.purpose.as_deref();
        if !kind.is_some_and(|t| TYPES.contains(&t)) {
            keep.push(Reason::SystemManaged);
            detail = Some(format!(
                "type {}: not a backup retention applies to",
                kind.unwrap_or("unknown")
            ));
        }
        let own = r
            .description
            .as_deref()
            .is_some_and(|d| d.starts_with(OWN_PREFIX));
        if (kind == Some(FINAL) || own) && !self.policy.delete_final_backups {
            keep.push(Reason::FinalBackup);
            detail = Some(if kind == Some(FINAL) {
                format!(
                    "the final backup of instance `{instance}`, taken when it was deleted: the only copy of its data"
                )
            } else {
                format!("driftsweep's backup of instance `{instance}` before deleting it")
            });
        }
        // Being taken, failed, or being deleted: only a finished backup is judged.
        if r.status.as_deref() != Some(SUCCESSFUL) {
            keep.push(Reason::InUse);
            detail = Some(format!(
                "status {}",
                r.status.as_deref().unwrap_or("unknown")
            ));
        }
        detail
    }
}
