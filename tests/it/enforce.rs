//! Enforce end to end: the real binary against the real control plane (`cluster.rs`), through
//! the fault proxy where a test injects faults, and Debian's registry server. A dry run writes
//! the plan; enforce executes it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::{TestCluster, outcomes};
use crate::proxy::Rule;
use crate::registry::{Pusher, start_registry};
use crate::{stderr, write};

struct Scene {
    c: TestCluster,
    app: String,
    stray: String,
    policy: PathBuf,
    backup: PathBuf,
}

fn cm(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"team": "aia"}, "annotations": {"note": name}},
        "data": {"config.yaml": format!("name: {name}\n")}})
}

fn secret(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": ns},
        "data": {"password": "aHVudGVyMg=="}})
}

/// Namespace `app` (the repository's) with `orphans` unused ConfigMaps, one unused Secret and
/// one ConfigMap a Deployment uses; a stray namespace with contents; the Lease's namespace.
fn scene(c: TestCluster, orphans: usize, safety: &str, registry: Option<&str>) -> Scene {
    let app = c.ns("app");
    let stray = c.ns("stray");
    let lease = c.ns("lease");
    c.namespace(&app);
    c.namespace(&stray);
    c.namespace(&lease);
    for i in 0..orphans {
        c.create(cm(&app, &format!("orphan-{i}")));
    }
    c.create(secret(&app, "orphan-secret"));
    c.create(cm(&app, "used"));
    c.create(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": app},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1.0.0",
                    "envFrom": [{"configMapRef": {"name": "used"}}]}]}}}
    }));
    c.create(cm(&stray, "inside"));
    c.create(secret(&stray, "inside-secret"));
    let registry = registry
        .map(|host| {
            format!(
                "registry:\n  repositories: [{host}/team/app]\n  keep_recent: 2\n  max_age_days: 90\n  plain_http_hosts: ['{host}']\n"
            )
        })
        .unwrap_or_default();
    let policy = write(
        c.dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: e2e\nkubernetes:\n  namespaces: [\"{app}\"]\n  protected_namespaces: [kube-system, kube-public, \"{lease}\"]\nsafety:\n  min_age_hours: 0\n  max_deletions: 100000\n  lease_namespace: \"{lease}\"\n{safety}{registry}"
        ),
    );
    let backup = c.path("backups");
    Scene {
        c,
        app,
        stray,
        policy,
        backup,
    }
}

impl Scene {
    fn policy(&self) -> &str {
        self.policy.to_str().unwrap()
    }

