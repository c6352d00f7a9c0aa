//! A cluster for end-to-end tests: the shared real control plane (`controlplane.rs`), reached
//! directly or through the fault proxy (`proxy.rs`). Objects are created through the API with
//! the admin's credentials, in namespaces unique to the test and labelled `driftsweep-e2e`;
//! those namespaces (and the cluster-scoped objects the test made) are deleted when it ends.
//!
//! The control plane is shared by every test, so a test never assumes it sees the only
//! objects: it asserts on its own, and a plan it enforces is narrowed to its own (as a
//! reviewer removes what they do not approve).

use std::path::{Path, PathBuf};
use std::process::Command;

use driftsweep::inventory::cluster::{Cluster, ClusterError, ClusterOptions, kind_named};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::controlplane::{self, ControlPlane};
use crate::proxy::FaultProxy;

pub struct TestCluster {
    pub plane: &'static ControlPlane,
    /// Whether `plane` is this test's own (stopped when the test ends).
    private: bool,
    /// The fault proxy driftsweep goes through, for tests that inject faults or count requests.
    pub proxy: Option<FaultProxy>,
    /// What driftsweep is given: the admin's, direct or through the proxy.
    pub kubeconfig: PathBuf,
    /// Prefix of every namespace this test creates, e.g. `ds-e2e-3f9a1c`.
    pub prefix: String,
    /// driftsweep's own client, through `kubeconfig` (the primitives under test).
    pub client: Cluster,
    /// The harness's client: direct, with no rate limit.
    admin: kube::Client,
    runtime: tokio::runtime::Runtime,
    created: std::cell::RefCell<Vec<String>>,
    pub dir: tempfile::TempDir,
}

impl TestCluster {
    /// The shared control plane, reached directly.
    pub fn start() -> TestCluster {
        Self::build(None, false)
    }

    /// The shared control plane behind a fault proxy of this test's own.
    pub fn with_proxy() -> TestCluster {
        Self::build(None, true)
    }

