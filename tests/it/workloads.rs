//! The workload, networking and volume kinds on the real control plane: what a person made by
//! hand is planned, what the controllers made from it is not, what another tool manages is
//! kept, an orphan's ConfigMap waits for the run after it, a Released volume goes only with
//! `delete_pvs`, and a namespace the repository still points at stays.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cluster::{TestCluster, verdicts};

const KINDS: &str = "[ConfigMap, Secret, ServiceAccount, PersistentVolumeClaim, Deployment, StatefulSet, DaemonSet, CronJob, Job, Service, Ingress, HorizontalPodAutoscaler, PodDisruptionBudget, NetworkPolicy, Role, RoleBinding, PersistentVolume]";

fn deployment(ns: &str, name: &str, config: &str, labels: Value, annotations: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "registry.invalid/app:1.0.0",
                    "envFrom": [{"configMapRef": {"name": config}}]}]}}}})
}

fn config_map(ns: &str, name: &str, data: Value, labels: Value, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
        "data": data})
}

fn service(ns: &str, name: &str, selector: &str, labels: Value, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
        "spec": {"selector": {"app": selector}, "ports": [{"port": 80}]}})
}

fn policy(c: &TestCluster, app: &str, lease: &str, delete_pvs: bool) -> PathBuf {
    crate::write(
        c.dir.path(),
        &format!("policy-{delete_pvs}.yaml"),
        &format!(
            "version: 1\nname: e2e\nkubernetes:\n  namespaces: [\"{app}\"]\n  protected_namespaces: [kube-system, kube-public, \"{lease}\"]\n  manifests: [manifests]\n  kinds: {KINDS}\n  delete_pvs: {delete_pvs}\nsafety:\n  min_age_hours: 0\n  max_deletions: 100000\n  lease_namespace: \"{lease}\"\n"
        ),
    )
}

