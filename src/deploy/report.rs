//! The deploy report: JSON (`driftsweep.deploy/v1`, fields only ever added), the terminal
//! summary, and the email (what was deployed, per service old → new version and digest, the
//! wait, the result, a rollback if one ran).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::apply::Change;
use super::rollout::{Health, WaitOutcome};

pub const SCHEMA: &str = "driftsweep.deploy/v1";

#[derive(Debug, Clone, Serialize)]
pub struct VersionDigest {
    pub version: String,
    pub digest: String,
}

/// One service: what ran before (the last good record) and what this deploy puts there.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceChange {
    pub service: String,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<VersionDigest>,
    pub to: VersionDigest,
    /// `image:tag@sha256:…`, as the render pins it.
    pub reference: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    pub object: String,
    /// `would-prune`, `pruned`, `already-gone`, `skipped` or `failed`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub to_version: String,
    /// The record whose render was re-applied.
    pub to_record: String,
    /// The rollback's own record.
    pub record: String,
    /// `healthy` or `failed`.
    pub result: String,
    pub wait: WaitOutcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub schema: String,
    /// `deploy` or `rollback`.
    pub mode: String,
    pub dry_run: bool,
    pub environment: String,
    pub namespace: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_seconds: f64,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub dirty: bool,
    pub who: String,
    pub services: Vec<ServiceChange>,
    /// What the server-side dry run said each object's apply changes.
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<Pruned>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitOutcome>,
    /// `deployed`, `unchanged`, `would-deploy`, `failed`, `rolled-back`, `rollback-failed`,
    /// or `refused` (nothing applied).
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackReport>,
    /// The alerts this deploy sent (`--alert`), each with what became of it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<crate::report::alerts::AlertOutcome>,
    /// The history record of this deploy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Blue-green: the colours, the switch and the scale-downs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<super::bluegreen::BlueGreenReport>,
}

impl DeployReport {
    pub fn new(
        mode: &str,
        dry_run: bool,
        environment: &str,
        namespace: &str,
        started_at: DateTime<Utc>,
    ) -> DeployReport {
        DeployReport {
            schema: SCHEMA.to_string(),
            mode: mode.to_string(),
            dry_run,
            environment: environment.to_string(),
            namespace: namespace.to_string(),
            started_at,
            finished_at: started_at,
            duration_seconds: 0.0,
            version: String::new(),
            commit: None,
            dirty: false,
            who: String::new(),
            services: Vec::new(),
            changes: Vec::new(),
            pruned: Vec::new(),
            wait: None,
            result: String::new(),
            reason: None,
            rollback: None,
            alerts: Vec::new(),
            record: None,
            errors: Vec::new(),
            blue_green: None,
        }
    }

    /// Stamps the end time.
    pub fn finish(mut self) -> DeployReport {
        self.finished_at = Utc::now();
        self.duration_seconds =
            (self.finished_at - self.started_at).num_milliseconds() as f64 / 1000.0;
        self
    }

