//! Certificate Manager certificates (`gcp.ssl_certificates`, with the Compute ones), kept in
//! use by the certificate map entries that name them. The target proxies are read too: a
//! proxy that names a map puts its certificates in use, so without them nothing is proved
//! unused.

use google_cloud_certificatemanager_v1::client::CertificateManager;
use serde_json::{Value, json};

use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_common::{items, labels, required, short_name, strings, text, time};
use crate::inventory::gcp_live::{
    GcpClients, GcpDelete, client, describe, get, in_use, list_paged, not_found, to_json,
};
use crate::inventory::{GcpKind, GcpResource};

pub const FILE: &str = "certificates.json";
pub const MAP_ENTRIES: &str = "certificateMapEntries.json";
const ENDPOINT: &str = "DRIFTSWEEP_GCP_CERTIFICATEMANAGER_ENDPOINT";

pub static KIND: Kind = Kind {
    kind: GcpKind::Certificate,
    what: "Certificate Manager certificates",
    audited: |p| p.ssl_certificates.is_some(),
    allowed: |p| p.ssl_certificates.as_ref().map(|a| a.allowed.as_slice()),
    floor: super::ssl_certificate::FLOOR,
    list,
    parse,
    current,
    delete,
    reverify: Reverify {
        id: None,
        created: Some("createTime"),
    },
    auditor: &[
        "certificatemanager.certs.list",
        "certificatemanager.certmaps.list",
        "certificatemanager.certmapentries.list",
        "compute.targetHttpsProxies.list",
        "compute.targetSslProxies.list",
    ],
    enforcer: &[
        "certificatemanager.certs.get",
        "certificatemanager.certs.delete",
        "certificatemanager.operations.get",
    ],
};

fn parent(clients: &GcpClients) -> String {
    format!("projects/{}/locations/global", clients.project)
}

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        match client!(clients, CertificateManager, ENDPOINT) {
            Ok(c) => {
                let parent = parent(clients);
                let certificates = list_paged(
                    |token| {
                        let c = c.clone();
                        let parent = parent.clone();
                        async move {
                            let page = c
                                .list_certificates()
                                .set_parent(parent)
                                .set_page_size(500)
                                .set_page_token(token)
                                .send()
                                .await?;
                            Ok((to_json(page.certificates), page.next_page_token))
                        }
                    },
                    "certificates.list",
                )
                .await;
                listed.store(KIND.what, FILE, "certificates", certificates);
                let entries = map_entries(&c, &parent).await;
                match entries {
                    Ok(entries) => {
                        listed.files.insert(
                            MAP_ENTRIES.to_string(),
                            json!({"certificateMapEntries": entries}),
                        );
                    }
                    Err(e) => listed
                        .failed
                        .push(("certificate map entries".to_string(), e)),
                }
            }
            Err(e) => listed.failed.push((KIND.what.to_string(), e)),
        }
        super::ssl_certificate::proxies(clients, &mut listed).await;
        listed
    })
}

async fn map_entries(client: &CertificateManager, parent: &str) -> Result<Vec<Value>, String> {
    let maps = list_paged(
        |token| {
            let c = client.clone();
            let parent = parent.to_string();
            async move {
                let page = c
                    .list_certificate_maps()
                    .set_parent(parent)
                    .set_page_size(500)
                    .set_page_token(token)
                    .send()
                    .await?;
                Ok((to_json(page.certificate_maps), page.next_page_token))
            }
        },
        "certificateMaps.list",
    )
    .await?;
    let mut entries = Vec::new();
    for map in maps {
        let Some(name) = map.get("name").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        let mut got = list_paged(
            |token| {
                let c = client.clone();
                let name = name.clone();
                async move {
                    let page = c
                        .list_certificate_map_entries()
                        .set_parent(name)
                        .set_page_size(500)
                        .set_page_token(token)
                        .send()
                        .await?;
                    Ok((to_json(page.certificate_map_entries), page.next_page_token))
                }
            },
            "certificateMapEntries.list",
        )
        .await?;
        entries.append(&mut got);
    }
    Ok(entries)
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    let Some(mut certificates) = parse_file(files, FILE, parse_certificates)? else {
        return Ok(None);
    };
    let users = parse_file(files, MAP_ENTRIES, parse_map_entries)?.unwrap_or_default();
    for c in &mut certificates {
        c.used_by = users
            .iter()
            .filter(|(cert, _)| *cert == c.name)
            .map(|(_, user)| user.clone())
            .collect();
    }
    Ok(Some(certificates))
}

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

fn full_name(clients: &GcpClients, name: &str, resource_name: Option<&str>) -> String {
    resource_name
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}/certificates/{name}", parent(clients)))
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        let c = client!(clients, CertificateManager, ENDPOINT)?;
        let full = full_name(clients, target.name, target.resource_name);
        get!(
            c.get_certificate().set_name(full.clone()).send(),
            "certificates.get"
        )
    })
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    use google_cloud_lro::Poller as _;
    Box::pin(async move {
        let c = client!(clients, CertificateManager, ENDPOINT)?;
        let full = d
            .current
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| full_name(clients, d.name, None));
        match c
            .delete_certificate()
            .set_name(full)
            .poller()
            .until_done()
            .await
        {
            Ok(()) => Ok(GcpDelete::Deleted(None)),
            Err(e) if not_found(&e) => Ok(GcpDelete::AlreadyGone),
            Err(e) if in_use(&e) => Ok(GcpDelete::Skipped(format!(
                "in use (a certificate map entry names it): {e}"
            ))),
            Err(e) => Err(describe("certificates.delete", &e)),
        }
    })
}
