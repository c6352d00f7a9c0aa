//! Compute Engine: SSL certificates, and the target proxies whose
//! references keep a certificate in use.

use serde_json::Value;

use super::gcp_common::{items, required, short_name, strings, text, time};
use super::{GcpKind, GcpResource};

/// A `compute#sslCertificateList` response.
pub fn parse_ssl_certificates(body: &Value) -> Result<Vec<GcpResource>, String> {
    items(body, "items")?
        .into_iter()
        .map(|(path, o)| {
            Ok(GcpResource {
                id: text(o, "id"),
                self_link: text(o, "selfLink"),
                created: time(o, &path, "creationTimestamp")?,
                description: text(o, "description"),
                ..GcpResource::of(GcpKind::SslCertificate, required(o, &path, "name")?)
            })
        })
        .collect()
}

/// A target HTTPS or SSL proxy list: which certificates (by short name) each proxy uses,
/// and which certificate maps.
pub fn parse_proxy_certificates(body: &Value) -> Result<Vec<(String, String)>, String> {
    let mut uses = Vec::new();
    for (path, o) in items(body, "items")? {
        let proxy = required(o, &path, "name")?.to_string();
        for cert in strings(o, "sslCertificates") {
            uses.push((short_name(&cert).to_string(), format!("proxy {proxy}")));
        }
        if let Some(map) = text(o, "certificateMap") {
            uses.push((
                format!("map:{}", short_name(&map)),
                format!("proxy {proxy}"),
            ));
        }
    }
    Ok(uses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn proxies_name_their_certificates() {
        let list = json!({"items": [{"name": "p", "sslCertificates": [
            "https://www.googleapis.com/compute/v1/projects/x/global/sslCertificates/c1"]}]});
        assert_eq!(
            parse_proxy_certificates(&list).unwrap(),
            vec![("c1".into(), "proxy p".into())]
        );
    }
}
