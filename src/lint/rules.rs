//! The rules. Each file is parsed with the line-keeping YAML reader (`crate::yaml`) or read
//! line by line (Dockerfiles), and every finding points at the value it is about.

use std::collections::HashMap;

use serde_json::Value;

use super::{FileKind, Finding, Place, Related, Rule, Source};
use crate::inventory::registry::ImageRef;
use crate::manifests::VERSION_PLACEHOLDER;
use crate::policy::{Glob, Policy};
use crate::yaml::{Document, Location};

/// Public bases accepted without being named in the policy: Docker Hub's official images and
/// the builders and runtimes Google and Kubernetes publish.
const PUBLIC_BASES: &[&str] = &[
    "docker.io/library/*",
    "gcr.io/cloud-builders/*",
    "gcr.io/google.com/cloudsdktool/*",
    "gcr.io/distroless/*",
    "gcr.io/kaniko-project/*",
    "registry.k8s.io/*",
    "mirror.gcr.io/library/*",
];

/// Where an image reference was written, which decides what it must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// A container of a Kubernetes object.
    Manifest,
    /// A kustomization's `images:` override.
    Kustomization,
    CloudBuild,
    Compose,
    Dockerfile,
}

/// An image reference of a product service, kept to compare versions across a file.
struct ServiceRef {
    repository: String,
    tag: String,
    place: Place,
}

struct Definition {
    key: (String, String, String),
    place: Place,
}

pub struct Checker {
    accepted: Vec<Glob>,
    services: Vec<String>,
    require_digests: bool,
    findings: Vec<Finding>,
    definitions: Vec<Definition>,
}

/// Where `needle` starts on `line`, at or after `from` (1-based columns, in characters).
fn column_of(text: &str, line: usize, from: usize, needle: &str) -> usize {
    let Some(source) = text.lines().nth(line.saturating_sub(1)) else {
        return from;
    };
    let start: usize = source
        .char_indices()
        .nth(from.saturating_sub(1))
        .map_or(source.len(), |(i, _)| i);
    match source[start..].find(needle) {
        Some(i) => source[..start + i].chars().count() + 1,
        None => from,
    }
}

fn is_variable_only(text: &str) -> bool {
    text.starts_with('$') && !text.contains('/')
}

/// A reference with Cloud Build or shell substitutions (`$PROJECT_ID`, `${_REGION}`) as a
/// pattern: the substitution stands for anything.
fn substitution_pattern(repository: &str) -> Option<Glob> {
    if !repository.contains('$') {
        return None;
    }
    let mut out = String::new();
    let mut chars = repository.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
                out.push('\\');
            }
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
            }
        } else {
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
            {
                chars.next();
            }
        }
        out.push('*');
    }
    Glob::new(&out).ok()
}

impl Checker {
    pub fn new(policy: &Policy) -> Checker {
        let mut accepted: Vec<Glob> = PUBLIC_BASES
            .iter()
            .filter_map(|p| Glob::new(p).ok())
            .collect();
        if let Some(lint) = &policy.lint {
            accepted.extend(lint.allowed_images.iter().cloned());
        }
        let mut services: Vec<String> = policy
            .registry
            .as_ref()
            .map(|r| r.repositories.clone())
            .unwrap_or_default();
        if let Some(d) = &policy.deploy {
            for s in &d.services {
                if !services.contains(&s.image) {
                    services.push(s.image.clone());
                }
            }
        }
        Checker {
            accepted,
            services,
            require_digests: policy.lint.as_ref().is_some_and(|l| l.require_digests),
            findings: Vec::new(),
            definitions: Vec::new(),
        }
    }

    fn push(&mut self, rule: Rule, place: Place, message: String, fix: String) {
        self.findings.push(Finding {
            rule,
            place,
            message,
            fix,
            related: Vec::new(),
        });
    }

