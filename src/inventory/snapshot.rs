//! The snapshot source: an inventory replayed from a folder of recorded API responses.
//!
//! Each file is an API's own response body (see DESIGN.md, "Snapshot folder"), so a snapshot
//! can be made with kubectl, gcloud or curl as well as with `driftsweep snapshot`. A file that
//! cannot be read is an error naming the file and the JSON path; nothing is guessed.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::kubernetes::KubeObject;
use super::{Gap, Inventory, Protects, Provider, registry};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot folder `{}` does not exist\nhint: make one with `driftsweep snapshot --out DIR`, or point `--snapshot` at a folder holding kubernetes/, registry/ or gcp/", .0.display())]
    Missing(PathBuf),
    #[error("`{}` is not a snapshot folder: it holds none of kubernetes/, registry/, gcp/", .0.display())]
    Empty(PathBuf),
    #[error("snapshot file `{}`: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error(
        "snapshot `{}`: {first} and {second} have the same uid `{uid}`; the API server gives every object its own, so the snapshot is corrupt or was edited\nhint: record it again with `driftsweep snapshot`",
        dir.display()
    )]
    DuplicateUid {
        dir: PathBuf,
        uid: String,
        /// `ConfigMap app/a (in `kubernetes/a.json`)`.
        first: String,
        second: String,
    },
}

/// Kind, namespace and name: which object a uid belongs to.
type Who = (String, Option<String>, String);

/// `ConfigMap app/a (in `kubernetes/a.json`)`.
fn object_in_file((kind, ns, name): &Who, file: &Path) -> String {
    match ns {
        Some(ns) => format!("{kind} {ns}/{name} (in `{}`)", file.display()),
        None => format!("{kind} {name} (in `{}`)", file.display()),
    }
}

fn file_error(path: &Path, message: impl Into<String>) -> SnapshotError {
    SnapshotError::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Kinds whose Pods or Pod templates prove what is in use.
pub const REFERENCE_KINDS: &[&str] = &[
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "ReplicationController",
];

/// What `snapshot.json` says about a snapshot.
#[derive(Debug, Default)]
pub struct Meta {
    /// When it was recorded: a replay decides as of then.
    pub recorded_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The Kubernetes kinds `driftsweep snapshot` listed completely.
    pub kubernetes_listed: Vec<String>,
}

/// Reads `snapshot.json` (absent: nothing known). Errors name the field.
pub fn meta(dir: &Path) -> Result<Meta, String> {
    let path = dir.join("snapshot.json");
    if !path.is_file() {
        return Ok(Meta::default());
    }
    let text = read_text(&path).map_err(|e| e.to_string())?;
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("not valid JSON: {e}"))?;
    let recorded_at = match value.get("recorded_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            super::kubernetes::parse_time(s)
                .map_err(|e| format!("recorded_at: `{s}` is not an RFC 3339 time ({e})"))?,
        ),
        Some(_) => return Err("recorded_at: expected an RFC 3339 time string".to_string()),
    };
    let kubernetes_listed = match value.get("kubernetes_listed") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .map(|k| {
                k.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "kubernetes_listed: expected kind names".to_string())
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("kubernetes_listed: expected a list of kind names".to_string()),
    };
    Ok(Meta {
        recorded_at,
        kubernetes_listed,
    })
}

