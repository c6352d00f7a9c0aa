//! Blue-green: each service's Deployment runs as two colours, `<name>-blue` and `<name>-green`,
//! and the repository's Services select the active one. A release brings up the idle colour,
//! waits with the rolling rules, and only then switches every Service at once; the old colour
//! stays at full scale for `scale_down_delay_minutes`, so a rollback in that time is a switch.
//!
//! Field ownership: the object is driftsweep's (field manager `driftsweep`), except a colour
//! Deployment's `spec.replicas` and its `driftsweep.io/scale-down-at` annotation, which field
//! manager `driftsweep-scale` owns. Scaling a colour is then a small apply of those two fields
//! that never conflicts with the object's own apply (server-side apply would remove a field
//! its manager leaves out, so each manager always applies its whole intent).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::DeployError;
use super::apply::{self, Target};
use super::render::{MANAGED_BY, MANAGED_BY_LABEL, Problem, describe};
use super::rollout::{self, WaitOutcome, Watched};
use crate::inventory::cluster::{Cluster, ClusterError};
use crate::inventory::registry::ImageRef;

/// On colour Deployments (selector, template and object) and, with the active colour, in the
/// repository Services' selectors.
pub const COLOUR_LABEL: &str = "driftsweep.io/colour";
/// On a preview Service: it selects the idle colour.
pub const PREVIEW_LABEL: &str = "driftsweep.io/preview";
/// On the old colour's Deployments after a switch: when they may be scaled to zero (RFC 3339).
pub const SCALE_DOWN_AT: &str = "driftsweep.io/scale-down-at";
/// The field manager of a colour's replicas and scale-down annotation.
pub const SCALE_MANAGER: &str = "driftsweep-scale";
pub const PREVIEW_SUFFIX: &str = "-preview";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Blue,
    Green,
}

impl Colour {
    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Blue => "blue",
            Colour::Green => "green",
        }
    }

    pub fn other(self) -> Colour {
        match self {
            Colour::Blue => Colour::Green,
            Colour::Green => Colour::Blue,
        }
    }

    pub fn parse(text: &str) -> Option<Colour> {
        match text {
            "blue" => Some(Colour::Blue),
            "green" => Some(Colour::Green),
            _ => None,
        }
    }
}

impl std::fmt::Display for Colour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `<base>-<colour>`.
pub fn coloured_name(base: &str, colour: Colour) -> String {
    format!("{base}-{colour}")
}

/// One service Deployment of the render, as one colour.
#[derive(Debug, Clone)]
pub struct ColourDeployment {
    /// The manifest's name, e.g. `api`.
    pub base: String,
    /// `<base>-<colour>`, colour label in selector and template, without `spec.replicas`.
    pub object: Value,
    /// The manifest's `spec.replicas` (default 1): what the colour runs at when it serves.
    pub replicas: i64,
}

/// A render split for a blue-green release at one colour.
#[derive(Debug, Clone)]
pub struct Coloured {
    pub colour: Colour,
    /// Everything else (ConfigMaps, Services that select no service, other workloads):
    /// applied as rendered.
    pub shared: Vec<Value>,
    pub deployments: Vec<ColourDeployment>,
    /// The Services that select a service's Pods, selector without the colour key (the
    /// switch sets it).
    pub services: Vec<Value>,
    /// `<service>-preview` per such Service (with `preview: true`), selector without the
    /// colour key.
    pub previews: Vec<Value>,
}

