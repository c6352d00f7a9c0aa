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
        reviewed_only: false,
        contents: None,
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
            run_id: "20261129T073000Z-1a2b3c".into(),
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

#[test]
fn a_plan_from_the_future_is_refused_beyond_a_small_clock_skew() {
    let now = Utc::now();
    let mut plan = report(vec![finding("a", Action::Delete, "u", "1")], "d", 0);
    plan.evaluated_at = now + Duration::days(365 * 900);
    let text = check_plan(&plan, "r.json", "d", 72, now)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("evaluated_at") && text.contains("in the future"),
        "{text}"
    );
    // A clock a few minutes ahead on the machine that made the plan is fine.
    plan.evaluated_at = now + Duration::minutes(4);
    plan.started_at = now + Duration::minutes(4);
    assert!(check_plan(&plan, "r.json", "d", 72, now).is_ok());
    plan.evaluated_at = now - Duration::hours(1);
    plan.started_at = now + Duration::hours(2);
    let err = check_plan(&plan, "r.json", "d", 72, now).unwrap_err();
    assert!(err.to_string().contains("started_at"), "{err}");
}

#[test]
fn a_plan_whose_run_id_or_names_could_build_another_path_or_request_is_refused() {
    let now = Utc::now();
    let good = report(vec![finding("a", Action::Delete, "u", "1")], "d", 1);
    assert!(check_plan(&good, "r.json", "d", 72, now).is_ok());

    let mut escape = good.clone();
    escape.run_id = "../../elsewhere".into();
    let err = check_plan(&escape, "r.json", "d", 72, now)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("run_id") && err.contains("../../elsewhere"),
        "{err}"
    );

    let refused = |edit: &dyn Fn(&mut Finding), field: &str| {
        let mut plan = good.clone();
        edit(&mut plan.findings[0]);
        let err = check_plan(&plan, "r.json", "d", 72, now)
            .expect_err(field)
            .to_string();
        assert!(
            err.contains("findings[0]") && err.contains(&format!("`{field}`")),
            "{field}: {err}"
        );
    };
    refused(
        &|f| f.namespace = Some("../kube-system".into()),
        "namespace",
    );
    refused(&|f| f.name = "a/../../b".into(), "name");
    refused(&|f| f.name = "a\0b".into(), "name");
    refused(&|f| f.kind = "ConfigMap/../Secret".into(), "kind");
    refused(
        &|f| f.identity.api_version = Some("v1/../../apis".into()),
        "identity.api_version",
    );
    refused(&|f| f.identity.uid = Some("u/../x".into()), "identity.uid");
    refused(
        &|f| {
            f.provider = Provider::Registry;
            f.kind = "Image".into();
            f.namespace = None;
            f.identity.repository = Some("r.io/team/../../app".into());
            f.identity.digest = Some(format!("sha256:{}", "a".repeat(64)));
            f.name = format!("r.io/team/../../app@sha256:{}", "a".repeat(64));
        },
        "identity.repository",
    );
    refused(
        &|f| {
            f.provider = Provider::Registry;
            f.kind = "Image".into();
            f.namespace = None;
            f.identity.repository = Some("r.io/team/app".into());
            f.identity.digest = Some("sha256:../../x".into());
            f.name = "r.io/team/app@sha256:../../x".into();
        },
        "identity.digest",
    );
    refused(
        &|f| {
            f.provider = Provider::Gcp;
            f.kind = "Bucket".into();
            f.namespace = None;
            f.name = "../b".into();
        },
        "name",
    );

    // What driftsweep itself writes passes: every provider's real names.
    let mut real = good.clone();
    let mut image = finding("x", Action::Delete, "u", "1");
    image.provider = Provider::Registry;
    image.kind = "Image".into();
    image.namespace = None;
    image.identity = Identity {
        repository: Some("us-docker.pkg.dev/aia-prod/aia/aia-api".into()),
        digest: Some(format!("sha256:{}", "0f".repeat(32))),
        tags: Some(vec!["v1.2.3".into(), "latest".into()]),
        ..Identity::default()
    };
    image.name = format!(
        "us-docker.pkg.dev/aia-prod/aia/aia-api@sha256:{}",
        "0f".repeat(32)
    );
    let mut ns = finding(
        "aia-old",
        Action::Delete,
        "9f0c6a52-8d3e-4b1a-9d67-3f2c1e0b7a44",
        "12345",
    );
    ns.kind = "Namespace".into();
    ns.namespace = None;
    let mut sa = finding(
        "old@aia-prod.iam.gserviceaccount.com",
        Action::Delete,
        "u",
        "1",
    );
    sa.provider = Provider::Gcp;
    sa.kind = "IamServiceAccount".into();
    sa.namespace = None;
    sa.identity = Identity::default();
    sa.identity.resource_name =
        Some("projects/aia-prod/serviceAccounts/old@aia-prod.iam.gserviceaccount.com".into());
    let mut bucket = sa.clone();
    bucket.identity = Identity::default();
    bucket.kind = "Bucket".into();
    bucket.name = "aia-prod.old_exports-2024".into();
    let mut cert = sa.clone();
    cert.kind = "Certificate".into();
    cert.name = "aia-old-cert".into();
    cert.identity.resource_name =
        Some("projects/aia-prod/locations/global/certificates/aia-old-cert".into());
    real.findings.extend([image, ns, sa, bucket, cert]);
    if let Err(e) = check_plan(&real, "r.json", "d", 72, now) {
        panic!("{e}");
    }
}

