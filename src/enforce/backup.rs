//! Backups: every object enforce deletes is written here first, as the API returned it (a
//! Secret with its data), or it is not deleted. One folder per reviewed plan, so a rerun of an
//! interrupted plan adds to the same backup and loses nothing:
//!
//! ```text
//! <location>/<plan run id>/index.json
//! <location>/<plan run id>/kubernetes/<Kind>/<namespace or _cluster>/<name>.<uid>.json
//! <location>/<plan run id>/registry/<repository>@<digest>.json   (a record; not restorable)
//! ```

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use google_cloud_storage::client::Storage;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::report::archive::{self, GcsLocation};

pub const INDEX: &str = "index.json";
pub const INDEX_SCHEMA: &str = "driftsweep.backup/v1";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot write the backup `{path}`: {message}")]
    Write { path: String, message: String },
    #[error("cannot read the backup `{path}`: {message}")]
    Read { path: String, message: String },
    #[error(
        "refusing to build a backup path from {what} `{value}`: it is not one plain path component (empty, `.`, `..`, `/` or NUL)"
    )]
    UnsafeName { what: &'static str, value: String },
    #[error(
        "`{0}` is not a driftsweep backup (no readable {INDEX})\nhint: name the folder of one run, e.g. `backups/20261129T073000Z-1a2b3c`"
    )]
    NoIndex(String),
}

/// Where backups go: a folder or Cloud Storage.
pub enum Store {
    Dir(PathBuf),
    Gcs {
        client: Box<Storage>,
        base: GcsLocation,
    },
}

impl Store {
    /// Opens `location` (a folder or `gs://bucket/prefix`).
    pub async fn open(location: &str) -> Result<Store, BackupError> {
        if location.starts_with("gs://") {
            let base: GcsLocation = location.parse().map_err(|e| BackupError::Write {
                path: location.to_string(),
                message: format!("{e}"),
            })?;
            let client = archive::client().await.map_err(|e| BackupError::Write {
                path: location.to_string(),
                message: format!("{:#}", anyhow::Error::new(e)),
            })?;
            Ok(Store::Gcs {
                client: Box::new(client),
                base,
            })
        } else {
            Ok(Store::Dir(PathBuf::from(location)))
        }
    }

    /// The printable location of `rel`.
    pub fn location(&self, rel: &str) -> String {
        match self {
            Store::Dir(dir) => dir.join(rel).display().to_string(),
            Store::Gcs { base, .. } => base.join(rel).to_string(),
        }
    }

    /// Writes `rel` durably: a file is written, synced and renamed into place.
    pub async fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<String, BackupError> {
        let location = self.location(rel);
        let err = |message: String| BackupError::Write {
            path: location.clone(),
            message,
        };
        match self {
            Store::Dir(dir) => {
                write_durably(dir, rel, &bytes).map_err(|e| err(e.to_string()))?;
            }
            Store::Gcs { client, base } => {
                archive::put(client, &base.join(rel), bytes, "application/json")
                    .await
                    .map_err(|e| err(format!("{:#}", anyhow::Error::new(e))))?;
            }
        }
        Ok(location)
    }

    /// Reads `rel`; `None` when it does not exist.
    pub async fn get(&self, rel: &str) -> Result<Option<Vec<u8>>, BackupError> {
        let err = |message: String| BackupError::Read {
            path: self.location(rel),
            message,
        };
        match self {
            Store::Dir(dir) => match std::fs::read(dir.join(rel)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(err(e.to_string())),
            },
            Store::Gcs { client, base } => archive::get(client, &base.join(rel))
                .await
                .map_err(|e| err(format!("{:#}", anyhow::Error::new(e)))),
        }
    }
}

