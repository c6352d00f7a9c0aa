//! The Kubernetes permissions in `k8s/driftsweep/rbac.yaml` are exactly what driftsweep sends:
//! every list a run makes is granted, enforce can get and delete exactly the audited kinds,
//! and nothing else is granted.

use std::collections::BTreeSet;

use driftsweep::inventory::cluster::{content_kinds, kind_named, known_kind};

type Grants = BTreeSet<(String, String, String)>;

fn role(name: &str) -> Grants {
    let text = std::fs::read_to_string(crate::root().join("k8s/driftsweep/rbac.yaml")).unwrap();
    let docs = driftsweep::yaml::parse_documents(&text).unwrap();
    let doc = docs
        .iter()
        .find(|d| {
            matches!(d.value["kind"].as_str(), Some("ClusterRole" | "Role"))
                && d.value["metadata"]["name"] == name
        })
        .unwrap_or_else(|| panic!("no role {name}"));
    let mut grants = Grants::new();
    for rule in doc.value["rules"].as_array().unwrap() {
        let list = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    grants.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    grants
}

#[test]
fn the_roles_grant_exactly_the_verbs_driftsweep_sends() {
    let (policy, desired) =
        driftsweep::settings::load_policy(&crate::root().join("policies/aia.yaml"), None).unwrap();
    let plan = driftsweep::inventory::live::read_plan(&policy.policy, &desired);

    // Every list a run of the product's own policy makes, and the lists of a namespace's
    // contents enforce backs up before deleting it.
    let mut needed = Grants::new();
    for (api_version, kind, _) in &plan.kinds {
        let info = known_kind(api_version, kind).unwrap_or_else(|| panic!("{kind} is known"));
        needed.insert((info.group.clone(), info.plural.clone(), "list".to_string()));
    }
    for info in content_kinds() {
        needed.insert((info.group, info.plural, "list".to_string()));
    }
    assert_eq!(
        role("driftsweep-read"),
        needed,
        "read: list on exactly these"
    );

    let mut delete = Grants::new();
    let mut audited: Vec<String> = policy
        .policy
        .kubernetes
        .as_ref()
        .unwrap()
        .kinds
        .iter()
        .map(|k| k.as_str().to_string())
        .collect();
    audited.push("Namespace".to_string());
    for kind in &audited {
        let info = kind_named(kind).unwrap();
        for verb in ["get", "delete"] {
            delete.insert((info.group.clone(), info.plural.clone(), verb.to_string()));
        }
    }
    assert_eq!(
        role("driftsweep-delete"),
        delete,
        "enforce: get and delete, audited kinds only"
    );

    let lease: Grants = ["get", "create", "update"]
        .iter()
        .map(|v| {
            (
                "coordination.k8s.io".to_string(),
                "leases".to_string(),
                v.to_string(),
            )
        })
        .collect();
    assert_eq!(role("driftsweep-lease"), lease);
}

/// `(group, resource, verb)` of a request to the API server; `None` for non-resource paths
/// (`/version`, discovery).
pub fn grant_of(r: &crate::proxy::Logged) -> Option<(String, String, String)> {
    let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (resource, name) = match rest {
        [] => return None,
        ["namespaces", _ns, resource, name @ ..] => (*resource, name.first()),
        [resource, name @ ..] => (*resource, name.first()),
    };
    let verb = match (r.method.as_str(), name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if r.query.contains("watch=") => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some((group.to_string(), resource.to_string(), verb.to_string()))
}

/// What the requests logged since the last clear needed, less the SelfSubjectAccessReviews
/// enforce asks first (every authenticated account may, through `system:basic-user`).
fn used(c: &crate::cluster::TestCluster) -> Grants {
    let requests = c.proxy().requests();
    let denied: Vec<_> = requests.iter().filter(|r| r.status == 403).collect();
    assert!(
        denied.is_empty(),
        "nothing the account needs is missing: {denied:?}"
    );
    requests
        .iter()
        .filter_map(grant_of)
        .filter(|(_, resource, _)| resource != "selfsubjectaccessreviews")
        .collect()
}

#[test]
fn the_shipped_accounts_audit_and_enforce_with_exactly_what_they_are_granted() {
    use serde_json::json;

    let c = crate::cluster::TestCluster::with_proxy();
    // The production overlay, as an operator applies it; its CronJob never fires here.
    let rendered = std::process::Command::new("kubectl")
        .args(["kustomize", "k8s/overlays/production"])
        .current_dir(crate::root())
        .output()
        .expect("kubectl runs (scripts/test.sh installs it)");
    assert!(rendered.status.success(), "{}", crate::stderr(&rendered));
    c.kubectl_apply(&crate::stdout(&rendered));
    c.send(
        "PATCH",
        "/apis/batch/v1/namespaces/driftsweep/cronjobs/driftsweep",
        Some(&json!({"spec": {"suspend": true}})),
    )
    .unwrap();

    // One object of every kind each grant covers: an orphan of every audited kind, what
    // proves use, a Service the manifests define, and a stray namespace.
    let app = c.ns("app");
    let stray = c.ns("stray");
    c.namespace(&app);
    c.namespace(&stray);
    let meta = |name: &str| json!({"name": name, "namespace": app});
    c.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("orphan-cm")}));
    c.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("used-cm")}));
    c.create(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("orphan-secret"),
        "stringData": {"k": "v"}}),
    );
    c.create(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("orphan-sa")}));
    c.create(
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("orphan-pvc"),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    c.create(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"),
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1.0.0",
                    "envFrom": [{"configMapRef": {"name": "used-cm"}}]}]}}}}),
    );
    // An orphan of each workload, networking and RBAC kind the product's policy audits.
    let template = json!({"metadata": {"labels": {"app": "stray"}},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/stray:1.0.0"}]}});
    let job_template = json!({"spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "registry.invalid/stray:1.0.0"}]}});
    let selector = json!({"matchLabels": {"app": "stray"}});
    for object in [
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("orphan-sts"),
            "spec": {"replicas": 0, "serviceName": "orphan-sts", "selector": selector, "template": template}}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta("orphan-ds"),
            "spec": {"selector": selector, "template": template}}),
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta("orphan-cron"),
            "spec": {"schedule": "0 3 1 1 *", "jobTemplate": {"spec": {"template": job_template}}}}),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta("orphan-job"),
            "spec": {"suspend": true, "template": job_template}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("orphan-svc"),
            "spec": {"selector": {"app": "nothing"}, "ports": [{"port": 80}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta("orphan-ing"),
            "spec": {"defaultBackend": {"service": {"name": "orphan-svc", "port": {"number": 80}}}}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("orphan-np"),
            "spec": {"podSelector": {"matchLabels": {"app": "nothing"}}}}),
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta("orphan-hpa"),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gone"},
                "minReplicas": 1, "maxReplicas": 2}}),
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta("orphan-pdb"),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "nothing"}}}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta("orphan-role"),
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta("orphan-rb"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "orphan-role"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice@example.com"}]}),
    ] {
        c.create(object);
    }
    // Enforce refuses what changed since review: let the controllers write their first
    // status before the audit.
    let status = |api_version: &str, kind: &str, name: &str| {
        c.get(api_version, kind, Some(&app), name)
            .map(|o| o["status"].clone())
            .unwrap_or_default()
    };
    c.wait_for("the controllers to see the orphans", || {
        status("autoscaling/v2", "HorizontalPodAutoscaler", "orphan-hpa")["conditions"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
            && status("batch/v1", "Job", "orphan-job")["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|k| k["type"] == "Suspended"))
            && status("apps/v1", "StatefulSet", "orphan-sts")["observedGeneration"] == 1
            && status("apps/v1", "DaemonSet", "orphan-ds")["observedGeneration"] == 1
            && status("apps/v1", "Deployment", "web")["observedGeneration"] == 1
    });
    c.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "inside", "namespace": stray}}));
    crate::write(
        c.dir.path(),
        "manifests/web.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: {app}\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n"
        ),
    );
    // The kinds the product's own policy audits, so that every grant is used.
    let (aia, _) =
        driftsweep::settings::load_policy(&crate::root().join("policies/aia.yaml"), None).unwrap();
    let kinds = format!(
        "[{}]",
        aia.policy
            .kubernetes
            .as_ref()
            .unwrap()
            .kinds
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let policy = crate::write(
        c.dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: e2e\nkubernetes:\n  namespaces: [\"{app}\"]\n  protected_namespaces: [kube-system, kube-public, driftsweep]\n  manifests: [manifests]\n  kinds: {kinds}\n  delete_pvcs: true\nsafety:\n  min_age_hours: 0\n  max_deletions: 100000\n  lease_namespace: driftsweep\n"
        ),
    );
    let policy = policy.to_str().unwrap();
    let audit = c.kubeconfig_with_token("audit", &c.token("driftsweep", "driftsweep"));
    let enforcer = c.kubeconfig_with_token("enforce", &c.token("driftsweep", "driftsweep-enforce"));
    // Only the enforce account may hold the enforce Lease.
    let lease = driftsweep::inventory::cluster::KindInfo {
        group: "coordination.k8s.io".to_string(),
        version: "v1".to_string(),
        kind: "Lease".to_string(),
        plural: "leases".to_string(),
        namespaced: true,
    };
    let may_take_lease = |kubeconfig: &std::path::Path| {
        c.block_on(async {
            let account = driftsweep::inventory::cluster::Cluster::connect(
                &driftsweep::inventory::cluster::ClusterOptions {
                    kubeconfig: Some(kubeconfig.to_path_buf()),
                    context: None,
                },
            )
            .await
            .unwrap();
            account
                .can("create", &lease, Some("driftsweep"))
                .await
                .unwrap()
        })
    };
    assert!(
        !may_take_lease(&audit),
        "the nightly account cannot block enforce"
    );
    assert!(may_take_lease(&enforcer));
    let run = |kubeconfig: &std::path::Path, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([
            "--policy",
            policy,
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ]);
        crate::driftsweep(&all)
    };

    // The nightly account audits: everything it needs is granted and everything granted is
    // used.
    let plan = c.path("plan.json");
    c.proxy().clear_requests();
    let out = run(&audit, &["run", "--report", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    assert_eq!(
        used(&c),
        role("driftsweep-read"),
        "the audit lists exactly its grants"
    );
    c.narrow_to_own(&plan);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    let planned: std::collections::BTreeSet<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["action"] == "delete")
        .map(|f| {
            format!(
                "{} {}",
                f["kind"].as_str().unwrap(),
                f["name"].as_str().unwrap()
            )
        })
        .collect();
    let expected: std::collections::BTreeSet<String> = [
        "ConfigMap orphan-cm".to_string(),
        "Secret orphan-secret".to_string(),
        "ServiceAccount orphan-sa".to_string(),
        "PersistentVolumeClaim orphan-pvc".to_string(),
        format!("Namespace {stray}"),
        "Deployment web".to_string(),
        "StatefulSet orphan-sts".to_string(),
        "DaemonSet orphan-ds".to_string(),
        "CronJob orphan-cron".to_string(),
        "Job orphan-job".to_string(),
        "Service orphan-svc".to_string(),
        "Ingress orphan-ing".to_string(),
        "NetworkPolicy orphan-np".to_string(),
        "HorizontalPodAutoscaler orphan-hpa".to_string(),
        "PodDisruptionBudget orphan-pdb".to_string(),
        "Role orphan-role".to_string(),
        "RoleBinding orphan-rb".to_string(),
    ]
    .into();
    assert_eq!(planned, expected);

    // The same account cannot enforce: it says why, deletes nothing and takes no Lease.
    let backup = c.path("backups");
    let enforce_args = [
        "run",
        "--enforce",
        "--plan",
        plan.to_str().unwrap(),
        "--backup",
        backup.to_str().unwrap(),
    ];
    c.proxy().clear_requests();
    let out = run(&audit, &enforce_args);
    assert_eq!(out.status.code(), Some(1), "{}", crate::stderr(&out));
    let err = crate::stderr(&out);
    assert!(
        err.contains("may not delete")
            && err.contains("`delete configmaps` in")
            && err.contains("driftsweep-enforce"),
        "{err}"
    );
    let touched: Vec<_> = c
        .proxy()
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && !r.path.ends_with("/selfsubjectaccessreviews"))
        .collect();
    assert!(touched.is_empty(), "no delete, no Lease: {touched:?}");
    assert!(c.get("v1", "ConfigMap", Some(&app), "orphan-cm").is_some());

    // The enforce account deletes the plan, with exactly its grants (creating the Lease, as
    // on a new cluster: an earlier run on this control plane may have left one).
    let _ = c.send(
        "DELETE",
        "/apis/coordination.k8s.io/v1/namespaces/driftsweep/leases/driftsweep",
        None,
    );
    c.proxy().clear_requests();
    let out = run(&enforcer, &enforce_args);
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    let used = used(&c);
    let read = role("driftsweep-read");
    let lists: Grants = used.iter().filter(|g| g.2 == "list").cloned().collect();
    assert!(lists.is_subset(&read), "{:?}", lists.difference(&read));
    let mut granted = role("driftsweep-delete");
    granted.extend(role("driftsweep-lease"));
    let others: Grants = used.difference(&lists).cloned().collect();
    assert_eq!(
        others, granted,
        "enforce uses exactly its get, delete and Lease grants"
    );
    assert!(c.get("v1", "ConfigMap", Some(&app), "orphan-cm").is_none());
    // The orphan Deployment's ConfigMap waits for the next run.
    assert!(c.get("v1", "ConfigMap", Some(&app), "used-cm").is_some());
    assert!(c.get("apps/v1", "Deployment", Some(&app), "web").is_none());
    assert!(
        c.get("batch/v1", "CronJob", Some(&app), "orphan-cron")
            .is_none()
    );
}
