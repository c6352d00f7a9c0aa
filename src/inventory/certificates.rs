//! Certificate Manager certificates, and the certificate map entries that put them in use.

use serde_json::Value;

use super::gcp_common::{items, labels, required, short_name, strings, text, time};
use super::{GcpKind, GcpResource};

/// A `certificates.list` response (`{"certificates": [...]}`); named by the last segment of
/// the resource name, the full name kept for enforce.
pub fn parse_certificates(body: &Value) -> Result<Vec<GcpResource>, String> {
    items(body, "certificates")?
        .into_iter()
        .map(|(path, o)| {
            let full = required(o, &path, "name")?;
            Ok(GcpResource {
                resource_name: Some(full.to_string()),
                etag: text(o, "etag"),
                created: time(o, &path, "createTime")?,
                description: text(o, "description"),
                labels: labels(o),
                ..GcpResource::of(GcpKind::Certificate, short_name(full))
            })
        })
        .collect()
}

/// A `certificateMapEntries.list` response: (certificate short name, user) pairs.
pub fn parse_map_entries(body: &Value) -> Result<Vec<(String, String)>, String> {
    let mut uses = Vec::new();
    for (path, o) in items(body, "certificateMapEntries")? {
        let entry = required(o, &path, "name")?.to_string();
        for cert in strings(o, "certificates") {
            uses.push((
                short_name(&cert).to_string(),
                format!("map entry {}", short_name(&entry)),
            ));
        }
    }
    Ok(uses)
}
