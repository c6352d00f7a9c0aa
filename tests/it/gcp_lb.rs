//! The lower half of a load balancer's chain end to end (URL maps, backend services and
//! buckets, health checks, below the forwarding rules and target proxies): the real binary with
//! the official Compute client pointed at the fake GCP server (`tests/gcpserver/fake_gcp.py`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cluster::outcomes;
use crate::gcp::{FakeGcp, PROJECT, all_keep, enforce_plan, read_report, run_with, verdicts};
use crate::{stderr, write};

/// More than a page of each kind (allowed by name), one whole kept chain (a rule, its proxy,
/// map, service, bucket and checks), one orphan chain, lone orphans of each kind, and what
/// keeps a part that no audited part names: a gRPC proxy, an autohealing group, a Cloud DNS
/// check, a mesh service, an internal forwarding rule, GKE's names.
fn lb_project() -> (FakeGcp, tempfile::TempDir, PathBuf) {
    let gcp = FakeGcp::start();
    let page = |prefix: &str| -> Vec<Value> {
        (0..501)
            .map(|i| json!({"name": format!("aia-{prefix}-{i:03}")}))
            .collect()
    };
    let mut maps = page("map");
    maps.extend([
        json!({"name": "web-map", "defaultService": "web-svc",
               "pathMatchers": [{"name": "pm", "defaultService": "web-svc",
                   "pathRules": [{"paths": ["/static/*"], "service": "global/backendBuckets/assets"}]}]}),
        json!({"name": "old-map", "defaultService": "old-svc",
               "pathMatchers": [{"name": "pm", "defaultService": "global/backendBuckets/old-assets"}]}),
        json!({"name": "old-lonely-map", "defaultService": "old-svc"}),
        json!({"name": "old-regional-map", "region": "us-central1", "defaultService": "old-rsvc"}),
        json!({"name": "mesh-map", "defaultService": "mesh-svc"}),
    ]);
    let mut services = page("svc");
    services.extend([
        json!({"name": "web-svc", "healthChecks": ["web-hc", "shared-hc"]}),
        json!({"name": "old-svc", "healthChecks": ["old-hc", "shared-hc"]}),
        json!({"name": "old-tcp-svc", "healthChecks": ["old-hc"]}),
        json!({"name": "old-rsvc", "region": "us-central1", "healthChecks": ["old-rhc"]}),
        json!({"name": "ilb-svc", "region": "us-central1", "loadBalancingScheme": "INTERNAL",
               "healthChecks": ["ilb-hc"]}),
        json!({"name": "mesh-svc", "loadBalancingScheme": "INTERNAL_SELF_MANAGED"}),
        json!({"name": "k8s1-0a1b2c3d-default-web-80-4e5f6a7b"}),
    ]);
    let mut buckets = page("bb");
    buckets.extend([
        json!({"name": "assets"}),
        json!({"name": "old-assets"}),
        json!({"name": "old-lonely-bucket"}),
    ]);
    let mut checks = page("hc");
    checks.extend([
        json!({"name": "web-hc"}),
        json!({"name": "shared-hc"}),
        json!({"name": "old-hc"}),
        json!({"name": "old-lonely-hc"}),
        json!({"name": "old-rhc", "region": "us-central1"}),
        json!({"name": "ilb-hc", "region": "us-central1"}),
        json!({"name": "heal-hc"}),
        json!({"name": "dns-hc", "sourceRegions": ["us-east1", "us-west1", "europe-west1"]}),
    ]);
    gcp.seed(json!({
        "project": PROJECT,
        "forwardingRules": [
            {"name": "aia-web", "target": "global/targetHttpsProxies/web-https"},
            {"name": "old-fr", "target": "global/targetHttpProxies/old-http"},
            {"name": "aia-ilb", "region": "us-central1", "loadBalancingScheme": "INTERNAL",
             "backendService": "ilb-svc"}
        ],
        "targetHttpsProxies": [{"name": "web-https", "urlMap": "web-map"}],
        "targetHttpProxies": [{"name": "old-http", "urlMap": "old-map"}],
        "targetTcpProxies": [{"name": "old-tcp", "service": "old-tcp-svc"}],
        "targetGrpcProxies": [{"name": "mesh-grpc", "urlMap": "mesh-map"}],
        "urlMaps": maps,
        "backendServices": services,
        "backendBuckets": buckets,
        "healthChecks": checks,
        "instanceGroupManagers": [{"name": "web-mig", "zone": "us-central1-a",
            "autoHealingPolicies": [{"healthCheck": "heal-hc"}]}],
        "firewalls": [{"name": "old-open-ssh"}]
    }));
    let dir = tempfile::tempdir().unwrap();
    let allowed = "{allowed: [\"aia-*\"]}";
    let policy = write(
        dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: gcp\ngcp:\n  project: {PROJECT}\n  firewall_rules: {allowed}\n  forwarding_rules: {allowed}\n  target_proxies: {allowed}\n  url_maps: {allowed}\n  backend_services: {allowed}\n  backend_buckets: {allowed}\n  health_checks: {allowed}\nsafety:\n  min_age_hours: 0\n  max_deletions: 30\n"
        ),
    );
    (gcp, dir, policy)
}

