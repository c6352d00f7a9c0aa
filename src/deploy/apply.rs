//! Apply: server-side apply with field manager `driftsweep`, first as a dry run of every
//! object (so a conflict with another field manager or a change to an immutable field is
//! reported, naming the object and the field, before anything is applied), then for real.

use serde::Serialize;
use serde_json::Value;

use super::render::describe;
use crate::inventory::cluster::{Cluster, ClusterError, KindInfo};

pub const FIELD_MANAGER: &str = "driftsweep";

/// What applying one object will change.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub object: String,
    /// `create`, `change` or `unchanged`.
    pub action: String,
    /// The fields that change (paths), for `change`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// One object of the render, where the API serves it.
#[derive(Debug, Clone)]
pub struct Target {
    pub info: KindInfo,
    pub namespace: String,
    pub name: String,
    pub object: Value,
}

impl Target {
    pub fn path(&self) -> String {
        format!(
            "{}/{}",
            self.info.collection(Some(&self.namespace)),
            self.name
        )
    }
}

/// Resolves every object's API path (discovery for kinds driftsweep does not know).
pub async fn targets(cluster: &Cluster, render: &[Value]) -> Result<Vec<Target>, String> {
    let mut out = Vec::new();
    for object in render {
        let text = |p: &str| {
            object
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let info = cluster
            .resolve(text("/apiVersion"), text("/kind"))
            .await
            .map_err(|e| format!("{}: {e}", describe(object)))?;
        out.push(Target {
            info,
            namespace: text("/metadata/namespace").to_string(),
            name: text("/metadata/name").to_string(),
            object: object.clone(),
        });
    }
    Ok(out)
}

fn apply_request(target: &Target, dry_run: bool, force: bool) -> http::Request<Vec<u8>> {
    apply_request_as(target, FIELD_MANAGER, dry_run, force)
}

fn apply_request_as(
    target: &Target,
    manager: &str,
    dry_run: bool,
    force: bool,
) -> http::Request<Vec<u8>> {
    let mut uri = format!(
        "{}?fieldManager={manager}&fieldValidation=Strict",
        target.path()
    );
    if dry_run {
        uri.push_str("&dryRun=All");
    }
    if force {
        uri.push_str("&force=true");
    }
    let mut request = http::Request::new(target.object.to_string().into_bytes());
    *request.method_mut() = http::Method::PATCH;
    if let Ok(uri) = uri.parse() {
        *request.uri_mut() = uri;
    }
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/apply-patch+yaml"),
    );
    request
}

/// Applies one object; answers the object as the server stored it (or would, in a dry run).
pub async fn apply(
    cluster: &Cluster,
    target: &Target,
    dry_run: bool,
) -> Result<Value, ClusterError> {
    cluster
        .send_json(apply_request(target, dry_run, false))
        .await
}

/// Applies one object as field manager `manager`: it owns exactly the fields `target` holds
/// (blue-green's replicas and scale-down annotation, apart from the rest of the object).
pub async fn apply_as(
    cluster: &Cluster,
    target: &Target,
    manager: &str,
) -> Result<Value, ClusterError> {
    cluster
        .send_json(apply_request_as(target, manager, false, false))
        .await
}

/// Dry-runs every object; answers the changes, or every problem (conflicts with other field
/// managers, immutable fields, invalid objects), each naming the object.
pub async fn preview(cluster: &Cluster, targets: &[Target]) -> Result<Vec<Change>, Vec<String>> {
    let mut problems = Vec::new();
    let mut changes = Vec::new();
    for target in targets {
        let object = describe(&target.object);
        let would_be = match apply(cluster, target, true).await {
            Ok(v) => v,
            Err(e) => {
                match e.code() {
                    // A conflict hides what a forced apply would still refuse: ask once more
                    // with force to report an immutable field as well.
                    Some(409) => {
                        problems.push(format!(
                            "{object}: conflicts with another field manager: {}\nhint: the field belongs to whoever set it last (kubectl, another controller); remove it from their manifest, or take it over with `kubectl apply --server-side --force-conflicts --field-manager {FIELD_MANAGER}` once you agree",
                            message(&e)
                        ));
                        if let Err(e2) = cluster.send_json(apply_request(target, true, true)).await
                            && e2.code() == Some(422)
                        {
                            problems.push(invalid(&object, &e2));
                        }
                    }
                    Some(422) => problems.push(invalid(&object, &e)),
                    Some(404) => problems.push(format!(
                        "{object}: {}\nhint: the environment's namespace must exist before a deploy (it is cluster-scoped: create it with the repository's namespace manifest)",
                        message(&e)
                    )),
                    _ => problems.push(format!("{object}: {e}")),
                }
                continue;
            }
        };
        let live = match cluster.send_json(super::rollout::get(&target.path())).await {
            Ok(v) => Some(v),
            Err(e) if e.code() == Some(404) => None,
            Err(e) => {
                problems.push(format!("{object}: {e}"));
                continue;
            }
        };
        changes.push(match live {
            None => Change {
                object,
                action: "create".to_string(),
                fields: Vec::new(),
            },
            Some(live) => {
                let mut fields = Vec::new();
                diff("", &normalised(&live), &normalised(&would_be), &mut fields);
                Change {
                    object,
                    action: if fields.is_empty() {
                        "unchanged"
                    } else {
                        "change"
                    }
                    .to_string(),
                    fields,
                }
            }
        });
    }
    if problems.is_empty() {
        Ok(changes)
    } else {
        Err(problems)
    }
}

fn message(e: &ClusterError) -> String {
    match e {
        ClusterError::Api { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn invalid(object: &str, e: &ClusterError) -> String {
    let m = message(e);
    if m.contains("immutable") {
        format!(
            "{object}: changes a field Kubernetes does not let change: {m}\nhint: a selector or another immutable field differs from the live object; rename the object (a new one is made) or delete the old one first, with a reviewed plan"
        )
    } else {
        format!("{object}: the API server refuses it: {m}")
    }
}

/// What apply compares: the object without what the server keeps for itself.
fn normalised(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(map) = o.as_object_mut() {
        map.remove("status");
    }
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
            "selfLink",
        ] {
            m.remove(key);
        }
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("deployment.kubernetes.io/revision");
            if a.is_empty() {
                m.remove("annotations");
            }
        }
    }
    o
}

/// The paths where `a` and `b` differ (Secret values are never shown, only their keys).
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    const MAX_FIELDS: usize = 20;
    if a == b || out.len() >= MAX_FIELDS {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let child = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff(&child, p, q, out),
                    _ => out.push(child),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ => out.push(if path.is_empty() {
            ".".to_string()
        } else {
            path.to_string()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_diff_names_changed_fields_and_ignores_server_bookkeeping() {
        let live = json!({"metadata": {"name": "a", "resourceVersion": "1", "managedFields": [],
            "annotations": {"deployment.kubernetes.io/revision": "3"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "h/a:1"}]}}},
            "status": {"replicas": 2}});
        let next = json!({"metadata": {"name": "a", "resourceVersion": "2"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "h/a:2"}]}}}});
        let mut fields = Vec::new();
        diff("", &normalised(&live), &normalised(&next), &mut fields);
        assert_eq!(fields, [".spec.template.spec.containers[0].image"]);
        let mut none = Vec::new();
        diff("", &normalised(&live), &normalised(&live), &mut none);
        assert!(none.is_empty());
    }
}
