//! Retention: keep-N by upload time, max age, what runs, index children, foreign images,
//! and fail-closed when the cluster could not be read.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use serde_json::json;

use crate::evaluate::testkit::{evaluate, now, objects, policy};
use crate::evaluate::{Action, Findings, Reason};
use crate::inventory::registry::{Children, ImageVersion, Repository};
use crate::inventory::{Inventory, KubeObject};
use crate::manifests::Desired;

const REPO: &str = "reg.example.com/team/app";

fn digest(n: u32) -> String {
    format!("sha256:{:064x}", n)
}

fn version(n: u32, days_old: i64, tags: &[&str]) -> ImageVersion {
    ImageVersion {
        digest: digest(n),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
        uploaded: Some(now() - Duration::days(days_old)),
        created: None,
        size: None,
        children: Children::None,
    }
}

fn pod_running(image: &str, image_id: Option<&str>) -> KubeObject {
    let mut status = json!({});
    if let Some(id) = image_id {
        status = json!({"containerStatuses": [{"name": "c", "imageID": id}]});
    }
    objects(vec![json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "app", "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c", "image": image}]}, "status": status})])
    .remove(0)
}

fn inventory(versions: Vec<ImageVersion>, cluster: Vec<KubeObject>) -> Inventory {
    Inventory {
        kubernetes: Some(cluster),
        registry: vec![Repository {
            name: REPO.into(),
            versions,
        }],
        ..Inventory::default()
    }
}

fn run_with(policy_yaml: &str, inventory: &Inventory) -> Findings {
    evaluate(&policy(policy_yaml), &Desired::default(), inventory)
}

fn run(inventory: &Inventory) -> Findings {
    run_with(
        &format!(
            "version: 1\nname: t\nregistry:\n  repositories: [{REPO}]\n  scan: [reg.example.com/team]\n  keep_recent: 3\n  max_age_days: 30\n"
        ),
        inventory,
    )
}

fn action(f: &Findings, n: u32) -> (Action, Vec<Reason>) {
    let name = format!("{REPO}@{}", digest(n));
    let found = f
        .items
        .iter()
        .find(|x| x.name == name)
        .unwrap_or_else(|| panic!("{name} not reported"));
    (found.action, found.reasons.clone())
}

#[test]
fn keeps_the_newest_versions_and_the_young_ones_and_deletes_the_rest() {
    // Versions 1..=6 uploaded 100, 90, ..., 50 days ago; version 7 ten days ago.
    let mut versions: Vec<_> = (1..=6)
        .map(|n| version(n, 110 - 10 * i64::from(n), &[]))
        .collect();
    versions.push(version(7, 10, &["v7"]));
    let f = run(&inventory(versions, vec![]));
    for n in [1, 2, 3, 4] {
        assert_eq!(
            action(&f, n),
            (Action::Delete, vec![Reason::Expired]),
            "version {n}"
        );
    }
    assert_eq!(action(&f, 5).1, vec![Reason::RecentVersion]);
    assert_eq!(action(&f, 6).1, vec![Reason::RecentVersion]);
    assert_eq!(
        action(&f, 7).1,
        vec![Reason::RecentVersion, Reason::WithinMaxAge]
    );
}

#[test]
fn upload_time_wins_over_a_1980_build_stamp() {
    let mut stamped = version(1, 5, &["reproducible"]);
    stamped.created = Some(DateTime::<Utc>::from_timestamp(315_532_800, 0).unwrap_or_default());
    let old: Vec<_> = (2..=5).map(|n| version(n, 200, &[])).collect();
    let mut all = vec![stamped];
    all.extend(old);
    let f = run(&inventory(all, vec![]));
    assert_eq!(action(&f, 1).0, Action::Keep);
    assert!(action(&f, 1).1.contains(&Reason::WithinMaxAge));
}

#[test]
fn an_image_without_any_usable_time_is_kept() {
    let mut unknown = version(1, 0, &[]);
    unknown.uploaded = None;
    let mut all = vec![unknown];
    all.extend((2..=6).map(|n| version(n, 200, &[])));
    let f = run(&inventory(all, vec![]));
    assert_eq!(action(&f, 1), (Action::Keep, vec![Reason::AgeUnknown]));
}

