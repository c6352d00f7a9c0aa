//! Each keep rule is pinned by a case a naive cleanup tool deletes; each delete rule by a
//! case it must catch.

use serde_json::{Value, json};

use crate::evaluate::testkit::{cluster, desired, evaluate, objects, policy, reported, verdict};
use crate::evaluate::{Action, Reason};
use crate::inventory::{Gap, Protects, Provider};

const POLICY: &str = "version: 1\nname: t\nkubernetes:\n  namespaces: [app]\n  protected_namespaces: [shared-infra]\n  keep:\n    - {kind: Secret, name: 'tls-*'}\n";
const OLD: &str = "2025-01-01T00:00:00Z";

fn ns(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "uid": format!("uid-ns-{name}"), "creationTimestamp": OLD}})
}

fn obj(kind: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "app", "uid": format!("uid-{kind}-{name}"), "creationTimestamp": OLD}})
}

fn with(mut v: Value, pointer_key: &str, value: Value) -> Value {
    v.as_object_mut()
        .unwrap()
        .insert(pointer_key.to_string(), value);
    v
}

fn meta(mut v: Value, key: &str, value: Value) -> Value {
    v["metadata"]
        .as_object_mut()
        .unwrap()
        .insert(key.to_string(), value);
    v
}

fn deployment(name: &str, replicas: i64, pod_spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "app", "uid": format!("uid-deploy-{name}"), "creationTimestamp": OLD},
        "spec": {"replicas": replicas, "template": {"spec": pod_spec}}})
}

fn run(items: Vec<Value>) -> crate::evaluate::Findings {
    let mut all = vec![ns("app")];
    all.extend(items);
    evaluate(&policy(POLICY), &desired(vec![]), &cluster(all))
}

#[track_caller]
pub(super) fn assert_kept(
    findings: &crate::evaluate::Findings,
    kind: &str,
    name: &str,
    reason: Reason,
) {
    let (action, reasons) = verdict(findings, kind, Some("app"), name);
    assert_eq!(
        action,
        Action::Keep,
        "{kind} {name} must be kept: {reasons:?}"
    );
    assert!(
        reasons.contains(&reason),
        "{kind} {name}: expected {reason:?} in {reasons:?}"
    );
}

#[track_caller]
pub(super) fn assert_deleted(findings: &crate::evaluate::Findings, kind: &str, name: &str) {
    let (action, reasons) = verdict(findings, kind, Some("app"), name);
    assert_eq!(
        action,
        Action::Delete,
        "{kind} {name} should be deleted: {reasons:?}"
    );
}

#[test]
fn orphans_in_repository_namespaces_are_deleted() {
    let f = run(vec![
        obj("ConfigMap", "old-config"),
        obj("Secret", "old-secret"),
        obj("ServiceAccount", "old-sa"),
    ]);
    assert_deleted(&f, "ConfigMap", "old-config");
    assert_deleted(&f, "Secret", "old-secret");
    assert_deleted(&f, "ServiceAccount", "old-sa");
    assert_eq!(
        verdict(&f, "Secret", Some("app"), "old-secret").1,
        vec![Reason::NotInRepository]
    );
}

#[test]
fn kubernetes_managed_objects_are_kept() {
    let f = run(vec![
        obj("ConfigMap", "kube-root-ca.crt"),
        obj("ServiceAccount", "default"),
        with(
            obj("Secret", "sa-token"),
            "type",
            json!("kubernetes.io/service-account-token"),
        ),
        with(
            obj("Secret", "sh.helm.release.v1.prom.v3"),
            "type",
            json!("helm.sh/release.v1"),
        ),
        meta(
            obj("ConfigMap", "addon"),
            "labels",
            json!({"addonmanager.kubernetes.io/mode": "Reconcile"}),
        ),
    ]);
    for (kind, name) in [
        ("ConfigMap", "kube-root-ca.crt"),
        ("ServiceAccount", "default"),
        ("Secret", "sa-token"),
        ("Secret", "sh.helm.release.v1.prom.v3"),
        ("ConfigMap", "addon"),
    ] {
        assert_kept(&f, kind, name, Reason::SystemManaged);
    }
}

#[test]
fn a_secret_used_only_by_a_suspended_cronjob_is_kept() {
    let cronjob = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "export", "namespace": "app", "uid": "cj", "creationTimestamp": OLD},
        "spec": {"suspend": true, "schedule": "0 3 * * 0", "jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "x:1"}],
            "volumes": [{"name": "creds", "secret": {"secretName": "export-creds"}}]}}}}}});
    let f = run(vec![cronjob, obj("Secret", "export-creds")]);
    assert_kept(&f, "Secret", "export-creds", Reason::InUse);
}

