//! The live inventory: what the APIs say now, from the cluster, the container registries and
//! the GCP project. A source that cannot be read is a gap: nothing it could protect is
//! deleted.

use std::collections::BTreeMap;
use std::path::Path;

use futures::StreamExt;

use serde_json::Value;

use super::GcpKind;
use super::cluster::{Cluster, ClusterOptions, ReadPlan};
use super::gcp_live::{GcpAuth, GcpClients};
use super::registry::client::{
    Credentials, RegistryClient, RepositoryListing, is_google_host, split_repository,
};
use super::registry::parse_tag_list;
use super::{Gap, Inventory, Protects, Provider};
use crate::manifests::Desired;
use crate::policy::{KindName, Policy};

/// An inventory with the raw listings it came from (what `snapshot` writes).
pub struct LiveInventory {
    pub inventory: Inventory,
    pub listings: Vec<RepositoryListing>,
    /// `kubernetes/<resource>.json` bodies: `List`s of the objects as read.
    pub kubernetes_lists: BTreeMap<String, Value>,
    /// `gcp/<file>` bodies: the REST list responses.
    pub gcp_files: BTreeMap<String, Value>,
}

fn gap(provider: Provider, what: String, error: String, protects: Protects, failed: bool) -> Gap {
    Gap {
        provider,
        what,
        error,
        protects,
        failed,
    }
}

/// The clients of one run, each made once: the audit reads through them and enforce deletes
/// through them. `None`: the policy does not use that source; `Err`: it cannot be used.
pub struct Sources {
    pub cluster: Option<Result<Cluster, String>>,
    /// The run's one Google credential (GCP clients, Artifact Registry, Google registries).
    pub auth: GcpAuth,
    pub gcp: Option<Result<GcpClients, String>>,
    pub registry: Option<Result<RegistryClient, String>>,
}

impl Sources {
    /// Connects what the policy names. The cluster is probed once (`/version`), so an
    /// unreachable one is one clear error.
    pub async fn connect(policy: &Policy, cluster: &ClusterOptions) -> Sources {
        let cluster = if policy.kubernetes.is_some()
            || policy.registry.as_ref().is_some_and(|r| r.protect_in_use)
        {
            Some(match Cluster::connect(cluster).await {
                Ok(client) => match client.probe().await {
                    Ok(version) => {
                        tracing::info!(%version, "connected to the cluster");
                        Ok(client)
                    }
                    Err(e) => Err(format!("cannot reach the cluster: {e}")),
                },
                Err(e) => Err(e.to_string()),
            })
        } else {
            None
        };
        // Only the project and the registry speak to Google: a cluster-only audit neither
        // looks for credentials nor probes the metadata server.
        let (auth, auth_error) = if policy.gcp.is_none() && policy.registry.is_none() {
            (GcpAuth::anonymous(), None)
        } else {
            match GcpAuth::from_env().await {
                Ok(auth) => (auth, None),
                Err(e) => (GcpAuth::anonymous(), Some(e)),
            }
        };
        let gcp = match (&policy.gcp, &auth_error) {
            (None, _) => None,
            (Some(_), Some(e)) => Some(Err(e.clone())),
            (Some(g), None) => Some(GcpClients::new(g, auth.clone()).await),
        };
        let registry = match &policy.registry {
            Some(r) => Some(registry_client(r, &auth).await),
            None => None,
        };
        Sources {
            cluster,
            auth,
            gcp,
            registry,
        }
    }

    /// The cluster, when the policy uses it and it answered.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref().and_then(|c| c.as_ref().ok())
    }
}

/// Reads every source the policy names, through `sources`, for an audit: the records
/// decisions need, not the objects themselves.
pub async fn read(policy: &Policy, desired: &Desired, sources: &Sources) -> LiveInventory {
    read_keeping(policy, desired, sources, false).await
}

/// The same for `snapshot`: the Kubernetes objects as read are kept too, to be written.
pub async fn read_for_snapshot(
    policy: &Policy,
    desired: &Desired,
    sources: &Sources,
) -> LiveInventory {
    read_keeping(policy, desired, sources, true).await
}

