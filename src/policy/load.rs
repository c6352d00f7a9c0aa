//! Loading and validating a policy file.
//!
//! Validation collects every problem before it reports: the YAML is checked against the JSON
//! Schema generated from the policy types (unknown fields, wrong types, negative numbers), then
//! against the rules a schema cannot express (bad patterns, allowlists so empty that they would
//! delete everything of a kind). Each problem names its line, column and field.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Glob, Policy};
use crate::yaml::{self, Document};

/// A policy that passed validation, with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    pub policy: Policy,
    pub path: PathBuf,
    /// `sha256:<hex>` of the file's bytes; a reviewed plan is tied to it.
    pub digest: String,
}

impl LoadedPolicy {
    /// The folder relative paths in the policy resolve against.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// One thing wrong with a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The field, as a dotted path (`registry.keep_recent`, `gcp.buckets.allowed[2]`).
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{l}:{c}: ")?,
            (Some(l), None) => write!(f, "{l}: ")?,
            _ => write!(f, " ")?,
        }
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.field, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("policy `{}`: {problem}", path.display())]
    Input {
        path: PathBuf,
        problem: crate::input::InputError,
    },
    #[error("{}", invalid_message(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn invalid_message(path: &Path, problems: &[Problem]) -> String {
    let count = problems.len();
    let mut out = format!(
        "policy `{}` is invalid ({count} problem{}):",
        path.display(),
        if count == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str(&format!("\n  {}:{p}", path.display()));
    }
    out.push_str("\nhint: `driftsweep policy reference` lists every field with its type and default (`policy schema` prints the JSON Schema)");
    out
}

/// Reads and validates the policy at `path`.
pub fn load(path: &Path) -> Result<LoadedPolicy, PolicyError> {
    use crate::input::{self, InputError};
    let text = input::read_text(path, input::POLICY).map_err(|e| match e {
        InputError::Read(source) => PolicyError::Read {
            path: path.to_path_buf(),
            source,
        },
        problem => PolicyError::Input {
            path: path.to_path_buf(),
            problem,
        },
    })?;
    let policy = validate_source(&text).map_err(|problems| PolicyError::Invalid {
        path: path.to_path_buf(),
        problems,
    })?;
    Ok(LoadedPolicy {
        policy,
        path: path.to_path_buf(),
        digest: format!("sha256:{:x}", Sha256::digest(text.as_bytes())),
    })
}

/// The JSON Schema of the policy format, generated from the policy types.
pub fn schema() -> Value {
    let schema = schemars::schema_for!(Policy);
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

/// Validates policy text, returning the policy or every problem found.
pub fn validate_source(text: &str) -> Result<Policy, Vec<Problem>> {
    let mut documents = yaml::parse_documents(text).map_err(|e| {
        vec![Problem {
            line: Some(e.line),
            column: Some(e.column),
            field: String::new(),
            message: format!("not valid YAML: {}", e.message),
        }]
    })?;
    if documents.len() != 1 {
        return Err(vec![Problem {
            line: None,
            column: None,
            field: String::new(),
            message: format!(
                "expected exactly one YAML document, found {}",
                documents.len()
            ),
        }]);
    }
    let doc = documents.remove(0);
    let mut problems = schema_problems(&doc);
    problems.extend(rule_problems(&doc));
    problems.sort_by_key(|p| (p.line, p.column));
    problems.dedup();
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(&doc.value, &mut track);
    serde::Deserialize::deserialize(de).map_err(|e: serde_json::Error| {
        let pointer = to_pointer(&track.path().to_string());
        vec![problem_at(&doc, &pointer, e.to_string())]
    })
}

fn to_pointer(dotted: &str) -> String {
    if dotted == "." || dotted.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for part in dotted.split('.') {
        match part.find('[') {
            Some(i) => {
                out.push('/');
                out.push_str(&part[..i]);
                for index in part[i..].split(['[', ']']).filter(|s| !s.is_empty()) {
                    out.push('/');
                    out.push_str(index);
                }
            }
            None => {
                out.push('/');
                out.push_str(part);
            }
        }
    }
    out
}

/// `addresses` → `address`, `buckets` → `bucket`.
fn singular(plural: &str) -> &str {
    plural
        .strip_suffix("sses")
        .map(|stem| &plural[..stem.len() + 2])
        .unwrap_or_else(|| plural.trim_end_matches('s'))
}

/// `/gcp/buckets/allowed/2` → `gcp.buckets.allowed[2]`.
fn field_name(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.chars().all(|c| c.is_ascii_digit()) && !part.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part);
        }
    }
    out
}