/// Writes `rel` under the folder `root` durably, 0600 in 0700 folders whatever the umask: a
/// backup holds Secrets with their data. Every folder from the plan's folder down is the
/// program's own, so it is made 0700 also when an earlier run left it wider; `root` itself
/// is made 0700 only when this creates it.
fn write_durably(root: &Path, rel: &str, bytes: &[u8]) -> std::io::Result<()> {
    let path = root.join(rel);
    let parent = path.parent().unwrap_or(root);
    crate::private::create_dir_all(parent)?;
    let mut folder = root.to_path_buf();
    for component in Path::new(rel)
        .parent()
        .into_iter()
        .flat_map(Path::components)
    {
        folder.push(component);
        crate::private::restrict(&folder)?;
    }
    crate::private::write(&path, bytes, true)
}

/// Refuses a name that would not stay one folder or file name of the backup: whatever checked
/// the names before (`enforce::names` checks a plan's), the path builder checks them again.
fn component<'a>(what: &'static str, value: &'a str) -> Result<&'a str, BackupError> {
    if super::names::is_path_component(value) {
        Ok(value)
    } else {
        Err(BackupError::UnsafeName {
            what,
            value: value.escape_debug().collect(),
        })
    }
}

/// One backed-up object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// `kubernetes` or `registry`.
    pub provider: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The file, relative to the backup folder.
    pub file: String,
    pub backed_up_at: DateTime<Utc>,
    /// Whether `driftsweep restore` can re-create it.
    pub restorable: bool,
    /// Set for the objects of a namespace backed up because the namespace is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents_of: Option<String>,
}

impl Entry {
    /// An entry for what is not a Kubernetes object (not re-created by `restore`).
    fn record(provider: &str, kind: &str, name: &str, file: &str) -> Entry {
        Entry {
            provider: provider.to_string(),
            kind: kind.to_string(),
            api_version: None,
            namespace: None,
            name: name.to_string(),
            uid: None,
            file: file.to_string(),
            backed_up_at: Utc::now(),
            restorable: false,
            contents_of: None,
        }
    }
}

/// `index.json`: every entry of the backup, across reruns of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub schema: String,
    /// The run id of the reviewed plan (or of the run, with `--no-review`).
    pub plan: String,
    pub entries: Vec<Entry>,
}

/// A backup being written: the store, the folder of this plan, and its index.
pub struct Backup {
    store: Store,
    folder: String,
    index: Mutex<Index>,
}

