//! Wait: when is what was applied healthy, and when has it failed for good?
//!
//! The rules are kstatus's and Argo CD's (see the guide): the controller must have observed
//! the generation the apply wrote; replicas updated, available and ready, old ones gone.
//! A deploy fails fast on `ProgressDeadlineExceeded`, on `ReplicaFailure`, on a paused
//! Deployment (it would never finish), and on a new Pod stuck in a state no waiting fixes;
//! otherwise after its own timeout. Decisions are pure functions of the objects, so each rule
//! is unit-tested; `wait` only polls.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::render::pod_spec_pointer;
use crate::inventory::cluster::{Cluster, ClusterError};

/// Waiting reasons of a container that no amount of waiting fixes.
pub const STUCK_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerError",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "message", rename_all = "kebab-case")]
pub enum Health {
    Current,
    InProgress(String),
    Failed(String),
}

/// One applied object's health, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectHealth {
    pub object: String,
    #[serde(flatten)]
    pub health: Health,
}

/// The end of a wait.
#[derive(Debug, Clone, Serialize)]
pub struct WaitOutcome {
    /// `healthy`, `failed` or `timeout`.
    pub result: String,
    /// The first failure, or what was still in progress at the timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub seconds: f64,
    pub objects: Vec<ObjectHealth>,
}

impl WaitOutcome {
    pub fn healthy(&self) -> bool {
        self.result == "healthy"
    }
}

