//! The morning report reaches people: a real SMTP exchange with aiosmtpd, and the archive in
//! fake-gcs-server. Delivery never loses the report.

use std::path::Path;

use mail_parser::{MessageParser, MimeHeaders};
use serde_json::Value;

use crate::services::{fake_gcs, free_port, smtp_sink};
use crate::{driftsweep_with, root, stderr, write};

fn policy_with_email(dir: &Path, smtp_port: u16) -> String {
    let text = std::fs::read_to_string(root().join("policies/aia.yaml")).unwrap();
    let manifests = root().join("k8s/aia");
    let start = text.find("report:").expect("aia.yaml has a report section");
    let mut policy = text[..start].replace("../k8s/aia", manifests.to_str().unwrap());
    policy.push_str(&format!(
        "report:\n  email:\n    to: [aia-platform@example.com, oncall@example.com]\n    from: driftsweep@example.com\n    smtp: {{host: 127.0.0.1, port: {smtp_port}, tls: none}}\n"
    ));
    write(dir, "policy.yaml", &policy)
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_report_is_emailed_with_both_parts_and_the_json_attached() {
    let sink = smtp_sink();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_with_email(dir.path(), sink.port);
    let report_path = dir.path().join("report.json");
    let out = driftsweep_with(
        &[
            "run",
            "--policy",
            &policy,
            "--snapshot",
            "examples/snapshot",
            "--report",
            report_path.to_str().unwrap(),
            "--email",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "one message per run");
    let raw = &messages[0];
    let message = MessageParser::default().parse(raw).expect("a MIME message");
    assert_eq!(
        message.subject(),
        Some("[driftsweep] aia-prod dry-run: 44 to delete, 1 drifted, 0 errors")
    );
    assert_eq!(
        message.from().unwrap().first().unwrap().address(),
        Some("driftsweep@example.com")
    );
    let to: Vec<_> = message
        .to()
        .unwrap()
        .iter()
        .filter_map(|a| a.address())
        .collect();
    assert_eq!(to, vec!["aia-platform@example.com", "oncall@example.com"]);
    let text = message.body_text(0).expect("a text/plain part");
    assert!(
        text.contains("44 deletions")
            && text.contains("To delete:")
            && text.contains("feature-login-test"),
        "{text}"
    );
    let html = message.body_html(0).expect("a text/html part");
    assert!(
        html.contains("<table") && !html.contains("<script") && !html.contains("<img"),
        "HTML must be mail-safe"
    );
    assert!(html.contains("44 to delete, 1 drifted"));
    let attachment = message.attachment(0).expect("the JSON report is attached");
    assert!(attachment.attachment_name().unwrap().ends_with(".json"));
    let attached: Value = serde_json::from_slice(attachment.contents()).unwrap();
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(attached, on_disk, "the attachment is the same report");
}

#[test]
fn a_blocked_plan_says_so_in_the_subject() {
    let sink = smtp_sink();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_with_email(dir.path(), sink.port).to_string();
    let text = std::fs::read_to_string(&policy)
        .unwrap()
        .replace("max_deletions: 50", "max_deletions: 5");
    std::fs::write(&policy, text).unwrap();
    let out = driftsweep_with(
        &[
            "run",
            "--policy",
            &policy,
            "--snapshot",
            "examples/snapshot",
            "--email",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let message = MessageParser::default()
        .parse(&sink.messages()[0])
        .unwrap()
        .subject()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("[driftsweep] aia-prod dry-run BLOCKED: 44 to delete"),
        "{message}"
    );
}

#[test]
fn with_the_smtp_server_down_the_report_is_still_written_and_the_run_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_with_email(dir.path(), free_port());
    let report_path = dir.path().join("report.json");
    let md = dir.path().join("report.md");
    let out = driftsweep_with(
        &[
            "run",
            "--policy",
            &policy,
            "--snapshot",
            "examples/snapshot",
            "--report",
            report_path.to_str().unwrap(),
            "--markdown",
            md.to_str().unwrap(),
            "--email",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the report was not emailed"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("after 3 attempts"),
        "{}",
        stderr(&out)
    );
    // Off a terminal, logs are JSON lines Cloud Logging reads: `severity` and `message`.
    let retry_logs: Vec<Value> = stderr(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["severity"] == "WARNING")
        .collect();
    assert_eq!(
        retry_logs.len(),
        2,
        "one log line per retry: {}",
        stderr(&out)
    );
    assert!(
        retry_logs[0]["message"]
            .as_str()
            .unwrap()
            .contains("retrying")
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(report_path).unwrap()).unwrap();
    assert_eq!(report["summary"]["delete"], 44);
    assert!(md.exists());
}

#[test]
fn half_configured_credentials_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_with_email(dir.path(), free_port());
    let out = driftsweep_with(
        &[
            "run",
            "--policy",
            &policy,
            "--snapshot",
            "examples/snapshot",
            "--email",
        ],
        &[("DRIFTSWEEP_SMTP_USERNAME", "bot")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("DRIFTSWEEP_SMTP_PASSWORD"),
        "{}",
        stderr(&out)
    );
    let out = driftsweep_with(
        &[
            "run",
            "--policy",
            "policies/aia.yaml",
            "--snapshot",
            "examples/snapshot",
            "--email",
        ],
        &[],
    );
    // aia.yaml has an email section, with smtp.example.com: resolving works, sending is
    // what fails, so this only checks that --email without a section is explained.
    let _ = out;
    let bare = write(
        dir.path(),
        "bare.yaml",
        "version: 1\nname: t\ngcp:\n  project: p\n  firewall_rules: {allowed: [x]}\n",
    );
    let out = driftsweep_with(
        &[
            "run",
            "--policy",
            bare.to_str().unwrap(),
            "--snapshot",
            "examples/snapshot",
            "--email",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("needs a `report.email` section"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn two_runs_are_archived_and_a_plan_reads_back_from_gs() {
    let gcs = fake_gcs(&["aia-prod-reports"]);
    let host = format!("127.0.0.1:{}", gcs.port);
    let dir = tempfile::tempdir().unwrap();
    let mut archived = Vec::new();
    for i in 0..2 {
        let report_path = dir.path().join(format!("report-{i}.json"));
        let out = driftsweep_with(
            &[
                "run",
                "--policy",
                "policies/aia.yaml",
                "--snapshot",
                "examples/snapshot",
                "--report",
                report_path.to_str().unwrap(),
                "--archive",
                "gs://aia-prod-reports/driftsweep",
            ],
            &[("STORAGE_EMULATOR_HOST", &host)],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let err = stderr(&out);
        let location = err
            .lines()
            .find_map(|l| l.trim().strip_prefix("archived: "))
            .unwrap_or_else(|| panic!("no archive line in {err}"))
            .to_string();
        let date = chrono::Utc::now().format("%Y/%m/%d").to_string();
        assert!(
            location.starts_with(&format!("gs://aia-prod-reports/driftsweep/{date}/")),
            "{location}"
        );
        archived.push((location, report_path));
    }
    assert_ne!(archived[0].0, archived[1].0, "every run has its own object");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // SAFETY of the environment: this test binary sets no other STORAGE_EMULATOR_HOST.
    unsafe { std::env::set_var("STORAGE_EMULATOR_HOST", &host) };
    for (location, path) in &archived {
        let read = runtime.block_on(async {
            let client = driftsweep::report::archive::client().await.unwrap();
            driftsweep::report::archive::read(&client, &location.parse().unwrap())
                .await
                .unwrap()
        });
        let on_disk: driftsweep::report::Report =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(read, on_disk);
    }
}

#[test]
fn an_unreachable_archive_fails_the_run_but_keeps_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let out = driftsweep_with(
        &[
            "run",
            "--policy",
            "policies/aia.yaml",
            "--snapshot",
            "examples/snapshot",
            "--report",
            report_path.to_str().unwrap(),
            "--archive",
            "gs://aia-prod-reports/driftsweep",
        ],
        &[(
            "STORAGE_EMULATOR_HOST",
            &format!("127.0.0.1:{}", free_port()),
        )],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot write `gs://aia-prod-reports/driftsweep/"),
        "{}",
        stderr(&out)
    );
    assert!(report_path.exists());
}