impl Backup {
    /// Opens the backup folder of `plan` under `store`, keeping what an earlier run wrote.
    pub async fn open(store: Store, plan: &str) -> Result<Backup, BackupError> {
        let folder = component("the plan's run id", plan)?.to_string();
        let index = match store.get(&format!("{folder}/{INDEX}")).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| BackupError::Read {
                path: store.location(&format!("{folder}/{INDEX}")),
                message: e.to_string(),
            })?,
            None => Index {
                schema: INDEX_SCHEMA.to_string(),
                plan: plan.to_string(),
                entries: Vec::new(),
            },
        };
        let backup = Backup {
            store,
            folder,
            index: Mutex::new(index),
        };
        // Prove the location is writable before anything is deleted.
        let index = backup.index.lock().await.clone();
        backup.write_index(&index).await?;
        Ok(backup)
    }

    /// The backup folder, printable.
    pub fn location(&self) -> String {
        self.store.location(&self.folder)
    }

    async fn write_index(&self, index: &Index) -> Result<(), BackupError> {
        let bytes = serde_json::to_vec_pretty(index).unwrap_or_default();
        self.store
            .put(&format!("{}/{INDEX}", self.folder), bytes)
            .await
            .map(|_| ())
    }

    /// Writes one Kubernetes object and records it in the index; answers where it went.
    pub async fn kubernetes(
        &self,
        object: &Value,
        contents_of: Option<&str>,
    ) -> Result<String, BackupError> {
        let text = |p: &str| {
            object
                .pointer(p)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let kind = text("/kind").unwrap_or_else(|| "Unknown".to_string());
        let name = text("/metadata/name").unwrap_or_default();
        let namespace = text("/metadata/namespace");
        let uid = text("/metadata/uid");
        let rel = format!(
            "kubernetes/{}/{}/{}.{}.json",
            component("a kind", &kind)?,
            component("a namespace", namespace.as_deref().unwrap_or("_cluster"))?,
            component("a name", &name)?,
            component("a uid", uid.as_deref().unwrap_or("no-uid"))?
        );
        let entry = Entry {
            provider: "kubernetes".to_string(),
            kind,
            api_version: text("/apiVersion"),
            namespace,
            name,
            uid,
            file: rel.clone(),
            backed_up_at: Utc::now(),
            restorable: true,
            contents_of: contents_of.map(str::to_string),
        };
        self.record(
            &rel,
            serde_json::to_vec_pretty(object).unwrap_or_default(),
            entry,
        )
        .await
    }

    /// Records an image version (manifest digest and tags): not restorable, since the
    /// registry deletes its blobs with it, but the report and the index say what went.
    pub async fn image(
        &self,
        repository: &str,
        digest: &str,
        record: &Value,
    ) -> Result<String, BackupError> {
        for part in repository.split('/') {
            component("a repository path", part)?;
        }
        let rel = format!(
            "registry/{repository}@{}.json",
            component("a digest", digest)?
        );
        let entry = Entry::record("registry", "Image", &format!("{repository}@{digest}"), &rel);
        self.record(
            &rel,
            serde_json::to_vec_pretty(record).unwrap_or_default(),
            entry,
        )
        .await
    }

    /// Writes a GCP resource as the API returned it: a record to re-create it from (with
    /// gcloud or the API); `restore` does not re-create GCP resources.
    pub async fn gcp(&self, kind: &str, name: &str, object: &Value) -> Result<String, BackupError> {
        let rel = format!(
            "gcp/{}/{}.json",
            component("a GCP kind", kind)?,
            component("a GCP name", name)?
        );
        let entry = Entry::record("gcp", kind, name, &rel);
        self.record(
            &rel,
            serde_json::to_vec_pretty(object).unwrap_or_default(),
            entry,
        )
        .await
    }

    async fn record(&self, rel: &str, bytes: Vec<u8>, entry: Entry) -> Result<String, BackupError> {
        let location = self
            .store
            .put(&format!("{}/{rel}", self.folder), bytes)
            .await?;
        let mut index = self.index.lock().await;
        index.entries.retain(|e| e.file != entry.file);
        index.entries.push(entry);
        let snapshot = index.clone();
        drop(index);
        self.write_index(&snapshot).await?;
        Ok(location)
    }
}

