//! The live Kubernetes source end to end: the real binary against the real control plane
//! (`cluster.rs`), its snapshot replayed offline, each fault path through the fault proxy, and
//! the delete primitive.

use chrono::{Duration, Utc};
use driftsweep::inventory::cluster::{DeleteOutcome, KubeTarget, kind_named};
use serde_json::{Value, json};

use crate::cluster::{TestCluster, verdicts};
use crate::proxy::Rule;
use crate::{stderr, write};

/// Decide a month after the objects were made, so the minimum age never hides a verdict.
fn later() -> String {
    (Utc::now() + Duration::days(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

const SECRET_VALUE: &str = "hunter2-VALUE-never-printed";

/// The tricky cases of DESIGN.md's floor and reference rules, in namespace `app`.
fn seed_app(c: &TestCluster, app: &str) {
    c.namespace(app);
    let cm = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": app}, "data": {"k": "v"}});
    c.create(cm("app-config"));
    c.create(cm("pod-volume"));
    c.create(cm("projected-config"));
    c.create(cm("orphan-config"));
    let mut opted = cm("opted-out");
    opted["metadata"]["annotations"] = json!({"driftsweep.io/keep": "true"});
    c.create(opted);
    c.create(cm("defined"));

    let deployment = c.create(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": app},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "web", "image": "registry.invalid/web:1.0.0",
                    "envFrom": [{"configMapRef": {"name": "app-config"}}],
                    "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "t"}}}]
                }]}
            }
        }
    }));
    let uid = deployment["metadata"]["uid"].as_str().unwrap().to_string();
    let mut owned = cm("owned-by-web");
    owned["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid
    }]);
    c.create(owned);

    c.create(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "runner-sa", "namespace": app}
    }));
    c.create(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "unused-sa", "namespace": app}
    }));
    // Only a cluster-wide binding names this one.
    c.create(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "bound-sa", "namespace": app}
    }));
    c.create(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": format!("{app}-reader")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "bound-sa", "namespace": app}]
    }));
    c.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "runner", "namespace": app},
        "spec": {
            "serviceAccountName": "runner-sa",
            "containers": [{"name": "r", "image": "registry.invalid/runner:2.0.0"}],
            "volumes": [
                {"name": "v", "configMap": {"name": "pod-volume"}},
                {"name": "p", "projected": {"sources": [{"configMap": {"name": "projected-config"}}]}}
            ]
        }
    }));
    c.create(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": app},
        "spec": {
            "replicas": 0,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "registry.invalid/db:3.0.0"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        }
    }));
    let pvc = |name: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": app},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    };
    c.create(pvc("data-db-0"));
    c.create(pvc("scratch"));
    c.create(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": app},
        "spec": {"tls": [{"hosts": ["web.example"], "secretName": "web-tls"}],
            "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}
    }));
    let secret = |name: &str, kind: &str| {
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": app}, "type": kind,
        "stringData": {"value": SECRET_VALUE}})
    };
    c.create(secret("web-tls", "Opaque"));
    c.create(secret("env-secret", "Opaque"));
    c.create(secret("orphan-secret", "Opaque"));
    // Only its type says Helm made it: the metadata list cannot tell, the `type=` list must.
    c.create(secret("release-state", "helm.sh/release.v1"));
}

/// What a dry run over `seed_app` must decide, object by object.
fn expected(app: &str) -> Vec<(String, &'static str, &'static str)> {
    let k = |kind: &str, name: &str| format!("{kind} {app}/{name}");
    vec![
        (k("ConfigMap", "app-config"), "keep", "in-use"),
        (k("ConfigMap", "pod-volume"), "keep", "in-use"),
        (k("ConfigMap", "projected-config"), "keep", "in-use"),
        (
            k("ConfigMap", "orphan-config"),
            "delete",
            "not-in-repository",
        ),
        (k("ConfigMap", "opted-out"), "keep", "opt-out"),
        (k("ConfigMap", "owned-by-web"), "keep", "owned"),
        (k("ConfigMap", "defined"), "keep", "defined-in-repository"),
        (k("ConfigMap", "kube-root-ca.crt"), "keep", "system-managed"),
        (k("ServiceAccount", "default"), "keep", "system-managed"),
        (k("ServiceAccount", "runner-sa"), "keep", "in-use"),
        (
            k("ServiceAccount", "unused-sa"),
            "delete",
            "not-in-repository",
        ),
        (k("PersistentVolumeClaim", "data-db-0"), "keep", "in-use"),
        (
            k("PersistentVolumeClaim", "scratch"),
            "delete",
            "not-in-repository",
        ),
        (k("Secret", "web-tls"), "keep", "in-use"),
        (k("Secret", "env-secret"), "keep", "in-use"),
        (k("Secret", "orphan-secret"), "delete", "not-in-repository"),
        (k("Secret", "release-state"), "keep", "system-managed"),
    ]
}