    /// Lints one file; an error is a file that cannot be parsed.
    pub fn file(&mut self, source: &Source) -> Result<(), String> {
        match source.kind {
            FileKind::Dockerfile => {
                self.dockerfile(source);
                Ok(())
            }
            FileKind::Json => {
                let value: Value = serde_json::from_str(&source.text)
                    .map_err(|e| format!("not valid JSON: {e}"))?;
                // JSON is YAML's flow style: the YAML reader gives its lines too. Should it
                // refuse something serde_json took, the findings point at the file's start.
                let doc = match crate::yaml::parse_documents(&source.text) {
                    Ok(mut docs) if docs.len() == 1 => docs.remove(0),
                    _ => Document {
                        value,
                        locations: HashMap::new(),
                        values: HashMap::new(),
                    },
                };
                self.document(source, &doc);
                Ok(())
            }
            FileKind::Yaml => {
                let docs = crate::yaml::parse_documents(&source.text)
                    .map_err(|e| format!("not valid YAML: {e}"))?;
                for doc in &docs {
                    self.document(source, doc);
                }
                Ok(())
            }
        }
    }

    /// The findings, sorted, with duplicates found across every file.
    pub fn finish(mut self, sources: &[Source]) -> Vec<Finding> {
        self.duplicates();
        let order = |file: &str| sources.iter().position(|s| s.display == file);
        self.findings.sort_by(|a, b| {
            (order(&a.place.file), a.place.line, a.place.column, a.rule).cmp(&(
                order(&b.place.file),
                b.place.line,
                b.place.column,
                b.rule,
            ))
        });
        self.findings
    }

    fn document(&mut self, source: &Source, doc: &Document) {
        let v = &doc.value;
        if v.get("kind").and_then(Value::as_str) == Some("Kustomization")
            || (v.get("resources").is_some() && v.get("images").is_some())
        {
            self.kustomization(source, doc);
        } else if let Some(items) = v.get("items").and_then(Value::as_array)
            && v.get("kind").and_then(Value::as_str) == Some("List")
        {
            for i in 0..items.len() {
                self.object(source, doc, &format!("/items/{i}"));
            }
        } else if v.get("kind").is_some() && v.get("apiVersion").is_some() {
            self.object(source, doc, "");
        } else if v.get("steps").is_some_and(Value::is_array) {
            self.cloud_build(source, doc);
        } else if v.get("services").is_some_and(Value::is_object) {
            self.compose(source, doc);
        }
    }

    // ---- images ------------------------------------------------------------------------

    /// Checks one image reference written at `place`. Returns the reference of a product
    /// service with a usable tag, for the version comparison.
    fn image(&mut self, reference: &str, place: Place, context: Context) -> Option<ServiceRef> {
        let reference = reference.trim();
        if reference.is_empty() || is_variable_only(reference) {
            return None;
        }
        let parsed = ImageRef::parse(reference)?;
        let pinned = parsed.digest.is_some();
        let repository = parsed.repository.clone();
        let service = self.is_service(&repository);
        let tag = parsed.tag.clone();
        let versioned = tag.as_deref() == Some(VERSION_PLACEHOLDER);
        let mut fired = false;
        if !pinned {
            match tag.as_deref() {
                Some("latest") => {
                    fired = true;
                    self.push(
                        Rule::ImageLatest,
                        place.clone(),
                        format!(
                            "`{reference}` is tagged `latest`, which names whatever was pushed last"
                        ),
                        fix_for(context, &repository, service),
                    );
                }
                None => {
                    fired = true;
                    self.push(
                        Rule::ImageUntagged,
                        place.clone(),
                        format!("`{reference}` has no tag, so it means `latest`"),
                        fix_for(context, &repository, service),
                    );
                }
                Some(_) if self.require_digests && !(versioned && context == Context::Manifest) => {
                    self.push(
                        Rule::ImageNotPinned,
                        place.clone(),
                        format!("`{reference}` is not pinned by digest, and the policy sets `lint.require_digests`"),
                        format!("pin it: `{reference}@sha256:…` (`docker buildx imagetools inspect {reference}` prints the digest)"),
                    );
                }
                Some(_) => {}
            }
        }
        if !service && !self.accepted(&repository) {
            self.push(
                Rule::ImageUnknown,
                place.clone(),
                format!("`{repository}` is not one of the repository's images (`registry.repositories`) nor a known public base"),
                format!("use the repository's image, or add `{repository}` to `lint.allowed_images` if it is meant to run here"),
            );
        }
        if service && context == Context::Manifest && !fired && !pinned && !versioned {
            let t = tag.clone().unwrap_or_default();
            self.push(
                Rule::VersionMismatch,
                place.clone(),
                format!("`{repository}` is pinned to `{t}` here, while the product's services share one `{VERSION_PLACEHOLDER}`"),
                format!("write `{repository}:{VERSION_PLACEHOLDER}`: deploy and `driftsweep version` set it for every service at once"),
            );
        }
        match (service, fired, tag) {
            (true, false, Some(tag)) => Some(ServiceRef {
                repository,
                tag,
                place,
            }),
            _ => None,
        }
    }