/// Reads a snapshot folder into an inventory.
pub fn read(dir: &Path) -> Result<Inventory, SnapshotError> {
    if !dir.is_dir() {
        return Err(SnapshotError::Missing(dir.to_path_buf()));
    }
    let kube_dir = dir.join("kubernetes");
    let registry_dir = dir.join("registry");
    let gcp_dir = dir.join("gcp");
    if !kube_dir.is_dir() && !registry_dir.is_dir() && !gcp_dir.is_dir() {
        return Err(SnapshotError::Empty(dir.to_path_buf()));
    }
    let mut inventory = Inventory::default();
    if kube_dir.is_dir() {
        let KubernetesFiles { objects, found } = read_kubernetes(&kube_dir)?;
        let has_references = objects
            .iter()
            .any(|o| REFERENCE_KINDS.contains(&o.kind.as_str()));
        let has_namespaced = objects.iter().any(|o| o.namespace.is_some());
        // A snapshot written by `driftsweep snapshot` says which kinds it listed: a cluster
        // with no Pod at all is then known to have none. It writes a file per listed kind,
        // an empty List when there is none, so a listed kind with no file and no object
        // lost its file: a gap, not proof that none exists.
        let listed = meta(dir)
            .map_err(|m| file_error(&dir.join("snapshot.json"), m))?
            .kubernetes_listed;
        for kind in listed {
            if objects.iter().any(|o| o.kind == kind) || found.holds(&kind) {
                inventory.kubernetes_listed.push(kind);
            } else {
                inventory.gaps.push(missing_list(&kind));
            }
        }
        let listed_pods = inventory.kubernetes_listed.iter().any(|k| k == "Pod");
        let gap_known = inventory.has_gap(&Protects::KubernetesReferences);
        if has_namespaced && !has_references && !listed_pods && !gap_known {
            inventory.gaps.push(Gap {
                provider: Provider::Kubernetes,
                what: "Pods and workloads".to_string(),
                error:
                    "the snapshot holds no Pod and no workload, so nothing proves what is in use"
                        .to_string(),
                protects: Protects::KubernetesReferences,
                failed: false,
            });
        }
        inventory.kubernetes = Some(objects);
    }
    if registry_dir.is_dir() {
        inventory.registry = read_registry(&registry_dir)?;
    }
    if gcp_dir.is_dir() {
        read_gcp(&gcp_dir, &mut inventory)?;
    }
    let errors = dir.join("errors.json");
    if errors.is_file() {
        let value = read_json(&errors)?;
        let gaps: Vec<Gap> = deserialize(&errors, value)?;
        inventory.gaps.extend(gaps);
    }
    Ok(inventory)
}

fn deserialize<T: serde::de::DeserializeOwned>(
    path: &Path,
    value: Value,
) -> Result<T, SnapshotError> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| file_error(path, format!("at `{}`: {}", e.path(), e.inner())))
}

/// Every file of a snapshot is read through here: bounded, UTF-8, no NUL.
fn read_text(path: &Path) -> Result<String, crate::input::InputError> {
    crate::input::read_text(path, crate::input::SNAPSHOT_FILE)
}

