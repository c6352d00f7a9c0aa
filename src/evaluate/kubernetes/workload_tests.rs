//! The workload, networking, RBAC and volume kinds (`kubernetes.kinds` beyond the default).
//! Each keep rule is pinned by a case that deletes the object when the rule is missing.

use serde_json::{Value, json};

use super::tests::{assert_deleted, assert_kept};
use crate::evaluate::testkit::{desired, objects, policy, reported, verdict};
use crate::evaluate::{Action, Findings, Reason};
use crate::inventory::Inventory;
use crate::manifests::Desired;

const OLD: &str = "2025-01-01T00:00:00Z";
const ALL_KINDS: &str = "[ConfigMap, Secret, ServiceAccount, PersistentVolumeClaim, Deployment, StatefulSet, DaemonSet, CronJob, Job, Service, Ingress, HorizontalPodAutoscaler, PodDisruptionBudget, NetworkPolicy, Role, RoleBinding, PersistentVolume]";

fn policy_text(extra: &str) -> String {
    format!(
        "version: 1\nname: t\nkubernetes:\n  namespaces: [app]\n  kinds: {ALL_KINDS}\n{extra}registry:\n  repositories: [reg.io/p/api]\n"
    )
}

fn ns(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "uid": format!("uid-ns-{name}"), "creationTimestamp": OLD}})
}

fn object(api_version: &str, kind: &str, name: &str, rest: Value) -> Value {
    let mut v = json!({"apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": "app", "uid": format!("uid-{kind}-{name}"),
            "creationTimestamp": OLD}});
    if let (Some(target), Some(extra)) = (v.as_object_mut(), rest.as_object()) {
        for (k, value) in extra {
            if k == "metadata" {
                if let Some(meta) = target.get_mut("metadata").and_then(Value::as_object_mut)
                    && let Some(m) = value.as_object()
                {
                    meta.extend(m.clone());
                }
            } else {
                target.insert(k.clone(), value.clone());
            }
        }
    }
    v
}

fn config_map(name: &str) -> Value {
    object("v1", "ConfigMap", name, json!({}))
}

fn deployment(name: &str, labels: Value, config: &str) -> Value {
    object(
        "apps/v1",
        "Deployment",
        name,
        json!({"spec": {"replicas": 1, "selector": {"matchLabels": labels.clone()},
            "template": {"metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "reg.io/p/api:1.3.0",
                    "envFrom": [{"configMapRef": {"name": config}}]}]}}}}),
    )
}

/// The ReplicaSet and Pod a Deployment's controller makes, owned in a chain.
fn made_by(deploy: &str, labels: Value, config: &str) -> Vec<Value> {
    let rs = object(
        "apps/v1",
        "ReplicaSet",
        &format!("{deploy}-5d4f"),
        json!({"metadata": {"ownerReferences": [{"kind": "Deployment", "name": deploy,
                "uid": format!("uid-Deployment-{deploy}")}]},
            "spec": {"template": {"metadata": {"labels": labels.clone()},
                "spec": {"containers": [{"name": "c", "image": "reg.io/p/api:1.3.0",
                    "envFrom": [{"configMapRef": {"name": config}}]}]}}}}),
    );
    let pod = object(
        "v1",
        "Pod",
        &format!("{deploy}-5d4f-x1"),
        json!({"metadata": {"labels": labels, "ownerReferences": [{"kind": "ReplicaSet",
                "name": format!("{deploy}-5d4f"), "uid": format!("uid-ReplicaSet-{deploy}-5d4f")}]},
            "spec": {"containers": [{"name": "c", "image": "reg.io/p/api:1.3.0",
                "envFrom": [{"configMapRef": {"name": config}}]}]},
            "status": {"phase": "Running"}}),
    );
    vec![rs, pod]
}

fn service(name: &str, selector: Value) -> Value {
    object(
        "v1",
        "Service",
        name,
        json!({"spec": {"selector": selector, "ports": [{"port": 80}]}}),
    )
}

