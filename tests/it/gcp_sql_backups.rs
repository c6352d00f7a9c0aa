//! Cloud SQL backups end to end: the real binary with the official Cloud SQL Admin client
//! pointed at the fake GCP server. Backup runs and the project's backups (what outlives a
//! deleted instance) are judged together, per instance.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::cluster::outcomes;
use crate::gcp::{FakeGcp, PROJECT, read_report, verdicts};
use crate::{stderr, write};

fn run(gcp: &FakeGcp, args: &[&str]) -> Output {
    let endpoint = format!("http://127.0.0.1:{}", gcp.service.port);
    Command::new(env!("CARGO_BIN_EXE_driftsweep"))
        .args(args)
        .current_dir(crate::root())
        .env_remove("DRIFTSWEEP_POLICY")
        .env_remove("DRIFTSWEEP_BACKUP")
        .env("DRIFTSWEEP_GCP_SQL_ENDPOINT", &endpoint)
        .env("DRIFTSWEEP_GCP_COMPUTE_ENDPOINT", &endpoint)
        .env("DRIFTSWEEP_GCP_CREDENTIALS", "anonymous")
        .output()
        .unwrap()
}

fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn backup_verdicts(report: &Value) -> std::collections::BTreeMap<String, (String, Vec<String>)> {
    verdicts(report)
        .into_iter()
        .filter(|(k, _)| k.starts_with("SqlBackup "))
        .collect()
}

const DELETED: &str = "2025-10-01T00:00:00Z";

