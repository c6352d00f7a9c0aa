//! Kubernetes objects as inventory records, and the reference analysis that proves an object
//! is in use.
//!
//! References are read generically wherever Kubernetes puts them (`secretName`, `*SecretRef`,
//! `configMapKeyRef`, `claimName`, `imagePullSecrets`, projected sources, CSI secret refs, …)
//! so that a volume type or a custom resource we did not name still protects what it names.
//! Reading too many references keeps too much; reading too few deletes something in use.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::policy::AuditedKind;

/// A reference from one object to a namespaced object driftsweep may delete.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: AuditedKind,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
    pub uid: Option<String>,
}

/// A container of a Pod or a workload template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub image: String,
}

/// `kubectl apply` keeps the whole object it applied here: for a Secret, its values (base64
/// `data` and plain `stringData`).
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Removes what must never leave the API client in a record, a snapshot, a report or a log:
/// a Secret's values, and from every object the last-applied annotation and `managedFields`.
/// The annotation goes from every kind, not only Secrets: no decision reads it, and the applied
/// copy of a ConfigMap or a Deployment holds whatever its author wrote in it (passwords in env
/// values included); one rule for all kinds is also one rule to audit. Backups, which restore
/// needs whole, are read separately and keep everything.
pub fn redact(object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if map.get("kind").and_then(Value::as_str) == Some("Secret") {
        map.remove("data");
        map.remove("stringData");
    }
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove(LAST_APPLIED_ANNOTATION);
        }
    }
}

/// One Kubernetes object, normalised.
#[derive(Debug, Clone, Default)]
pub struct KubeObject {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub created: Option<DateTime<Utc>>,
    /// `metadata.deletionTimestamp` is set: the object is already going.
    pub deleting: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub owners: Vec<OwnerRef>,
    /// Secrets: `type`.
    pub secret_type: Option<String>,
    /// What this object references and so keeps.
    pub uses: Vec<ObjectRef>,
    /// StatefulSets: the prefixes (`<template>-<statefulset>-`) of the PVCs their
    /// `volumeClaimTemplates` create.
    pub claim_prefixes: Vec<String>,
    /// Pods and workload templates: their containers (init and ephemeral included).
    pub containers: Vec<Container>,
    /// Pods: `status.containerStatuses[].imageID`, the digest that really runs.
    pub image_ids: Vec<String>,
    /// Deployments and the like: `spec.replicas`.
    pub replicas: Option<i64>,
    /// Pods: `status.phase` (`Running`, `Pending`, `Succeeded`, …).
    pub phase: Option<String>,
    /// Services (`spec.selector`, `None` without one), PodDisruptionBudgets and
    /// NetworkPolicies: the Pods they select.
    pub selector: Option<super::relations::Selector>,
    /// Pods: their labels; workloads: their Pod template's labels.
    pub pod_labels: Option<BTreeMap<String, String>>,
    /// Services: `spec.type`.
    pub service_type: Option<String>,
    /// Other namespaces this object points at (cluster DNS names, binding subjects,
    /// NetworkPolicy peers).
    pub namespace_refs: Vec<String>,
    /// RoleBindings: a subject that is a program (a Google service account, a `system:` user).
    pub machine_subject: Option<String>,
    /// Jobs: no `Complete` or `Failed` condition yet.
    pub running: Option<bool>,
    /// PersistentVolumes and PersistentVolumeClaims.
    /// (Boxed: most objects have none, and records are many.)
    pub volume: Option<Box<super::relations::Volume>>,
    /// Cloud SQL instances it may connect to: connection names (`PROJECT:REGION:INSTANCE`)
    /// and IPv4 addresses in its spec's strings (not read from ConfigMaps and Secrets).
    pub cloud_sql_refs: Vec<String>,
}

impl KubeObject {
    pub fn is_namespace(&self) -> bool {
        self.kind == "Namespace" && self.namespace.is_none()
    }

    /// The API group of `apiVersion` (empty for the core group).
    pub fn group(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }

    /// Reads one object as the API returns it. Errors name the JSON path of the bad field.
    pub fn from_value(value: Value) -> Result<KubeObject, String> {
        Self::from_json(&value)
    }

