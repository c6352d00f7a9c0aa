//! Enforce: delete exactly what a person reviewed, and nothing that changed since.
//!
//! The inventory is read again and evaluated against the current policy, so "still condemned"
//! means the same as it did in the dry run (references are proven again, not remembered). A
//! planned deletion runs only if the object is still planned for deletion now and is still the
//! same object (uid and resourceVersion; digest and tags). The safety gates run over what will
//! really be deleted, before the first delete. Every object is backed up before its delete is
//! sent, or it is not deleted. One failure never stops the others.

pub mod backup;
pub mod lease;
pub mod names;
pub mod restore;

use std::collections::HashMap;
use std::io::IsTerminal;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::evaluate::{Action, Finding, Findings, Outcome, OutcomeStatus};
use crate::inventory::cluster::{Cluster, DeleteOutcome, KubeTarget};
use crate::inventory::gcp_live::{GcpClients, GcpDelete};
use crate::inventory::registry::client::{DeleteOutcome as RegistryOutcome, RegistryClient};
use crate::inventory::{Inventory, Provider};
use crate::plan::{self, Blocked};
use crate::report::Report;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("`{path}` is a {mode} report; enforce needs the dry-run report you reviewed")]
    NotDryRun { path: String, mode: String },
    #[error(
        "`{path}` was made {hours} hours ago, more than `safety.plan_max_age_hours` ({limit}) allows\nhint: run a new dry run, review it, and enforce that"
    )]
    TooOld {
        path: String,
        hours: i64,
        limit: u32,
    },
    #[error(
        "`{path}` was made with another policy (digest {planned}, now {current})\nhint: the policy changed since the review; run a new dry run and review it"
    )]
    PolicyChanged {
        path: String,
        planned: String,
        current: String,
    },
    #[error(
        "`{path}` is refused: {at}: `{field}` is `{value}`, which is not {rule}\nhint: a plan is the JSON `run --report` wrote, and this one was edited or damaged; run a new dry run, review it, and enforce that"
    )]
    BadName {
        path: String,
        at: String,
        field: &'static str,
        value: String,
        rule: &'static str,
    },
    #[error(
        "`{path}` says it was made in the future: its `{field}` is {at}, {minutes} minutes ahead of this machine's clock (at most {MAX_CLOCK_SKEW_MINUTES} are allowed for clock skew)\nhint: a plan from the future would never expire; check the clocks, or run a new dry run and review it"
    )]
    FromTheFuture {
        path: String,
        field: &'static str,
        at: DateTime<Utc>,
        minutes: i64,
    },
    #[error("`{path}` was blocked by `{gate}` when it was made: {message}")]
    Blocked {
        path: String,
        gate: String,
        message: String,
    },
}

/// How far ahead of this machine's clock a plan's times may be: the clocks of the machine that
/// made it and of this one may differ a little.
pub const MAX_CLOCK_SKEW_MINUTES: i64 = 5;

/// Checks that a reviewed plan may be enforced now under this policy. Its names are checked
/// first: nothing is built from them before.
pub fn check_plan(
    plan: &Report,
    path: &str,
    policy_digest: &str,
    max_age_hours: u32,
    now: DateTime<Utc>,
) -> Result<(), PlanError> {
    if plan.mode != crate::report::Mode::DryRun {
        return Err(PlanError::NotDryRun {
            path: path.to_string(),
            mode: "enforce".to_string(),
        });
    }
    names::check(plan).map_err(|b| PlanError::BadName {
        path: path.to_string(),
        at: b.at,
        field: b.field,
        value: b.value,
        rule: b.rule,
    })?;
    if plan.policy.digest != policy_digest {
        return Err(PlanError::PolicyChanged {
            path: path.to_string(),
            planned: plan.policy.digest.clone(),
            current: policy_digest.to_string(),
        });
    }
    // A plan dated ahead would pass the age check for ever.
    for (field, at) in [
        ("evaluated_at", plan.evaluated_at),
        ("started_at", plan.started_at),
    ] {
        if at - now > Duration::minutes(MAX_CLOCK_SKEW_MINUTES) {
            return Err(PlanError::FromTheFuture {
                path: path.to_string(),
                field,
                at,
                minutes: (at - now).num_minutes(),
            });
        }
    }
    // Measured against the time the plan decided as of (its `--now`, else when it ran).
    let age = now - plan.evaluated_at;
    if age > Duration::hours(i64::from(max_age_hours)) {
        return Err(PlanError::TooOld {
            path: path.to_string(),
            hours: age.num_hours(),
            limit: max_age_hours,
        });
    }
    if let Some(b) = &plan.blocked {
        return Err(PlanError::Blocked {
            path: path.to_string(),
            gate: b.gate.clone(),
            message: b.message.clone(),
        });
    }
    Ok(())
}

