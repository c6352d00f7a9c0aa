//! Rendering rules that matter to the reader: long lists are cut (in email at 50, in the HTML
//! file at 1,000), with the count of what was cut, and the subject carries the state of the
//! run.

use chrono::{TimeZone, Utc};

use super::*;
use crate::evaluate::{Identity, Reason};
use crate::plan::Blocked;

fn report(deletions: usize, blocked: bool, failed: bool) -> Report {
    let items = (0..deletions)
        .map(|i| Finding {
            provider: Provider::Gcp,
            kind: "FirewallRule".into(),
            namespace: None,
            name: format!("rule-{i:03}"),
            action: Action::Delete,
            reasons: vec![Reason::NotInAllowlist],
            created_at: None,
            identity: Identity::default(),
            detail: None,
            drift: Vec::new(),
            plan_order: Some(i + 1),
            outcome: None,
            reviewed_only: false,
            contents: None,
        })
        .collect();
    let gaps = if failed {
        vec![Gap {
            provider: Provider::Gcp,
            what: "firewalls".into(),
            error: "403".into(),
            protects: crate::inventory::Protects::Gcp(crate::inventory::GcpKind::FirewallRule),
            failed: true,
        }]
    } else {
        vec![]
    };
    let plan = Plan {
        deletions: (0..deletions).collect(),
        blocked: blocked.then(|| Blocked {
            gate: "max-deletions".into(),
            limit: 1,
            count: deletions as u64,
            message: "over".into(),
        }),
    };
    let t = Utc
        .with_ymd_and_hms(2026, 11, 29, 7, 30, 0)
        .single()
        .unwrap();
    Report::new(
        ReportInput {
            run_id: "r".into(),
            mode: Mode::DryRun,
            started_at: t,
            evaluated_at: t,
            policy: PolicyRef {
                name: "aia".into(),
                digest: "sha256:x".into(),
                path: "p.yaml".into(),
            },
            source: "snapshot:s".into(),
        },
        Findings { items, gaps },
        &plan,
    )
}

#[test]
fn email_cuts_long_lists_and_says_how_many_are_left_out() {
    let r = report(60, false, false);
    let email = email::html_body(&r);
    assert!(email.contains("rule-049") && !email.contains("rule-050"));
    assert!(email.contains("and 10 more (see the attached JSON report)"));
    let file = html(&r);
    assert!(
        file.contains("rule-059"),
        "the HTML file has up to 1,000 of each list"
    );
    let text = email::plain_text(&r);
    assert!(text.contains("and 10 more"));
}

#[test]
fn reports_of_25000_findings_stay_small_and_say_what_they_leave_to_the_json() {
    let r = report(25_000, true, false);
    let file = html(&r);
    assert!(file.contains(">rule-999<"), "the first 1,000 are shown");
    assert!(!file.contains(">rule-1000<"), "the file cuts each list too");
    assert!(file.contains("and 24000 more (the JSON report lists every one)"));
    assert!(file.len() < 1_000_000, "HTML file of {} bytes", file.len());
    let email = email::html_body(&r);
    assert!(email.contains("and 24950 more (see the attached JSON report)"));
    assert!(email.len() < 100_000, "email body of {} bytes", email.len());
    let text = email::plain_text(&r);
    assert!(text.len() < 20_000, "plain text of {} bytes", text.len());
    // The JSON report keeps all of them.
    assert_eq!(r.findings.len(), 25_000);
}

#[test]
fn subject_names_target_mode_counts_and_state() {
    assert_eq!(
        email::subject(&report(12, false, false), "aia-prod"),
        "[driftsweep] aia-prod dry-run: 12 to delete, 0 drifted, 0 errors"
    );
    assert!(
        email::subject(&report(12, true, false), "p").contains("dry-run BLOCKED: 12 to delete")
    );
    assert!(
        email::subject(&report(1, false, true), "p")
            .contains("dry-run FAILED: 1 to delete, 0 drifted, 1 error")
    );
}

