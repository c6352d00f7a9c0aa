//! The fault matrix: every class of failure a server or the network produces (403, 404, 409,
//! 410, 429, 500, a timeout, a connection reset mid-body), on the reads that decide (lists,
//! gets) and on deletes, for Kubernetes (the fault proxy in front of the real API server), the
//! registry (the proxy in front of Debian's docker-registry) and GCP (the proxy in front of
//! the GCP test server). Whatever fails: nothing is deleted that should not be, the report
//! lists every planned object with its outcome, and the exit code says whether all went well.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::cluster::TestCluster;
use crate::proxy::{FaultProxy, Rule};
use crate::registry::{Pusher, start_registry};
use crate::{driftsweep_with, stderr, write};

/// One class of failure.
#[derive(Debug, Clone, Copy)]
pub enum Class {
    Status(u16),
    /// The server never answers (the client's timeout or the run's deadline decides).
    Timeout,
    /// The connection is cut after the first bytes of the response body.
    Reset,
}

pub const CLASSES: [Class; 8] = [
    Class::Status(403),
    Class::Status(404),
    Class::Status(409),
    Class::Status(410),
    Class::Status(429),
    Class::Status(500),
    Class::Timeout,
    Class::Reset,
];

impl Class {
    pub fn rule(self, rule: Rule) -> Rule {
        match self {
            Class::Status(429) => rule.status(429).retry_after(1),
            Class::Status(code) => rule.status(code),
            Class::Timeout => rule.stall(),
            Class::Reset => rule.reset_after(8),
        }
    }
}

/// Short timeouts, so that a stalled request ends the test in seconds, not minutes.
const FAST: [(&str, &str); 4] = [
    ("DRIFTSWEEP_KUBE_TIMEOUT_SECONDS", "2"),
    ("DRIFTSWEEP_ACTION_DEADLINE_SECONDS", "20"),
    ("DRIFTSWEEP_LIST_DEADLINE_SECONDS", "6"),
    ("DRIFTSWEEP_RUN_DEADLINE_SECONDS", "20"),
];

/// `run --enforce` of `plan`, backing up to `backup`, the outcome report to `report`.
fn enforce_args<'a>(
    policy: &'a str,
    plan: &'a Path,
    backup: &'a Path,
    report: &'a Path,
) -> [&'a str; 10] {
    let path = |p: &'a Path| p.to_str().unwrap();
    [
        "run",
        "--enforce",
        "--policy",
        policy,
        "--plan",
        path(plan),
        "--backup",
        path(backup),
        "--report",
        path(report),
    ]
}

fn report_of(path: &Path) -> Value {
    std::fs::read_to_string(path)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null)
}

/// `Kind namespace/name` (or `Kind name`) of a finding.
fn key(f: &Value) -> String {
    match f["namespace"].as_str() {
        Some(ns) => format!(
            "{} {ns}/{}",
            f["kind"].as_str().unwrap(),
            f["name"].as_str().unwrap()
        ),
        None => format!(
            "{} {}",
            f["kind"].as_str().unwrap(),
            f["name"].as_str().unwrap()
        ),
    }
}

fn findings(report: &Value) -> &[Value] {
    report["findings"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
}

fn planned_deletions(report: &Value) -> Vec<String> {
    let mut out: Vec<String> = findings(report)
        .iter()
        .filter(|f| f["action"] == "delete")
        .map(key)
        .collect();
    out.sort();
    out
}

/// Every planned action's (status, reason, whether it was backed up), by `key`.
fn outcomes(report: &Value) -> std::collections::BTreeMap<String, (String, String, bool)> {
    findings(report)
        .iter()
        .filter(|f| !f["outcome"].is_null())
        .map(|f| {
            (
                key(f),
                (
                    f["outcome"]["status"].as_str().unwrap().to_string(),
                    f["outcome"]["reason"].as_str().unwrap_or("").to_string(),
                    f["outcome"]["backup"].is_string(),
                ),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- Kubernetes

struct Kube {
    c: TestCluster,
    app: String,
    policy: PathBuf,
}

fn kube() -> Kube {
    let c = TestCluster::with_proxy();
    let app = c.ns("app");
    let lease = c.ns("lease");
    c.namespace(&app);
    c.namespace(&lease);
    // A Pod (Pending: no kubelet here) is the only user of `by-pod`: a failed Pod list must
    // keep it.
    c.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "by-pod", "namespace": app}}));
    c.create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": app},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/c:1.0.0"}],
            "volumes": [{"name": "v", "configMap": {"name": "by-pod"}}]}}));
    let policy = write(
        c.dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: e2e\nkubernetes:\n  namespaces: [\"{app}\"]\n  protected_namespaces: [kube-system, kube-public, \"{lease}\"]\nsafety:\n  min_age_hours: 0\n  max_deletions: 100000\n  lease_namespace: \"{lease}\"\n"
        ),
    );
    Kube { c, app, policy }
}