fn problem_at(doc: &Document, pointer: &str, message: String) -> Problem {
    let loc = doc.location(pointer);
    Problem {
        line: loc.map(|l| l.line),
        column: loc.map(|l| l.column),
        field: field_name(pointer),
        message,
    }
}

fn schema_problems(doc: &Document) -> Vec<Problem> {
    let schema = schema();
    let validator = match jsonschema::validator_for(&schema) {
        Ok(v) => v,
        Err(e) => {
            return vec![Problem {
                line: None,
                column: None,
                field: String::new(),
                message: format!("internal error: the policy schema does not compile: {e}"),
            }];
        }
    };
    let mut problems = Vec::new();
    for error in validator.iter_errors(&doc.value) {
        collect_schema_problem(doc, &error, &mut problems);
    }
    problems
}

/// Turns one schema error into problems. An optional section is `anyOf [section, null]`; its
/// error says only "not valid under any of the schemas", so the problems inside the
/// non-null branch are reported instead.
fn collect_schema_problem(
    doc: &Document,
    error: &jsonschema::ValidationError<'_>,
    problems: &mut Vec<Problem>,
) {
    use jsonschema::error::{TypeKind, ValidationErrorKind};
    let pointer = error.instance_path().as_str().to_string();
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            for name in unexpected {
                let child = format!("{pointer}/{}", name.replace('~', "~0").replace('/', "~1"));
                problems.push(problem_at(
                    doc,
                    &child,
                    "unknown field (check its spelling and indentation)".to_string(),
                ));
            }
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            let is_null_branch = |branch: &Vec<jsonschema::ValidationError<'static>>| {
                branch.len() == 1
                    && matches!(
                        branch[0].kind(),
                        ValidationErrorKind::Type {
                            kind: TypeKind::Single(jsonschema::JsonType::Null)
                        }
                    )
            };
            let branches: Vec<_> = context.iter().filter(|b| !is_null_branch(b)).collect();
            if branches.len() == 1 {
                for inner in branches[0] {
                    collect_schema_problem(doc, inner, problems);
                }
            } else {
                problems.push(problem_at(doc, &pointer, error.to_string()));
            }
        }
        _ => problems.push(problem_at(doc, &pointer, error.to_string())),
    }
}