fn read_json(path: &Path) -> Result<Value, SnapshotError> {
    let text = read_text(path).map_err(|e| file_error(path, e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| file_error(path, format!("not valid JSON: {e}")))
}

fn files(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, SnapshotError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).map_err(|e| file_error(&d, format!("cannot list: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| file_error(&d, format!("cannot list: {e}")))?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The gap for a kind `snapshot.json` lists but no file holds.
fn missing_list(kind: &str) -> Gap {
    let file = match super::cluster::kind_named(kind) {
        Some(info) => format!("`kubernetes/{}.json`", info.resource()),
        None => format!("a file of {kind} objects"),
    };
    let protects = if super::cluster::reference_kinds().any(|k| k == kind) {
        Protects::KubernetesReferences
    } else {
        Protects::KubernetesKind(kind.to_string())
    };
    Gap {
        provider: Provider::Kubernetes,
        what: format!("{kind} (listed in snapshot.json)"),
        error: format!(
            "snapshot.json says every {kind} was listed, but {file} is missing and no file holds a {kind}: the snapshot is incomplete, so nothing a {kind} could protect is deleted"
        ),
        protects,
        failed: true,
    }
}

/// What `kubernetes/` holds: its objects, and which lists its files are.
pub struct KubernetesFiles {
    pub objects: Vec<KubeObject>,
    pub found: Found,
}

/// The file names (`pods`, `deployments.apps`) and typed List kinds (`PodList`) read: an
/// empty list still shows its kind was recorded.
#[derive(Debug, Default)]
pub struct Found {
    stems: HashSet<String>,
    list_kinds: HashSet<String>,
}

impl Found {
    /// Whether a file is the list of `kind` (by the name `snapshot` gives it, or its List kind).
    pub fn holds(&self, kind: &str) -> bool {
        if self.list_kinds.contains(kind) {
            return true;
        }
        match super::cluster::kind_named(kind) {
            Some(info) => self.stems.contains(&info.resource()),
            // A kind only discovery knows (a manifest's custom resource): its plural, as
            // English spells most of them, before the group.
            None => {
                let lower = kind.to_ascii_lowercase();
                let mut plurals = vec![format!("{lower}s"), format!("{lower}es")];
                if let Some(stem) = lower.strip_suffix('y') {
                    plurals.push(format!("{stem}ies"));
                }
                self.stems.iter().any(|s| {
                    let plural = s.split('.').next().unwrap_or_default();
                    plurals.iter().any(|p| p == plural)
                })
            }
        }
    }
}

/// Every object under `kubernetes/`, Lists unpacked, duplicates (the same object in two
/// files) read once.
pub fn read_kubernetes(dir: &Path) -> Result<KubernetesFiles, SnapshotError> {
    let mut objects = Vec::new();
    let mut seen = HashSet::new();
    // uid → (kind, namespace, name) and the file it came from.
    let mut uids: HashMap<String, (Who, PathBuf)> = HashMap::new();
    let mut found = Found::default();
    for path in files(dir, &["json", "yaml", "yml"])? {
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            found.stems.insert(stem.to_ascii_lowercase());
        }
        let documents: Vec<Value> = if path.extension().is_some_and(|e| e == "json") {
            vec![read_json(&path)?]
        } else {
            let text = read_text(&path).map_err(|e| file_error(&path, e.to_string()))?;
            crate::yaml::parse_values(&text)
                .map_err(|e| file_error(&path, format!("not valid YAML: {e}")))?
        };
        for (doc_index, doc) in documents.into_iter().enumerate() {
            if let Some(kind) = doc.get("kind").and_then(Value::as_str)
                && let Some(item_kind) = kind.strip_suffix("List")
                && !item_kind.is_empty()
            {
                found.list_kinds.insert(item_kind.to_string());
            }
            let prefix = if doc_index > 0 {
                format!("document {}: ", doc_index + 1)
            } else {
                String::new()
            };
            for (item_path, value) in
                unpack(doc).map_err(|m| file_error(&path, format!("{prefix}{m}")))?
            {
                let object = KubeObject::from_value(value)
                    .map_err(|m| file_error(&path, format!("{prefix}{item_path}{m}")))?;
                let key = (
                    object.group().to_string(),
                    object.kind.clone(),
                    object.namespace.clone(),
                    object.name.clone(),
                );
                if let Some(uid) = &object.uid {
                    let who = (
                        object.kind.clone(),
                        object.namespace.clone(),
                        object.name.clone(),
                    );
                    match uids.get(uid) {
                        // The same object, in another file or through another API group.
                        Some((first, _)) if *first == who => continue,
                        Some((first, first_file)) => {
                            return Err(SnapshotError::DuplicateUid {
                                dir: dir.to_path_buf(),
                                uid: uid.clone(),
                                first: object_in_file(first, first_file),
                                second: object_in_file(&who, &path),
                            });
                        }
                        None => {
                            uids.insert(uid.clone(), (who, path.clone()));
                        }
                    }
                }
                if seen.insert(key) {
                    objects.push(object);
                }
            }
        }
    }
    Ok(KubernetesFiles { objects, found })
}

/// Unpacks a `List` (or a typed `ConfigMapList`, whose items may omit kind and apiVersion).
fn unpack(doc: Value) -> Result<Vec<(String, Value)>, String> {
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !kind.ends_with("List") || doc.get("items").is_none() {
        return Ok(vec![(String::new(), doc)]);
    }
    let api_version = doc.get("apiVersion").cloned();
    let item_kind = kind.strip_suffix("List").unwrap_or_default().to_string();
    let Some(Value::Array(items)) = doc.get("items").cloned() else {
        return match doc.get("items") {
            Some(Value::Null) => Ok(Vec::new()),
            _ => Err("items: expected a list".to_string()),
        };
    };
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, mut item)| {
            if let Some(o) = item.as_object_mut()
                && !item_kind.is_empty()
            {
                o.entry("kind")
                    .or_insert_with(|| Value::String(item_kind.clone()));
                if let Some(v) = &api_version {
                    o.entry("apiVersion").or_insert_with(|| v.clone());
                }
            }
            (format!("items[{i}]."), item)
        })
        .collect())
}

