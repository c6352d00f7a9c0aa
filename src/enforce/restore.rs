//! `driftsweep restore`: re-creates the Kubernetes objects of one enforce backup.
//!
//! Server-set fields (uid, resourceVersion, creationTimestamp, managedFields, status, …) are
//! stripped, namespaces are created before their contents, and an object that already exists
//! is left as it is. Objects with an owner are left to their owner, which re-creates them (a
//! Pod of a ReplicaSet, say); image versions cannot be restored, since the registry deleted
//! their blobs.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::backup::{self, Entry};
use crate::inventory::cluster::{Cluster, ClusterError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreStatus {
    Restored,
    AlreadyExists,
    LeftToOwner,
    NotRestorable,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub status: RestoreStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `KIND/NAMESPACE/NAME` or `KIND/NAME` (cluster-scoped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Only {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl std::str::FromStr for Only {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [kind, name] if !kind.is_empty() && !name.is_empty() => Ok(Only {
                kind: kind.to_string(),
                namespace: None,
                name: name.to_string(),
            }),
            [kind, ns, name] if !kind.is_empty() && !ns.is_empty() && !name.is_empty() => {
                Ok(Only {
                    kind: kind.to_string(),
                    namespace: Some(ns.to_string()),
                    name: name.to_string(),
                })
            }
            _ => Err(format!(
                "`{s}` is not KIND/NAMESPACE/NAME or KIND/NAME, e.g. `ConfigMap/aia-staging/api-config` or `Namespace/aia-preview`"
            )),
        }
    }
}

impl Only {
    /// Whether `entry` is selected: the object itself, or the contents of a selected namespace.
    fn selects(&self, entry: &Entry) -> bool {
        let itself =
            entry.kind == self.kind && entry.name == self.name && entry.namespace == self.namespace;
        let contents = self.kind == "Namespace"
            && self.namespace.is_none()
            && entry.contents_of.as_deref() == Some(self.name.as_str());
        itself || contents
    }
}

/// Removes what the server sets, so the object can be created again.
pub fn strip(mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
            "selfLink",
            "ownerReferences",
        ] {
            meta.remove(field);
        }
        // The namespace controller's finalizer is set again by the server.
    }
    if object.get("kind").and_then(Value::as_str) == Some("Namespace")
        && let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("finalizers");
    }
    object
}

fn has_owner(object: &Value) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|o| !o.is_empty())
}

/// Restores `location` (one run's backup folder) into `cluster`.
pub async fn restore(
    cluster: &Cluster,
    location: &str,
    only: Option<&Only>,
) -> Result<Vec<Restored>, backup::BackupError> {
    let (store, index) = backup::read(location).await?;
    let mut entries: Vec<&Entry> = index
        .entries
        .iter()
        .filter(|e| only.is_none_or(|o| o.selects(e)))
        .collect();
    // Namespaces first, then what goes in them.
    entries.sort_by_key(|e| (e.kind != "Namespace", e.namespace.clone(), e.kind.clone()));
    let mut out = Vec::new();
    for entry in entries {
        let mut result = Restored {
            kind: entry.kind.clone(),
            namespace: entry.namespace.clone(),
            name: entry.name.clone(),
            status: RestoreStatus::Failed,
            detail: None,
        };
        if !entry.restorable {
            result.status = RestoreStatus::NotRestorable;
            result.detail = Some(if entry.provider == "gcp" {
                format!(
                    "GCP resources are not re-created by restore; {} holds it as the API returned it (service accounts: `gcloud iam service-accounts undelete` within 30 days)",
                    store.location(&entry.file)
                )
            } else {
                "image versions cannot be restored: the registry deleted their blobs; push the image again from its source"
                    .to_string()
            });
            out.push(result);
            continue;
        }
        let object: Value = match store.get(&entry.file).await? {
            Some(bytes) => match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    result.detail = Some(format!("{}: not JSON: {e}", store.location(&entry.file)));
                    out.push(result);
                    continue;
                }
            },
            None => {
                result.detail = Some(format!("{} is missing", store.location(&entry.file)));
                out.push(result);
                continue;
            }
        };
        if has_owner(&object) {
            result.status = RestoreStatus::LeftToOwner;
            result.detail = Some("its owner re-creates it".to_string());
            out.push(result);
            continue;
        }
        match create(cluster, entry, strip(object)).await {
            Ok(status) => result.status = status,
            Err(e) => result.detail = Some(e.to_string()),
        }
        out.push(result);
    }
    Ok(out)
}