#[test]
fn large_attachments_are_gzipped() {
    let small = email::attachment(&report(3, false, false));
    assert!(small.0.ends_with(".json"));
    let big = email::attachment(&report(3000, false, false));
    assert!(big.0.ends_with(".json.gz"), "{}", big.0);
    let mut json = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&big.2[..]), &mut json)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Report>(&json)
            .unwrap()
            .summary
            .total
            .delete,
        3000
    );
}

#[test]
fn an_enforce_report_lists_every_planned_action_with_its_outcome() {
    use crate::evaluate::{Outcome, OutcomeStatus};
    let mut r = report(4, false, false);
    let outcomes = [
        (OutcomeStatus::Deleted, None, Some("backups/r/x.json")),
        (OutcomeStatus::AlreadyGone, None, None),
        (
            OutcomeStatus::Skipped,
            Some("re-created since review"),
            None,
        ),
        (
            OutcomeStatus::Failed,
            Some("500 InternalError"),
            Some("backups/r/y.json"),
        ),
    ];
    for (f, (status, reason, backup)) in r.findings.iter_mut().zip(outcomes) {
        f.outcome = Some(Outcome {
            status,
            reason: reason.map(Into::into),
            backup: backup.map(Into::into),
        });
    }
    r.mode = Mode::Enforce;
    let r = Report::new(
        ReportInput {
            run_id: r.run_id.clone(),
            mode: Mode::Enforce,
            started_at: r.started_at,
            evaluated_at: r.evaluated_at,
            policy: r.policy.clone(),
            source: "live".into(),
        },
        Findings {
            items: r.findings.clone(),
            gaps: vec![],
        },
        &Plan::default(),
    );
    assert_eq!(r.summary.outcomes["failed"], 1);
    let subject = email::subject(&r, "aia-prod");
    assert!(
        subject.contains("enforce FAILED: 1 deleted, 1 already gone, 1 skipped, 1 failed"),
        "{subject}"
    );
    let md = markdown(&r);
    assert!(
        md.contains("Planned deletions and their outcome (4)"),
        "{md}"
    );
    assert!(md.contains("skipped: re-created since review"));
    assert!(
        md.contains("**1 deleted, 1 already gone, 1 skipped, 1 failed** (4 planned deletions)"),
        "{md}"
    );
    assert!(md.contains("deleted (backup: backups/r/x.json)"));
    let text = terminal(&r);
    assert!(
        text.contains("1 deleted, 1 already gone, 1 skipped, 1 failed"),
        "{text}"
    );
    assert!(text.contains("500 InternalError"));
    assert!(html(&r).contains("failed: 500 InternalError"));
}

#[test]
fn a_namespace_deletion_lists_what_it_takes_along_wherever_deletions_are_listed() {
    let mut r = report(1, false, false);
    let f = &mut r.findings[0];
    f.provider = Provider::Kubernetes;
    f.kind = "Namespace".into();
    f.name = "stray".into();
    f.reasons = vec![Reason::NotInRepository];
    let contents = crate::evaluate::NamespaceContents {
        objects: [("Deployment".to_string(), 1), ("Pod".to_string(), 2)].into(),
        running_pods: 2,
    };
    f.detail = Some(format!(
        "holds {}: deleting the namespace deletes all of it",
        contents.describe()
    ));
    f.contents = Some(contents);
    let words = "holds 1 Deployment, 2 Pods (2 running)";
    assert!(markdown(&r).contains(words), "{}", markdown(&r));
    assert!(html(&r).contains(words));
    assert!(email::plain_text(&r).contains(words));
    let text = terminal(&r);
    assert!(
        text.contains("deleting namespace `stray` also deletes 1 Deployment, 2 Pods (2 running)"),
        "{text}"
    );
    assert!(r.json().contains("\"running_pods\": 2"));
}
