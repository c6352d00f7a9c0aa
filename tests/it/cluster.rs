//! A cluster for end-to-end tests: the fake API server in `tests/apiserver/` on 127.0.0.1, or
//! any real cluster when `DRIFTSWEEP_E2E_KUBECONFIG` names its kubeconfig. Objects are created
//! through the Kubernetes API itself (driftsweep's own client), in namespaces unique to the test
//! and labelled `driftsweep-e2e`, and those namespaces are deleted when the test ends.

use std::path::{Path, PathBuf};
use std::process::Command;

use driftsweep::inventory::cluster::{Cluster, ClusterError, ClusterOptions, kind_named};
use serde_json::{Value, json};

use crate::services::{Service, python_server};

pub const E2E_ENV: &str = "DRIFTSWEEP_E2E_KUBECONFIG";

pub struct TestCluster {
    pub fake: Option<FakeApiServer>,
    pub kubeconfig: PathBuf,
    /// Prefix of every namespace this test creates, e.g. `ds-e2e-3f9a1c`.
    pub prefix: String,
    pub client: Cluster,
    runtime: tokio::runtime::Runtime,
    created_namespaces: std::cell::RefCell<Vec<String>>,
    pub dir: tempfile::TempDir,
}

pub struct FakeApiServer {
    /// The process; stopped when this is dropped.
    pub service: Service,
}

impl FakeApiServer {
    pub fn start() -> FakeApiServer {
        let service = python_server("tests/apiserver/fake_apiserver.py", "the fake API server");
        FakeApiServer { service }
    }

    fn control(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        // The same minimal HTTP client the other local services use.
        Service::http_to(self.service.port, method, path, body)
    }

    /// Injects a fault (see `tests/apiserver/fake_apiserver.py`).
    pub fn fault(&self, fault: Value) {
        let (status, body) = self.control("POST", "/_fake/faults", &fault.to_string());
        assert!(status < 300, "injecting {fault}: {status} {body}");
    }

    /// Creates objects as a create would, keeping a given `creationTimestamp`.
    pub fn seed(&self, objects: &[Value]) {
        let (status, body) = self.control(
            "POST",
            "/_fake/seed",
            &Value::Array(objects.to_vec()).to_string(),
        );
        assert!(status < 300, "seeding: {status} {body}");
    }

    /// Every API request the server answered, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        let (status, body) = self.control("GET", "/_fake/requests", "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("the request log is JSON")
    }

    pub fn clear_requests(&self) {
        let (status, body) = self.control("DELETE", "/_fake/requests", "");
        assert!(status < 300, "{body}");
    }
}

impl TestCluster {
    /// The real cluster named by `DRIFTSWEEP_E2E_KUBECONFIG`, else a fresh fake API server.
    pub fn start() -> TestCluster {
        match std::env::var_os(E2E_ENV) {
            Some(path) => Self::connect(PathBuf::from(path), None),
            None => Self::fake(),
        }
    }

    /// Always the fake: for tests that inject faults.
    pub fn fake() -> TestCluster {
        let fake = FakeApiServer::start();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{}\nusers:\n- name: fake\n  user:\n    token: fake-token\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\n",
                fake.service.port
            ),
        )
        .unwrap();
        Self::connect_in(kubeconfig, Some(fake), dir)
    }

    fn connect(kubeconfig: PathBuf, fake: Option<FakeApiServer>) -> TestCluster {
        Self::connect_in(kubeconfig, fake, tempfile::tempdir().unwrap())
    }

    fn connect_in(
        kubeconfig: PathBuf,
        fake: Option<FakeApiServer>,
        dir: tempfile::TempDir,
    ) -> TestCluster {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = runtime
            .block_on(Cluster::connect(&ClusterOptions {
                kubeconfig: Some(kubeconfig.clone()),
                context: None,
            }))
            .expect("the test cluster's kubeconfig loads");
        let id: u32 = rand_id();
        TestCluster {
            fake,
            kubeconfig,
            prefix: format!("ds-e2e-{id:06x}"),
            client,
            runtime,
            created_namespaces: Default::default(),
            dir,
        }
    }

    pub fn fake_server(&self) -> &FakeApiServer {
        self.fake
            .as_ref()
            .expect("this test needs the fake API server")
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    pub fn ns(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    /// Creates a namespace this test owns (deleted when the test ends).
    pub fn namespace(&self, name: &str) -> Value {
        self.created_namespaces.borrow_mut().push(name.to_string());
        self.create(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"driftsweep-e2e": self.prefix}}
        }))
    }

    /// Creates one object through the API; answers it as the server stored it.
    pub fn create(&self, mut object: Value) -> Value {
        object["metadata"]["labels"]["driftsweep-e2e"] = json!(self.prefix);
        let path = collection(&object);
        self.send("POST", &path, Some(&object))
            .unwrap_or_else(|e| panic!("creating {object}: {e}"))
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

    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClusterError> {
        let mut request = http::Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
            .unwrap();
        self.runtime.block_on(self.client.send_json(request))
    }

    /// A policy auditing `namespaces` (plus `extra` YAML under `kubernetes:`), in this
    /// test's folder.
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
                "version: 1\nname: e2e\nkubernetes:\n  namespaces: [{list}]\n  protected_namespaces: [kube-system, kube-public]\n{extra}"
            ),
        )
    }

    /// Runs the binary with this cluster's kubeconfig appended to `args`.
    pub fn driftsweep(&self, args: &[&str]) -> std::process::Output {
        let mut all: Vec<&str> = args.to_vec();
        let kubeconfig = self.kubeconfig.to_str().unwrap();
        all.extend(["--kubeconfig", kubeconfig]);
        crate::driftsweep(&all)
    }

    /// The same, with extra environment variables.
    pub fn driftsweep_with(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_driftsweep"));
        cmd.args(args)
            .args(["--kubeconfig", self.kubeconfig.to_str().unwrap()])
            .current_dir(crate::root())
            .env_remove("DRIFTSWEEP_POLICY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("driftsweep runs")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if self.fake.is_some() {
            return;
        }
        for ns in self.created_namespaces.borrow().iter() {
            let _ = self.send("DELETE", &format!("/api/v1/namespaces/{ns}"), None);
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