type Key = (Provider, String, Option<String>, String);

fn key(f: &Finding) -> Key {
    (
        f.provider,
        f.kind.clone(),
        f.namespace.clone(),
        f.name.clone(),
    )
}

/// Whether the object now is the one the review saw.
fn same_object(planned: &Finding, now: &Finding) -> Result<(), String> {
    let (p, n) = (&planned.identity, &now.identity);
    match planned.provider {
        Provider::Kubernetes => {
            if p.uid != n.uid {
                return Err(format!(
                    "re-created since review: uid is now {} (was {})",
                    n.uid.as_deref().unwrap_or("unknown"),
                    p.uid.as_deref().unwrap_or("unknown")
                ));
            }
            if p.resource_version != n.resource_version {
                return Err(format!(
                    "changed since review: resourceVersion is now {} (was {})",
                    n.resource_version.as_deref().unwrap_or("unknown"),
                    p.resource_version.as_deref().unwrap_or("unknown")
                ));
            }
        }
        Provider::Registry => {
            let sorted = |t: &Option<Vec<String>>| {
                let mut t = t.clone().unwrap_or_default();
                t.sort();
                t
            };
            if p.digest != n.digest || sorted(&p.tags) != sorted(&n.tags) {
                return Err(format!(
                    "changed since review: tags are now {:?} (were {:?})",
                    sorted(&n.tags),
                    sorted(&p.tags)
                ));
            }
        }
        Provider::Gcp => {
            if p.etag != n.etag || p.id != n.id {
                return Err("changed since review (etag or id differs)".to_string());
            }
        }
    }
    Ok(())
}

fn skipped(reason: impl Into<String>) -> Outcome {
    Outcome {
        status: OutcomeStatus::Skipped,
        reason: Some(reason.into()),
        backup: None,
    }
}

/// What enforce will do: the findings (current ones, plus planned objects no longer there),
/// the indexes it deletes in plan order, and outcomes already decided (skips).
pub struct Selection {
    pub findings: Findings,
    pub deletions: Vec<usize>,
    /// Planned objects the current inventory lacks (gone, or their list failed): the
    /// executor finds out which; nothing is deleted either way.
    pub unlisted: Vec<usize>,
}

/// Matches the reviewed plan (or, with `--no-review`, the current plan) against the current
/// findings.
pub fn select(current: Findings, reviewed: Option<&Report>) -> Selection {
    let mut findings = current;
    let current_plan: Vec<usize> = {
        let mut order: Vec<(usize, usize)> = findings
            .items
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.plan_order.map(|o| (o, i)))
            .collect();
        order.sort();
        order.into_iter().map(|(_, i)| i).collect()
    };
    let Some(reviewed) = reviewed else {
        return Selection {
            findings,
            deletions: current_plan,
            unlisted: Vec::new(),
        };
    };
    let mut by_key: HashMap<Key, usize> = HashMap::new();
    for (i, f) in findings.items.iter().enumerate() {
        by_key.insert(key(f), i);
    }
    let mut planned: Vec<&Finding> = reviewed
        .findings
        .iter()
        .filter(|f| f.action == Action::Delete)
        .collect();
    planned.sort_by_key(|f| f.plan_order.unwrap_or(usize::MAX));
    let mut selected = Vec::new();
    let mut unlisted = Vec::new();
    let mut in_review = std::collections::HashSet::new();
    for p in planned {
        in_review.insert(key(p));
        match by_key.get(&key(p)) {
            None => {
                let mut f = p.clone();
                f.outcome = Some(skipped("not in the current inventory"));
                f.reviewed_only = true;
                unlisted.push(findings.items.len());
                findings.items.push(f);
            }
            Some(&i) => {
                let now = &mut findings.items[i];
                if now.action != Action::Delete {
                    let reasons: Vec<String> = now.reasons.iter().map(|r| r.code()).collect();
                    now.outcome = Some(skipped(format!(
                        "no longer condemned: now kept ({})",
                        reasons.join(", ")
                    )));
                } else if let Err(why) = same_object(p, now) {
                    now.outcome = Some(skipped(why));
                } else {
                    selected.push(i);
                }
            }
        }
    }
    // Deletions the review did not see are not made.
    for f in &mut findings.items {
        if f.action == Action::Delete && f.outcome.is_none() && !in_review.contains(&key(f)) {
            f.outcome = Some(skipped("not in the reviewed plan"));
        }
    }
    Selection {
        findings,
        deletions: selected,
        unlisted,
    }
}