/// Rules the schema cannot express. Works on the raw value so that it still runs, and still
/// reports, when other parts of the file have the wrong type.
fn rule_problems(doc: &Document) -> Vec<Problem> {
    let v = &doc.value;
    let mut problems = Vec::new();
    let mut push =
        |pointer: &str, message: String| problems.push(problem_at(doc, pointer, message));

    if let Some(version) = v.get("version").and_then(Value::as_u64)
        && version != 1
    {
        push(
            "/version",
            format!("unsupported version {version}; this driftsweep reads version 1"),
        );
    }
    if let Some(name) = v.get("name").and_then(Value::as_str)
        && name.trim().is_empty()
    {
        push("/name", "must not be empty".to_string());
    }

    // Every pattern must compile.
    let mut patterns: Vec<String> = Vec::new();
    if let Some(keep) = v.pointer("/kubernetes/keep").and_then(Value::as_array) {
        for (i, _) in keep.iter().enumerate() {
            patterns.push(format!("/kubernetes/keep/{i}/name"));
            patterns.push(format!("/kubernetes/keep/{i}/namespace"));
        }
    }
    for section in [
        "firewall_rules",
        "buckets",
        "service_accounts",
        "ssl_certificates",
        "addresses",
        "disks",
        "forwarding_rules",
        "target_proxies",
        "url_maps",
        "backend_services",
        "backend_buckets",
        "health_checks",
        "log_sinks",
        "log_buckets",
        "sql_instances",
    ] {
        let base = format!("/gcp/{section}/allowed");
        if let Some(list) = v.pointer(&base).and_then(Value::as_array) {
            if list.is_empty() {
                push(
                    &base,
                    format!(
                        "an empty allowlist would delete every {}; remove `gcp.{section}` to leave them alone",
                        singular(&section.replace('_', " "))
                    ),
                );
            }
            for (i, _) in list.iter().enumerate() {
                patterns.push(format!("{base}/{i}"));
            }
        }
    }
    // Snapshots and Cloud SQL backups are kept by retention too: their allowlists may be
    // empty.
    for section in ["snapshots", "sql_backups"] {
        let base = format!("/gcp/{section}/allowed");
        if let Some(list) = v.pointer(&base).and_then(Value::as_array) {
            for (i, _) in list.iter().enumerate() {
                patterns.push(format!("{base}/{i}"));
            }
        }
    }
    if v.pointer("/gcp/sql_backups/keep_recent")
        .and_then(Value::as_u64)
        == Some(0)
    {
        push(
            "/gcp/sql_backups/keep_recent",
            "`keep_recent: 0` could delete an instance's newest backup, its last restore point; keep at least 1".to_string(),
        );
    }
    if let Some(days) = v
        .pointer("/gcp/sql_instances/final_backup_days")
        .and_then(Value::as_u64)
        && !(1..=365).contains(&days)
    {
        push(
            "/gcp/sql_instances/final_backup_days",
            format!("{days} is outside 1 to 365, the days Cloud SQL keeps a final backup"),
        );
    }
    for pointer in patterns {
        if let Some(text) = v.pointer(&pointer).and_then(Value::as_str)
            && let Err(e) = Glob::new(text)
        {
            push(&pointer, format!("bad pattern `{text}`: {e}"));
        }
    }

    if let Some(ns) = v
        .pointer("/kubernetes/namespaces")
        .and_then(Value::as_array)
        && ns.is_empty()
    {
        push(
            "/kubernetes/namespaces",
            "an empty list would delete every namespace outside the built-in floor; list the repository's namespaces".to_string(),
        );
    }
    for field in ["/kubernetes/namespaces", "/kubernetes/protected_namespaces"] {
        if let Some(list) = v.pointer(field).and_then(Value::as_array) {
            for (i, item) in list.iter().enumerate() {
                if let Some(name) = item.as_str()
                    && !is_dns_label(name)
                {
                    push(
                        &format!("{field}/{i}"),
                        format!(
                            "`{name}` is not a valid namespace name (lowercase letters, digits and `-`, at most 63)"
                        ),
                    );
                }
            }
        }
    }

    if let Some(repos) = v
        .pointer("/registry/repositories")
        .and_then(Value::as_array)
    {
        if repos.is_empty() {
            push(
                "/registry/repositories",
                "list at least one repository, or remove `registry` to leave images alone"
                    .to_string(),
            );
        }
        check_references(&mut push, "/registry/repositories", repos);
    }
    if let Some(roots) = v.pointer("/registry/scan").and_then(Value::as_array) {
        check_references(&mut push, "/registry/scan", roots);
    }
    let keep_recent = v.pointer("/registry/keep_recent").and_then(Value::as_u64);
    let max_age = v.pointer("/registry/max_age_days").and_then(Value::as_u64);
    if keep_recent == Some(0) && max_age == Some(0) {
        push(
            "/registry/keep_recent",
            "`keep_recent: 0` with `max_age_days: 0` would delete every image version not in use"
                .to_string(),
        );
    }
    if let Some(ratio) = v
        .pointer("/safety/max_deletion_ratio")
        .and_then(Value::as_f64)
        && !(ratio > 0.0 && ratio <= 1.0)
    {
        push(
            "/safety/max_deletion_ratio",
            format!("{ratio} is not a share; write one above 0 and at most 1, e.g. `0.3`"),
        );
    }
    if let Some(backup) = v.pointer("/safety/backup").and_then(Value::as_str)
        && backup.trim().is_empty()
    {
        push(
            "/safety/backup",
            "must name a folder or `gs://BUCKET/PREFIX`".to_string(),
        );
    }
    if let Some(annotation) = v
        .pointer("/safety/opt_out_annotation")
        .and_then(Value::as_str)
        && (annotation.is_empty() || annotation.contains(char::is_whitespace))
    {
        push(
            "/safety/opt_out_annotation",
            format!("`{annotation}` is not a valid annotation key"),
        );
    }
    if let Some(0) = v
        .pointer("/safety/plan_max_age_hours")
        .and_then(Value::as_u64)
    {
        push(
            "/safety/plan_max_age_hours",
            "must be at least 1, or every reviewed plan is refused".to_string(),
        );
    }
    if let Some(deploy) = v.get("deploy") {
        deploy_problems(v, deploy, &mut push);
    }
    if let Some(lint) = v.get("lint") {
        lint_problems(lint, &mut push);
    }
    if let Some(alerts) = v.get("alerts").and_then(Value::as_object) {
        if !alerts.contains_key("google_chat") && !alerts.contains_key("slack") {
            push(
                "/alerts",
                "names no webhook; add `google_chat: {}` or `slack: {}` (their URLs come from the environment)".to_string(),
            );
        }
        for channel in ["google_chat", "slack"] {
            if let Some(var) = alerts
                .get(channel)
                .and_then(|c| c.get("url_env"))
                .and_then(Value::as_str)
                && (var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                push(
                    &format!("/alerts/{channel}/url_env"),
                    format!(
                        "`{var}` is not an environment variable's name (letters, digits, `_`); the URL itself never goes in the policy"
                    ),
                );
            }
        }
    }
    problems
}

