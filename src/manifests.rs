//! The repository's manifests: the objects the repository defines, and so wants kept.
//!
//! Folders are read recursively (`.yaml`, `.yml`, `.json`, multi-document YAML, `List`s);
//! `kustomization.yaml` files are build instructions, not objects, and are skipped.
//! `${VERSION}` in image tags is replaced by the release version when one is known.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::inventory::KubeObject;

/// One object a repository manifest defines.
#[derive(Debug, Clone)]
pub struct DesiredObject {
    pub object: KubeObject,
    pub source: PathBuf,
}

/// Everything the repository defines.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub objects: Vec<DesiredObject>,
    /// The version `${VERSION}` stands for; `None` when unknown (then any tag matches it).
    pub version: Option<String>,
}

pub const VERSION_PLACEHOLDER: &str = "${VERSION}";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest path `{}` (from the policy's `kubernetes.manifests`) does not exist", .0.display())]
    Missing(PathBuf),
    #[error("manifest `{}`: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// Loads every manifest under `paths` (each relative to `base`).
pub fn load(
    paths: &[PathBuf],
    base: &Path,
    version: Option<&str>,
) -> Result<Desired, ManifestError> {
    let mut objects = Vec::new();
    for file in files_of(paths, base)? {
        read_file(&file, version, &mut objects)?;
    }
    Ok(Desired {
        objects,
        version: version.map(str::to_string),
    })
}

/// The manifest files under `paths` (relative to `base`), each path in turn.
fn files_of(paths: &[PathBuf], base: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let mut out = Vec::new();
    for p in paths {
        let root = if p.is_absolute() {
            p.clone()
        } else {
            base.join(p)
        };
        if !root.exists() {
            return Err(ManifestError::Missing(root));
        }
        out.extend(manifest_files(&root)?);
    }
    Ok(out)
}

fn manifest_files(root: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    if root.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| ManifestError::Invalid {
            path: dir.clone(),
            message: format!("cannot list: {e}"),
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_lowercase();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                name.as_str(),
                "kustomization.yaml" | "kustomization.yml" | "kustomization"
            ) {
                continue;
            } else if name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every object the manifests under `paths` define, as written (Lists unpacked, `${VERSION}`
/// left in place), with its file: what `deploy` renders from.
pub fn documents(paths: &[PathBuf], base: &Path) -> Result<Vec<(Value, PathBuf)>, ManifestError> {
    let mut out = Vec::new();
    for file in files_of(paths, base)? {
        for (_, item) in file_items(&file)? {
            out.push((item, file.clone()));
        }
    }
    Ok(out)
}

/// The objects of one file with the index of the document each came from.
fn file_items(path: &Path) -> Result<Vec<(usize, Value)>, ManifestError> {
    let invalid = |message: String| ManifestError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let text = crate::input::read_text(path, crate::input::MANIFEST)
        .map_err(|e| invalid(e.to_string()))?;
    let documents: Vec<Value> = if path.extension().is_some_and(|e| e == "json") {
        vec![serde_json::from_str(&text).map_err(|e| invalid(format!("not valid JSON: {e}")))?]
    } else {
        crate::yaml::parse_values(&text).map_err(|e| invalid(format!("not valid YAML: {e}")))?
    };
    let mut out = Vec::new();
    for (i, doc) in documents.into_iter().enumerate() {
        let items = match doc.get("items") {
            Some(Value::Array(items))
                if doc
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List")) =>
            {
                items.clone()
            }
            _ => vec![doc],
        };
        out.extend(items.into_iter().map(|item| (i, item)));
    }
    Ok(out)
}

fn read_file(
    path: &Path,
    version: Option<&str>,
    out: &mut Vec<DesiredObject>,
) -> Result<(), ManifestError> {
    let invalid = |message: String| ManifestError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    for (i, item) in file_items(path)? {
        let mut object = KubeObject::from_value(item)
            .map_err(|m| invalid(format!("document {}: {m}", i + 1)))?;
        if let Some(v) = version {
            for c in &mut object.containers {
                c.image = c.image.replace(VERSION_PLACEHOLDER, v);
            }
        }
        out.push(DesiredObject {
            object,
            source: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Kinds that live outside namespaces; every other kind without a namespace in a manifest is
/// namespaced, and kustomize or `kubectl -n` decides where it lands.
pub const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
    "RuntimeClass",
    "CSIDriver",
    "VolumeSnapshotClass",
    "ClusterIssuer",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_multi_document_yaml_and_substitutes_version() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("app.yaml"),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api, namespace: p}\nspec:\n  template:\n    spec:\n      containers: [{name: api, image: 'h/p/api:${VERSION}'}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: api-config, namespace: p}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("kustomization.yaml"),
            "resources: [app.yaml]\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("sub/ns.json"),
            r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "p"}}"#,
        )
        .unwrap();
        let desired = load(&[PathBuf::from(".")], dir.path(), Some("1.2.3")).unwrap();
        let kinds: Vec<_> = desired
            .objects
            .iter()
            .map(|o| o.object.kind.as_str())
            .collect();
        assert_eq!(kinds, vec!["Deployment", "ConfigMap", "Namespace"]);
        assert_eq!(
            desired.objects[0].object.containers[0].image,
            "h/p/api:1.2.3"
        );
    }

    #[test]
    fn a_manifest_with_a_nul_byte_is_refused_not_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("app.yaml"),
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: p}\n# \0\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: p}\n",
        )
        .unwrap();
        let err = load(&[PathBuf::from("app.yaml")], dir.path(), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("app.yaml") && err.contains("(line 4, column 3) is a NUL byte"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_file_and_document() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.yaml"),
            "kind: ConfigMap\nmetadata: {namespace: p}\n",
        )
        .unwrap();
        let err = load(&[PathBuf::from("bad.yaml")], dir.path(), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.yaml") && err.contains("document 1: metadata.name: missing"),
            "{err}"
        );
        let err = load(&[PathBuf::from("nope")], dir.path(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"));
    }
}
