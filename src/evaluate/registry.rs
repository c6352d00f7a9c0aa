//! Image retention: per repository, keep the `keep_recent` newest versions and everything
//! younger than `max_age_days`; keep what the cluster runs; delete foreign images under the
//! scan roots. A child manifest of a multi-arch index is not a version of its own.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use chrono::{DateTime, Duration, Utc};

use super::{Clock, Finding, Identity, Reason};
use crate::inventory::registry::{Children, ImageRef, ImageVersion, Repository};
use crate::inventory::{Inventory, KubeObject, Protects, Provider};
use crate::manifests::{Desired, VERSION_PLACEHOLDER};
use crate::policy::RegistryPolicy;

/// What the cluster's workloads and Pods reference, indexed once.
#[derive(Default)]
pub(crate) struct InUse {
    /// Digests referenced anywhere (by digest, or running as a Pod's imageID). A digest is
    /// content: the same digest under another name (a mirror) is the same image.
    digests: HashSet<String>,
    /// Tags referenced, by repository.
    tags: HashMap<String, HashSet<String>>,
}

impl InUse {
    pub(crate) fn from_objects<'a>(objects: impl Iterator<Item = &'a KubeObject>) -> Self {
        let mut in_use = InUse::default();
        for o in objects {
            // A deploy record's images are what a rollback re-applies: keep them.
            if o.secret_type.as_deref() == Some(crate::deploy::history::SECRET_TYPE)
                && let Some(pins) = o
                    .annotations
                    .get(crate::deploy::history::DIGESTS_ANNOTATION)
                    .and_then(|a| serde_json::from_str::<HashMap<String, String>>(a).ok())
            {
                for pinned in pins.values() {
                    if let Some(d) = ImageRef::parse(pinned).and_then(|r| r.digest) {
                        in_use.digests.insert(d);
                    }
                }
            }
            let references = o
                .containers
                .iter()
                .map(|c| c.image.as_str())
                .chain(o.image_ids.iter().map(String::as_str));
            for reference in references {
                let Some(r) = ImageRef::parse(reference) else {
                    continue;
                };
                if reference.contains(VERSION_PLACEHOLDER) {
                    continue;
                }
                if let Some(d) = r.digest {
                    in_use.digests.insert(d);
                } else {
                    let tag = r.tag.unwrap_or_else(|| "latest".to_string());
                    in_use.tags.entry(r.repository).or_default().insert(tag);
                }
            }
        }
        in_use
    }

    fn uses(&self, repository: &str, v: &ImageVersion) -> bool {
        self.digests.contains(&v.digest)
            || self
                .tags
                .get(repository)
                .is_some_and(|tags| v.tags.iter().any(|t| tags.contains(t)))
    }
}

fn under_root(repository: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    repository
        .strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The time that counts for an image's age: upload time, else the config's creation time.
pub fn image_time(v: &ImageVersion) -> Option<DateTime<Utc>> {
    v.uploaded.or(v.created)
}

pub(super) fn evaluate(
    policy: &RegistryPolicy,
    desired: &Desired,
    inventory: &Inventory,
    clock: Clock,
    out: &mut Vec<Finding>,
) {
    let workloads_unknown = policy.protect_in_use
        && (inventory.kubernetes.is_none() || inventory.has_gap(&Protects::KubernetesReferences));
    let in_use = if policy.protect_in_use {
        InUse::from_objects(inventory.kubernetes_objects().iter())
    } else {
        InUse::default()
    };
    // Versions the repository's manifests pin are the next deploy's images.
    let wanted = InUse::from_objects(desired.objects.iter().map(|d| &d.object));
    for repo in &inventory.registry {
        let own = policy.repositories.iter().any(|r| r == &repo.name);
        let foreign = !own && policy.scan.iter().any(|root| under_root(&repo.name, root));
        if !own && !foreign {
            continue;
        }
        let ctx = RepoContext {
            policy,
            clock,
            in_use: &in_use,
            wanted: &wanted,
            workloads_unknown,
            foreign,
            incomplete: inventory.has_gap(&Protects::Repository(repo.name.clone())),
        };
        ctx.evaluate(repo, out);
    }
}

struct RepoContext<'a> {
    policy: &'a RegistryPolicy,
    clock: Clock,
    in_use: &'a InUse,
    wanted: &'a InUse,
    workloads_unknown: bool,
    foreign: bool,
    incomplete: bool,
}