/// The lint section: every path glob and image pattern must compile.
fn lint_problems(lint: &Value, push: &mut impl FnMut(&str, String)) {
    if let Some(paths) = lint.get("paths").and_then(Value::as_array) {
        for (i, p) in paths.iter().enumerate() {
            if let Some(text) = p.as_str()
                && let Err(e) = crate::lint::PathGlob::new(text)
            {
                push(
                    &format!("/lint/paths/{i}"),
                    format!("bad path pattern `{text}`: {e}"),
                );
            }
        }
    }
    if let Some(images) = lint.get("allowed_images").and_then(Value::as_array) {
        for (i, p) in images.iter().enumerate() {
            if let Some(text) = p.as_str()
                && let Err(e) = Glob::new(text)
            {
                push(
                    &format!("/lint/allowed_images/{i}"),
                    format!("bad pattern `{text}`: {e}"),
                );
            }
        }
    }
}

/// The deploy section: services that can be pinned, environments that exist, promotions
/// that lead somewhere.
fn deploy_problems(v: &Value, deploy: &Value, push: &mut impl FnMut(&str, String)) {
    let repositories: Vec<&str> = v
        .pointer("/registry/repositories")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let namespaces: Vec<&str> = v
        .pointer("/kubernetes/namespaces")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if v.get("kubernetes").is_none() {
        push(
            "/deploy",
            "deploy applies the repository's manifests: add a `kubernetes` section with `namespaces` and `manifests`".to_string(),
        );
    }
    if let Some(services) = deploy.get("services").and_then(Value::as_array) {
        if services.is_empty() {
            push("/deploy/services", "list at least one service".to_string());
        }
        let mut names = std::collections::HashSet::new();
        for (i, service) in services.iter().enumerate() {
            if let Some(name) = service.get("name").and_then(Value::as_str) {
                if !is_dns_label(name) {
                    push(
                        &format!("/deploy/services/{i}/name"),
                        format!(
                            "`{name}` is not a valid name (lowercase letters, digits and `-`, at most 63)"
                        ),
                    );
                }
                if !names.insert(name) {
                    push(
                        &format!("/deploy/services/{i}/name"),
                        format!("`{name}` is listed twice"),
                    );
                }
            }
            if let Some(image) = service.get("image").and_then(Value::as_str) {
                let pointer = format!("/deploy/services/{i}/image");
                let last = image.rsplit('/').next().unwrap_or(image);
                if image.contains('@') || last.contains(':') || !image.contains('/') {
                    push(
                        &pointer,
                        format!(
                            "`{image}` must be `host/path` without a tag or digest: deploy pins the version itself"
                        ),
                    );
                } else if v.get("registry").is_some() && !repositories.contains(&image) {
                    push(
                        &pointer,
                        format!(
                            "`{image}` is not in `registry.repositories`: the nightly audit would treat its versions as foreign; add it there"
                        ),
                    );
                }
            }
        }
    }
    let Some(environments) = deploy.get("environments").and_then(Value::as_object) else {
        return;
    };
    if environments.is_empty() {
        push(
            "/deploy/environments",
            "list at least one environment".to_string(),
        );
    }
    let mut seen_namespaces = std::collections::HashMap::new();
    for (name, env) in environments {
        let base = format!(
            "/deploy/environments/{}",
            name.replace('~', "~0").replace('/', "~1")
        );
        if !is_dns_label(name) {
            push(
                &base,
                format!(
                    "`{name}` is not a valid environment name (lowercase letters, digits and `-`)"
                ),
            );
        }
        if let Some(ns) = env.get("namespace").and_then(Value::as_str) {
            if !namespaces.contains(&ns) {
                push(
                    &format!("{base}/namespace"),
                    format!(
                        "`{ns}` is not one of `kubernetes.namespaces`: an environment is a namespace of the repository"
                    ),
                );
            }
            if let Some(other) = seen_namespaces.insert(ns, name) {
                push(
                    &format!("{base}/namespace"),
                    format!("`{ns}` is also environment `{other}`'s namespace"),
                );
            }
        }
        if let Some(from) = env.get("promote_from").and_then(Value::as_str) {
            if from == name {
                push(
                    &format!("{base}/promote_from"),
                    "an environment cannot be promoted from itself".to_string(),
                );
            } else if !environments.contains_key(from) {
                push(
                    &format!("{base}/promote_from"),
                    format!("`{from}` is not an environment of `deploy.environments`"),
                );
            }
        }
    }
    // Promotions must end somewhere: a cycle would make every version unpromotable.
    for name in environments.keys() {
        let mut at = name.as_str();
        let mut steps = 0;
        while let Some(from) = environments
            .get(at)
            .and_then(|e| e.get("promote_from"))
            .and_then(Value::as_str)
            .filter(|f| environments.contains_key(*f) && *f != at)
        {
            at = from;
            steps += 1;
            if at == name || steps > environments.len() {
                push(
                    &format!("/deploy/environments/{name}/promote_from"),
                    "the promotions form a cycle: one environment must take versions without `promote_from`".to_string(),
                );
                break;
            }
        }
    }
    // Blue-green's own fields mean nothing where no environment deploys blue-green: say so
    // rather than let someone believe a preview Service or a delay is in place.
    let blue_green = |s: Option<&Value>| s.and_then(Value::as_str) == Some("blue-green");
    let any_blue_green = blue_green(deploy.get("strategy"))
        || environments.values().any(|e| blue_green(e.get("strategy")));
    if !any_blue_green {
        for field in ["preview", "scale_down_delay_minutes"] {
            if deploy.get(field).is_some_and(|v| v != &Value::Bool(false)) {
                push(
                    &format!("/deploy/{field}"),
                    "only blue-green deploys use it, and no environment deploys blue-green: set `deploy.strategy: blue-green` or an environment's `strategy: blue-green`, or remove it".to_string(),
                );
            }
        }
    }
    if let Some(minutes) = deploy
        .get("scale_down_delay_minutes")
        .and_then(Value::as_u64)
        && minutes > 7 * 24 * 60
    {
        push(
            "/deploy/scale_down_delay_minutes",
            format!(
                "{minutes} minutes is over a week: the old colour would hold a full copy of every service's Pods that long; at most 10080"
            ),
        );
    }
    if let Some(0) = deploy.get("timeout_minutes").and_then(Value::as_u64) {
        push("/deploy/timeout_minutes", "must be at least 1".to_string());
    }
    if let Some(n) = deploy.get("history").and_then(Value::as_u64)
        && n < 2
    {
        push(
            "/deploy/history",
            "must be at least 2: a rollback needs the record before the current one".to_string(),
        );
    }
}