fn policy_with_manifests(c: &TestCluster, app: &str, kept: &str) -> std::path::PathBuf {
    write(
        c.dir.path(),
        "manifests/app.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: defined\n  namespace: {app}\ndata:\n  k: v\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: never-applied\n  namespace: {app}\ndata:\n  k: v\n"
        ),
    );
    write(
        c.dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: e2e\nsafety:\n  max_deletions: 100000\nkubernetes:\n  namespaces: [\"{app}\"]\n  protected_namespaces: [kube-system, kube-public, \"{kept}\"]\n  manifests: [manifests]\n  delete_pvcs: true\n"
        ),
    )
}

#[test]
fn a_live_dry_run_decides_like_its_own_snapshot_replayed() {
    let c = TestCluster::start();
    let app = c.ns("app");
    let stray = c.ns("stray");
    let kept = c.ns("kept");
    seed_app(&c, &app);
    c.namespace(&stray);
    c.namespace(&kept);
    let policy = policy_with_manifests(&c, &app, &kept);
    let now = later();
    let live_report = c.path("live.json");
    let out = c.driftsweep(&[
        "run",
        "--dry-run",
        "--policy",
        policy.to_str().unwrap(),
        "--now",
        &now,
        "--report",
        live_report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let live_log = stderr(&out);

    let snap = c.path("snap");
    let out = c.driftsweep(&[
        "snapshot",
        "--policy",
        policy.to_str().unwrap(),
        "--out",
        snap.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let replay_report = c.path("replay.json");
    let out = crate::driftsweep(&[
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--snapshot",
        snap.to_str().unwrap(),
        "--now",
        &now,
        "--report",
        replay_report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let live = verdicts(&live_report);
    let replay = verdicts(&replay_report);
    for (key, action, reason) in expected(&app) {
        let (got, reasons) = live
            .get(&key)
            .unwrap_or_else(|| panic!("no verdict for {key}; got {live:#?}"));
        assert_eq!(got, action, "{key}: {reasons:?}");
        assert!(reasons.iter().any(|r| r == reason), "{key}: {reasons:?}");
    }
    let ns = |name: &str| format!("Namespace /{name}");
    assert_eq!(live[&ns(&stray)].0, "delete");
    assert_eq!(live[&ns(&kept)].0, "keep");
    assert!(
        live[&ns(&kept)]
            .1
            .contains(&"protected-namespace".to_string())
    );
    assert_eq!(live[&ns(&app)].0, "keep");
    assert_eq!(live[&ns("kube-system")].0, "keep");
    // The manifest names a ConfigMap the cluster lacks.
    assert_eq!(live[&format!("ConfigMap {app}/never-applied")].0, "drift");

    // Same verdicts from the replay (for this test's objects: other tests share the cluster).
    let ours = |m: &std::collections::BTreeMap<String, (String, Vec<String>)>| {
        m.iter()
            .filter(|(k, _)| k.contains(&c.prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ours(&live), ours(&replay));

    // No Secret value in the reports, the snapshot or the logs.
    let encoded = base64_of(SECRET_VALUE);
    let mut texts = vec![
        std::fs::read_to_string(&live_report).unwrap(),
        std::fs::read_to_string(&replay_report).unwrap(),
        live_log,
    ];
    for entry in walk(&snap) {
        texts.push(std::fs::read_to_string(entry).unwrap());
    }
    for text in texts {
        assert!(!text.contains(SECRET_VALUE) && !text.contains(&encoded));
    }
    let secrets = std::fs::read_to_string(snap.join("kubernetes/secrets.json")).unwrap();
    assert!(
        secrets.contains("helm.sh/release.v1"),
        "Secret types are recorded"
    );
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn dry_run(c: &TestCluster, policy: &std::path::Path) -> (std::process::Output, Value) {
    dry_run_with(c, policy, "report.json", &[])
}

/// A dry run two days on with `env` set, its JSON report written to `report` in the test's
/// folder and read back.
fn dry_run_with(
    c: &TestCluster,
    policy: &std::path::Path,
    report: &str,
    env: &[(&str, &str)],
) -> (std::process::Output, Value) {
    let report = c.path(report);
    let out = c.driftsweep_with(
        &[
            "run",
            "--policy",
            policy.to_str().unwrap(),
            "--now",
            &later(),
            "--report",
            report.to_str().unwrap(),
        ],
        env,
    );
    let json = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    (out, json)
}

fn deletions(report: &Value, kind: &str) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["action"] == "delete" && f["kind"] == kind)
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_forbidden_pod_list_blocks_every_deletion_it_could_prevent_and_is_reported() {
    let c = TestCluster::with_proxy();
    let app = c.ns("app");
    seed_app(&c, &app);
    let policy = policy_with_manifests(&c, &app, "none");
    let (out, baseline) = dry_run(&c, &policy);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !deletions(&baseline, "ConfigMap").is_empty(),
        "the seed has deletions to block"
    );

    c.proxy()
        .fault(Rule::on("GET", "^/api/v1/pods$").status(403));
    let (out, report) = dry_run(&c, &policy);
    assert_eq!(out.status.code(), Some(1), "a failed list exits 1");
    for kind in [
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "ServiceAccount",
    ] {
        assert_eq!(deletions(&report, kind), Vec::<String>::new(), "{kind}");
    }
    let orphan = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "orphan-config")
        .unwrap();
    assert!(
        orphan["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("references-unknown"))
    );
    let errors = report["errors"].to_string();
    assert!(errors.contains("Pod") && errors.contains("403"), "{errors}");
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
}

#[test]
fn a_list_that_times_out_protects_what_it_could_prove_in_use() {
    let c = TestCluster::with_proxy();
    let app = c.ns("app");
    seed_app(&c, &app);
    let policy = policy_with_manifests(&c, &app, "none");
    // Every Deployment list hangs longer than the client waits.
    c.proxy()
        .fault(Rule::on("GET", "^/apis/apps/v1/deployments$").stall());
    let (out, report) = dry_run_with(
        &c,
        &policy,
        "report.json",
        &[("DRIFTSWEEP_KUBE_TIMEOUT_SECONDS", "1")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for kind in [
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "ServiceAccount",
    ] {
        assert_eq!(deletions(&report, kind), Vec::<String>::new(), "{kind}");
    }
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("Deployment") && errors.contains("kubernetes-references"),
        "{errors}"
    );
}

#[test]
fn a_list_that_expires_mid_pagination_is_reported_not_truncated() {
    let c = TestCluster::with_proxy();
    let app = c.ns("app");
    c.namespace(&app);
    let many: Vec<Value> = (0..1200)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i:05}"), "namespace": app}})
        })
        .collect();
    c.create_many(many);
    c.proxy().fault(
        Rule::on("GET", "^/api/v1/configmaps$")
            .query("continue=")
            .status(410),
    );
    let policy = c.policy(&[&app], "");
    let (out, report) = dry_run(&c, &policy);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(deletions(&report, "ConfigMap"), Vec::<String>::new());
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("expired mid-pagination") && errors.contains("after 500"),
        "{errors}"
    );
}

#[test]
fn throttled_lists_are_retried_after_the_servers_delay() {
    let c = TestCluster::with_proxy();
    let app = c.ns("app");
    seed_app(&c, &app);
    let policy = c.policy(&[&app], "");
    c.proxy()
        .fault(Rule::on("GET", "^/api/v1/configmaps$").throttle(1).times(1));
    c.proxy().clear_requests();
    let (out, report) = dry_run(&c, &policy);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        deletions(&report, "ConfigMap"),
        ["defined", "orphan-config"]
    );
    let lists: Vec<_> = c
        .proxy()
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/configmaps")
        .collect();
    // The first page was refused once, then asked again, the same request.
    assert!(lists.len() >= 2, "{lists:?}");
    assert_eq!((lists[0].status, lists[1].status), (429, 200), "{lists:?}");
    assert_eq!(lists[0].query, lists[1].query, "{lists:?}");
    assert!(!lists[1].query.contains("continue="), "{lists:?}");
}

#[test]
fn five_thousand_config_maps_are_each_listed_exactly_once() {
    let c = TestCluster::with_proxy();
    let app = c.ns("big");
    c.namespace(&app);
    let many: Vec<Value> = (0..5000)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i:05}"), "namespace": app}})
        })
        .collect();
    c.create_many(many);
    c.proxy().clear_requests();
    let info = kind_named("ConfigMap").unwrap();
    let items = c.block_on(c.client.list(&info, false, None)).unwrap();
    let mut names: Vec<String> = items
        .iter()
        .filter(|i| i["metadata"]["namespace"] == json!(app))
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .filter(|name| name.starts_with("cm-"))
        .collect();
    assert_eq!(names.len(), 5000);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 5000, "no object twice");
    // Pages of 500 over everything the cluster holds (other tests' ConfigMaps too), each
    // asked for once.
    let pages = c.proxy().requests().len();
    assert_eq!(pages, items.len().div_ceil(500), "{} items", items.len());
}

