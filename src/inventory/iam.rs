//! IAM service accounts, named by email. The IAM API reports no creation time.

use serde_json::Value;

use super::gcp_common::{items, required, text};
use super::{GcpKind, GcpResource};

/// A `projects.serviceAccounts.list` response (`{"accounts": [...]}`).
pub fn parse_service_accounts(body: &Value) -> Result<Vec<GcpResource>, String> {
    items(body, "accounts")?
        .into_iter()
        .map(|(path, o)| {
            Ok(GcpResource {
                resource_name: text(o, "name"),
                id: text(o, "uniqueId"),
                etag: text(o, "etag"),
                description: text(o, "description"),
                disabled: o.get("disabled").and_then(Value::as_bool),
                ..GcpResource::of(GcpKind::IamServiceAccount, required(o, &path, "email")?)
            })
        })
        .collect()
}