    /// The same, borrowing the object. The record keeps only what decisions read (no data,
    /// no spec): a Secret's values and the last-applied annotation never reach it.
    pub fn from_json(value: &Value) -> Result<KubeObject, String> {
        let obj = value
            .as_object()
            .ok_or_else(|| format!("expected an object, found {}", type_name(value)))?;
        let kind = required_str(obj, "kind", "kind")?.to_string();
        let api_version = optional_str(obj, "apiVersion", "apiVersion")?
            .unwrap_or_default()
            .to_string();
        let meta = match obj.get("metadata") {
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(format!(
                    "metadata: expected an object, found {}",
                    type_name(other)
                ));
            }
            None => return Err("metadata: missing".to_string()),
        };
        let name = required_str(meta, "name", "metadata.name")?.to_string();
        let namespace = optional_str(meta, "namespace", "metadata.namespace")?
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let created = match optional_str(meta, "creationTimestamp", "metadata.creationTimestamp")? {
            Some(text) => Some(parse_time(text).map_err(|e| {
                format!("metadata.creationTimestamp: `{text}` is not an RFC 3339 time ({e})")
            })?),
            None => None,
        };
        let deleting = meta.get("deletionTimestamp").is_some_and(|v| !v.is_null());
        let labels = string_map(meta.get("labels"), "metadata.labels")?;
        let mut annotations = string_map(meta.get("annotations"), "metadata.annotations")?;
        annotations.remove(LAST_APPLIED_ANNOTATION);
        let owners = owner_refs(meta.get("ownerReferences"))?;
        let uid = optional_str(meta, "uid", "metadata.uid")?.map(str::to_string);
        let resource_version = match meta.get("resourceVersion") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };

        let mut record = KubeObject {
            api_version,
            kind,
            namespace,
            name,
            uid,
            resource_version,
            created,
            deleting,
            labels,
            annotations,
            owners,
            ..KubeObject::default()
        };
        if record.kind == "Secret" {
            record.secret_type = optional_str(obj, "type", "type")?.map(str::to_string);
        }
        analyse(&mut record, obj)?;
        super::relations::analyse(&mut record, obj);
        if record.kind == "Pod" {
            record.phase = value
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        Ok(record)
    }
}

/// Kinds whose whole content is data, never references.
const DATA_KINDS: &[&str] = &[
    "ConfigMap",
    "Secret",
    "Event",
    "Lease",
    "Endpoints",
    "EndpointSlice",
];

/// Where a Pod spec lives, by kind; unknown kinds (custom resources such as Argo Rollouts) are
/// probed at the same places.
const POD_SPEC_PATHS: &[&[&str]] = &[
    &["spec", "template", "spec"],
    &["spec", "jobTemplate", "spec", "template", "spec"],
    &["template", "spec"],
];