    fn is_service(&self, repository: &str) -> bool {
        match substitution_pattern(repository) {
            Some(pattern) => self.services.iter().any(|s| pattern.is_match(s)),
            None => self.services.iter().any(|s| s == repository),
        }
    }

    fn accepted(&self, repository: &str) -> bool {
        match substitution_pattern(repository) {
            // A reference built from substitutions is accepted when some accepted pattern
            // could be what it expands to; it cannot be proven wrong.
            Some(_) => true,
            None => self.accepted.iter().any(|g| g.is_match(repository)),
        }
    }

    /// Services of one file tagged differently: the first one's tag is the file's version.
    fn compare_versions(&mut self, refs: Vec<ServiceRef>, what: &str) {
        let Some(first) = refs.first() else {
            return;
        };
        let (tag, place, repo) = (
            first.tag.clone(),
            first.place.clone(),
            first.repository.clone(),
        );
        for r in refs.iter().skip(1) {
            if r.tag != tag {
                self.findings.push(Finding {
                    rule: Rule::VersionMismatch,
                    place: r.place.clone(),
                    message: format!(
                        "`{}` is tagged `{}` in this {what}, `{repo}` `{tag}`: the product's services share one version",
                        r.repository, r.tag
                    ),
                    fix: format!("tag every service with the same version, `{tag}`"),
                    related: vec![Related {
                        place: place.clone(),
                        message: format!("`{repo}` is tagged `{tag}` here"),
                    }],
                });
            }
        }
    }

    // ---- Kubernetes objects --------------------------------------------------------------