fn read_registry(dir: &Path) -> Result<Vec<registry::Repository>, SnapshotError> {
    let mut repositories = Vec::new();
    for path in files(dir, &["json"])? {
        let rel = path.strip_prefix(dir).unwrap_or(&path);
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        // `<host>/<repo path>/manifests/<digest>.json` is an index manifest, read below.
        if parts.len() >= 3 && parts[parts.len() - 2] == "manifests" {
            continue;
        }
        if parts.len() < 2 {
            return Err(file_error(
                &path,
                "registry files go under `registry/<host>/<repository path>.json`",
            ));
        }
        let repo_path = rel.with_extension("");
        let name = repo_path
            .iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let body = read_json(&path)?;
        let manifests_dir = path.with_extension("").join("manifests");
        let mut index_manifest = |digest: &str| -> Result<Option<Value>, String> {
            let file = manifests_dir.join(format!("{digest}.json"));
            if !file.is_file() {
                return Ok(None);
            }
            read_json(&file).map(Some).map_err(|e| e.to_string())
        };
        let repo = registry::parse_tag_list(&name, &body, &mut index_manifest)
            .map_err(|m| file_error(&path, m))?;
        repositories.push(repo);
    }
    repositories.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(repositories)
}

/// A snapshot's `gcp/` folder, as the kinds read their files.
struct SnapshotFiles<'a>(&'a Path);

impl super::gcp::Files for SnapshotFiles<'_> {
    fn get(&self, file: &str) -> Result<Option<Value>, super::gcp::FileError> {
        let path = self.0.join(file);
        if !path.is_file() {
            return Ok(None);
        }
        read_json(&path)
            .map(Some)
            .map_err(|e| super::gcp::FileError {
                file: file.to_string(),
                message: match e {
                    SnapshotError::File { message, .. } => message,
                    other => other.to_string(),
                },
            })
    }
}