fn ingress(name: &str, service: &str) -> Value {
    object(
        "networking.k8s.io/v1",
        "Ingress",
        name,
        json!({"spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}}),
    )
}

/// Every kind that keeps another was listed (a live read lists them all).
fn inventory(items: Vec<Value>) -> Inventory {
    let mut all = vec![ns("app")];
    all.extend(items);
    Inventory {
        kubernetes: Some(objects(all)),
        kubernetes_listed: [
            "Ingress",
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
            "APIService",
            "RoleBinding",
            "PersistentVolumeClaim",
            "Pod",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..Inventory::default()
    }
}

fn evaluate_with(extra: &str, manifests: Desired, items: Vec<Value>) -> Findings {
    crate::evaluate::testkit::evaluate(&policy(&policy_text(extra)), &manifests, &inventory(items))
}

fn run(items: Vec<Value>) -> Findings {
    evaluate_with("", desired(vec![]), items)
}

fn detail(f: &Findings, kind: &str, ns: Option<&str>, name: &str) -> String {
    f.items
        .iter()
        .find(|x| x.kind == kind && x.namespace.as_deref() == ns && x.name == name)
        .and_then(|x| x.detail.clone())
        .unwrap_or_default()
}

#[test]
fn hand_made_workloads_and_networking_are_planned_and_what_their_controllers_made_is_not() {
    let labels = json!({"app": "hand"});
    let mut items = vec![
        deployment("hand", labels.clone(), "hand-config"),
        service("hand", labels.clone()),
        ingress("hand", "hand"),
        object(
            "batch/v1",
            "CronJob",
            "nightly",
            json!({"spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}}}),
        ),
        object(
            "batch/v1",
            "Job",
            "nightly-29000000",
            json!({"metadata": {"ownerReferences": [{"kind": "CronJob", "name": "nightly",
                    "uid": "uid-CronJob-nightly"}]},
                "status": {"conditions": [{"type": "Complete", "status": "True"}]}}),
        ),
        config_map("hand-config"),
    ];
    items.extend(made_by("hand", labels, "hand-config"));
    let f = run(items);
    for (kind, name) in [
        ("Deployment", "hand"),
        ("Service", "hand"),
        ("Ingress", "hand"),
        ("CronJob", "nightly"),
    ] {
        assert_deleted(&f, kind, name);
    }
    // The CronJob's Job goes with it (the garbage collector), never on its own.
    assert_kept(&f, "Job", "nightly-29000000", Reason::Owned);
    // ReplicaSets and Pods are not audited: their owners are.
    assert!(!reported(&f, "ReplicaSet", Some("app"), "hand-5d4f"));
    assert!(!reported(&f, "Pod", Some("app"), "hand-5d4f-x1"));
    // The hand-made Deployment's ConfigMap waits for the next run.
    assert_kept(&f, "ConfigMap", "hand-config", Reason::UsedOnlyByOrphans);
    assert!(
        detail(&f, "ConfigMap", Some("app"), "hand-config").contains("Deployment/hand"),
        "names the orphan that uses it"
    );
    // Once the Deployment (and so its ReplicaSet and Pods) is gone, it is planned.
    let f = run(vec![config_map("hand-config")]);
    assert_deleted(&f, "ConfigMap", "hand-config");
}

#[test]
fn a_configmap_used_by_a_kept_workload_and_an_orphan_is_in_use() {
    let manifests = desired(vec![json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "app"}})]);
    let mut items = vec![
        deployment("api", json!({"app": "api"}), "shared"),
        deployment("old", json!({"app": "old"}), "shared"),
        config_map("shared"),
    ];
    items.extend(made_by("old", json!({"app": "old"}), "shared"));
    let f = evaluate_with("", manifests, items);
    assert_kept(&f, "ConfigMap", "shared", Reason::InUse);
    assert_deleted(&f, "Deployment", "old");
}

#[test]
fn helm_and_other_controllers_objects_are_kept() {
    let f = run(vec![
        object(
            "apps/v1",
            "Deployment",
            "grafana",
            json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "Helm"},
                "annotations": {"meta.helm.sh/release-name": "grafana"}}}),
        ),
        config_map("grafana-dashboards"),
        object(
            "v1",
            "Service",
            "cm-acme-http-solver-x",
            json!({"metadata": {"labels": {"acme.cert-manager.io/http01-solver": "true"}},
                "spec": {"selector": {"nothing": "here"}}}),
        ),
        object(
            "v1",
            "ConfigMap",
            "operator-state",
            json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "prometheus-operator"}}}),
        ),
        object(
            "v1",
            "ConfigMap",
            "left-by-deploy",
            json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "driftsweep"}}}),
        ),
    ]);
    assert_kept(&f, "Deployment", "grafana", Reason::ManagedElsewhere);
    assert!(detail(&f, "Deployment", Some("app"), "grafana").contains("Helm release `grafana`"));
    assert_kept(
        &f,
        "Service",
        "cm-acme-http-solver-x",
        Reason::ManagedElsewhere,
    );
    assert_kept(&f, "ConfigMap", "operator-state", Reason::ManagedElsewhere);
    // driftsweep's own deploys are the repository's tool, not another controller.
    assert_deleted(&f, "ConfigMap", "left-by-deploy");
    assert_deleted(&f, "ConfigMap", "grafana-dashboards");
}