    /// A control plane of this test's own (about 10 s to start), behind a fault proxy: for a
    /// test that acts on every namespace of the cluster.
    pub fn private_with_proxy() -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let plane = controlplane::start_private(&dir.path().join("testenv"));
        Self::build(Some((plane, dir)), true)
    }

    fn build(
        private: Option<(&'static ControlPlane, tempfile::TempDir)>,
        proxied: bool,
    ) -> TestCluster {
        let is_private = private.is_some();
        let (plane, dir) = match private {
            Some(p) => p,
            None => (controlplane::shared(), tempfile::tempdir().unwrap()),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let proxy = proxied.then(|| FaultProxy::start(plane, dir.path()));
        let kubeconfig = match &proxy {
            Some(p) => plane.kubeconfig(&dir.path().join("kubeconfig"), &p.url(), None),
            None => plane.admin_kubeconfig.clone(),
        };
        let (client, admin) = runtime.block_on(async {
            let client = Cluster::connect(&ClusterOptions {
                kubeconfig: Some(kubeconfig.clone()),
                context: None,
            })
            .await
            .expect("the test cluster's kubeconfig loads");
            let file = kube::config::Kubeconfig::read_from(&plane.admin_kubeconfig).unwrap();
            let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .unwrap();
            (client, kube::Client::try_from(config).unwrap())
        });
        TestCluster {
            plane,
            private: is_private,
            proxy,
            kubeconfig,
            prefix: format!("ds-e2e-{:06x}", rand_id()),
            client,
            admin,
            runtime,
            created: Default::default(),
            dir,
        }
    }

    pub fn proxy(&self) -> &FaultProxy {
        self.proxy
            .as_ref()
            .expect("this test needs TestCluster::with_proxy()")
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    pub fn ns(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    /// Creates a namespace this test owns (deleted when the test ends), once the
    /// controller-manager has given it its `default` ServiceAccount and `kube-root-ca.crt`.
    pub fn namespace(&self, name: &str) -> Value {
        let ns = self.create(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name}
        }));
        self.wait_for(&format!("namespace {name} to be set up"), || {
            self.get("v1", "ServiceAccount", Some(name), "default")
                .is_some()
                && self
                    .get("v1", "ConfigMap", Some(name), "kube-root-ca.crt")
                    .is_some()
        });
        ns
    }

    /// Polls `done` every 50 ms for up to 60 s.
    pub fn wait_for(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Creates one object through the API; answers it as the server stored it. Namespaces
    /// and cluster-scoped objects are deleted when the test ends.
    pub fn create(&self, object: Value) -> Value {
        let object = self.labelled(object);
        self.remember(&object);
        let path = collection(&object);
        self.send("POST", &path, Some(&object))
            .unwrap_or_else(|e| panic!("creating {object}: {e}"))
    }

    /// Creates many objects, 16 requests at a time.
    pub fn create_many(&self, objects: Vec<Value>) {
        use futures::StreamExt;
        let objects: Vec<Value> = objects.into_iter().map(|o| self.labelled(o)).collect();
        for o in &objects {
            self.remember(o);
        }
        let results: Vec<Result<Value, ClusterError>> = self.block_on(
            futures::stream::iter(objects.iter().map(|o| {
                let path = collection(o);
                async move { self.send_async("POST", &path, Some(o)).await }
            }))
            .buffer_unordered(16)
            .collect(),
        );
        for r in results {
            r.unwrap_or_else(|e| panic!("creating: {e}"));
        }
    }

    fn labelled(&self, mut object: Value) -> Value {
        object["metadata"]["labels"]["driftsweep-e2e"] = json!(self.prefix);
        object
    }

    fn remember(&self, object: &Value) {
        if object["metadata"]["namespace"].is_null() {
            self.created
                .borrow_mut()
                .push(format!("{}/{}", collection(object), name_of(object)));
        }
    }

    /// Reads one object; `None` when it does not exist.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let info = kind_named(kind).expect("a known kind");
        assert_eq!(info.api_version(), api_version);
        match self.send(
            "GET",
            &format!("{}/{name}", info.collection(namespace)),
            None,
        ) {
            Ok(v) => Some(v),
            Err(e) if e.code() == Some(404) => None,
            Err(e) => panic!("reading {kind} {name}: {e}"),
        }
    }

    /// One request with the admin's credentials, straight to the API server.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClusterError> {
        self.block_on(self.send_async(method, path, body))
    }

    async fn send_async(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClusterError> {
        let content_type = if method == "PATCH" {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .body(kube::client::Body::from(
                body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            ))
            .unwrap();
        let transport = |message: String| ClusterError::Transport {
            method: method.to_string(),
            path: path.to_string(),
            message,
        };
        let response = self
            .admin
            .send(request)
            .await
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(e.to_string()))?
            .to_bytes();
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        Err(ClusterError::Api {
            method: method.to_string(),
            path: path.to_string(),
            code: status.as_u16(),
            reason: json["reason"].as_str().unwrap_or_default().to_string(),
            message: json["message"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// A token of ServiceAccount `namespace/name` (the TokenRequest API), valid for an hour.
    pub fn token(&self, namespace: &str, name: &str) -> String {
        let answer = self
            .send(
                "POST",
                &format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"),
                Some(
                    &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 3600}}),
                ),
            )
            .unwrap_or_else(|e| panic!("a token for {namespace}/{name}: {e}"));
        answer["status"]["token"].as_str().unwrap().to_string()
    }

    /// A kubeconfig that authenticates with `token`, through the proxy when there is one.
    pub fn kubeconfig_with_token(&self, file: &str, token: &str) -> PathBuf {
        let server = match &self.proxy {
            Some(p) => p.url(),
            None => self.plane.server.clone(),
        };
        self.plane
            .kubeconfig(&self.dir.path().join(file), &server, Some(token))
    }

    /// Applies YAML documents with kubectl (server-side), as an operator would.
    pub fn kubectl_apply(&self, yaml: &str) {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .args(["apply", "--server-side", "-f", "-", "--kubeconfig"])
            .arg(&self.plane.admin_kubeconfig)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl runs (scripts/test.sh installs it)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A policy auditing `namespaces` (plus `extra` YAML under `kubernetes:`), in this
    /// test's folder. Other tests' namespaces are orphans to it; the deletion limit is high
    /// enough that they never block its plan.
    pub fn policy(&self, namespaces: &[&str], extra: &str) -> PathBuf {
        let list = namespaces
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        crate::write(
            self.dir.path(),
            "policy.yaml",
            &format!(
                "version: 1\nname: e2e\nsafety:\n  max_deletions: 100000\nkubernetes:\n  namespaces: [{list}]\n  protected_namespaces: [kube-system, kube-public]\n{extra}"
            ),
        )
    }

    /// Runs the binary with this cluster's kubeconfig appended to `args`.
    pub fn driftsweep(&self, args: &[&str]) -> std::process::Output {
        self.driftsweep_with(args, &[])
    }

    /// The same, with extra environment variables.
    pub fn driftsweep_with(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_driftsweep"));
        cmd.args(args)
            .args(["--kubeconfig", self.kubeconfig.to_str().unwrap()])
            .current_dir(crate::root())
            .env_remove("DRIFTSWEEP_POLICY")
            .env_remove("DRIFTSWEEP_VERSION");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("driftsweep runs")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Keeps only this test's findings in a report (and everything not of Kubernetes): what
    /// a reviewer of a shared cluster would approve.
    pub fn narrow_to_own(&self, report: &Path) {
        let mut value: Value =
            serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
        let prefix = self.prefix.clone();
        value["findings"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["provider"] != "kubernetes" || f.to_string().contains(&prefix));
        std::fs::write(report, value.to_string()).unwrap();
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if self.private {
            controlplane::stop_private(self.plane);
            return;
        }
        for path in self.created.borrow().iter() {
            let _ = self.send("DELETE", path, None);
        }
    }
}

pub fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// The collection an object is created in.
pub fn collection(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default();
    let info = kind_named(kind).unwrap_or_else(|| panic!("no path known for {kind}"));
    info.collection(object["metadata"]["namespace"].as_str())
}

fn rand_id() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    (h.finish() & 0xff_ffff) as u32
}

/// A report's findings keyed by `kind namespace/name`, each with its action and reasons.
pub fn verdicts(report: &Path) -> std::collections::BTreeMap<String, (String, Vec<String>)> {
    let text = std::fs::read_to_string(report).unwrap();
    let report: Value = serde_json::from_str(&text).unwrap();
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let key = format!(
                "{} {}/{}",
                f["kind"].as_str().unwrap(),
                f["namespace"].as_str().unwrap_or(""),
                f["name"].as_str().unwrap()
            );
            let reasons = f["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect();
            (key, (f["action"].as_str().unwrap().to_string(), reasons))
        })
        .collect()
}

/// `Kind name` → (status, reason, backup) of every planned action.
pub fn outcomes(report: &Value) -> std::collections::BTreeMap<String, (String, String, bool)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !f["outcome"].is_null())
        .map(|f| {
            (
                format!(
                    "{} {}",
                    f["kind"].as_str().unwrap(),
                    f["name"].as_str().unwrap()
                ),
                (
                    f["outcome"]["status"].as_str().unwrap().to_string(),
                    f["outcome"]["reason"].as_str().unwrap_or("").to_string(),
                    f["outcome"]["backup"].is_string(),
                ),
            )
        })
        .collect()
}