const ORPHANS: &[&str] = &[
    "ForwardingRule old-fr",
    "TargetProxy http/old-http",
    "TargetProxy tcp/old-tcp",
    "UrlMap old-map",
    "UrlMap old-lonely-map",
    "UrlMap us-central1/old-regional-map",
    "BackendService old-svc",
    "BackendService old-tcp-svc",
    "BackendService us-central1/old-rsvc",
    "BackendBucket old-assets",
    "BackendBucket old-lonely-bucket",
    "HealthCheck old-hc",
    "HealthCheck old-lonely-hc",
    "HealthCheck us-central1/old-rhc",
];

#[test]
fn the_lower_chain_every_page_kept_by_kept_parts_orphans_top_down_replayed_and_enforced() {
    let (gcp, dir, policy) = lb_project();
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
    for (kind, prefix) in [
        ("UrlMap", "map"),
        ("BackendService", "svc"),
        ("BackendBucket", "bb"),
        ("HealthCheck", "hc"),
    ] {
        let key = format!("{kind} aia-{prefix}-");
        assert_eq!(
            v.iter()
                .filter(|(k, (a, _))| k.starts_with(&key) && a == "keep")
                .count(),
            501,
            "both pages of {kind}"
        );
    }
    let action = |k: &str| v.get(k).map(|x| x.0.as_str()).unwrap_or("absent");
    for orphan in ORPHANS {
        assert_eq!(action(orphan), "delete", "{orphan}: {:?}", v.get(*orphan));
    }
    for (kept, reason) in [
        ("TargetProxy https/web-https", "in-use"),
        ("UrlMap web-map", "in-use"),
        ("UrlMap mesh-map", "in-use"),
        ("BackendService web-svc", "in-use"),
        ("BackendService us-central1/ilb-svc", "in-use"),
        ("BackendService mesh-svc", "in-use"),
        (
            "BackendService k8s1-0a1b2c3d-default-web-80-4e5f6a7b",
            "system-managed",
        ),
        ("BackendBucket assets", "in-use"),
        ("HealthCheck web-hc", "in-use"),
        ("HealthCheck shared-hc", "in-use"),
        ("HealthCheck us-central1/ilb-hc", "in-use"),
        ("HealthCheck heal-hc", "in-use"),
        ("HealthCheck dns-hc", "in-use"),
    ] {
        assert_eq!(action(kept), "keep", "{kept}: {:?}", v.get(kept));
        assert!(
            v[kept].1.contains(&reason.to_string()),
            "{kept}: {:?}",
            v[kept]
        );
    }
    let find = |kind: &str, name: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == kind && f["name"] == name)
            .unwrap()
            .clone()
    };
    for (kind, name, why) in [
        ("UrlMap", "mesh-map", "gRPC proxy mesh-grpc"),
        (
            "HealthCheck",
            "heal-hc",
            "instance group manager us-central1-a/web-mig",
        ),
        ("HealthCheck", "dns-hc", "Cloud DNS"),
        ("BackendService", "mesh-svc", "Service Mesh"),
        ("HealthCheck", "shared-hc", "BackendService web-svc"),
        ("BackendBucket", "assets", "UrlMap web-map"),
    ] {
        let detail = find(kind, name)["detail"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(detail.contains(why), "{name}: {detail}");
    }
    let old_hc = find("HealthCheck", "old-hc");
    assert_eq!(
        old_hc["identity"]["after"],
        json!(["BackendService old-svc", "BackendService old-tcp-svc"])
    );
    let order = |kind: &str, name: &str| find(kind, name)["plan_order"].as_u64().unwrap();
    assert!(order("ForwardingRule", "old-fr") < order("TargetProxy", "http/old-http"));
    assert!(order("TargetProxy", "http/old-http") < order("UrlMap", "old-map"));
    assert!(order("UrlMap", "old-map") < order("BackendService", "old-svc"));
    assert!(order("UrlMap", "old-map") < order("BackendBucket", "old-assets"));
    assert!(order("BackendService", "old-svc") < order("HealthCheck", "old-hc"));

    // A recorded snapshot replays to the same verdicts; without the groups' file no health
    // check is unused, and without the gRPC proxies' no URL map is.
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
    for file in [
        "urlMaps.json",
        "backendServices.json",
        "backendBuckets.json",
        "healthChecks.json",
        "targetGrpcProxies.json",
        "instanceGroupManagers.json",
    ] {
        assert!(snap.join("gcp").join(file).is_file(), "{file}");
    }
    let replay = dir.path().join("replay.json");
    let now = report["evaluated_at"].as_str().unwrap().to_string();
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
    for (file, kind) in [
        ("instanceGroupManagers.json", "HealthCheck "),
        ("targetGrpcProxies.json", "UrlMap "),
    ] {
        let body = std::fs::read(snap.join("gcp").join(file)).unwrap();
        std::fs::remove_file(snap.join("gcp").join(file)).unwrap();
        let out = replay_run(&replay);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let without = verdicts(&read_report(&replay));
        assert!(all_keep(&without, kind), "without {file}: {without:?}");
        std::fs::write(snap.join("gcp").join(file), body).unwrap();
    }

    // Enforce, top-down through the operations; old-tcp-svc's delete is refused, so old-hc,
    // which it names, is not tried.
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
    gcp.fault(
        json!({"method": "DELETE", "path": "/global/backendServices/old-tcp-svc$", "status": 403}),
    );
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
    for gone in ORPHANS
        .iter()
        .filter(|k| !["BackendService old-tcp-svc", "HealthCheck old-hc"].contains(k))
    {
        assert_eq!(o[*gone].0, "deleted", "{gone}: {o:?}");
        assert!(o[*gone].2, "{gone}: backed up first");
    }
    assert_eq!(o["BackendService old-tcp-svc"].0, "failed", "{o:?}");
    let (status, reason, _) = &o["HealthCheck old-hc"];
    assert_eq!(status, "skipped");
    assert!(reason.contains("BackendService old-tcp-svc"), "{reason}");
    let base = format!("/compute/v1/projects/{PROJECT}");
    for kept in [
        "global/healthChecks/old-hc",
        "global/healthChecks/shared-hc",
        "global/healthChecks/heal-hc",
        "global/backendServices/web-svc",
        "global/backendBuckets/assets",
        "global/urlMaps/web-map",
        "regions/us-central1/healthChecks/ilb-hc",
    ] {
        assert!(gcp.exists(&format!("{base}/{kept}")), "{kept}");
    }
    for gone in [
        "global/urlMaps/old-map",
        "regions/us-central1/urlMaps/old-regional-map",
        "regions/us-central1/backendServices/old-rsvc",
        "regions/us-central1/healthChecks/old-rhc",
        "global/backendBuckets/old-lonely-bucket",
    ] {
        assert!(!gcp.exists(&format!("{base}/{gone}")), "{gone}");
    }
    let deletes = gcp.deletes();
    let at = |suffix: &str| deletes.iter().position(|p| p.ends_with(suffix)).unwrap();
    assert!(
        at("/targetHttpProxies/old-http") < at("/urlMaps/old-map"),
        "{deletes:?}"
    );
    assert!(
        at("/urlMaps/old-map") < at("/backendServices/old-svc"),
        "{deletes:?}"
    );
    assert!(
        at("/backendServices/old-rsvc") < at("/healthChecks/old-rhc"),
        "{deletes:?}"
    );
    assert!(
        !deletes.iter().any(|p| p.ends_with("/healthChecks/old-hc")),
        "{deletes:?}"
    );
}