#[test]
fn services_are_in_use_when_a_kept_pod_ingress_or_webhook_needs_them() {
    let manifests = desired(vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "app"}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "app"}}),
    ]);
    let mut items = vec![
        deployment("api", json!({"app": "api", "tier": "web"}), "api-config"),
        config_map("api-config"),
        // Selects the repository's Pods.
        service("api-debug", json!({"app": "api"})),
        // Named by the repository's Ingress.
        service("web-backend", json!({"app": "gone"})),
        ingress("web", "web-backend"),
        // Named only by a hand-made Ingress, which is planned too.
        service("stale", json!({"app": "gone"})),
        ingress("stale", "stale"),
        // Called by an admission webhook: deleting it blocks the cluster's writes.
        service("webhook", json!({"app": "gone"})),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "policy", "uid": "uid-vwc", "creationTimestamp": OLD},
            "webhooks": [{"name": "v.example.com", "clientConfig": {"service":
                {"name": "webhook", "namespace": "app", "path": "/validate"}}}]}),
        // No selector: its endpoints are set elsewhere.
        object(
            "v1",
            "Service",
            "external-db",
            json!({"spec": {"ports": [{"port": 5432}]}}),
        ),
    ];
    items.extend(made_by(
        "api",
        json!({"app": "api", "tier": "web"}),
        "api-config",
    ));
    let f = evaluate_with("", manifests, items);
    assert_kept(&f, "Service", "api-debug", Reason::InUse);
    assert_kept(&f, "Service", "web-backend", Reason::InUse);
    assert_kept(&f, "Service", "webhook", Reason::InUse);
    assert_kept(&f, "Service", "external-db", Reason::InUse);
    assert_deleted(&f, "Service", "stale");
    assert_deleted(&f, "Ingress", "stale");
    assert!(
        detail(&f, "Service", Some("app"), "stale").contains("Ingress/stale"),
        "{}",
        detail(&f, "Service", Some("app"), "stale")
    );
}

#[test]
fn a_service_is_kept_while_what_could_call_it_is_unknown() {
    let mut inv = inventory(vec![service("svc", json!({"app": "gone"}))]);
    inv.kubernetes_listed
        .retain(|k| k != "ValidatingWebhookConfiguration");
    let f = crate::evaluate::testkit::evaluate(&policy(&policy_text("")), &desired(vec![]), &inv);
    assert_kept(&f, "Service", "svc", Reason::ListingIncomplete);
}

