//! `driftsweep lint`: the repository's own files, checked before anything reaches a cluster.
//!
//! The audit finds what went wrong after a deploy; most of it (a `latest` tag, two files
//! defining one Deployment, a rollout that drops capacity) is already visible in the files.
//! Every finding names its file, line and column, a stable rule code and the fix. Pure apart
//! from reading the files: `lint_files` takes the texts, so every rule is unit-tested.

mod files;
mod rules;
pub mod sarif;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use files::PathGlob;

use crate::policy::Policy;

pub const SCHEMA: &str = "driftsweep.lint/v1";

/// The rules, each with a stable code (SARIF's `ruleId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    ImageLatest,
    ImageUntagged,
    ImageNotPinned,
    ImageUnknown,
    VersionMismatch,
    DuplicateObject,
    MissingProbes,
    UnsafeRollout,
    PullAlwaysMutable,
}

impl Rule {
    pub const ALL: [Rule; 9] = [
        Rule::ImageLatest,
        Rule::ImageUntagged,
        Rule::ImageNotPinned,
        Rule::ImageUnknown,
        Rule::VersionMismatch,
        Rule::DuplicateObject,
        Rule::MissingProbes,
        Rule::UnsafeRollout,
        Rule::PullAlwaysMutable,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Rule::ImageLatest => "image-latest",
            Rule::ImageUntagged => "image-untagged",
            Rule::ImageNotPinned => "image-not-pinned",
            Rule::ImageUnknown => "image-unknown",
            Rule::VersionMismatch => "version-mismatch",
            Rule::DuplicateObject => "duplicate-object",
            Rule::MissingProbes => "missing-probes",
            Rule::UnsafeRollout => "unsafe-rollout",
            Rule::PullAlwaysMutable => "pull-always-mutable",
        }
    }

    /// One line: what the rule finds.
    pub fn title(self) -> &'static str {
        match self {
            Rule::ImageLatest => "An image is tagged `latest`",
            Rule::ImageUntagged => "An image has no tag (Docker reads `latest`)",
            Rule::ImageNotPinned => {
                "An image is not pinned by digest, and the policy requires digests"
            }
            Rule::ImageUnknown => {
                "An image is neither one of the repository's nor a known public base"
            }
            Rule::VersionMismatch => "The product's services do not share one version",
            Rule::DuplicateObject => "Two places define the same object",
            Rule::MissingProbes => "A Deployment's container has no readiness or no liveness probe",
            Rule::UnsafeRollout => "A Deployment's rollout can drop serving capacity",
            Rule::PullAlwaysMutable => "`imagePullPolicy: Always` with a mutable tag",
        }
    }

    /// Why it matters, for the SARIF rule's full description and `--help`-like output.
    pub fn why(self) -> &'static str {
        match self {
            Rule::ImageLatest | Rule::ImageUntagged => {
                "`latest` names whatever was pushed last: two nodes can run two builds, a rollback re-pulls the broken one, and no report can say which version runs."
            }
            Rule::ImageNotPinned => {
                "The policy sets `lint.require_digests`: a tag can be moved to another image, a digest cannot."
            }
            Rule::ImageUnknown => {
                "Images come from the repository's registry (`registry.repositories`), a known public base, or `lint.allowed_images`; anything else is outside what the audit and the deploy history track."
            }
            Rule::VersionMismatch => {
                "The services are released together on one version (`${VERSION}`); one pinned apart is a service the next deploy does not move, and version consistency drops below 100 %."
            }
            Rule::DuplicateObject => {
                "Two definitions of one kind, namespace and name conflict: whichever is applied last wins, and the other file lies about what runs."
            }
            Rule::MissingProbes => {
                "Without a readiness probe a rollout sends traffic to Pods that are not ready; without a liveness probe a hung Pod is never restarted. The deploy's health wait relies on both."
            }
            Rule::UnsafeRollout => {
                "The product asks for `maxSurge: 1, maxUnavailable: 0`: new Pods come up before old ones go. `maxUnavailable` above 0 (Kubernetes' default is 25 %) or `Recreate` takes Pods down first."
            }
            Rule::PullAlwaysMutable => {
                "`Always` re-pulls a tag at every Pod start: with a tag that can move, two Pods of one Deployment run two images."
            }
        }
    }
}

