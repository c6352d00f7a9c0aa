//! The built-in floor (README, "The built-in floor"; DESIGN.md, "Decision semantics") holds
//! whatever the policy says: random inventories mixing floor and ordinary objects, under
//! random policies, never plan a floor object for deletion.
//!
//! The oracle below is written from the documented list, not from the rules' code, so a rule
//! that stops keeping something the documents promise fails here.

use chrono::Duration;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::evaluate::testkit::{now, objects, policy};
use crate::evaluate::{Action, Findings};
use crate::inventory::registry::{Children, ImageVersion, Repository};
use crate::inventory::{GcpKind, GcpResource, Inventory, Provider};
use crate::manifests::Desired;

const NAMESPACES: &[&str] = &[
    "app",
    "web",
    "shared",
    "kube-system",
    "kube-legacy",
    "default",
    "gke-managed",
    "gmp-public",
    "stray",
];
const KINDS: &[&str] = &[
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "PersistentVolumeClaim",
];
const NAMES: &[&str] = &["a", "b", "kube-root-ca.crt", "default", "cache"];
const SECRET_TYPES: &[Option<&str>] = &[
    None,
    Some("Opaque"),
    Some("kubernetes.io/service-account-token"),
    Some("helm.sh/release.v1"),
    Some("bootstrap.kubernetes.io/token"),
];
/// The opt-out annotation's values: absent, two that keep, two that do not.
const OPT_OUT: &[Option<&str>] = &[None, Some("true"), Some("yes"), Some("false"), Some("off")];
const REPO: &str = "reg.example.com/team/app";

const FIREWALLS: &[&str] = &[
    "gke-prod-1a-all",
    "k8s-fw-l7",
    "k8s2-abc",
    "allow-ssh",
    "app-web",
];
const BUCKETS: &[&str] = &[
    "p_cloudbuild",
    "artifacts.p.appspot.com",
    "p.appspot.com",
    "gcf-sources-1",
    "run-sources-p",
    "data",
    "exports",
];
const ACCOUNTS: &[&str] = &[
    "1-compute@developer.gserviceaccount.com",
    "p@appspot.gserviceaccount.com",
    "1@cloudbuild.gserviceaccount.com",
    "service-1@container-engine-robot.example.com",
    "app@p.iam.gserviceaccount.com",
    "old@p.iam.gserviceaccount.com",
];
const CERTIFICATES: &[&str] = &[
    "mcrt-1234",
    "k8s-ssl-web",
    "k8s2-cert",
    "app-cert",
    "old-cert",
];
const ALLOWED: &[&str] = &["app-*", "allow-*", "data", "*-cert", "nothing-matches"];
const KEEP_RULES: &[&str] = &[
    "{kind: Secret, name: 'a*'}",
    "{name: b}",
    "{namespace: web, name: '*'}",
];

/// One generated namespaced object.
#[derive(Debug, Clone)]
struct Spec {
    namespace: usize,
    kind: usize,
    name: usize,
    secret_type: usize,
    addon: bool,
    opt_out: usize,
    /// 0: no owner; 1: an existing Deployment; 2: a Deployment that is gone.
    owner: u8,
    used: bool,
    /// 0: old; 1: an hour old; 2: no creation time.
    age: u8,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (0..NAMESPACES.len(), 0..KINDS.len(), 0..NAMES.len()),
        (0..SECRET_TYPES.len(), any::<bool>(), 0..OPT_OUT.len()),
        (0u8..3, any::<bool>(), 0u8..3),
    )
        .prop_map(
            |((namespace, kind, name), (secret_type, addon, opt_out), (owner, used, age))| Spec {
                namespace,
                kind,
                name,
                secret_type,
                addon,
                opt_out,
                owner,
                used,
                age,
            },
        )
}

/// One generated GCP resource: kind, name index, labels, and what keeps buckets.
#[derive(Debug, Clone)]
struct GcpSpec {
    kind: u8,
    name: usize,
    goog_label: bool,
    opt_out: bool,
    kubernetes_description: bool,
    used: bool,
    /// Buckets: 0 empty, 1 holds objects, 2 not read.
    contents: u8,
    locked: bool,
    age: u8,
}