#[test]
fn autoscalers_budgets_and_network_policies_of_kept_workloads_are_in_use() {
    let manifests = desired(vec![json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "app"}})]);
    let hpa = |name: &str, target: &str| {
        object(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            name,
            json!({"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "minReplicas": 2, "maxReplicas": 5}}),
        )
    };
    let items = vec![
        deployment("api", json!({"app": "api"}), "c"),
        hpa("api", "api"),
        hpa("gone", "deleted-long-ago"),
        object(
            "policy/v1",
            "PodDisruptionBudget",
            "api",
            json!({"spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "api"}}}}),
        ),
        object(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "allow-api",
            json!({"spec": {"podSelector": {"matchExpressions": [
                {"key": "app", "operator": "In", "values": ["api"]}]}}}),
        ),
        object(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "old-worker",
            json!({"spec": {"podSelector": {"matchLabels": {"app": "worker"}}}}),
        ),
    ];
    let f = evaluate_with("", manifests, items);
    assert_kept(&f, "HorizontalPodAutoscaler", "api", Reason::InUse);
    assert_kept(&f, "PodDisruptionBudget", "api", Reason::InUse);
    assert_kept(&f, "NetworkPolicy", "allow-api", Reason::InUse);
    assert_deleted(&f, "HorizontalPodAutoscaler", "gone");
    assert_deleted(&f, "NetworkPolicy", "old-worker");

    // A Deployment the repository's autoscaler scales is in use.
    let manifests = desired(vec![
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "api", "namespace": "app"}}),
    ]);
    let f = evaluate_with(
        "",
        manifests,
        vec![
            deployment("api", json!({"app": "api"}), "c"),
            hpa("api", "api"),
        ],
    );
    assert_kept(&f, "Deployment", "api", Reason::InUse);
}

#[test]
fn bindings_of_kept_accounts_and_of_programs_are_kept_and_their_roles_too() {
    let binding = |name: &str, role: &str, subject: Value| {
        object(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            name,
            json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                "subjects": [subject]}),
        )
    };
    let role = |name: &str| {
        object(
            "rbac.authorization.k8s.io/v1",
            "Role",
            name,
            json!({"rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
        )
    };
    let manifests = desired(vec![json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "api", "namespace": "app"}})]);
    let f = evaluate_with(
        "",
        manifests,
        vec![
            object("v1", "ServiceAccount", "api", json!({})),
            binding(
                "api-reads",
                "reader",
                json!({"kind": "ServiceAccount", "name": "api", "namespace": "app"}),
            ),
            role("reader"),
            binding(
                "ci-deploys",
                "deployer",
                json!({"kind": "User", "name": "ci@p.iam.gserviceaccount.com"}),
            ),
            role("deployer"),
            binding(
                "alice",
                "viewer",
                json!({"kind": "User", "name": "alice@example.com"}),
            ),
            role("viewer"),
            role("unused"),
        ],
    );
    assert_kept(&f, "RoleBinding", "api-reads", Reason::InUse);
    assert_kept(&f, "Role", "reader", Reason::InUse);
    assert_kept(&f, "RoleBinding", "ci-deploys", Reason::InUse);
    assert_kept(&f, "Role", "deployer", Reason::InUse);
    assert_deleted(&f, "RoleBinding", "alice");
    assert_deleted(&f, "Role", "viewer");
    assert_deleted(&f, "Role", "unused");
}