/// An enforce run over `current` findings of `inventory`, against the reviewed plan, with no
/// cluster to delete through: what `select` and `execute` decide on their own.
async fn enforce_offline(
    reviewed: &Report,
    current_findings: Findings,
    inventory: &Inventory,
) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let store = backup::Store::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    let backup = backup::Backup::open(store, &reviewed.run_id).await.unwrap();
    let mut selection = select(current_findings, Some(reviewed));
    let still = || true;
    let exec = Executors {
        cluster: None,
        registry: None,
        gcp: None,
        now: Utc::now(),
        backup: &backup,
        still_leased: &still,
    };
    execute(&mut selection, inventory, &exec).await;
    let plan = plan::Plan {
        deletions: selection.deletions.clone(),
        blocked: None,
    };
    Report::new(
        ReportInput {
            run_id: "20261130T073000Z-abcdef".into(),
            mode: Mode::Enforce,
            started_at: Utc::now(),
            evaluated_at: Utc::now(),
            policy: reviewed.policy.clone(),
            source: "live".into(),
        },
        selection.findings,
        &plan,
    )
}

#[tokio::test]
async fn an_object_injected_into_a_plan_is_never_deleted_nor_counted_and_its_skip_says_why() {
    // The plan was edited to add a ConfigMap of kube-system: it exists, the audit listed it,
    // but the audit does not condemn anything there (it is outside the policy's namespaces).
    let mut injected = finding("coredns", Action::Delete, "u-dns", "7");
    injected.namespace = Some("kube-system".into());
    let reviewed = report(
        vec![finding("orphan", Action::Delete, "u1", "1"), injected],
        "d",
        1,
    );
    let inventory = Inventory {
        kubernetes: Some(crate::evaluate::testkit::objects(vec![
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "orphan", "namespace": "app", "uid": "u1", "resourceVersion": "1"}}),
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "coredns", "namespace": "kube-system", "uid": "u-dns", "resourceVersion": "7"}}),
        ])),
        kubernetes_listed: vec!["ConfigMap".into()],
        ..Inventory::default()
    };
    let outcome = enforce_offline(
        &reviewed,
        current(vec![finding("orphan", Action::Delete, "u1", "1")]),
        &inventory,
    )
    .await;
    let coredns = outcome
        .findings
        .iter()
        .find(|f| f.name == "coredns")
        .unwrap();
    let o = coredns.outcome.as_ref().unwrap();
    assert_eq!(o.status, OutcomeStatus::Skipped);
    let reason = o.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("this run's audit does not condemn it") && !reason.contains("list failed"),
        "{reason}"
    );
    assert!(outcome.errors.is_empty());
    // The summary counts what enforce found and did, not what the plan claimed.
    assert_eq!(outcome.summary.total.delete, 1, "{:?}", outcome.summary);
    assert_eq!(
        outcome.summary.outcomes.get("skipped"),
        Some(&2),
        "{:?}",
        outcome.summary
    );
}

#[tokio::test]
async fn a_planned_object_missing_from_a_complete_list_is_not_deleted_and_says_so() {
    let reviewed = report(
        vec![
            finding("orphan", Action::Delete, "u1", "1"),
            finding("ghost", Action::Delete, "u9", "1"),
        ],
        "d",
        1,
    );
    let listed = Inventory {
        kubernetes: Some(Vec::new()),
        kubernetes_listed: vec!["ConfigMap".into()],
        ..Inventory::default()
    };
    let outcome = enforce_offline(&reviewed, current(vec![]), &listed).await;
    assert_eq!(outcome.summary.total.delete, 0, "{:?}", outcome.summary);
    for f in &outcome.findings {
        let o = f.outcome.as_ref().unwrap();
        assert_ne!(o.status, OutcomeStatus::Deleted, "{f:?}");
    }
}