    fn object(&mut self, source: &Source, doc: &Document, base: &str) {
        let Some(obj) = doc.value.pointer(base) else {
            return;
        };
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let namespace = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !name.is_empty() {
            let group = obj
                .get("apiVersion")
                .and_then(Value::as_str)
                .and_then(|a| a.rsplit_once('/').map(|(g, _)| g.to_string()))
                .unwrap_or_default();
            self.definitions.push(Definition {
                key: (
                    format!("{kind}.{group}"),
                    namespace.to_string(),
                    name.to_string(),
                ),
                place: place_of(source, doc, &format!("{base}/metadata/name")),
            });
        }
        let shown = if namespace.is_empty() {
            format!("{kind} `{name}`")
        } else {
            format!("{kind} `{namespace}/{name}`")
        };
        let pod = match kind {
            "Pod" => Some(format!("{base}/spec")),
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
                Some(format!("{base}/spec/template/spec"))
            }
            "CronJob" => Some(format!("{base}/spec/jobTemplate/spec/template/spec")),
            _ => None,
        };
        let Some(pod) = pod else {
            return;
        };
        for list in ["initContainers", "containers"] {
            let pointer = format!("{pod}/{list}");
            let Some(containers) = doc.value.pointer(&pointer).and_then(Value::as_array) else {
                continue;
            };
            for (i, c) in containers.iter().enumerate() {
                let at = format!("{pointer}/{i}");
                let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
                let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
                let mutable = !image.contains('@')
                    && ImageRef::parse(image)
                        .is_some_and(|r| r.tag.as_deref() != Some(VERSION_PLACEHOLDER));
                if !image.is_empty() {
                    let place = place_within(source, doc, &format!("{at}/image"), image);
                    self.image(image, place, Context::Manifest);
                }
                if c.get("imagePullPolicy").and_then(Value::as_str) == Some("Always") && mutable {
                    self.push(
                        Rule::PullAlwaysMutable,
                        place_of(source, doc, &format!("{at}/imagePullPolicy")),
                        format!("container `{cname}` of {shown} pulls `{image}` again at every start (`imagePullPolicy: Always`), and its tag can move"),
                        "pin the image (`${VERSION}` for the product's services, a digest otherwise) and drop `imagePullPolicy: Always`".to_string(),
                    );
                }
                if kind == "Deployment" && list == "containers" {
                    let missing: Vec<&str> = ["readinessProbe", "livenessProbe"]
                        .into_iter()
                        .filter(|p| c.get(*p).is_none())
                        .collect();
                    if !missing.is_empty() {
                        let at_name = if c.get("name").is_some() {
                            format!("{at}/name")
                        } else {
                            at.clone()
                        };
                        self.push(
                            Rule::MissingProbes,
                            place_of(source, doc, &at_name),
                            format!("container `{cname}` of {shown} has no {}", missing.join(" and no ")),
                            format!("add {} (an `httpGet` on the service's health endpoint): the rollout waits for readiness, and liveness restarts a hung Pod", missing.join(" and ")),
                        );
                    }
                }
            }
        }
        if kind == "Deployment" {
            self.rollout(source, doc, base, &shown);
        }
    }

    fn rollout(&mut self, source: &Source, doc: &Document, base: &str, shown: &str) {
        let fix = "set `strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}`: new Pods come up before old ones go".to_string();
        let strategy = doc.value.pointer(&format!("{base}/spec/strategy"));
        if strategy.and_then(|s| s.get("type")).and_then(Value::as_str) == Some("Recreate") {
            self.push(
                Rule::UnsafeRollout,
                place_of(source, doc, &format!("{base}/spec/strategy/type")),
                format!(
                    "{shown} is updated with `Recreate`: every Pod stops before the new ones start"
                ),
                fix,
            );
            return;
        }
        let pointer = format!("{base}/spec/strategy/rollingUpdate/maxUnavailable");
        match doc.value.pointer(&pointer) {
            None => {
                let at = if strategy.is_some() {
                    format!("{base}/spec/strategy")
                } else {
                    format!("{base}/spec")
                };
                self.push(
                    Rule::UnsafeRollout,
                    place_of_key(source, doc, &at),
                    format!("{shown} sets no `maxUnavailable`: Kubernetes' default of 25 % takes Pods down before new ones are ready"),
                    fix,
                );
            }
            Some(value) => {
                let above_zero = match value {
                    Value::Number(n) => n.as_f64().is_some_and(|n| n > 0.0),
                    Value::String(s) => s
                        .trim_end_matches('%')
                        .trim()
                        .parse::<f64>()
                        .map_or(true, |n| n > 0.0),
                    _ => false,
                };
                if above_zero {
                    self.push(
                        Rule::UnsafeRollout,
                        place_of(source, doc, &pointer),
                        format!("{shown} allows `maxUnavailable: {}` during a rollout: it serves with fewer Pods than it needs", scalar_text(value)),
                        fix,
                    );
                }
            }
        }
    }

    fn duplicates(&mut self) {
        let mut first: HashMap<&(String, String, String), &Place> = HashMap::new();
        let mut found = Vec::new();
        for d in &self.definitions {
            match first.get(&d.key) {
                Some(p) => {
                    let (kind, ns, name) = &d.key;
                    let kind = kind.split('.').next().unwrap_or_default();
                    let shown = if ns.is_empty() {
                        format!("{kind} `{name}`")
                    } else {
                        format!("{kind} `{ns}/{name}`")
                    };
                    found.push(Finding {
                        rule: Rule::DuplicateObject,
                        place: d.place.clone(),
                        message: format!(
                            "{shown} is defined again here; first at {}:{}:{}",
                            p.file, p.line, p.column
                        ),
                        fix: "keep one definition: delete this one, or merge what differs into the first (an overlay patch for what one environment changes)".to_string(),
                        related: vec![Related {
                            place: (*p).clone(),
                            message: format!("{shown} is first defined here"),
                        }],
                    });
                }
                None => {
                    first.insert(&d.key, &d.place);
                }
            }
        }
        self.findings.extend(found);
    }

    // ---- build files ---------------------------------------------------------------------

    fn kustomization(&mut self, source: &Source, doc: &Document) {
        let Some(images) = doc.value.get("images").and_then(Value::as_array) else {
            return;
        };
        for (i, image) in images.iter().enumerate() {
            let name = image
                .get("newName")
                .or_else(|| image.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if image.get("digest").is_some() {
                continue;
            }
            let Some(tag) = image.get("newTag") else {
                continue;
            };
            let reference = format!("{name}:{}", scalar_text(tag));
            let at = place_within(
                source,
                doc,
                &format!("/images/{i}/newTag"),
                &scalar_text(tag),
            );
            self.image(&reference, at, Context::Kustomization);
        }
    }

    fn cloud_build(&mut self, source: &Source, doc: &Document) {
        let mut services = Vec::new();
        let steps = doc
            .value
            .get("steps")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, step) in steps.iter().enumerate() {
            if let Some(name) = step.get("name").and_then(Value::as_str) {
                let at = place_within(source, doc, &format!("/steps/{i}/name"), name);
                services.extend(self.image(name, at, Context::CloudBuild));
            }
            let Some(args) = step.get("args").and_then(Value::as_array) else {
                continue;
            };
            let args: Vec<&str> = args
                .iter()
                .map(|a| a.as_str().unwrap_or_default())
                .collect();
            for (j, arg) in args.iter().enumerate() {
                let pointer = format!("/steps/{i}/args/{j}");
                let previous = if j > 0 { args[j - 1] } else { "" };
                let value = if matches!(previous, "-t" | "--tag" | "--image" | "--destination")
                    || (j == 1 && args[0] == "push")
                {
                    Some(*arg)
                } else {
                    ["--tag=", "--image=", "--destination=", "-t="]
                        .iter()
                        .find_map(|p| arg.strip_prefix(p))
                };
                if let Some(reference) = value {
                    let at = place_within(source, doc, &pointer, reference);
                    services.extend(self.image(reference, at, Context::CloudBuild));
                }
            }
        }
        if let Some(images) = doc.value.get("images").and_then(Value::as_array) {
            for (k, image) in images.iter().enumerate() {
                if let Some(reference) = image.as_str() {
                    let at = place_within(source, doc, &format!("/images/{k}"), reference);
                    services.extend(self.image(reference, at, Context::CloudBuild));
                }
            }
        }
        // One image pushed under several names counts once per tag it carries.
        services.dedup_by(|a, b| a.repository == b.repository && a.tag == b.tag);
        self.compare_versions(services, "Cloud Build file");
    }

    fn compose(&mut self, source: &Source, doc: &Document) {
        let mut services = Vec::new();
        let names: Vec<String> = doc
            .value
            .get("services")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for name in names {
            let key = name.replace('~', "~0").replace('/', "~1");
            let pointer = format!("/services/{key}/image");
            if let Some(image) = doc.value.pointer(&pointer).and_then(Value::as_str) {
                let at = place_within(source, doc, &pointer, image);
                services.extend(self.image(image, at, Context::Compose));
            }
        }
        services.sort_by_key(|s| (s.place.line, s.place.column));
        self.compare_versions(services, "compose file");
    }

    fn dockerfile(&mut self, source: &Source) {
        let mut args: HashMap<String, String> = HashMap::new();
        let mut stages: Vec<String> = Vec::new();
        for (n, line) in source.text.lines().enumerate() {
            let trimmed = line.trim_start();
            let words: Vec<&str> = trimmed.split_whitespace().collect();
            let Some(instruction) = words.first() else {
                continue;
            };
            if instruction.eq_ignore_ascii_case("ARG") && stages.is_empty() {
                if let Some((k, v)) = words.get(1).and_then(|a| a.split_once('=')) {
                    args.insert(k.to_string(), v.trim_matches('"').to_string());
                }
                continue;
            }
            if !instruction.eq_ignore_ascii_case("FROM") {
                continue;
            }
            let rest: Vec<&str> = words[1..]
                .iter()
                .copied()
                .filter(|w| !w.starts_with("--"))
                .collect();
            let Some(image) = rest.first() else {
                continue;
            };
            if let (Some(a), Some(stage)) = (rest.get(1), rest.get(2))
                && a.eq_ignore_ascii_case("AS")
            {
                stages.push(stage.to_lowercase());
            } else {
                stages.push(String::new());
            }
            let column = column_of(&source.text, n + 1, 1, image);
            let resolved = substitute(image, &args);
            if resolved == "scratch"
                || stages[..stages.len() - 1].contains(&resolved.to_lowercase())
                || resolved.contains('$')
            {
                continue;
            }
            let place = Place {
                file: source.display.clone(),
                line: n + 1,
                column,
            };
            self.image(&resolved, place, Context::Dockerfile);
        }
    }
}