#[test]
fn a_job_still_running_is_in_use_and_a_finished_one_is_not() {
    let job = |name: &str, status: Value| {
        object(
            "batch/v1",
            "Job",
            name,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                "envFrom": [{"secretRef": {"name": format!("{name}-creds")}}]}]}}},
                "status": status}),
        )
    };
    let f = run(vec![
        job("migrate", json!({"active": 1})),
        job(
            "backfill",
            json!({"conditions": [{"type": "Complete", "status": "True"}]}),
        ),
        object("v1", "Secret", "migrate-creds", json!({})),
        object("v1", "Secret", "backfill-creds", json!({})),
    ]);
    assert_kept(&f, "Job", "migrate", Reason::InUse);
    assert_kept(&f, "Secret", "migrate-creds", Reason::InUse);
    assert_deleted(&f, "Job", "backfill");
    assert_kept(&f, "Secret", "backfill-creds", Reason::UsedOnlyByOrphans);
}

#[test]
fn an_old_version_of_the_product_left_running_is_an_orphan_and_a_repository_one_is_drift() {
    let image = |name: &str, tag: &str| {
        object(
            "apps/v1",
            "Deployment",
            name,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "api", "image": format!("reg.io/p/api:{tag}")}]}}}}),
        )
    };
    let mut manifests = desired(vec![json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "aia-api", "namespace": "app"},
        "spec": {"template": {"spec": {"containers": [{"name": "api", "image": "reg.io/p/api:${VERSION}"}]}}}})]);
    manifests.version = Some("1.3.0".to_string());
    for d in &mut manifests.objects {
        for c in &mut d.object.containers {
            c.image = c.image.replace("${VERSION}", "1.3.0");
        }
    }
    let f = evaluate_with(
        "",
        manifests,
        vec![
            image("aia-api", "1.2.0"),
            image("aia-api-v1-2-2", "1.2.2"),
            image("aia-api-copy", "1.3.0"),
        ],
    );
    let (action, reasons) = verdict(&f, "Deployment", Some("app"), "aia-api-v1-2-2");
    assert_eq!(
        (action, reasons),
        (Action::Delete, vec![Reason::OtherVersion])
    );
    assert!(detail(&f, "Deployment", Some("app"), "aia-api-v1-2-2").contains("api:1.2.2"));
    // Not the product's version problem: just not defined.
    let (_, reasons) = verdict(&f, "Deployment", Some("app"), "aia-api-copy");
    assert_eq!(reasons, vec![Reason::NotInRepository]);
    // The repository's own Deployment on another version is kept and reported as drift.
    assert_kept(&f, "Deployment", "aia-api", Reason::DefinedInRepository);
    assert!(
        f.items
            .iter()
            .any(|x| x.name == "aia-api" && x.action == Action::Drift)
    );
}

#[test]
fn blue_green_colours_and_previews_are_the_repository_s() {
    let manifests = desired(vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "app"}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "app"}}),
    ]);
    let colour = |c: &str| {
        object(
            "apps/v1",
            "Deployment",
            &format!("api-{c}"),
            json!({"metadata": {"labels": {"driftsweep.io/colour": c}}}),
        )
    };
    let f = evaluate_with(
        "",
        manifests,
        vec![
            colour("blue"),
            colour("green"),
            object(
                "v1",
                "Service",
                "api-preview",
                json!({"metadata": {"labels": {"driftsweep.io/preview": "true"}},
                    "spec": {"selector": {"app": "api"}}}),
            ),
            // A colour label on a Deployment the repository does not define proves nothing.
            object(
                "apps/v1",
                "Deployment",
                "other-blue",
                json!({"metadata": {"labels": {"driftsweep.io/colour": "blue"}}}),
            ),
        ],
    );
    assert_kept(&f, "Deployment", "api-blue", Reason::DefinedInRepository);
    assert_kept(&f, "Deployment", "api-green", Reason::DefinedInRepository);
    assert_kept(&f, "Service", "api-preview", Reason::DefinedInRepository);
    assert_deleted(&f, "Deployment", "other-blue");
}