impl Kube {
    fn dry_run(&self, name: &str, env: &[(&str, &str)]) -> (Output, Value) {
        let report = self.c.path(name);
        let out = self.c.driftsweep_with(
            &[
                "run",
                "--policy",
                self.policy.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
            ],
            env,
        );
        self.c.narrow_to_own(&report);
        (out, report_of(&report))
    }

    fn configmap(&self, name: &str) -> Value {
        self.c
            .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": self.app}, "data": {"k": name}}))
    }

    fn exists(&self, name: &str) -> bool {
        self.c
            .get("v1", "ConfigMap", Some(&self.app), name)
            .is_some()
    }
}

#[test]
fn kubernetes_list_faults_of_every_class_keep_what_the_list_could_protect() {
    let k = kube();
    k.configmap("orphan");
    let (out, baseline) = k.dry_run("baseline.json", &FAST);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let orphan = format!("ConfigMap {}/orphan", k.app);
    assert!(
        planned_deletions(&baseline).contains(&orphan),
        "{:?}",
        planned_deletions(&baseline)
    );
    assert!(
        !planned_deletions(&baseline)
            .iter()
            .any(|d| d.ends_with("/by-pod")),
        "the Pod's ConfigMap is in use"
    );
    for class in CLASSES {
        k.c.proxy().clear_faults();
        k.c.proxy()
            .fault(class.rule(Rule::on("GET", "^/api/v1/pods$")));
        let (out, report) = k.dry_run(&format!("list-{class:?}.json"), &FAST);
        assert_eq!(out.status.code(), Some(1), "{class:?}: {}", stderr(&out));
        let errors = report["errors"].to_string();
        assert!(
            errors.contains("Pod"),
            "{class:?}: the gap is reported: {errors}"
        );
        let configmaps: Vec<_> = planned_deletions(&report)
            .into_iter()
            .filter(|d| d.starts_with("ConfigMap "))
            .collect();
        assert_eq!(
            configmaps,
            Vec::<String>::new(),
            "{class:?}: without the Pods, no ConfigMap is known unused"
        );
    }
    // A fault that passes (once) is retried: the same plan as without it.
    for class in [Class::Status(429), Class::Status(500), Class::Reset] {
        k.c.proxy().clear_faults();
        k.c.proxy()
            .fault(class.rule(Rule::on("GET", "^/api/v1/pods$")).times(1));
        let (out, report) = k.dry_run(&format!("transient-{class:?}.json"), &FAST);
        assert_eq!(out.status.code(), Some(0), "{class:?}: {}", stderr(&out));
        assert_eq!(
            planned_deletions(&report),
            planned_deletions(&baseline),
            "{class:?}"
        );
    }
}

/// Which request of the delete primitive a fault hits.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The re-read before deleting.
    Get,
    /// The server-side dry run of the delete.
    DryRun,
    /// The delete itself, with preconditions.
    Delete,
}

