//! Cloud Storage buckets. A bucket's emptiness comes from an objects list when one was read;
//! otherwise it is unknown and enforce checks it before deleting.

use serde_json::Value;

use super::gcp_common::{items, labels, required, text, time};
use super::{GcpKind, GcpResource};

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