/// Instances with backup runs (more than a page of an allowed one's), the project's backups
/// of a deleted instance (more than a page of an allowed one's), and a firewall rule to show
/// the other kinds are still decided.
fn project(delete_final: bool) -> (FakeGcp, tempfile::TempDir, PathBuf) {
    let gcp = FakeGcp::start();
    let run = |id: u64, days: i64| json!({"instance": "db", "id": id.to_string(), "enqueuedTime": days_ago(days)});
    let mut runs: Vec<Value> = (0..501)
        .map(|i| json!({"instance": "aia-prod", "id": (1000 + i).to_string(), "enqueuedTime": days_ago(400)}))
        .collect();
    runs.extend([
        run(1, 200),
        run(2, 150),
        run(3, 120),
        run(4, 100),
        run(5, 10),
        json!({"instance": "db", "id": "6", "enqueuedTime": days_ago(300), "status": "FAILED"}),
        json!({"instance": "db", "id": "7", "enqueuedTime": days_ago(400), "type": "ON_DEMAND",
               "description": "driftsweep: backup of db before deleting it (2025-01-01T00:00:00Z)"}),
    ]);
    let mut backups: Vec<Value> = (0..501)
        .map(|i| {
            json!({"instance": "aia-old", "id": format!("a{i:03}"), "type": "AUTOMATED",
                        "startTime": days_ago(400), "instanceDeletionTime": DELETED})
        })
        .collect();
    let retained = |id: &str, days: i64| {
        json!({"instance": "gone", "id": id, "type": "AUTOMATED", "startTime": days_ago(days),
               "instanceDeletionTime": DELETED})
    };
    backups.extend([
        json!({"instance": "gone", "id": "final", "startTime": days_ago(299),
               "instanceDeletionTime": DELETED, "description": "the last one"}),
        retained("g1", 300),
        retained("g2", 310),
        retained("g3", 320),
        // The project's view of db's run 1: the run is the record.
        json!({"instance": "db", "id": "dup", "type": "AUTOMATED", "startTime": days_ago(200),
               "backupRun": format!("projects/{PROJECT}/instances/db/backupRuns/1")}),
    ]);
    gcp.seed(json!({"project": PROJECT,
        "sqlInstances": [{"name": "db"}, {"name": "aia-prod"},
                         {"name": "db-r", "masterInstanceName": "db"}],
        "sqlBackupRuns": runs, "sqlBackups": backups,
        "firewalls": [{"name": "old-open-ssh"}]}));
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: gcp\ngcp:\n  project: {PROJECT}\n  firewall_rules: {{allowed: [\"aia-*\"]}}\n  sql_backups: {{allowed: [\"aia-*\"], keep_recent: 2, max_age_days: 30, delete_final_backups: {delete_final}}}\nsafety:\n  min_age_hours: 0\n  max_deletions: 20\n"
        ),
    );
    (gcp, dir, policy)
}

#[test]
fn cloud_sql_backups_every_page_retention_per_instance_replayed_equal_and_deleted_through_operations()
 {
    let (gcp, dir, policy) = project(false);
    let policy = policy.to_str().unwrap();
    let plan = dir.path().join("plan.json");
    let out = run(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--report",
            plan.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_report(&plan);
    let v = backup_verdicts(&report);
    let count = |prefix: &str| v.keys().filter(|k| k.starts_with(prefix)).count();
    assert_eq!(count("SqlBackup aia-prod/"), 501, "both pages of runs");
    assert_eq!(
        count("SqlBackup aia-old/backups/"),
        501,
        "both pages of backups"
    );
    let paths: Vec<String> = gcp
        .requests()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    let lists = |end: &str| paths.iter().filter(|p| p.ends_with(end)).count();
    assert_eq!(lists("/instances/aia-prod/backupRuns"), 2);
    assert_eq!(lists(&format!("/projects/{PROJECT}/backups")), 2);
    assert_eq!(
        lists(&format!("/projects/{PROJECT}/instances")),
        1,
        "one instance list"
    );
    assert_eq!(
        lists("/instances/db-r/backupRuns"),
        0,
        "a replica has no backups"
    );
    assert!(
        !v.contains_key("SqlBackup db/backups/dup"),
        "counted once, as its run"
    );
    let verdict = |name: &str| {
        v.get(&format!("SqlBackup {name}"))
            .unwrap_or_else(|| panic!("no verdict for {name}: {v:?}"))
            .clone()
    };
    for expired in ["db/1", "db/2", "db/3", "gone/backups/g2", "gone/backups/g3"] {
        assert_eq!(
            verdict(expired),
            ("delete".to_string(), vec!["expired".to_string()]),
            "{expired}"
        );
    }
    for (kept, reason) in [
        ("db/4", "recent-version"),
        ("db/5", "within-max-age"),
        ("db/6", "in-use"),
        ("db/7", "final-backup"),
        ("gone/backups/final", "final-backup"),
        ("gone/backups/g1", "recent-version"),
        ("aia-prod/1000", "in-allowlist"),
        ("aia-old/backups/a000", "in-allowlist"),
    ] {
        let (action, reasons) = verdict(kept);
        assert_eq!(action, "keep", "{kept}: {reasons:?}");
        assert!(reasons.contains(&reason.to_string()), "{kept}: {reasons:?}");
    }
    assert_eq!(verdicts(&report)["FirewallRule old-open-ssh"].0, "delete");

    // A recorded snapshot replays to the same verdicts; without its files, none is judged.
    let snap = dir.path().join("snap");
    let out = run(
        &gcp,
        &[
            "snapshot",
            "--policy",
            policy,
            "--out",
            snap.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for file in [
        "sqlBackups.json",
        "sqlInstances.json",
        "sqlBackupRuns/db.json",
    ] {
        assert!(snap.join("gcp").join(file).is_file(), "{file}");
    }
    let replay = dir.path().join("replay.json");
    let out = run(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--snapshot",
            snap.to_str().unwrap(),
            "--report",
            replay.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(backup_verdicts(&read_report(&replay)), v);
    std::fs::remove_file(snap.join("gcp/sqlBackups.json")).unwrap();
    let out = run(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--snapshot",
            snap.to_str().unwrap(),
            "--report",
            replay.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(backup_verdicts(&read_report(&replay)).is_empty());

    // Enforce: run 3 was taken again under its id since the review: not deleted. The rest
    // go through their operations, and everything kept stays.
    gcp.seed(json!({"project": PROJECT, "sqlBackupRuns": [
        {"instance": "db", "id": "3", "enqueuedTime": days_ago(119)}]}));
    let outcome = dir.path().join("outcome.json");
    let backup = dir.path().join("backups");
    let now = (chrono::Utc::now() + chrono::Duration::minutes(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let out = run(
        &gcp,
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
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = outcomes(&read_report(&outcome));
    for gone in ["db/2", "gone/backups/g2", "gone/backups/g3"] {
        let (status, reason, backed_up) = &o[&format!("SqlBackup {gone}")];
        assert_eq!(status, "deleted", "{gone}: {o:?}");
        assert!(backed_up, "{gone}: its record backed up first");
        assert!(
            reason.contains("cannot be brought back"),
            "{gone}: {reason}"
        );
    }
    let state = gcp.control("GET", "/_fake/state", &Value::Null);
    let p = &state["projects"][PROJECT];
    let runs: Vec<&str> = p["sqlBackupRuns"]["db"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for kept in ["3", "4", "5", "6", "7"] {
        assert!(runs.contains(&kept), "run {kept}: {runs:?}");
    }
    assert!(!runs.contains(&"2"), "{runs:?}");
    assert_eq!(o["SqlBackup db/3"].0, "skipped", "{o:?}");
    assert!(o["SqlBackup db/3"].1.contains("since review"), "{o:?}");
    let backups: Vec<&str> = p["sqlBackups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    for kept in ["final", "g1", "a000", "dup"] {
        assert!(backups.contains(&kept), "backup {kept}");
    }
    for gone in ["g2", "g3"] {
        assert!(!backups.contains(&gone), "backup {gone}");
    }
    assert_eq!(
        p["sqlBackupRuns"]["aia-prod"].as_array().unwrap().len(),
        501
    );
    assert!(paths_after(&gcp).iter().any(|p| p.contains("/operations/")));
}

fn paths_after(gcp: &FakeGcp) -> Vec<String> {
    gcp.requests()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn final_backups_go_by_retention_only_when_the_policy_opts_in() {
    let (gcp, dir, policy) = project(true);
    let report = dir.path().join("report.json");
    let out = run(
        &gcp,
        &[
            "run",
            "--policy",
            policy.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = backup_verdicts(&read_report(&report));
    // The final backup is the newest of its deleted instance: kept by retention now.
    assert_eq!(v["SqlBackup gone/backups/final"].1, ["recent-version"]);
    assert_eq!(
        v["SqlBackup db/7"],
        ("delete".to_string(), vec!["expired".to_string()])
    );
}

#[test]
fn a_forbidden_backup_run_list_protects_only_cloud_sql_backups() {
    let (gcp, dir, policy) = project(false);
    gcp.fault(json!({"path": "/instances/db/backupRuns$", "status": 403}));
    let report = dir.path().join("report.json");
    let out = run(
        &gcp,
        &[
            "run",
            "--policy",
            policy.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = read_report(&report);
    let v = verdicts(&report);
    assert!(
        !v.iter()
            .any(|(k, (action, _))| k.starts_with("SqlBackup ") && action == "delete"),
        "no backup deleted without every list: {v:?}"
    );
    assert_eq!(v["FirewallRule old-open-ssh"].0, "delete");
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("backup runs of Cloud SQL instance db") && errors.contains("forbidden"),
        "{errors}"
    );
}