#[test]
fn images_in_use_by_tag_digest_or_image_id_are_kept() {
    let versions: Vec<_> = (1..=8)
        .map(|n| version(n, 100 + i64::from(n), &[&format!("v{n}")]))
        .collect();
    let cluster = vec![
        pod_running(&format!("{REPO}:v8"), None),
        pod_running(&format!("{REPO}@{}", digest(7)), None),
        pod_running(
            &format!("{REPO}:moved-tag"),
            Some(&format!("docker-pullable://{REPO}@{}", digest(6))),
        ),
    ];
    let f = run(&inventory(versions, cluster));
    for n in [6, 7, 8] {
        assert_eq!(
            action(&f, n),
            (Action::Keep, vec![Reason::InUse]),
            "version {n}"
        );
    }
    assert_eq!(action(&f, 5).0, Action::Delete);
}

#[test]
fn nothing_is_deleted_when_the_cluster_was_not_read() {
    let versions: Vec<_> = (1..=8)
        .map(|n| version(n, 200 + i64::from(n), &[]))
        .collect();
    let mut inv = inventory(versions, vec![]);
    inv.kubernetes = None;
    let f = run(&inv);
    assert!(f.items.iter().all(|x| x.action == Action::Keep));
    assert!(action(&f, 1).1.contains(&Reason::ReferencesUnknown));
    // A registry audited on its own may go ahead.
    let alone = run_with(
        &format!(
            "version: 1\nname: t\nregistry:\n  repositories: [{REPO}]\n  keep_recent: 3\n  protect_in_use: false\n"
        ),
        &inv,
    );
    assert_eq!(alone.count(Action::Delete), 5);
}

#[test]
fn children_of_a_kept_index_are_kept_and_not_counted_as_versions() {
    // Four indexes, each with two children; keep_recent 3 keeps indexes 2..4 whatever the
    // children, and index 1 goes with its children after it.
    let mut all = Vec::new();
    for i in 1..=4u32 {
        let mut index = version(i * 10, 200 - i64::from(i), &[&format!("v{i}")]);
        index.media_type = Some("application/vnd.oci.image.index.v1+json".into());
        index.children = Children::Known(vec![digest(i * 10 + 1), digest(i * 10 + 2)]);
        all.push(index);
        all.push(version(i * 10 + 1, 1, &[]));
        all.push(version(i * 10 + 2, 1, &[]));
    }
    let f = run(&inventory(all, vec![]));
    for i in 2..=4u32 {
        assert_eq!(action(&f, i * 10).0, Action::Keep);
        assert_eq!(
            action(&f, i * 10 + 1),
            (Action::Keep, vec![Reason::IndexChild])
        );
    }
    assert_eq!(action(&f, 10), (Action::Delete, vec![Reason::Expired]));
    assert_eq!(action(&f, 11), (Action::Delete, vec![Reason::IndexDeleted]));
    let child = f
        .items
        .iter()
        .find(|x| x.name.ends_with(&digest(11)))
        .unwrap();
    assert_eq!(child.identity.parent.as_deref(), Some(digest(10).as_str()));
}

#[test]
fn a_running_child_manifest_keeps_its_index() {
    let mut index = version(10, 300, &["v1"]);
    index.children = Children::Known(vec![digest(11)]);
    let mut all = vec![index, version(11, 300, &[])];
    all.extend((1..=3).map(|n| version(n, 100, &[])));
    let cluster = vec![pod_running(
        &format!("{REPO}:v1"),
        Some(&format!("{REPO}@{}", digest(11))),
    )];
    let f = run(&inventory(all, cluster));
    assert_eq!(action(&f, 10).0, Action::Keep);
    assert_eq!(action(&f, 11).0, Action::Keep);
}

#[test]
fn untagged_manifests_are_kept_when_an_index_has_unknown_children() {
    let mut index = version(10, 300, &["v1"]);
    index.children = Children::Unknown;
    let mut all = vec![index, version(11, 300, &[])];
    all.extend((1..=3).map(|n| version(n, 100, &[&format!("t{n}")])));
    let f = run(&inventory(all, vec![]));
    assert_eq!(action(&f, 11).0, Action::Keep);
    assert!(action(&f, 11).1.contains(&Reason::PossibleIndexChild));
}