fn kube_delete_matrix(step: Step) {
    let k = kube();
    let backup = k.c.path("backups");
    for (i, class) in CLASSES.into_iter().enumerate() {
        let victim = format!("victim-{i}");
        let bystander = format!("bystander-{i}");
        k.configmap(&victim);
        k.configmap(&bystander);
        k.c.proxy().clear_faults();
        let (out, plan) = k.dry_run(&format!("plan-{i}.json"), &FAST);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let plan_path = k.c.path(&format!("plan-{i}.json"));
        let planned = planned_deletions(&plan);
        for name in [&victim, &bystander] {
            assert!(
                planned.contains(&format!("ConfigMap {}/{name}", k.app)),
                "{planned:?}"
            );
        }
        let path = format!("^/api/v1/namespaces/{}/configmaps/{victim}$", k.app);
        let rule = match step {
            Step::Get => Rule::on("GET", &path),
            Step::DryRun => Rule::on("DELETE", &path).dry_run(true),
            Step::Delete => Rule::on("DELETE", &path).dry_run(false),
        };
        k.c.proxy().fault(class.rule(rule));
        let report = k.c.path(&format!("enforce-{i}.json"));
        let out = k.c.driftsweep_with(
            &enforce_args(k.policy.to_str().unwrap(), &plan_path, &backup, &report),
            &FAST,
        );
        k.c.proxy().clear_faults();
        let report = report_of(&report);
        let o = outcomes(&report);
        let key = |name: &str| format!("ConfigMap {}/{name}", k.app);
        let what = format!("{step:?} {class:?}: {o:?}\n{}", stderr(&out));
        // The report is complete: every planned object has an outcome.
        for d in &planned {
            assert!(o.contains_key(d), "{what}: no outcome for {d}");
        }
        // One failure does not stop the others.
        assert_eq!(o[&key(&bystander)].0, "deleted", "{what}");
        assert!(o[&key(&bystander)].2, "{what}: backed up first");
        assert!(!k.exists(&bystander));
        let (outcome, _, backed_up) = &o[&key(&victim)];
        let gone = !k.exists(&victim);
        if gone {
            // Only the delete itself, answered but cut short, may have removed it.
            assert!(
                matches!((step, class), (Step::Delete, Class::Reset | Class::Timeout)),
                "{what}: deleted although the server refused"
            );
            assert!(*backed_up, "{what}: deleted without a backup");
            assert!(
                outcome == "deleted" || outcome == "already-gone",
                "{what}: the report must say it is gone"
            );
        } else {
            assert_ne!(outcome, "deleted", "{what}: reported deleted but exists");
        }
        let failed = o.values().any(|(outcome, _, _)| outcome == "failed");
        let code = out.status.code();
        assert_eq!(
            code,
            Some(if failed { 1 } else { 0 }),
            "{what}: the exit code says whether everything went well"
        );
        if let Class::Status(403 | 410 | 429 | 500) = class {
            assert_eq!(outcome, "failed", "{what}");
        }
    }
}

#[test]
fn kubernetes_faults_on_the_re_read_before_a_delete_never_delete_it() {
    kube_delete_matrix(Step::Get);
}

#[test]
fn kubernetes_faults_on_the_server_side_dry_run_never_delete() {
    kube_delete_matrix(Step::DryRun);
}

#[test]
fn kubernetes_faults_on_the_delete_are_reported_and_the_others_go_on() {
    kube_delete_matrix(Step::Delete);
}

// ---------------------------------------------------------------- the registry

/// Short timeouts for the registry and each deletion.
const REGISTRY_FAST: [(&str, &str); 3] = [
    ("DRIFTSWEEP_REGISTRY_TIMEOUT_SECONDS", "2"),
    ("DRIFTSWEEP_RUN_DEADLINE_SECONDS", "30"),
    ("DRIFTSWEEP_ACTION_DEADLINE_SECONDS", "10"),
];

struct Versions {
    policy: String,
    /// v1 (400 days old): the version faults hit.
    victim: String,
    /// v2 (300 days old): planned beside it.
    bystander: String,
}

/// Repository `team/app-{i}` with two old versions (planned: only the 2 newest are kept) and
/// two recent ones, audited through `proxy`.
fn versions(push: &Pusher, proxy: &FaultProxy, dir: &Path, i: usize) -> Versions {
    let repo = format!("team/app-{i}");
    let mut digests = Vec::new();
    for (tag, days) in [("v1", 400), ("v2", 300), ("v3", 10), ("v4", 5)] {
        digests.push(push.image(&repo, &[tag], days, &format!("{repo}-{tag}")).0);
    }
    let host = format!("127.0.0.1:{}", proxy.port);
    let policy = write(
        dir,
        &format!("policy-{i}.yaml"),
        &format!(
            "version: 1\nname: reg\nregistry:\n  repositories: [{host}/{repo}]\n  keep_recent: 2\n  max_age_days: 90\n  plain_http_hosts: ['{host}']\n  protect_in_use: false\nsafety:\n  min_age_hours: 0\n"
        ),
    );
    Versions {
        policy: policy.to_str().unwrap().to_string(),
        victim: format!("Image {host}/{repo}@{}", digests[0]),
        bystander: format!("Image {host}/{repo}@{}", digests[1]),
    }
}

