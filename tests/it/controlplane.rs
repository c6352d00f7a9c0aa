//! The real Kubernetes control plane every Kubernetes test shares: etcd, kube-apiserver and
//! kube-controller-manager from `tests/kube/testenv.py`.
//!
//! `scripts/test.sh` starts one before the tests and stops it after them (also on failure or
//! Ctrl-C), and names its folder in `DRIFTSWEEP_TEST_KUBE`. Without that variable (a test run
//! by hand), the first test starts one in `target/tmp/testenv` and later runs reuse it; it
//! stops itself after 20 minutes without a test (`testenv.py down --dir target/tmp/testenv`
//! stops it at once). Tests share it, so each works in namespaces of its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

pub const DIR_ENV: &str = "DRIFTSWEEP_TEST_KUBE";

pub struct ControlPlane {
    pub dir: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// Full access (a client certificate in `system:masters`).
    pub admin_kubeconfig: PathBuf,
    pub ca: PathBuf,
}

static SHARED: OnceLock<ControlPlane> = OnceLock::new();

/// The shared control plane, started on first use when the test command did not start one.
pub fn shared() -> &'static ControlPlane {
    let plane = SHARED.get_or_init(|| {
        let dir = match std::env::var_os(DIR_ENV) {
            Some(dir) => PathBuf::from(dir),
            None => start_own(),
        };
        read_state(&dir)
    });
    // Tells an idle-stopping control plane that tests still use it.
    let heartbeat = plane.dir.join("heartbeat");
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&heartbeat)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    plane
}

fn start_own() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("testenv");
    testenv(&["up", "--reuse", "--idle-minutes", "20"], &dir);
    dir
}

fn testenv(args: &[&str], dir: &Path) {
    let out = Command::new("python3")
        .arg(crate::root().join("tests/kube/testenv.py"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// A control plane of the caller's own, in `dir`, for the rare test that acts on the whole
/// cluster (an enforce without a reviewed plan would delete other tests' namespaces).
/// Stopped by [`stop_private`].
pub fn start_private(dir: &Path) -> &'static ControlPlane {
    testenv(&["up"], dir);
    Box::leak(Box::new(read_state(dir)))
}

pub fn stop_private(plane: &ControlPlane) {
    testenv(&["down"], &plane.dir);
}

fn read_state(dir: &Path) -> ControlPlane {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no running test control plane in `{}` ({e}); start one with `python3 tests/kube/testenv.py up --dir DIR`",
            dir.display()
        )
    });
    let state: Value = serde_json::from_str(&text).expect("state.json is JSON");
    let text = |key: &str| state[key].as_str().expect("state.json field").to_string();
    ControlPlane {
        dir: dir.to_path_buf(),
        server: text("server"),
        admin_kubeconfig: PathBuf::from(text("admin_kubeconfig")),
        ca: PathBuf::from(text("ca")),
    }
}

impl ControlPlane {
    /// A kubeconfig for `server` (this API server, or a proxy in front of it) that
    /// authenticates with `token`, or with nothing (a proxy adds the admin's certificate).
    pub fn kubeconfig(&self, path: &Path, server: &str, token: Option<&str>) -> PathBuf {
        let cluster = if server.starts_with("https:") {
            format!(
                "    server: {server}\n    certificate-authority: {}\n",
                self.ca.display()
            )
        } else {
            format!("    server: {server}\n")
        };
        let user = match token {
            Some(t) => format!("    token: {t}\n"),
            None => "    {}\n".to_string(),
        };
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n{cluster}users:\n- name: test\n  user:\n{user}contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\ncurrent-context: test\n"
            ),
        )
        .expect("write kubeconfig");
        path.to_path_buf()
    }
}