/// What issue 16 asks of a run's requests: each list once, one request per page of 500 and
/// not one more (the next page is fetched ahead of decoding, never past the last), counted
/// from the answers themselves, so other tests' objects on the shared server do not matter.
#[test]
fn an_audit_asks_for_each_page_of_each_list_once_and_no_more() {
    let c = TestCluster::with_proxy();
    let app = c.ns("paged");
    c.namespace(&app);
    let mut many: Vec<Value> = (0..1200)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i:05}"), "namespace": app},
            "data": {"url": "http://api.elsewhere.svc:80"}})
        })
        .collect();
    many.extend((0..700).map(|i| {
        let kind = if i < 600 {
            json!({"type": "Opaque", "stringData": {"k": "v"}})
        } else {
            json!({"type": "kubernetes.io/basic-auth", "stringData": {"username": "u"}})
        };
        let mut secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("s-{i:05}"), "namespace": app}});
        secret["type"] = kind["type"].clone();
        secret["stringData"] = kind["stringData"].clone();
        secret
    }));
    c.create_many(many);
    c.proxy().clear_requests();
    let policy = c.policy(&[&app], "");
    let (out, report) = dry_run(&c, &policy);
    assert!(out.status.code() == Some(0), "{}", stderr(&out));

    // Every object was read into a record and decided.
    let decided = |kind: &str, prefix: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == kind && f["namespace"] == json!(app))
            .filter(|f| f["name"].as_str().unwrap_or_default().starts_with(prefix))
            .count()
    };
    assert_eq!(decided("ConfigMap", "cm-"), 1200);
    assert_eq!(decided("Secret", "s-"), 700);

    let lists = pages_by_list(&c);
    for list in [
        "/api/v1/configmaps ",
        "/api/v1/secrets ",
        "/api/v1/secrets fieldSelector=type%3DOpaque",
    ] {
        assert!(
            lists[list].len() >= 2,
            "{list} has several pages: {:?}",
            lists[list]
        );
    }
    each_page_once(&lists);

    // One list at a time (`DRIFTSWEEP_KUBE_LISTS=1`; the Secrets' typed lists run inside
    // theirs): the same lists, each page once, the same verdicts on this test's objects.
    c.proxy().clear_requests();
    let (out, one) = dry_run_with(
        &c,
        &policy,
        "one-list.json",
        &[("DRIFTSWEEP_KUBE_LISTS", "1")],
    );
    assert!(out.status.code() == Some(0), "{}", stderr(&out));
    let again = pages_by_list(&c);
    assert_eq!(
        again.keys().collect::<Vec<_>>(),
        lists.keys().collect::<Vec<_>>()
    );
    each_page_once(&again);
    let own = |report: &Value| -> Vec<Value> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["namespace"] == json!(app))
            .map(|f| json!([f["kind"], f["name"], f["action"], f["reasons"]]))
            .collect()
    };
    assert!(own(&report).len() >= 1900);
    assert_eq!(own(&one), own(&report));
}