fn name_of(o: &Value) -> &str {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn kind_of(o: &Value) -> &str {
    o.get("kind").and_then(Value::as_str).unwrap_or_default()
}

/// Whether a Deployment runs one of the services' images.
fn runs_service(deployment: &Value, images: &[String]) -> bool {
    ["initContainers", "containers"].iter().any(|list| {
        deployment
            .pointer(&format!("/spec/template/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("image").and_then(Value::as_str))
            .filter_map(ImageRef::parse)
            .any(|r| images.contains(&r.repository))
    })
}

/// Whether a Service's selector picks the Pods of a template with `labels` (the colour key
/// left aside: blue-green adds it to both).
fn selects(service: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    match service.pointer("/spec/selector").and_then(Value::as_object) {
        Some(selector) if selector.keys().any(|k| k != COLOUR_LABEL) => selector
            .iter()
            .filter(|(k, _)| k.as_str() != COLOUR_LABEL)
            .all(|(k, v)| labels.get(k) == Some(v)),
        _ => false,
    }
}

fn set_label(object: &mut Value, pointer: &str, key: &str, value: &str) {
    if object.pointer(pointer).is_none_or(|m| !m.is_object()) {
        let (parent, last) = pointer.rsplit_once('/').unwrap_or(("", pointer));
        if let Some(p) = object.pointer_mut(parent).and_then(Value::as_object_mut) {
            p.insert(last.to_string(), json!({}));
        }
    }
    if let Some(map) = object.pointer_mut(pointer).and_then(Value::as_object_mut) {
        map.insert(key.to_string(), json!(value));
    }
}

/// A Service (repository or preview) selecting `colour`.
pub fn with_colour(service: &Value, colour: Colour) -> Value {
    let mut s = service.clone();
    set_label(&mut s, "/spec/selector", COLOUR_LABEL, colour.as_str());
    s
}

/// Splits a render (as `render::render` made it) for a release at `colour`. Refused, every
/// problem at once, when a colour's name would clash or be invalid, or a Service already
/// selects on the colour label (driftsweep sets it).
pub fn colourise(
    render: &[Value],
    images: &[String],
    colour: Colour,
    preview: bool,
) -> Result<Coloured, Vec<Problem>> {
    let mut problems = Vec::new();
    let problem = |object: &Value, message: String| Problem {
        source: None,
        object: describe(object),
        message,
    };
    let names: BTreeSet<(&str, &str)> = render.iter().map(|o| (kind_of(o), name_of(o))).collect();
    let mut out = Coloured {
        colour,
        shared: Vec::new(),
        deployments: Vec::new(),
        services: Vec::new(),
        previews: Vec::new(),
    };
    let mut templates = Vec::new();
    for o in render {
        if kind_of(o) != "Deployment" || !runs_service(o, images) {
            continue;
        }
        let base = name_of(o).to_string();
        for c in [Colour::Blue, Colour::Green] {
            if names.contains(&("Deployment", coloured_name(&base, c).as_str())) {
                problems.push(problem(
                    o,
                    format!(
                        "blue-green runs it as `{}`, which the manifests already define: rename one of them",
                        coloured_name(&base, c)
                    ),
                ));
            }
        }
        refuse_colour_key(o, "/spec/selector/matchLabels", &mut problems);
        let replicas = o
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let mut d = o.clone();
        d["metadata"]["name"] = json!(coloured_name(&base, colour));
        if let Some(spec) = d.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("replicas");
        }
        set_label(&mut d, "/metadata/labels", COLOUR_LABEL, colour.as_str());
        set_label(
            &mut d,
            "/spec/selector/matchLabels",
            COLOUR_LABEL,
            colour.as_str(),
        );
        set_label(
            &mut d,
            "/spec/template/metadata/labels",
            COLOUR_LABEL,
            colour.as_str(),
        );
        if let Some(labels) = o
            .pointer("/spec/template/metadata/labels")
            .and_then(Value::as_object)
        {
            templates.push(labels.clone());
        }
        out.deployments.push(ColourDeployment {
            base,
            object: d,
            replicas,
        });
    }
    for o in render {
        match kind_of(o) {
            "Deployment" if runs_service(o, images) => {}
            "Service" if templates.iter().any(|t| selects(o, t)) => {
                let name = name_of(o);
                refuse_colour_key(o, "/spec/selector", &mut problems);
                out.services.push(o.clone());
                if preview {
                    let preview_name = format!("{name}{PREVIEW_SUFFIX}");
                    if preview_name.len() > 63 {
                        problems.push(problem(
                            o,
                            format!("its preview Service `{preview_name}` would be longer than 63 characters: shorten the Service's name"),
                        ));
                    }
                    if names.contains(&("Service", preview_name.as_str())) {
                        problems.push(problem(
                            o,
                            format!("its preview Service `{preview_name}` is already defined by the manifests: rename one of them, or set `deploy.preview: false`"),
                        ));
                    }
                    out.previews.push(preview_of(o, &preview_name));
                }
            }
            _ => out.shared.push(o.clone()),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The preview of a Service: same ports and selector, internal only (`ClusterIP`, its own
/// address, no node ports), so trying the idle colour never exposes it.
fn preview_of(service: &Value, name: &str) -> Value {
    let mut p = service.clone();
    p["metadata"]["name"] = json!(name);
    set_label(&mut p, "/metadata/labels", PREVIEW_LABEL, "true");
    if let Some(spec) = p.get_mut("spec").and_then(Value::as_object_mut) {
        let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
        for key in [
            "clusterIP",
            "clusterIPs",
            "loadBalancerIP",
            "loadBalancerSourceRanges",
            "externalIPs",
            "externalTrafficPolicy",
            "healthCheckNodePort",
            "loadBalancerClass",
            "allocateLoadBalancerNodePorts",
        ] {
            spec.remove(key);
        }
        spec.insert("type".to_string(), json!("ClusterIP"));
        if headless {
            spec.insert("clusterIP".to_string(), json!("None"));
        }
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                port.remove("nodePort");
            }
        }
    }
    p
}

/// What to do with one colour Deployment at the start of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleDown {
    /// Its delay has passed and no Service selects its colour: to zero.
    Now { name: String },
    /// Its delay has passed but a repository Service selects its colour (a switch back, a
    /// hand edit): it serves users, so only the annotation goes.
    KeepServing { name: String, replicas: i64 },
}

/// The colours the live repository Services select (previews left out).
pub fn selected_colours(services: &[Value]) -> BTreeSet<Colour> {
    services
        .iter()
        .filter(|s| {
            s.pointer(&format!(
                "/metadata/labels/{}",
                PREVIEW_LABEL.replace('/', "~1")
            ))
            .is_none()
        })
        .filter_map(|s| {
            s.pointer(&format!(
                "/spec/selector/{}",
                COLOUR_LABEL.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .and_then(Colour::parse)
        })
        .collect()
}

/// Decides, from the live colour Deployments and Services, which old colours to scale down
/// now: those whose `scale-down-at` has passed, never a colour a Service selects.
pub fn scale_down_plan(
    deployments: &[Value],
    services: &[Value],
    now: DateTime<Utc>,
) -> Vec<ScaleDown> {
    let serving = selected_colours(services);
    let mut out = Vec::new();
    for d in deployments {
        let Some(colour) = d
            .pointer(&format!(
                "/metadata/labels/{}",
                COLOUR_LABEL.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .and_then(Colour::parse)
        else {
            continue;
        };
        let Some(at) = d
            .pointer(&format!(
                "/metadata/annotations/{}",
                SCALE_DOWN_AT.replace('/', "~1")
            ))
            .and_then(Value::as_str)
        else {
            continue;
        };
        // An unreadable time is no licence to scale down: treat it as not yet.
        let Ok(at) = DateTime::parse_from_rfc3339(at) else {
            continue;
        };
        if at.with_timezone(&Utc) > now {
            continue;
        }
        let name = name_of(d).to_string();
        if serving.contains(&colour) {
            out.push(ScaleDown::KeepServing {
                name,
                replicas: d
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1),
            });
        } else {
            out.push(ScaleDown::Now { name });
        }
    }
    out
}

/// What a blue-green command did, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BlueGreenReport {
    /// The colour brought up (a deploy) or switched to (a fast rollback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colour: Option<Colour>,
    /// The colour users were on before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_colour: Option<Colour>,
    /// Whether the Services were switched to `colour`.
    pub switched: bool,
    /// How long switching every Service took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_seconds: Option<f64>,
    /// A rollback inside the delay: a switch back, nothing brought up.
    pub fast_rollback: bool,
    /// When the previous colour is scaled to zero (the next command after it does it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_down_at: Option<DateTime<Utc>>,
    /// Deployments this command scaled to zero (old colours past their delay, a failed
    /// colour, the rolling Deployments of a converted environment).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scaled_down: Vec<String>,
    /// The record of the conversion from rolling that ran first, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub converted: Option<String>,
}

impl BlueGreenReport {
    pub fn text(&self) -> String {
        let mut out = String::new();
        if let Some(c) = &self.converted {
            out.push_str(&format!("  converted the environment first ({c})\n"));
        }
        if let Some(colour) = self.colour {
            let from = self
                .previous_colour
                .map_or_else(|| "none".to_string(), |c| c.to_string());
            let how = if self.fast_rollback {
                "switched back"
            } else if self.switched {
                "switched"
            } else {
                "NOT switched: users stay where they were"
            };
            out.push_str(&format!("  blue-green: {from} -> {colour}, {how}"));
            if let Some(s) = self.switch_seconds {
                out.push_str(&format!(" in {s:.2} s"));
            }
            out.push('\n');
        }
        if let Some(at) = self.scale_down_at {
            out.push_str(&format!(
                "  the previous colour stays at full scale until {} (a rollback until then is a switch back)\n",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
        for name in &self.scaled_down {
            out.push_str(&format!("  scaled to zero: Deployment {name}\n"));
        }
        out
    }
}

/// The scale-down delay: `DRIFTSWEEP_SCALE_DOWN_DELAY_SECONDS` when set (tests, drills),
/// else the policy's minutes.
pub fn delay(minutes: u32) -> chrono::Duration {
    std::env::var("DRIFTSWEEP_SCALE_DOWN_DELAY_SECONDS")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|s| *s >= 0)
        .map_or_else(
            || chrono::Duration::minutes(i64::from(minutes)),
            chrono::Duration::seconds,
        )
}

async fn target_of(cluster: &Cluster, object: &Value) -> Result<Target, DeployError> {
    let targets = apply::targets(cluster, std::slice::from_ref(object))
        .await
        .map_err(DeployError::Refused)?;
    targets
        .into_iter()
        .next()
        .ok_or_else(|| DeployError::Refused(format!("{}: no API serves it", describe(object))))
}

fn deployment_path(namespace: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
}

/// Sets a colour Deployment's replicas and scale-down annotation (field manager
/// `driftsweep-scale`, which owns exactly these two). Answers the new generation.
pub async fn scale(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    replicas: i64,
    scale_down_at: Option<DateTime<Utc>>,
) -> Result<i64, ClusterError> {
    let mut metadata = json!({"name": name, "namespace": namespace});
    if let Some(at) = scale_down_at {
        metadata["annotations"] = json!({
            SCALE_DOWN_AT: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        });
    }
    let target = Target {
        info: crate::inventory::cluster::known_kind("apps/v1", "Deployment").unwrap_or_else(|| {
            crate::inventory::cluster::KindInfo {
                group: "apps".to_string(),
                version: "v1".to_string(),
                kind: "Deployment".to_string(),
                plural: "deployments".to_string(),
                namespaced: true,
            }
        }),
        namespace: namespace.to_string(),
        name: name.to_string(),
        object: json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
            "spec": {"replicas": replicas}}),
    };
    let applied = apply::apply_as(cluster, &target, SCALE_MANAGER).await?;
    Ok(applied
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0))
}

/// The live object, `None` when it does not exist.
async fn get_live(cluster: &Cluster, path: &str) -> Result<Option<Value>, ClusterError> {
    match cluster.send_json(rollout::get(path)).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code() == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

fn items(list: &Value) -> Vec<Value> {
    list.get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The live colour Deployments and the driftsweep Services of `namespace`.
async fn live_colour_objects(
    cluster: &Cluster,
    namespace: &str,
) -> Result<(Vec<Value>, Vec<Value>), ClusterError> {
    let deployments = cluster
        .send_json(rollout::get(&format!(
            "/apis/apps/v1/namespaces/{namespace}/deployments?labelSelector={}",
            crate::inventory::url_encode(COLOUR_LABEL)
        )))
        .await?;
    let services = cluster
        .send_json(rollout::get(&format!(
            "/api/v1/namespaces/{namespace}/services?labelSelector={}",
            crate::inventory::url_encode(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"))
        )))
        .await?;
    Ok((items(&deployments), items(&services)))
}

/// The colours the live repository Services of `namespace` select.
pub async fn live_active(
    cluster: &Cluster,
    namespace: &str,
) -> Result<BTreeSet<Colour>, ClusterError> {
    let (_, services) = live_colour_objects(cluster, namespace).await?;
    Ok(selected_colours(&services))
}

/// Scales to zero the old colours whose delay has passed (never one a Service selects).
/// Every command holding the environment's lock runs this first; `deploy --finish` runs only
/// this. Answers the Deployments scaled down.
pub async fn scale_down_expired(
    cluster: &Cluster,
    namespace: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, ClusterError> {
    let (deployments, services) = live_colour_objects(cluster, namespace).await?;
    let mut scaled = Vec::new();
    for step in scale_down_plan(&deployments, &services, now) {
        match step {
            ScaleDown::Now { name } => {
                scale(cluster, namespace, &name, 0, None).await?;
                tracing::info!(deployment = %name, "scaled the old colour to zero: its delay passed");
                scaled.push(name);
            }
            ScaleDown::KeepServing { name, replicas } => {
                tracing::warn!(deployment = %name, "its scale-down time passed, but a Service selects its colour: kept, annotation removed");
                scale(cluster, namespace, &name, replicas, None).await?;
            }
        }
    }
    Ok(scaled)
}

/// The end of a release (deploy, conversion or normal rollback).
pub struct Released {
    pub wait: WaitOutcome,
    pub report: BlueGreenReport,
}

impl Released {
    pub fn healthy(&self) -> bool {
        self.wait.healthy() && self.report.switched
    }
}

fn failed_wait(
    reason: String,
    started: Instant,
    objects: Vec<rollout::ObjectHealth>,
) -> WaitOutcome {
    WaitOutcome {
        result: "failed".to_string(),
        reason: Some(reason),
        seconds: started.elapsed().as_secs_f64(),
        objects,
    }
}

/// A selector (at `selector`) that already has the colour key would fight the switch.
fn refuse_colour_key(o: &Value, selector: &str, problems: &mut Vec<Problem>) {
    let key = format!("{selector}/{}", COLOUR_LABEL.replace('/', "~1"));
    if o.pointer(&key).is_some() {
        problems.push(Problem {
            source: None,
            object: describe(o),
            message: format!(
                "its selector has `{COLOUR_LABEL}`: blue-green sets that label itself; remove it"
            ),
        });
    }
}

async fn apply_watched(cluster: &Cluster, object: &Value) -> Result<Watched, String> {
    let target = target_of(cluster, object)
        .await
        .map_err(|e| e.to_string())?;
    let applied = apply::apply(cluster, &target, false)
        .await
        .map_err(|e| format!("applying {}: {e}", describe(object)))?;
    Ok(Watched::applied(&target, &applied))
}

/// Applies the Services and previews: the Services at `serving`, the previews at its other
/// colour. On a failure the Services already switched go back to `back` (when there is one).
pub async fn switch(
    cluster: &Cluster,
    plan: &Coloured,
    serving: Colour,
    back: Option<Colour>,
) -> Result<f64, String> {
    let started = Instant::now();
    let mut done: Vec<&Value> = Vec::new();
    for service in &plan.services {
        if let Err(e) = apply_watched(cluster, &with_colour(service, serving)).await {
            let mut undone = String::new();
            if let Some(back) = back {
                for s in &done {
                    if let Err(e2) = apply_watched(cluster, &with_colour(s, back)).await {
                        undone.push_str(&format!("; switching it back failed too: {e2}"));
                    }
                }
            }
            return Err(format!(
                "{e} (the {} Service(s) switched before it were switched back to {}{undone})",
                done.len(),
                back.map_or("nothing", Colour::as_str)
            ));
        }
        done.push(service);
    }
    let seconds = started.elapsed().as_secs_f64();
    for p in &plan.previews {
        // A preview is for people, not users: its failure is reported, not a failed switch.
        if let Err(e) = apply_watched(cluster, &with_colour(p, serving.other())).await {
            tracing::warn!("the preview Service was not updated: {e}");
        }
    }
    Ok(seconds)
}

/// Brings up `plan`'s colour (every object, the colour's Deployments at full scale, previews
/// on it), waits within `timeout`, then switches every Service to it and keeps `active` (the
/// colour users were on) at full scale until now + `delay`. A colour that fails is scaled to
/// zero and never switched to: users see nothing.
pub async fn release(
    cluster: &Cluster,
    namespace: &str,
    plan: &Coloured,
    active: Option<Colour>,
    delay: chrono::Duration,
    timeout: Duration,
) -> Result<Released, DeployError> {
    let started = Instant::now();
    let idle = plan.colour;
    let mut report = BlueGreenReport {
        colour: Some(idle),
        previous_colour: active,
        ..BlueGreenReport::default()
    };
    let mut watched = Vec::new();
    let mut failure = None;
    for object in &plan.shared {
        match apply_watched(cluster, object).await {
            Ok(w) => watched.push(w),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if failure.is_none() {
        for d in &plan.deployments {
            let name = name_of(&d.object).to_string();
            let step = async {
                let mut w = apply_watched(cluster, &d.object).await?;
                w.generation = scale(cluster, namespace, &name, d.replicas, None)
                    .await
                    .map_err(|e| format!("scaling Deployment {namespace}/{name}: {e}"))?
                    .max(w.generation);
                Ok::<_, String>(w)
            };
            match step.await {
                Ok(w) => watched.push(w),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    if failure.is_none() {
        for p in &plan.previews {
            if let Err(e) = apply_watched(cluster, &with_colour(p, idle)).await {
                failure = Some(e);
                break;
            }
        }
    }
    let wait = match failure {
        Some(reason) => failed_wait(reason, started, Vec::new()),
        None => rollout::wait(cluster, &watched, timeout.saturating_sub(started.elapsed())).await,
    };
    if !wait.healthy() {
        report.scaled_down = scale_to_zero(cluster, namespace, plan).await;
        return Ok(Released { wait, report });
    }
    match switch(cluster, plan, idle, active).await {
        Ok(seconds) => {
            report.switched = true;
            report.switch_seconds = Some(seconds);
        }
        Err(reason) => {
            report.scaled_down = scale_to_zero(cluster, namespace, plan).await;
            let objects = wait.objects.clone();
            return Ok(Released {
                wait: failed_wait(format!("the switch failed: {reason}"), started, objects),
                report,
            });
        }
    }
    if let Some(old) = active.filter(|old| *old != idle) {
        let (at, scaled) = keep_old_colour(cluster, namespace, plan, old, delay).await?;
        report.scale_down_at = at;
        report.scaled_down.extend(scaled);
    }
    Ok(Released { wait, report })
}

/// After a switch: the old colour stays at its replicas until now + `delay` (annotated), or
/// goes to zero at once with no delay.
async fn keep_old_colour(
    cluster: &Cluster,
    namespace: &str,
    plan: &Coloured,
    old: Colour,
    delay: chrono::Duration,
) -> Result<(Option<DateTime<Utc>>, Vec<String>), DeployError> {
    let at = Utc::now() + delay;
    let mut scaled = Vec::new();
    for d in &plan.deployments {
        let name = coloured_name(&d.base, old);
        let Some(live) = get_live(cluster, &deployment_path(namespace, &name)).await? else {
            continue;
        };
        let replicas = live
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if replicas == 0 {
            continue;
        }
        if delay <= chrono::Duration::zero() {
            scale(cluster, namespace, &name, 0, None).await?;
            scaled.push(name);
        } else {
            scale(cluster, namespace, &name, replicas, Some(at)).await?;
        }
    }
    Ok(((delay > chrono::Duration::zero()).then_some(at), scaled))
}

/// Scales a failed colour's Deployments to zero; answers those it did.
async fn scale_to_zero(cluster: &Cluster, namespace: &str, plan: &Coloured) -> Vec<String> {
    let mut out = Vec::new();
    for d in &plan.deployments {
        let name = name_of(&d.object).to_string();
        match get_live(cluster, &deployment_path(namespace, &name)).await {
            Ok(Some(_)) => match scale(cluster, namespace, &name, 0, None).await {
                Ok(_) => out.push(name),
                Err(e) => {
                    tracing::error!(deployment = %name, "the failed colour could not be scaled to zero: {e}")
                }
            },
            Ok(None) => {}
            Err(e) => tracing::error!(deployment = %name, "cannot read the failed colour: {e}"),
        }
    }
    out
}

/// A rollback inside the delay: when the colour users left still runs `plan`'s images at full
/// scale, with its scale-down time ahead and healthy right now, switch every Service back to
/// it and keep the colour being left for the delay. `None` when that does not hold (then the
/// rollback brings the target up like a deploy).
pub async fn fast_rollback(
    cluster: &Cluster,
    namespace: &str,
    plan: &Coloured,
    active: Colour,
    delay: chrono::Duration,
) -> Result<Option<BlueGreenReport>, DeployError> {
    let back = plan.colour;
    if back == active || plan.deployments.is_empty() {
        return Ok(None);
    }
    let now = Utc::now();
    let mut watched = Vec::new();
    for d in &plan.deployments {
        let name = coloured_name(&d.base, back);
        let Some(live) = get_live(cluster, &deployment_path(namespace, &name)).await? else {
            return Ok(None);
        };
        let replicas = live.pointer("/spec/replicas").and_then(Value::as_i64);
        let ahead = live
            .pointer(&format!(
                "/metadata/annotations/{}",
                SCALE_DOWN_AT.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t.with_timezone(&Utc) > now);
        let images = |o: &Value| -> Vec<String> {
            o.pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("image").and_then(Value::as_str).map(str::to_string))
                .collect()
        };
        if replicas != Some(d.replicas)
            || d.replicas == 0
            || !ahead
            || images(&live) != images(&d.object)
        {
            tracing::info!(deployment = %name, "not a fast rollback: the colour is not at full scale on the target's images within its delay");
            return Ok(None);
        }
        watched.push(Watched {
            info: target_of(cluster, &d.object).await?.info,
            namespace: namespace.to_string(),
            name,
            generation: 0,
        });
    }
    let health = rollout::wait(cluster, &watched, Duration::from_secs(5)).await;
    if !health.healthy() {
        tracing::info!(
            "not a fast rollback: the old colour is not healthy now ({})",
            health.reason.unwrap_or_default()
        );
        return Ok(None);
    }
    let seconds = switch(cluster, plan, back, Some(active))
        .await
        .map_err(|e| DeployError::Refused(format!("switching back to {back}: {e}")))?;
    // The colour switched back to serves again: its scale-down time goes.
    for d in &plan.deployments {
        scale(
            cluster,
            namespace,
            &coloured_name(&d.base, back),
            d.replicas,
            None,
        )
        .await?;
    }
    let mut report = BlueGreenReport {
        colour: Some(back),
        previous_colour: Some(active),
        switched: true,
        switch_seconds: Some(seconds),
        fast_rollback: true,
        ..BlueGreenReport::default()
    };
    let left = Coloured {
        colour: active,
        ..plan.clone()
    };
    let (at, scaled) = keep_old_colour(cluster, namespace, &left, active, delay).await?;
    report.scale_down_at = at;
    report.scaled_down = scaled;
    Ok(Some(report))
}

/// Scales the rolling Deployments of `render` (the services', by their own names) to zero by
/// re-applying them with `replicas: 0` (their manager is driftsweep's own, so no conflict).
pub async fn scale_rolling_to_zero(
    cluster: &Cluster,
    namespace: &str,
    render: &[Value],
    images: &[String],
) -> Result<Vec<String>, DeployError> {
    let mut out = Vec::new();
    for o in render
        .iter()
        .filter(|o| kind_of(o) == "Deployment" && runs_service(o, images))
    {
        let name = name_of(o).to_string();
        if get_live(cluster, &deployment_path(namespace, &name))
            .await?
            .is_none()
        {
            continue;
        }
        let mut zero = o.clone();
        zero["spec"]["replicas"] = json!(0);
        let target = target_of(cluster, &zero).await?;
        apply::apply(cluster, &target, false).await?;
        out.push(name);
    }
    Ok(out)
}

/// Scales every colour Deployment of `namespace` to zero (back to rolling).
pub async fn scale_colours_to_zero(
    cluster: &Cluster,
    namespace: &str,
) -> Result<Vec<String>, ClusterError> {
    let (deployments, _) = live_colour_objects(cluster, namespace).await?;
    let mut out = Vec::new();
    for d in deployments {
        let name = name_of(&d).to_string();
        if d.pointer("/spec/replicas").and_then(Value::as_i64) != Some(0) {
            scale(cluster, namespace, &name, 0, None).await?;
            out.push(name);
        }
    }
    Ok(out)
}

/// Whether a live object is part of blue-green's own set (a colour Deployment or a preview
/// Service): prune leaves those to blue-green while the environment deploys blue-green.
pub fn is_colour_object(object: &Value) -> bool {
    let labels = object.pointer("/metadata/labels");
    labels.and_then(|l| l.get(COLOUR_LABEL)).is_some()
        || labels.and_then(|l| l.get(PREVIEW_LABEL)).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render() -> Vec<Value> {
        vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "s"}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "s"},
                "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.9", "selector": {"app": "api"},
                    "ports": [{"port": 80, "nodePort": 30080}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "s"},
                "spec": {"selector": {"app": "db"}, "ports": [{"port": 5432}]}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "s"},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}},
                    "template": {"metadata": {"labels": {"app": "api"}},
                        "spec": {"containers": [{"name": "api", "image": "h.io/p/api:1.0.0@sha256:aa"}]}}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "db", "namespace": "s"},
                "spec": {"selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                        "spec": {"containers": [{"name": "db", "image": "postgres:16.4"}]}}}}),
        ]
    }

    fn images() -> Vec<String> {
        vec!["h.io/p/api".to_string()]
    }

    #[test]
    fn a_colour_is_a_new_deployment_selected_by_its_label_and_the_services_follow() {
        let plan = colourise(&render(), &images(), Colour::Green, true).unwrap();
        assert_eq!(plan.deployments.len(), 1, "only the service's Deployment");
        let d = &plan.deployments[0];
        assert_eq!(d.base, "api");
        assert_eq!(d.replicas, 3);
        assert_eq!(d.object["metadata"]["name"], "api-green");
        assert_eq!(
            d.object["spec"]["selector"]["matchLabels"],
            json!({"app": "api", COLOUR_LABEL: "green"}),
            "a new object: the selector is immutable"
        );
        assert_eq!(
            d.object["spec"]["template"]["metadata"]["labels"][COLOUR_LABEL],
            "green"
        );
        assert_eq!(d.object["metadata"]["labels"][COLOUR_LABEL], "green");
        assert!(
            d.object["spec"].get("replicas").is_none(),
            "replicas belong to the scale manager"
        );
        let names: Vec<&str> = plan.shared.iter().map(name_of).collect();
        assert_eq!(
            names,
            ["c", "db", "db"],
            "what selects no service is applied as is"
        );
        assert_eq!(plan.services.len(), 1);
        let switched = with_colour(&plan.services[0], Colour::Green);
        assert_eq!(
            switched["spec"]["selector"],
            json!({"app": "api", COLOUR_LABEL: "green"})
        );
        let preview = with_colour(&plan.previews[0], Colour::Blue);
        assert_eq!(preview["metadata"]["name"], "api-preview");
        assert_eq!(
            preview["spec"]["type"], "ClusterIP",
            "a preview is never exposed"
        );
        assert!(preview["spec"].get("clusterIP").is_none());
        assert!(preview["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(preview["spec"]["selector"][COLOUR_LABEL], "blue");
        assert_eq!(preview["metadata"]["labels"][PREVIEW_LABEL], "true");
        let none = colourise(&render(), &images(), Colour::Blue, false).unwrap();
        assert!(none.previews.is_empty());
    }

    #[test]
    fn a_render_that_would_clash_with_a_colour_is_refused() {
        let mut r = render();
        let mut clash = r[3].clone();
        clash["metadata"]["name"] = json!("api-blue");
        r.push(clash);
        r[1]["spec"]["selector"][COLOUR_LABEL] = json!("blue");
        let problems = colourise(&r, &images(), Colour::Blue, false).unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|t| t.contains("already define")),
            "{text:#?}"
        );
        assert!(
            text.iter().any(|t| t.contains("sets that label itself")),
            "{text:#?}"
        );
    }

    fn colour_deployment(name: &str, colour: &str, at: Option<&str>) -> Value {
        let mut d = json!({"metadata": {"name": name, "labels": {COLOUR_LABEL: colour}},
            "spec": {"replicas": 2}});
        if let Some(at) = at {
            d["metadata"]["annotations"] = json!({SCALE_DOWN_AT: at});
        }
        d
    }

    #[test]
    fn only_an_old_colour_past_its_time_that_no_service_selects_is_scaled_down() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let services = vec![
            json!({"metadata": {"name": "api"}, "spec": {"selector": {"app": "api", COLOUR_LABEL: "green"}}}),
            // A preview selects the idle colour: that is no reason to keep it up.
            json!({"metadata": {"name": "api-preview", "labels": {PREVIEW_LABEL: "true"}},
                "spec": {"selector": {"app": "api", COLOUR_LABEL: "blue"}}}),
        ];
        let deployments = vec![
            colour_deployment("api-blue", "blue", Some("2026-12-01T09:59:00Z")),
            colour_deployment("web-blue", "blue", Some("2026-12-01T10:30:00Z")),
            colour_deployment("api-green", "green", None),
            colour_deployment("odd-blue", "blue", Some("soon")),
        ];
        assert_eq!(
            scale_down_plan(&deployments, &services, now),
            [ScaleDown::Now {
                name: "api-blue".to_string()
            }]
        );
        // Switched back by hand to blue: blue serves, whatever its annotation says.
        let back = vec![json!({"metadata": {"name": "api"},
            "spec": {"selector": {"app": "api", COLOUR_LABEL: "blue"}}})];
        assert_eq!(
            scale_down_plan(&deployments, &back, now),
            [ScaleDown::KeepServing {
                name: "api-blue".to_string(),
                replicas: 2
            }]
        );
    }

    #[test]
    fn colour_objects_are_recognised_by_their_labels() {
        assert!(is_colour_object(&colour_deployment(
            "api-blue", "blue", None
        )));
        assert!(is_colour_object(
            &json!({"metadata": {"labels": {PREVIEW_LABEL: "true"}}})
        ));
        assert!(!is_colour_object(
            &json!({"metadata": {"labels": {"app": "api"}}})
        ));
    }
}