fn analyse(record: &mut KubeObject, obj: &Map<String, Value>) -> Result<(), String> {
    if DATA_KINDS.contains(&record.kind.as_str()) {
        if record.kind == "Secret"
            && record.secret_type.as_deref() == Some("kubernetes.io/service-account-token")
            && let (Some(ns), Some(sa)) = (
                record.namespace.clone(),
                record
                    .annotations
                    .get("kubernetes.io/service-account.name")
                    .cloned(),
            )
        {
            record.uses.push(ObjectRef {
                kind: AuditedKind::ServiceAccount,
                namespace: ns,
                name: sa,
            });
        }
        return Ok(());
    }
    let namespace = record.namespace.clone().unwrap_or_default();

    // Pod specs, wherever they are.
    let mut pod_specs: Vec<(&Value, String)> = Vec::new();
    if record.kind == "Pod" {
        if let Some(spec) = obj.get("spec") {
            pod_specs.push((spec, "spec".to_string()));
        }
    } else {
        for path in POD_SPEC_PATHS {
            if let Some(spec) = get_path(obj, path)
                && spec.get("containers").is_some()
            {
                pod_specs.push((spec, path.join(".")));
            }
        }
    }
    for (spec, path) in &pod_specs {
        read_pod_spec(record, spec, path, &namespace)?;
    }

    // Everything else that can name a Secret, ConfigMap, PVC or ServiceAccount.
    match record.kind.as_str() {
        "ServiceAccount" => {
            for field in ["secrets", "imagePullSecrets"] {
                for name in names_in_list(obj.get(field)) {
                    record.uses.push(ObjectRef {
                        kind: AuditedKind::Secret,
                        namespace: namespace.clone(),
                        name,
                    });
                }
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            if let Some(Value::Array(subjects)) = obj.get("subjects") {
                for s in subjects {
                    if s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                        && let Some(name) = s.get("name").and_then(Value::as_str)
                    {
                        let ns = s
                            .get("namespace")
                            .and_then(Value::as_str)
                            .unwrap_or(&namespace)
                            .to_string();
                        record.uses.push(ObjectRef {
                            kind: AuditedKind::ServiceAccount,
                            namespace: ns,
                            name: name.to_string(),
                        });
                    }
                }
            }
        }
        _ => {
            if pod_specs.is_empty() {
                for (key, value) in obj {
                    if key != "metadata" && key != "status" && key != "apiVersion" && key != "kind"
                    {
                        scan_references(value, key, &namespace, &mut record.uses);
                    }
                }
            }
        }
    }

    if record.kind == "StatefulSet"
        && let Some(Value::Array(templates)) = get_path(obj, &["spec", "volumeClaimTemplates"])
    {
        for t in templates {
            if let Some(name) = t.pointer("/metadata/name").and_then(Value::as_str) {
                record
                    .claim_prefixes
                    .push(format!("{name}-{}-", record.name));
            }
        }
    }
    if let Some(replicas) = get_path(obj, &["spec", "replicas"]).and_then(Value::as_i64) {
        record.replicas = Some(replicas);
    }
    if record.kind == "Pod"
        && let Some(status) = obj.get("status")
    {
        for field in [
            "containerStatuses",
            "initContainerStatuses",
            "ephemeralContainerStatuses",
        ] {
            if let Some(Value::Array(list)) = status.get(field) {
                for s in list {
                    for key in ["imageID", "image"] {
                        if let Some(id) = s.get(key).and_then(Value::as_str)
                            && !id.is_empty()
                        {
                            record.image_ids.push(id.to_string());
                        }
                    }
                }
            }
        }
    }
    record.uses.sort();
    record.uses.dedup();
    Ok(())
}

fn read_pod_spec(
    record: &mut KubeObject,
    spec: &Value,
    path: &str,
    namespace: &str,
) -> Result<(), String> {
    if !spec.is_object() {
        return Err(format!(
            "{path}: expected an object, found {}",
            type_name(spec)
        ));
    }
    for field in ["containers", "initContainers", "ephemeralContainers"] {
        match spec.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for (i, c) in list.iter().enumerate() {
                    let image = match c.get("image") {
                        Some(Value::String(s)) => s.clone(),
                        None | Some(Value::Null) => String::new(),
                        Some(other) => {
                            return Err(format!(
                                "{path}.{field}[{i}].image: expected a string, found {}",
                                type_name(other)
                            ));
                        }
                    };
                    let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                    record.containers.push(Container {
                        name: name.to_string(),
                        image,
                    });
                }
            }
            Some(other) => {
                return Err(format!(
                    "{path}.{field}: expected a list, found {}",
                    type_name(other)
                ));
            }
        }
    }
    let service_account = spec
        .get("serviceAccountName")
        .or_else(|| spec.get("serviceAccount"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    record.uses.push(ObjectRef {
        kind: AuditedKind::ServiceAccount,
        namespace: namespace.to_string(),
        name: service_account.to_string(),
    });
    for name in names_in_list(spec.get("imagePullSecrets")) {
        record.uses.push(ObjectRef {
            kind: AuditedKind::Secret,
            namespace: namespace.to_string(),
            name,
        });
    }
    if let Some(obj) = spec.as_object() {
        for (key, value) in obj {
            scan_references(value, key, namespace, &mut record.uses);
        }
    }
    Ok(())
}

fn names_in_list(value: Option<&Value>) -> Vec<String> {
    let Some(Value::Array(items)) = value else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|i| match i {
            Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_string),
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// Finds every reference below `value` (reached through `key`). Deliberately generous.
fn scan_references(value: &Value, key: &str, namespace: &str, out: &mut Vec<ObjectRef>) {
    // Field names are matched whatever their case, without a lowercase copy of each.
    let is = |name: &str| key.eq_ignore_ascii_case(name);
    let ends = |suffix: &str| {
        key.len() >= suffix.len()
            && key.as_bytes()[key.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    };
    let push = |out: &mut Vec<ObjectRef>, kind, ns: Option<&str>, name: &str| {
        if !name.is_empty() {
            out.push(ObjectRef {
                kind,
                namespace: ns.unwrap_or(namespace).to_string(),
                name: name.to_string(),
            });
        }
    };
    match value {
        Value::String(s) => {
            if is("secretname") {
                push(out, AuditedKind::Secret, None, s);
            } else if is("claimname") {
                push(out, AuditedKind::PersistentVolumeClaim, None, s);
            } else if is("serviceaccountname") || is("serviceaccount") {
                push(out, AuditedKind::ServiceAccount, None, s);
            } else if is("configmapname") {
                push(out, AuditedKind::ConfigMap, None, s);
            } else if is("servicename") {
                push(out, AuditedKind::Service, None, s);
            }
        }
        Value::Object(o) => {
            let name = o.get("name").and_then(Value::as_str);
            let ns = o.get("namespace").and_then(Value::as_str);
            if let Some(name) = name {
                if is("secret") || ends("secretref") || ends("secretkeyref") {
                    push(out, AuditedKind::Secret, ns, name);
                } else if is("configmap") || ends("configmapref") || ends("configmapkeyref") {
                    push(out, AuditedKind::ConfigMap, ns, name);
                } else if is("persistentvolumeclaim") || ends("claimref") {
                    push(out, AuditedKind::PersistentVolumeClaim, ns, name);
                } else if is("service") {
                    // An Ingress backend, a webhook's or an APIService's `service`.
                    push(out, AuditedKind::Service, ns, name);
                }
            }
            for (k, v) in o {
                scan_references(v, k, namespace, out);
            }
        }
        Value::Array(items) => {
            let secret_list = ends("pullsecrets") || is("certificaterefs");
            for item in items {
                // Gateway API routes: `backendRefs: [{name, kind?: Service}]`.
                if is("backendrefs")
                    && let Some(name) = item.get("name").and_then(Value::as_str)
                    && item
                        .get("kind")
                        .and_then(Value::as_str)
                        .is_none_or(|k| k == "Service")
                {
                    push(
                        out,
                        AuditedKind::Service,
                        item.get("namespace").and_then(Value::as_str),
                        name,
                    );
                }
                if secret_list
                    && let Some(name) = item.get("name").and_then(Value::as_str)
                    && item
                        .get("kind")
                        .and_then(Value::as_str)
                        .is_none_or(|k| k == "Secret")
                {
                    push(
                        out,
                        AuditedKind::Secret,
                        item.get("namespace").and_then(Value::as_str),
                        name,
                    );
                }
                // Array items inherit the key that holds them (`sources: [{secret: …}]`).
                scan_references(item, key, namespace, out);
            }
        }
        _ => {}
    }
}

pub(super) fn get_path<'a>(obj: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut current = obj.get(*first)?;
    for key in rest {
        current = current.get(key)?;
    }
    Some(current)
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn required_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, String> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(format!("{path}: must not be empty")),
        Some(other) => Err(format!(
            "{path}: expected a string, found {}",
            type_name(other)
        )),
        None => Err(format!("{path}: missing")),
    }
}

fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(Some(s)),
        None | Some(Value::Null) => Ok(None),
        Some(other) => Err(format!(
            "{path}: expected a string, found {}",
            type_name(other)
        )),
    }
}

