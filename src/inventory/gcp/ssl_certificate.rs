//! Compute SSL certificates (`gcp.ssl_certificates`), kept in use by the target HTTPS and
//! SSL proxies that name them. Without both proxy lists nothing proves a certificate unused.

use google_cloud_compute_v1::client::{SslCertificates, TargetHttpsProxies, TargetSslProxies};
use serde_json::{Value, json};

use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_common::{items, required, short_name, strings, text, time};
use crate::inventory::gcp_live::{
    COMPUTE, GcpClients, GcpDelete, client, compute_deleted, compute_list, get,
};
use crate::inventory::{GcpKind, GcpResource};

pub const FILE: &str = "sslCertificates.json";
pub const HTTPS_PROXIES: &str = "targetHttpsProxies.json";
pub const SSL_PROXIES: &str = "targetSslProxies.json";

/// The patterns of the certificates GKE makes (ManagedCertificate, Ingress), shared with
/// Certificate Manager's.
pub const FLOOR: &[&str] = &["mcrt-*", "k8s-ssl-*", "k8s2-*"];

pub static KIND: Kind = Kind {
    kind: GcpKind::SslCertificate,
    what: "SSL certificates",
    audited: |p| p.ssl_certificates.is_some(),
    allowed: |p| p.ssl_certificates.as_ref().map(|a| a.allowed.as_slice()),
    floor: FLOOR,
    list,
    parse,
    current,
    delete,
    reverify: Reverify {
        id: Some("id"),
        created: Some("creationTimestamp"),
    },
    auditor: &[
        "compute.sslCertificates.list",
        "compute.targetHttpsProxies.list",
        "compute.targetSslProxies.list",
    ],
    enforcer: &[
        "compute.sslCertificates.get",
        "compute.sslCertificates.delete",
        "compute.globalOperations.get",
    ],
};

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let items = match client!(clients, SslCertificates, COMPUTE) {
            Ok(c) => compute_list!(c, clients.project.clone(), "sslCertificates.list"),
            Err(e) => Err(e),
        };
        listed.store(KIND.what, FILE, "items", items);
        proxies(clients, &mut listed).await;
        listed
    })
}

/// Both target proxy lists, into `listed` (Certificate Manager's kind reads them too: a
/// proxy names a certificate map).
pub async fn proxies(clients: &GcpClients, listed: &mut Listed) {
    let p = clients.project.clone();
    let https = clients
        .shared_list(HTTPS_PROXIES, || async {
            let c = client!(clients, TargetHttpsProxies, COMPUTE)?;
            compute_list!(c, p.clone(), "targetHttpsProxies.list").map(|i| json!({"items": i}))
        })
        .await;
    let ssl = clients
        .shared_list(SSL_PROXIES, || async {
            let c = client!(clients, TargetSslProxies, COMPUTE)?;
            compute_list!(c, p.clone(), "targetSslProxies.list").map(|i| json!({"items": i}))
        })
        .await;
    listed.store_body("target proxies", HTTPS_PROXIES, https);
    listed.store_body("target proxies", SSL_PROXIES, ssl);
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    let Some(mut certificates) = parse_file(files, FILE, parse_ssl_certificates)? else {
        return Ok(None);
    };
    let mut users: Vec<(String, String)> = Vec::new();
    for file in [HTTPS_PROXIES, SSL_PROXIES] {
        users.extend(parse_file(files, file, parse_proxy_certificates)?.unwrap_or_default());
    }
    for c in &mut certificates {
        c.used_by = users
            .iter()
            .filter(|(cert, _)| *cert == c.name)
            .map(|(_, user)| user.clone())
            .collect();
    }
    Ok(Some(certificates))
}

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

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        let c = client!(clients, SslCertificates, COMPUTE)?;
        get!(
            c.get()
                .set_project(clients.project.clone())
                .set_ssl_certificate(target.name)
                .send(),
            "sslCertificates.get"
        )
    })
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    use google_cloud_lro::Poller as _;
    Box::pin(async move {
        let c = client!(clients, SslCertificates, COMPUTE)?;
        compute_deleted(
            c.delete()
                .set_project(clients.project.clone())
                .set_ssl_certificate(d.name)
                .poller()
                .until_done()
                .await,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
