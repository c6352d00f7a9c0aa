//! What the workload, networking and RBAC kinds say about each other, beyond plain name
//! references: label selectors (a Service, PodDisruptionBudget or NetworkPolicy and the Pods
//! it selects), an autoscaler's target, a binding's role and subjects, whether a Job still
//! runs, a volume's claim, and the other namespaces an object points at.
//!
//! Read generously, like the references: a selector this code cannot evaluate selects
//! everything, so it keeps rather than frees.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::kubernetes::{KubeObject, ObjectRef, get_path};
use crate::policy::AuditedKind;

/// A label selector: `matchLabels` plus `matchExpressions` (a Service's plain map has only
/// the first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub labels: BTreeMap<String, String>,
    pub expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

impl Selector {
    /// Whether `labels` are selected. An empty selector selects everything (the API's
    /// meaning for PodDisruptionBudgets and NetworkPolicies), and an operator this code does
    /// not know selects everything too.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => true,
                }
            })
    }

    /// A `metav1.LabelSelector` object; `None` when absent or not an object.
    fn of_label_selector(value: Option<&Value>) -> Option<Selector> {
        let obj = value?.as_object()?;
        let mut selector = Selector {
            labels: plain_map(obj.get("matchLabels")),
            expressions: Vec::new(),
        };
        if let Some(Value::Array(list)) = obj.get("matchExpressions") {
            for e in list {
                let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
                selector.expressions.push(Requirement {
                    key: text("key").to_string(),
                    operator: text("operator").to_string(),
                    values: e
                        .get("values")
                        .and_then(Value::as_array)
                        .map(|v| {
                            v.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
        Some(selector)
    }
}

/// A PersistentVolume's state, or a claim's volume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Volume {
    /// PersistentVolumes: `status.phase` (`Bound`, `Released`, `Available`, …).
    pub phase: Option<String>,
    /// PersistentVolumes: `spec.claimRef` (namespace, name, uid).
    pub claim: Option<(String, String, Option<String>)>,
    /// PersistentVolumes: `spec.capacity.storage`.
    pub capacity: Option<String>,
    /// PersistentVolumes: `spec.persistentVolumeReclaimPolicy`.
    pub reclaim_policy: Option<String>,
    /// PersistentVolumes: the disk behind it (GCE PD name or CSI volume handle).
    pub disk: Option<String>,
    /// PersistentVolumeClaims: `spec.volumeName`.
    pub volume_name: Option<String>,
}

/// Fills the relation fields of `record` from the object as the API returned it.
pub fn analyse(record: &mut KubeObject, obj: &Map<String, Value>) {
    let namespace = record.namespace.clone().unwrap_or_default();
    let spec = obj.get("spec");
    match record.kind.as_str() {
        "Service" => {
            record.service_type = spec
                .and_then(|s| s.get("type"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let selector = plain_map(spec.and_then(|s| s.get("selector")));
            if !selector.is_empty() {
                record.selector = Some(Selector {
                    labels: selector,
                    expressions: Vec::new(),
                });
            }
        }
        "PodDisruptionBudget" => {
            // No selector on a PDB selects nothing (policy/v1), so it protects no Pod.
            record.selector = Selector::of_label_selector(spec.and_then(|s| s.get("selector")));
        }
        "NetworkPolicy" => {
            // `podSelector: {}` selects every Pod of the namespace.
            record.selector = Some(
                Selector::of_label_selector(spec.and_then(|s| s.get("podSelector")))
                    .unwrap_or_default(),
            );
            namespaces_selected(spec, &mut record.namespace_refs);
        }
        "HorizontalPodAutoscaler" => {
            if let Some(target) = spec.and_then(|s| s.get("scaleTargetRef")) {
                let kind = target.get("kind").and_then(Value::as_str);
                let name = target.get("name").and_then(Value::as_str);
                if let (Some(kind), Some(name)) = (kind.and_then(AuditedKind::parse), name) {
                    record.uses.push(ObjectRef {
                        kind,
                        namespace: namespace.clone(),
                        name: name.to_string(),
                    });
                }
            }
        }
        "RoleBinding" => {
            if let Some(role) = obj.get("roleRef")
                && role.get("kind").and_then(Value::as_str) == Some("Role")
                && let Some(name) = role.get("name").and_then(Value::as_str)
            {
                record.uses.push(ObjectRef {
                    kind: AuditedKind::Role,
                    namespace: namespace.clone(),
                    name: name.to_string(),
                });
            }
            for s in obj
                .get("subjects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let text = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or_default();
                match text("kind") {
                    "ServiceAccount" => {
                        let ns = text("namespace");
                        if !ns.is_empty() && ns != namespace {
                            record.namespace_refs.push(ns.to_string());
                        }
                    }
                    "User" | "Group" if is_machine_identity(text("name")) => {
                        record.machine_subject = Some(text("name").to_string());
                    }
                    _ => {}
                }
            }
        }
        "Job" => record.running = Some(job_running(obj)),
        "PersistentVolume" => {
            let claim = spec.and_then(|s| s.get("claimRef")).and_then(|c| {
                let text = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
                Some((text("namespace")?, text("name")?, text("uid")))
            });
            let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
            record.volume = Some(Box::new(Volume {
                phase: text(obj.get("status").and_then(|s| s.get("phase"))),
                claim,
                capacity: text(spec.and_then(|s| s.pointer("/capacity/storage"))),
                reclaim_policy: text(spec.and_then(|s| s.get("persistentVolumeReclaimPolicy"))),
                disk: text(spec.and_then(|s| s.pointer("/gcePersistentDisk/pdName")))
                    .or_else(|| text(spec.and_then(|s| s.pointer("/csi/volumeHandle")))),
                volume_name: None,
            }));
        }
        "PersistentVolumeClaim" => {
            record.volume = Some(Box::new(Volume {
                volume_name: spec
                    .and_then(|s| s.get("volumeName"))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                ..Volume::default()
            }));
        }
        _ => {}
    }

    // The labels of the Pods this object is or makes, for the selectors above.
    record.pod_labels = if record.kind == "Pod" {
        Some(record.labels.clone())
    } else {
        [
            &["spec", "template", "metadata", "labels"][..],
            &[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "metadata",
                "labels",
            ],
        ]
        .iter()
        .find_map(|p| get_path(obj, p))
        .map(|v| plain_map(Some(v)))
    };

    // Other namespaces it names through cluster DNS (`api.other.svc.cluster.local`), in any
    // string value: an ExternalName, an env value, a ConfigMap's data.
    if record.kind != "Secret" {
        for (key, value) in obj {
            if key != "metadata" && key != "status" {
                dns_namespaces(value, &mut record.namespace_refs);
            }
        }
    }
    // What Cloud SQL instances it connects to: a proxy's or connector's connection name, or
    // an address, in any string but its metadata and status (a ConfigMap's data too: the
    // page decoder reads it the same way). Secrets are listed as metadata: their values are
    // never read, so a connection name kept only in a Secret is not seen.
    if record.kind != "Secret" {
        for (key, value) in obj {
            if key != "metadata" && key != "status" {
                cloud_sql_refs(value, &mut record.cloud_sql_refs);
            }
        }
        record.cloud_sql_refs.sort();
        record.cloud_sql_refs.dedup();
    }
    record.namespace_refs.retain(|ns| ns != &namespace);
    record.namespace_refs.sort();
    record.namespace_refs.dedup();
}

/// Subjects that are programs, not people: Google service accounts (Workload Identity, CI
/// deployers) and Kubernetes' own `system:` users and groups. A binding granting to one of
/// them is in use by something driftsweep cannot see.
fn is_machine_identity(name: &str) -> bool {
    name.ends_with(".gserviceaccount.com") || name.starts_with("system:")
}

/// A Job runs until a `Complete` or `Failed` condition is true, unless it is suspended with
/// no Pod left (a queued Job is suspended too, but its queue manages it: see the evaluation's
/// managed-by marks).
fn job_running(obj: &Map<String, Value>) -> bool {
    let suspended = obj
        .get("spec")
        .and_then(|s| s.get("suspend"))
        .and_then(Value::as_bool)
        == Some(true);
    let active = obj
        .get("status")
        .and_then(|s| s.get("active"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if suspended && active == 0 {
        return false;
    }
    let finished = obj
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            matches!(
                c.get("type").and_then(Value::as_str),
                Some("Complete" | "Failed")
            ) && c.get("status").and_then(Value::as_str) == Some("True")
        });
    !finished
}

/// NetworkPolicy peers selecting a namespace by its name label.
fn namespaces_selected(spec: Option<&Value>, out: &mut Vec<String>) {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(o) => {
                if let Some(selector) = Selector::of_label_selector(o.get("namespaceSelector")) {
                    const NAME: &str = "kubernetes.io/metadata.name";
                    out.extend(selector.labels.get(NAME).cloned());
                    for r in selector.expressions.iter().filter(|r| r.key == NAME) {
                        if r.operator == "In" {
                            out.extend(r.values.iter().cloned());
                        }
                    }
                }
                for v in o.values() {
                    walk(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    if let Some(spec) = spec {
        walk(spec, out);
    }
}

/// Namespaces named as `<service>.<namespace>.svc` in any string below `value`.
fn dns_namespaces(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.extend(svc_namespaces(s)),
        Value::Object(o) => o.values().for_each(|v| dns_namespaces(v, out)),
        Value::Array(items) => items.iter().for_each(|v| dns_namespaces(v, out)),
        _ => {}
    }
}

/// Cloud SQL connection names and IPv4 addresses in any string below `value`.
fn cloud_sql_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.extend(sql_refs_in(s)),
        Value::Object(o) => o.values().for_each(|v| cloud_sql_refs(v, out)),
        Value::Array(items) => items.iter().for_each(|v| cloud_sql_refs(v, out)),
        _ => {}
    }
}

/// `--instances=p:us-central1:db=tcp:5432`, `p:us-central1:db?port=5432`, `10.1.2.3:5432` →
/// `p:us-central1:db`, `10.1.2.3`. A connection name is `PROJECT:REGION:INSTANCE` (a
/// domain-scoped project has a colon of its own); matched without regard to case.
pub fn sql_refs_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '_');
    for word in text.split(|c: char| !token(c)).filter(|w| !w.is_empty()) {
        let parts: Vec<&str> = word.split(':').collect();
        if parts.len() >= 3 {
            // The region is the second to last part: `us-central1`, `europe-west4`.
            for i in 1..parts.len() - 1 {
                let region = parts[i];
                let looks_like_region = region.contains('-')
                    && region.ends_with(|c: char| c.is_ascii_digit())
                    && region.starts_with(|c: char| c.is_ascii_lowercase());
                if looks_like_region && !parts[i + 1].is_empty() {
                    out.push(
                        format!("{}:{}:{}", parts[..i].join(":"), region, parts[i + 1])
                            .to_ascii_lowercase(),
                    );
                }
            }
        }
        for piece in word.split(':') {
            if piece.parse::<std::net::Ipv4Addr>().is_ok() {
                out.push(piece.to_string());
            }
        }
    }
    out
}

/// `http://api.billing.svc.cluster.local:8080` → `billing`.
pub fn svc_namespaces(text: &str) -> Vec<String> {
    let label = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let mut out = Vec::new();
    for (at, _) in text.match_indices(".svc") {
        let after = text[at + 4..].chars().next();
        if after.is_some_and(|c| label(c) || c.is_ascii_uppercase()) {
            continue;
        }
        let before = &text[..at];
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| !label(*c))
            .map(|(i, c)| i + c.len_utf8())
            .unwrap_or(0);
        let namespace = &before[start..];
        // A namespace after a Service's name: `<service>.<namespace>.svc`.
        if !namespace.is_empty() && before[..start].ends_with('.') && start > 1 {
            out.push(namespace.to_string());
        }
    }
    out
}

fn plain_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(v: Value) -> KubeObject {
        KubeObject::from_value(v).unwrap()
    }

    #[test]
    fn cloud_sql_connection_names_and_addresses_are_found_in_any_spelling() {
        assert_eq!(
            sql_refs_in("--instances=aia-prod:us-central1:main=tcp:5432"),
            ["aia-prod:us-central1:main"]
        );
        assert_eq!(
            sql_refs_in("/cloud-sql-proxy --port 5432 Aia-Prod:europe-west4:Orders?port=5433"),
            ["aia-prod:europe-west4:orders"]
        );
        assert_eq!(
            sql_refs_in("example.com:proj:us-east1:db"),
            ["example.com:proj:us-east1:db"]
        );
        assert_eq!(sql_refs_in("postgres://u@10.1.2.3:5432/app"), ["10.1.2.3"]);
        assert!(sql_refs_in("http://api:8080 time 12:30:00 a:b:c").is_empty());
    }

    #[test]
    fn a_workloads_spec_and_a_configmaps_data_name_their_databases() {
        let deploy = KubeObject::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "aia-production",
                "annotations": {"note": "p:us-central1:not-this"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "proxy", "image": "cloud-sql-proxy",
                 "args": ["--structured-logs", "p:us-central1:main?port=5432"]},
                {"name": "app", "image": "app",
                 "env": [{"name": "DB", "value": "10.0.0.7"}]}]}}}}))
        .unwrap();
        assert_eq!(deploy.cloud_sql_refs, ["10.0.0.7", "p:us-central1:main"]);
        let cm = KubeObject::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "db", "namespace": "aia-production"},
            "data": {"DB": "p:us-central1:main"}}))
        .unwrap();
        assert_eq!(
            cm.cloud_sql_refs,
            ["p:us-central1:main"],
            "as the page decoder reads it"
        );
    }

    #[test]
    fn cluster_dns_names_give_their_namespace_and_nothing_else_does() {
        assert_eq!(
            svc_namespaces("http://api.billing.svc.cluster.local:8080/x"),
            ["billing"]
        );
        assert_eq!(
            svc_namespaces("db.legacy.svc:5432,cache.ops.svc"),
            ["legacy", "ops"]
        );
        // Not DNS names of a Service in a namespace.
        assert!(svc_namespaces("billing.svc").is_empty());
        assert!(svc_namespaces("api.billing.svcx").is_empty());
        assert!(svc_namespaces("a .svc").is_empty());
        assert!(svc_namespaces("plain text").is_empty());
    }

    #[test]
    fn selectors_follow_the_api_and_unknown_operators_select_everything() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "api".to_string())]
            .into_iter()
            .collect();
        let s = |v: Value| Selector::of_label_selector(Some(&v)).unwrap();
        assert!(s(json!({})).matches(&labels), "empty selects all");
        assert!(s(json!({"matchLabels": {"app": "api"}})).matches(&labels));
        assert!(!s(json!({"matchLabels": {"app": "web"}})).matches(&labels));
        let expr = |op: &str, values: Value| {
            s(json!({"matchExpressions": [{"key": "app", "operator": op, "values": values}]}))
        };
        assert!(expr("In", json!(["api", "web"])).matches(&labels));
        assert!(!expr("NotIn", json!(["api"])).matches(&labels));
        assert!(expr("Exists", json!([])).matches(&labels));
        assert!(!expr("DoesNotExist", json!([])).matches(&labels));
        assert!(
            expr("Gt", json!(["1"])).matches(&labels),
            "unknown: selects"
        );
    }

    #[test]
    fn relations_are_read_from_each_kind() {
        let svc = record(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "namespace": "app"},
            "spec": {"type": "ExternalName", "externalName": "db.legacy.svc.cluster.local"}}));
        assert_eq!(svc.selector, None, "no selector: endpoints set elsewhere");
        assert_eq!(svc.service_type.as_deref(), Some("ExternalName"));
        assert_eq!(svc.namespace_refs, ["legacy"]);

        let hpa = record(
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h", "namespace": "app"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}}}),
        );
        assert!(
            hpa.uses
                .iter()
                .any(|r| r.kind == AuditedKind::Deployment && r.name == "api")
        );

        let rb = record(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "b", "namespace": "app"},
            "roleRef": {"kind": "Role", "name": "reader", "apiGroup": "rbac.authorization.k8s.io"},
            "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "ops"},
                         {"kind": "User", "name": "ci@p.iam.gserviceaccount.com"}]}),
        );
        assert!(
            rb.uses
                .iter()
                .any(|r| r.kind == AuditedKind::Role && r.name == "reader")
        );
        assert_eq!(rb.namespace_refs, ["ops"]);
        assert_eq!(
            rb.machine_subject.as_deref(),
            Some("ci@p.iam.gserviceaccount.com")
        );

        let netpol = record(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "n", "namespace": "app"},
            "spec": {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector":
                {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}]}}),
        );
        assert_eq!(netpol.selector, Some(Selector::default()));
        assert_eq!(netpol.namespace_refs, ["monitoring"]);

        let running = record(json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "app"}, "status": {"active": 1}}));
        assert_eq!(running.running, Some(true));
        let done = record(json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "app"},
            "status": {"conditions": [{"type": "Complete", "status": "True"}]}}));
        assert_eq!(done.running, Some(false));
        let suspended = record(json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "app"}, "spec": {"suspend": true}, "status": {}}));
        assert_eq!(suspended.running, Some(false));

        let pv = record(json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": "pv-1"},
            "spec": {"capacity": {"storage": "10Gi"}, "persistentVolumeReclaimPolicy": "Retain",
                "claimRef": {"namespace": "app", "name": "data", "uid": "u1"},
                "gcePersistentDisk": {"pdName": "disk-1"}},
            "status": {"phase": "Released"}}));
        let v = pv.volume.unwrap();
        assert_eq!(v.phase.as_deref(), Some("Released"));
        assert_eq!(
            v.claim,
            Some(("app".into(), "data".into(), Some("u1".into())))
        );
        assert_eq!(v.capacity.as_deref(), Some("10Gi"));
        assert_eq!(v.disk.as_deref(), Some("disk-1"));

        let deploy = record(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "app"},
            "spec": {"template": {"metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "c", "image": "i",
                    "env": [{"name": "U", "value": "http://x.billing.svc:80"}]}]}}}}));
        assert_eq!(deploy.pod_labels.unwrap()["app"], "api");
        assert_eq!(deploy.namespace_refs, ["billing"]);
    }
}