fn string_map(value: Option<&Value>, path: &str) -> Result<BTreeMap<String, String>, String> {
    match value {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Bool(b) => Ok((k.clone(), b.to_string())),
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                Value::Null => Ok((k.clone(), String::new())),
                other => Err(format!(
                    "{path}.{k}: expected a string, found {}",
                    type_name(other)
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "{path}: expected an object, found {}",
            type_name(other)
        )),
    }
}

fn owner_refs(value: Option<&Value>) -> Result<Vec<OwnerRef>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let o = item
                    .as_object()
                    .ok_or_else(|| format!("metadata.ownerReferences[{i}]: expected an object"))?;
                Ok(OwnerRef {
                    kind: o
                        .get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    name: o
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    uid: o.get("uid").and_then(Value::as_str).map(str::to_string),
                })
            })
            .collect(),
        Some(other) => Err(format!(
            "metadata.ownerReferences: expected a list, found {}",
            type_name(other)
        )),
    }
}

pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    fn refs(v: Value) -> Vec<(AuditedKind, String, String)> {
        KubeObject::from_value(v)
            .unwrap()
            .uses
            .into_iter()
            .map(|r| (r.kind, r.namespace, r.name))
            .collect()
    }

    fn has(list: &[(AuditedKind, String, String)], kind: AuditedKind, name: &str) -> bool {
        list.iter().any(|(k, _, n)| *k == kind && n == name)
    }

    #[test]
    fn reads_every_reference_of_a_cronjob_template() {
        let cj = json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "export", "namespace": "p"},
            "spec": {"suspend": true, "jobTemplate": {"spec": {"template": {"spec": {
                "serviceAccountName": "exporter",
                "imagePullSecrets": [{"name": "pull"}],
                "initContainers": [{"name": "i", "image": "x:1",
                    "envFrom": [{"secretRef": {"name": "init-env"}}]}],
                "containers": [{"name": "c", "image": "x:2",
                    "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-key", "key": "k"}}},
                            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "sec-key", "key": "k"}}}],
                    "envFrom": [{"configMapRef": {"name": "cm-env"}}]}],
                "volumes": [
                    {"name": "a", "secret": {"secretName": "vol-secret"}},
                    {"name": "b", "configMap": {"name": "vol-cm"}},
                    {"name": "c", "projected": {"sources": [
                        {"secret": {"name": "proj-secret"}}, {"configMap": {"name": "proj-cm"}}]}},
                    {"name": "d", "csi": {"driver": "x", "nodePublishSecretRef": {"name": "csi-secret"}}},
                    {"name": "e", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "f", "cephfs": {"monitors": [], "secretRef": {"name": "ceph"}}}
                ]}}}}}
        });
        let r = refs(cj);
        for (kind, name) in [
            (AuditedKind::ServiceAccount, "exporter"),
            (AuditedKind::Secret, "pull"),
            (AuditedKind::Secret, "init-env"),
            (AuditedKind::ConfigMap, "cm-key"),
            (AuditedKind::Secret, "sec-key"),
            (AuditedKind::ConfigMap, "cm-env"),
            (AuditedKind::Secret, "vol-secret"),
            (AuditedKind::ConfigMap, "vol-cm"),
            (AuditedKind::Secret, "proj-secret"),
            (AuditedKind::ConfigMap, "proj-cm"),
            (AuditedKind::Secret, "csi-secret"),
            (AuditedKind::PersistentVolumeClaim, "data"),
            (AuditedKind::Secret, "ceph"),
        ] {
            assert!(has(&r, kind, name), "{kind:?} {name} not found in {r:?}");
        }
        assert!(r.iter().all(|(_, ns, _)| ns == "p"));
    }

    #[test]
    fn pods_default_to_the_default_service_account_and_record_image_ids() {
        let pod = KubeObject::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
            "spec": {"containers": [{"name": "c", "image": "h/r:1"}]},
            "status": {"containerStatuses": [{"imageID": "h/r@sha256:abc", "image": "h/r:1"}]}
        }))
        .unwrap();
        assert!(
            pod.uses
                .iter()
                .any(|r| r.kind == AuditedKind::ServiceAccount && r.name == "default")
        );
        assert_eq!(pod.containers[0].image, "h/r:1");
        assert!(pod.image_ids.contains(&"h/r@sha256:abc".to_string()));
    }

    #[test]
    fn ingress_tls_service_account_and_custom_resources() {
        let ing = refs(
            json!({"kind": "Ingress", "apiVersion": "networking.k8s.io/v1",
            "metadata": {"name": "i", "namespace": "n"},
            "spec": {"tls": [{"hosts": ["a"], "secretName": "tls-a"}]}}),
        );
        assert!(has(&ing, AuditedKind::Secret, "tls-a"));
        let sa = refs(json!({"kind": "ServiceAccount", "apiVersion": "v1",
            "metadata": {"name": "s", "namespace": "n"},
            "secrets": [{"name": "tok"}], "imagePullSecrets": [{"name": "pull"}]}));
        assert!(has(&sa, AuditedKind::Secret, "tok") && has(&sa, AuditedKind::Secret, "pull"));
        let cert = refs(
            json!({"kind": "Certificate", "apiVersion": "cert-manager.io/v1",
            "metadata": {"name": "c", "namespace": "n"}, "spec": {"secretName": "issued-tls"}}),
        );
        assert!(has(&cert, AuditedKind::Secret, "issued-tls"));
        let rb = refs(
            json!({"kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "rb", "namespace": "n"},
            "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": "other"}]}),
        );
        assert_eq!(
            rb,
            vec![(AuditedKind::ServiceAccount, "other".into(), "ci".into())]
        );
    }

    #[test]
    fn statefulset_claim_templates_and_rollout_templates() {
        let sts = KubeObject::from_value(json!({"kind": "StatefulSet", "apiVersion": "apps/v1",
            "metadata": {"name": "db", "namespace": "n"},
            "spec": {"replicas": 0, "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
                     "template": {"spec": {"containers": [{"name": "c", "image": "pg:16"}]}}}}))
        .unwrap();
        assert_eq!(sts.claim_prefixes, vec!["data-db-".to_string()]);
        assert_eq!(sts.replicas, Some(0));
        let rollout = refs(
            json!({"kind": "Rollout", "apiVersion": "argoproj.io/v1alpha1",
            "metadata": {"name": "r", "namespace": "n"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x",
                "envFrom": [{"configMapRef": {"name": "rollout-cm"}}]}]}}}}),
        );
        assert!(has(&rollout, AuditedKind::ConfigMap, "rollout-cm"));
    }

    #[test]
    fn secret_data_is_dropped_and_configmap_data_is_not_a_reference() {
        let s = KubeObject::from_value(
            json!({"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
            "metadata": {"name": "s", "namespace": "n"}, "data": {"k": "c2VjcmV0"}}),
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("c2VjcmV0"), "{s:?}");
        let cm = refs(json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "c", "namespace": "n"}, "data": {"secretName": "x"}}));
        assert!(cm.is_empty());
    }

    /// A Secret as `kubectl apply -f` leaves it: the annotation holds the applied manifest,
    /// with `data` base64-encoded and `stringData` in plain text.
    pub(crate) fn kubectl_applied_secret() -> Value {
        let applied = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"annotations": {}, "name": "db", "namespace": "app"},
            "data": {"password": "czNjcjN0LWJhc2U2NC12YWx1ZQ=="},
            "stringData": {"token": "plain-t0ken-value"}});
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "db", "namespace": "app",
                "uid": "5b1c3c8e-5d2e-4a8e-9b53-7f0c1c9d2a11", "resourceVersion": "42",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": format!("{applied}\n"),
                    "team": "payments"},
                "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update",
                    "fieldsV1": {"f:data": {"f:password": {}}}}]},
            "data": {"password": "czNjcjN0LWJhc2U2NC12YWx1ZQ==", "token": "cGxhaW4tdDBrZW4tdmFsdWU="}})
    }

    #[test]
    fn the_last_applied_annotation_never_reaches_a_record() {
        let o = KubeObject::from_value(kubectl_applied_secret()).unwrap();
        let text = format!("{o:?}");
        for secret in [
            "czNjcjN0LWJhc2U2NC12YWx1ZQ==",
            "plain-t0ken-value",
            "cGxhaW4tdDBrZW4tdmFsdWU=",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(!text.contains("last-applied-configuration"), "{text}");
        assert_eq!(o.annotations["team"], "payments", "other annotations stay");
        // Not only Secrets: the applied copy of a ConfigMap holds its data too.
        let cm = KubeObject::from_value(json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "c", "namespace": "n", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"DB_PASSWORD\":\"hunter2\"}}"}},
            "data": {"DB_PASSWORD": "hunter2"}}))
        .unwrap();
        assert!(!cm.annotations.contains_key(LAST_APPLIED_ANNOTATION));
    }

    #[test]
    fn malformed_objects_name_the_field() {
        let e = KubeObject::from_value(json!({"kind": "ConfigMap", "metadata": {"name": 3}}))
            .unwrap_err();
        assert_eq!(e, "metadata.name: expected a string, found a number");
        let e = KubeObject::from_value(
            json!({"kind": "Pod", "metadata": {"name": "p", "creationTimestamp": "yesterday"}}),
        )
        .unwrap_err();
        assert!(e.starts_with("metadata.creationTimestamp"));
        let e = KubeObject::from_value(json!({"kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": {"name": "c"}}}}}))
        .unwrap_err();
        assert_eq!(
            e,
            "spec.template.spec.containers: expected a list, found an object"
        );
    }
}