fn gcp_spec() -> impl Strategy<Value = GcpSpec> {
    (
        (0u8..5, 0usize..8, any::<bool>(), any::<bool>()),
        (any::<bool>(), any::<bool>(), 0u8..3, any::<bool>(), 0u8..3),
    )
        .prop_map(
            |(
                (kind, name, goog_label, opt_out),
                (kubernetes_description, used, contents, locked, age),
            )| {
                GcpSpec {
                    kind,
                    name,
                    goog_label,
                    opt_out,
                    kubernetes_description,
                    used,
                    contents,
                    locked,
                    age,
                }
            },
        )
}

#[derive(Debug, Clone)]
struct PolicySpec {
    namespaces: Vec<bool>,
    protected: Vec<bool>,
    keep: Vec<bool>,
    delete_pvcs: bool,
    min_age_hours: u32,
    allowed: Vec<bool>,
    delete_non_empty: bool,
    keep_recent: u32,
    max_age_days: u32,
}

fn policy_spec() -> impl Strategy<Value = PolicySpec> {
    (
        prop::collection::vec(any::<bool>(), NAMESPACES.len()),
        prop::collection::vec(any::<bool>(), NAMESPACES.len()),
        prop::collection::vec(any::<bool>(), KEEP_RULES.len()),
        any::<bool>(),
        prop::sample::select(vec![0u32, 24]),
        prop::collection::vec(any::<bool>(), ALLOWED.len()),
        any::<bool>(),
        (0u32..3, 1u32..60),
    )
        .prop_map(
            |(
                namespaces,
                protected,
                keep,
                delete_pvcs,
                min_age_hours,
                allowed,
                delete_non_empty,
                (keep_recent, max_age_days),
            )| PolicySpec {
                namespaces,
                protected,
                keep,
                delete_pvcs,
                min_age_hours,
                allowed,
                delete_non_empty,
                keep_recent,
                max_age_days,
            },
        )
}

fn pick<'a>(pool: &[&'a str], mask: &[bool]) -> Vec<&'a str> {
    pool.iter()
        .zip(mask)
        .filter(|(_, on)| **on)
        .map(|(s, _)| *s)
        .collect()
}

fn policy_yaml(p: &PolicySpec) -> String {
    let mut namespaces = pick(NAMESPACES, &p.namespaces);
    if namespaces.is_empty() {
        namespaces.push("app");
    }
    let mut allowed = pick(ALLOWED, &p.allowed);
    if allowed.is_empty() {
        allowed.push("nothing-matches");
    }
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let keep = pick(KEEP_RULES, &p.keep).join(", ");
    format!(
        "version: 1\nname: floor\nkubernetes:\n  namespaces: [{}]\n  protected_namespaces: [{}]\n  delete_pvcs: {}\n  keep: [{keep}]\nregistry:\n  repositories: [{REPO}]\n  keep_recent: {}\n  max_age_days: {}\ngcp:\n  project: p\n  firewall_rules: {{allowed: [{a}]}}\n  buckets: {{allowed: [{a}], delete_non_empty: {}}}\n  service_accounts: {{allowed: [{a}]}}\n  ssl_certificates: {{allowed: [{a}]}}\nsafety:\n  min_age_hours: {}\n",
        list(&namespaces),
        list(&pick(NAMESPACES, &p.protected)),
        p.delete_pvcs,
        p.keep_recent,
        p.max_age_days,
        p.delete_non_empty,
        p.min_age_hours,
        a = list(&allowed),
    )
}

fn created(age: u8) -> Option<String> {
    match age {
        0 => Some("2025-01-01T00:00:00Z".to_string()),
        1 => Some((now() - Duration::hours(1)).to_rfc3339()),
        _ => None,
    }
}