fn int(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

fn condition_is(object: &Value, kind: &str, status: &str) -> bool {
    condition(object, kind)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some(status)
}

fn reason_of(c: Option<&Value>) -> &str {
    c.and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn message_of(c: Option<&Value>) -> &str {
    c.and_then(|c| c.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The health of `object` (as read now) after an apply that left it at `generation`, with
/// the Pods its selector matches.
pub fn health(object: &Value, generation: i64, pods: &[Value]) -> Health {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    if object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return Health::Failed("deleted while the deploy waited".to_string());
    }
    let waits_for_generation = matches!(
        kind,
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
    );
    if waits_for_generation {
        let observed = int(object, "/status/observedGeneration").unwrap_or(0);
        let wanted = generation.max(int(object, "/metadata/generation").unwrap_or(0));
        if observed < wanted {
            return Health::InProgress(format!(
                "the controller has not seen generation {wanted} yet"
            ));
        }
    }
    if let Some(stuck) = stuck_pod(object, pods) {
        return Health::Failed(stuck);
    }
    match kind {
        "Deployment" => deployment(object),
        "StatefulSet" => statefulset(object),
        "DaemonSet" => daemonset(object),
        "Job" => job(object),
        "PersistentVolumeClaim" => match object.pointer("/status/phase").and_then(Value::as_str) {
            Some("Lost") => Health::Failed("its volume is lost".to_string()),
            _ => Health::Current,
        },
        _ => Health::Current,
    }
}

fn deployment(d: &Value) -> Health {
    let want = int(d, "/spec/replicas").unwrap_or(1);
    let progressing = condition(d, "Progressing");
    if reason_of(progressing) == "ProgressDeadlineExceeded" {
        return Health::Failed(format!(
            "ProgressDeadlineExceeded: {}",
            message_of(progressing)
        ));
    }
    if condition_is(d, "ReplicaFailure", "True") {
        let c = condition(d, "ReplicaFailure");
        return Health::Failed(format!("ReplicaFailure: {}", message_of(c)));
    }
    if d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Health::Failed("the Deployment is paused: it would never finish".to_string());
    }
    let updated = int(d, "/status/updatedReplicas").unwrap_or(0);
    let replicas = int(d, "/status/replicas").unwrap_or(0);
    let available = int(d, "/status/availableReplicas").unwrap_or(0);
    let ready = int(d, "/status/readyReplicas").unwrap_or(0);
    let terminating = int(d, "/status/terminatingReplicas").unwrap_or(0);
    if updated < want {
        return Health::InProgress(format!("{updated} of {want} replicas updated"));
    }
    if replicas > updated {
        return Health::InProgress(format!("{} old replicas still running", replicas - updated));
    }
    if available < want || ready < want {
        return Health::InProgress(format!("{available} of {want} replicas available"));
    }
    if terminating > 0 {
        return Health::InProgress(format!("{terminating} replicas terminating"));
    }
    Health::Current
}

fn statefulset(s: &Value) -> Health {
    let want = int(s, "/spec/replicas").unwrap_or(1);
    if s.pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        == Some("OnDelete")
    {
        return Health::Current;
    }
    let ready = int(s, "/status/readyReplicas").unwrap_or(0);
    let updated = int(s, "/status/updatedReplicas").unwrap_or(0);
    let partition = int(s, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
    if ready < want {
        return Health::InProgress(format!("{ready} of {want} replicas ready"));
    }
    if updated < want - partition {
        return Health::InProgress(format!(
            "{updated} of {} replicas updated",
            want - partition
        ));
    }
    let current = s.pointer("/status/currentRevision").and_then(Value::as_str);
    let update = s.pointer("/status/updateRevision").and_then(Value::as_str);
    if partition == 0 && current != update {
        return Health::InProgress("the update revision is not current yet".to_string());
    }
    Health::Current
}

fn daemonset(d: &Value) -> Health {
    if d.pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        == Some("OnDelete")
    {
        return Health::Current;
    }
    let Some(desired) = int(d, "/status/desiredNumberScheduled") else {
        return Health::InProgress("not scheduled yet".to_string());
    };
    for (field, what) in [
        ("/status/updatedNumberScheduled", "updated"),
        ("/status/numberAvailable", "available"),
        ("/status/numberReady", "ready"),
    ] {
        let n = int(d, field).unwrap_or(0);
        if n < desired {
            return Health::InProgress(format!("{n} of {desired} Pods {what}"));
        }
    }
    Health::Current
}

fn job(j: &Value) -> Health {
    if condition_is(j, "Failed", "True") {
        return Health::Failed(format!(
            "the Job failed: {}",
            message_of(condition(j, "Failed"))
        ));
    }
    if condition_is(j, "Complete", "True") {
        return Health::Current;
    }
    Health::InProgress("the Job has not completed".to_string())
}

/// A new Pod of `object` (one running its template's images) stuck in a state no waiting
/// fixes: the Pod, the container and the reason.
fn stuck_pod(object: &Value, pods: &[Value]) -> Option<String> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let pointer = pod_spec_pointer(kind)?;
    let images = |spec: Option<&Value>| -> Vec<String> {
        spec.and_then(|s| s.get("containers"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("image").and_then(Value::as_str).map(str::to_string))
            .collect()
    };
    let wanted = images(object.pointer(pointer));
    for pod in pods {
        if pod
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
            || (kind != "Pod" && images(pod.get("spec")) != wanted)
        {
            continue;
        }
        for list in ["initContainerStatuses", "containerStatuses"] {
            for status in pod
                .pointer(&format!("/status/{list}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let waiting = status.pointer("/state/waiting");
                let reason = reason_of(waiting);
                if STUCK_REASONS.contains(&reason) {
                    return Some(format!(
                        "Pod {} container {}: {reason}{}",
                        pod.pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or("?"),
                        status.get("name").and_then(Value::as_str).unwrap_or("?"),
                        match message_of(waiting) {
                            "" => String::new(),
                            m => format!(" ({m})"),
                        }
                    ));
                }
            }
        }
    }
    None
}

/// `key=value,…` of a workload's `spec.selector.matchLabels`.
fn selector(object: &Value) -> Option<String> {
    let labels = object.pointer("/spec/selector/matchLabels")?.as_object()?;
    let parts: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// What `wait` watches: each applied object with the generation its apply left.
pub struct Watched {
    pub info: crate::inventory::cluster::KindInfo,
    pub namespace: String,
    pub name: String,
    pub generation: i64,
}

impl Watched {
    /// `target`, at the generation its apply answered (`applied`).
    pub fn applied(target: &super::apply::Target, applied: &Value) -> Watched {
        Watched {
            info: target.info.clone(),
            namespace: target.namespace.clone(),
            name: target.name.clone(),
            generation: applied
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        }
    }
}

/// Polls every second until every object is current, one fails, or `timeout` passes.
pub async fn wait(cluster: &Cluster, objects: &[Watched], timeout: Duration) -> WaitOutcome {
    let started = Instant::now();
    loop {
        let mut states = Vec::new();
        for w in objects {
            states.push(ObjectHealth {
                object: format!("{} {}/{}", w.info.kind, w.namespace, w.name),
                health: match read_health(cluster, w).await {
                    Ok(h) => h,
                    // A failed read is no verdict: try again on the next poll.
                    Err(e) => Health::InProgress(format!("cannot read it: {e}")),
                },
            });
        }
        let seconds = started.elapsed().as_secs_f64();
        if let Some(failed) = states.iter().find_map(|s| match &s.health {
            Health::Failed(why) => Some(format!("{}: {why}", s.object)),
            _ => None,
        }) {
            return WaitOutcome {
                result: "failed".to_string(),
                reason: Some(failed),
                seconds,
                objects: states,
            };
        }
        let pending: Vec<String> = states
            .iter()
            .filter_map(|s| match &s.health {
                Health::InProgress(why) => Some(format!("{}: {why}", s.object)),
                _ => None,
            })
            .collect();
        if pending.is_empty() {
            return WaitOutcome {
                result: "healthy".to_string(),
                reason: None,
                seconds,
                objects: states,
            };
        }
        if started.elapsed() >= timeout {
            return WaitOutcome {
                result: "timeout".to_string(),
                reason: Some(format!(
                    "not healthy after {} s: {}",
                    timeout.as_secs(),
                    pending.join("; ")
                )),
                seconds,
                objects: states,
            };
        }
        tracing::debug!(pending = %pending.join("; "), "waiting");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn read_health(cluster: &Cluster, w: &Watched) -> Result<Health, ClusterError> {
    let path = format!("{}/{}", w.info.collection(Some(&w.namespace)), w.name);
    let object = cluster.send_json(get(&path)).await?;
    let pods = match (pod_spec_pointer(&w.info.kind), selector(&object)) {
        (Some(_), Some(selector)) => {
            let path = format!(
                "/api/v1/namespaces/{}/pods?labelSelector={}",
                w.namespace,
                crate::inventory::url_encode(&selector)
            );
            let list = cluster.send_json(get(&path)).await?;
            list.get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        }
        _ => Vec::new(),
    };
    Ok(health(&object, w.generation, &pods))
}

pub(super) fn get(path: &str) -> http::Request<Vec<u8>> {
    let mut request = http::Request::new(Vec::new());
    *request.method_mut() = http::Method::GET;
    if let Ok(uri) = path.parse() {
        *request.uri_mut() = uri;
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dep(status: Value) -> Value {
        json!({"kind": "Deployment", "metadata": {"name": "api", "generation": 2},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                "template": {"spec": {"containers": [{"name": "api", "image": "h/api:2"}]}}},
            "status": status})
    }

    fn pod(image: &str, reason: Option<&str>) -> Value {
        let state = match reason {
            Some(r) => json!({"waiting": {"reason": r, "message": "back-off"}}),
            None => json!({"running": {}}),
        };
        json!({"metadata": {"name": "api-x"}, "spec": {"containers": [{"name": "api", "image": image}]},
            "status": {"containerStatuses": [{"name": "api", "state": state}]}})
    }

    #[test]
    fn a_deployment_is_current_only_when_the_new_generation_is_fully_rolled_out() {
        let done = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
            "availableReplicas": 2, "readyReplicas": 2});
        assert_eq!(health(&dep(done.clone()), 2, &[]), Health::Current);
        // The old generation's "done" numbers right after the apply are not done.
        let mut stale = done.clone();
        stale["observedGeneration"] = json!(1);
        assert!(matches!(health(&dep(stale), 2, &[]), Health::InProgress(_)));
        let mut old_left = done.clone();
        old_left["replicas"] = json!(3);
        assert!(
            matches!(health(&dep(old_left), 2, &[]), Health::InProgress(m) if m.contains("old"))
        );
        let mut unavailable = done;
        unavailable["availableReplicas"] = json!(1);
        assert!(matches!(
            health(&dep(unavailable), 2, &[]),
            Health::InProgress(_)
        ));
    }

    #[test]
    fn a_deployment_fails_fast_on_its_deadline_a_pause_or_a_stuck_new_pod() {
        let deadline = json!({"observedGeneration": 2, "conditions": [{"type": "Progressing",
            "status": "False", "reason": "ProgressDeadlineExceeded", "message": "too slow"}]});
        assert!(
            matches!(health(&dep(deadline), 2, &[]), Health::Failed(m) if m.contains("ProgressDeadlineExceeded"))
        );
        let mut paused = dep(json!({"observedGeneration": 2}));
        paused["spec"]["paused"] = json!(true);
        assert!(matches!(health(&paused, 2, &[]), Health::Failed(m) if m.contains("paused")));
        let progressing = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1});
        let crashing = pod("h/api:2", Some("CrashLoopBackOff"));
        assert!(
            matches!(health(&dep(progressing.clone()), 2, &[crashing]), Health::Failed(m) if m.contains("CrashLoopBackOff") && m.contains("api-x"))
        );
        // An old Pod crash-looping is not the new version failing.
        let old = pod("h/api:1", Some("CrashLoopBackOff"));
        assert!(matches!(
            health(&dep(progressing), 2, &[old]),
            Health::InProgress(_)
        ));
        let pulling = pod("h/api:2", Some("ImagePullBackOff"));
        assert!(matches!(
            health(&dep(json!({"observedGeneration": 2})), 2, &[pulling]),
            Health::Failed(_)
        ));
    }

    #[test]
    fn jobs_statefulsets_and_daemonsets_follow_their_own_counters() {
        let complete = json!({"kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(health(&complete, 1, &[]), Health::Current);
        let failed = json!({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}});
        assert!(matches!(health(&failed, 1, &[]), Health::Failed(_)));
        let sts = json!({"kind": "StatefulSet", "metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 2,
                "currentRevision": "a", "updateRevision": "b"}});
        assert!(matches!(health(&sts, 1, &[]), Health::InProgress(_)));
        let ds = json!({"kind": "DaemonSet", "metadata": {"generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3,
                "numberAvailable": 3, "numberReady": 3}});
        assert_eq!(health(&ds, 1, &[]), Health::Current);
        let cm = json!({"kind": "ConfigMap"});
        assert_eq!(health(&cm, 1, &[]), Health::Current);
    }
}
