//! GCP allowlists and the floor of what Google and GKE create.

use chrono::Duration;

use crate::evaluate::testkit::{evaluate, now, policy, reported, verdict};
use crate::evaluate::{Action, Findings, Reason};
use crate::inventory::{Gap, GcpKind, GcpResource, Inventory, Protects, Provider};
use crate::manifests::Desired;

const POLICY: &str = "version: 1\nname: t\ngcp:\n  project: p\n  firewall_rules: {allowed: [app-allow-https]}\n  buckets: {allowed: [p-backups]}\n  service_accounts: {allowed: ['app-*@p.iam.gserviceaccount.com']}\n  ssl_certificates: {allowed: ['app-*']}\n";

fn res(kind: GcpKind, name: &str) -> GcpResource {
    GcpResource {
        created: Some(now() - Duration::days(200)),
        ..GcpResource::of(kind, name)
    }
}

fn run_policy(yaml: &str, resources: Vec<GcpResource>) -> Findings {
    let inv = Inventory {
        gcp: resources,
        ..Inventory::default()
    };
    evaluate(&policy(yaml), &Desired::default(), &inv)
}

fn run(resources: Vec<GcpResource>) -> Findings {
    run_policy(POLICY, resources)
}

fn kept(f: &Findings, kind: GcpKind, name: &str, reason: Reason) {
    let (action, reasons) = verdict(f, kind.as_str(), None, name);
    assert_eq!(action, Action::Keep, "{name}: {reasons:?}");
    assert!(
        reasons.contains(&reason),
        "{name}: want {reason:?} in {reasons:?}"
    );
}

fn deleted(f: &Findings, kind: GcpKind, name: &str) {
    assert_eq!(
        verdict(f, kind.as_str(), None, name),
        (Action::Delete, vec![Reason::NotInAllowlist]),
        "{name}"
    );
}

