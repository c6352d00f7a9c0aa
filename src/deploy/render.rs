//! Render: the repository's manifests of one environment's namespace, with every service
//! image pinned to `repo:tag@sha256:…` and the version labels set. Pure: no I/O, so what a
//! deploy will apply is decided (and refused) before anything touches the cluster.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::version::Version;
use crate::inventory::registry::ImageRef;
use crate::manifests::{CLUSTER_SCOPED_KINDS, VERSION_PLACEHOLDER};

pub const VERSION_LABEL: &str = "app.kubernetes.io/version";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "driftsweep";

/// One service's image, resolved for this deploy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pin {
    pub service: String,
    /// `host/path`, no tag.
    pub image: String,
    pub tag: String,
    /// `sha256:…`.
    pub digest: String,
}

impl Pin {
    /// `host/path:tag@sha256:…`: the tag for people, the digest for the runtime.
    pub fn reference(&self) -> String {
        format!("{}:{}@{}", self.image, self.tag, self.digest)
    }
}

/// Why a render was refused, naming the file and the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub source: Option<PathBuf>,
    pub object: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(s) => write!(f, "`{}`: {}: {}", s.display(), self.object, self.message),
            None => write!(f, "{}: {}", self.object, self.message),
        }
    }
}

/// `Kind namespace/name` of an object, as problems and reports name it.
pub fn describe(object: &Value) -> String {
    let text = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or("?");
    match object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(ns) => format!("{} {ns}/{}", text("/kind"), text("/metadata/name")),
        None => format!("{} {}", text("/kind"), text("/metadata/name")),
    }
}

/// The order objects are applied in: what others need comes first.
fn rank(kind: &str) -> u8 {
    match kind {
        "ServiceAccount" => 0,
        "Role" | "RoleBinding" => 1,
        "ConfigMap" | "Secret" => 2,
        "PersistentVolumeClaim" => 3,
        "Service" => 4,
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => 5,
        "Job" | "CronJob" | "Pod" => 6,
        _ => 7,
    }
}

/// Where the Pod spec of a workload is (`None` for kinds without one).
pub fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => Some("/spec/template/spec"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        "Pod" => Some("/spec"),
        _ => None,
    }
}

fn template_metadata_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => Some("/spec/template/metadata"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/metadata"),
        _ => None,
    }
}

/// Renders the objects of `documents` in `namespace`. Refused (every problem at once) when a
/// service's image is pinned to a tag of its own, a service has no workload there, or an
/// image is mutable (`latest`, no tag).
pub fn render(
    documents: &[(Value, PathBuf)],
    namespace: &str,
    version: &Version,
    pins: &[Pin],
) -> Result<Vec<Value>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut rendered: Vec<Value> = Vec::new();
    let mut pinned_services = std::collections::BTreeSet::new();
    for (document, source) in documents {
        let kind = document
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if CLUSTER_SCOPED_KINDS.contains(&kind)
            || document
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                != Some(namespace)
        {
            continue;
        }
        let mut object = clean(document.clone());
        let name = describe(&object);
        let problem = |message: String| Problem {
            source: Some(source.clone()),
            object: name.clone(),
            message,
        };
        if let Some(pointer) = pod_spec_pointer(kind) {
            for list in ["initContainers", "containers"] {
                let containers = object
                    .pointer_mut(&format!("{pointer}/{list}"))
                    .and_then(Value::as_array_mut);
                for container in containers.into_iter().flatten() {
                    let Some(image) = container.get("image").and_then(Value::as_str) else {
                        continue;
                    };
                    match pin_image(image, pins) {
                        Ok(Some((reference, service))) => {
                            pinned_services.insert(service);
                            container["image"] = Value::String(reference);
                        }
                        Ok(None) => {}
                        Err(message) => problems.push(problem(message)),
                    }
                }
            }
            if let Some(pointer) = template_metadata_pointer(kind) {
                label(&mut object, pointer, version, false);
            }
        }
        label(&mut object, "/metadata", version, true);
        rendered.push(object);
    }
    for pin in pins {
        if !pinned_services.contains(&pin.service) {
            problems.push(Problem {
                source: None,
                object: format!("service {}", pin.service),
                message: format!(
                    "no workload in namespace `{namespace}` runs `{}`: every service of `deploy.services` must be in each environment's manifests",
                    pin.image
                ),
            });
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    rendered.sort_by_key(|o| rank(o.get("kind").and_then(Value::as_str).unwrap_or_default()));
    Ok(rendered)
}

/// The pinned reference for a service's image, `None` for another image; `Err` when the
/// image cannot be deployed as written.
fn pin_image(image: &str, pins: &[Pin]) -> Result<Option<(String, String)>, String> {
    let parsed = ImageRef::parse(&image.replace(VERSION_PLACEHOLDER, "VERSION"));
    let Some(parsed) = parsed else {
        return Err(format!("`{image}` is not an image reference"));
    };
    if let Some(pin) = pins.iter().find(|p| p.image == parsed.repository) {
        let tag_ok = match parsed.tag.as_deref() {
            None => true,
            Some(_) => image.ends_with(&format!(":{VERSION_PLACEHOLDER}")),
        };
        if !tag_ok || parsed.digest.is_some() {
            return Err(format!(
                "`{image}` names its own version: write `{}:{VERSION_PLACEHOLDER}`, so that every service runs the version being deployed",
                pin.image
            ));
        }
        return Ok(Some((pin.reference(), pin.service.clone())));
    }
    if image.contains(VERSION_PLACEHOLDER) {
        return Err(format!(
            "`{image}` uses `{VERSION_PLACEHOLDER}` but is not one of `deploy.services`: add the service, or pin the image"
        ));
    }
    if parsed.digest.is_none() && matches!(parsed.tag.as_deref(), None | Some("latest")) {
        return Err(format!(
            "`{image}` is mutable (`latest` or no tag): pin a version or a digest, so that what runs is what was reviewed"
        ));
    }
    Ok(None)
}

/// Drops what a server sets, should a manifest carry it (an exported object).
fn clean(mut object: Value) -> Value {
    if let Some(o) = object.as_object_mut() {
        o.remove("status");
    }
    if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            m.remove(key);
        }
    }
    object
}