#[test]
fn a_configmap_of_a_deployment_scaled_to_zero_is_kept() {
    let d = deployment(
        "worker",
        0,
        json!({"containers": [{"name": "w", "image": "x:1",
        "envFrom": [{"configMapRef": {"name": "worker-config"}}]}]}),
    );
    let f = run(vec![d, obj("ConfigMap", "worker-config")]);
    assert_kept(&f, "ConfigMap", "worker-config", Reason::InUse);
}

#[test]
fn every_reference_site_keeps_its_target() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p", "namespace": "app", "uid": "pod", "creationTimestamp": OLD},
    "spec": {
        "serviceAccountName": "runner",
        "initContainers": [{"name": "init", "image": "x", "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "init-secret", "key": "k"}}}]}],
        "containers": [{"name": "c", "image": "x", "env": [{"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-config", "key": "k"}}}]}],
        "volumes": [
            {"name": "p", "projected": {"sources": [{"secret": {"name": "projected-secret"}}, {"configMap": {"name": "projected-config"}}]}},
            {"name": "csi", "csi": {"driver": "secrets-store.csi.k8s.io", "nodePublishSecretRef": {"name": "csi-creds"}}},
            {"name": "d", "persistentVolumeClaim": {"claimName": "pod-data"}}
        ]}});
    let sa = with(
        obj("ServiceAccount", "runner"),
        "imagePullSecrets",
        json!([{"name": "registry-pull"}]),
    );
    let ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "app", "uid": "ing", "creationTimestamp": OLD},
        "spec": {"tls": [{"hosts": ["a.example.com"], "secretName": "web-tls-cert"}]}});
    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "app", "uid": "sts", "creationTimestamp": OLD},
        "spec": {"replicas": 0, "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
                 "template": {"spec": {"containers": [{"name": "db", "image": "pg"}]}}}});
    let mut items = vec![pod, sa, ingress, sts];
    for (kind, name) in [
        ("Secret", "init-secret"),
        ("ConfigMap", "env-config"),
        ("Secret", "projected-secret"),
        ("ConfigMap", "projected-config"),
        ("Secret", "csi-creds"),
        ("Secret", "registry-pull"),
        ("Secret", "web-tls-cert"),
        ("PersistentVolumeClaim", "pod-data"),
        ("PersistentVolumeClaim", "data-db-0"),
        ("PersistentVolumeClaim", "data-db-12"),
        ("PersistentVolumeClaim", "data-db-old"),
    ] {
        items.push(obj(kind, name));
    }
    let p = policy("version: 1\nname: t\nkubernetes:\n  namespaces: [app]\n  delete_pvcs: true\n");
    let mut all = vec![ns("app")];
    all.extend(items);
    let f = evaluate(&p, &desired(vec![]), &cluster(all));
    for (kind, name) in [
        ("ServiceAccount", "runner"),
        ("Secret", "init-secret"),
        ("ConfigMap", "env-config"),
        ("Secret", "projected-secret"),
        ("ConfigMap", "projected-config"),
        ("Secret", "csi-creds"),
        ("Secret", "registry-pull"),
        ("Secret", "web-tls-cert"),
        ("PersistentVolumeClaim", "pod-data"),
        ("PersistentVolumeClaim", "data-db-0"),
        ("PersistentVolumeClaim", "data-db-12"),
    ] {
        assert_kept(&f, kind, name, Reason::InUse);
    }
    // `data-db-old` is not an ordinal of the StatefulSet's claims.
    assert_deleted(&f, "PersistentVolumeClaim", "data-db-old");
}

#[test]
fn pvcs_are_kept_unless_the_policy_opts_in() {
    let f = run(vec![obj("PersistentVolumeClaim", "scratch")]);
    assert_kept(
        &f,
        "PersistentVolumeClaim",
        "scratch",
        Reason::PvcDeletionDisabled,
    );
}

#[test]
fn ownership_keeps_only_while_the_owner_exists() {
    let owner = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "app", "uid": "owner-uid", "creationTimestamp": OLD},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    let owned = meta(
        obj("Secret", "owned"),
        "ownerReferences",
        json!([{"kind": "Deployment", "name": "web", "uid": "owner-uid"}]),
    );
    let dangling = meta(
        obj("Secret", "dangling"),
        "ownerReferences",
        json!([{"kind": "Deployment", "name": "gone", "uid": "gone-uid"}]),
    );
    let unlisted = meta(
        obj("Secret", "by-crd"),
        "ownerReferences",
        json!([{"kind": "Certificate", "name": "c", "uid": "crd-uid"}]),
    );
    let f = run(vec![owner, owned, dangling, unlisted]);
    assert_kept(&f, "Secret", "owned", Reason::Owned);
    assert_kept(&f, "Secret", "by-crd", Reason::Owned);
    assert_deleted(&f, "Secret", "dangling");
}

