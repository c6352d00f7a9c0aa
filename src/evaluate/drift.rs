//! Drift: what the repository defines but the cluster lacks, and workloads running other
//! images than their manifests name. Drift is reported, never acted on by `run`.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::{Action, Finding, ImageDrift, Reason};
use crate::deploy::bluegreen::{COLOUR_LABEL, SCALE_DOWN_AT};
use crate::inventory::registry::ImageRef;
use crate::inventory::snapshot::REFERENCE_KINDS;
use crate::inventory::{Inventory, KubeObject, Provider};
use crate::manifests::{Desired, VERSION_PLACEHOLDER};

/// Kinds every read of the cluster lists, so their absence means "missing". Other kinds
/// count as listed when the inventory says they were (`kubernetes_listed`), or when at least
/// one object of the kind was seen.
const ALWAYS_LISTED: &[&str] = &[
    "Namespace",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "PersistentVolumeClaim",
];

pub(super) fn evaluate(desired: &Desired, inventory: &Inventory, out: &mut Vec<Finding>) {
    if desired.objects.is_empty() {
        return;
    }
    let objects = inventory.kubernetes_objects();
    let mut by_key: HashMap<(&str, &str), Vec<&KubeObject>> = HashMap::default();
    let mut kinds: HashSet<&str> = HashSet::default();
    for o in objects {
        by_key.entry((&o.kind, &o.name)).or_default().push(o);
        kinds.insert(&o.kind);
    }
    let digests = tag_digests(inventory);
    let deployed = last_good_deploys(objects);
    // Workloads count as listed unless the snapshot or the API failed to give them.
    let references_unknown = inventory.has_gap(&crate::inventory::Protects::KubernetesReferences);
    for d in &desired.objects {
        let want = &d.object;
        let listed = ALWAYS_LISTED.contains(&want.kind.as_str())
            || (REFERENCE_KINDS.contains(&want.kind.as_str()) && !references_unknown)
            || kinds.contains(want.kind.as_str())
            || inventory.kubernetes_listed.contains(&want.kind);
        if !listed {
            continue;
        }
        let candidates = by_key.get(&(want.kind.as_str(), want.name.as_str()));
        let found = candidates.and_then(|c| {
            c.iter()
                .find(|o| want.namespace.is_none() || o.namespace == want.namespace)
        });
        let source = d.source.display().to_string();
        // Blue-green runs a manifest's Deployment as `<name>-blue` and `<name>-green`: they
        // are it. The colours that serve (not scaled to zero, not waiting for their
        // scale-down) are compared as it would be.
        let colours: Vec<&KubeObject> = if found.is_none() && want.kind == "Deployment" {
            ["blue", "green"]
                .iter()
                .filter_map(|c| {
                    let name = format!("{}-{c}", want.name);
                    by_key.get(&("Deployment", name.as_str())).and_then(|list| {
                        list.iter().copied().find(|o| {
                            (want.namespace.is_none() || o.namespace == want.namespace)
                                && o.labels.get(COLOUR_LABEL).map(String::as_str) == Some(*c)
                        })
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        if !colours.is_empty() {
            for live in colours
                .into_iter()
                .filter(|o| o.replicas != Some(0) && !o.annotations.contains_key(SCALE_DOWN_AT))
            {
                let detail = format!("defined in {source} (blue-green colour)");
                out.extend(version_drift(want, live, &deployed, &digests, detail));
            }
            continue;
        }
        let Some(live) = found else {
            let mut f = Finding::new(
                Provider::Kubernetes,
                &want.kind,
                want.namespace.as_deref(),
                &want.name,
            );
            f.action = Action::Drift;
            f.reasons = vec![Reason::Missing];
            f.detail = Some(format!("defined in {source}"));
            out.push(f);
            continue;
        };
        out.extend(version_drift(
            want,
            live,
            &deployed,
            &digests,
            format!("defined in {source}"),
        ));
    }
}

/// A `version-drift` finding for `live` when it runs other images than `want` names, or
/// other digests than the last good deploy of its namespace pinned.
fn version_drift(
    want: &KubeObject,
    live: &KubeObject,
    deployed: &Deployed,
    digests: &HashMap<(String, String), String>,
    detail: String,
) -> Option<Finding> {
    let mut drift = compare_images(&want.containers, &live.containers, digests);
    // Scaled to zero (the rolling Deployment of an environment now blue-green), it runs
    // nothing: there is no version to drift from.
    if let Some(ns) = live.namespace.as_ref().filter(|_| live.replicas != Some(0)) {
        drift.extend(compare_with_deploy(ns, &live.containers, deployed, digests));
    }
    if drift.is_empty() {
        return None;
    }
    let mut f = Finding::new(
        Provider::Kubernetes,
        &live.kind,
        live.namespace.as_deref(),
        &live.name,
    );
    f.action = Action::Drift;
    f.reasons = vec![Reason::VersionDrift];
    f.created_at = live.created;
    f.detail = Some(detail);
    f.drift = drift;
    Some(f)
}

/// What the last good deploy of a namespace pinned: (namespace, repository) → the pinned
/// `repository@digest`, its version and its record. From the deploy records' annotations
/// (Secret metadata: the audit never reads a Secret's value).
type Deployed = HashMap<(String, String), (String, String, String)>;

pub(super) fn last_good_deploys(objects: &[KubeObject]) -> Deployed {
    let mut newest: HashMap<(&str, &str), (u64, &KubeObject)> = HashMap::default();
    for o in objects {
        if o.kind != "Secret"
            || o.secret_type.as_deref() != Some(crate::deploy::history::SECRET_TYPE)
            || o.labels
                .get(crate::deploy::history::RESULT_LABEL)
                .map(String::as_str)
                != Some("healthy")
        {
            continue;
        }
        let (Some(ns), Some(env)) = (
            o.namespace.as_deref(),
            o.labels.get(crate::deploy::history::ENVIRONMENT_LABEL),
        ) else {
            continue;
        };
        let sequence = o
            .labels
            .get("driftsweep.io/sequence")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let slot = newest.entry((ns, env.as_str())).or_insert((sequence, o));
        if sequence >= slot.0 {
            *slot = (sequence, o);
        }
    }
    let mut out = Deployed::default();
    for ((ns, _), (_, record)) in newest {
        let version = record
            .annotations
            .get(crate::deploy::history::VERSION_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        let pins: HashMap<String, String> = record
            .annotations
            .get(crate::deploy::history::DIGESTS_ANNOTATION)
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_default();
        for pinned in pins.into_values() {
            if let Some(r) = ImageRef::parse(&pinned) {
                out.insert(
                    (ns.to_string(), r.repository),
                    (pinned, version.clone(), record.name.clone()),
                );
            }
        }
    }
    out
}

/// Containers running another digest of a deployed service than the last good deploy of
/// their namespace pinned (a `kubectl set image`, a hand edit, a half-done deploy).
fn compare_with_deploy(
    namespace: &str,
    live: &[crate::inventory::Container],
    deployed: &Deployed,
    digests: &HashMap<(String, String), String>,
) -> Vec<ImageDrift> {
    let mut drift = Vec::new();
    for c in live {
        let Some(r) = ImageRef::parse(&c.image) else {
            continue;
        };
        let Some((pinned, version, record)) =
            deployed.get(&(namespace.to_string(), r.repository.clone()))
        else {
            continue;
        };
        let running = r.digest.clone().or_else(|| {
            r.tag
                .as_ref()
                .and_then(|t| digests.get(&(r.repository.clone(), t.clone())).cloned())
        });
        let recorded = pinned.rsplit_once('@').map(|(_, d)| d);
        if let (Some(running), Some(recorded)) = (running.as_deref(), recorded)
            && running != recorded
        {
            drift.push(ImageDrift {
                container: c.name.clone(),
                expected: Some(format!("{pinned} (last good deploy {version}, {record})")),
                actual: Some(c.image.clone()),
            });
        }
    }
    drift
}

/// (repository, tag) → digest, from what the registry listed.
fn tag_digests(inventory: &Inventory) -> HashMap<(String, String), String> {
    let mut map = HashMap::default();
    for repo in &inventory.registry {
        for v in &repo.versions {
            for t in &v.tags {
                map.insert((repo.name.clone(), t.clone()), v.digest.clone());
            }
        }
    }
    map
}

fn compare_images(
    want: &[crate::inventory::Container],
    live: &[crate::inventory::Container],
    digests: &HashMap<(String, String), String>,
) -> Vec<ImageDrift> {
    let mut drift = Vec::new();
    for w in want {
        match live.iter().find(|l| l.name == w.name) {
            None => drift.push(ImageDrift {
                container: w.name.clone(),
                expected: Some(w.image.clone()),
                actual: None,
            }),
            Some(l) if !same_image(&w.image, &l.image, digests) => drift.push(ImageDrift {
                container: w.name.clone(),
                expected: Some(w.image.clone()),
                actual: Some(l.image.clone()),
            }),
            Some(_) => {}
        }
    }
    for l in live {
        if !want.iter().any(|w| w.name == l.name) {
            drift.push(ImageDrift {
                container: l.name.clone(),
                expected: None,
                actual: Some(l.image.clone()),
            });
        }
    }
    drift
}

/// Whether the cluster's image is the one the manifest names. An unresolved `${VERSION}`
/// matches any tag; a tag and a digest match when the registry maps the tag to that digest.
/// When that cannot be decided, no drift is claimed.
fn same_image(want: &str, live: &str, digests: &HashMap<(String, String), String>) -> bool {
    if want == live {
        return true;
    }
    let (Some(w), Some(l)) = (ImageRef::parse(want), ImageRef::parse(live)) else {
        return false;
    };
    if w.repository != l.repository {
        return false;
    }
    let resolve = |r: &ImageRef| {
        r.digest.clone().or_else(|| {
            r.tag
                .as_ref()
                .and_then(|t| digests.get(&(r.repository.clone(), t.clone())).cloned())
        })
    };
    let want_tag = w.tag.as_deref();
    if want_tag.is_some_and(|t| t.contains(VERSION_PLACEHOLDER)) {
        return true;
    }
    if w.digest.is_none() && l.digest.is_none() {
        return w.tag.as_deref().unwrap_or("latest") == l.tag.as_deref().unwrap_or("latest");
    }
    match (resolve(&w), resolve(&l)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::testkit::{cluster, desired, policy, verdict};
    use serde_json::json;

    fn deploy(ns: &str, image: &str) -> serde_json::Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": ns, "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"template": {"spec": {"containers": [{"name": "api", "image": image}]}}}})
    }

    #[test]
    fn reports_missing_objects_and_version_drift() {
        let p = policy("version: 1\nname: t\nkubernetes:\n  namespaces: [prod]\n");
        let mut want = desired(vec![
            deploy("prod", "reg.io/p/api:${VERSION}"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "api-config", "namespace": "prod"}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "prod"}}),
        ]);
        for o in &mut want.objects {
            for c in &mut o.object.containers {
                c.image = c.image.replace(VERSION_PLACEHOLDER, "1.2.0");
            }
        }
        let live = cluster(vec![deploy("prod", "reg.io/p/api:1.1.0")]);
        let f = crate::evaluate::testkit::evaluate(&p, &want, &live);
        assert_eq!(
            verdict(&f, "ConfigMap", Some("prod"), "api-config"),
            (Action::Drift, vec![Reason::Missing])
        );
        let d = f.items.iter().find(|x| x.kind == "Deployment").unwrap();
        assert_eq!(d.reasons, vec![Reason::VersionDrift]);
        assert_eq!(d.drift[0].expected.as_deref(), Some("reg.io/p/api:1.2.0"));
        assert_eq!(d.drift[0].actual.as_deref(), Some("reg.io/p/api:1.1.0"));
        // No Service was listed at all: its absence proves nothing.
        assert!(!f.items.iter().any(|x| x.kind == "Service"));
        // Services listed, none there: the Service is missing.
        let mut listed = live.clone();
        listed.kubernetes_listed = vec!["Service".to_string()];
        let f = crate::evaluate::testkit::evaluate(&p, &want, &listed);
        assert_eq!(
            verdict(&f, "Service", Some("prod"), "api"),
            (Action::Drift, vec![Reason::Missing])
        );
    }

    #[test]
    fn a_workload_off_its_last_good_deploy_is_version_drift() {
        let p = policy("version: 1\nname: t\nkubernetes:\n  namespaces: [prod]\n");
        let want = desired(vec![deploy("prod", "reg.io/p/api:${VERSION}")]);
        let record = |sequence: u64, result: &str, digest: &str| {
            json!({"apiVersion": "v1", "kind": "Secret", "type": "driftsweep.io/deploy.v1",
                "metadata": {"name": format!("driftsweep.deploy.production.v{sequence}"), "namespace": "prod",
                    "labels": {"driftsweep.io/record": "deploy", "driftsweep.io/environment": "production",
                        "driftsweep.io/result": result, "driftsweep.io/sequence": sequence.to_string()},
                    "annotations": {"driftsweep.io/version": "v1.2.0",
                        "driftsweep.io/digests": json!({"api": format!("reg.io/p/api@{digest}")}).to_string()}}})
        };
        let running = |image: &str| {
            cluster(vec![
                deploy("prod", image),
                record(1, "healthy", "sha256:old"),
                record(2, "healthy", "sha256:good"),
                record(3, "failed", "sha256:bad"),
            ])
        };
        let on_record = crate::evaluate::testkit::evaluate(
            &p,
            &want,
            &running("reg.io/p/api:1.2.0@sha256:good"),
        );
        assert!(
            !on_record.items.iter().any(|x| x.action == Action::Drift),
            "{:?}",
            on_record.items
        );
        let off = crate::evaluate::testkit::evaluate(
            &p,
            &want,
            &running("reg.io/p/api:1.2.0@sha256:hand"),
        );
        let d = off.items.iter().find(|x| x.kind == "Deployment").unwrap();
        assert_eq!(d.reasons, vec![Reason::VersionDrift]);
        assert!(
            d.drift[0]
                .expected
                .as_deref()
                .unwrap()
                .contains("sha256:good")
                && d.drift[0].expected.as_deref().unwrap().contains("v2")
        );
        // The deploy record itself is the floor's, never an orphan Secret.
        assert_eq!(
            verdict(
                &off,
                "Secret",
                Some("prod"),
                "driftsweep.deploy.production.v3"
            )
            .0,
            Action::Keep
        );
    }

    #[test]
    fn blue_green_colours_are_the_manifest_deployment_and_only_the_serving_one_is_compared() {
        let p = policy(
            "version: 1\nname: t\nkubernetes:\n  namespaces: [prod]\n  kinds: [ConfigMap, Secret, ServiceAccount, PersistentVolumeClaim]\n",
        );
        let want = desired(vec![
            deploy("prod", "reg.io/p/api:${VERSION}"),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "prod"}}),
        ]);
        let record = json!({"apiVersion": "v1", "kind": "Secret", "type": "driftsweep.io/deploy.v1",
            "metadata": {"name": "driftsweep.deploy.production.v2", "namespace": "prod",
                "labels": {"driftsweep.io/record": "deploy", "driftsweep.io/environment": "production",
                    "driftsweep.io/result": "healthy", "driftsweep.io/sequence": "2"},
                "annotations": {"driftsweep.io/version": "v1.2.0",
                    "driftsweep.io/digests": json!({"api": "reg.io/p/api@sha256:new"}).to_string()}}});
        let colour = |colour: &str, image: &str, replicas: i64, scale_down_at: Option<&str>| {
            let mut d = deploy("prod", image);
            d["metadata"]["name"] = json!(format!("api-{colour}"));
            d["metadata"]["labels"] = json!({COLOUR_LABEL: colour});
            d["spec"]["replicas"] = json!(replicas);
            if let Some(at) = scale_down_at {
                d["metadata"]["annotations"] = json!({SCALE_DOWN_AT: at});
            }
            d
        };
        let preview = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "api-preview", "namespace": "prod", "creationTimestamp": "2025-01-01T00:00:00Z",
                "labels": {"driftsweep.io/preview": "true"}}});
        let service = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "api", "namespace": "prod", "creationTimestamp": "2025-01-01T00:00:00Z"}});
        // Green serves the last good deploy; blue is the old colour inside its delay; the
        // rolling Deployment of before the conversion is at zero on an old digest.
        let mut rolling = deploy("prod", "reg.io/p/api:1.1.0@sha256:old");
        rolling["spec"]["replicas"] = json!(0);
        let live = cluster(vec![
            colour("green", "reg.io/p/api:1.2.0@sha256:new", 2, None),
            colour(
                "blue",
                "reg.io/p/api:1.1.0@sha256:old",
                2,
                Some("2026-12-01T10:30:00Z"),
            ),
            record.clone(),
            service.clone(),
            preview.clone(),
        ]);
        let f = crate::evaluate::testkit::evaluate(&p, &want, &live);
        assert!(
            f.items
                .iter()
                .all(|x| x.action != Action::Drift && x.action != Action::Delete),
            "both colours and the preview are the repository's: {:?}",
            f.items
        );
        let with_rolling = cluster(vec![
            rolling,
            record.clone(),
            colour("green", "reg.io/p/api:1.2.0@sha256:new", 2, None),
        ]);
        let f = crate::evaluate::testkit::evaluate(&p, &want, &with_rolling);
        assert!(
            f.items.iter().all(|x| x.action != Action::Drift),
            "a Deployment at zero runs no version: {:?}",
            f.items
        );
        // The serving colour off the record is drift, named by the colour.
        let off = cluster(vec![
            colour("green", "reg.io/p/api:1.2.0@sha256:hand", 2, None),
            colour("blue", "reg.io/p/api:1.1.0@sha256:old", 0, None),
            record,
        ]);
        let f = crate::evaluate::testkit::evaluate(&p, &want, &off);
        let drifted: Vec<&str> = f
            .items
            .iter()
            .filter(|x| x.action == Action::Drift)
            .map(|x| x.name.as_str())
            .collect();
        assert_eq!(drifted, ["api-green"], "{:?}", f.items);
    }

    #[test]
    fn nothing_is_missing_when_the_cluster_was_not_read() {
        let p = policy("version: 1\nname: t\nkubernetes:\n  namespaces: [prod]\n");
        let want = desired(vec![deploy("prod", "reg.io/p/api:1")]);
        let f = crate::evaluate::testkit::evaluate(&p, &want, &Inventory::default());
        assert!(f.items.is_empty());
    }

    #[test]
    fn tag_and_digest_compare_through_the_registry() {
        let mut digests = HashMap::default();
        digests.insert(
            ("reg.io/p/api".to_string(), "1.2.0".to_string()),
            "sha256:aa".to_string(),
        );
        assert!(same_image(
            "reg.io/p/api:1.2.0",
            "reg.io/p/api@sha256:aa",
            &digests
        ));
        assert!(!same_image(
            "reg.io/p/api:1.2.0",
            "reg.io/p/api@sha256:bb",
            &digests
        ));
        assert!(!same_image(
            "reg.io/p/api:1.2.0",
            "reg.io/p/api:1.1.0",
            &digests
        ));
        assert!(same_image(
            "reg.io/p/api:${VERSION}",
            "reg.io/p/api:1.1.0",
            &digests
        ));
        assert!(!same_image(
            "reg.io/p/api:${VERSION}",
            "reg.io/p/other:1.1.0",
            &digests
        ));
        assert!(same_image(
            "nginx",
            "docker.io/library/nginx:latest",
            &digests
        ));
    }
}
