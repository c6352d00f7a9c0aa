//! A kubelet stand-in: the test control plane has no node, so Pods stay `Pending` until
//! something writes their status. This writes it through the `status` subresource as a kubelet
//! would: Running and Ready, or, for images a test marks as failing, the waiting reason a
//! broken rollout shows (`CrashLoopBackOff`, `ImagePullBackOff`, ...). The real ReplicaSet and
//! Deployment controllers take it from there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::TestCluster;

pub struct Kubelet {
    stop: Arc<AtomicBool>,
    failing: Arc<Mutex<HashMap<String, String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Kubelet {
    /// Runs the Pods of `namespaces` (polled every 200 ms) until dropped.
    pub fn start(namespaces: &[String]) -> Kubelet {
        let stop = Arc::new(AtomicBool::new(false));
        let failing: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let namespaces = namespaces.to_vec();
        let thread = {
            let (stop, failing) = (stop.clone(), failing.clone());
            std::thread::spawn(move || {
                // Its own connection, so it never waits on the test's.
                let c = TestCluster::start();
                while !stop.load(Ordering::SeqCst) {
                    for ns in &namespaces {
                        let failing = failing.lock().unwrap().clone();
                        tend(&c, ns, &failing);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        Kubelet {
            stop,
            failing,
            thread: Some(thread),
        }
    }

    /// From now on, containers whose image contains `image` fail with the waiting `reason`
    /// (`CrashLoopBackOff`, `ImagePullBackOff`, `ErrImagePull`, `CreateContainerConfigError`),
    /// or, with `NotReady`, run without ever becoming ready.
    pub fn fail_image(&self, image: &str, reason: &str) {
        self.failing
            .lock()
            .unwrap()
            .insert(image.to_string(), reason.to_string());
    }

    /// Containers of `image` run healthy again.
    pub fn heal_image(&self, image: &str) {
        self.failing.lock().unwrap().remove(image);
    }
}

fn tend(c: &TestCluster, ns: &str, failing: &HashMap<String, String>) {
    let Ok(list) = c.send("GET", &format!("/api/v1/namespaces/{ns}/pods"), None) else {
        return;
    };
    for pod in list["items"].as_array().into_iter().flatten() {
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let status = status_for(pod, failing);
        if same_state(&pod["status"], &status) {
            continue;
        }
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let _ = c.send(
            "PATCH",
            &format!("/api/v1/namespaces/{ns}/pods/{name}/status"),
            Some(&json!({"status": status})),
        );
    }
}

/// Whether the Pod already shows the phase and the per-container states we would write.
fn same_state(now: &Value, want: &Value) -> bool {
    let states = |s: &Value| -> Vec<(Value, Value)> {
        s["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["ready"].clone(), c["state"]["waiting"]["reason"].clone()))
            .collect()
    };
    now["phase"] == want["phase"] && states(now) == states(want)
}

fn status_for(pod: &Value, failing: &HashMap<String, String>) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let containers: Vec<&Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let failure = |image: &str| {
        failing
            .iter()
            .find(|(pattern, _)| image.contains(pattern.as_str()))
            .map(|(_, reason)| reason.clone())
    };
    let mut all_ready = true;
    let mut pulling = false;
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let image = c["image"].as_str().unwrap_or_default();
            match failure(image) {
                // Running, never ready: a failing readiness probe, which only a deadline ends.
                Some(reason) if reason == "NotReady" => {
                    all_ready = false;
                    json!({"name": c["name"], "image": image, "imageID": format!("{image}@test"),
                        "ready": false, "started": true, "restartCount": 0,
                        "state": {"running": {"startedAt": now}}})
                }
                Some(reason) => {
                    all_ready = false;
                    pulling |= reason.contains("Pull") || reason == "InvalidImageName";
                    json!({"name": c["name"], "image": image, "imageID": "", "ready": false,
                        "started": false, "restartCount": 3,
                        "state": {"waiting": {"reason": reason, "message": "set by the test kubelet"}}})
                }
                None => json!({"name": c["name"], "image": image,
                    "imageID": format!("{image}@test"), "ready": true, "started": true,
                    "restartCount": 0, "state": {"running": {"startedAt": now}}}),
            }
        })
        .collect();
    let ready = if all_ready { "True" } else { "False" };
    let condition = |kind: &str, status: &str| json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    json!({
        "phase": if pulling { "Pending" } else { "Running" },
        "hostIP": "127.0.0.1",
        "podIP": "10.244.0.10",
        "startTime": now,
        "conditions": [
            condition("PodScheduled", "True"),
            condition("Initialized", "True"),
            condition("ContainersReady", ready),
            condition("Ready", ready),
        ],
        "containerStatuses": statuses,
    })
}
