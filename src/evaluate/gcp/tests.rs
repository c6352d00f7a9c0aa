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

const ADDRESSES: &str =
    "version: 1\nname: t\ngcp:\n  project: p\n  addresses: {allowed: ['app-*']}\n";

fn address(name: &str, status: Option<&str>) -> GcpResource {
    GcpResource {
        status: status.map(str::to_string),
        ..res(GcpKind::Address, name)
    }
}

#[test]
fn only_a_reserved_address_with_no_users_outside_the_allowlist_is_deleted() {
    let mut attached = address("us-central1/old-vm-ip", Some("IN_USE"));
    attached.used_by = vec!["projects/p/zones/z/instances/vm".into()];
    // Users listed while the status still says RESERVED (a rule being created): in use.
    let mut racing = address("old-racing", Some("RESERVED"));
    racing.used_by = vec!["projects/p/global/forwardingRules/fr".into()];
    // Private service access: Cloud SQL's peering range lists no users.
    let mut peering = address("old-google-managed-services", Some("RESERVED"));
    peering.purpose = Some("VPC_PEERING".into());
    let mut endpoint = address("us-central1/old-internal", Some("RESERVED"));
    endpoint.purpose = Some("GCE_ENDPOINT".into());
    let mut gke = address("a1b2c3d4", Some("RESERVED"));
    gke.description = Some(r#"{"kubernetes.io/service-name":"app/web"}"#.into());
    let f = run_policy(
        ADDRESSES,
        vec![
            address("us-central1/old-ip", Some("RESERVED")),
            address("app-lb", Some("RESERVED")),
            attached,
            racing,
            address("old-reserving", Some("RESERVING")),
            address("old-unknown", None),
            peering,
            endpoint,
            gke,
            address("k8s2-um-abc", Some("RESERVED")),
            // Regional: the floor and the allowlist match the name, not `REGION/NAME`.
            address("us-central1/k8s2-um-regional", Some("RESERVED")),
            address("us-central1/app-regional", Some("RESERVED")),
        ],
    );
    deleted(&f, GcpKind::Address, "us-central1/old-ip");
    deleted(&f, GcpKind::Address, "us-central1/old-internal");
    kept(&f, GcpKind::Address, "app-lb", Reason::InAllowlist);
    kept(
        &f,
        GcpKind::Address,
        "us-central1/app-regional",
        Reason::InAllowlist,
    );
    kept(
        &f,
        GcpKind::Address,
        "us-central1/k8s2-um-regional",
        Reason::SystemManaged,
    );
    for name in [
        "us-central1/old-vm-ip",
        "old-racing",
        "old-reserving",
        "old-unknown",
    ] {
        kept(&f, GcpKind::Address, name, Reason::InUse);
    }
    for name in ["old-google-managed-services", "a1b2c3d4", "k8s2-um-abc"] {
        kept(&f, GcpKind::Address, name, Reason::SystemManaged);
    }
    let detail = |name: &str| {
        f.items
            .iter()
            .find(|x| x.name == name)
            .and_then(|x| x.detail.clone())
            .unwrap_or_default()
    };
    assert!(detail("us-central1/old-vm-ip").contains("instances/vm"));
    assert!(detail("old-reserving").contains("RESERVING"));
    assert!(detail("old-google-managed-services").contains("VPC_PEERING"));
}

#[test]
fn an_address_list_that_failed_protects_only_addresses() {
    let inv = Inventory {
        gcp: vec![
            address("us-central1/old-ip", Some("RESERVED")),
            res(GcpKind::FirewallRule, "old-rule"),
        ],
        gaps: vec![Gap {
            provider: Provider::Gcp,
            what: "static addresses".into(),
            error: "403".into(),
            protects: Protects::Gcp(GcpKind::Address),
            failed: true,
        }],
        ..Inventory::default()
    };
    let yaml = format!("{ADDRESSES}  firewall_rules: {{allowed: [app-*]}}\n");
    let f = evaluate(&policy(&yaml), &Desired::default(), &inv);
    kept(
        &f,
        GcpKind::Address,
        "us-central1/old-ip",
        Reason::ListingIncomplete,
    );
    deleted(&f, GcpKind::FirewallRule, "old-rule");
}

const DISKS: &str = "version: 1\nname: t\ngcp:\n  project: p\n  disks: {allowed: ['app-*']}\n";

fn disk(name: &str) -> GcpResource {
    GcpResource {
        status: Some("READY".into()),
        ..res(GcpKind::Disk, name)
    }
}

#[test]
fn only_a_ready_disk_unattached_for_the_minimum_age_outside_the_allowlist_is_deleted() {
    let mut attached = disk("us-central1-a/old-boot");
    attached.used_by = vec!["projects/p/zones/us-central1-a/instances/vm".into()];
    // Created long ago, detached an hour ago (an instance being replaced): too young.
    let mut detached = disk("us-central1-a/old-detached");
    detached.detached = Some(now() - Duration::hours(1));
    let mut restoring = disk("us-central1-a/old-restoring");
    restoring.status = Some("RESTORING".into());
    let mut pv = disk("us-central1-a/a1b2");
    pv.description = Some(r#"{"kubernetes.io/created-for/pvc/name":"data-0"}"#.into());
    let f = run_policy(
        DISKS,
        vec![
            disk("us-central1-a/old-data"),
            disk("us-central1-a/app-data"),
            attached,
            detached,
            restoring,
            pv,
            disk("us-central1-a/pvc-0f1e2d3c"),
        ],
    );
    deleted(&f, GcpKind::Disk, "us-central1-a/old-data");
    kept(
        &f,
        GcpKind::Disk,
        "us-central1-a/app-data",
        Reason::InAllowlist,
    );
    kept(&f, GcpKind::Disk, "us-central1-a/old-boot", Reason::InUse);
    kept(
        &f,
        GcpKind::Disk,
        "us-central1-a/old-detached",
        Reason::TooYoung,
    );
    kept(
        &f,
        GcpKind::Disk,
        "us-central1-a/old-restoring",
        Reason::InUse,
    );
    kept(
        &f,
        GcpKind::Disk,
        "us-central1-a/a1b2",
        Reason::SystemManaged,
    );
    kept(
        &f,
        GcpKind::Disk,
        "us-central1-a/pvc-0f1e2d3c",
        Reason::SystemManaged,
    );
}

const SNAPSHOTS: &str = "version: 1\nname: t\ngcp:\n  project: p\n  snapshots: {allowed: ['app-release-*'], keep_recent: 2, max_age_days: 30}\n";

fn snap(name: &str, disk: &str, days: i64) -> GcpResource {
    GcpResource {
        status: Some("READY".into()),
        source: Some(disk.into()),
        created: Some(now() - Duration::days(days)),
        ..GcpResource::of(GcpKind::Snapshot, name)
    }
}

fn expired(f: &Findings, name: &str) {
    assert_eq!(
        verdict(f, "Snapshot", None, name),
        (Action::Delete, vec![Reason::Expired]),
        "{name}"
    );
}

#[test]
fn snapshots_keep_the_newest_per_disk_and_the_young_and_delete_the_rest() {
    let f = run_policy(
        SNAPSHOTS,
        vec![
            snap("data-1", "11", 100),
            snap("data-2", "11", 90),
            snap("data-3", "11", 80),
            snap("data-4", "11", 70),
            // Another disk: counted apart, so its only snapshot is among its newest.
            snap("logs-1", "12", 400),
            // Young, but not among the two newest of its disk.
            snap("busy-1", "13", 3),
            snap("busy-2", "13", 2),
            snap("busy-3", "13", 1),
            snap("app-release-1", "11", 500),
        ],
    );
    expired(&f, "data-1");
    expired(&f, "data-2");
    kept(&f, GcpKind::Snapshot, "data-3", Reason::RecentVersion);
    kept(&f, GcpKind::Snapshot, "data-4", Reason::RecentVersion);
    kept(&f, GcpKind::Snapshot, "logs-1", Reason::RecentVersion);
    kept(&f, GcpKind::Snapshot, "busy-1", Reason::WithinMaxAge);
    kept(&f, GcpKind::Snapshot, "app-release-1", Reason::InAllowlist);
    let data = f.items.iter().find(|i| i.name == "data-1").unwrap();
    assert_eq!(
        data.detail.as_deref(),
        Some("100 days old, 3 newer snapshots of its disk")
    );
}

#[test]
fn a_snapshot_a_schedule_expires_or_that_is_not_ready_or_final_or_googles_is_kept() {
    let mut scheduled = snap("auto-1", "11", 400);
    scheduled.managed_by = Some("made by snapshot schedule `daily` of its disk".into());
    let mut creating = snap("creating-1", "11", 401);
    creating.status = Some("CREATING".into());
    let mut unknown = snap("unknown-1", "11", 402);
    unknown.status = None;
    let mut last = snap("ds-final-data-20260101000000", "14", 403);
    last.labels
        .insert("driftsweep-final-snapshot-of".into(), "data".into());
    let mut opted = snap("kept-1", "11", 404);
    opted.labels.insert("driftsweep-keep".into(), "true".into());
    let mut csi = snap("a1b2c3", "11", 405);
    csi.description = Some(r#"{"kubernetes.io/created-for/pv/name":"pv-1"}"#.into());
    let all = vec![
        snap("new-1", "11", 40),
        snap("new-2", "11", 41),
        scheduled,
        creating,
        unknown,
        last.clone(),
        opted,
        csi,
        snap("snapshot-0f1e2d3c-4b5a", "11", 406),
        snap("old-1", "11", 407),
    ];
    let f = run_policy(SNAPSHOTS, all.clone());
    kept(&f, GcpKind::Snapshot, "auto-1", Reason::ManagedElsewhere);
    kept(&f, GcpKind::Snapshot, "creating-1", Reason::InUse);
    kept(&f, GcpKind::Snapshot, "unknown-1", Reason::InUse);
    kept(
        &f,
        GcpKind::Snapshot,
        "ds-final-data-20260101000000",
        Reason::FinalSnapshot,
    );
    kept(&f, GcpKind::Snapshot, "kept-1", Reason::OptOut);
    kept(&f, GcpKind::Snapshot, "a1b2c3", Reason::SystemManaged);
    kept(
        &f,
        GcpKind::Snapshot,
        "snapshot-0f1e2d3c-4b5a",
        Reason::SystemManaged,
    );
    expired(&f, "old-1");

    // Final snapshots go by retention only when the policy says so.
    let yaml = SNAPSHOTS.replace(
        "max_age_days: 30",
        "max_age_days: 30, delete_final_snapshots: true",
    );
    let f = run_policy(&yaml, all.clone());
    kept(
        &f,
        GcpKind::Snapshot,
        "ds-final-data-20260101000000",
        Reason::RecentVersion,
    );
    let mut with_older = all;
    for (year, days) in [(2025, 800), (2024, 900)] {
        let mut older = last.clone();
        older.name = format!("ds-final-data-{year}0101000000");
        older.created = Some(now() - Duration::days(days));
        with_older.push(older);
    }
    let f = run_policy(&yaml, with_older.clone());
    expired(&f, "ds-final-data-20240101000000");
    let f = run_policy(SNAPSHOTS, with_older.clone());
    kept(
        &f,
        GcpKind::Snapshot,
        "ds-final-data-20240101000000",
        Reason::FinalSnapshot,
    );

    // A failed list of snapshots or disks: nothing is proved expired.
    let inv = Inventory {
        gcp: with_older,
        gaps: vec![Gap {
            provider: Provider::Gcp,
            what: "disks (the sources of snapshots)".into(),
            error: "403".into(),
            protects: Protects::Gcp(GcpKind::Snapshot),
            failed: true,
        }],
        ..Inventory::default()
    };
    let f = evaluate(&policy(SNAPSHOTS), &Desired::default(), &inv);
    kept(&f, GcpKind::Snapshot, "old-1", Reason::ListingIncomplete);
}

#[test]
fn snapshots_tied_with_the_last_kept_one_are_all_kept() {
    let f = run_policy(
        SNAPSHOTS,
        vec![
            snap("a", "11", 100),
            snap("b", "11", 100),
            snap("c", "11", 100),
            snap("d", "11", 200),
        ],
    );
    for n in ["a", "b", "c"] {
        kept(&f, GcpKind::Snapshot, n, Reason::RecentVersion);
    }
    expired(&f, "d");
}

const FORWARDING_RULES: &str =
    "version: 1\nname: t\ngcp:\n  project: p\n  forwarding_rules: {allowed: ['app-*']}\n";

fn forwarding_rule(name: &str, scheme: Option<&str>) -> GcpResource {
    GcpResource {
        purpose: scheme.map(str::to_string),
        ..res(GcpKind::ForwardingRule, name)
    }
}

#[test]
fn only_an_external_forwarding_rule_outside_the_allowlist_and_the_floor_is_deleted() {
    let mut ingress = forwarding_rule("a0b1c2", Some("EXTERNAL"));
    ingress.description = Some(r#"{"kubernetes.io/ingress-name":"app/web"}"#.into());
    let f = run_policy(
        FORWARDING_RULES,
        vec![
            forwarding_rule("old-web", Some("EXTERNAL_MANAGED")),
            forwarding_rule("us-central1/old-regional", Some("EXTERNAL")),
            forwarding_rule("app-web", Some("EXTERNAL_MANAGED")),
            forwarding_rule("us-central1/app-regional", Some("EXTERNAL")),
            // A route's next hop or a service attachment may name these: neither is listed.
            forwarding_rule("us-central1/old-ilb", Some("INTERNAL")),
            forwarding_rule("us-central1/old-l7-ilb", Some("INTERNAL_MANAGED")),
            forwarding_rule("old-unknown-scheme", None),
            forwarding_rule("k8s2-fr-abc", Some("EXTERNAL")),
            forwarding_rule("us-central1/k8s2-fs-regional", Some("EXTERNAL")),
            forwarding_rule("gkegw1-abc-web", Some("EXTERNAL_MANAGED")),
            ingress,
        ],
    );
    deleted(&f, GcpKind::ForwardingRule, "old-web");
    deleted(&f, GcpKind::ForwardingRule, "us-central1/old-regional");
    kept(&f, GcpKind::ForwardingRule, "app-web", Reason::InAllowlist);
    kept(
        &f,
        GcpKind::ForwardingRule,
        "us-central1/app-regional",
        Reason::InAllowlist,
    );
    for name in [
        "us-central1/old-ilb",
        "us-central1/old-l7-ilb",
        "old-unknown-scheme",
    ] {
        kept(&f, GcpKind::ForwardingRule, name, Reason::InUse);
    }
    for name in [
        "k8s2-fr-abc",
        "us-central1/k8s2-fs-regional",
        "gkegw1-abc-web",
        "a0b1c2",
    ] {
        kept(&f, GcpKind::ForwardingRule, name, Reason::SystemManaged);
    }
    let ilb = f
        .items
        .iter()
        .find(|x| x.name == "us-central1/old-ilb")
        .and_then(|x| x.detail.clone())
        .unwrap_or_default();
    assert!(ilb.contains("route"), "{ilb}");
}

const CHAIN: &str = "version: 1\nname: t\ngcp:\n  project: p\n  forwarding_rules: {allowed: ['app-*']}\n  target_proxies: {allowed: ['app-*']}\n";

fn proxy(name: &str, referrers: &[&str]) -> GcpResource {
    GcpResource {
        referrers: referrers
            .iter()
            .map(|r| crate::inventory::Referrer {
                kind: GcpKind::ForwardingRule,
                name: r.to_string(),
            })
            .collect(),
        ..res(GcpKind::TargetProxy, name)
    }
}

#[test]
fn a_proxy_is_kept_by_a_kept_forwarding_rule_and_deleted_after_an_orphan_one() {
    // The proxies come first in the inventory: the verdicts must not depend on that order.
    let f = run_policy(
        CHAIN,
        vec![
            proxy("https/web", &["app-web"]),
            proxy("us-central1/https/old", &["us-central1/old-fr"]),
            proxy("http/shared", &["old-global", "us-central1/old-ilb"]),
            proxy("tcp/lonely", &[]),
            proxy("https/app-kept", &["old-global"]),
            proxy("http/unjudged", &["not-listed"]),
            GcpResource {
                description: Some(r#"{"kubernetes.io/ingress-name":"app/web"}"#.into()),
                ..proxy("https/a0b1c2", &[])
            },
            forwarding_rule("app-web", Some("EXTERNAL_MANAGED")),
            forwarding_rule("us-central1/old-fr", Some("EXTERNAL_MANAGED")),
            forwarding_rule("old-global", Some("EXTERNAL_MANAGED")),
            forwarding_rule("us-central1/old-ilb", Some("INTERNAL_MANAGED")),
        ],
    );
    kept(&f, GcpKind::TargetProxy, "https/web", Reason::InUse);
    // One kept referrer (the internal rule) is enough.
    kept(&f, GcpKind::TargetProxy, "http/shared", Reason::InUse);
    kept(
        &f,
        GcpKind::TargetProxy,
        "https/app-kept",
        Reason::InAllowlist,
    );
    // A referrer nothing judged (its rule is not in the inventory) keeps it.
    kept(&f, GcpKind::TargetProxy, "http/unjudged", Reason::InUse);
    kept(
        &f,
        GcpKind::TargetProxy,
        "https/a0b1c2",
        Reason::SystemManaged,
    );
    deleted(&f, GcpKind::TargetProxy, "us-central1/https/old");
    deleted(&f, GcpKind::TargetProxy, "tcp/lonely");
    let finding = |name: &str| f.items.iter().find(|x| x.name == name).unwrap();
    assert!(
        finding("https/web")
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("ForwardingRule app-web"),
        "the referrer is named"
    );
    assert_eq!(
        finding("us-central1/https/old").identity.after,
        ["ForwardingRule us-central1/old-fr"]
    );
    assert!(finding("tcp/lonely").identity.after.is_empty());
    assert!(finding("https/app-kept").identity.after.is_empty());
}

fn part(kind: GcpKind, name: &str, referrers: &[(GcpKind, &str)]) -> GcpResource {
    GcpResource {
        referrers: referrers
            .iter()
            .map(|(kind, r)| crate::inventory::Referrer {
                kind: *kind,
                name: r.to_string(),
            })
            .collect(),
        ..res(kind, name)
    }
}

#[test]
fn a_whole_chain_is_kept_by_its_kept_rule_and_an_orphan_chain_goes_top_down() {
    use GcpKind::{
        BackendBucket, BackendService, ForwardingRule, HealthCheck, TargetProxy, UrlMap,
    };
    let policy = format!(
        "{CHAIN}  url_maps: {{allowed: ['app-*']}}\n  backend_services: {{allowed: ['app-*']}}\n  backend_buckets: {{allowed: ['app-*']}}\n  health_checks: {{allowed: ['app-*']}}\n"
    );
    // Bottom first in the inventory: the verdicts must not depend on that order.
    let f = run_policy(
        &policy,
        vec![
            part(HealthCheck, "hc-web", &[(BackendService, "s-web")]),
            part(HealthCheck, "hc-old", &[(BackendService, "s-old")]),
            part(
                HealthCheck,
                "hc-shared",
                &[(BackendService, "s-web"), (BackendService, "s-old")],
            ),
            part(BackendService, "s-web", &[(UrlMap, "m-web")]),
            part(BackendService, "s-old", &[(UrlMap, "m-old")]),
            part(BackendBucket, "assets-old", &[(UrlMap, "m-old")]),
            part(
                BackendBucket,
                "assets",
                &[(UrlMap, "m-web"), (UrlMap, "m-old")],
            ),
            part(UrlMap, "m-web", &[(TargetProxy, "https/web")]),
            part(UrlMap, "m-old", &[(TargetProxy, "https/old")]),
            part(TargetProxy, "https/web", &[(ForwardingRule, "app-web")]),
            part(TargetProxy, "https/old", &[(ForwardingRule, "old-fr")]),
            forwarding_rule("app-web", Some("EXTERNAL_MANAGED")),
            forwarding_rule("old-fr", Some("EXTERNAL_MANAGED")),
        ],
    );
    for (kind, name) in [
        (TargetProxy, "https/web"),
        (UrlMap, "m-web"),
        (BackendService, "s-web"),
        (BackendBucket, "assets"),
        (HealthCheck, "hc-web"),
        (HealthCheck, "hc-shared"),
    ] {
        kept(&f, kind, name, Reason::InUse);
    }
    let finding = |name: &str| f.items.iter().find(|x| x.name == name).unwrap();
    for (kind, name, after) in [
        (TargetProxy, "https/old", "ForwardingRule old-fr"),
        (UrlMap, "m-old", "TargetProxy https/old"),
        (BackendService, "s-old", "UrlMap m-old"),
        (BackendBucket, "assets-old", "UrlMap m-old"),
        (HealthCheck, "hc-old", "BackendService s-old"),
    ] {
        deleted(&f, kind, name);
        assert_eq!(finding(name).identity.after, [after], "{name}");
    }
    assert!(
        finding("hc-shared")
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("BackendService s-web"),
        "the kept referrer is named"
    );
    // Plan order is the chain's, top-down, whatever the kinds' names sort as.
    let ranks: Vec<u8> = [
        ForwardingRule,
        TargetProxy,
        UrlMap,
        BackendService,
        HealthCheck,
    ]
    .map(crate::inventory::gcp::chain_rank)
    .to_vec();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
}

#[test]
fn a_forwarding_rule_list_that_failed_keeps_every_proxy() {
    let inv = Inventory {
        gcp: vec![proxy("tcp/lonely", &[])],
        gaps: vec![Gap {
            provider: Provider::Gcp,
            what: "forwarding rules".into(),
            error: "403".into(),
            protects: Protects::Gcp(GcpKind::TargetProxy),
            failed: true,
        }],
        ..Inventory::default()
    };
    let f = evaluate(&policy(CHAIN), &Desired::default(), &inv);
    kept(
        &f,
        GcpKind::TargetProxy,
        "tcp/lonely",
        Reason::ListingIncomplete,
    );
}

const SQL: &str = "version: 1\nname: t\ngcp:\n  project: p\n  sql_instances: {allowed: ['aia-*'], delete_databases: true}\n";

fn sql_instance(name: &str) -> GcpResource {
    GcpResource {
        status: Some("RUNNABLE".into()),
        sql: Some(Box::new(crate::inventory::SqlFacts {
            project: "p".into(),
            connection_name: Some(format!("p:us-central1:{name}")),
            addresses: vec!["10.9.8.7".into()],
            instance_type: Some("CLOUD_SQL_INSTANCE".into()),
            ..Default::default()
        })),
        ..res(GcpKind::SqlInstance, name)
    }
}

fn workload(kind: &str, name: &str, refs: &[&str]) -> crate::inventory::KubeObject {
    crate::inventory::KubeObject {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        namespace: Some("aia-production".into()),
        name: name.into(),
        cloud_sql_refs: refs.iter().map(|r| r.to_string()).collect(),
        ..Default::default()
    }
}

fn run_sql(
    yaml: &str,
    kubernetes: Option<Vec<crate::inventory::KubeObject>>,
    resources: Vec<GcpResource>,
) -> Findings {
    let inv = Inventory {
        gcp: resources,
        kubernetes,
        ..Inventory::default()
    };
    evaluate(&policy(yaml), &Desired::default(), &inv)
}

#[test]
fn a_cloud_sql_instance_is_deleted_only_when_nothing_could_still_need_it() {
    let mut protected = sql_instance("old-protected");
    protected.sql.as_mut().unwrap().deletion_protection = true;
    let mut primary = sql_instance("old-primary");
    primary.used_by = vec!["read replica old-primary-r".into()];
    let mut replica = sql_instance("old-primary-r");
    let facts = replica.sql.as_mut().unwrap();
    facts.primary = Some("old-primary".into());
    facts.instance_type = Some("READ_REPLICA_INSTANCE".into());
    let mut stopped = sql_instance("old-maintenance");
    stopped.status = Some("MAINTENANCE".into());
    let mut external = sql_instance("old-external");
    external.sql.as_mut().unwrap().instance_type = Some("ON_PREMISES_INSTANCE".into());
    let cluster = vec![
        workload("Deployment", "api", &["p:us-central1:old-proxied"]),
        workload("CronJob", "report", &["10.9.8.7"]),
        workload("Deployment", "other", &["p:europe-west1:old-moved"]),
        // An application's DB_HOST in a ConfigMap.
        crate::inventory::KubeObject {
            api_version: "v1".into(),
            ..workload("ConfigMap", "db", &["p:us-central1:old-configured"])
        },
    ];
    let mut by_ip = sql_instance("old-by-ip");
    by_ip.sql.as_mut().unwrap().addresses = vec!["10.9.8.7".into()];
    let mut others = vec![
        sql_instance("old-orphan"),
        sql_instance("aia-main"),
        sql_instance("old-proxied"),
        sql_instance("old-moved"),
        sql_instance("old-configured"),
        protected,
        primary,
        replica,
        stopped,
        external,
        by_ip,
    ];
    // Only `old-orphan` has no address a workload names.
    for r in &mut others {
        if r.name != "old-by-ip" {
            r.sql.as_mut().unwrap().addresses = vec![format!("10.0.0.{}", r.name.len())];
        }
    }
    let f = run_sql(SQL, Some(cluster.clone()), others.clone());
    deleted(&f, GcpKind::SqlInstance, "old-orphan");
    kept(&f, GcpKind::SqlInstance, "aia-main", Reason::InAllowlist);
    kept(&f, GcpKind::SqlInstance, "old-proxied", Reason::InUse);
    kept(&f, GcpKind::SqlInstance, "old-moved", Reason::InUse);
    kept(&f, GcpKind::SqlInstance, "old-configured", Reason::InUse);
    kept(&f, GcpKind::SqlInstance, "old-by-ip", Reason::InUse);
    kept(
        &f,
        GcpKind::SqlInstance,
        "old-protected",
        Reason::DeletionProtected,
    );
    kept(&f, GcpKind::SqlInstance, "old-primary", Reason::InUse);
    kept(
        &f,
        GcpKind::SqlInstance,
        "old-primary-r",
        Reason::ReadReplica,
    );
    kept(&f, GcpKind::SqlInstance, "old-maintenance", Reason::InUse);
    kept(
        &f,
        GcpKind::SqlInstance,
        "old-external",
        Reason::SystemManaged,
    );
    let proxied = f.items.iter().find(|x| x.name == "old-proxied").unwrap();
    assert_eq!(
        proxied.detail.as_deref(),
        Some("connected to by Deployment aia-production/api")
    );

    // Off by default: the same orphan is kept without `delete_databases: true`.
    let off = SQL.replace(", delete_databases: true", "");
    let f = run_sql(&off, Some(cluster.clone()), others.clone());
    kept(
        &f,
        GcpKind::SqlInstance,
        "old-orphan",
        Reason::DatabaseDeletionDisabled,
    );

    // A GCP-only audit, or a cluster read with a gap, cannot show what connects to it.
    let f = run_sql(SQL, None, others.clone());
    kept(
        &f,
        GcpKind::SqlInstance,
        "old-orphan",
        Reason::ReferencesUnknown,
    );
    let inv = Inventory {
        gcp: others.clone(),
        kubernetes: Some(cluster.clone()),
        gaps: vec![Gap {
            provider: Provider::Kubernetes,
            what: "CronJobs in all namespaces".into(),
            error: "403".into(),
            protects: Protects::KubernetesKind("CronJob".into()),
            failed: true,
        }],
        ..Inventory::default()
    };
    let f = evaluate(&policy(SQL), &Desired::default(), &inv);
    kept(
        &f,
        GcpKind::SqlInstance,
        "old-orphan",
        Reason::ReferencesUnknown,
    );
    // Unless the policy audits the instances alone.
    let alone = SQL.replace(
        "delete_databases: true",
        "delete_databases: true, protect_in_use: false",
    );
    let f = run_sql(&alone, None, others);
    deleted(&f, GcpKind::SqlInstance, "old-orphan");
}

const LOGGING: &str = "version: 1\nname: t\ngcp:\n  project: p\n  log_sinks: {allowed: ['app-*']}\n  log_buckets: {allowed: ['app-*']}\n";

fn sink(name: &str) -> GcpResource {
    res(GcpKind::LogSink, name)
}

fn log_bucket(name: &str, sinks: &[&str]) -> GcpResource {
    GcpResource {
        status: Some("ACTIVE".into()),
        referrers: sinks
            .iter()
            .map(|s| crate::inventory::Referrer {
                kind: GcpKind::LogSink,
                name: s.to_string(),
            })
            .collect(),
        ..res(GcpKind::LogBucket, name)
    }
}

#[test]
fn a_log_sink_outside_the_allowlist_is_deleted_and_the_projects_own_are_kept() {
    let f = run_policy(
        LOGGING,
        vec![
            sink("_Default"),
            sink("_Required"),
            sink("app-audit"),
            sink("old-export"),
        ],
    );
    kept(&f, GcpKind::LogSink, "_Default", Reason::SystemManaged);
    kept(&f, GcpKind::LogSink, "_Required", Reason::SystemManaged);
    kept(&f, GcpKind::LogSink, "app-audit", Reason::InAllowlist);
    deleted(&f, GcpKind::LogSink, "old-export");
}

#[test]
fn a_log_sink_list_that_failed_keeps_every_sink() {
    let inv = Inventory {
        gcp: vec![sink("old-export")],
        gaps: vec![Gap {
            provider: Provider::Gcp,
            what: "log sinks".into(),
            error: "403".into(),
            protects: Protects::Gcp(GcpKind::LogSink),
            failed: true,
        }],
        ..Inventory::default()
    };
    let f = evaluate(&policy(LOGGING), &Desired::default(), &inv);
    kept(
        &f,
        GcpKind::LogSink,
        "old-export",
        Reason::ListingIncomplete,
    );
}

#[test]
fn a_log_bucket_is_kept_by_its_floor_lock_state_and_kept_sinks_and_deleted_after_orphan_ones() {
    let mut locked = log_bucket("global/old-locked", &[]);
    locked.retention_locked = true;
    let mut pending = log_bucket("global/old-pending", &[]);
    pending.status = Some("DELETE_REQUESTED".into());
    let mut creating = log_bucket("us-central1/old-creating", &[]);
    creating.status = Some("CREATING".into());
    let mut unknown = log_bucket("global/old-unknown", &[]);
    unknown.status = None;
    let mut unrecorded = log_bucket("global/old-unrecorded", &[]);
    unrecorded.used_by = vec!["log sinks (not recorded: logSinks.json)".into()];
    // The buckets come first in the inventory: the verdicts must not depend on that order.
    let f = run_policy(
        LOGGING,
        vec![
            log_bucket("global/_Default", &[]),
            log_bucket("global/_Required", &[]),
            log_bucket("global/app-logs", &[]),
            log_bucket("europe-west1/app-eu", &[]),
            locked,
            pending,
            creating,
            unknown,
            unrecorded,
            log_bucket("global/old-kept-writer", &["app-audit"]),
            log_bucket("global/old-shared", &["old-export", "_Default"]),
            log_bucket("global/old-unjudged", &["not-listed"]),
            log_bucket("global/old-orphan", &["old-export"]),
            log_bucket("europe-west1/old-lonely", &[]),
            sink("_Default"),
            sink("app-audit"),
            sink("old-export"),
        ],
    );
    let k = GcpKind::LogBucket;
    kept(&f, k, "global/_Default", Reason::SystemManaged);
    kept(&f, k, "global/_Required", Reason::SystemManaged);
    kept(&f, k, "global/app-logs", Reason::InAllowlist);
    kept(&f, k, "europe-west1/app-eu", Reason::InAllowlist);
    kept(&f, k, "global/old-locked", Reason::RetentionLocked);
    kept(&f, k, "global/old-pending", Reason::Terminating);
    kept(&f, k, "us-central1/old-creating", Reason::InUse);
    kept(&f, k, "global/old-unknown", Reason::InUse);
    kept(&f, k, "global/old-unrecorded", Reason::InUse);
    kept(&f, k, "global/old-kept-writer", Reason::InUse);
    // One kept writer (the floor's sink) is enough.
    kept(&f, k, "global/old-shared", Reason::InUse);
    // A writer nothing judged (its sink is not in the inventory) keeps it.
    kept(&f, k, "global/old-unjudged", Reason::InUse);
    deleted(&f, k, "global/old-orphan");
    deleted(&f, k, "europe-west1/old-lonely");
    let finding = |name: &str| f.items.iter().find(|x| x.name == name).unwrap();
    assert!(
        finding("global/old-kept-writer")
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("LogSink app-audit"),
        "the writer is named"
    );
    assert!(
        finding("global/old-locked")
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("locked"),
    );
    assert_eq!(
        finding("global/old-orphan").identity.after,
        ["LogSink old-export"]
    );
    assert!(finding("europe-west1/old-lonely").identity.after.is_empty());
}

#[test]
fn a_log_bucket_is_never_unused_while_its_sinks_are_unaudited_or_unread() {
    // The sinks are not audited: the one writing to the bucket is judged by nobody.
    let buckets_only =
        "version: 1\nname: t\ngcp:\n  project: p\n  log_buckets: {allowed: ['app-*']}\n";
    let f = run_policy(
        buckets_only,
        vec![
            log_bucket("global/old-orphan", &["old-export"]),
            sink("old-export"),
        ],
    );
    kept(&f, GcpKind::LogBucket, "global/old-orphan", Reason::InUse);
    // The sinks (read with the buckets) failed: every bucket kept.
    let inv = Inventory {
        gcp: vec![log_bucket("europe-west1/old-lonely", &[])],
        gaps: vec![Gap {
            provider: Provider::Gcp,
            what: "log sinks (what writes to log buckets)".into(),
            error: "403".into(),
            protects: Protects::Gcp(GcpKind::LogBucket),
            failed: true,
        }],
        ..Inventory::default()
    };
    let f = evaluate(&policy(LOGGING), &Desired::default(), &inv);
    kept(
        &f,
        GcpKind::LogBucket,
        "europe-west1/old-lonely",
        Reason::ListingIncomplete,
    );
}

const SQL_BACKUPS: &str = "version: 1\nname: t\ngcp:\n  project: p\n  sql_backups: {allowed: ['aia-prod'], keep_recent: 2, max_age_days: 30}\n";

fn backup(name: &str, instance: &str, days: i64) -> GcpResource {
    GcpResource {
        status: Some("SUCCESSFUL".into()),
        purpose: Some("AUTOMATED".into()),
        source: Some(instance.into()),
        created: Some(now() - Duration::days(days)),
        ..GcpResource::of(GcpKind::SqlBackup, name)
    }
}

fn backup_expired(f: &Findings, name: &str) {
    assert_eq!(
        verdict(f, "SqlBackup", None, name),
        (Action::Delete, vec![Reason::Expired]),
        "{name}"
    );
}

#[test]
fn sql_backups_keep_the_newest_successful_per_instance_and_the_young() {
    let mut failed = backup("db/5", "db", 1);
    failed.status = Some("FAILED".into());
    let mut deleted_twin = backup("db/backups/old", "db (deleted 2025-01-01T00:00:00Z)", 400);
    deleted_twin.purpose = Some("ON_DEMAND".into());
    let f = run_policy(
        SQL_BACKUPS,
        vec![
            backup("db/1", "db", 100),
            backup("db/2", "db", 90),
            backup("db/3", "db", 80),
            // Tied with db/3: kept with it.
            backup("db/4", "db", 80),
            // Failed: neither judged nor counted among the newest.
            failed,
            // Another incarnation of `db`: counted apart, its only backup kept.
            deleted_twin,
            backup("aia-prod/1", "aia-prod", 500),
            backup("busy/1", "busy", 3),
            backup("busy/2", "busy", 2),
            backup("busy/3", "busy", 1),
        ],
    );
    backup_expired(&f, "db/1");
    backup_expired(&f, "db/2");
    kept(&f, GcpKind::SqlBackup, "db/3", Reason::RecentVersion);
    kept(&f, GcpKind::SqlBackup, "db/4", Reason::RecentVersion);
    kept(&f, GcpKind::SqlBackup, "db/5", Reason::InUse);
    kept(
        &f,
        GcpKind::SqlBackup,
        "db/backups/old",
        Reason::RecentVersion,
    );
    kept(&f, GcpKind::SqlBackup, "aia-prod/1", Reason::InAllowlist);
    kept(&f, GcpKind::SqlBackup, "busy/1", Reason::WithinMaxAge);
    let old = f.items.iter().find(|i| i.name == "db/1").unwrap();
    assert_eq!(
        old.detail.as_deref(),
        Some("100 days old, 3 newer successful backups of instance `db`")
    );
}

#[test]
fn final_and_own_sql_backups_are_kept_unless_opted_in_and_unknown_types_always() {
    let mut last = backup("gone/backups/f", "gone", 400);
    last.purpose = Some("FINAL".into());
    let mut own = backup("gone/backups/o", "gone", 410);
    own.purpose = Some("ON_DEMAND".into());
    own.description = Some("driftsweep: backup of gone before deleting it".into());
    let mut strange = backup("gone/backups/s", "gone", 420);
    strange.purpose = Some("7".into());
    let all = vec![
        backup("gone/backups/n1", "gone", 100),
        backup("gone/backups/n2", "gone", 101),
        last,
        own,
        strange,
        backup("gone/backups/x", "gone", 430),
    ];
    let f = run_policy(SQL_BACKUPS, all.clone());
    kept(
        &f,
        GcpKind::SqlBackup,
        "gone/backups/f",
        Reason::FinalBackup,
    );
    kept(
        &f,
        GcpKind::SqlBackup,
        "gone/backups/o",
        Reason::FinalBackup,
    );
    kept(
        &f,
        GcpKind::SqlBackup,
        "gone/backups/s",
        Reason::SystemManaged,
    );
    backup_expired(&f, "gone/backups/x");
    let yaml = SQL_BACKUPS.replace(
        "max_age_days: 30",
        "max_age_days: 30, delete_final_backups: true",
    );
    let f = run_policy(&yaml, all.clone());
    backup_expired(&f, "gone/backups/f");
    backup_expired(&f, "gone/backups/o");
    kept(
        &f,
        GcpKind::SqlBackup,
        "gone/backups/s",
        Reason::SystemManaged,
    );

    // A failed list of backups: none is proved expired.
    let inv = Inventory {
        gcp: all,
        gaps: vec![Gap {
            provider: Provider::Gcp,
            what: "backup runs of Cloud SQL instance gone".into(),
            error: "403".into(),
            protects: Protects::Gcp(GcpKind::SqlBackup),
            failed: true,
        }],
        ..Inventory::default()
    };
    let f = evaluate(&policy(&yaml), &Desired::default(), &inv);
    kept(
        &f,
        GcpKind::SqlBackup,
        "gone/backups/x",
        Reason::ListingIncomplete,
    );
}