#[test]
fn google_and_gke_resources_are_kept_whatever_the_allowlist() {
    let mut lb_rule = res(GcpKind::FirewallRule, "a1b2c3d4e5");
    lb_rule.description = Some(r#"{"kubernetes.io/service-name":"app/web"}"#.into());
    let mut labelled = res(GcpKind::Bucket, "dataproc-temp-x");
    labelled
        .labels
        .insert("goog-dataproc-cluster-name".into(), "c".into());
    let f = run(vec![
        res(GcpKind::FirewallRule, "gke-prod-1a2b3c4d-all"),
        res(GcpKind::FirewallRule, "k8s-fw-l7--abc"),
        res(GcpKind::FirewallRule, "k8s2-abc-def"),
        lb_rule,
        res(GcpKind::Bucket, "p_cloudbuild"),
        res(GcpKind::Bucket, "artifacts.p.appspot.com"),
        res(GcpKind::Bucket, "us.artifacts.p.appspot.com"),
        res(GcpKind::Bucket, "gcf-sources-123-us-central1"),
        labelled,
        res(
            GcpKind::IamServiceAccount,
            "123456789012-compute@developer.gserviceaccount.com",
        ),
        res(GcpKind::IamServiceAccount, "p@appspot.gserviceaccount.com"),
        res(
            GcpKind::IamServiceAccount,
            "123@cloudbuild.gserviceaccount.com",
        ),
        res(
            GcpKind::IamServiceAccount,
            "service-123@gcp-sa-artifactregistry.iam.gserviceaccount.com",
        ),
        res(
            GcpKind::IamServiceAccount,
            "service-123@container-engine-robot.iam.gserviceaccount.com",
        ),
        res(GcpKind::SslCertificate, "mcrt-1a2b3c4d-5e6f"),
        res(GcpKind::Certificate, "mcrt-0a1b"),
    ]);
    assert_eq!(f.items.len(), 16);
    for item in &f.items {
        assert_eq!(
            item.action,
            Action::Keep,
            "{} {}: {:?}",
            item.kind,
            item.name,
            item.reasons
        );
        assert!(
            item.reasons.contains(&Reason::SystemManaged),
            "{}",
            item.name
        );
    }
}

#[test]
fn resources_outside_the_allowlist_are_deleted() {
    let f = run(vec![
        res(GcpKind::FirewallRule, "app-allow-https"),
        res(GcpKind::FirewallRule, "default-allow-ssh"),
        res(GcpKind::Bucket, "p-backups"),
        res(GcpKind::Bucket, "p-tmp"),
        res(
            GcpKind::IamServiceAccount,
            "app-api@p.iam.gserviceaccount.com",
        ),
        res(
            GcpKind::IamServiceAccount,
            "old-jenkins@p.iam.gserviceaccount.com",
        ),
        res(GcpKind::SslCertificate, "app-frontend"),
        res(GcpKind::SslCertificate, "legacy-wildcard"),
        res(GcpKind::Certificate, "old-api-cert"),
    ]);
    kept(
        &f,
        GcpKind::FirewallRule,
        "app-allow-https",
        Reason::InAllowlist,
    );
    kept(&f, GcpKind::Bucket, "p-backups", Reason::InAllowlist);
    kept(
        &f,
        GcpKind::IamServiceAccount,
        "app-api@p.iam.gserviceaccount.com",
        Reason::InAllowlist,
    );
    kept(
        &f,
        GcpKind::SslCertificate,
        "app-frontend",
        Reason::InAllowlist,
    );
    deleted(&f, GcpKind::FirewallRule, "default-allow-ssh");
    deleted(&f, GcpKind::Bucket, "p-tmp");
    deleted(
        &f,
        GcpKind::IamServiceAccount,
        "old-jenkins@p.iam.gserviceaccount.com",
    );
    deleted(&f, GcpKind::SslCertificate, "legacy-wildcard");
    deleted(&f, GcpKind::Certificate, "old-api-cert");
}

#[test]
fn buckets_with_objects_or_locked_retention_are_kept() {
    let mut full = res(GcpKind::Bucket, "p-full");
    full.empty = Some(false);
    let mut empty = res(GcpKind::Bucket, "p-empty");
    empty.empty = Some(true);
    let mut locked = res(GcpKind::Bucket, "p-locked");
    locked.retention_locked = true;
    locked.empty = Some(true);
    let f = run(vec![full.clone(), empty, locked.clone()]);
    kept(&f, GcpKind::Bucket, "p-full", Reason::NotEmpty);
    kept(&f, GcpKind::Bucket, "p-locked", Reason::RetentionLocked);
    deleted(&f, GcpKind::Bucket, "p-empty");
    let allow_full = POLICY.replace(
        "{allowed: [p-backups]}",
        "{allowed: [p-backups], delete_non_empty: true}",
    );
    let f = run_policy(&allow_full, vec![full, locked]);
    deleted(&f, GcpKind::Bucket, "p-full");
    kept(&f, GcpKind::Bucket, "p-locked", Reason::RetentionLocked);
}

#[test]
fn certificates_in_use_are_kept() {
    let mut used = res(GcpKind::SslCertificate, "legacy-but-attached");
    used.used_by = vec!["proxy web-https".into()];
    let f = run(vec![used]);
    kept(
        &f,
        GcpKind::SslCertificate,
        "legacy-but-attached",
        Reason::InUse,
    );
}

#[test]
fn young_opted_out_and_unlisted_resources_are_kept() {
    let mut young = res(GcpKind::FirewallRule, "temp-rule");
    young.created = Some(now() - Duration::hours(2));
    let mut opted = res(GcpKind::Bucket, "p-keepme");
    opted.labels.insert("driftsweep-keep".into(), "true".into());
    let mut inv = Inventory {
        gcp: vec![young, opted, res(GcpKind::SslCertificate, "partial")],
        ..Inventory::default()
    };
    inv.gaps.push(Gap {
        provider: Provider::Gcp,
        what: "target HTTPS proxies".into(),
        error: "403".into(),
        protects: Protects::Gcp(GcpKind::SslCertificate),
        failed: true,
    });
    let f = evaluate(&policy(POLICY), &Desired::default(), &inv);
    kept(&f, GcpKind::FirewallRule, "temp-rule", Reason::TooYoung);
    kept(&f, GcpKind::Bucket, "p-keepme", Reason::OptOut);
    kept(
        &f,
        GcpKind::SslCertificate,
        "partial",
        Reason::ListingIncomplete,
    );
}

#[test]
fn kinds_without_a_policy_section_are_not_audited() {
    let f = run_policy(
        "version: 1\nname: t\ngcp:\n  project: p\n  firewall_rules: {allowed: [x]}\n",
        vec![
            res(GcpKind::Bucket, "anything"),
            res(GcpKind::FirewallRule, "stray"),
        ],
    );
    assert!(!reported(&f, "Bucket", None, "anything"));
    deleted(&f, GcpKind::FirewallRule, "stray");
}

#[test]
fn without_a_project_service_agents_are_still_recognised() {
    let f = run_policy(
        "version: 1\nname: t\ngcp:\n  service_accounts: {allowed: ['app-*']}\n",
        vec![
            res(
                GcpKind::IamServiceAccount,
                "service-1@gcp-sa-pubsub.iam.gserviceaccount.com",
            ),
            res(GcpKind::IamServiceAccount, "old@p.iam.gserviceaccount.com"),
        ],
    );
    kept(
        &f,
        GcpKind::IamServiceAccount,
        "service-1@gcp-sa-pubsub.iam.gserviceaccount.com",
        Reason::SystemManaged,
    );
    deleted(
        &f,
        GcpKind::IamServiceAccount,
        "old@p.iam.gserviceaccount.com",
    );
}