/// Creates one object; waits (up to two minutes) for a namespace still terminating.
async fn create(
    cluster: &Cluster,
    entry: &Entry,
    object: Value,
) -> Result<RestoreStatus, ClusterError> {
    let info = cluster
        .resolve(entry.api_version.as_deref().unwrap_or("v1"), &entry.kind)
        .await?;
    let collection = info.collection(entry.namespace.as_deref());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let request = http::Request::builder()
            .method("POST")
            .uri(&collection)
            .header("content-type", "application/json")
            .body(object.to_string().into_bytes())
            .map_err(|e| ClusterError::Transport {
                method: "POST".to_string(),
                path: collection.clone(),
                message: e.to_string(),
            })?;
        match cluster.send_json(request).await {
            Ok(_) => return Ok(RestoreStatus::Restored),
            Err(e) if e.code() == Some(409) || terminating(&e) => {
                // The old object, or its namespace, may still be terminating: wait for it.
                if e.code() == Some(409)
                    && !still_terminating(cluster, &collection, &entry.name).await
                {
                    return Ok(RestoreStatus::AlreadyExists);
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn still_terminating(cluster: &Cluster, collection: &str, name: &str) -> bool {
    let Ok(request) = http::Request::builder()
        .method("GET")
        .uri(format!("{collection}/{name}"))
        .body(Vec::new())
    else {
        return false;
    };
    match cluster.send_json(request).await {
        Ok(current) => current
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null()),
        // Gone between the create and this read: try the create again.
        Err(e) => e.code() == Some(404),
    }
}

/// 403 because the namespace is being terminated: wait for it to go, then create.
fn terminating(e: &ClusterError) -> bool {
    matches!(e, ClusterError::Api { code: 403, message, .. } if message.contains("being terminated"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strip_removes_what_the_server_sets_and_keeps_the_content() {
        let object = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "s", "namespace": "n", "uid": "u", "resourceVersion": "7",
                "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [],
                "labels": {"a": "b"}, "annotations": {"c": "d"}},
            "data": {"k": "dg=="}
        });
        let stripped = strip(object);
        assert_eq!(
            stripped,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "s", "namespace": "n", "labels": {"a": "b"}, "annotations": {"c": "d"}},
                "data": {"k": "dg=="}})
        );
    }

    #[test]
    fn only_selects_an_object_or_a_namespace_with_its_contents() {
        let entry = |kind: &str, ns: Option<&str>, name: &str, of: Option<&str>| Entry {
            provider: "kubernetes".into(),
            kind: kind.into(),
            api_version: Some("v1".into()),
            namespace: ns.map(Into::into),
            name: name.into(),
            uid: None,
            file: String::new(),
            backed_up_at: chrono::Utc::now(),
            restorable: true,
            contents_of: of.map(Into::into),
        };
        let ns: Only = "Namespace/old".parse().unwrap();
        assert!(ns.selects(&entry("Namespace", None, "old", None)));
        assert!(ns.selects(&entry("ConfigMap", Some("old"), "c", Some("old"))));
        assert!(!ns.selects(&entry("ConfigMap", Some("other"), "c", None)));
        let cm: Only = "ConfigMap/app/c".parse().unwrap();
        assert!(cm.selects(&entry("ConfigMap", Some("app"), "c", None)));
        assert!(!cm.selects(&entry("ConfigMap", Some("app"), "d", None)));
        assert!("ConfigMap".parse::<Only>().is_err());
        assert!("a/b/c/d".parse::<Only>().is_err());
    }
}