/// Gates over what will really be deleted.
pub fn gates(
    selection: &Selection,
    safety: &crate::policy::Safety,
    now: DateTime<Utc>,
) -> Option<Blocked> {
    plan::gates(&selection.findings, &selection.deletions, safety, now)
}

/// What this cluster account may not do of what enforce will do: get and delete each kind the
/// plan deletes, in each namespace it deletes in. Asked before the Lease is taken, so an
/// account that cannot delete neither deletes nor blocks the one that can. With no reviewed
/// plan, every audited kind in every namespace.
pub async fn missing_permissions(
    cluster: &Cluster,
    reviewed: Option<&Report>,
    policy: &crate::policy::Policy,
) -> Result<Vec<String>, crate::inventory::cluster::ClusterError> {
    let mut needed: std::collections::BTreeSet<(String, String, Option<String>)> =
        Default::default();
    match reviewed {
        Some(plan) => {
            for f in plan
                .findings
                .iter()
                .filter(|f| f.action == Action::Delete && f.provider == Provider::Kubernetes)
            {
                let target = target_of(f);
                needed.insert((target.api_version, target.kind, target.namespace));
            }
        }
        None => {
            let audited = policy.kubernetes.iter().flat_map(|k| k.kinds.iter());
            for kind in audited
                .map(|k| k.as_str().to_string())
                .chain(["Namespace".to_string()])
            {
                if let Some(info) = crate::inventory::cluster::kind_named(&kind) {
                    needed.insert((info.api_version(), kind, None));
                }
            }
        }
    }
    let mut missing = Vec::new();
    for (api_version, kind, namespace) in needed {
        let info = cluster.resolve(&api_version, &kind).await?;
        for verb in ["get", "delete"] {
            if !cluster.can(verb, &info, namespace.as_deref()).await? {
                missing.push(match &namespace {
                    Some(ns) => format!("`{verb} {}` in `{ns}`", info.resource()),
                    None => format!("`{verb} {}`", info.resource()),
                });
            }
        }
    }
    Ok(missing)
}

/// The backends enforce deletes through.
pub struct Executors<'a> {
    pub cluster: Option<&'a Cluster>,
    pub registry: Option<&'a RegistryClient>,
    pub gcp: Option<(&'a GcpClients, &'a crate::policy::GcpPolicy)>,
    /// The time of the run (service accounts: when one was disabled).
    pub now: DateTime<Utc>,
    pub backup: &'a backup::Backup,
    /// False once the Lease is lost: stop deleting.
    pub still_leased: &'a (dyn Fn() -> bool + Sync),
}

