//! Cloud SQL instances end to end: the real binary with the official Cloud SQL Admin client
//! pointed at the fake GCP server, and the cluster's workloads read from the real control
//! plane (only they show what connects to an instance).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::cluster::{TestCluster, outcomes};
use crate::gcp::{FakeGcp, PROJECT, read_report, verdicts};
use crate::{stderr, write};

fn sql_env(gcp: &FakeGcp) -> Vec<(String, String)> {
    let endpoint = format!("http://127.0.0.1:{}", gcp.service.port);
    vec![
        ("DRIFTSWEEP_GCP_SQL_ENDPOINT".into(), endpoint.clone()),
        ("DRIFTSWEEP_GCP_COMPUTE_ENDPOINT".into(), endpoint),
        ("DRIFTSWEEP_GCP_CREDENTIALS".into(), "anonymous".into()),
    ]
}

/// A GCP-only run (no cluster).
fn run_gcp(gcp: &FakeGcp, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_driftsweep"));
    cmd.args(args)
        .current_dir(crate::root())
        .env_remove("DRIFTSWEEP_POLICY")
        .env_remove("DRIFTSWEEP_BACKUP");
    for (k, v) in sql_env(gcp) {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Only the Cloud SQL verdicts: the shared cluster's other objects change between runs.
fn sql_verdicts(report: &Value) -> std::collections::BTreeMap<String, (String, Vec<String>)> {
    verdicts(report)
        .into_iter()
        .filter(|(k, _)| k.starts_with("SqlInstance "))
        .collect()
}

/// A day and a minute from now: what the test just made is older than the minimum age.
fn tomorrow() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(25))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn seed_instances(gcp: &FakeGcp) {
    let mut instances: Vec<Value> = (0..501)
        .map(|i| json!({"name": format!("aia-db-{i:03}")}))
        .collect();
    instances.extend([
        json!({"name": "old-orphan"}),
        json!({"name": "old-proxied", "region": "europe-west4"}),
        json!({"name": "old-by-ip", "ipAddresses": [{"type": "PRIVATE", "ipAddress": "10.77.0.9"}]}),
        json!({"name": "old-protected", "settings": {"deletionProtectionEnabled": true}}),
        json!({"name": "old-primary"}),
        json!({"name": "old-primary-r", "masterInstanceName": "old-primary"}),
    ]);
    gcp.seed(json!({"project": PROJECT, "sqlInstances": instances}));
}

#[test]
fn a_cloud_sql_instance_no_workload_connects_to_is_backed_up_then_deleted_and_replays_equal() {
    let c = TestCluster::start();
    let ns = c.ns("sql");
    c.namespace(&ns);
    // A kept workload with the Cloud SQL Auth Proxy as a sidecar, and one connecting by address.
    c.create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": ns, "annotations": {"driftsweep.io/keep": "true"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [
                    {"name": "app", "image": "registry.invalid/app:1.0.0"},
                    {"name": "proxy", "image": "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.1",
                     "args": ["--structured-logs", "--port=5432",
                              format!("{PROJECT}:europe-west4:old-proxied")]}]}}}}));
    c.create(json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "report", "namespace": ns, "annotations": {"driftsweep.io/keep": "true"}},
        "spec": {"schedule": "0 3 * * *", "suspend": true, "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "registry.invalid/report:1.0.0",
                "env": [{"name": "DATABASE_URL", "value": "postgres://report@10.77.0.9:5432/app"}]}]}}}}}}));

    let gcp = FakeGcp::start();
    seed_instances(&gcp);
    // Enforce takes its Lease in a namespace of its own.
    let lease = c.ns("lease");
    c.namespace(&lease);
    let policy = crate::write(
        c.dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: e2e\nsafety:\n  max_deletions: 100000\n  lease_namespace: \"{lease}\"\nkubernetes:\n  namespaces: [\"{ns}\"]\n  protected_namespaces: [kube-system, kube-public, \"{lease}\"]\ngcp:\n  project: {PROJECT}\n  sql_instances: {{allowed: [\"aia-*\"], delete_databases: true, final_backup_days: 14}}\n"
        ),
    );
    let policy = policy.to_str().unwrap();
    let env = sql_env(&gcp);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let now = tomorrow();
    let plan = c.path("plan.json");
    let out = c.driftsweep_with(
        &[
            "run",
            "--policy",
            policy,
            "--now",
            &now,
            "--report",
            plan.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_report(&plan);
    let v = sql_verdicts(&report);
    assert_eq!(
        v.keys().filter(|k| k.contains(" aia-db-")).count(),
        501,
        "both pages"
    );
    assert!(
        v.iter()
            .filter(|(k, _)| k.contains(" aia-db-"))
            .all(|(_, (a, _))| a == "keep")
    );
    assert_eq!(v["SqlInstance old-orphan"].0, "delete", "{v:?}");
    for (name, reason) in [
        ("old-proxied", "in-use"),
        ("old-by-ip", "in-use"),
        ("old-protected", "deletion-protected"),
        ("old-primary", "in-use"),
        ("old-primary-r", "read-replica"),
    ] {
        let (action, reasons) = &v[&format!("SqlInstance {name}")];
        assert_eq!(action, "keep", "{name}");
        assert!(reasons.contains(&reason.to_string()), "{name}: {reasons:?}");
    }
    let proxied = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "old-proxied")
        .unwrap();
    // The Deployment names it, and so may what the controllers made of it by then (its
    // ReplicaSet and Pod).
    let detail = proxied["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with(&format!("connected to by Deployment {ns}/api")),
        "{proxied}"
    );

    // Replay of the recorded snapshot: the same verdicts.
    let snap = c.path("snap");
    let out = c.driftsweep_with(
        &[
            "snapshot",
            "--policy",
            policy,
            "--out",
            snap.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(snap.join("gcp/sqlInstances.json").is_file());
    let replay = c.path("replay.json");
    let out = c.driftsweep_with(
        &[
            "run",
            "--policy",
            policy,
            "--snapshot",
            snap.to_str().unwrap(),
            "--now",
            &now,
            "--report",
            replay.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(sql_verdicts(&read_report(&replay)), v);

    // Enforce the reviewed plan, narrowed to what this test approves (its GCP findings).
    let mut reviewed = report.clone();
    reviewed["findings"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["provider"] == "gcp");
    std::fs::write(&plan, reviewed.to_string()).unwrap();
    let outcome = c.path("outcome.json");
    let backup = c.path("backups");
    let out = c.driftsweep_with(
        &[
            "run",
            "--enforce",
            "--policy",
            policy,
            "--now",
            &now,
            "--plan",
            plan.to_str().unwrap(),
            "--backup",
            backup.to_str().unwrap(),
            "--report",
            outcome.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = outcomes(&read_report(&outcome));
    assert_eq!(o["SqlInstance old-orphan"].0, "deleted", "{o:?}");
    assert!(o["SqlInstance old-orphan"].2, "its record backed up");
    assert!(
        o["SqlInstance old-orphan"]
            .1
            .contains("gcloud sql backups restore"),
        "{o:?}"
    );
    let base = format!("/v1/projects/{PROJECT}/instances");
    assert!(!gcp.exists(&format!("{base}/old-orphan")));
    for kept in [
        "old-proxied",
        "old-by-ip",
        "old-protected",
        "old-primary",
        "old-primary-r",
        "aia-db-000",
    ] {
        assert!(gcp.exists(&format!("{base}/{kept}")), "{kept}");
    }
    let requests = gcp.requests();
    let at = |method: &str, suffix: &str| {
        requests
            .iter()
            .position(|r| r["method"] == method && r["path"].as_str().unwrap().ends_with(suffix))
    };
    let backup_at = at("POST", "/instances/old-orphan/backupRuns").expect("a backup first");
    let delete_at = at("DELETE", "/instances/old-orphan").expect("then the delete");
    assert!(backup_at < delete_at, "backup before delete");
    let polled = requests[backup_at..delete_at]
        .iter()
        .any(|r| r["path"].as_str().unwrap().contains("/operations/"));
    assert!(polled, "the backup's operation was waited for");
    let delete = &requests[delete_at];
    assert_eq!(delete["params"]["enableFinalBackup"], "true", "{delete}");
    assert_eq!(delete["params"]["finalBackupTtlDays"], "14", "{delete}");
    let state = gcp.control("GET", "/_fake/state", &Value::Null);
    let backups = &state["projects"][PROJECT]["sqlBackups"];
    assert_eq!(backups[0]["instance"], "old-orphan", "{backups}");
    assert_eq!(backups[0]["type"], "FINAL", "{backups}");
}

fn gcp_only_policy(dir: &Path, extra: &str) -> String {
    write(
        dir,
        "policy.yaml",
        &format!(
            "version: 1\nname: gcp\ngcp:\n  project: {PROJECT}\n  firewall_rules: {{allowed: [\"aia-*\"]}}\n  sql_instances: {{allowed: [\"aia-*\"], delete_databases: true{extra}}}\nsafety:\n  min_age_hours: 0\n"
        ),
    )
    .to_str()
    .unwrap()
    .to_string()
}

#[test]
fn without_the_cluster_or_with_a_forbidden_list_no_cloud_sql_instance_is_deleted() {
    let gcp = FakeGcp::start();
    gcp.seed(
        json!({"project": PROJECT, "sqlInstances": [{"name": "old-orphan"}],
        "firewalls": [{"name": "old-open-ssh"}]}),
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = gcp_only_policy(dir.path(), "");
    let path = dir.path().join("report.json");
    let args = [
        "run",
        "--policy",
        &policy,
        "--report",
        path.to_str().unwrap(),
    ];
    // A GCP-only audit cannot show what connects to an instance.
    let out = run_gcp(&gcp, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = verdicts(&read_report(&path));
    assert_eq!(v["SqlInstance old-orphan"].0, "keep", "{v:?}");
    assert!(
        v["SqlInstance old-orphan"]
            .1
            .contains(&"references-unknown".to_string())
    );

    // A 403 on the Cloud SQL Admin API: no instance judged, other kinds go on.
    gcp.fault(json!({"path": "/instances$", "status": 403}));
    let out = run_gcp(&gcp, &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = read_report(&path);
    let v = verdicts(&report);
    assert!(!v.keys().any(|k| k.starts_with("SqlInstance ")), "{v:?}");
    assert_eq!(v["FirewallRule old-open-ssh"].0, "delete");
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("Cloud SQL instances") && errors.contains("forbidden"),
        "{errors}"
    );

    // A region the list could not reach: the same.
    gcp.control("DELETE", "/_fake/faults", &Value::Null);
    gcp.control(
        "POST",
        "/_fake/config",
        &json!({"sql_unreachable_regions": ["asia-east1"]}),
    );
    let out = run_gcp(&gcp, &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = verdicts(&read_report(&path));
    assert!(!v.keys().any(|k| k.starts_with("SqlInstance ")), "{v:?}");
}

#[test]
fn a_cloud_sql_instance_whose_backup_fails_is_not_deleted() {
    for failure in ["request", "operation"] {
        let gcp = FakeGcp::start();
        gcp.seed(json!({"project": PROJECT, "sqlInstances": [{"name": "old-orphan"}]}));
        let dir = tempfile::tempdir().unwrap();
        // Audited alone: the switch that lets a GCP-only audit delete instances.
        let policy = gcp_only_policy(dir.path(), ", protect_in_use: false");
        let plan = dir.path().join("plan.json");
        let out = run_gcp(
            &gcp,
            &[
                "run",
                "--policy",
                &policy,
                "--report",
                plan.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            verdicts(&read_report(&plan))["SqlInstance old-orphan"].0,
            "delete"
        );
        if failure == "request" {
            gcp.fault(json!({"method": "POST", "path": "/backupRuns$", "status": 403}));
        } else {
            gcp.control("POST", "/_fake/config", &json!({"sql_backup_error": true}));
        }
        let outcome = dir.path().join("outcome.json");
        let backup = dir.path().join("backups");
        let out = run_gcp(
            &gcp,
            &[
                "run",
                "--enforce",
                "--policy",
                &policy,
                "--plan",
                plan.to_str().unwrap(),
                "--backup",
                backup.to_str().unwrap(),
                "--report",
                outcome.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{failure}: {}", stderr(&out));
        let o = outcomes(&read_report(&outcome));
        assert_eq!(o["SqlInstance old-orphan"].0, "failed", "{failure}: {o:?}");
        assert!(
            o["SqlInstance old-orphan"]
                .1
                .contains("backup before deletion failed"),
            "{failure}: {o:?}"
        );
        assert!(gcp.exists(&format!("/v1/projects/{PROJECT}/instances/old-orphan")));
        assert!(
            !gcp.requests().iter().any(|r| r["method"] == "DELETE"),
            "{failure}: no delete was sent"
        );
    }
}

#[test]
fn a_cloud_sql_instance_protected_after_review_is_not_deleted() {
    let gcp = FakeGcp::start();
    gcp.seed(json!({"project": PROJECT, "sqlInstances": [{"name": "old-orphan"}]}));
    let dir = tempfile::tempdir().unwrap();
    let policy = gcp_only_policy(dir.path(), ", protect_in_use: false");
    let plan = dir.path().join("plan.json");
    let out = run_gcp(
        &gcp,
        &[
            "run",
            "--policy",
            &policy,
            "--report",
            plan.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Someone turns deletion protection on after the review (the settings version moves).
    gcp.seed(
        json!({"project": PROJECT, "sqlInstances": [{"name": "old-orphan",
        "createTime": read_report(&plan)["findings"][0]["created_at"],
        "settings": {"deletionProtectionEnabled": true, "settingsVersion": "2"}}]}),
    );
    let outcome = dir.path().join("outcome.json");
    let backup = dir.path().join("backups");
    let out = run_gcp(
        &gcp,
        &[
            "run",
            "--enforce",
            "--policy",
            &policy,
            "--plan",
            plan.to_str().unwrap(),
            "--backup",
            backup.to_str().unwrap(),
            "--report",
            outcome.to_str().unwrap(),
        ],
    );
    let o = outcomes(&read_report(&outcome));
    assert_eq!(
        o["SqlInstance old-orphan"].0,
        "skipped",
        "{}: {o:?}",
        stderr(&out)
    );
    assert!(gcp.exists(&format!("/v1/projects/{PROJECT}/instances/old-orphan")));
    assert!(
        !gcp.requests().iter().any(|r| r["method"] != "GET"),
        "neither a backup nor a delete was sent"
    );
}