/// Each list was asked for once and followed page by page to its end: one request per 500
/// items (an empty list is one request), the last without a next page.
fn each_page_once(lists: &std::collections::BTreeMap<String, Vec<(bool, usize, bool)>>) {
    for (list, pages) in lists {
        let items: usize = pages.iter().map(|(_, n, _)| n).sum();
        assert_eq!(pages.len(), items.div_ceil(500).max(1), "{list}: {pages:?}");
        assert_eq!(
            pages.iter().filter(|(cont, _, _)| !cont).count(),
            1,
            "{list} listed once"
        );
        let (_, _, last_has_next) = pages[pages.len() - 1];
        assert!(
            !last_has_next && pages[..pages.len() - 1].iter().all(|p| p.2),
            "{list}"
        );
    }
}

/// The proxy's list requests by path and field selector: for each page, whether it
/// continued a list, how many items it held and whether another page followed.
fn pages_by_list(c: &TestCluster) -> std::collections::BTreeMap<String, Vec<(bool, usize, bool)>> {
    let mut lists: std::collections::BTreeMap<String, Vec<(bool, usize, bool)>> =
        Default::default();
    for r in c.proxy().requests() {
        if r.method != "GET" || !r.query.contains("limit=") {
            continue;
        }
        let selector: String = r
            .query
            .split('&')
            .filter(|p| p.starts_with("fieldSelector="))
            .collect();
        let (items, next) = r
            .page
            .unwrap_or_else(|| panic!("{} answered {}", r.path, r.status));
        lists
            .entry(format!("{} {selector}", r.path))
            .or_default()
            .push((r.query.contains("continue="), items, next));
    }
    lists
}