/// Runs the selected deletions in order; every planned finding gets an outcome.
pub async fn execute(selection: &mut Selection, inventory: &Inventory, exec: &Executors<'_>) {
    let total = selection.deletions.len() as u64;
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} deleting [{bar:30}] {pos}/{len} {wide_msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let deadline = crate::settings::seconds_from_env("DRIFTSWEEP_ACTION_DEADLINE_SECONDS", 600);
    for position in 0..selection.deletions.len() {
        let i = selection.deletions[position];
        let finding = selection.findings.items[i].clone();
        bar.set_message(display(&finding));
        let outcome = if let Some(why) = referrer_remains(&selection.findings, &finding) {
            skipped(why)
        } else if (exec.still_leased)() {
            // However a server behaves, one deletion cannot hold up the others for ever.
            match tokio::time::timeout(deadline, delete_one(&finding, exec)).await {
                Ok(outcome) => outcome,
                Err(_) => failed(
                    format!(
                        "no answer within {} s (DRIFTSWEEP_ACTION_DEADLINE_SECONDS): it may or may not be deleted; run a dry run to see, and find its backup in this run's backup folder",
                        deadline.as_secs()
                    ),
                    None,
                ),
            }
        } else {
            skipped("the Lease was lost; another run may be active")
        };
        log_outcome(&finding, &outcome, position + 1, total);
        selection.findings.items[i].outcome = Some(outcome);
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Planned objects this run's audit did not find: already gone, not listed, or never
    // audited. None of them is deleted; the outcome says which.
    for &i in &selection.unlisted {
        let f = &selection.findings.items[i];
        let outcome = match f.provider {
            Provider::Kubernetes => unlisted_kubernetes(f, inventory, exec.cluster).await,
            Provider::Registry => {
                let repository = f.identity.repository.clone().unwrap_or_default();
                let read = inventory.registry.iter().any(|r| r.name == repository);
                let protects = crate::inventory::Protects::Repository(repository);
                if read && !inventory.has_gap(&protects) {
                    gone()
                } else if inventory
                    .gaps
                    .iter()
                    .any(|g| g.provider == Provider::Registry)
                {
                    skipped("its repository could not be read this run (see errors)")
                } else {
                    skipped(NOT_AUDITED)
                }
            }
            Provider::Gcp => match crate::inventory::GcpKind::parse(&f.kind) {
                Some(k) if inventory.has_gap(&crate::inventory::Protects::Gcp(k)) => {
                    skipped("its list failed this run (see errors)")
                }
                Some(k) if inventory.gcp_listed.contains(&k) => gone(),
                _ => skipped(NOT_AUDITED),
            },
        };
        selection.findings.items[i].outcome = Some(outcome);
    }
}

/// Why a load balancer part must not be deleted yet: a part that names it, deleted this run
/// before it (plan order), was not deleted. The API would refuse the delete anyway; this
/// says why instead of trying.
fn referrer_remains(findings: &Findings, f: &Finding) -> Option<String> {
    for referrer in &f.identity.after {
        let outcome = findings
            .items
            .iter()
            .find(|r| r.provider == f.provider && &format!("{} {}", r.kind, r.name) == referrer)
            .and_then(|r| r.outcome.as_ref());
        match outcome.map(|o| o.status) {
            Some(OutcomeStatus::Deleted | OutcomeStatus::AlreadyGone) => {}
            status => {
                return Some(format!(
                    "not deleted: {referrer}, which names it, was not deleted ({})",
                    status.map_or("not attempted", |s| s.as_str())
                ));
            }
        }
    }
    None
}

/// The skip of a planned object whose kind or repository this run does not audit.
const NOT_AUDITED: &str = "not found by this run's audit, which does not list its kind or repository: not deleted (a plan may only delete what the audit finds)";

fn gone() -> Outcome {
    Outcome {
        status: OutcomeStatus::AlreadyGone,
        reason: None,
        backup: None,
    }
}

/// A planned Kubernetes object absent from this run's findings. It is never deleted: a plan
/// only deletes what the audit condemns again. The cluster is asked only whether it is gone.
async fn unlisted_kubernetes(
    f: &Finding,
    inventory: &Inventory,
    cluster: Option<&Cluster>,
) -> Outcome {
    let listed = inventory.kubernetes_listed.contains(&f.kind);
    let in_inventory = inventory
        .kubernetes_objects()
        .iter()
        .any(|o| o.kind == f.kind && o.namespace == f.namespace && o.name == f.name);
    if in_inventory {
        // Listed, but outside what the policy audits (another namespace, a kind it does not
        // audit): an object added to the plan by hand.
        return skipped(
            "exists, but this run's audit does not condemn it (it is not an audited object of the policy's namespaces): not deleted (a plan may only delete what the audit condemns)",
        );
    }
    let Some(cluster) = cluster else {
        return skipped("the cluster was not read");
    };
    match cluster.exists(&target_of(f)).await {
        Ok(false) => gone(),
        Ok(true) if listed => skipped(
            "not found in this run's inventory although its kind was listed completely: not deleted (a plan may only delete what the audit finds)",
        ),
        Ok(true)
            if inventory
                .gaps
                .iter()
                .any(|g| g.provider == Provider::Kubernetes) =>
        {
            skipped("exists, but its kind was not listed completely this run (see errors)")
        }
        Ok(true) => skipped(NOT_AUDITED),
        Err(e) => skipped(format!("cannot tell whether it still exists: {e}")),
    }
}

fn display(f: &Finding) -> String {
    format!("{} {}", f.kind, crate::report::in_namespace(f, &f.name))
}

fn log_outcome(f: &Finding, outcome: &Outcome, position: usize, total: u64) {
    tracing::info!(
        position,
        total,
        provider = %f.provider,
        kind = %f.kind,
        namespace = f.namespace.as_deref().unwrap_or(""),
        name = %f.name,
        outcome = outcome.status.as_str(),
        reason = outcome.reason.as_deref().unwrap_or(""),
        backup = outcome.backup.as_deref().unwrap_or(""),
        "enforce action"
    );
}

fn target_of(f: &Finding) -> KubeTarget {
    KubeTarget {
        api_version: f
            .identity
            .api_version
            .clone()
            .unwrap_or_else(|| "v1".to_string()),
        kind: f.kind.clone(),
        namespace: f.namespace.clone(),
        name: f.name.clone(),
        uid: f.identity.uid.clone(),
        resource_version: f.identity.resource_version.clone(),
    }
}

fn failed(reason: impl Into<String>, backup: Option<String>) -> Outcome {
    Outcome {
        status: OutcomeStatus::Failed,
        reason: Some(reason.into()),
        backup,
    }
}

async fn delete_one(f: &Finding, exec: &Executors<'_>) -> Outcome {
    match f.provider {
        Provider::Kubernetes => {
            let Some(cluster) = exec.cluster else {
                return skipped("the cluster is not connected");
            };
            delete_kubernetes(cluster, f, exec.backup).await
        }
        Provider::Registry => {
            let Some(client) = exec.registry else {
                return skipped("the registry is not configured");
            };
            delete_image(client, f, exec.backup).await
        }
        Provider::Gcp => {
            let Some((clients, policy)) = exec.gcp else {
                return skipped("the GCP project is not configured");
            };
            delete_gcp(clients, policy, f, exec.backup, exec.now).await
        }
    }
}

/// The creation time a GCP API reports, to tell a re-created resource from the reviewed one.
fn created_of(current: &serde_json::Value, field: Option<&str>) -> Option<DateTime<Utc>> {
    field
        .and_then(|k| current.get(k).and_then(serde_json::Value::as_str))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

async fn delete_gcp(
    clients: &GcpClients,
    policy: &crate::policy::GcpPolicy,
    f: &Finding,
    backup: &backup::Backup,
    now: DateTime<Utc>,
) -> Outcome {
    let Some(kind) = crate::inventory::GcpKind::parse(&f.kind) else {
        return skipped(format!("unknown GCP kind {}", f.kind));
    };
    let current = match clients
        .current(kind, &f.name, f.identity.resource_name.as_deref())
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Outcome {
                status: OutcomeStatus::AlreadyGone,
                reason: None,
                backup: None,
            };
        }
        Err(e) => return failed(e, None),
    };
    let Some(entry) = crate::inventory::gcp::kind(kind) else {
        return skipped(format!("unknown GCP kind {}", f.kind));
    };
    // A field, or a JSON pointer (`/settings/settingsVersion`) to a nested one.
    let id_text = entry.reverify.id.and_then(|field| {
        match if field.starts_with('/') {
            current.pointer(field)
        } else {
            current.get(field)
        } {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    });
    let id = id_text.as_deref();
    let reviewed_id = f.identity.id.as_deref();
    if let (Some(now_id), Some(was)) = (id, reviewed_id)
        && now_id != was
    {
        return skipped(format!(
            "re-created since review: id is now {now_id} (was {was})"
        ));
    }
    if let (Some(now_created), Some(was)) =
        (created_of(&current, entry.reverify.created), f.created_at)
        && now_created != was
    {
        return skipped(format!(
            "re-created since review: created {now_created} (was {was})"
        ));
    }
    // A regional name (`REGION/NAME`) is one file: GCP names hold no `_`.
    let location = match backup
        .gcp(&f.kind, &f.name.replace('/', "_"), &current)
        .await
    {
        Ok(l) => l,
        Err(e) => return failed(format!("not deleted: {e}"), None),
    };
    let etag = f.identity.etag.as_deref();
    match clients
        .delete(kind, &f.name, &current, etag, policy, now)
        .await
    {
        Ok(GcpDelete::Deleted(note)) => Outcome {
            status: OutcomeStatus::Deleted,
            reason: note,
            backup: Some(location),
        },
        Ok(GcpDelete::AlreadyGone) => Outcome {
            status: OutcomeStatus::AlreadyGone,
            reason: None,
            backup: Some(location),
        },
        Ok(GcpDelete::Skipped(why)) => Outcome {
            status: OutcomeStatus::Skipped,
            reason: Some(why),
            backup: Some(location),
        },
        Ok(GcpDelete::Disabled(why)) => Outcome {
            status: OutcomeStatus::Disabled,
            reason: Some(why),
            backup: Some(location),
        },
        Err(e) => failed(e, Some(location)),
    }
}

async fn delete_kubernetes(cluster: &Cluster, f: &Finding, backup: &backup::Backup) -> Outcome {
    let target = target_of(f);
    let prepared = match cluster.prepare_delete(&target).await {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(outcome)) => return kube_outcome(outcome, None),
        Err(e) => return failed(e.to_string(), None),
    };
    // A namespace takes its contents with it: back them up first.
    if target.kind == "Namespace" && target.namespace.is_none() {
        let contents = match cluster.namespace_contents(&target.name).await {
            Ok(c) => c,
            Err(e) => {
                return failed(
                    format!("not deleted: its contents could not be listed for the backup: {e}"),
                    None,
                );
            }
        };
        for object in &contents {
            if let Err(e) = backup.kubernetes(object, Some(&target.name)).await {
                return failed(format!("not deleted: {e}"), None);
            }
        }
    }
    let location = match backup.kubernetes(&prepared.object, None).await {
        Ok(l) => l,
        Err(e) => return failed(format!("not deleted: {e}"), None),
    };
    match cluster.delete(&prepared).await {
        Ok(outcome) => kube_outcome(outcome, Some(location)),
        Err(e) => failed(e.to_string(), Some(location)),
    }
}

