use chrono::{Duration, Utc};

use super::*;
use crate::evaluate::{Identity, Reason};
use crate::report::{Mode, PolicyRef, ReportInput};

fn finding(name: &str, action: Action, uid: &str, rv: &str) -> Finding {
    let identity = Identity {
        api_version: Some("v1".into()),
        uid: Some(uid.into()),
        resource_version: Some(rv.into()),
        ..Identity::default()
    };
    Finding {
        provider: Provider::Kubernetes,
        kind: "ConfigMap".into(),
        namespace: Some("app".into()),
        name: name.into(),
        action,
        reasons: vec![if action == Action::Delete {
            Reason::NotInRepository
        } else {
            Reason::InUse
        }],
        created_at: None,
        identity,
        detail: None,
        drift: Vec::new(),
        plan_order: None,
        outcome: None,
    }
}

fn report(findings: Vec<Finding>, digest: &str, age_hours: i64) -> Report {
    let mut findings = Findings {
        items: findings,
        gaps: vec![],
    };
    let plan = plan::plan(&mut findings, &crate::policy::Safety::default(), Utc::now());
    Report::new(
        ReportInput {
            run_id: "plan-1".into(),
            mode: Mode::DryRun,
            started_at: Utc::now() - Duration::hours(age_hours),
            evaluated_at: Utc::now() - Duration::hours(age_hours),
            policy: PolicyRef {
                name: "p".into(),
                digest: digest.into(),
                path: "p.yaml".into(),
            },
            source: "live".into(),
        },
        findings,
        &plan,
    )
}

fn current(items: Vec<Finding>) -> Findings {
    let mut findings = Findings {
        items,
        gaps: vec![],
    };
    plan::plan(&mut findings, &crate::policy::Safety::default(), Utc::now());
    findings
}

#[test]
fn only_reviewed_unchanged_and_still_condemned_objects_are_selected() {
    let reviewed = report(
        vec![
            finding("same", Action::Delete, "u1", "1"),
            finding("recreated", Action::Delete, "u2", "1"),
            finding("edited", Action::Delete, "u3", "1"),
            finding("now-used", Action::Delete, "u4", "1"),
            finding("gone", Action::Delete, "u5", "1"),
        ],
        "d",
        1,
    );
    let now = current(vec![
        finding("same", Action::Delete, "u1", "1"),
        finding("recreated", Action::Delete, "u2-new", "9"),
        finding("edited", Action::Delete, "u3", "2"),
        finding("now-used", Action::Keep, "u4", "1"),
        finding("unreviewed", Action::Delete, "u6", "1"),
    ]);
    let selection = select(now, Some(&reviewed));
    let names: Vec<&str> = selection
        .deletions
        .iter()
        .map(|&i| selection.findings.items[i].name.as_str())
        .collect();
    assert_eq!(names, ["same"]);
    let reason = |name: &str| {
        selection
            .findings
            .items
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.outcome.as_ref())
            .and_then(|o| o.reason.clone())
            .unwrap_or_default()
    };
    assert!(
        reason("recreated").contains("re-created"),
        "{}",
        reason("recreated")
    );
    assert!(reason("edited").contains("changed since review"));
    assert!(reason("now-used").contains("now kept (in-use)"));
    assert_eq!(reason("unreviewed"), "not in the reviewed plan");
    assert_eq!(reason("gone"), "not in the current inventory");
    let unlisted: Vec<&str> = selection
        .unlisted
        .iter()
        .map(|&i| selection.findings.items[i].name.as_str())
        .collect();
    assert_eq!(
        unlisted,
        ["gone"],
        "the executor checks whether it is really gone"
    );
}

#[test]
fn without_review_the_current_plan_is_selected_in_order() {
    let now = current(vec![
        finding("b", Action::Delete, "u1", "1"),
        finding("a", Action::Delete, "u2", "1"),
        finding("kept", Action::Keep, "u3", "1"),
    ]);
    let selection = select(now, None);
    let names: Vec<&str> = selection
        .deletions
        .iter()
        .map(|&i| selection.findings.items[i].name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn a_plan_that_is_old_from_another_policy_or_blocked_is_refused() {
    let fine = report(vec![finding("a", Action::Delete, "u", "1")], "d", 1);
    assert!(check_plan(&fine, "r.json", "d", 72, Utc::now()).is_ok());
    let old = report(vec![], "d", 100);
    let err = check_plan(&old, "r.json", "d", 72, Utc::now()).unwrap_err();
    assert!(err.to_string().contains("100 hours ago"), "{err}");
    let err = check_plan(&fine, "r.json", "other", 72, Utc::now()).unwrap_err();
    assert!(matches!(err, PlanError::PolicyChanged { .. }));
    let mut blocked = fine.clone();
    blocked.blocked = Some(crate::plan::Blocked {
        gate: "max-deletions".into(),
        limit: 1,
        count: 2,
        message: "over".into(),
    });
    assert!(matches!(
        check_plan(&blocked, "r.json", "d", 72, Utc::now()),
        Err(PlanError::Blocked { .. })
    ));
    let mut enforced = fine;
    enforced.mode = Mode::Enforce;
    assert!(matches!(
        check_plan(&enforced, "r.json", "d", 72, Utc::now()),
        Err(PlanError::NotDryRun { .. })
    ));
}
