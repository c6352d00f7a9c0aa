//! What keeps a log bucket whatever the allowlist says: its lifecycle state and its lock. The
//! sinks writing to it keep it through the referrers, as any named part of a chain.

use crate::evaluate::Reason;
use crate::inventory::GcpResource;
use crate::inventory::gcp::log_bucket::{ACTIVE, DELETE_REQUESTED};

/// The keep reasons of one log bucket, and the detail the report shows.
pub(super) fn judge(r: &GcpResource, keep: &mut Vec<Reason>) -> Option<String> {
    let mut detail = None;
    if r.retention_locked {
        keep.push(Reason::RetentionLocked);
        detail = Some(
            "locked: its retention cannot change, and it cannot be deleted while it holds logs"
                .to_string(),
        );
    }
    match r.status.as_deref() {
        Some(ACTIVE) => {}
        // Deleted already (by someone, or an earlier run): nothing left to do.
        Some(DELETE_REQUESTED) => {
            keep.push(Reason::Terminating);
            detail = Some(
                "lifecycle state DELETE_REQUESTED: already deleted; restorable with `gcloud logging buckets undelete` until Google purges it 7 days after the delete"
                    .to_string(),
            );
        }
        // Being made or updated, failed, or unknown: only an active bucket is judged.
        other => {
            keep.push(Reason::InUse);
            detail = Some(format!(
                "lifecycle state {}",
                other.unwrap_or("LIFECYCLE_STATE_UNSPECIFIED")
            ));
        }
    }
    detail
}