/// Reads the index and the objects of a backup folder (for `restore`).
pub async fn read(location: &str) -> Result<(Store, Index), BackupError> {
    let store = Store::open(location).await?;
    let bytes = store
        .get(INDEX)
        .await?
        .ok_or_else(|| BackupError::NoIndex(location.to_string()))?;
    let index: Index = serde_json::from_slice(&bytes).map_err(|e| BackupError::Read {
        path: store.location(INDEX),
        message: e.to_string(),
    })?;
    if index.schema != INDEX_SCHEMA {
        return Err(BackupError::NoIndex(location.to_string()));
    }
    Ok((store, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rerun_keeps_what_the_first_run_backed_up() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().to_str().unwrap().to_string();
        let first = Backup::open(Store::open(&location).await.unwrap(), "plan-1")
            .await
            .unwrap();
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "n", "uid": "u1"}, "data": {"k": "v"}});
        let written = first.kubernetes(&cm, None).await.unwrap();
        assert!(
            written.ends_with("plan-1/kubernetes/ConfigMap/n/a.u1.json"),
            "{written}"
        );
        drop(first);

        let second = Backup::open(Store::open(&location).await.unwrap(), "plan-1")
            .await
            .unwrap();
        let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "n", "uid": "u2"}, "data": {"k": "dg=="}});
        second.kubernetes(&secret, None).await.unwrap();
        let (store, index) = read(&format!("{location}/plan-1")).await.unwrap();
        let names: Vec<&str> = index.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "s"]);
        let bytes = store.get(&index.entries[1].file).await.unwrap().unwrap();
        let back: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back["data"]["k"], "dg==", "Secret data is backed up");
    }

    #[tokio::test]
    async fn backups_are_owner_only_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // SAFETY: nextest runs each test in its own process; umask only affects file creation.
        unsafe { libc::umask(0o022) };
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("backups");
        // A folder of this plan left by an earlier run, made under the umask.
        std::fs::create_dir_all(location.join("plan-1/kubernetes")).unwrap();
        std::fs::set_permissions(
            location.join("plan-1"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let backup = Backup::open(
            Store::open(location.to_str().unwrap()).await.unwrap(),
            "plan-1",
        )
        .await
        .unwrap();
        let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "n", "uid": "u2"}, "data": {"k": "dg=="}});
        backup.kubernetes(&secret, None).await.unwrap();
        let run = location.join("plan-1");
        assert_eq!(mode(&run.join("kubernetes/Secret/n/s.u2.json")), 0o600);
        assert_eq!(mode(&run.join(INDEX)), 0o600);
        for folder in ["", "kubernetes", "kubernetes/Secret", "kubernetes/Secret/n"] {
            assert_eq!(mode(&run.join(folder)), 0o700, "`{folder}`");
        }
        // A location driftsweep creates is private too; one that exists is the user's.
        let fresh = dir.path().join("new/backups");
        Backup::open(
            Store::open(fresh.to_str().unwrap()).await.unwrap(),
            "plan-2",
        )
        .await
        .unwrap();
        assert_eq!(mode(&fresh), 0o700);
        assert_eq!(mode(&dir.path().join("new")), 0o700);
        assert_eq!(mode(&location), 0o755);
    }

    #[tokio::test]
    async fn no_name_can_lead_a_backup_out_of_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("backups");
        let store = || Store::open(location.to_str().unwrap());
        for plan in ["../../elsewhere", "/tmp/x", "a/b", "a\0b", ".."] {
            assert!(
                Backup::open(store().await.unwrap(), plan).await.is_err(),
                "{plan:?}"
            );
        }
        let backup = Backup::open(store().await.unwrap(), "plan-1")
            .await
            .unwrap();
        for (kind, name, namespace) in [
            ("ConfigMap", "..", "n"),
            ("ConfigMap", "a/../../../x", "n"),
            ("ConfigMap", "a", ".."),
            ("../../x", "a", "n"),
            ("ConfigMap", "a\0", "n"),
        ] {
            let object = serde_json::json!({"kind": kind,
                "metadata": {"name": name, "namespace": namespace, "uid": "u"}});
            let err = backup.kubernetes(&object, None).await;
            assert!(err.is_err(), "{kind} {namespace}/{name}");
        }
        let object = serde_json::json!({"kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "n", "uid": "../../u"}});
        assert!(backup.kubernetes(&object, None).await.is_err(), "uid");
        let digest = format!("sha256:{}", "a".repeat(64));
        assert!(
            backup
                .image("r.io/../../x", &digest, &Value::Null)
                .await
                .is_err()
        );
        assert!(
            backup
                .image("/r.io/x", &digest, &Value::Null)
                .await
                .is_err()
        );
        assert!(
            backup
                .image("r.io/x", "../../d", &Value::Null)
                .await
                .is_err()
        );
        assert!(backup.gcp("Bucket", "../b", &Value::Null).await.is_err());
        assert!(backup.gcp("../Bucket", "b", &Value::Null).await.is_err());
        assert!(
            backup
                .image("r.io/team/x", &digest, &Value::Null)
                .await
                .is_ok()
        );
        assert!(
            backup
                .gcp(
                    "IamServiceAccount",
                    "a@p.iam.gserviceaccount.com",
                    &Value::Null
                )
                .await
                .is_ok()
        );
        let escaped: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(escaped.len(), 1, "only `backups` was written: {escaped:?}");
    }

    #[tokio::test]
    async fn an_unwritable_location_fails_before_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, "x").unwrap();
        let store = Store::open(file.to_str().unwrap()).await.unwrap();
        assert!(Backup::open(store, "plan").await.is_err());
    }
}