#[test]
fn opt_out_keeps_unless_explicitly_false() {
    let f = run(vec![
        meta(
            obj("Secret", "opted"),
            "annotations",
            json!({"driftsweep.io/keep": "true"}),
        ),
        meta(
            obj("Secret", "labelled"),
            "labels",
            json!({"driftsweep.io/keep": "yes"}),
        ),
        meta(
            obj("Secret", "not-opted"),
            "annotations",
            json!({"driftsweep.io/keep": "false"}),
        ),
    ]);
    assert_kept(&f, "Secret", "opted", Reason::OptOut);
    assert_kept(&f, "Secret", "labelled", Reason::OptOut);
    assert_deleted(&f, "Secret", "not-opted");
}

#[test]
fn a_custom_opt_out_annotation_replaces_the_default() {
    let p = policy(
        "version: 1\nname: t\nkubernetes:\n  namespaces: [app]\nsafety:\n  opt_out_annotation: example.com/retain\n",
    );
    let all = vec![
        ns("app"),
        meta(
            obj("Secret", "custom"),
            "annotations",
            json!({"example.com/retain": "true"}),
        ),
    ];
    let f = evaluate(&p, &desired(vec![]), &cluster(all));
    assert_kept(&f, "Secret", "custom", Reason::OptOut);
}

#[test]
fn young_objects_and_unknown_ages_are_kept() {
    let young = meta(
        obj("ConfigMap", "new"),
        "creationTimestamp",
        json!("2026-11-29T02:00:00Z"),
    );
    let mut ageless = obj("ConfigMap", "ageless");
    ageless["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("creationTimestamp");
    let f = run(vec![young, ageless]);
    assert_kept(&f, "ConfigMap", "new", Reason::TooYoung);
    assert_kept(&f, "ConfigMap", "ageless", Reason::AgeUnknown);
}

#[test]
fn keep_rules_and_manifests_keep_what_they_name() {
    let p = policy(POLICY);
    let d = desired(vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config", "namespace": "app"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kustomized"}}),
    ]);
    let all = vec![
        ns("app"),
        obj("Secret", "tls-frontend"),
        obj("ConfigMap", "app-config"),
        obj("ConfigMap", "kustomized"),
        obj("Secret", "other"),
    ];
    let f = evaluate(&p, &d, &cluster(all));
    assert_kept(&f, "Secret", "tls-frontend", Reason::KeepRule);
    assert_kept(&f, "ConfigMap", "app-config", Reason::DefinedInRepository);
    assert_kept(&f, "ConfigMap", "kustomized", Reason::DefinedInRepository);
    assert_deleted(&f, "Secret", "other");
}

#[test]
fn terminating_objects_are_not_deleted_again() {
    let f = run(vec![meta(
        obj("Secret", "going"),
        "deletionTimestamp",
        json!("2026-11-29T11:00:00Z"),
    )]);
    assert_kept(&f, "Secret", "going", Reason::Terminating);
}

#[test]
fn namespaces_outside_the_repository_are_deleted_unless_kept() {
    let p = policy(POLICY);
    let d = desired(vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "from-manifest"}}),
    ]);
    let mut all: Vec<Value> = [
        "app",
        "default",
        "kube-system",
        "kube-node-lease",
        "gke-managed-system",
        "gmp-public",
        "shared-infra",
        "from-manifest",
        "orphan",
    ]
    .iter()
    .map(|n| ns(n))
    .collect();
    all.push(meta(
        ns("opted"),
        "annotations",
        json!({"driftsweep.io/keep": "true"}),
    ));
    all.push(meta(
        ns("fresh"),
        "creationTimestamp",
        json!("2026-11-29T10:00:00Z"),
    ));
    let f = evaluate(&p, &d, &cluster(all));
    for n in [
        "default",
        "kube-system",
        "kube-node-lease",
        "gke-managed-system",
        "gmp-public",
    ] {
        assert_eq!(
            verdict(&f, "Namespace", None, n),
            (Action::Keep, vec![Reason::SystemManaged]),
            "{n}"
        );
    }
    assert_eq!(
        verdict(&f, "Namespace", None, "shared-infra").1,
        vec![Reason::ProtectedNamespace]
    );
    assert_eq!(
        verdict(&f, "Namespace", None, "app").1,
        vec![Reason::DefinedInRepository]
    );
    assert_eq!(
        verdict(&f, "Namespace", None, "from-manifest").1,
        vec![Reason::DefinedInRepository]
    );
    assert_eq!(
        verdict(&f, "Namespace", None, "opted").1,
        vec![Reason::OptOut]
    );
    assert_eq!(
        verdict(&f, "Namespace", None, "fresh").1,
        vec![Reason::TooYoung]
    );
    assert_eq!(
        verdict(&f, "Namespace", None, "orphan"),
        (Action::Delete, vec![Reason::NotInRepository])
    );
}