fn dry_run(policy: &str, report: &Path, env: &[(&str, &str)]) -> (Output, Value) {
    let out = driftsweep_with(
        &[
            "run",
            "--policy",
            policy,
            "--report",
            report.to_str().unwrap(),
        ],
        env,
    );
    (out, report_of(report))
}

#[test]
fn registry_read_faults_of_every_class_never_plan_what_could_not_be_read() {
    let registry = start_registry();
    let push = Pusher::new(registry.port);
    let proxy = FaultProxy::http(registry.port);
    let dir = tempfile::tempdir().unwrap();
    for (i, class) in CLASSES.into_iter().enumerate() {
        let v = versions(&push, &proxy, dir.path(), i);
        proxy.clear_faults();
        let (out, baseline) = dry_run(
            &v.policy,
            &dir.path().join(format!("base-{i}.json")),
            &REGISTRY_FAST,
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let base = planned_deletions(&baseline);
        assert_eq!(base, {
            let mut both = vec![v.victim.clone(), v.bystander.clone()];
            both.sort();
            both
        });
        let repo = format!("/v2/team/app-{i}");
        let digest = v.victim.rsplit('@').next().unwrap();
        for (what, rule) in [
            (
                "the tag list",
                Rule::on("GET", &format!("^{repo}/tags/list$")),
            ),
            (
                "v1's manifest",
                Rule::on("GET", &format!("^{repo}/manifests/(v1|{digest})$")),
            ),
        ] {
            proxy.clear_faults();
            proxy.fault(class.rule(rule));
            let (out, report) = dry_run(
                &v.policy,
                &dir.path().join(format!("fault-{i}.json")),
                &REGISTRY_FAST,
            );
            let planned = planned_deletions(&report);
            let context = format!("{what} {class:?}: {planned:?}\n{}", stderr(&out));
            assert!(!planned.contains(&v.victim), "{context}");
            assert!(planned.iter().all(|p| base.contains(p)), "{context}");
            if !matches!(class, Class::Status(404)) {
                assert_eq!(out.status.code(), Some(1), "{context}");
                assert!(
                    report["errors"].to_string().contains("team/app-"),
                    "{context}"
                );
            }
        }
    }
}

#[test]
fn registry_delete_faults_of_every_class_are_reported_and_the_others_go_on() {
    let registry = start_registry();
    let push = Pusher::new(registry.port);
    let proxy = FaultProxy::http(registry.port);
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backups");
    for (i, class) in CLASSES.into_iter().enumerate() {
        let v = versions(&push, &proxy, dir.path(), i);
        proxy.clear_faults();
        let plan = dir.path().join(format!("plan-{i}.json"));
        let (out, _) = dry_run(&v.policy, &plan, &REGISTRY_FAST);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let digest = v.victim.rsplit('@').next().unwrap();
        proxy.fault(class.rule(Rule::on(
            "DELETE",
            &format!("^/v2/team/app-{i}/manifests/{digest}$"),
        )));
        let report = dir.path().join(format!("enforce-{i}.json"));
        let out = driftsweep_with(
            &enforce_args(&v.policy, &plan, &backup, &report),
            &REGISTRY_FAST,
        );
        proxy.clear_faults();
        let o = outcomes(&report_of(&report));
        let what = format!("{class:?}: {o:?}\n{}", stderr(&out));
        assert_eq!(o[&v.bystander].0, "deleted", "{what}");
        let (outcome, _, _) = &o[&v.victim];
        let exists = push.head(&format!("team/app-{i}"), digest) == 200;
        if exists {
            assert_ne!(outcome, "deleted", "{what}: reported deleted but exists");
        } else {
            assert!(
                matches!(class, Class::Reset | Class::Timeout),
                "{what}: deleted although the registry refused"
            );
        }
        let failed = o.values().any(|(s, _, _)| s == "failed");
        assert_eq!(
            out.status.code(),
            Some(if failed { 1 } else { 0 }),
            "{what}"
        );
        if let Class::Status(403 | 410 | 429 | 500) = class {
            assert_eq!(outcome, "failed", "{what}");
        }
    }
}

// ---------------------------------------------------------------- GCP

#[test]
fn gcp_faults_of_every_class_on_list_get_and_delete_never_delete_wrongly() {
    let gcp = crate::gcp::FakeGcp::start();
    let proxy = FaultProxy::http(gcp.service.port);
    let dir = tempfile::tempdir().unwrap();
    let project = crate::gcp::PROJECT;
    let policy = write(
        dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: gcp\ngcp:\n  project: {project}\n  firewall_rules: {{allowed: [\"aia-*\"]}}\nsafety:\n  min_age_hours: 0\n"
        ),
    );
    let policy = policy.to_str().unwrap();
    let endpoint = proxy.url();
    let env = [
        ("DRIFTSWEEP_GCP_COMPUTE_ENDPOINT", endpoint.as_str()),
        ("DRIFTSWEEP_GCP_CREDENTIALS", "anonymous"),
        ("DRIFTSWEEP_RUN_DEADLINE_SECONDS", "15"),
        ("DRIFTSWEEP_ACTION_DEADLINE_SECONDS", "10"),
    ];
    let exists = |name: &str| {
        gcp.exists(&format!(
            "/compute/v1/projects/{project}/global/firewalls/{name}"
        ))
    };
    let backup = dir.path().join("backups");
    for (i, class) in CLASSES.into_iter().enumerate() {
        let firewalls: Vec<Value> = ["aia-allow", "old-victim", "old-bystander"]
            .iter()
            .map(|n| json!({"name": format!("{n}-{i}")}))
            .collect();
        gcp.seed(json!({"project": project, "firewalls": firewalls}));
        let victim = format!("old-victim-{i}");
        let bystander = format!("old-bystander-{i}");
        let path = format!("/compute/v1/projects/{project}/global/firewalls");

        // A failed list plans no firewall rule.
        proxy.clear_faults();
        proxy.fault(class.rule(Rule::on("GET", &format!("^{path}$"))));
        let (out, report) = dry_run(policy, &dir.path().join(format!("list-{i}.json")), &env);
        let what = format!("list {class:?}: {}", stderr(&out));
        assert_eq!(planned_deletions(&report), Vec::<String>::new(), "{what}");
        assert_eq!(out.status.code(), Some(1), "{what}");
        assert!(
            report["errors"].to_string().contains("FirewallRule"),
            "{what}"
        );

        // The plan, then faults on the re-read of one rule and on its delete.
        for (step, rule) in [
            ("get", Rule::on("GET", &format!("^{path}/{victim}$"))),
            ("delete", Rule::on("DELETE", &format!("^{path}/{victim}$"))),
        ] {
            if !exists(&bystander) {
                gcp.seed(json!({"project": project, "firewalls": [{"name": bystander}]}));
            }
            proxy.clear_faults();
            let plan = dir.path().join(format!("plan-{i}-{step}.json"));
            let (out, planned) = dry_run(policy, &plan, &env);
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            let planned = planned_deletions(&planned);
            let key = |n: &str| format!("FirewallRule {n}");
            assert!(planned.contains(&key(&victim)), "{planned:?}");
            proxy.fault(class.rule(rule));
            let report = dir.path().join(format!("enforce-{i}-{step}.json"));
            let out = driftsweep_with(&enforce_args(policy, &plan, &backup, &report), &env);
            proxy.clear_faults();
            let o = outcomes(&report_of(&report));
            let what = format!("{step} {class:?}: {o:?}\n{}", stderr(&out));
            for d in &planned {
                assert!(o.contains_key(d), "{what}: no outcome for {d}");
            }
            assert_eq!(o[&key(&bystander)].0, "deleted", "{what}");
            assert!(!exists(&bystander), "{what}");
            let (outcome, _, backed_up) = &o[&key(&victim)];
            if exists(&victim) {
                assert_ne!(outcome, "deleted", "{what}: reported deleted but exists");
            } else {
                assert!(
                    step == "delete" && matches!(class, Class::Reset | Class::Timeout),
                    "{what}: deleted although the API refused"
                );
                assert!(*backed_up, "{what}");
            }
            let failed = o.values().any(|(s, _, _)| s == "failed");
            assert_eq!(
                out.status.code(),
                Some(if failed { 1 } else { 0 }),
                "{what}"
            );
            if let Class::Status(403 | 429 | 500) = class {
                assert_eq!(outcome, "failed", "{what}");
            }
            if !exists(&victim) {
                gcp.seed(json!({"project": project, "firewalls": [{"name": victim}]}));
            }
        }
    }
}