async fn read_keeping(
    policy: &Policy,
    desired: &Desired,
    sources: &Sources,
    keep_lists: bool,
) -> LiveInventory {
    let deadlines = super::cluster::Deadlines::from_env();
    let mut inventory = Inventory::default();
    let mut listings = Vec::new();
    let mut kubernetes_lists = BTreeMap::new();
    match &sources.cluster {
        None => {}
        Some(Ok(client)) => {
            let plan = read_plan(policy, desired);
            let read = super::cluster::read(client, &plan, &deadlines, keep_lists).await;
            inventory.kubernetes = Some(read.objects);
            inventory.gaps.extend(read.gaps);
            kubernetes_lists = read.lists;
            inventory.kubernetes_listed = read.listed;
        }
        Some(Err(e)) => inventory.gaps.push(gap(
            Provider::Kubernetes,
            "the cluster".to_string(),
            e.clone(),
            Protects::KubernetesReferences,
            true,
        )),
    }
    let mut gcp_files = BTreeMap::new();
    match (&policy.gcp, &sources.gcp) {
        (Some(g), Some(Ok(clients))) => {
            let left = deadlines.run_left();
            match tokio::time::timeout(left, super::gcp_live::read(g, clients)).await {
                Ok(read) => {
                    inventory.gcp = read.resources;
                    inventory.gcp_listed = read.listed;
                    inventory.gaps.extend(read.gaps);
                    gcp_files = read.files;
                }
                Err(_) => {
                    for kind in GcpKind::ALL {
                        inventory.gaps.push(gap(
                            Provider::Gcp,
                            format!("{} in the project", kind.as_str()),
                            format!(
                                "not read within the run's deadline ({} s left of DRIFTSWEEP_RUN_DEADLINE_SECONDS)",
                                left.as_secs()
                            ),
                            Protects::Gcp(kind),
                            true,
                        ));
                    }
                }
            }
        }
        (_, Some(Err(e))) => {
            for kind in GcpKind::ALL {
                inventory.gaps.push(gap(
                    Provider::Gcp,
                    format!("{} in the project", kind.as_str()),
                    e.clone(),
                    Protects::Gcp(kind),
                    true,
                ));
            }
        }
        _ => {}
    }
    match (&policy.registry, &sources.registry) {
        (Some(r), Some(Ok(client))) => {
            let left = deadlines.run_left();
            let mut registry_inventory = Inventory::default();
            let mut registry_listings = Vec::new();
            let read = read_registry(
                client,
                r,
                &sources.auth,
                &mut registry_inventory,
                &mut registry_listings,
            );
            if tokio::time::timeout(left, read).await.is_ok() {
                inventory.registry = registry_inventory.registry;
                inventory.gaps.extend(registry_inventory.gaps);
                listings = registry_listings;
            } else {
                inventory.gaps.push(gap(
                    Provider::Registry,
                    "all registries".to_string(),
                    format!(
                        "not read within the run's deadline ({} s left of DRIFTSWEEP_RUN_DEADLINE_SECONDS)",
                        left.as_secs()
                    ),
                    Protects::Repository("*".to_string()),
                    true,
                ));
            }
        }
        (_, Some(Err(e))) => inventory.gaps.push(gap(
            Provider::Registry,
            "all registries".to_string(),
            e.clone(),
            Protects::Repository("*".to_string()),
            true,
        )),
        _ => {}
    }
    LiveInventory {
        inventory,
        listings,
        kubernetes_lists,
        gcp_files,
    }
}

/// A registry client with the credentials the environment gives: basic or token auth from
/// `DRIFTSWEEP_REGISTRY_*`, and an ADC token for Google registries.
/// The registry client deploy resolves its services' tags through: the policy's registry
/// settings (plain-HTTP hosts), with Google credentials when a service lives on Google.
pub async fn deploy_registry(policy: &Policy, auth: &GcpAuth) -> Result<RegistryClient, String> {
    let mut r = policy
        .registry
        .clone()
        .unwrap_or(crate::policy::RegistryPolicy {
            repositories: Vec::new(),
            scan: Vec::new(),
            keep_recent: 10,
            max_age_days: 90,
            plain_http_hosts: Vec::new(),
            protect_in_use: true,
        });
    r.repositories = policy
        .deploy
        .iter()
        .flat_map(|d| d.services.iter().map(|s| s.image.clone()))
        .collect();
    r.scan.clear();
    registry_client(&r, auth).await
}