/// A place in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Place {
    /// The file, relative to the current folder when it is inside it.
    pub file: String,
    pub line: usize,
    pub column: usize,
}

/// Another place a finding concerns (the first definition of a duplicate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Related {
    #[serde(flatten)]
    pub place: Place,
    pub message: String,
}

/// One problem in one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: Rule,
    #[serde(flatten)]
    pub place: Place,
    pub message: String,
    pub fix: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
}

/// What `lint --format json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    pub schema: &'static str,
    pub policy: String,
    /// Every file read, in order.
    pub files: Vec<String>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, thiserror::Error)]
pub enum LintError {
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error("`{path}`: {message}")]
    Unreadable { path: String, message: String },
    #[error(
        "`{pattern}` (from the policy's `lint.paths`) matches no file\nhint: the globs are relative to the policy's folder `{base}`"
    )]
    NoMatch { pattern: String, base: String },
}

/// One file to lint, with its text and what it is.
#[derive(Debug, Clone)]
pub struct Source {
    pub display: String,
    pub text: String,
    pub kind: FileKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// YAML or JSON: Kubernetes objects, a kustomization, Cloud Build or compose, told apart
    /// by their content.
    Yaml,
    Json,
    Dockerfile,
}

/// Lints the files the policy at `policy_path` names.
pub fn lint(policy_path: &Path) -> Result<LintReport, LintError> {
    let loaded = crate::policy::load(policy_path)?;
    let base = loaded.dir().to_path_buf();
    let paths = files::files_to_lint(&loaded.policy, &base)?;
    let mut sources = Vec::new();
    for path in &paths {
        let display = display_path(path);
        let text = crate::input::read_text(path, crate::input::MANIFEST).map_err(|e| {
            LintError::Unreadable {
                path: display.clone(),
                message: e.to_string(),
            }
        })?;
        sources.push(Source {
            kind: files::kind_of(path),
            display,
            text,
        });
    }
    let findings = lint_sources(&loaded.policy, &sources)?;
    Ok(LintReport {
        schema: SCHEMA,
        policy: display_path(policy_path),
        files: sources.into_iter().map(|s| s.display).collect(),
        findings,
    })
}

/// Every rule over already-read files: findings in file order, then line, then column.
pub fn lint_sources(policy: &Policy, sources: &[Source]) -> Result<Vec<Finding>, LintError> {
    let mut checker = rules::Checker::new(policy);
    for source in sources {
        checker
            .file(source)
            .map_err(|message| LintError::Unreadable {
                path: source.display.clone(),
                message,
            })?;
    }
    Ok(checker.finish(sources))
}

/// `path` lexically normalised (no `.` or `..`), relative to the current folder when inside it.
pub fn display_path(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut clean = PathBuf::new();
    for c in absolute.components() {
        match c {
            std::path::Component::ParentDir => {
                clean.pop();
            }
            std::path::Component::CurDir => {}
            other => clean.push(other),
        }
    }
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| clean.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or(clean);
    shown.display().to_string()
}

/// The text output: one block per finding, `file:line:column: rule: message`, the fix below.
pub fn text(report: &LintReport) -> String {
    let mut out = String::new();
    for f in &report.findings {
        out.push_str(&format!(
            "{}:{}:{}: {}: {}\n",
            f.place.file,
            f.place.line,
            f.place.column,
            f.rule.code(),
            f.message
        ));
        for r in &f.related {
            out.push_str(&format!(
                "  {}:{}:{}: {}\n",
                r.place.file, r.place.line, r.place.column, r.message
            ));
        }
        out.push_str(&format!("  fix: {}\n", f.fix));
    }
    out
}

/// One line for stderr: how many findings in how many files.
pub fn summary(report: &LintReport) -> String {
    let files = match report.files.len() {
        1 => "1 file".to_string(),
        n => format!("{n} files"),
    };
    if report.findings.is_empty() {
        return format!("lint: no findings in {files}");
    }
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in &report.findings {
        *counts.entry(f.rule.code()).or_default() += 1;
    }
    let by_rule: Vec<String> = counts.iter().map(|(r, n)| format!("{r} {n}")).collect();
    format!(
        "lint: {} findings in {files} ({})",
        report.findings.len(),
        by_rule.join(", ")
    )
}

#[cfg(test)]
mod tests;
