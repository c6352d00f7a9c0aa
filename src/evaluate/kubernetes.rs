//! Kubernetes verdicts: namespaces, and the audited kinds inside the repository's namespaces.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::{Clock, Finding, NamespaceContents, Reason, opts_out};
use crate::inventory::{Inventory, KubeObject, Protects, Provider};
use crate::manifests::Desired;
use crate::policy::{AuditedKind, KeepRule, KubernetesPolicy, Policy};

/// Namespaces Kubernetes and GKE create and depend on.
const FLOOR_NAMESPACE_PREFIXES: &[&str] = &["kube-", "gke-", "gmp-"];

pub fn is_floor_namespace(name: &str) -> bool {
    name == "default" || FLOOR_NAMESPACE_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Everything the rules ask about other objects, indexed once.
struct Index<'a> {
    uids: HashSet<&'a str>,
    kinds_listed: HashSet<&'a str>,
    used: HashSet<(AuditedKind, &'a str, &'a str)>,
    claim_prefixes: HashMap<&'a str, Vec<&'a str>>,
    /// (kind, namespace, name); namespace `None` when the manifest leaves it to kustomize.
    desired: HashSet<(&'a str, Option<&'a str>, &'a str)>,
    repository_namespaces: HashSet<&'a str>,
    opted_out_namespaces: HashSet<&'a str>,
    /// What each namespace holds: a namespace's deletion takes it along.
    contents: HashMap<&'a str, NamespaceContents>,
}

impl<'a> Index<'a> {
    fn build(
        k: &'a KubernetesPolicy,
        desired: &'a Desired,
        objects: &'a [KubeObject],
        opt_out: &str,
    ) -> Self {
        let mut index = Index {
            uids: HashSet::default(),
            kinds_listed: HashSet::default(),
            used: HashSet::default(),
            claim_prefixes: HashMap::default(),
            desired: HashSet::default(),
            repository_namespaces: k.namespaces.iter().map(String::as_str).collect(),
            opted_out_namespaces: HashSet::default(),
            contents: HashMap::default(),
        };
        for o in objects {
            if let Some(uid) = &o.uid {
                index.uids.insert(uid);
            }
            index.kinds_listed.insert(&o.kind);
            for r in &o.uses {
                index.used.insert((r.kind, &r.namespace, &r.name));
            }
            if let Some(ns) = &o.namespace {
                for p in &o.claim_prefixes {
                    index.claim_prefixes.entry(ns).or_default().push(p);
                }
                let contents = index.contents.entry(ns).or_default();
                *contents.objects.entry(o.kind.clone()).or_default() += 1;
                if o.kind == "Pod" && o.phase.as_deref() == Some("Running") {
                    contents.running_pods += 1;
                }
            }
            if o.is_namespace()
                && (opts_out(o.annotations.get(opt_out)) || opts_out(o.labels.get(opt_out)))
            {
                index.opted_out_namespaces.insert(&o.name);
            }
        }
        for d in &desired.objects {
            let o = &d.object;
            index
                .desired
                .insert((&o.kind, o.namespace.as_deref(), &o.name));
            if o.kind == "Namespace" {
                index.repository_namespaces.insert(&o.name);
            }
        }
        index
    }

    fn is_desired(&self, o: &KubeObject) -> bool {
        self.desired
            .contains(&(&o.kind, o.namespace.as_deref(), &o.name))
            || self.desired.contains(&(&o.kind, None, &o.name))
    }

    fn is_used(&self, kind: AuditedKind, o: &KubeObject) -> bool {
        let ns = o.namespace.as_deref().unwrap_or_default();
        if self.used.contains(&(kind, ns, &o.name)) {
            return true;
        }
        kind == AuditedKind::PersistentVolumeClaim
            && self.claim_prefixes.get(ns).is_some_and(|prefixes| {
                prefixes.iter().any(|p| {
                    o.name.strip_prefix(p).is_some_and(|ordinal| {
                        !ordinal.is_empty() && ordinal.chars().all(|c| c.is_ascii_digit())
                    })
                })
            })
    }

    /// Owned by an object that exists, or by one whose kind was not listed (it cannot be
    /// proven gone).
    fn has_live_owner(&self, o: &KubeObject) -> bool {
        o.owners.iter().any(|owner| match &owner.uid {
            Some(uid) => {
                self.uids.contains(uid.as_str()) || !self.kinds_listed.contains(owner.kind.as_str())
            }
            None => true,
        })
    }
}

fn keep_rule_matches(rule: &KeepRule, o: &KubeObject) -> bool {
    if rule.kind.as_deref().is_some_and(|k| k != o.kind) {
        return false;
    }
    if !rule.name.is_match(&o.name) {
        return false;
    }
    match (&rule.namespace, &o.namespace) {
        (None, _) => true,
        (Some(g), Some(ns)) => g.is_match(ns),
        (Some(g), None) => o.is_namespace() && g.is_match(&o.name),
    }
}

/// Objects Kubernetes, GKE or Helm create and manage.
fn is_system_managed(o: &KubeObject) -> bool {
    if o.labels.contains_key("addonmanager.kubernetes.io/mode") {
        return true;
    }
    match o.kind.as_str() {
        "ConfigMap" => o.name == "kube-root-ca.crt",
        "ServiceAccount" => o.name == "default",
        "Secret" => {
            matches!(
                o.secret_type.as_deref(),
                Some(
                    "kubernetes.io/service-account-token"
                        | "helm.sh/release.v1"
                        | "bootstrap.kubernetes.io/token"
                        | crate::deploy::history::SECRET_TYPE
                )
            ) || (o.labels.get("owner").is_some_and(|v| v == "helm")
                && o.name.starts_with("sh.helm.release."))
        }
        _ => false,
    }
}

fn identity(o: &KubeObject) -> super::Identity {
    super::Identity {
        api_version: Some(o.api_version.clone()).filter(|s| !s.is_empty()),
        uid: o.uid.clone(),
        resource_version: o.resource_version.clone(),
        ..super::Identity::default()
    }
}

pub(super) fn evaluate(
    k: &KubernetesPolicy,
    policy: &Policy,
    desired: &Desired,
    inventory: &Inventory,
    clock: Clock,
    out: &mut Vec<Finding>,
) {
    let Some(objects) = inventory.kubernetes.as_deref() else {
        return;
    };
    let opt_out = policy.safety.opt_out_annotation.as_str();
    let index = Index::build(k, desired, objects, opt_out);
    let protected: HashSet<&str> = k.protected_namespaces.iter().map(String::as_str).collect();
    let references_incomplete = inventory.has_gap(&Protects::KubernetesReferences);
    let unlisted_kinds: HashSet<&str> = inventory
        .gaps
        .iter()
        .filter_map(|g| match &g.protects {
            Protects::KubernetesKind(kind) => Some(kind.as_str()),
            _ => None,
        })
        .collect();
    let audited: HashMap<&str, AuditedKind> =
        k.kinds.iter().map(|kind| (kind.as_str(), *kind)).collect();

    for o in objects {
        let opted_out = opts_out(o.annotations.get(opt_out)) || opts_out(o.labels.get(opt_out));
        let mut keep = Vec::new();
        if o.is_namespace() {
            if is_floor_namespace(&o.name) {
                keep.push(Reason::SystemManaged);
            }
            if protected.contains(o.name.as_str()) {
                keep.push(Reason::ProtectedNamespace);
            }
            if index.repository_namespaces.contains(o.name.as_str()) || index.is_desired(o) {
                keep.push(Reason::DefinedInRepository);
            }
        } else {
            let Some(&kind) = audited.get(o.kind.as_str()) else {
                continue;
            };
            let Some(ns) = o.namespace.as_deref() else {
                continue;
            };
            if !index.repository_namespaces.contains(ns) {
                continue;
            }
            if is_floor_namespace(ns) || protected.contains(ns) {
                keep.push(Reason::ProtectedNamespace);
            }
            if index.opted_out_namespaces.contains(ns) {
                keep.push(Reason::OptOut);
            }
            if is_system_managed(o) {
                keep.push(Reason::SystemManaged);
            }
            if index.is_used(kind, o) {
                keep.push(Reason::InUse);
            }
            if index.is_desired(o) {
                keep.push(Reason::DefinedInRepository);
            }
            if kind == AuditedKind::PersistentVolumeClaim && !k.delete_pvcs {
                keep.push(Reason::PvcDeletionDisabled);
            }
            if references_incomplete {
                keep.push(Reason::ReferencesUnknown);
            }
        }
        if o.labels.contains_key("addonmanager.kubernetes.io/mode") {
            keep.push(Reason::SystemManaged);
        }
        if index.has_live_owner(o) {
            keep.push(Reason::Owned);
        }
        if opted_out {
            keep.push(Reason::OptOut);
        }
        if k.keep.iter().any(|rule| keep_rule_matches(rule, o)) {
            keep.push(Reason::KeepRule);
        }
        if o.deleting {
            keep.push(Reason::Terminating);
        }
        if unlisted_kinds.contains(o.kind.as_str()) {
            keep.push(Reason::ListingIncomplete);
        }
        if let Some(r) = clock.age_reason(o.created) {
            keep.push(r);
        }
        let mut finding = Finding::new(
            Provider::Kubernetes,
            &o.kind,
            o.namespace.as_deref(),
            &o.name,
        );
        finding.created_at = o.created;
        finding.identity = identity(o);
        let mut finding = finding.decide(keep, Reason::NotInRepository);
        if o.is_namespace() && finding.action == super::Action::Delete {
            // A reviewer sees what the deletion takes along, not only `not-in-repository`.
            let contents = index
                .contents
                .get(o.name.as_str())
                .cloned()
                .unwrap_or_default();
            finding.detail = Some(if contents.objects.is_empty() {
                "holds no object of the kinds listed".to_string()
            } else {
                format!(
                    "holds {}: deleting the namespace deletes all of it",
                    contents.describe()
                )
            });
            finding.contents = Some(contents);
        }
        out.push(finding);
    }
}

#[cfg(test)]
mod tests;