#[test]
fn released_volumes_are_reported_and_deleted_only_with_delete_pvs() {
    let pv = |name: &str, phase: &str, claim_ns: &str, claim: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "uid": format!("uid-pv-{name}"), "creationTimestamp": OLD},
            "spec": {"capacity": {"storage": "10Gi"}, "persistentVolumeReclaimPolicy": "Retain",
                "claimRef": {"namespace": claim_ns, "name": claim, "uid": format!("uid-claim-{claim}")},
                "gcePersistentDisk": {"pdName": format!("disk-{name}")}},
            "status": {"phase": phase}})
    };
    let claim = object(
        "v1",
        "PersistentVolumeClaim",
        "data",
        json!({"metadata": {"uid": "uid-claim-data"}, "spec": {"volumeName": "pv-bound"}}),
    );
    let items = vec![
        pv("pv-released", "Released", "app", "gone"),
        pv("pv-bound", "Bound", "app", "data"),
        claim,
        // A Released volume whose claim's namespace is gone.
        pv("pv-ns-gone", "Released", "deleted-ns", "x"),
        // Another team's volume in a namespace that exists: not the repository's.
        ns("billing"),
        pv("pv-billing", "Released", "billing", "y"),
    ];
    let f = run(items.clone());
    let (action, reasons) = verdict(&f, "PersistentVolume", None, "pv-released");
    assert_eq!(action, Action::Keep);
    assert!(reasons.contains(&Reason::PvDeletionDisabled), "{reasons:?}");
    let text = detail(&f, "PersistentVolume", None, "pv-released");
    assert!(
        text.contains("10Gi") && text.contains("Retain") && text.contains("disk-pv-released"),
        "{text}"
    );
    assert!(!reported(&f, "PersistentVolume", None, "pv-billing"));

    let f = evaluate_with("  delete_pvs: true\n", desired(vec![]), items);
    assert_eq!(
        verdict(&f, "PersistentVolume", None, "pv-released").0,
        Action::Delete
    );
    assert_eq!(
        verdict(&f, "PersistentVolume", None, "pv-ns-gone").0,
        Action::Delete
    );
    let (action, reasons) = verdict(&f, "PersistentVolume", None, "pv-bound");
    assert_eq!(action, Action::Keep);
    assert!(reasons.contains(&Reason::InUse), "{reasons:?}");
}

#[test]
fn an_orphan_namespace_the_repository_points_at_is_kept() {
    let manifests = desired(vec![json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "app"}})]);
    let f = evaluate_with(
        "",
        manifests,
        vec![
            ns("legacy-db"),
            ns("old-metrics"),
            ns("ci-runners"),
            ns("monitoring-v1"),
            ns("abandoned"),
            object(
                "v1",
                "Service",
                "db",
                json!({"spec": {"type": "ExternalName", "externalName": "postgres.legacy-db.svc.cluster.local"}}),
            ),
            object(
                "v1",
                "ConfigMap",
                "settings",
                json!({"data": {"METRICS_URL": "http://push.old-metrics.svc:9091"}}),
            ),
            object(
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                "runner",
                json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [
                    {"kind": "ServiceAccount", "name": "runner", "namespace": "ci-runners"}]}),
            ),
            object(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                "scrape",
                json!({"spec": {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector":
                    {"matchLabels": {"kubernetes.io/metadata.name": "monitoring-v1"}}}]}]}}),
            ),
        ],
    );
    for name in ["legacy-db", "old-metrics", "ci-runners", "monitoring-v1"] {
        let (action, reasons) = verdict(&f, "Namespace", None, name);
        assert_eq!(action, Action::Keep, "{name}: {reasons:?}");
        assert!(
            reasons.contains(&Reason::ReferencedFromRepository),
            "{name}: {reasons:?}"
        );
    }
    assert!(detail(&f, "Namespace", None, "legacy-db").contains("app/Service/db"));
    assert_eq!(
        verdict(&f, "Namespace", None, "abandoned").0,
        Action::Delete
    );
}

