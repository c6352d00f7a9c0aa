//! The report: one set of findings rendered as JSON (the machine contract), Markdown, HTML
//! and a terminal summary. A dry-run report is also the plan a person reviews.

pub mod alerts;
pub mod archive;
pub mod chart;
pub mod dashboard;
pub mod email;
mod html;
mod markdown;
mod terminal;
pub mod trend;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::evaluate::{Action, Finding, Findings};
use crate::inventory::{Gap, Provider};
use crate::plan::{Blocked, Plan};

pub use html::{CHART_CID, ChartImage, HtmlOptions, render as html, render_with as html_with};
pub use markdown::render as markdown;
pub(crate) use markdown::short_digest as markdown_short_digest;
pub use terminal::render as terminal;

pub const SCHEMA: &str = "driftsweep.report/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    DryRun,
    Enforce,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRef {
    pub name: String,
    pub digest: String,
    pub path: String,
}

/// Counts of one group of findings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub delete: usize,
    pub drift: usize,
    pub keep: usize,
}

impl Counts {
    fn add(&mut self, action: Action) {
        match action {
            Action::Delete => self.delete += 1,
            Action::Drift => self.drift += 1,
            Action::Keep => self.keep += 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindCounts {
    pub provider: Provider,
    pub kind: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    #[serde(flatten)]
    pub total: Counts,
    pub by_provider: BTreeMap<Provider, Counts>,
    pub by_kind: Vec<KindCounts>,
    /// Lists that failed or were incomplete.
    pub errors: usize,
    /// Enforce reports: planned actions by outcome (`deleted`, `already-gone`, `skipped`,
    /// `failed`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outcomes: BTreeMap<String, usize>,
}

/// The report JSON (`driftsweep.report/v1`). Fields are only ever added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub mode: Mode,
    pub driftsweep_version: String,
    /// Unique per run: `20261129T073000Z-1a2b3c`; names the archived report.
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    /// The time decisions were made against (ages are measured from it).
    pub evaluated_at: DateTime<Utc>,
    pub policy: PolicyRef,
    /// Where the inventory came from: `snapshot:<dir>` or `live`.
    pub source: String,
    pub summary: Summary,
    pub blocked: Option<Blocked>,
    /// Lists that failed or were incomplete, and what they protect.
    pub errors: Vec<Gap>,
    pub findings: Vec<Finding>,
    /// The alerts this run sent (`--alert`), each with what became of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<alerts::AlertOutcome>,
    /// Per service and environment: the repository version against what runs, and the last
    /// deploy (audits of a policy with a `deploy` section).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<dashboard::Dashboard>,
    /// The success metrics, each against its target (audit reports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<dashboard::Metric>,
    /// The last 30 days of the report archive (runs with an archive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<trend::Trend>,
}

pub struct ReportInput {
    pub run_id: String,
    pub mode: Mode,
    pub started_at: DateTime<Utc>,
    pub evaluated_at: DateTime<Utc>,
    pub policy: PolicyRef,
    pub source: String,
}

impl Report {
    pub fn new(input: ReportInput, findings: Findings, plan: &Plan) -> Report {
        let mut summary = Summary::default();
        let mut by_kind: BTreeMap<(Provider, String), Counts> = BTreeMap::new();
        // What this run found; planned objects it did not find are counted by outcome only.
        for f in findings.items.iter().filter(|f| !f.reviewed_only) {
            summary.total.add(f.action);
            summary
                .by_provider
                .entry(f.provider)
                .or_default()
                .add(f.action);
            by_kind
                .entry((f.provider, f.kind.clone()))
                .or_default()
                .add(f.action);
        }
        summary.by_kind = by_kind
            .into_iter()
            .map(|((provider, kind), counts)| KindCounts {
                provider,
                kind,
                counts,
            })
            .collect();
        summary.errors = findings.gaps.len();
        for f in &findings.items {
            if let Some(o) = &f.outcome {
                *summary
                    .outcomes
                    .entry(o.status.as_str().to_string())
                    .or_insert(0) += 1;
            }
        }
        Report {
            schema: SCHEMA.to_string(),
            mode: input.mode,
            driftsweep_version: env!("CARGO_PKG_VERSION").to_string(),
            run_id: input.run_id,
            started_at: input.started_at,
            evaluated_at: input.evaluated_at,
            policy: input.policy,
            source: input.source,
            summary,
            blocked: plan.blocked.clone(),
            errors: findings.gaps,
            findings: findings.items,
            alerts: Vec::new(),
            dashboard: None,
            metrics: Vec::new(),
            trend: None,
        }
    }

    /// Deletions in plan order.
    pub fn deletions(&self) -> Vec<&Finding> {
        let mut d: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.action == Action::Delete)
            .collect();
        d.sort_by_key(|f| f.plan_order);
        d
    }

    /// What the report lists as its actions: the deletions of a dry run in plan order, or
    /// every planned action of an enforce run with its outcome.
    pub fn actions(&self) -> Vec<&Finding> {
        if self.mode == Mode::DryRun {
            return self.deletions();
        }
        let mut a: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.outcome.is_some())
            .collect();
        a.sort_by_key(|f| (f.plan_order.is_none(), f.plan_order));
        a
    }