fn audit(c: &TestCluster, policy: &Path, report: &Path) -> Value {
    let out = c.driftsweep(&[
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    c.narrow_to_own(report);
    serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap()
}

#[track_caller]
fn verdict(report: &Path, key: &str) -> (String, Vec<String>) {
    verdicts(report)
        .remove(key)
        .unwrap_or_else(|| panic!("no finding for {key}: {:#?}", verdicts(report).keys()))
}

#[track_caller]
fn assert_verdict(report: &Path, key: &str, action: &str, reason: &str) {
    let (got, reasons) = verdict(report, key);
    assert_eq!(got, action, "{key}: {reasons:?}");
    assert!(
        reasons.iter().any(|r| r == reason),
        "{key}: {reasons:?} lacks {reason}"
    );
}

#[test]
fn hand_made_workloads_are_planned_what_controllers_made_is_not_and_enforce_goes_outside_in() {
    let c = TestCluster::start();
    let app = c.ns("wl");
    let legacy = c.ns("wl-legacy");
    let gone = c.ns("wl-gone");
    let lease = c.ns("wl-lease");
    for ns in [&app, &legacy, &gone, &lease] {
        c.namespace(ns);
    }
    let kubelet = crate::kubelet::Kubelet::start(std::slice::from_ref(&app));
    let none = json!({});

    // The repository: a Deployment with its ConfigMap and Service, and a ConfigMap naming a
    // Service in another namespace through cluster DNS.
    let repository = [
        deployment(&app, "api", "api-config", none.clone(), none.clone()),
        config_map(
            &app,
            "api-config",
            json!({"MODE": "prod"}),
            none.clone(),
            none.clone(),
        ),
        service(&app, "api", "api", none.clone(), none.clone()),
        config_map(
            &app,
            "settings",
            json!({"LEGACY_DB": format!("postgres://db.{legacy}.svc.cluster.local:5432/app")}),
            none.clone(),
            none.clone(),
        ),
    ];
    let yaml: Vec<String> = repository
        .iter()
        .map(|o| serde_json::to_string(o).unwrap())
        .collect();
    crate::write(c.dir.path(), "manifests/app.yaml", &yaml.join("\n---\n"));
    for o in repository {
        c.create(o);
    }

    // By hand: a Deployment with its own ConfigMap, the Service and Ingress in front of it,
    // and a CronJob with a Job of its own.
    c.create(deployment(
        &app,
        "hand",
        "hand-config",
        none.clone(),
        none.clone(),
    ));
    c.create(config_map(
        &app,
        "hand-config",
        json!({"K": "v"}),
        none.clone(),
        none.clone(),
    ));
    c.create(service(&app, "hand", "hand", none.clone(), none.clone()));
    c.create(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "hand", "namespace": app},
        "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "hand", "port": {"number": 80}}}}]}}]}}),
    );
    let cron = c.create(json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "hand-cron", "namespace": app},
        "spec": {"schedule": "0 3 1 1 *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "registry.invalid/job:1.0.0"}]}}}}}}));
    c.create(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "hand-cron-1", "namespace": app, "ownerReferences": [{
            "apiVersion": "batch/v1", "kind": "CronJob", "name": "hand-cron",
            "uid": cron["metadata"]["uid"], "controller": true}]},
        "spec": {"suspend": true, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "registry.invalid/job:1.0.0"}]}}}}));

    // A Helm release's set.
    let helm_labels = json!({"app.kubernetes.io/managed-by": "Helm"});
    let helm_annotations = json!({"meta.helm.sh/release-name": "grafana"});
    c.create(deployment(
        &app,
        "grafana",
        "grafana-dash",
        helm_labels.clone(),
        helm_annotations.clone(),
    ));
    c.create(config_map(
        &app,
        "grafana-dash",
        json!({}),
        helm_labels.clone(),
        helm_annotations.clone(),
    ));
    c.create(service(
        &app,
        "grafana",
        "grafana",
        helm_labels,
        helm_annotations,
    ));

    // A volume whose claim is gone, and one a live claim holds.
    let volume = |name: &str, claim: Value| {
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "manual",
                "csi": {"driver": "pd.csi.storage.gke.io", "volumeHandle": format!("projects/p/zones/z/disks/{name}")},
                "claimRef": claim}})
    };
    let released = format!("{app}-released");
    c.create(volume(
        &released,
        json!({"namespace": app, "name": "gone-claim", "uid": "00000000-0000-0000-0000-000000000001"}),
    ));
    c.send(
        "PATCH",
        &format!("/api/v1/persistentvolumes/{released}/status"),
        Some(&json!({"status": {"phase": "Released"}})),
    )
    .unwrap();

    c.wait_for("the Pods of the Deployments to run", || {
        let pods = c
            .send("GET", &format!("/api/v1/namespaces/{app}/pods"), None)
            .unwrap();
        let running = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        running >= 3
    });
    c.wait_for("the Deployments to be available", || {
        ["api", "hand", "grafana"].iter().all(|name| {
            c.get("apps/v1", "Deployment", Some(&app), name)
                .is_some_and(|d| d["status"]["availableReplicas"] == 1)
        })
    });
    c.wait_for("the volume to be Released", || {
        c.get("v1", "PersistentVolume", None, &released)
            .is_some_and(|pv| pv["status"]["phase"] == "Released")
    });

    // The dry run.
    let report = c.path("plan.json");
    let plan = audit(&c, &policy(&c, &app, &lease, false), &report);
    for kind in ["Deployment", "Service", "Ingress"] {
        assert_verdict(
            &report,
            &format!("{kind} {app}/hand"),
            "delete",
            "not-in-repository",
        );
    }
    assert_verdict(
        &report,
        &format!("CronJob {app}/hand-cron"),
        "delete",
        "not-in-repository",
    );
    assert_verdict(&report, &format!("Job {app}/hand-cron-1"), "keep", "owned");
    let reported = verdicts(&report);
    assert!(
        !reported
            .keys()
            .any(|k| k.starts_with("ReplicaSet ") || k.starts_with("Pod ")),
        "the controllers' objects are not audited: {:?}",
        reported.keys()
    );
    assert_verdict(
        &report,
        &format!("ConfigMap {app}/hand-config"),
        "keep",
        "used-only-by-orphans",
    );
    for key in [
        format!("Deployment {app}/grafana"),
        format!("ConfigMap {app}/grafana-dash"),
        format!("Service {app}/grafana"),
    ] {
        assert_verdict(&report, &key, "keep", "managed-elsewhere");
    }
    for key in [
        format!("Deployment {app}/api"),
        format!("Service {app}/api"),
        format!("ConfigMap {app}/api-config"),
    ] {
        assert_verdict(&report, &key, "keep", "defined-in-repository");
    }
    assert_verdict(
        &report,
        &format!("PersistentVolume /{released}"),
        "keep",
        "pv-deletion-disabled",
    );
    assert_verdict(
        &report,
        &format!("Namespace /{legacy}"),
        "keep",
        "referenced-from-repository",
    );
    assert_verdict(
        &report,
        &format!("Namespace /{gone}"),
        "delete",
        "not-in-repository",
    );
    let pv_detail = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == released.as_str())
        .map(|f| f["detail"].as_str().unwrap_or_default().to_string())
        .unwrap();
    assert!(
        pv_detail.contains("1Gi") && pv_detail.contains("Retain"),
        "{pv_detail}"
    );

    // A recorded snapshot of the same cluster, replayed, decides the same.
    let snap = c.path("snap");
    let first = policy(&c, &app, &lease, false);
    let out = c.driftsweep(&[
        "snapshot",
        "--policy",
        first.to_str().unwrap(),
        "--out",
        snap.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    let replay = c.path("replay.json");
    let out = crate::driftsweep(&[
        "run",
        "--policy",
        first.to_str().unwrap(),
        "--snapshot",
        snap.to_str().unwrap(),
        "--report",
        replay.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    let ours = |m: std::collections::BTreeMap<String, (String, Vec<String>)>| {
        m.into_iter()
            .filter(|(k, _)| k.contains(&c.prefix))
            .collect::<Vec<_>>()
    };
    assert_eq!(ours(verdicts(&report)), ours(verdicts(&replay)));

    // With `delete_pvs`, the Released volume is planned; the enforce run deletes from the
    // outside in and leaves the ConfigMap the running Pods still read.
    let with_pvs = policy(&c, &app, &lease, true);
    let report = c.path("plan-pvs.json");
    let plan = audit(&c, &with_pvs, &report);
    assert_verdict(
        &report,
        &format!("PersistentVolume /{released}"),
        "delete",
        "not-in-repository",
    );
    let order = |kind: &str, name: &str| -> u64 {
        plan["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == kind && f["name"] == name)
            .and_then(|f| f["plan_order"].as_u64())
            .unwrap_or_else(|| panic!("{kind} {name} is not planned"))
    };
    assert!(order("Ingress", "hand") < order("Service", "hand"));
    assert!(order("Service", "hand") < order("Deployment", "hand"));
    assert!(order("CronJob", "hand-cron") < order("Deployment", "hand"));
    assert!(order("Deployment", "hand") < order("PersistentVolume", &released));
    assert!(order("PersistentVolume", &released) < order("Namespace", &gone));

    let backup = c.path("backups");
    let outcome = c.path("outcome.json");
    let out = c.driftsweep_with(
        &[
            "run",
            "--enforce",
            "--policy",
            with_pvs.to_str().unwrap(),
            "--plan",
            report.to_str().unwrap(),
            "--backup",
            backup.to_str().unwrap(),
            "--report",
            outcome.to_str().unwrap(),
        ],
        &[("DRIFTSWEEP_LEASE_SECONDS", "3")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    for (api_version, kind) in [
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("networking.k8s.io/v1", "Ingress"),
    ] {
        assert!(
            c.get(api_version, kind, Some(&app), "hand").is_none(),
            "{kind} hand deleted"
        );
    }
    assert!(
        c.get("batch/v1", "CronJob", Some(&app), "hand-cron")
            .is_none()
    );
    assert!(c.get("v1", "PersistentVolume", None, &released).is_none());
    // What must stay, stayed.
    assert!(
        c.get("v1", "ConfigMap", Some(&app), "hand-config")
            .is_some()
    );
    assert!(
        c.get("apps/v1", "Deployment", Some(&app), "grafana")
            .is_some()
    );
    assert!(c.get("apps/v1", "Deployment", Some(&app), "api").is_some());
    assert!(c.get("v1", "Service", Some(&app), "api").is_some());
    assert!(c.get("v1", "Namespace", None, &legacy).is_some());

    // Once the garbage collector has taken the hand-made Deployment's Pods, its ConfigMap is
    // planned.
    c.wait_for("the orphan's Pods to go", || {
        let pods = c
            .send(
                "GET",
                &format!("/api/v1/namespaces/{app}/pods?labelSelector=app%3Dhand"),
                None,
            )
            .unwrap();
        let sets = c
            .send(
                "GET",
                &format!("/apis/apps/v1/namespaces/{app}/replicasets?labelSelector=app%3Dhand"),
                None,
            )
            .unwrap();
        pods["items"].as_array().unwrap().is_empty() && sets["items"].as_array().unwrap().is_empty()
    });
    let report = c.path("after.json");
    audit(&c, &with_pvs, &report);
    assert_verdict(
        &report,
        &format!("ConfigMap {app}/hand-config"),
        "delete",
        "not-in-repository",
    );
    drop(kubelet);
}

/// A custom resource named `group/version/Kind` in the policy: found through discovery,
/// audited by the same rules, and deleted by enforce.
#[test]
fn a_custom_kind_named_by_group_version_kind_is_audited_through_discovery() {
    let c = TestCluster::start();
    let app = c.ns("crd");
    let lease = c.ns("crd-lease");
    c.namespace(&app);
    c.namespace(&lease);
    let crd = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    match c.send(
        "POST",
        crd,
        Some(&json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.e2e.driftsweep.io"},
            "spec": {"group": "e2e.driftsweep.io", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})),
    ) {
        Ok(_) => {}
        Err(e) if e.code() == Some(409) => {}
        Err(e) => panic!("creating the CRD: {e}"),
    }
    let widgets = format!("/apis/e2e.driftsweep.io/v1/namespaces/{app}/widgets");
    c.wait_for("the CRD to be served", || {
        c.send("GET", &widgets, None).is_ok()
    });
    for (name, annotations) in [
        ("stray", json!({})),
        ("pinned", json!({"driftsweep.io/keep": "true"})),
    ] {
        c.send(
            "POST",
            &widgets,
            Some(
                &json!({"apiVersion": "e2e.driftsweep.io/v1", "kind": "Widget",
                "metadata": {"name": name, "namespace": app, "annotations": annotations,
                    "labels": {"driftsweep-e2e": c.prefix}}, "spec": {"size": 3}}),
            ),
        )
        .unwrap();
    }
    let policy = crate::write(
        c.dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: e2e\nkubernetes:\n  namespaces: [\"{app}\"]\n  protected_namespaces: [kube-system, kube-public, \"{lease}\"]\n  kinds: [ConfigMap, e2e.driftsweep.io/v1/Widget]\nsafety:\n  min_age_hours: 0\n  max_deletions: 100000\n  lease_namespace: \"{lease}\"\n"
        ),
    );
    let report = c.path("plan.json");
    audit(&c, &policy, &report);
    assert_verdict(
        &report,
        &format!("Widget {app}/stray"),
        "delete",
        "not-in-repository",
    );
    assert_verdict(&report, &format!("Widget {app}/pinned"), "keep", "opt-out");

    let out = c.driftsweep_with(
        &[
            "run",
            "--enforce",
            "--policy",
            policy.to_str().unwrap(),
            "--plan",
            report.to_str().unwrap(),
            "--backup",
            c.path("backups").to_str().unwrap(),
        ],
        &[("DRIFTSWEEP_LEASE_SECONDS", "3")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    let gone = c.send("GET", &format!("{widgets}/stray"), None);
    assert_eq!(
        gone.err().and_then(|e| e.code()),
        Some(404),
        "the stray Widget is deleted"
    );
    assert!(c.send("GET", &format!("{widgets}/pinned"), None).is_ok());
    // The backup holds the deleted Widget whole.
    let backups = crate::kubernetes::walk(&c.path("backups"));
    let widget_backup = backups
        .iter()
        .find(|p| {
            let text = p.to_string_lossy();
            text.contains(&format!("kubernetes/Widget/{app}/stray."))
        })
        .unwrap_or_else(|| panic!("no backup of the Widget in {backups:?}"));
    assert!(
        std::fs::read_to_string(widget_backup)
            .unwrap()
            .contains("\"size\": 3")
    );
    let _ = c.send("DELETE", &format!("{crd}/widgets.e2e.driftsweep.io"), None);
}