fn target(o: &Value) -> KubeTarget {
    KubeTarget {
        api_version: o["apiVersion"].as_str().unwrap_or("v1").to_string(),
        kind: o["kind"].as_str().unwrap().to_string(),
        namespace: o["metadata"]["namespace"].as_str().map(str::to_string),
        name: o["metadata"]["name"].as_str().unwrap().to_string(),
        uid: o["metadata"]["uid"].as_str().map(str::to_string),
        resource_version: o["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
    }
}

#[test]
fn the_delete_primitive_deletes_exactly_the_reviewed_object() {
    let c = TestCluster::start();
    let app = c.ns("del");
    c.namespace(&app);
    let cm = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": app}});
    let get = |name: &str| c.get("v1", "ConfigMap", Some(&app), name);

    // Deleted, with a server-side dry run first and preconditions on the real delete.
    let doomed = c.create(cm("doomed"));
    let prepared = c
        .block_on(c.client.prepare_delete(&target(&doomed)))
        .unwrap()
        .unwrap();
    assert!(get("doomed").is_some(), "the dry run deleted nothing");
    assert_eq!(
        prepared.object["metadata"]["uid"],
        doomed["metadata"]["uid"]
    );
    assert_eq!(
        c.block_on(c.client.delete(&prepared)).unwrap(),
        DeleteOutcome::Deleted
    );
    assert!(get("doomed").is_none());
    // Gone already: not an error.
    assert_eq!(
        c.block_on(c.client.delete_object(&target(&doomed)))
            .unwrap(),
        DeleteOutcome::AlreadyGone
    );

    // Re-created with the same name after review: another uid, skipped.
    let reviewed = c.create(cm("recreated"));
    c.send(
        "DELETE",
        &format!("/api/v1/namespaces/{app}/configmaps/recreated"),
        None,
    )
    .unwrap();
    c.create(cm("recreated"));
    let outcome = c
        .block_on(c.client.delete_object(&target(&reviewed)))
        .unwrap();
    assert!(
        matches!(&outcome, DeleteOutcome::Skipped(why) if why.contains("re-created")),
        "{outcome:?}"
    );
    assert!(get("recreated").is_some());

    // Changed after review: skipped.
    let reviewed = c.create(cm("changed"));
    let mut edited = reviewed.clone();
    edited["data"] = json!({"new": "value"});
    c.send(
        "PUT",
        &format!("/api/v1/namespaces/{app}/configmaps/changed"),
        Some(&edited),
    )
    .unwrap();
    let outcome = c
        .block_on(c.client.delete_object(&target(&reviewed)))
        .unwrap();
    assert!(
        matches!(&outcome, DeleteOutcome::Skipped(why) if why.contains("changed")),
        "{outcome:?}"
    );
    assert!(get("changed").is_some());

    // Changed between the check and the delete: the server's precondition answers 409.
    let reviewed = c.create(cm("raced"));
    let prepared = c
        .block_on(c.client.prepare_delete(&target(&reviewed)))
        .unwrap()
        .unwrap();
    let mut edited = reviewed.clone();
    edited["data"] = json!({"raced": "yes"});
    c.send(
        "PUT",
        &format!("/api/v1/namespaces/{app}/configmaps/raced"),
        Some(&edited),
    )
    .unwrap();
    let outcome = c.block_on(c.client.delete(&prepared)).unwrap();
    assert!(
        matches!(&outcome, DeleteOutcome::Skipped(why) if why.contains("changed since review")),
        "{outcome:?}"
    );
    assert!(get("raced").is_some());

    // Already terminating (held by a finalizer): skipped, left alone.
    let mut held = cm("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let held = c.create(held);
    c.send(
        "DELETE",
        &format!("/api/v1/namespaces/{app}/configmaps/held"),
        None,
    )
    .unwrap();
    let now = get("held").expect("a finalizer holds it");
    let outcome = c.block_on(c.client.delete_object(&target(&now))).unwrap();
    assert_eq!(
        outcome,
        DeleteOutcome::Skipped("already terminating".to_string())
    );
    let mut release = get("held").unwrap();
    release["metadata"]["finalizers"] = json!([]);
    c.send(
        "PUT",
        &format!("/api/v1/namespaces/{app}/configmaps/held"),
        Some(&release),
    )
    .unwrap();
    assert!(get("held").is_none(), "{held}");
}

#[test]
fn the_delete_primitive_sends_dry_run_then_preconditions_and_retries_only_throttling() {
    let c = TestCluster::with_proxy();
    let app = c.ns("wire");
    c.namespace(&app);
    let cm = c.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": app}}));
    let path = format!("/api/v1/namespaces/{app}/configmaps/x");
    c.proxy().fault(
        Rule::on("DELETE", &format!("^{path}$"))
            .status(429)
            .retry_after(1)
            .times(1),
    );
    c.proxy().clear_requests();
    assert_eq!(
        c.block_on(c.client.delete_object(&target(&cm))).unwrap(),
        DeleteOutcome::Deleted
    );
    let log: Vec<_> = c
        .proxy()
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect();
    let summary: Vec<(String, bool, u16)> = log
        .iter()
        .map(|r| (r.method.clone(), r.dry_run(), r.status))
        .collect();
    assert_eq!(
        summary,
        [
            ("GET".to_string(), false, 200),
            ("DELETE".to_string(), true, 429),
            ("DELETE".to_string(), true, 200),
            ("DELETE".to_string(), false, 200),
        ]
    );
    let body = &log[3].body;
    assert_eq!(body["preconditions"]["uid"], cm["metadata"]["uid"]);
    assert_eq!(
        body["preconditions"]["resourceVersion"],
        cm["metadata"]["resourceVersion"]
    );
    assert_eq!(body["propagationPolicy"], "Background");

    // A 403 is final: one attempt, an error, nothing deleted.
    let cm = c.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y", "namespace": app}}));
    c.proxy()
        .fault(Rule::on("DELETE", "/configmaps/y$").status(403));
    c.proxy().clear_requests();
    let error = c
        .block_on(c.client.delete_object(&target(&cm)))
        .unwrap_err();
    assert_eq!(error.code(), Some(403));
    let deletes = c
        .proxy()
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(deletes, 1);
    assert!(c.get("v1", "ConfigMap", Some(&app), "y").is_some());
}

#[test]
fn a_namespace_is_deleted_in_the_foreground_with_its_contents() {
    let c = TestCluster::start();
    let gone = c.ns("gone");
    let ns = c.namespace(&gone);
    c.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inside", "namespace": gone}}));
    let ns = c
        .get("v1", "Namespace", None, crate::cluster::name_of(&ns))
        .unwrap();
    assert_eq!(
        c.block_on(c.client.delete_object(&target(&ns))).unwrap(),
        DeleteOutcome::Deleted
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while c.get("v1", "Namespace", None, &gone).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the namespace was not removed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(c.get("v1", "ConfigMap", Some(&gone), "inside").is_none());
}

#[test]
fn the_kubelet_stand_in_runs_pods_for_the_real_controllers() {
    let c = TestCluster::start();
    let app = c.ns("rollout");
    c.namespace(&app);
    let kubelet = crate::kubelet::Kubelet::start(std::slice::from_ref(&app));
    kubelet.fail_image("broken", "CrashLoopBackOff");
    let deployment = |name: &str, image: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": app},
            "spec": {"replicas": 2, "progressDeadlineSeconds": 2,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": image}]}}}})
    };
    c.create(deployment("good", "registry.invalid/good:1.0.0"));
    c.create(deployment("bad", "registry.invalid/broken:1.0.0"));
    let condition = |name: &str, kind: &str| {
        c.get("apps/v1", "Deployment", Some(&app), name)
            .and_then(|d| {
                d["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .find(|k| k["type"] == kind)
                    .map(|k| (k["status"].clone(), k["reason"].clone()))
            })
    };
    c.wait_for("the healthy Deployment to become available", || {
        condition("good", "Available") == Some((json!("True"), json!("MinimumReplicasAvailable")))
            && c.get("apps/v1", "Deployment", Some(&app), "good").unwrap()["status"]
                ["readyReplicas"]
                == 2
    });
    c.wait_for("the crash-looping Deployment to pass its deadline", || {
        condition("bad", "Progressing") == Some((json!("False"), json!("ProgressDeadlineExceeded")))
    });
    let pods = c
        .send(
            "GET",
            &format!("/api/v1/namespaces/{app}/pods?labelSelector=app%3Dbad"),
            None,
        )
        .unwrap();
    let reasons: Vec<&Value> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"])
        .collect();
    assert_eq!(
        reasons,
        [&json!("CrashLoopBackOff"), &json!("CrashLoopBackOff")]
    );
}

#[test]
fn a_cut_connection_and_a_failing_later_page_are_retried_or_reported() {
    let c = TestCluster::with_proxy();
    let app = c.ns("app");
    c.namespace(&app);
    let many: Vec<Value> = (0..1200)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i:05}"), "namespace": app}})
        })
        .collect();
    c.create_many(many);
    let policy = c.policy(&[&app], "");

    // Once each: the first page cut after 1,000 bytes, the second page a 500. Both retried.
    c.proxy().fault(
        Rule::on("GET", "^/api/v1/configmaps$")
            .reset_after(1000)
            .times(1),
    );
    c.proxy().fault(
        Rule::on("GET", "^/api/v1/configmaps$")
            .query("continue=")
            .status(500)
            .times(1),
    );
    c.proxy().clear_requests();
    let (out, report) = dry_run(&c, &policy);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(deletions(&report, "ConfigMap").len(), 1200);
    let statuses: Vec<u16> = c
        .proxy()
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/configmaps")
        .map(|r| r.status)
        .take(4)
        .collect();
    assert_eq!(statuses, [200, 200, 500, 200], "cut, retried; 500, retried");

    // A later page that keeps failing: the list is a gap, and no ConfigMap is deleted.
    c.proxy().clear_faults();
    c.proxy().fault(
        Rule::on("GET", "^/api/v1/configmaps$")
            .query("continue=")
            .status(500)
            .skip(1),
    );
    let (out, report) = dry_run(&c, &policy);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(deletions(&report, "ConfigMap"), Vec::<String>::new());
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("ConfigMap") && errors.contains("500"),
        "{errors}"
    );
}