#[test]
fn objects_outside_repository_namespaces_are_not_audited() {
    let mut other = obj("ConfigMap", "theirs");
    other["metadata"]["namespace"] = json!("other-team");
    let f = run(vec![ns("other-team"), other]);
    assert!(!reported(&f, "ConfigMap", Some("other-team"), "theirs"));
}

#[test]
fn a_protected_namespace_listed_as_repository_namespace_keeps_its_contents() {
    let p = policy("version: 1\nname: t\nkubernetes:\n  namespaces: [app, kube-system]\n");
    let mut cm = obj("ConfigMap", "coredns-extra");
    cm["metadata"]["namespace"] = json!("kube-system");
    let f = evaluate(&p, &desired(vec![]), &cluster(vec![ns("kube-system"), cm]));
    assert_eq!(
        verdict(&f, "ConfigMap", Some("kube-system"), "coredns-extra").0,
        Action::Keep
    );
}

#[test]
fn an_opted_out_namespace_keeps_its_contents() {
    let f = evaluate(
        &policy(POLICY),
        &desired(vec![]),
        &cluster(vec![
            meta(
                ns("app"),
                "annotations",
                json!({"driftsweep.io/keep": "true"}),
            ),
            obj("Secret", "s"),
        ]),
    );
    assert_kept(&f, "Secret", "s", Reason::OptOut);
}

#[test]
fn incomplete_reference_lists_keep_every_audited_object() {
    let mut inventory = cluster(vec![ns("app"), obj("Secret", "maybe-used")]);
    inventory.gaps.push(Gap {
        provider: Provider::Kubernetes,
        what: "Pods".into(),
        error: "403 Forbidden".into(),
        protects: Protects::KubernetesReferences,
        failed: true,
    });
    let f = evaluate(&policy(POLICY), &desired(vec![]), &inventory);
    assert_kept(&f, "Secret", "maybe-used", Reason::ReferencesUnknown);
    // The namespace decision does not depend on references.
    assert_eq!(verdict(&f, "Namespace", None, "app").0, Action::Keep);
}

#[test]
fn kinds_the_policy_does_not_audit_are_left_alone() {
    let p = policy("version: 1\nname: t\nkubernetes:\n  namespaces: [app]\n  kinds: [ConfigMap]\n");
    let f = evaluate(
        &p,
        &desired(vec![]),
        &cluster(vec![ns("app"), obj("Secret", "s"), obj("ConfigMap", "c")]),
    );
    assert!(!reported(&f, "Secret", Some("app"), "s"));
    assert_deleted(&f, "ConfigMap", "c");
    let _ = objects(vec![]);
}

#[test]
fn an_orphan_namespace_says_what_its_deletion_takes_along() {
    let inside = |v: Value| {
        let mut v = v;
        v["metadata"]["namespace"] = json!("stray");
        v
    };
    let pod = |name: &str, phase: &str| {
        inside(with(
            with(
                obj("Pod", name),
                "spec",
                json!({"containers": [{"name": "c", "image": "x"}]}),
            ),
            "status",
            json!({"phase": phase}),
        ))
    };
    let findings = run(vec![
        ns("stray"),
        inside(deployment(
            "api",
            2,
            json!({"containers": [{"name": "c", "image": "x"}]}),
        )),
        pod("api-1", "Running"),
        pod("api-2", "Running"),
        pod("migrate", "Succeeded"),
        inside(obj("PersistentVolumeClaim", "data")),
        inside(obj("Secret", "db")),
        inside(obj("ConfigMap", "settings")),
        inside(obj("ConfigMap", "kube-root-ca.crt")),
        ns("empty"),
    ]);
    let stray = findings
        .items
        .iter()
        .find(|f| f.kind == "Namespace" && f.name == "stray")
        .unwrap();
    assert_eq!(stray.action, Action::Delete);
    let detail = stray.detail.clone().unwrap_or_default();
    assert!(
        detail.contains(
            "1 Deployment, 3 Pods (2 running), 1 PersistentVolumeClaim, 1 Secret, 2 ConfigMaps"
        ),
        "{detail}"
    );
    let contents = stray.contents.as_ref().expect("counted for the report");
    assert_eq!(contents.running_pods, 2);
    assert_eq!(contents.objects["Pod"], 3);
    assert_eq!(contents.objects["ConfigMap"], 2);
    let empty = findings
        .items
        .iter()
        .find(|f| f.kind == "Namespace" && f.name == "empty")
        .unwrap();
    assert_eq!(empty.action, Action::Delete);
    assert!(
        empty
            .contents
            .as_ref()
            .is_some_and(|c| c.objects.is_empty())
    );
    // A kept namespace carries no inventory of its contents.
    let app = findings
        .items
        .iter()
        .find(|f| f.kind == "Namespace" && f.name == "app")
        .unwrap();
    assert!(app.contents.is_none());
}
