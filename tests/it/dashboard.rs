//! The version dashboard, the success metrics and the 30-day trend, in every report format:
//! the bundled example plus a recorded deploy history (tests/fixtures/dashboard), and earlier
//! runs archived in fake-gcs-server.

use std::path::{Path, PathBuf};

use mail_parser::{MessageParser, MimeHeaders};
use serde_json::Value;

use crate::services::{fake_gcs, free_port, smtp_sink};
use crate::{driftsweep_with, root, stderr, write};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `examples/snapshot` with the fixture's deploy records added.
fn snapshot_with_history(dir: &Path) -> PathBuf {
    let snapshot = dir.join("snapshot");
    copy_dir(&root().join("examples/snapshot"), &snapshot);
    std::fs::copy(
        root().join("tests/fixtures/dashboard/kubernetes/deploy-history.json"),
        snapshot.join("kubernetes/deploy-history.json"),
    )
    .unwrap();
    snapshot
}

struct Outputs {
    json: Value,
    markdown: String,
    html: String,
    preview: String,
    terminal: String,
}

fn run(policy: &str, extra: &[&str], env: &[(&str, &str)]) -> (Outputs, i32) {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = snapshot_with_history(dir.path());
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let mut args = vec![
        "run".to_string(),
        "--policy".to_string(),
        policy.to_string(),
        "--snapshot".to_string(),
        snapshot.to_str().unwrap().to_string(),
        "--now".to_string(),
        "2026-11-29T07:30:00Z".to_string(),
        "--version".to_string(),
        "v1.14.2".to_string(),
        "--report".to_string(),
        path("r.json"),
        "--markdown".to_string(),
        path("r.md"),
        "--html".to_string(),
        path("r.html"),
        "--email-preview".to_string(),
        path("email.html"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = driftsweep_with(&args, env);
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    (
        Outputs {
            json: serde_json::from_str(&read("r.json")).unwrap_or(Value::Null),
            markdown: read("r.md"),
            html: read("r.html"),
            preview: read("email.html"),
            terminal: stderr(&out),
        },
        out.status.code().unwrap_or(-1),
    )
}

/// The part of `text` from `start` up to `end` (or its end).
fn section<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("`{start}` in {text}"));
    let rest = &text[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

#[test]
fn dashboard_and_metrics_in_every_format() {
    let (o, code) = run("policies/aia.yaml", &[], &[]);
    assert_eq!(code, 0, "{}", o.terminal);
    let parts = serde_json::json!({
        "dashboard": o.json["dashboard"],
        "metrics": o.json["metrics"],
    });
    insta::assert_snapshot!("json", serde_json::to_string_pretty(&parts).unwrap());
    insta::assert_snapshot!(
        "markdown",
        section(&o.markdown, "## Version dashboard", "## To delete")
    );
    insta::assert_snapshot!(
        "html",
        section(
            &o.html,
            "<h2 style=\"font-size:18px\">Version dashboard",
            "<h2 style=\"font-size:18px\">To delete"
        )
    );
    insta::assert_snapshot!(
        "email",
        section(
            &o.preview,
            "<h2 style=\"font-size:18px\">Version dashboard",
            "<h2 style=\"font-size:18px\">To delete"
        )
    );
    insta::assert_snapshot!(
        "terminal",
        section(&o.terminal, "  versions", "\n  reports")
    );
}

#[test]
fn the_numbers_follow_from_the_history_and_the_cluster() {
    let (o, code) = run("policies/aia.yaml", &[], &[]);
    assert_eq!(code, 0, "{}", o.terminal);
    let rows = o.json["dashboard"]["services"].as_array().unwrap();
    let row = |env: &str, service: &str| {
        rows.iter()
            .find(|r| r["environment"] == env && r["service"] == service)
            .unwrap()
            .clone()
    };
    // Production runs v1.14.2 everywhere, the API by digest alone (the registry's tag names it).
    let api = row("production", "aia-api");
    assert_eq!(api["deployed_version"], "v1.14.2");
    assert_eq!(
        api["deployed_digest"],
        "sha256:eec39e2fed8fd79b739a9385bfda31c56aa8da3e2ccd3c49f958508d640dae1d"
    );
    assert_eq!(api["matches"], true);
    assert_eq!(
        api["last_deploy"]["record"],
        "driftsweep.deploy.production.v5"
    );
    assert_eq!(api["last_deploy"]["result"], "healthy");
    // Staging: a release candidate, and an orchestrator left behind; the idle worker at zero
    // replicas (an old orchestrator image) is not what serves.
    assert_eq!(
        row("staging", "aia-api")["deployed_version"],
        "v1.15.0-rc.1"
    );
    assert_eq!(
        row("staging", "aia-orchestrator")["deployed_version"],
        "v1.13.0"
    );
    assert_eq!(row("staging", "aia-orchestrator")["matches"], false);

    let metric = |name: &str| {
        o.json["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap()
            .clone()
    };
    // 7 deploys (the rollback is not one), 6 healthy: 85.7 %, under 99.5 %.
    let success = metric("deployment-success-rate");
    assert!((success["value"].as_f64().unwrap() - 600.0 / 7.0).abs() < 1e-9);
    assert_eq!(success["status"], "red");
    assert_eq!(metric("rollback-time-last")["value"], 95.0);
    assert_eq!(metric("rollback-time-last")["status"], "green");
    assert_eq!(metric("rollback-time-median")["value"], 95.0);
    assert_eq!(metric("version-consistency")["value"], 50.0);
    assert_eq!(metric("version-consistency")["status"], "red");
    let orphans = metric("orphaned-resources");
    let s = &o.json["summary"];
    let audited =
        s["delete"].as_u64().unwrap() + s["drift"].as_u64().unwrap() + s["keep"].as_u64().unwrap();
    let expected = s["delete"].as_f64().unwrap() * 100.0 / audited as f64;
    assert!((orphans["value"].as_f64().unwrap() - expected).abs() < 1e-9);
}

fn archived(run_id: &str, at: &str, delete: u64, drift: u64, errors: u64, mode: &str) -> String {
    serde_json::json!({
        "schema": "driftsweep.report/v1",
        "mode": mode,
        "run_id": run_id,
        "started_at": at,
        "evaluated_at": at,
        "summary": {"delete": delete, "drift": drift, "keep": 100, "errors": errors},
        "findings": [],
    })
    .to_string()
}

#[test]
fn the_trend_is_drawn_from_the_archived_runs() {
    let gcs = fake_gcs(&["aia-prod-reports"]);
    for (id, at, delete, drift, errors, mode) in [
        (
            "20261025T073000Z-000001",
            "2026-10-25T07:30:00Z",
            90,
            9,
            0,
            "dry-run",
        ),
        (
            "20261101T073000Z-000002",
            "2026-11-01T07:30:00Z",
            41,
            6,
            0,
            "dry-run",
        ),
        (
            "20261108T073000Z-000003",
            "2026-11-08T07:30:00Z",
            38,
            5,
            2,
            "dry-run",
        ),
        (
            "20261115T073000Z-000004",
            "2026-11-15T07:30:00Z",
            33,
            3,
            0,
            "dry-run",
        ),
        (
            "20261115T093000Z-000005",
            "2026-11-15T09:30:00Z",
            0,
            0,
            0,
            "enforce",
        ),
        (
            "20261122T073000Z-000006",
            "2026-11-22T07:30:00Z",
            30,
            4,
            1,
            "dry-run",
        ),
    ] {
        let day = &at[..10].replace('-', "/");
        let (status, body) = gcs.http_upload(
            "aia-prod-reports",
            &format!("driftsweep/{day}/{id}.json"),
            &archived(id, at, delete, drift, errors, mode),
        );
        assert!(status < 300, "{status} {body}");
    }
    let (status, _) = gcs.http_upload(
        "aia-prod-reports",
        "driftsweep/2026/11/23/20261123T073000Z-000007.json",
        "{not json",
    );
    assert!(status < 300);
    let host = format!("127.0.0.1:{}", gcs.port);
    let sink = smtp_sink();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("policies/aia.yaml")).unwrap();
    let start = text.find("report:").unwrap();
    let end = text.find("deploy:").unwrap();
    let policy = format!(
        "{}report:\n  archive: gs://aia-prod-reports/driftsweep\n  email:\n    to: [aia-platform@example.com]\n    from: driftsweep@example.com\n    smtp: {{host: 127.0.0.1, port: {}, tls: none}}\n{}",
        text[..start].replace("../k8s/aia", root().join("k8s/aia").to_str().unwrap()),
        sink.port,
        &text[end..]
    );
    let policy = write(dir.path(), "policy.yaml", &policy);
    let (o, code) = run(
        policy.to_str().unwrap(),
        &["--email"],
        &[("STORAGE_EMULATOR_HOST", &host)],
    );
    assert_eq!(code, 0, "{}", o.terminal);
    let trend = &o.json["trend"];
    let points: Vec<(String, u64, u64, u64)> = trend["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["at"].as_str().unwrap()[..10].to_string(),
                p["orphans"].as_u64().unwrap(),
                p["drift"].as_u64().unwrap(),
                p["failed_lists"].as_u64().unwrap(),
            )
        })
        .collect();
    let this = (
        "2026-11-29".to_string(),
        o.json["summary"]["delete"].as_u64().unwrap(),
        o.json["summary"]["drift"].as_u64().unwrap(),
        0,
    );
    // The run of 2026-10-25 is older than 30 days; the enforce report is not a dry run.
    assert_eq!(
        points,
        vec![
            ("2026-11-01".to_string(), 41, 6, 0),
            ("2026-11-08".to_string(), 38, 5, 2),
            ("2026-11-15".to_string(), 33, 3, 0),
            ("2026-11-22".to_string(), 30, 4, 1),
            this,
        ]
    );
    assert_eq!(
        trend["skipped"], 1,
        "the unreadable report is counted: {trend}"
    );
    assert!(trend.get("error").is_none(), "{trend}");
    assert!(
        o.terminal.contains("trend: 5 runs since 2026-11-01"),
        "{}",
        o.terminal
    );
    assert!(
        o.terminal.contains("1 archived reports unreadable"),
        "{}",
        o.terminal
    );
    // SVG in the page, PNG in the email (inline, named by cid), a data: URI in the preview.
    assert!(o.html.contains("<svg") && o.html.contains("<polyline"));
    assert!(o.preview.contains("src=\"data:image/png;base64,"));
    let raw = sink.messages().remove(0);
    let message = MessageParser::default().parse(&raw).unwrap();
    let html = message.body_html(0).unwrap();
    assert!(
        html.contains("src=\"cid:trend-chart@driftsweep\""),
        "{html}"
    );
    assert!(html.contains("Version dashboard") && html.contains("Success metrics"));
    let png = message
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.ctype() == "image" && c.subtype() == Some("png"))
        })
        .expect("the chart travels as a PNG part");
    assert_eq!(png.content_id(), Some("trend-chart@driftsweep"));
    assert_eq!(&png.contents()[..8], b"\x89PNG\r\n\x1a\n");
    let json = message
        .parts
        .iter()
        .find(|p| p.attachment_name().is_some_and(|n| n.ends_with(".json")))
        .expect("the JSON report is still attached");
    assert!(!json.contents().is_empty());
}

#[test]
fn an_unreadable_archive_gives_a_trend_that_says_so() {
    // Nothing listens on this port: the trend says why, the report is still written (the
    // run exits 1 because the report could not be archived, as it always has).
    let host = format!("127.0.0.1:{}", free_port());
    let (o, code) = run(
        "policies/aia.yaml",
        &["--archive", "gs://aia-prod-reports/driftsweep"],
        &[("STORAGE_EMULATOR_HOST", &host)],
    );
    assert_eq!(code, 1, "{}", o.terminal);
    let trend = &o.json["trend"];
    assert!(
        trend["error"]
            .as_str()
            .unwrap()
            .contains("cannot read the report archive `gs://aia-prod-reports/driftsweep`"),
        "{trend}"
    );
    assert_eq!(
        trend["points"].as_array().unwrap().len(),
        1,
        "this run alone"
    );
    assert!(o.markdown.contains("cannot read the report archive"));
    assert!(
        o.json["dashboard"].is_object(),
        "the rest of the report is there"
    );
}