fn is_floor_namespace(name: &str) -> bool {
    name == "default"
        || ["kube-", "gke-", "gmp-"]
            .iter()
            .any(|p| name.starts_with(p))
}

fn opts_out(value: Option<&str>) -> bool {
    value.is_some_and(|v| !matches!(v, "false" | "no" | "0" | "off"))
}

fn digest(n: usize) -> String {
    format!("sha256:{n:064x}")
}

/// The inventory, and the (provider, kind, namespace, name) of every floor record in it.
type Key = (Provider, String, Option<String>, String);

fn build(
    p: &PolicySpec,
    namespaces: &[(usize, u8, bool)],
    specs: &[Spec],
    gcp: &[GcpSpec],
    images_in_use: &[bool],
) -> (Inventory, Vec<Key>) {
    let protected = pick(NAMESPACES, &p.protected);
    let young_counts = p.min_age_hours > 0;
    let mut values: Vec<Value> = Vec::new();
    let mut floor: Vec<Key> = Vec::new();
    let key = |kind: &str, ns: Option<&str>, name: &str| {
        (
            Provider::Kubernetes,
            kind.to_string(),
            ns.map(str::to_string),
            name.to_string(),
        )
    };

    for (i, ns) in NAMESPACES.iter().enumerate() {
        let (opt, age, addon) = namespaces[i];
        let mut meta = json!({"name": ns, "uid": format!("uid-ns-{ns}")});
        if let Some(t) = created(age) {
            meta["creationTimestamp"] = json!(t);
        }
        if let Some(v) = OPT_OUT[opt] {
            meta["annotations"] = json!({"driftsweep.io/keep": v});
        }
        if addon {
            meta["labels"] = json!({"addonmanager.kubernetes.io/mode": "Reconcile"});
        }
        values.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta}));
        if is_floor_namespace(ns)
            || protected.contains(ns)
            || opts_out(OPT_OUT[opt])
            || addon
            || age == 2
            || (age == 1 && young_counts)
        {
            floor.push(key("Namespace", None, ns));
        }
        // Every namespace has a Deployment that objects may be owned by.
        values.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "owner", "namespace": ns, "uid": format!("uid-owner-{ns}"),
                "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}));
    }

    let mut seen = std::collections::HashSet::new();
    for (i, s) in specs.iter().enumerate() {
        let (ns, kind, name) = (NAMESPACES[s.namespace], KINDS[s.kind], NAMES[s.name]);
        if !seen.insert((ns, kind, name)) {
            continue;
        }
        let mut meta = json!({"name": name, "namespace": ns, "uid": format!("uid-{i}")});
        if let Some(t) = created(s.age) {
            meta["creationTimestamp"] = json!(t);
        }
        if let Some(v) = OPT_OUT[s.opt_out] {
            meta["annotations"] = json!({"driftsweep.io/keep": v});
        }
        if s.addon {
            meta["labels"] = json!({"addonmanager.kubernetes.io/mode": "EnsureExists"});
        }
        match s.owner {
            1 => {
                meta["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment",
                    "name": "owner", "uid": format!("uid-owner-{ns}")}]);
            }
            2 => {
                meta["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment",
                    "name": "gone", "uid": "uid-gone"}]);
            }
            _ => {}
        }
        let mut object = json!({"apiVersion": "v1", "kind": kind, "metadata": meta});
        let secret_type = if kind == "Secret" {
            SECRET_TYPES[s.secret_type]
        } else {
            None
        };
        if let Some(t) = secret_type {
            object["type"] = json!(t);
        }
        values.push(object);
        if s.used {
            let volume = match kind {
                "ConfigMap" => json!({"name": "v", "configMap": {"name": name}}),
                "Secret" => json!({"name": "v", "secret": {"secretName": name}}),
                "PersistentVolumeClaim" => {
                    json!({"name": "v", "persistentVolumeClaim": {"claimName": name}})
                }
                _ => json!({"name": "v", "emptyDir": {}}),
            };
            let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}],
                "volumes": [volume]});
            if kind == "ServiceAccount" {
                spec["serviceAccountName"] = json!(name);
            }
            values.push(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("user-{i}"), "namespace": ns, "uid": format!("uid-pod-{i}"),
                    "creationTimestamp": "2025-01-01T00:00:00Z"},
                "spec": spec}));
        }
        let is_floor = is_floor_namespace(ns)
            || protected.contains(&ns)
            || (kind == "ConfigMap" && name == "kube-root-ca.crt")
            || (kind == "ServiceAccount" && name == "default")
            || matches!(
                secret_type,
                Some(
                    "kubernetes.io/service-account-token"
                        | "helm.sh/release.v1"
                        | "bootstrap.kubernetes.io/token"
                )
            )
            || s.addon
            || s.owner == 1
            || opts_out(OPT_OUT[s.opt_out])
            || s.used
            || s.age == 2
            || (s.age == 1 && young_counts);
        if is_floor {
            floor.push(key(kind, Some(ns), name));
        }
    }

    // Image versions, all old: the ones a Pod runs are in use.
    let mut versions = Vec::new();
    for (n, used) in images_in_use.iter().enumerate() {
        versions.push(ImageVersion {
            digest: digest(n),
            tags: vec![format!("t{n}")],
            media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
            uploaded: Some(now() - Duration::days(400 + n as i64)),
            created: None,
            size: None,
            children: Children::None,
        });
        if *used {
            let image = if n % 2 == 0 {
                format!("{REPO}:t{n}")
            } else {
                format!("{REPO}@{}", digest(n))
            };
            values.push(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("runs-{n}"), "namespace": "stray", "uid": format!("uid-run-{n}"),
                    "creationTimestamp": "2025-01-01T00:00:00Z"},
                "spec": {"containers": [{"name": "c", "image": image}]}}));
            floor.push((
                Provider::Registry,
                "Image".to_string(),
                None,
                format!("{REPO}@{}", digest(n)),
            ));
        }
    }

    let mut resources = Vec::new();
    let mut seen_gcp = std::collections::HashSet::new();
    for g in gcp {
        let (kind, pool) = match g.kind {
            0 => (GcpKind::FirewallRule, FIREWALLS),
            1 => (GcpKind::Bucket, BUCKETS),
            2 => (GcpKind::IamServiceAccount, ACCOUNTS),
            3 => (GcpKind::SslCertificate, CERTIFICATES),
            _ => (GcpKind::Certificate, CERTIFICATES),
        };
        let name = pool[g.name % pool.len()];
        if !seen_gcp.insert((kind, name)) {
            continue;
        }
        let mut r = GcpResource::of(kind, name);
        r.created = match g.age {
            0 => Some(now() - Duration::days(300)),
            1 => Some(now() - Duration::hours(1)),
            _ => None,
        };
        if g.goog_label {
            r.labels.insert("goog-managed-by".into(), "gke".into());
        }
        if g.opt_out {
            r.labels.insert("driftsweep-keep".into(), "true".into());
        }
        if kind == GcpKind::FirewallRule && g.kubernetes_description {
            r.description = Some(r#"{"kubernetes.io/service-name":"app/web"}"#.into());
        }
        let certificate = matches!(kind, GcpKind::SslCertificate | GcpKind::Certificate);
        if certificate && g.used {
            r.used_by = vec!["target-https-proxy/web".into()];
        }
        if kind == GcpKind::Bucket {
            r.empty = match g.contents {
                0 => Some(true),
                1 => Some(false),
                _ => None,
            };
            r.retention_locked = g.locked;
        }
        let google_name = match kind {
            GcpKind::FirewallRule => ["gke-", "k8s-", "k8s2-"]
                .iter()
                .any(|p| name.starts_with(p)),
            GcpKind::Bucket => {
                name.ends_with("_cloudbuild")
                    || name.starts_with("artifacts.")
                    || name.ends_with(".appspot.com")
                    || name.starts_with("gcf-")
                    || name.starts_with("run-sources-")
            }
            GcpKind::IamServiceAccount => {
                name.ends_with("-compute@developer.gserviceaccount.com")
                    || name.ends_with("@appspot.gserviceaccount.com")
                    || name.ends_with("@cloudbuild.gserviceaccount.com")
                    || !name.ends_with(".iam.gserviceaccount.com")
            }
            GcpKind::SslCertificate | GcpKind::Certificate => ["mcrt-", "k8s-ssl-", "k8s2-"]
                .iter()
                .any(|p| name.starts_with(p)),
            // Not generated here: addresses have their own tests (status, users, purpose).
            GcpKind::Disk => ["gke-", "pvc-", "k8s-"].iter().any(|p| name.starts_with(p)),
            // Not generated here: snapshots have their own tests (retention).
            GcpKind::Snapshot => ["gke-", "snapshot-"].iter().any(|p| name.starts_with(p)),
            // Not generated here: instances have their own tests.
            GcpKind::SqlInstance => false,
            // Not generated here: backups have their own tests (retention).
            GcpKind::SqlBackup => false,
            GcpKind::Address => ["gke-", "k8s-", "k8s1-", "k8s2-"]
                .iter()
                .any(|p| name.starts_with(p)),
            // Not generated here: forwarding rules and proxies have their own tests.
            // Not generated here: log sinks and buckets have their own tests.
            GcpKind::LogSink | GcpKind::LogBucket => {
                matches!(name.rsplit('/').next(), Some("_Default" | "_Required"))
            }
            GcpKind::ForwardingRule
            | GcpKind::TargetProxy
            | GcpKind::UrlMap
            | GcpKind::BackendService
            | GcpKind::BackendBucket
            | GcpKind::HealthCheck => ["gke-", "k8s-", "k8s1-", "k8s2-", "gkegw", "sca-auto-"]
                .iter()
                .any(|p| name.starts_with(p)),
        };
        let is_floor = google_name
            || g.goog_label
            || g.opt_out
            || (kind == GcpKind::FirewallRule && g.kubernetes_description)
            || (certificate && g.used)
            || (kind == GcpKind::Bucket && (g.locked || (g.contents == 1 && !p.delete_non_empty)))
            || (kind != GcpKind::IamServiceAccount && (g.age == 2 || (g.age == 1 && young_counts)));
        if is_floor {
            floor.push((
                Provider::Gcp,
                kind.as_str().to_string(),
                None,
                name.to_string(),
            ));
        }
        resources.push(r);
    }

    let inventory = Inventory {
        kubernetes: Some(objects(values)),
        registry: vec![Repository {
            name: REPO.into(),
            versions,
        }],
        gcp: resources,
        gcp_listed: GcpKind::ALL.to_vec(),
        ..Inventory::default()
    };
    (inventory, floor)
}

fn planned(findings: &Findings, key: &Key) -> Option<Action> {
    findings
        .items
        .iter()
        .find(|f| f.provider == key.0 && f.kind == key.1 && f.namespace == key.2 && f.name == key.3)
        .map(|f| f.action)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_policy_ever_plans_a_floor_object(
        p in policy_spec(),
        namespaces in prop::collection::vec((0..OPT_OUT.len(), 0u8..3, prop::bool::weighted(0.1)), NAMESPACES.len()),
        specs in prop::collection::vec(spec(), 0..40),
        gcp in prop::collection::vec(gcp_spec(), 0..20),
        images_in_use in prop::collection::vec(any::<bool>(), 0..8),
    ) {
        let yaml = policy_yaml(&p);
        let policy = policy(&yaml);
        let (inventory, floor) = build(&p, &namespaces, &specs, &gcp, &images_in_use);
        let findings = crate::evaluate::evaluate(&policy, &Desired::default(), &inventory, now());
        for key in &floor {
            if let Some(action) = planned(&findings, key) {
                prop_assert_eq!(action, Action::Keep, "floor record {:?} under policy\n{}", key, yaml);
            }
        }
    }
}