async fn registry_client(
    r: &crate::policy::RegistryPolicy,
    auth: &GcpAuth,
) -> Result<RegistryClient, String> {
    let mut credentials = Credentials::from_env();
    let google = r
        .repositories
        .iter()
        .chain(&r.scan)
        .any(|repo| is_google_host(split_repository(repo).0));
    if google {
        // The run's one Google credential (anonymous: none).
        match auth.bearer().await {
            Ok(token) => credentials.google_token = token,
            // Without a token, public images still read; private ones fail per repository.
            Err(e) => tracing::warn!(error = %e, "no Google credentials for the registries"),
        }
    }
    RegistryClient::new(&r.plain_http_hosts, credentials).map_err(|e| e.to_string())
}

/// Namespaces and the audited kinds, everything that proves use, and the manifests' kinds.
pub fn read_plan(policy: &Policy, desired: &Desired) -> ReadPlan {
    let mut audited = Vec::new();
    let mut manifest_kinds: Vec<(String, String)> = Vec::new();
    if let Some(k) = &policy.kubernetes {
        audited.push("Namespace");
        for kind in &k.kinds {
            match kind {
                KindName::Known(known) => audited.push(known.as_str()),
                // Found through discovery, like the manifests' own kinds.
                KindName::Custom { api_version, kind } => {
                    manifest_kinds.push((api_version.clone(), kind.clone()));
                }
            }
        }
    }
    manifest_kinds.extend(
        desired
            .objects
            .iter()
            .filter(|d| !d.object.api_version.is_empty())
            .map(|d| (d.object.api_version.clone(), d.object.kind.clone())),
    );
    manifest_kinds.sort();
    manifest_kinds.dedup();
    ReadPlan::new(&audited, true, &manifest_kinds)
}

/// Repositories read at once (each with up to the client's `CONCURRENCY` requests).
const REPOSITORIES_IN_FLIGHT: usize = 4;

pub async fn read_registry(
    client: &RegistryClient,
    policy: &crate::policy::RegistryPolicy,
    auth: &GcpAuth,
    inventory: &mut Inventory,
    listings: &mut Vec<RepositoryListing>,
) {
    let mut repositories: Vec<String> = policy.repositories.clone();
    let mut artifact_registry = None;
    for root in &policy.scan {
        let found = if super::artifact_registry::parent_of(root).is_some() {
            if artifact_registry.is_none() {
                let endpoint = std::env::var("DRIFTSWEEP_GCP_ARTIFACTREGISTRY_ENDPOINT").ok();
                artifact_registry = Some(super::artifact_registry::client(endpoint, auth).await);
            }
            match artifact_registry.as_ref() {
                Some(Ok(ar)) => super::artifact_registry::repositories(ar, root).await,
                Some(Err(e)) => Err(e.clone()),
                None => Err("no Artifact Registry client".to_string()),
            }
        } else {
            client.catalog(root).await.map_err(|e| e.to_string())
        };
        match found {
            Ok(found) => repositories.extend(found),
            Err(e) => inventory.gaps.push(gap(
                Provider::Registry,
                format!("repositories under `{root}`"),
                e,
                Protects::Repository(root.clone()),
                true,
            )),
        }
    }
    repositories.sort();
    repositories.dedup();
    // A few repositories at a time, each with its own requests in flight (the client's
    // CONCURRENCY): a project of 1,000 repositories is not read one after another. In the
    // repositories' order, so the inventory is the same whatever answers first.
    let read: Vec<_> = futures::stream::iter(repositories)
        .map(|name| async move {
            let result = client.read_repository(&name).await;
            (name, result)
        })
        .buffered(REPOSITORIES_IN_FLIGHT)
        .collect()
        .await;
    for (name, result) in read {
        match result {
            Ok(listing) => match to_repository(&listing) {
                Ok(repo) => {
                    inventory.registry.push(repo);
                    listings.push(listing);
                }
                Err(e) => inventory.gaps.push(gap(
                    Provider::Registry,
                    format!("repository `{name}`"),
                    e,
                    Protects::Repository(name.clone()),
                    true,
                )),
            },
            Err(e) => inventory.gaps.push(gap(
                Provider::Registry,
                format!("repository `{name}`"),
                e.to_string(),
                Protects::Repository(name.clone()),
                true,
            )),
        }
    }
}