fn read_gcp(dir: &Path, inventory: &mut Inventory) -> Result<(), SnapshotError> {
    let files = SnapshotFiles(dir);
    for kind in super::gcp::KINDS {
        match (kind.parse)(&files) {
            Ok(Some(mut resources)) => {
                inventory.gcp.append(&mut resources);
                inventory.gcp_listed.push(kind.kind);
            }
            Ok(None) => {}
            Err(e) => return Err(file_error(&dir.join(&e.file), e.message)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_meta_is_read_once_and_bad_fields_are_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            meta(dir.path()).unwrap().recorded_at.is_none(),
            "absent: nothing known"
        );
        let write = |text: &str| std::fs::write(dir.path().join("snapshot.json"), text).unwrap();
        write(r#"{"recorded_at": "2026-11-29T07:30:00Z", "kubernetes_listed": ["Pod"]}"#);
        let m = meta(dir.path()).unwrap();
        assert_eq!(
            m.recorded_at.unwrap().to_rfc3339(),
            "2026-11-29T07:30:00+00:00"
        );
        assert_eq!(m.kubernetes_listed, ["Pod"]);
        write(r#"{"recorded_at": "yesterday"}"#);
        assert!(meta(dir.path()).unwrap_err().contains("recorded_at"));
        write(r#"{"kubernetes_listed": "Pod"}"#);
        assert!(meta(dir.path()).unwrap_err().contains("kubernetes_listed"));
    }

    #[test]
    fn snapshot_files_with_a_nul_byte_or_invalid_utf8_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("kubernetes")).unwrap();
        let file = dir.path().join("kubernetes/objects.yaml");
        std::fs::write(
            &file,
            b"apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a}\nspec: {containers: [{name: c, image: x}]}\n\0\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: a}\n",
        )
        .unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("objects.yaml") && err.contains("(line 5, column 1) is a NUL byte"),
            "{err}"
        );
        std::fs::write(&file, b"").unwrap();
        std::fs::write(
            dir.path().join("kubernetes/cm.json"),
            b"{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"caf\xe9\", \"namespace\": \"a\"}}",
        )
        .unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("cm.json") && err.contains("is not valid UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn a_kind_snapshot_json_lists_without_its_file_is_a_gap_not_proof_of_absence() {
        use crate::evaluate::{Action, Reason, testkit};
        let dir = tempfile::tempdir().unwrap();
        let kube = dir.path().join("kubernetes");
        std::fs::create_dir_all(&kube).unwrap();
        let list =
            |items: &str| format!(r#"{{"apiVersion": "v1", "kind": "List", "items": [{items}]}}"#);
        let old = r#""creationTimestamp": "2025-01-01T00:00:00Z""#;
        std::fs::write(
            kube.join("configmaps.json"),
            list(&format!(r#"{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "used-by-a-pod", "namespace": "app", {old}}}}}"#)),
        )
        .unwrap();
        std::fs::write(kube.join("deployments.apps.json"), list("")).unwrap();
        // The Pod that uses the ConfigMap was in `pods.json`, which is gone.
        std::fs::write(
            dir.path().join("snapshot.json"),
            r#"{"recorded_at": "2026-11-29T07:30:00Z", "kubernetes_listed": ["ConfigMap", "Deployment", "Pod"]}"#,
        )
        .unwrap();
        let policy = testkit::policy("version: 1\nname: t\nkubernetes:\n  namespaces: [app]\n");
        let verdict = |inventory: &Inventory| {
            let findings =
                testkit::evaluate(&policy, &crate::manifests::Desired::default(), inventory);
            testkit::verdict(&findings, "ConfigMap", Some("app"), "used-by-a-pod")
        };
        let inventory = read(dir.path()).unwrap();
        assert_eq!(
            verdict(&inventory),
            (Action::Keep, vec![Reason::ReferencesUnknown]),
            "{:?}",
            inventory.gaps
        );
        let gap = inventory
            .gaps
            .iter()
            .find(|g| g.what.contains("Pod"))
            .expect("the missing file is reported");
        assert!(gap.error.contains("pods.json") && gap.failed, "{gap:?}");
        assert!(!inventory.kubernetes_listed.contains(&"Pod".to_string()));

        // With the (empty) Pods list the snapshot recorded, no Pod is really there.
        std::fs::write(kube.join("pods.json"), list("")).unwrap();
        let inventory = read(dir.path()).unwrap();
        assert!(inventory.gaps.is_empty(), "{:?}", inventory.gaps);
        assert_eq!(
            verdict(&inventory),
            (Action::Delete, vec![Reason::NotInRepository])
        );
    }

    #[test]
    fn two_objects_with_one_uid_are_a_corrupt_snapshot_but_one_object_twice_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let kube = dir.path().join("kubernetes");
        std::fs::create_dir_all(&kube).unwrap();
        let cm = |name: &str, uid: &str| {
            format!(
                r#"{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "{name}", "namespace": "app", "uid": "{uid}"}}}}"#
            )
        };
        std::fs::write(kube.join("a.json"), cm("a", "u-1")).unwrap();
        std::fs::write(kube.join("b.json"), cm("a", "u-1")).unwrap();
        assert_eq!(read(dir.path()).unwrap().kubernetes_objects().len(), 1);
        std::fs::write(kube.join("c.json"), cm("other", "u-1")).unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(matches!(err, SnapshotError::DuplicateUid { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("`u-1`")
                && text.contains("ConfigMap app/a")
                && text.contains("ConfigMap app/other")
                && text.contains("c.json"),
            "{text}"
        );
    }

    #[test]
    fn a_snapshot_without_pods_is_references_unknown_unless_it_says_pods_were_listed() {
        let dir = tempfile::tempdir().unwrap();
        let cm = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}}"#;
        std::fs::create_dir_all(dir.path().join("kubernetes")).unwrap();
        std::fs::write(dir.path().join("kubernetes/cm.json"), cm).unwrap();
        let unknown = Protects::KubernetesReferences;
        assert!(read(dir.path()).unwrap().has_gap(&unknown));
        std::fs::write(
            dir.path().join("snapshot.json"),
            r#"{"kubernetes_listed": ["Pod", "ConfigMap"]}"#,
        )
        .unwrap();
        // `snapshot` writes the empty Pods list it read; without it, the listing is a gap.
        assert!(read(dir.path()).unwrap().has_gap(&unknown));
        std::fs::write(
            dir.path().join("kubernetes/pods.json"),
            r#"{"apiVersion": "v1", "kind": "List", "items": []}"#,
        )
        .unwrap();
        assert!(!read(dir.path()).unwrap().has_gap(&unknown));
    }
}