#[test]
fn a_forbidden_list_in_the_chain_protects_only_the_parts_it_could_prove_unused() {
    // 403 on the groups: every health check kept, the services still judged.
    let (gcp, dir, policy) = lb_project();
    gcp.fault(json!({"path": "/aggregated/instanceGroupManagers$", "status": 403}));
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
    assert!(all_keep(&v, "HealthCheck "), "{v:?}");
    assert!(
        v["HealthCheck old-lonely-hc"]
            .1
            .contains(&"listing-incomplete".to_string())
    );
    assert_eq!(v["BackendService old-svc"].0, "delete");
    assert_eq!(v["UrlMap old-map"].0, "delete");
    assert_eq!(v["FirewallRule old-open-ssh"].0, "delete");
    assert!(
        report["errors"]
            .to_string()
            .contains("instance group managers")
    );

    // 403 on the global URL maps: no map judged from half a list, and no service or backend
    // bucket is unused; the health checks below still follow the services.
    let (gcp, dir, policy) = lb_project();
    gcp.fault(json!({"path": "/global/urlMaps$", "status": 403}));
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
    assert!(!v.keys().any(|k| k.starts_with("UrlMap ")), "{v:?}");
    assert!(all_keep(&v, "BackendService "), "{v:?}");
    assert!(all_keep(&v, "BackendBucket "), "{v:?}");
    assert_eq!(v["HealthCheck old-lonely-hc"].0, "delete");
    assert_eq!(v["HealthCheck old-hc"].0, "keep", "its services are kept");
    assert_eq!(v["TargetProxy tcp/old-tcp"].0, "delete");
}
