//! Cloud Logging sinks and buckets end to end: the real binary with the official logging
//! client pointed at the fake GCP server (`tests/gcpserver/fake_gcp.py`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cluster::outcomes;
use crate::gcp::{FakeGcp, PROJECT, all_keep, enforce_plan, read_report, run_with, verdicts};
use crate::services::Service;
use crate::{stderr, write};

/// A project's logging: more than a page of allowed sinks and of allowed buckets, the
/// project's own, orphan sinks and the buckets only they write to, and the buckets that are
/// kept however they look. A firewall rule shows the other kinds go on.
fn logging_project() -> (FakeGcp, tempfile::TempDir, PathBuf) {
    let gcp = FakeGcp::start();
    let mut sinks: Vec<Value> = (0..250)
        .map(|i| json!({"name": format!("aia-sink-{i:03}"), "destination": "aia-logs"}))
        .collect();
    sinks.extend([
        json!({"name": "_Default", "destination": "_Default"}),
        json!({"name": "_Required", "destination": "_Required"}),
        json!({"name": "aia-kept", "destination": "old-kept-writer"}),
        json!({"name": "old-export", "destination": "old-orphan"}),
        json!({"name": "old-fails", "destination": "old-after-fail"}),
        json!({"name": "old-changed",
               "destination": format!("bigquery.googleapis.com/projects/{PROJECT}/datasets/old")}),
    ]);
    let mut buckets: Vec<Value> = (0..201)
        .map(|i| json!({"name": format!("aia-b-{i:03}"), "location": "europe-west1"}))
        .collect();
    buckets.extend([
        json!({"name": "_Default"}),
        json!({"name": "_Required"}),
        json!({"name": "aia-logs"}),
        json!({"name": "old-orphan"}),
        json!({"name": "old-after-fail"}),
        json!({"name": "old-kept-writer"}),
        json!({"name": "old-locked", "location": "europe-west1", "locked": true}),
        json!({"name": "old-pending", "lifecycleState": "DELETE_REQUESTED"}),
        json!({"name": "old-lonely", "location": "europe-west1"}),
        json!({"name": "old-late-writer", "location": "europe-west1"}),
        json!({"name": "old-analytics", "analyticsEnabled": true}),
    ]);
    gcp.seed(json!({
        "project": PROJECT,
        "logSinks": sinks,
        "logBuckets": buckets,
        "firewalls": [{"name": "old-open-ssh"}]
    }));
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: gcp\ngcp:\n  project: {PROJECT}\n  firewall_rules: {{allowed: [\"aia-*\"]}}\n  log_sinks: {{allowed: [\"aia-*\"]}}\n  log_buckets: {{allowed: [\"aia-*\"]}}\nsafety:\n  min_age_hours: 0\n  max_deletions: 20\n"
        ),
    );
    (gcp, dir, policy)
}

fn bucket_path(location: &str, bucket: &str) -> String {
    format!("/v2/projects/{PROJECT}/locations/{location}/buckets/{bucket}")
}

/// The bucket's lifecycle state as the fake server stores it (names, not numbers).
fn state(gcp: &FakeGcp, location: &str, bucket: &str) -> String {
    let (status, body) =
        Service::http_to(gcp.service.port, "GET", &bucket_path(location, bucket), "");
    assert_eq!(status, 200, "{body}");
    let b: Value = serde_json::from_str(&body).unwrap();
    b["lifecycleState"].as_str().unwrap_or("?").to_string()
}

#[test]
fn log_sinks_and_buckets_every_page_in_use_chain_replayed_equal_and_enforced() {
    let (gcp, dir, policy) = logging_project();
    let policy = policy.to_str().unwrap();
    let live = dir.path().join("live.json");
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--report",
            live.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_report(&live);
    let v = verdicts(&report);
    assert_eq!(
        v.keys().filter(|k| k.contains("LogSink aia-sink-")).count(),
        250,
        "both pages of the sinks"
    );
    assert_eq!(
        v.keys()
            .filter(|k| k.contains("LogBucket europe-west1/aia-b-"))
            .count(),
        201,
        "both pages of the buckets"
    );
    let action = |k: &str| v.get(k).map(|x| x.0.as_str()).unwrap_or("absent");
    for orphan in [
        "LogSink old-export",
        "LogSink old-fails",
        "LogSink old-changed",
        "LogBucket global/old-orphan",
        "LogBucket global/old-after-fail",
        "LogBucket europe-west1/old-lonely",
        "LogBucket europe-west1/old-late-writer",
        "FirewallRule old-open-ssh",
    ] {
        assert_eq!(action(orphan), "delete", "{orphan}: {:?}", v.get(orphan));
    }
    for (kept, reason) in [
        ("LogSink _Default", "system-managed"),
        ("LogSink _Required", "system-managed"),
        ("LogSink aia-kept", "in-allowlist"),
        ("LogBucket global/_Default", "system-managed"),
        ("LogBucket global/_Required", "system-managed"),
        ("LogBucket global/aia-logs", "in-allowlist"),
        ("LogBucket global/old-kept-writer", "in-use"),
        ("LogBucket europe-west1/old-locked", "retention-locked"),
        ("LogBucket global/old-pending", "terminating"),
        ("LogBucket global/old-analytics", "in-use"),
    ] {
        assert_eq!(action(kept), "keep", "{kept}: {:?}", v.get(kept));
        assert!(
            v[kept].1.contains(&reason.to_string()),
            "{kept}: {:?}",
            v[kept]
        );
    }
    let find = |name: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()
            .clone()
    };
    assert!(
        find("global/old-kept-writer")["detail"]
            .as_str()
            .unwrap()
            .contains("LogSink aia-kept"),
        "the kept writer is named"
    );
    assert!(
        find("global/old-analytics")["detail"]
            .as_str()
            .unwrap()
            .contains("Log Analytics"),
        "what may read it is named"
    );
    let orphan = find("global/old-orphan");
    assert_eq!(orphan["identity"]["after"], json!(["LogSink old-export"]));
    assert_eq!(
        orphan["identity"]["resource_name"],
        format!("projects/{PROJECT}/locations/global/buckets/old-orphan")
    );
    assert!(
        orphan["plan_order"].as_u64() > find("old-export")["plan_order"].as_u64(),
        "the sink before the bucket it writes to"
    );
    let gets = |suffix: &str| {
        gcp.requests()
            .iter()
            .filter(|r| r["method"] == "GET" && r["path"].as_str().unwrap().ends_with(suffix))
            .count()
    };
    assert_eq!(gets("/sinks"), 2, "two pages, read once for both kinds");
    assert_eq!(gets("/locations/-/buckets"), 2, "two pages");

    // A recorded snapshot replays to the same verdicts; without the sinks it keeps every
    // bucket.
    let snap = dir.path().join("snap");
    let out = run_with(
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
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(snap.join("gcp/logBuckets.json")).unwrap())
            .unwrap();
    assert!(
        recorded["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["lifecycleState"] == "DELETE_REQUESTED"),
        "lifecycle states recorded by name, as gcloud prints them"
    );
    assert!(snap.join("gcp/logSinks.json").is_file());
    let now = report["evaluated_at"].as_str().unwrap().to_string();
    let replay = dir.path().join("replay.json");
    let replay_run = |path: &Path| {
        run_with(
            &gcp,
            &[
                "run",
                "--policy",
                policy,
                "--snapshot",
                snap.to_str().unwrap(),
                "--now",
                &now,
                "--report",
                path.to_str().unwrap(),
            ],
        )
    };
    let out = replay_run(&replay);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(verdicts(&read_report(&replay)), v);
    std::fs::remove_file(snap.join("gcp/logSinks.json")).unwrap();
    let out = replay_run(&replay);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let without = verdicts(&read_report(&replay));
    assert!(!without.keys().any(|k| k.starts_with("LogSink ")));
    assert!(
        all_keep(&without, "LogBucket "),
        "no bucket is unused without the sinks: {without:?}"
    );

    // Enforce. After the review old-changed is pointed elsewhere, and a new allowed sink
    // writes to old-late-writer: neither is deleted. old-fails' delete is refused, so the
    // bucket it writes to is not tried. The rest go, the sinks before their buckets.
    let plan = dir.path().join("plan.json");
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--now",
            &now,
            "--report",
            plan.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sink_path = format!("/v2/projects/{PROJECT}/sinks/old-changed");
    let (_, body) = Service::http_to(gcp.service.port, "GET", &sink_path, "");
    let mut changed: Value = serde_json::from_str(&body).unwrap();
    changed["destination"] = json!("storage.googleapis.com/elsewhere");
    gcp.seed(json!({"project": PROJECT, "logSinks": [
        changed,
        {"name": "aia-new", "destination": "europe-west1/old-late-writer"}
    ]}));
    gcp.fault(json!({"method": "DELETE", "path": "/sinks/old-fails$", "status": 403}));
    let outcome = dir.path().join("outcome.json");
    let backup = dir.path().join("backups");
    let out = enforce_plan(&gcp, policy, &now, &plan, &backup, &outcome);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one delete failed: {}",
        stderr(&out)
    );
    let o = outcomes(&read_report(&outcome));
    for gone in [
        "LogSink old-export",
        "LogBucket global/old-orphan",
        "LogBucket europe-west1/old-lonely",
    ] {
        assert_eq!(o[gone].0, "deleted", "{gone}: {o:?}");
        assert!(o[gone].2, "{gone}: backed up first");
    }
    assert!(
        o["LogBucket global/old-orphan"].1.contains("undelete"),
        "{o:?}"
    );
    assert_eq!(o["LogSink old-fails"].0, "failed", "{o:?}");
    let (status, reason, _) = &o["LogBucket global/old-after-fail"];
    assert_eq!(status, "skipped");
    assert!(
        reason.contains("LogSink old-fails") && reason.contains("was not deleted"),
        "{reason}"
    );
    let (status, reason, _) = &o["LogSink old-changed"];
    assert_eq!(status, "skipped");
    assert!(reason.contains("changed since review"), "{reason}");
    let (status, reason, _) = &o["LogBucket europe-west1/old-late-writer"];
    assert_eq!(status, "skipped");
    assert!(reason.contains("no longer condemned"), "{reason}");

    assert!(!gcp.exists(&format!("/v2/projects/{PROJECT}/sinks/old-export")));
    assert!(gcp.exists(&format!("/v2/projects/{PROJECT}/sinks/old-fails")));
    assert!(gcp.exists(&sink_path));
    assert_eq!(state(&gcp, "global", "old-orphan"), "DELETE_REQUESTED");
    assert_eq!(
        state(&gcp, "europe-west1", "old-lonely"),
        "DELETE_REQUESTED"
    );
    for (location, kept) in [
        ("global", "old-after-fail"),
        ("europe-west1", "old-late-writer"),
        ("global", "old-kept-writer"),
        ("europe-west1", "old-locked"),
        ("global", "_Default"),
    ] {
        assert_eq!(state(&gcp, location, kept), "ACTIVE", "{kept}");
    }
    let deletes = gcp.deletes();
    let at = |suffix: &str| deletes.iter().position(|p| p.ends_with(suffix)).unwrap();
    assert!(
        at("/sinks/old-export") < at("/buckets/old-orphan"),
        "{deletes:?}"
    );
    assert!(
        !deletes
            .iter()
            .any(|p| p.ends_with("/old-after-fail") || p.ends_with("/old-changed")),
        "not tried: {deletes:?}"
    );
    let backed_up = std::fs::read_dir(&backup).unwrap().count();
    assert!(backed_up > 0);
}