/// The same parser a snapshot replay uses, so that live and replayed verdicts agree.
pub fn to_repository(listing: &RepositoryListing) -> Result<super::Repository, String> {
    parse_tag_list(&listing.name, &listing.tag_list, &mut |digest: &str| {
        Ok(listing.index_manifests.get(digest).cloned())
    })
}

/// Writes a snapshot folder: the Kubernetes lists, the GCP and registry files, `snapshot.json`
/// and `errors.json`. It holds Secrets' metadata, so every file is 0600 in 0700 folders; every
/// Kubernetes object is redacted once more on its way to disk (the lists were when read).
pub fn write_snapshot(
    dir: &Path,
    live: &mut LiveInventory,
    recorded_at: chrono::DateTime<chrono::Utc>,
) -> std::io::Result<()> {
    use crate::private;
    let write = |path: &Path, body: &Value| -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            private::create_dir_all(parent)?;
        }
        private::write(path, pretty(body).as_bytes(), false)
    };
    private::create_dir_all(dir)?;
    // The folder is new or empty (`snapshot` checks): it is the program's own.
    private::restrict(dir)?;
    if live.inventory.kubernetes.is_some() {
        let kube_dir = dir.join("kubernetes");
        private::create_dir_all(&kube_dir)?;
        for (resource, list) in &mut live.kubernetes_lists {
            if let Some(items) = list.get_mut("items").and_then(Value::as_array_mut) {
                items.iter_mut().for_each(super::kubernetes::redact);
            }
            write(&kube_dir.join(format!("{resource}.json")), list)?;
        }
    }
    for (file, body) in &live.gcp_files {
        write(&dir.join("gcp").join(file), body)?;
    }
    for listing in &live.listings {
        let file = dir.join("registry").join(format!("{}.json", listing.name));
        write(&file, &listing.tag_list)?;
        let manifests = dir.join("registry").join(&listing.name).join("manifests");
        for (digest, body) in &listing.index_manifests {
            write(&manifests.join(format!("{digest}.json")), body)?;
        }
    }
    let meta: BTreeMap<&str, Value> = BTreeMap::from([
        (
            "recorded_at",
            Value::String(recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ),
        (
            "driftsweep_version",
            Value::String(env!("CARGO_PKG_VERSION").to_string()),
        ),
        (
            "kubernetes_listed",
            Value::Array(
                live.inventory
                    .kubernetes_listed
                    .iter()
                    .map(|k| Value::String(k.clone()))
                    .collect(),
            ),
        ),
    ]);
    write(
        &dir.join("snapshot.json"),
        &serde_json::to_value(meta).unwrap_or_default(),
    )?;
    let failed: Vec<&Gap> = live.inventory.gaps.iter().filter(|g| g.failed).collect();
    if !failed.is_empty() {
        write(
            &dir.join("errors.json"),
            &serde_json::to_value(failed).unwrap_or_default(),
        )?;
    }
    Ok(())
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_snapshot_holds_no_secret_value_and_is_private_whatever_the_umask() {
        // SAFETY: nextest runs each test in its own process; umask only affects file creation.
        unsafe { libc::umask(0o022) };
        let secret = super::super::kubernetes::tests::kubectl_applied_secret();
        let mut live = LiveInventory {
            inventory: Inventory {
                kubernetes: Some(Vec::new()),
                kubernetes_listed: vec!["Secret".to_string()],
                ..Inventory::default()
            },
            listings: Vec::new(),
            kubernetes_lists: BTreeMap::from([(
                "secrets".to_string(),
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [secret]}),
            )]),
            gcp_files: BTreeMap::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("snap");
        write_snapshot(&out, &mut live, chrono::Utc::now()).unwrap();
        let file = out.join("kubernetes/secrets.json");
        let text = std::fs::read_to_string(&file).unwrap();
        for value in [
            "czNjcjN0LWJhc2U2NC12YWx1ZQ==",
            "plain-t0ken-value",
            "cGxhaW4tdDBrZW4tdmFsdWU=",
        ] {
            assert!(
                !text.contains(value),
                "{value} written to the snapshot:\n{text}"
            );
        }
        assert!(text.contains("\"team\": \"payments\""), "{text}");
        assert_eq!(mode(&file), 0o600, "Secrets' metadata: owner only");
        assert_eq!(mode(&out.join("snapshot.json")), 0o600);
        assert_eq!(mode(&out), 0o700);
        assert_eq!(mode(&out.join("kubernetes")), 0o700);
    }
}