impl RepoContext<'_> {
    fn evaluate(&self, repo: &Repository, out: &mut Vec<Finding>) {
        // Children of indexes: they live and die with their parents.
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::default();
        let mut children_unknown = false;
        for v in &repo.versions {
            match &v.children {
                Children::Known(children) => {
                    for c in children {
                        parents.entry(c.as_str()).or_default().push(&v.digest);
                    }
                }
                Children::Unknown => children_unknown = true,
                Children::None => {}
            }
        }
        // With an index whose children are unknown, any untagged single-platform manifest
        // may be one of them: it is kept and not counted as a version.
        let possible_child = |v: &ImageVersion| {
            children_unknown && v.tags.is_empty() && matches!(v.children, Children::None)
        };
        let versions: Vec<&ImageVersion> = repo
            .versions
            .iter()
            .filter(|v| !parents.contains_key(v.digest.as_str()))
            .collect();

        // Newest first, by upload time; unknown ages are not ranked.
        let mut times: Vec<DateTime<Utc>> = versions
            .iter()
            .filter(|v| !possible_child(v))
            .filter_map(|v| image_time(v))
            .collect();
        times.sort_unstable_by(|a, b| b.cmp(a));
        let max_age = Duration::days(i64::from(self.policy.max_age_days));
        let keep_recent = self.policy.keep_recent as usize;

        let mut kept_parents: HashSet<&str> = HashSet::default();
        let mut decided: Vec<Finding> = Vec::with_capacity(repo.versions.len());
        for v in &versions {
            let time = image_time(v);
            let mut keep = Vec::new();
            let child_in_use = match &v.children {
                Children::Known(children) => {
                    children.iter().any(|c| self.in_use.digests.contains(c))
                }
                _ => false,
            };
            if self.in_use.uses(&repo.name, v) || child_in_use {
                keep.push(Reason::InUse);
            }
            if self.wanted.uses(&repo.name, v) {
                keep.push(Reason::DefinedInRepository);
            }
            if self.workloads_unknown {
                keep.push(Reason::ReferencesUnknown);
            }
            if self.incomplete {
                keep.push(Reason::ListingIncomplete);
            }
            if possible_child(v) {
                keep.push(Reason::PossibleIndexChild);
            }
            if let Some(r) = self.clock.age_reason(time) {
                keep.push(r);
            }
            // How many versions are strictly newer; ties count as newer than nothing, so
            // every version tied with the last kept one is kept too.
            let rank = time
                .filter(|_| !self.foreign)
                .map(|t| (t, times.partition_point(|other| *other > t)));
            if let Some((t, newer)) = rank {
                if newer < keep_recent {
                    keep.push(Reason::RecentVersion);
                }
                if self.clock.now - t < max_age {
                    keep.push(Reason::WithinMaxAge);
                }
            }
            let finding = self.finding(repo, v, None);
            let delete_reason = if self.foreign {
                Reason::ForeignImage
            } else {
                Reason::Expired
            };
            let mut finding = finding.decide(keep, delete_reason);
            if finding.action == super::Action::Keep {
                kept_parents.insert(&v.digest);
            }
            if let Some((t, newer)) = rank {
                finding.detail = Some(format!(
                    "{} days old, {newer} newer version{}",
                    (self.clock.now - t).num_days(),
                    if newer == 1 { "" } else { "s" }
                ));
            }
            decided.push(finding);
        }

        for v in repo
            .versions
            .iter()
            .filter(|v| parents.contains_key(v.digest.as_str()))
        {
            let its_parents = &parents[v.digest.as_str()];
            let mut keep = Vec::new();
            if its_parents.iter().any(|p| kept_parents.contains(p)) {
                keep.push(Reason::IndexChild);
            }
            if self.in_use.digests.contains(&v.digest) {
                keep.push(Reason::InUse);
            }
            if self.workloads_unknown {
                keep.push(Reason::ReferencesUnknown);
            }
            if self.incomplete {
                keep.push(Reason::ListingIncomplete);
            }
            if let Some(Reason::TooYoung) = self.clock.age_reason(image_time(v)) {
                keep.push(Reason::TooYoung);
            }
            let parent = its_parents
                .iter()
                .find(|p| !kept_parents.contains(*p))
                .or(its_parents.first())
                .copied();
            decided.push(
                self.finding(repo, v, parent)
                    .decide(keep, Reason::IndexDeleted),
            );
        }
        out.extend(decided);
    }

    fn finding(&self, repo: &Repository, v: &ImageVersion, parent: Option<&str>) -> Finding {
        let mut f = Finding::new(
            Provider::Registry,
            "Image",
            None,
            &format!("{}@{}", repo.name, v.digest),
        );
        f.created_at = image_time(v);
        f.identity = Identity {
            repository: Some(repo.name.clone()),
            digest: Some(v.digest.clone()),
            tags: Some(v.tags.clone()),
            media_type: v.media_type.clone(),
            uploaded_at: v.uploaded,
            parent: parent.map(str::to_string),
            ..Identity::default()
        };
        f
    }
}

#[cfg(test)]
mod tests;