/// `${NAME}` and `$NAME` replaced by the Dockerfile's `ARG` defaults.
fn substitute(text: &str, args: &HashMap<String, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in args {
        out = out
            .replace(&format!("${{{k}}}"), v)
            .replace(&format!("${k}"), v);
    }
    out
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The place of the value at `pointer` (where it starts, not its key).
fn place_of(source: &Source, doc: &Document, pointer: &str) -> Place {
    let loc = doc
        .values
        .get(pointer)
        .copied()
        .or_else(|| doc.location(pointer))
        .unwrap_or(Location { line: 1, column: 1 });
    Place {
        file: source.display.clone(),
        line: loc.line,
        column: loc.column,
    }
}

/// The place of the key at `pointer` (a field that is there, about something it lacks).
fn place_of_key(source: &Source, doc: &Document, pointer: &str) -> Place {
    let loc = doc
        .location(pointer)
        .unwrap_or(Location { line: 1, column: 1 });
    Place {
        file: source.display.clone(),
        line: loc.line,
        column: loc.column,
    }
}

/// The place of `needle` inside the scalar at `pointer` (`--image=REF`: REF itself).
fn place_within(source: &Source, doc: &Document, pointer: &str, needle: &str) -> Place {
    let mut place = place_of(source, doc, pointer);
    place.column = column_of(&source.text, place.line, place.column, needle);
    place
}

/// The fix for a `latest` or untagged image, in the words of where it was written.
fn fix_for(context: Context, repository: &str, service: bool) -> String {
    match (context, service) {
        (Context::Manifest, true) => format!(
            "write `{repository}:{VERSION_PLACEHOLDER}`: deploy pins it to the release's digest"
        ),
        (Context::CloudBuild, true) => format!(
            "tag the build with its version, `{repository}:$TAG_NAME` (or `$SHORT_SHA`), and push no `latest`"
        ),
        (Context::Dockerfile, _) => format!(
            "pin the base image to a version and digest, e.g. `{repository}:<version>@sha256:…`"
        ),
        (Context::Kustomization, _) => {
            "set `newTag` to a release version, or `digest` to the image's digest".to_string()
        }
        (_, true) => format!("use `{repository}:{VERSION_PLACEHOLDER}` (or the release's digest)"),
        (_, false) => format!("pin `{repository}` to a version tag, or better its digest"),
    }
}