    /// Planned actions with this outcome.
    pub fn outcome_count(&self, status: crate::evaluate::OutcomeStatus) -> usize {
        self.summary
            .outcomes
            .get(status.as_str())
            .copied()
            .unwrap_or(0)
    }

    pub fn json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The same JSON, written as it is made: a report of 25,000 findings is 11 MB, which
    /// need not be held in memory beside the findings.
    pub fn write_json(&self, out: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write;
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
        serde_json::to_writer_pretty(&mut out, self)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}

/// How a deletion's group is titled: a namespace, a registry repository, or a GCP kind.
pub(crate) fn group_of(f: &Finding) -> String {
    match f.provider {
        Provider::Kubernetes => match &f.namespace {
            Some(ns) => format!("namespace {ns}"),
            None => "cluster".to_string(),
        },
        Provider::Registry => f
            .identity
            .repository
            .clone()
            .unwrap_or_else(|| f.name.split('@').next().unwrap_or_default().to_string()),
        Provider::Gcp => f.kind.clone(),
    }
}

/// The short name shown in tables: images by digest prefix and tags.
pub(crate) fn display_name(f: &Finding) -> String {
    match (&f.identity.digest, &f.identity.tags) {
        (Some(d), tags) => {
            let short = d
                .strip_prefix("sha256:")
                .map(|h| &h[..h.len().min(12)])
                .unwrap_or(d);
            match tags.as_deref() {
                Some(t) if !t.is_empty() => format!("{} ({short})", t.join(", ")),
                _ => format!("untagged ({short})"),
            }
        }
        _ => f.name.clone(),
    }
}

/// The warning a reviewer needs before enforcing a plan that deletes image versions.
pub const IMAGES_NOT_RESTORABLE: &str = "Image versions cannot be restored after enforce: the registry deletes their blobs with them. Kubernetes objects are backed up first and `driftsweep restore` re-creates them; GCP resources are backed up as records only, and each one's outcome says what brings it back, if anything does (a disk's final snapshot, a Cloud SQL instance's final backup).";

/// Whether a dry run plans to delete image versions.
pub(crate) fn plans_images(r: &Report) -> bool {
    r.mode == Mode::DryRun
        && r.deletions()
            .iter()
            .any(|f| f.provider == Provider::Registry)
}

/// `namespace/name`, or `name` for what has no namespace.
pub fn in_namespace(f: &Finding, name: &str) -> String {
    match &f.namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// An enforce outcome in words: `deleted (backup …)`, `skipped: why`.
pub(crate) fn outcome_words(f: &Finding) -> String {
    let Some(o) = &f.outcome else {
        return String::new();
    };
    let mut text = o.status.as_str().to_string();
    if let Some(reason) = &o.reason {
        text.push_str(": ");
        text.push_str(reason);
    }
    if let Some(backup) = &o.backup {
        text.push_str(&format!(" (backup: {backup})"));
    }
    text
}

pub(crate) fn reasons_in_words(f: &Finding) -> String {
    let words: Vec<&str> = f.reasons.iter().map(|r| r.describe()).collect();
    let mut text = words.join("; ");
    if let Some(d) = &f.detail {
        text.push_str(&format!(" ({d})"));
    }
    text
}

/// What an enforce run did, counted by outcome: `1 deleted, 2 already gone, 0 skipped, 0 failed`
/// (and `disabled`, when service accounts were).
pub(crate) fn outcome_counts(r: &Report) -> String {
    use crate::evaluate::OutcomeStatus as S;
    let disabled = match r.outcome_count(S::Disabled) {
        0 => String::new(),
        n => format!("{n} disabled, "),
    };
    format!(
        "{} deleted, {disabled}{} already gone, {} skipped, {} failed",
        r.outcome_count(S::Deleted),
        r.outcome_count(S::AlreadyGone),
        r.outcome_count(S::Skipped),
        r.outcome_count(S::Failed)
    )
}

pub(crate) fn mode_words(mode: Mode) -> &'static str {
    match mode {
        Mode::DryRun => "dry run",
        Mode::Enforce => "enforce",
    }
}

#[cfg(test)]
mod tests;