    /// Whether the environment ended as asked (exit 0).
    pub fn succeeded(&self) -> bool {
        let done = match (self.mode.as_str(), self.result.as_str()) {
            (_, "deployed" | "unchanged" | "would-deploy") => true,
            // A deploy that had to roll back failed, however healthy the rollback.
            ("rollback", "rolled-back") => true,
            ("finish", "finished") => true,
            _ => false,
        };
        done && !self.pruned.iter().any(|p| p.outcome == "failed")
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// The summary printed to stderr, and the email's text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let what = if self.mode == "rollback" {
            "rollback"
        } else if self.mode == "finish" {
            "finish"
        } else if self.dry_run {
            "deploy (dry run)"
        } else {
            "deploy"
        };
        out.push_str(&format!(
            "driftsweep {what} of {} to `{}` (namespace {}): {}\n",
            self.version,
            self.environment,
            self.namespace,
            self.result.to_uppercase()
        ));
        if let Some(reason) = &self.reason {
            out.push_str(&format!("  reason: {reason}\n"));
        }
        for s in &self.services {
            let from = s
                .from
                .as_ref()
                .map(|f| format!("{} ({})", f.version, short(&f.digest)))
                .unwrap_or_else(|| "(first deploy)".to_string());
            out.push_str(&format!(
                "  {}: {from} -> {} ({})\n",
                s.service,
                s.to.version,
                short(&s.to.digest)
            ));
        }
        let count = |action: &str| self.changes.iter().filter(|c| c.action == action).count();
        out.push_str(&format!(
            "  objects: {} created, {} changed, {} unchanged\n",
            count("create"),
            count("change"),
            count("unchanged")
        ));
        if self.dry_run {
            for c in self.changes.iter().filter(|c| c.action != "unchanged") {
                out.push_str(&format!("    {} {}", c.action, c.object));
                if !c.fields.is_empty() {
                    out.push_str(&format!(": {}", c.fields.join(", ")));
                }
                out.push('\n');
            }
        }
        for p in &self.pruned {
            out.push_str(&format!("  {} {}", p.outcome, p.object));
            if let Some(r) = &p.reason {
                out.push_str(&format!(": {r}"));
            }
            out.push('\n');
        }
        if let Some(w) = &self.wait {
            out.push_str(&format!("  wait: {} after {:.1} s\n", w.result, w.seconds));
            for o in w.objects.iter().filter(|o| o.health != Health::Current) {
                out.push_str(&format!("    {}: {:?}\n", o.object, o.health));
            }
        }
        if let Some(r) = &self.rollback {
            out.push_str(&format!(
                "  rolled back to {} ({}): {} after {:.1} s\n",
                r.to_version, r.to_record, r.result, r.wait.seconds
            ));
            if let Some(reason) = &r.wait.reason {
                out.push_str(&format!("    {reason}\n"));
            }
            if r.result != "healthy" {
                out.push_str(
                    "  the rollback failed too: see docs/guide.md, \"When a rollback fails\"\n",
                );
            }
        }
        if let Some(bg) = &self.blue_green {
            out.push_str(&bg.text());
        }
        for e in &self.errors {
            out.push_str(&format!("  error: {e}\n"));
        }
        if let Some(record) = &self.record {
            out.push_str(&format!("  record: {record}\n"));
        }
        out
    }

    /// `[driftsweep] staging deploy v1.2.3: DEPLOYED`.
    pub fn subject(&self, target: &str) -> String {
        format!(
            "[driftsweep] {target} {} {} {}: {}",
            self.environment,
            self.mode,
            self.version,
            self.result.to_uppercase()
        )
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// The email: the summary as text, the JSON report attached.
pub fn compose(
    report: &DeployReport,
    target: &str,
    settings: &crate::report::email::EmailSettings,
) -> Result<lettre::Message, crate::report::email::EmailError> {
    use lettre::message::{Attachment, MultiPart, SinglePart, header::ContentType};
    let mut builder = lettre::Message::builder()
        .from(settings.from.clone())
        .subject(report.subject(target));
    for to in &settings.to {
        builder = builder.to(to.clone());
    }
    let json_type = ContentType::parse("application/json").unwrap_or(ContentType::TEXT_PLAIN);
    builder
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(report.text()))
                .singlepart(
                    Attachment::new(format!(
                        "driftsweep-{}-{}.json",
                        report.mode, report.environment
                    ))
                    .body(report.json().into_bytes(), json_type),
                ),
        )
        .map_err(crate::report::email::EmailError::Build)
}

/// `driftsweep history`'s table: one line per record, oldest first.
pub fn history_table(records: &[super::history::Record]) -> String {
    let mut rows = vec![[
        "#".to_string(),
        "VERSION".to_string(),
        "RESULT".to_string(),
        "STARTED".to_string(),
        "SECONDS".to_string(),
        "WHO".to_string(),
        "COMMIT".to_string(),
        "DIGESTS".to_string(),
    ]];
    for r in records {
        let result = match r.rollback_to {
            Some(to) => format!("{} (rollback to #{to})", r.result.as_str()),
            None => r.result.as_str().to_string(),
        };
        rows.push([
            r.sequence.to_string(),
            r.version.clone(),
            result,
            r.started_at.format("%Y-%m-%d %H:%M:%SZ").to_string(),
            r.duration_seconds
                .map(|s| format!("{s:.1}"))
                .unwrap_or_else(|| "-".to_string()),
            r.who.clone(),
            r.commit
                .as_deref()
                .map(|c| c[..c.len().min(12)].to_string())
                .unwrap_or_else(|| "-".to_string()),
            r.services
                .iter()
                .map(|p| format!("{}={}", p.service, short(&p.digest)))
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if records.is_empty() {
        out.push_str("(no deploys recorded)\n");
    }
    out
}