#[test]
fn a_forbidden_logging_api_protects_only_the_logging_kinds() {
    // The whole API forbidden: neither kind judged, the firewall rule still is.
    let (gcp, dir, policy) = logging_project();
    gcp.fault(json!({"path": "^/v2/", "status": 403}));
    let path = dir.path().join("report.json");
    let args = [
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--report",
        path.to_str().unwrap(),
    ];
    let out = run_with(&gcp, &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = read_report(&path);
    let v = verdicts(&report);
    assert!(
        !v.keys()
            .any(|k| k.starts_with("LogSink ") || k.starts_with("LogBucket ")),
        "nothing judged from a forbidden list: {v:?}"
    );
    assert_eq!(v["FirewallRule old-open-ssh"].0, "delete");
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("log sinks")
            && errors.contains("log buckets")
            && errors.contains("forbidden"),
        "{errors}"
    );

    // Only the sinks forbidden: no sink judged, and no bucket is unused.
    let (gcp, dir, policy) = logging_project();
    gcp.fault(json!({"path": "/sinks$", "status": 403}));
    let path = dir.path().join("report.json");
    let args = [
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--report",
        path.to_str().unwrap(),
    ];
    let out = run_with(&gcp, &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = verdicts(&read_report(&path));
    assert!(!v.keys().any(|k| k.starts_with("LogSink ")), "{v:?}");
    assert!(all_keep(&v, "LogBucket "), "{v:?}");
    assert!(
        v["LogBucket europe-west1/old-lonely"]
            .1
            .contains(&"listing-incomplete".to_string())
    );
    assert_eq!(v["FirewallRule old-open-ssh"].0, "delete");
}