fn kube_outcome(outcome: DeleteOutcome, backup: Option<String>) -> Outcome {
    match outcome {
        DeleteOutcome::Deleted => Outcome {
            status: OutcomeStatus::Deleted,
            reason: None,
            backup,
        },
        DeleteOutcome::AlreadyGone => Outcome {
            status: OutcomeStatus::AlreadyGone,
            reason: None,
            backup,
        },
        DeleteOutcome::Skipped(why) => Outcome {
            status: OutcomeStatus::Skipped,
            reason: Some(why),
            backup,
        },
    }
}

async fn delete_image(client: &RegistryClient, f: &Finding, backup: &backup::Backup) -> Outcome {
    let (Some(repository), Some(digest)) = (&f.identity.repository, &f.identity.digest) else {
        return skipped("the plan does not record the repository and digest");
    };
    let tags = f.identity.tags.clone().unwrap_or_default();
    let record = json!({
        "repository": repository,
        "digest": digest,
        "tags": tags,
        "mediaType": f.identity.media_type,
        "uploadedAt": f.identity.uploaded_at,
        "note": "a record of what was deleted; the image itself cannot be restored",
    });
    let location = match backup.image(repository, digest, &record).await {
        Ok(l) => l,
        Err(e) => return failed(format!("not deleted: {e}"), None),
    };
    match client.delete_version(repository, digest, &tags).await {
        Ok(RegistryOutcome::Deleted) => Outcome {
            status: OutcomeStatus::Deleted,
            reason: None,
            backup: Some(location),
        },
        Ok(RegistryOutcome::AlreadyGone) => Outcome {
            status: OutcomeStatus::AlreadyGone,
            reason: None,
            backup: Some(location),
        },
        Ok(RegistryOutcome::Skipped(why)) => Outcome {
            status: OutcomeStatus::Skipped,
            reason: Some(why),
            backup: Some(location),
        },
        Err(e) => failed(e.to_string(), Some(location)),
    }
}

#[cfg(test)]
mod tests;