#[test]
fn foreign_images_under_scan_roots_are_deleted_unless_in_use() {
    let foreign = Repository {
        name: "reg.example.com/team/prototype".into(),
        versions: vec![version(1, 5, &["latest"]), version(2, 400, &["old"])],
    };
    let elsewhere = Repository {
        name: "reg.example.com/other-team/x".into(),
        versions: vec![version(3, 400, &[])],
    };
    let inv = Inventory {
        kubernetes: Some(vec![pod_running(
            "reg.example.com/team/prototype:old",
            None,
        )]),
        registry: vec![foreign, elsewhere],
        ..Inventory::default()
    };
    let f = run(&inv);
    let by_name = |n: &str| {
        f.items
            .iter()
            .find(|x| x.name == n)
            .map(|x| (x.action, x.reasons.clone()))
    };
    assert_eq!(
        by_name(&format!("reg.example.com/team/prototype@{}", digest(1))),
        Some((Action::Delete, vec![Reason::ForeignImage]))
    );
    assert_eq!(
        by_name(&format!("reg.example.com/team/prototype@{}", digest(2))),
        Some((Action::Keep, vec![Reason::InUse]))
    );
    assert_eq!(
        by_name(&format!("reg.example.com/other-team/x@{}", digest(3))),
        None
    );
}

#[test]
fn versions_tied_with_the_last_kept_one_are_kept() {
    let all: Vec<_> = (1..=5).map(|n| version(n, 100, &[])).collect();
    let f = run(&inventory(all, vec![]));
    assert_eq!(f.count(Action::Delete), 0);
}

fn arb_versions() -> impl Strategy<Value = Vec<(i64, bool)>> {
    prop::collection::vec((0i64..400, any::<bool>()), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The retention invariants: never one of the newest `keep_recent`, never anything
    /// younger than `max_age_days`, never anything in use; and deleting what was planned
    /// makes no further version eligible.
    #[test]
    fn retention_invariants(specs in arb_versions(), keep_recent in 0u32..12, max_age in 1u32..200) {
        let versions: Vec<_> = specs
            .iter()
            .enumerate()
            .map(|(i, (days, _))| version(i as u32 + 1, *days, &[&format!("t{i}")]))
            .collect();
        let cluster: Vec<_> = specs
            .iter()
            .enumerate()
            .filter(|(_, (_, used))| *used)
            .map(|(i, _)| pod_running(&format!("{REPO}:t{i}"), None))
            .collect();
        let yaml = format!("version: 1\nname: t\nregistry:\n  repositories: [{REPO}]\n  keep_recent: {keep_recent}\n  max_age_days: {max_age}\nsafety:\n  min_age_hours: 0\n");
        let inv = inventory(versions.clone(), cluster.clone());
        let f = run_with(&yaml, &inv);
        let mut deleted = std::collections::HashSet::new();
        for (i, (days, used)) in specs.iter().enumerate() {
            let (act, _) = action(&f, i as u32 + 1);
            let newer = specs.iter().filter(|(d, _)| d < days).count();
            if act == Action::Delete {
                prop_assert!(newer >= keep_recent as usize, "deleted one of the newest");
                prop_assert!(*days >= i64::from(max_age), "deleted a version younger than max age");
                prop_assert!(!used, "deleted a version in use");
                deleted.insert(digest(i as u32 + 1));
            }
        }
        let remaining: Vec<_> = versions.into_iter().filter(|v| !deleted.contains(&v.digest)).collect();
        let again = run_with(&yaml, &inventory(remaining, cluster));
        prop_assert_eq!(again.count(Action::Delete), 0, "re-evaluation proposed new deletions");
    }
}

#[test]
fn a_version_pinned_by_the_repository_manifests_is_kept() {
    let versions: Vec<_> = (1..=6)
        .map(|n| version(n, 100 + i64::from(n), &[&format!("v{n}")]))
        .collect();
    let want = crate::evaluate::testkit::desired(vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "app"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": format!("{REPO}:v6")},
            {"name": "side", "image": format!("{REPO}:${{VERSION}}")}]}}}}),
    ]);
    let yaml = format!(
        "version: 1\nname: t\nregistry:\n  repositories: [{REPO}]\n  keep_recent: 3\n  max_age_days: 30\n"
    );
    let f = evaluate(&policy(&yaml), &want, &inventory(versions, vec![]));
    assert_eq!(
        action(&f, 6),
        (Action::Keep, vec![Reason::DefinedInRepository])
    );
    assert_eq!(action(&f, 5).0, Action::Delete);
}