fn check_references(push: &mut impl FnMut(&str, String), base: &str, items: &[Value]) {
    for (i, item) in items.iter().enumerate() {
        let Some(text) = item.as_str() else { continue };
        let pointer = format!("{base}/{i}");
        if text.contains('@')
            || text
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':'))
        {
            push(
                &pointer,
                format!("`{text}` must name a repository without tag or digest"),
            );
        } else if !text.contains('/') || text.starts_with('/') || text.ends_with('/') {
            push(
                &pointer,
                format!(
                    "`{text}` must be `host/path`, e.g. `us-docker.pkg.dev/project/repo/image`"
                ),
            );
        }
    }
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "version: 1\nname: aia\nkubernetes:\n  namespaces: [aia-production]\n";

    #[test]
    fn applies_documented_defaults() {
        let p = validate_source(
            "version: 1\nname: x\nregistry:\n  repositories: [example.com/team/app]\n",
        )
        .unwrap();
        let r = p.registry.unwrap();
        assert_eq!(r.keep_recent, 10);
        assert_eq!(r.max_age_days, 90);
        assert!(r.protect_in_use);
        assert_eq!(p.safety.min_age_hours, 24);
        assert_eq!(p.safety.max_deletions, 50);
        assert_eq!(p.safety.opt_out_annotation, "driftsweep.io/keep");
        assert_eq!(p.safety.plan_max_age_hours, 72);
    }

    #[test]
    fn accepts_a_minimal_policy() {
        let p = validate_source(GOOD).unwrap();
        assert_eq!(p.name, "aia");
        assert!(p.kubernetes.unwrap().kinds.len() == 4);
    }

    #[test]
    fn reports_every_problem_at_once_with_lines() {
        let text = "version: 1\nname: aia\nkubernetes:\n  namespaces: [aia-production]\n  namespcaes: [x]\nregistry:\n  repositories: [example.com/a/b]\n  keep_recent: -1\n  max_age_days: soon\ngcp:\n  project: p\n  firewall_rules: {allowed: []}\n  buckets: {allowed: ['a-[']}\n";
        let problems = validate_source(text).unwrap_err();
        let lines: Vec<_> = problems
            .iter()
            .map(|p| (p.line, p.field.as_str()))
            .collect();
        assert!(
            lines.contains(&(Some(5), "kubernetes.namespcaes")),
            "{problems:#?}"
        );
        assert!(
            lines.contains(&(Some(8), "registry.keep_recent")),
            "{problems:#?}"
        );
        assert!(
            lines.contains(&(Some(9), "registry.max_age_days")),
            "{problems:#?}"
        );
        assert!(
            lines.contains(&(Some(12), "gcp.firewall_rules.allowed")),
            "{problems:#?}"
        );
        assert!(
            lines.contains(&(Some(13), "gcp.buckets.allowed[0]")),
            "{problems:#?}"
        );
        assert_eq!(problems.len(), 5, "{problems:#?}");
    }

    #[test]
    fn rejects_empty_namespace_list() {
        let problems =
            validate_source("version: 1\nname: a\nkubernetes:\n  namespaces: []\n").unwrap_err();
        assert_eq!(problems[0].field, "kubernetes.namespaces");
        assert!(problems[0].message.contains("delete every namespace"));
    }

    #[test]
    fn rejects_retention_that_keeps_nothing() {
        let problems = validate_source(
            "version: 1\nname: a\nregistry:\n  repositories: [h/a]\n  keep_recent: 0\n  max_age_days: 0\n",
        )
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("every image version"));
    }

    #[test]
    fn sql_backup_retention_keeps_at_least_the_newest_and_may_allow_no_instance() {
        let problems = validate_source(
            "version: 1\nname: a\ngcp:\n  sql_backups: {allowed: [], keep_recent: 0}\n",
        )
        .unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].field, "gcp.sql_backups.keep_recent");
        assert!(problems[0].message.contains("last restore point"));
        assert!(
            validate_source("version: 1\nname: a\ngcp:\n  sql_backups: {allowed: []}\n").is_ok()
        );
    }

    #[test]
    fn rejects_tagged_repositories_and_unknown_versions() {
        let problems =
            validate_source("version: 2\nname: a\nregistry:\n  repositories: [h/a:v1]\n")
                .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert_eq!(problems[0].line, Some(1));
    }

    #[test]
    fn a_deploy_section_is_checked_as_a_whole() {
        let good = "version: 1\nname: a\nkubernetes:\n  namespaces: [s, p]\nregistry:\n  repositories: [h.io/a/api]\ndeploy:\n  services:\n    - {name: api, image: h.io/a/api}\n  environments:\n    staging: {namespace: s}\n    production: {namespace: p, accepts: release, promote_from: staging}\n";
        let policy = validate_source(good).unwrap();
        let deploy = policy.deploy.unwrap();
        assert_eq!(deploy.timeout_minutes, 10);
        assert_eq!(deploy.history, 20);
        assert_eq!(
            deploy.environments["staging"].accepts,
            super::super::Accepts::Any
        );

        let bad = "version: 1\nname: a\nkubernetes:\n  namespaces: [s, p]\nregistry:\n  repositories: [h.io/a/api]\ndeploy:\n  services:\n    - {name: api, image: 'h.io/a/api:1.0'}\n    - {name: api, image: h.io/a/other}\n  environments:\n    staging: {namespace: s, promote_from: production}\n    production: {namespace: p, accepts: release, promote_from: staging}\n    qa: {namespace: q, accepts: sometimes, promote_from: nowhere}\n    demo: {namespace: s}\n  history: 1\n";
        let problems = validate_source(bad).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        for field in [
            "deploy.services[0].image",
            "deploy.services[1].name",
            "deploy.services[1].image",
            "deploy.environments.qa.accepts",
            "deploy.history",
        ] {
            assert!(fields.contains(&field), "{field}: {problems:#?}");
        }
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let any = |needle: &str| text.iter().any(|t| t.contains(needle));
        assert!(any("without a tag or digest"), "{text:#?}");
        assert!(any("listed twice"));
        assert!(any("not in `registry.repositories`"));
        assert!(any("cycle"));
        assert!(
            problems.iter().all(|p| p.line.is_some()),
            "every problem has its line"
        );
    }

    #[test]
    fn blue_green_fields_are_checked_and_overridable_per_environment() {
        let base = "version: 1\nname: a\nkubernetes:\n  namespaces: [s, p]\nregistry:\n  repositories: [h.io/a/api]\ndeploy:\n  services:\n    - {name: api, image: h.io/a/api}\n";
        let good = format!(
            "{base}  environments:\n    staging: {{namespace: s}}\n    production: {{namespace: p, strategy: blue-green}}\n  preview: true\n"
        );
        let deploy = validate_source(&good).unwrap().deploy.unwrap();
        assert_eq!(deploy.scale_down_delay_minutes, 30, "the default");
        assert!(deploy.preview);
        use super::super::Strategy;
        assert_eq!(
            deploy.strategy_of(&deploy.environments["staging"]),
            Strategy::Rolling
        );
        assert_eq!(
            deploy.strategy_of(&deploy.environments["production"]),
            Strategy::BlueGreen
        );

        let bad = format!(
            "{base}  environments:\n    staging: {{namespace: s, strategy: purple}}\n  preview: true\n  scale_down_delay_minutes: 99999\n"
        );
        let problems = validate_source(&bad).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        for field in [
            "deploy.environments.staging.strategy",
            "deploy.preview",
            "deploy.scale_down_delay_minutes",
        ] {
            assert!(fields.contains(&field), "{field}: {problems:#?}");
        }
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|t| t.contains("only blue-green deploys use it")),
            "{text:#?}"
        );
        assert!(text.iter().any(|t| t.contains("over a week")), "{text:#?}");
    }

    #[test]
    fn rejects_yaml_syntax_with_line() {
        let problems = validate_source("version: 1\nname: [a\n").unwrap_err();
        assert!(problems[0].message.starts_with("not valid YAML"));
        assert!(problems[0].line.is_some());
    }

    #[test]
    fn a_nul_byte_or_invalid_utf8_anywhere_refuses_the_policy() {
        // Everything after the NUL (here the protection of `kube-legacy`) used to be ignored.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(
            &path,
            b"version: 1\nname: aia\n# note \0\nkubernetes:\n  namespaces: [aia]\n  protected_namespaces: [kube-legacy]\n",
        )
        .unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("p.yaml"), "{err}");
        assert!(
            err.contains("byte 28 (line 3, column 8) is a NUL byte"),
            "{err}"
        );
        std::fs::write(&path, b"version: 1\nname: a\xe9\n").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("byte 18 (line 2, column 8) is not valid UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn an_alias_bomb_or_deep_nesting_is_refused_with_the_limit() {
        let mut bomb =
            "version: 1\nname: bomb\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                .to_string();
        for (prev, next) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            bomb.push_str(&format!(
                "{next}: &{next} [{}]\n",
                vec![format!("*{prev}"); 9].join(", ")
            ));
        }
        let problems = validate_source(&bomb).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].message.contains("aliases expand to")
                && problems[0].message.contains("the limit of `100000`"),
            "{problems:#?}"
        );
        let deep = format!(
            "version: 1\nname: x\nkubernetes: {}{}\n",
            "[".repeat(300),
            "]".repeat(300)
        );
        let problems = validate_source(&deep).unwrap_err();
        assert!(
            problems[0].message.contains("limit of `128`"),
            "{problems:#?}"
        );
    }

    #[test]
    fn schema_documents_every_section() {
        let s = schema().to_string();
        for field in [
            "keep_recent",
            "max_age_days",
            "opt_out_annotation",
            "delete_pvcs",
            "plain_http_hosts",
        ] {
            assert!(s.contains(field), "{field} missing from schema");
        }
    }
}