#[test]
fn custom_kinds_are_named_by_group_version_kind_and_unknown_names_are_refused() {
    let p = policy(
        "version: 1\nname: t\nkubernetes:\n  namespaces: [app]\n  kinds: [ConfigMap, monitoring.coreos.com/v1/ServiceMonitor, apps/v1/Deployment]\n",
    );
    let kinds: Vec<String> = p
        .kubernetes
        .unwrap()
        .kinds
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "monitoring.coreos.com/v1/ServiceMonitor",
            "Deployment"
        ]
    );
    let problems = crate::policy::validate_source(
        "version: 1\nname: t\nkubernetes:\n  namespaces: [app]\n  kinds: [Deploymnet]\n",
    )
    .unwrap_err();
    let text = format!("{problems:?}");
    assert!(
        text.contains("Deploymnet") && text.contains("group/version/Kind"),
        "{text}"
    );

    let f = crate::evaluate::testkit::evaluate(
        &policy(
            "version: 1\nname: t\nkubernetes:\n  namespaces: [app]\n  kinds: [monitoring.coreos.com/v1/ServiceMonitor]\n",
        ),
        &desired(vec![]),
        &inventory(vec![object(
            "monitoring.coreos.com/v1",
            "ServiceMonitor",
            "old",
            json!({}),
        )]),
    );
    assert_deleted(&f, "ServiceMonitor", "old");
}

#[test]
fn with_the_default_kinds_no_workload_is_audited() {
    let f = crate::evaluate::testkit::evaluate(
        &policy("version: 1\nname: t\nkubernetes:\n  namespaces: [app]\n"),
        &desired(vec![]),
        &inventory(vec![
            deployment("hand", json!({"app": "hand"}), "hand-config"),
            config_map("hand-config"),
        ]),
    );
    assert!(!reported(&f, "Deployment", Some("app"), "hand"));
    assert_kept(&f, "ConfigMap", "hand-config", Reason::InUse);
}

#[test]
fn a_kind_of_the_same_name_in_another_group_is_not_the_audited_one() {
    let f = run(vec![object(
        "serving.knative.dev/v1",
        "Service",
        "fn",
        json!({}),
    )]);
    assert!(
        !reported(&f, "Service", Some("app"), "fn"),
        "a Knative Service is not a core Service"
    );
}

#[test]
fn without_a_version_the_last_healthy_deploy_names_the_repository_s_version() {
    let manifests = desired(vec![json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "aia-api", "namespace": "app"},
        "spec": {"template": {"spec": {"containers": [{"name": "api", "image": "reg.io/p/api:${VERSION}"}]}}}})]);
    let old = object(
        "apps/v1",
        "Deployment",
        "aia-api-v1-2-2",
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "api", "image": "reg.io/p/api:1.2.2"}]}}}}),
    );
    // No version and no deploy record: nothing can be said about versions.
    let f = evaluate_with("", manifests.clone(), vec![old.clone()]);
    assert_eq!(
        verdict(&f, "Deployment", Some("app"), "aia-api-v1-2-2").1,
        vec![Reason::NotInRepository]
    );
    let record = object(
        "v1",
        "Secret",
        "aia-api.deploy.7",
        json!({"type": crate::deploy::history::SECRET_TYPE,
            "metadata": {"labels": {crate::deploy::history::RESULT_LABEL: "healthy",
                    crate::deploy::history::ENVIRONMENT_LABEL: "production", "driftsweep.io/sequence": "7"},
                "annotations": {crate::deploy::history::VERSION_ANNOTATION: "1.3.0",
                    crate::deploy::history::DIGESTS_ANNOTATION:
                        json!({"aia-api": "reg.io/p/api:1.3.0@sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}).to_string()}}}),
    );
    let f = evaluate_with("", manifests, vec![old, record]);
    assert_eq!(
        verdict(&f, "Deployment", Some("app"), "aia-api-v1-2-2").1,
        vec![Reason::OtherVersion]
    );
    assert!(
        detail(&f, "Deployment", Some("app"), "aia-api-v1-2-2").contains("last deploys run 1.3.0")
    );
}
