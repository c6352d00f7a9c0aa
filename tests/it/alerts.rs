//! Alerts reach Google Chat and Slack webhooks (local receivers here) with the JSON they take;
//! a webhook that fails is in the report and the exit code, and its URL, a credential, is
//! never printed. Deploy alerts are tested with the deploys (`deploy.rs`).

use std::path::Path;

use serde_json::Value;

use crate::services::WebhookSink;
use crate::{driftsweep_with, root, stderr, write};

/// The example policy with an `alerts` section.
fn policy(dir: &Path, alerts: &str) -> String {
    let text = std::fs::read_to_string(root().join("policies/aia.yaml")).unwrap();
    let manifests = root().join("k8s/aia");
    let policy = text.replace("../k8s/aia", manifests.to_str().unwrap()) + alerts;
    write(dir, "policy.yaml", &policy)
        .to_str()
        .unwrap()
        .to_string()
}

fn texts(sink: &WebhookSink) -> Vec<String> {
    sink.messages()
        .iter()
        .map(|(_, body)| body["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_nightly_audit_alerts_both_chats_on_drift_and_planned_deletions() {
    let chat = WebhookSink::start(200);
    let slack = WebhookSink::start(200);
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(
        dir.path(),
        "alerts:\n  google_chat: {}\n  slack: {url_env: AIA_SLACK_URL}\n",
    );
    let report = dir.path().join("report.json");
    let (chat_url, slack_url) = (chat.url("chat-token-123"), slack.url("slack-token-456"));
    let out = driftsweep_with(
        &[
            "run",
            "--policy",
            &policy,
            "--snapshot",
            "examples/snapshot",
            "--report",
            report.to_str().unwrap(),
            "--alert",
        ],
        &[
            ("DRIFTSWEEP_GOOGLE_CHAT_WEBHOOK_URL", &chat_url),
            ("AIA_SLACK_URL", &slack_url),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Google Chat: `text` only, with its link syntax to the full report.
    let messages = chat.messages();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages
            .iter()
            .all(|(path, _)| path == "/hooks/chat-token-123")
    );
    let texts = texts(&chat);
    let report_path = std::path::absolute(&report).unwrap();
    assert!(
        texts[0].starts_with("*aia: 1 object(s) drifted from the repository*"),
        "{}",
        texts[0]
    );
    assert!(
        texts[1].starts_with("*aia: 44 deletion(s) planned*"),
        "{}",
        texts[1]
    );
    for text in &texts {
        assert!(
            text.ends_with(&format!("the full report: {}", report_path.display())),
            "{text}"
        );
    }
    assert_eq!(
        messages[0].1.as_object().unwrap().len(),
        1,
        "Chat gets `text`"
    );
    // Slack: the same text, and a mrkdwn section block.
    let messages = slack.messages();
    assert_eq!(messages.len(), 2);
    for (i, (_, body)) in messages.iter().enumerate() {
        assert_eq!(body["text"], texts[i]);
        assert_eq!(body["blocks"][0]["type"], "section");
        assert_eq!(body["blocks"][0]["text"]["type"], "mrkdwn");
        assert_eq!(body["blocks"][0]["text"]["text"], texts[i]);
    }
    // The report records what was sent.
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let alerts = report["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 4);
    assert!(alerts.iter().all(|a| a["status"] == "sent"), "{alerts:?}");
    let events: Vec<_> = alerts
        .iter()
        .map(|a| a["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["drift", "drift", "deletions-planned", "deletions-planned"]
    );
}

#[test]
fn only_the_events_the_policy_names_alert_and_without_the_flag_none_does() {
    let chat = WebhookSink::start(200);
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), "alerts:\n  google_chat: {}\n  on: [drift]\n");
    let url = chat.url("t");
    let env = [("DRIFTSWEEP_GOOGLE_CHAT_WEBHOOK_URL", url.as_str())];
    let args = [
        "run",
        "--policy",
        &policy,
        "--snapshot",
        "examples/snapshot",
    ];
    let out = driftsweep_with(&args, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(chat.messages().len(), 0, "no `--alert`, no message");
    let out = driftsweep_with(&[&args[..], &["--alert"]].concat(), &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let texts = texts(&chat);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("drifted"), "{texts:?}");
}

#[test]
fn a_webhook_that_answers_500_is_in_the_report_and_the_exit_code_and_its_url_stays_secret() {
    let broken = WebhookSink::start(500);
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), "alerts:\n  slack: {}\n");
    let report = dir.path().join("report.json");
    let url = broken.url("T000-SECRET-TOKEN");
    let url_file = write(dir.path(), "slack-url", &format!("{url}\n"));
    let out = driftsweep_with(
        &[
            "run",
            "--policy",
            &policy,
            "--snapshot",
            "examples/snapshot",
            "--report",
            report.to_str().unwrap(),
            "--alert",
        ],
        &[(
            "DRIFTSWEEP_SLACK_WEBHOOK_URL_FILE",
            url_file.to_str().unwrap(),
        )],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(broken.messages().len(), 2, "both alerts were tried");
    let err = stderr(&out);
    assert!(
        err.contains("error: the drift alert was not sent: the slack webhook (DRIFTSWEEP_SLACK_WEBHOOK_URL) answered 500"),
        "{err}"
    );
    let text = std::fs::read_to_string(&report).unwrap();
    let report: Value = serde_json::from_str(&text).unwrap();
    let alerts = report["alerts"].as_array().unwrap();
    assert!(alerts.iter().all(|a| a["status"] == "failed"), "{alerts:?}");
    assert!(
        alerts[0]["error"]
            .as_str()
            .unwrap()
            .contains("answered 500")
    );
    assert_eq!(
        report["summary"]["delete"], 44,
        "the report itself is whole"
    );
    for output in [err.as_str(), text.as_str(), &crate::stdout(&out)] {
        assert!(
            !output.contains("SECRET-TOKEN"),
            "the webhook URL was printed: {output}"
        );
    }
    // Nothing listens: a connection error, named without the URL.
    let closed = format!(
        "http://127.0.0.1:{}/hooks/T000-SECRET-TOKEN",
        crate::services::free_port()
    );
    let out = driftsweep_with(
        &[
            "run",
            "--policy",
            &policy,
            "--snapshot",
            "examples/snapshot",
            "--alert",
        ],
        &[("DRIFTSWEEP_SLACK_WEBHOOK_URL", &closed)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("alert was not sent"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("SECRET-TOKEN"), "{}", stderr(&out));
}

#[test]
fn alert_settings_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let args = |policy: &str| {
        vec![
            "run".to_string(),
            "--policy".into(),
            policy.to_string(),
            "--snapshot".into(),
            "examples/snapshot".into(),
            "--alert".into(),
        ]
    };
    let call = |policy: &str, env: &[(&str, &str)]| {
        let args = args(policy);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        driftsweep_with(&args, env)
    };
    // No `alerts` section.
    let plain = policy(dir.path(), "");
    let out = call(&plain, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("needs an `alerts` section"),
        "{}",
        stderr(&out)
    );
    // The URL is not set.
    let with = policy(dir.path(), "alerts:\n  google_chat: {}\n");
    let out = call(&with, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("DRIFTSWEEP_GOOGLE_CHAT_WEBHOOK_URL_FILE"),
        "{}",
        stderr(&out)
    );
    // Plain http to anything but this machine.
    let out = call(
        &with,
        &[(
            "DRIFTSWEEP_GOOGLE_CHAT_WEBHOOK_URL",
            "http://chat.example.com/hook",
        )],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not an https:// URL"),
        "{}",
        stderr(&out)
    );
    // A policy with no webhook, or a URL where a variable's name goes.
    let none = policy(dir.path(), "alerts:\n  on: [drift]\n");
    let out = driftsweep_with(&["policy", "check", &none], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("names no webhook"),
        "{}",
        stderr(&out)
    );
    let url = policy(
        dir.path(),
        "alerts:\n  slack: {url_env: 'https://hooks.slack.com/services/T/B/X'}\n",
    );
    let out = driftsweep_with(&["policy", "check", &url], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("alerts.slack.url_env"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_enforce_run_alerts_what_it_deleted() {
    use crate::registry::{Pusher, start_registry};
    let registry = start_registry();
    let push = Pusher::new(registry.port);
    for (tag, days) in [("v1", 400), ("v2", 300), ("v3", 10), ("v4", 5)] {
        push.image("team/app", &[tag], days, tag);
    }
    let host = format!("127.0.0.1:{}", registry.port);
    let chat = WebhookSink::start(200);
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: reg\nregistry:\n  repositories: [{host}/team/app]\n  keep_recent: 2\n  max_age_days: 90\n  plain_http_hosts: ['{host}']\n  protect_in_use: false\nsafety:\n  min_age_hours: 0\nalerts:\n  google_chat: {{}}\n  on: [enforce]\n"
        ),
    );
    let policy = policy.to_str().unwrap();
    let url = chat.url("t");
    let env = [("DRIFTSWEEP_GOOGLE_CHAT_WEBHOOK_URL", url.as_str())];
    let plan = dir.path().join("plan.json");
    let out = driftsweep_with(
        &[
            "run",
            "--policy",
            policy,
            "--report",
            plan.to_str().unwrap(),
            "--alert",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        chat.messages().len(),
        0,
        "`on: [enforce]`: the dry run sends none"
    );
    let report = dir.path().join("enforce.json");
    let backup = dir.path().join("backups");
    let out = driftsweep_with(
        &[
            "run",
            "--enforce",
            "--policy",
            policy,
            "--plan",
            plan.to_str().unwrap(),
            "--backup",
            backup.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--alert",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let texts = texts(&chat);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].starts_with("*reg: enforce ran*\n• 2 deleted"),
        "{}",
        texts[0]
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["alerts"][0]["event"], "enforce");
    assert_eq!(report["alerts"][0]["status"], "sent");
}