fn label(object: &mut Value, pointer: &str, version: &Version, managed: bool) {
    if object.pointer(pointer).is_none_or(|m| !m.is_object()) {
        let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
        if let Some(p) = object.pointer_mut(parent).and_then(Value::as_object_mut) {
            p.insert(key.to_string(), json!({}));
        }
    }
    let Some(metadata) = object.pointer_mut(pointer).and_then(Value::as_object_mut) else {
        return;
    };
    let labels = metadata.entry("labels").or_insert_with(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(VERSION_LABEL.to_string(), json!(version.label_value()));
        if managed {
            labels.insert(MANAGED_BY_LABEL.to_string(), json!(MANAGED_BY));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::version::parse_version;

    fn deployment(ns: &str, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [
                    {"name": "api", "image": image},
                    {"name": "proxy", "image": "gcr.io/cloudsql-docker/gce-proxy:1.33.2"}
                ]}}}})
    }

    fn pin() -> Pin {
        Pin {
            service: "api".into(),
            image: "h.io/p/api".into(),
            tag: "1.2.3".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
        }
    }

    fn docs(objects: Vec<Value>) -> Vec<(Value, PathBuf)> {
        objects
            .into_iter()
            .map(|o| (o, PathBuf::from("k8s/app.yaml")))
            .collect()
    }

    #[test]
    fn pins_service_images_and_labels_objects_of_the_namespace_only() {
        let v = parse_version("1.2.3").unwrap();
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "stage"}, "data": {"k": "v"}});
        let objects = docs(vec![
            deployment("stage", "h.io/p/api:${VERSION}"),
            deployment("prod", "h.io/p/api:${VERSION}"),
            config,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "stage"}}),
        ]);
        let out = render(&objects, "stage", &v, &[pin()]).unwrap();
        let kinds: Vec<&str> = out.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["ConfigMap", "Deployment"],
            "ordered; other namespaces left out"
        );
        let d = &out[1];
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            format!("h.io/p/api:1.2.3@sha256:{}", "a".repeat(64))
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][1]["image"],
            "gcr.io/cloudsql-docker/gce-proxy:1.33.2",
            "other pinned images are left as written"
        );
        assert_eq!(d["metadata"]["labels"][VERSION_LABEL], v.label_value());
        assert_eq!(d["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"][VERSION_LABEL],
            v.label_value()
        );
        assert_eq!(
            d["spec"]["selector"]["matchLabels"],
            json!({"app": "api"}),
            "selectors are never touched (they are immutable)"
        );
        assert_eq!(out[0]["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY);
    }

    #[test]
    fn refuses_what_would_not_run_the_deployed_version() {
        let v = parse_version("1.2.3").unwrap();
        let other = Pin {
            service: "worker".into(),
            image: "h.io/p/worker".into(),
            ..pin()
        };
        let mut sidecar = deployment("stage", "h.io/p/api:${VERSION}");
        sidecar["metadata"]["name"] = json!("side");
        sidecar["spec"]["template"]["spec"]["containers"][1]["image"] = json!("busybox:latest");
        let objects = docs(vec![
            deployment("stage", "h.io/p/api:1.0.0"),
            sidecar,
            deployment("stage", "h.io/p/tool:${VERSION}"),
        ]);
        let problems = render(&objects, "stage", &v, &[pin(), other]).unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 4, "{text:#?}");
        assert!(text[0].contains("names its own version") && text[0].contains("k8s/app.yaml"));
        assert!(text[1].contains("mutable"), "{}", text[1]);
        assert!(
            text[2].contains("not one of `deploy.services`"),
            "{}",
            text[2]
        );
        assert!(text[3].contains("service worker") && text[3].contains("no workload"));
    }
}