#[test]
fn a_hung_api_server_ends_the_run_at_its_deadlines_with_gaps_not_deletions() {
    let c = TestCluster::with_proxy();
    let app = c.ns("app");
    seed_app(&c, &app);
    let policy = policy_with_manifests(&c, &app, "none");
    // Pods never answer; the per-request timeout (60 s, retried) alone would take minutes.
    c.proxy().fault(Rule::on("GET", "^/api/v1/pods$").stall());
    let run = |env: &[(&str, &str)]| dry_run_with(&c, &policy, "report.json", env);
    for (env, which) in [
        (
            ("DRIFTSWEEP_LIST_DEADLINE_SECONDS", "2"),
            "the list's deadline",
        ),
        (
            ("DRIFTSWEEP_RUN_DEADLINE_SECONDS", "2"),
            "the run's deadline",
        ),
    ] {
        let (out, report) = run(&[env]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let errors = report["errors"].to_string();
        assert!(
            errors.contains("Pod") && errors.contains("not read within") && errors.contains(which),
            "{errors}"
        );
        for kind in [
            "ConfigMap",
            "Secret",
            "ServiceAccount",
            "PersistentVolumeClaim",
        ] {
            assert_eq!(deletions(&report, kind), Vec::<String>::new(), "{kind}");
        }
    }
}
