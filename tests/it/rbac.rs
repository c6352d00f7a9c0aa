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