    /// A dry run; its report is the plan, narrowed to this test's objects (the control plane
    /// is shared), as a reviewer removes what they do not approve.
    fn plan(&self) -> PathBuf {
        let plan = self.c.path("plan.json");
        let out = self.c.driftsweep(&[
            "run",
            "--policy",
            self.policy(),
            "--report",
            plan.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        self.c.narrow_to_own(&plan);
        plan
    }

    /// `run --enforce` with the reviewed `plan`, or `--no-review` without one.
    fn enforce_command(&self, plan: Option<&Path>, report: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_driftsweep"));
        cmd.args([
            "run",
            "--enforce",
            "--policy",
            self.policy(),
            "--backup",
            self.backup.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--kubeconfig",
            self.c.kubeconfig.to_str().unwrap(),
        ])
        .current_dir(crate::root())
        .env_remove("DRIFTSWEEP_POLICY")
        .env_remove("DRIFTSWEEP_BACKUP")
        .env("DRIFTSWEEP_LEASE_SECONDS", "3");
        match plan {
            Some(plan) => cmd.args(["--plan", plan.to_str().unwrap()]),
            None => cmd.arg("--no-review"),
        };
        cmd
    }

    fn enforce(&self, plan: &Path) -> (Output, Value) {
        let report = self.c.path("outcome.json");
        let _ = std::fs::remove_file(&report);
        let out = self.enforce_command(Some(plan), &report).output().unwrap();
        let outcome = std::fs::read_to_string(&report)
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or(Value::Null);
        (out, outcome)
    }

    fn get_cm(&self, ns: &str, name: &str) -> Option<Value> {
        self.c.get("v1", "ConfigMap", Some(ns), name)
    }

    fn wait_namespace_gone(&self, ns: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.c.get("v1", "Namespace", None, ns).is_some() {
            assert!(Instant::now() < deadline, "namespace {ns} was not removed");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// What a restore must bring back equal: content, labels, annotations, type.
fn content(o: &Value) -> Value {
    json!({
        "data": o["data"], "type": o["type"],
        "labels": o["metadata"]["labels"], "annotations": o["metadata"]["annotations"],
    })
}

#[test]
fn a_reviewed_plan_is_enforced_with_backups_and_restored_equal() {
    let registry = start_registry();
    let host = format!("127.0.0.1:{}", registry.port);
    let push = Pusher::new(registry.port);
    let old = push.image("team/app", &["1.0.0"], 400, "old").0;
    let older = push.image("team/app", &["0.9.0"], 500, "older").0;
    let recent: Vec<String> = [("1.1.0", 2), ("1.2.0", 1)]
        .iter()
        .map(|(tag, days)| push.image("team/app", &[tag], *days, tag).0)
        .collect();
    let s = scene(TestCluster::start(), 2, "", Some(&host));
    let originals: Vec<Value> = [
        s.get_cm(&s.app, "orphan-0").unwrap(),
        s.c.get("v1", "Secret", Some(&s.app), "orphan-secret")
            .unwrap(),
        s.get_cm(&s.stray, "inside").unwrap(),
        s.c.get("v1", "Secret", Some(&s.stray), "inside-secret")
            .unwrap(),
    ]
    .to_vec();

    let plan = s.plan();
    let (out, report) = s.enforce(&plan);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["mode"], "enforce");
    let o = outcomes(&report);
    let image = |d: &str| format!("{host}/team/app@{d}");
    let stray = format!("Namespace {}", s.stray);
    for key in [
        "ConfigMap orphan-0",
        "ConfigMap orphan-1",
        "Secret orphan-secret",
        &stray,
    ] {
        assert_eq!(o[key].0, "deleted", "{key}: {o:?}");
        assert!(o[key].2, "{key}: backed up first");
    }
    assert_eq!(o[&format!("Image {}", image(&old))].0, "deleted", "{o:?}");
    assert_eq!(o[&format!("Image {}", image(&older))].0, "deleted", "{o:?}");
    assert!(
        !o.contains_key("ConfigMap used"),
        "a kept object is not acted on"
    );
    for f in report["findings"].as_array().unwrap() {
        if f["outcome"]["status"] == "deleted" {
            assert!(f["outcome"]["backup"].is_string(), "{f}");
        }
    }
    assert!(s.get_cm(&s.app, "orphan-0").is_none());
    assert!(s.get_cm(&s.app, "used").is_some());
    s.wait_namespace_gone(&s.stray);
    let status = |d: &str| push.head("team/app", d);
    for d in &recent {
        assert_eq!(status(d), 200, "the newest versions stay");
    }
    assert_eq!((status(&old), status(&older)), (404, 404));

    // Restore everything from the run's backup folder.
    let folder = s.backup.join(report_plan_id(&plan));
    let out =
        s.c.driftsweep(&["restore", folder.to_str().unwrap(), "--report", "-"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let restored: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let status_of = |name: &str| {
        restored
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r["status"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(status_of(&s.stray), "restored");
    assert_eq!(status_of(&image(&old)), "not-restorable");
    for original in &originals {
        let kind = original["kind"].as_str().unwrap();
        let ns = original["metadata"]["namespace"].as_str().unwrap();
        let name = original["metadata"]["name"].as_str().unwrap();
        let now =
            s.c.get("v1", kind, Some(ns), name)
                .unwrap_or_else(|| panic!("{kind} {ns}/{name} was not restored"));
        assert_eq!(content(&now), content(original), "{kind} {ns}/{name}");
        assert_ne!(
            now["metadata"]["uid"], original["metadata"]["uid"],
            "a new object"
        );
    }
    // Restoring again leaves what exists alone.
    let out = s.c.driftsweep(&[
        "restore",
        folder.to_str().unwrap(),
        "--only",
        &format!("ConfigMap/{}/orphan-0", s.app),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("already-exists"), "{}", stderr(&out));
}

fn report_plan_id(plan: &Path) -> String {
    let report: Value = serde_json::from_str(&std::fs::read_to_string(plan).unwrap()).unwrap();
    report["run_id"].as_str().unwrap().to_string()
}

#[test]
fn objects_that_changed_or_came_into_use_after_review_are_skipped() {
    let s = scene(TestCluster::start(), 3, "", None);
    let plan = s.plan();
    // After the review: orphan-0 is re-created under the same name, orphan-1 gets used.
    s.c.send(
        "DELETE",
        &format!("/api/v1/namespaces/{}/configmaps/orphan-0", s.app),
        None,
    )
    .unwrap();
    s.c.create(cm(&s.app, "orphan-0"));
    s.c.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "reader", "namespace": s.app},
        "spec": {"containers": [{"name": "r", "image": "registry.invalid/r:1.0.0"}],
            "volumes": [{"name": "v", "configMap": {"name": "orphan-1"}}]}
    }));
    let (out, report) = s.enforce(&plan);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = outcomes(&report);
    assert_eq!(o["ConfigMap orphan-0"].0, "skipped");
    assert!(
        o["ConfigMap orphan-0"].1.contains("re-created"),
        "{:?}",
        o["ConfigMap orphan-0"]
    );
    assert_eq!(o["ConfigMap orphan-1"].0, "skipped");
    assert!(
        o["ConfigMap orphan-1"].1.contains("in-use"),
        "{:?}",
        o["ConfigMap orphan-1"]
    );
    assert_eq!(o["ConfigMap orphan-2"].0, "deleted");
    assert!(s.get_cm(&s.app, "orphan-0").is_some());
    assert!(s.get_cm(&s.app, "orphan-1").is_some());
    assert!(s.get_cm(&s.app, "orphan-2").is_none());
}

#[test]
fn a_plan_over_a_gate_deletes_nothing_and_says_by_how_much() {
    // Four unused ConfigMaps out of six: over a ratio of a half. `--no-review` plans the whole
    // cluster, so this test has a control plane of its own.
    let s = scene(
        TestCluster::private_with_proxy(),
        4,
        "  max_deletion_ratio: 0.5\n",
        None,
    );
    let report_path = s.c.path("outcome.json");
    let out = s.enforce_command(None, &report_path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("BLOCKED") && err.contains("4 of 6 ConfigMap") && err.contains("at most 3"),
        "{err}"
    );
    for i in 0..4 {
        assert!(
            s.get_cm(&s.app, &format!("orphan-{i}")).is_some(),
            "nothing deleted"
        );
    }
    let requests = s.c.proxy().requests();
    assert!(
        requests.iter().any(|r| r.path.ends_with("/configmaps")),
        "the proxy saw the run's lists"
    );
    assert!(
        !requests.iter().any(|r| r.method == "DELETE"),
        "no delete was even sent"
    );
}

#[test]
fn a_second_concurrent_run_is_refused_by_the_lease() {
    let s = scene(TestCluster::with_proxy(), 3, "", None);
    let plan = s.plan();
    // Slow deletes keep the first run going while the second starts.
    s.c.proxy()
        .fault(Rule::on("DELETE", "/configmaps/").delay_ms(700));
    let first_report = s.c.path("first.json");
    let mut first = s
        .enforce_command(Some(&plan), &first_report)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lease_path = format!(
        "/apis/coordination.k8s.io/v1/namespaces/{}/leases/driftsweep",
        s.c.ns("lease")
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let holder = loop {
        if let Ok(lease) = s.c.send("GET", &lease_path, None)
            && let Some(h) = lease["spec"]["holderIdentity"].as_str()
        {
            break h.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the first run never took the Lease"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (second, _) = s.enforce(&plan);
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let err = stderr(&second);
    assert!(
        err.contains("holds the Lease") && err.contains(&holder),
        "{err}"
    );
    let status = first.wait().unwrap();
    assert!(status.success(), "the first run finished its work");
    let first_outcome: Value =
        serde_json::from_str(&std::fs::read_to_string(&first_report).unwrap()).unwrap();
    assert_eq!(outcomes(&first_outcome)["ConfigMap orphan-2"].0, "deleted");
    let lease = s.c.send("GET", &lease_path, None).unwrap();
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "released at the end: {lease}"
    );
}

#[test]
fn a_run_killed_midway_and_run_again_ends_as_an_uninterrupted_run() {
    let s = scene(TestCluster::with_proxy(), 6, "", None);
    let plan = s.plan();
    s.c.proxy()
        .fault(Rule::on("DELETE", "/configmaps/").delay_ms(300));
    s.c.proxy().clear_requests();
    let report = s.c.path("killed.json");
    let mut run = s
        .enforce_command(Some(&plan), &report)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it right after its second real delete.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let real_deletes =
            s.c.proxy()
                .requests()
                .iter()
                .filter(|r| r.method == "DELETE" && r.status == 200 && !r.dry_run())
                .count();
        if real_deletes >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the run made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    let left = (0..6)
        .filter(|i| s.get_cm(&s.app, &format!("orphan-{i}")).is_some())
        .count();
    assert!(left > 0 && left < 6, "killed midway: {left} of 6 left");

    // The killed run's Lease expires (3 s here); then the same plan finishes the work.
    std::thread::sleep(Duration::from_secs(4));
    let (out, outcome) = s.enforce(&plan);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = outcomes(&outcome);
    let gone = o
        .values()
        .filter(|(status, _, _)| status == "already-gone")
        .count();
    assert!(
        gone >= 2,
        "what the first run deleted is already gone: {o:?}"
    );
    // The end state of an uninterrupted run: every orphan gone, every used object there,
    // and one backup per deleted object, none lost.
    for i in 0..6 {
        assert!(s.get_cm(&s.app, &format!("orphan-{i}")).is_none());
    }
    assert!(s.get_cm(&s.app, "used").is_some());
    assert!(
        s.c.get("v1", "Secret", Some(&s.app), "orphan-secret")
            .is_none()
    );
    let index: Value = serde_json::from_str(
        &std::fs::read_to_string(s.backup.join(report_plan_id(&plan)).join("index.json")).unwrap(),
    )
    .unwrap();
    let backed_up: std::collections::BTreeSet<&str> = index["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["contents_of"].is_null() && e["kind"] == "ConfigMap")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(backed_up.len(), 6, "{backed_up:?}");
}

#[test]
fn enforce_refuses_without_a_backup_or_a_plan() {
    let s = scene(TestCluster::start(), 1, "", None);
    let out =
        s.c.driftsweep(&["run", "--enforce", "--policy", s.policy(), "--no-review"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("backup location"), "{}", stderr(&out));
    let out =
        s.c.driftsweep(&["run", "--enforce", "--policy", s.policy(), "--backup", "b"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--plan"), "{}", stderr(&out));
    assert!(s.get_cm(&s.app, "orphan-0").is_some());
}

fn bin(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_driftsweep"));
    cmd.args(args)
        .current_dir(crate::root())
        .env_remove("DRIFTSWEEP_POLICY")
        .env_remove("DRIFTSWEEP_ARCHIVE")
        .env_remove("DRIFTSWEEP_BACKUP");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn the_plan_and_the_backups_can_live_in_cloud_storage() {
    let gcs = crate::services::fake_gcs(&["aia-reports", "aia-backups"]);
    let host = format!("127.0.0.1:{}", gcs.port);
    let env = [("STORAGE_EMULATOR_HOST", host.as_str())];
    let s = scene(TestCluster::start(), 1, "", None);
    let kubeconfig = s.c.kubeconfig.to_str().unwrap().to_string();
    let local = s.c.path("plan.json");
    let out = bin(
        &[
            "run",
            "--policy",
            s.policy(),
            "--kubeconfig",
            &kubeconfig,
            "--archive",
            "gs://aia-reports/driftsweep",
            "--report",
            local.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let plan = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("archived: "))
        .unwrap_or_else(|| panic!("no archive line in {err}"))
        .to_string();
    // The reviewer approves this test's objects only (the control plane is shared), and puts
    // the narrowed plan back where it was archived.
    s.c.narrow_to_own(&local);
    let object = plan.trim_start_matches("gs://aia-reports/");
    let (status, body) = gcs.http_upload(
        "aia-reports",
        object,
        &std::fs::read_to_string(&local).unwrap(),
    );
    assert!(status < 300, "{status} {body}");
    let original = s.get_cm(&s.app, "orphan-0").unwrap();

    let report = s.c.path("outcome.json");
    let out = bin(
        &[
            "run",
            "--enforce",
            "--policy",
            s.policy(),
            "--kubeconfig",
            &kubeconfig,
            "--plan",
            &plan,
            "--backup",
            "gs://aia-backups/driftsweep",
            "--report",
            report.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let outcome: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let o = &outcome["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "orphan-0")
        .unwrap()["outcome"];
    assert_eq!(o["status"], "deleted");
    let backup = o["backup"].as_str().unwrap();
    assert!(
        backup.starts_with("gs://aia-backups/driftsweep/"),
        "{backup}"
    );
    assert!(s.get_cm(&s.app, "orphan-0").is_none());

    let plan_id = plan.rsplit('/').next().unwrap().trim_end_matches(".json");
    let folder = format!("gs://aia-backups/driftsweep/{plan_id}");
    let out = bin(
        &[
            "restore",
            &folder,
            "--only",
            &format!("ConfigMap/{}/orphan-0", s.app),
            "--kubeconfig",
            &kubeconfig,
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let restored = s.get_cm(&s.app, "orphan-0").expect("restored from gs://");
    assert_eq!(content(&restored), content(&original));
    assert!(
        s.c.get("v1", "Secret", Some(&s.app), "orphan-secret")
            .is_none(),
        "--only restores only that"
    );
}

#[test]
fn a_namespace_whose_contents_cannot_be_backed_up_is_not_deleted() {
    let s = scene(TestCluster::with_proxy(), 2, "", None);
    let plan = s.plan();
    // The audit lists across namespaces; only the backup lists inside the namespace.
    s.c.proxy()
        .fault(Rule::on("GET", &format!("^/api/v1/namespaces/{}/secrets$", s.stray)).status(403));
    let (out, report) = s.enforce(&plan);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed action exits 1: {}",
        stderr(&out)
    );
    let o = outcomes(&report);
    let stray = &o[&format!("Namespace {}", s.stray)];
    assert_eq!(stray.0, "failed", "{o:?}");
    assert!(
        stray.1.contains("not deleted") && stray.1.contains("backup"),
        "{stray:?}"
    );
    assert!(s.c.get("v1", "Namespace", None, &s.stray).is_some());
    assert!(
        s.c.get("v1", "Secret", Some(&s.stray), "inside-secret")
            .is_some()
    );
    // One failure does not stop the others.
    assert_eq!(o["ConfigMap orphan-0"].0, "deleted", "{o:?}");
}
