//! The repository's policy: what the cluster and the project should contain, and the safety
//! limits of a run. The types here are the single source of the file format: they are what
//! `policy check` validates against and what `policy schema` prints.

mod glob;
mod load;
mod reference;

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use glob::{Glob, any_match};
pub use load::{LoadedPolicy, PolicyError, Problem, load, schema, validate_source};
pub use reference::{REGENERATE as REFERENCE_REGENERATE, reference_markdown};

/// A driftsweep policy (`policies/*.yaml`). Sections that are absent are not audited:
/// driftsweep never deletes a kind of resource the policy does not mention.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Format version. Must be 1.
    pub version: u32,
    /// Short name of the system this policy describes, used in reports and email subjects.
    pub name: String,
    /// The cluster: namespaces and namespaced objects the repository defines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesPolicy>,
    /// Container image retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryPolicy>,
    /// Google Cloud project resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<GcpPolicy>,
    /// Limits that stop a run before it deletes too much.
    #[serde(default)]
    pub safety: Safety,
    /// Where reports go.
    #[serde(default)]
    pub report: ReportPolicy,
    /// The companion deploy mode: which services the repository releases together, to which
    /// environments, and how. Absent: `deploy` and `rollback` refuse to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeployPolicy>,
    /// Short messages to the team's chat, besides the email (sent with `--alert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertsPolicy>,
    /// What `driftsweep lint` checks besides the manifests (`kubernetes.manifests`, always
    /// read): the build files, and how strict image references must be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lint: Option<LintPolicy>,
}

/// `driftsweep lint`: the repository's own files, checked before anything is deployed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LintPolicy {
    /// Build and deployment files to check besides the manifests, as globs relative to the
    /// policy file (`*` stays within a folder, `**` crosses folders): Cloud Build YAML
    /// (`steps`), Dockerfiles (`Dockerfile`, `*.Dockerfile`), compose files (`services`) and
    /// Kubernetes manifests or kustomizations. Example: `["../cloudbuild*.yaml",
    /// "../**/Dockerfile", "../docker-compose*.yml"]`.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Every image must be pinned by digest (`image@sha256:…`); a tag alone is a finding.
    /// Service images tagged `${VERSION}` in the manifests are exempt: `deploy` pins them.
    #[serde(default)]
    pub require_digests: bool,
    /// Images accepted besides `registry.repositories` and the built-in public bases
    /// (Docker Hub official images, `gcr.io/cloud-builders/*`,
    /// `gcr.io/google.com/cloudsdktool/*`, `gcr.io/distroless/*`, `gcr.io/kaniko-project/*`,
    /// `registry.k8s.io/*`), as patterns on the repository without tag. Example:
    /// `["docker.io/bitnami/*"]`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub allowed_images: Vec<Glob>,
}

/// Where alerts go and which events send one. A webhook's URL is a credential: it comes from
/// the environment (or a file), never from the policy.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsPolicy {
    /// A Google Chat space's incoming webhook; its URL from `DRIFTSWEEP_GOOGLE_CHAT_WEBHOOK_URL`
    /// (or `DRIFTSWEEP_GOOGLE_CHAT_WEBHOOK_URL_FILE`), e.g. `google_chat: {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_chat: Option<WebhookPolicy>,
    /// A Slack incoming webhook; its URL from `DRIFTSWEEP_SLACK_WEBHOOK_URL` (or
    /// `DRIFTSWEEP_SLACK_WEBHOOK_URL_FILE`), e.g. `slack: {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<WebhookPolicy>,
    /// The events that send an alert (default: all of them).
    #[serde(default = "all_alert_events")]
    pub on: Vec<AlertEvent>,
}

/// One incoming webhook.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPolicy {
    /// The environment variable holding the URL instead of the default one, e.g.
    /// `AIA_ONCALL_SLACK_URL`; `<NAME>_FILE` may name a file holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
}

/// What an alert is sent for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum AlertEvent {
    /// A deploy or rollback failed (also when its automatic rollback failed).
    DeployFailed,
    /// A deploy failed its health checks and was rolled back automatically.
    RolledBack,
    /// The nightly audit found objects that differ from the repository (version drift).
    Drift,
    /// The nightly audit plans deletions for review.
    DeletionsPlanned,
    /// An enforce run finished: what it deleted, skipped and failed.
    Enforce,
}

impl AlertEvent {
    pub const ALL: [AlertEvent; 5] = [
        AlertEvent::DeployFailed,
        AlertEvent::RolledBack,
        AlertEvent::Drift,
        AlertEvent::DeletionsPlanned,
        AlertEvent::Enforce,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::DeployFailed => "deploy-failed",
            AlertEvent::RolledBack => "rolled-back",
            AlertEvent::Drift => "drift",
            AlertEvent::DeletionsPlanned => "deletions-planned",
            AlertEvent::Enforce => "enforce",
        }
    }
}

fn all_alert_events() -> Vec<AlertEvent> {
    AlertEvent::ALL.to_vec()
}

/// How `driftsweep deploy` releases the repository's services.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployPolicy {
    /// The services deployed together, always on one version. Each one's image must appear
    /// in the environment's manifests, tagged `${VERSION}`.
    pub services: Vec<DeployService>,
    /// The environments, by name. Each is one of the repository's namespaces. Example:
    /// `{staging: {namespace: aia-staging, accepts: any}, production: {namespace:
    /// aia-production, accepts: release, promote_from: staging}}`.
    pub environments: std::collections::BTreeMap<String, Environment>,
    /// `rolling`: each service's Deployment is updated in place (Kubernetes' rolling update).
    /// `blue-green`: each service's Deployment runs as two colours, `<name>-blue` and
    /// `<name>-green`; a deploy brings up the idle colour at the new version, waits for it,
    /// then switches every repository Service to it at once, keeping the old colour at full
    /// scale for `scale_down_delay_minutes` (a rollback in that time is a selector switch).
    /// An environment's own `strategy` overrides this.
    #[serde(default)]
    pub strategy: Strategy,
    /// Blue-green: how long the old colour stays at full scale after a switch, so that a
    /// rollback is a selector switch back. Once it has passed, the next `deploy`, `rollback`
    /// or `deploy --finish` scales the old colour to zero.
    #[serde(default = "default_scale_down_delay_minutes")]
    pub scale_down_delay_minutes: u32,
    /// Blue-green: also keep a Service `<name>-preview` per repository Service that always
    /// selects the idle colour (the new version while a deploy waits, the old one after the
    /// switch), so people can try a version before users get it.
    #[serde(default)]
    pub preview: bool,
    /// How long a deploy may wait for its objects to become healthy before it fails and rolls
    /// back; the rollback gets the same time again.
    #[serde(default = "default_timeout_minutes")]
    pub timeout_minutes: u32,
    /// Deploy records kept per environment (the newest healthy one is always kept).
    #[serde(default = "default_history")]
    pub history: u32,
}

/// One service: a name for reports and the image the repository builds for it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployService {
    /// The service's name, e.g. `aia-api`.
    pub name: String,
    /// The image without tag or digest, e.g. `us-docker.pkg.dev/aia-prod/aia/aia-api`.
    pub image: String,
}

/// One environment the repository deploys to.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Its namespace: one of `kubernetes.namespaces`. The manifests of this namespace are
    /// what a deploy applies.
    pub namespace: String,
    /// The versions it takes: `any` (dev builds, release candidates, releases) or `release`
    /// (`vX.Y.Z` only, from a clean work tree).
    #[serde(default)]
    pub accepts: Accepts,
    /// Another environment a version must have been deployed to, healthy, before this one
    /// takes it, with the same image digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_from: Option<String>,
    /// This environment's strategy (`rolling` or `blue-green`), instead of `deploy.strategy`.
    /// Changing it on an environment that has deploys converts it on the next deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
}

impl DeployPolicy {
    /// The strategy `environment` deploys with: its own, else the policy's.
    pub fn strategy_of(&self, environment: &Environment) -> Strategy {
        environment.strategy.unwrap_or(self.strategy)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Accepts {
    #[default]
    Any,
    Release,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    #[default]
    Rolling,
    BlueGreen,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Rolling => "rolling",
            Strategy::BlueGreen => "blue-green",
        }
    }
}

fn default_timeout_minutes() -> u32 {
    10
}
fn default_history() -> u32 {
    20
}
fn default_scale_down_delay_minutes() -> u32 {
    30
}

/// The kinds of objects driftsweep knows how to audit (and to name in a reference).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum AuditedKind {
    ConfigMap,
    Secret,
    ServiceAccount,
    PersistentVolumeClaim,
    Deployment,
    StatefulSet,
    DaemonSet,
    CronJob,
    Job,
    Service,
    Ingress,
    HorizontalPodAutoscaler,
    PodDisruptionBudget,
    NetworkPolicy,
    Role,
    RoleBinding,
    /// Cluster-scoped: only volumes whose claim was in a repository namespace are audited.
    PersistentVolume,
}

impl AuditedKind {
    pub const ALL: [AuditedKind; 17] = [
        AuditedKind::ConfigMap,
        AuditedKind::Secret,
        AuditedKind::ServiceAccount,
        AuditedKind::PersistentVolumeClaim,
        AuditedKind::Deployment,
        AuditedKind::StatefulSet,
        AuditedKind::DaemonSet,
        AuditedKind::CronJob,
        AuditedKind::Job,
        AuditedKind::Service,
        AuditedKind::Ingress,
        AuditedKind::HorizontalPodAutoscaler,
        AuditedKind::PodDisruptionBudget,
        AuditedKind::NetworkPolicy,
        AuditedKind::Role,
        AuditedKind::RoleBinding,
        AuditedKind::PersistentVolume,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditedKind::ConfigMap => "ConfigMap",
            AuditedKind::Secret => "Secret",
            AuditedKind::ServiceAccount => "ServiceAccount",
            AuditedKind::PersistentVolumeClaim => "PersistentVolumeClaim",
            AuditedKind::Deployment => "Deployment",
            AuditedKind::StatefulSet => "StatefulSet",
            AuditedKind::DaemonSet => "DaemonSet",
            AuditedKind::CronJob => "CronJob",
            AuditedKind::Job => "Job",
            AuditedKind::Service => "Service",
            AuditedKind::Ingress => "Ingress",
            AuditedKind::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
            AuditedKind::PodDisruptionBudget => "PodDisruptionBudget",
            AuditedKind::NetworkPolicy => "NetworkPolicy",
            AuditedKind::Role => "Role",
            AuditedKind::RoleBinding => "RoleBinding",
            AuditedKind::PersistentVolume => "PersistentVolume",
        }
    }

    pub fn parse(kind: &str) -> Option<AuditedKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// Objects that hold what a person would restore a deleted workload with (its
    /// configuration, credentials, identity and data): kept while anything refers to them,
    /// even an orphan (`used-only-by-orphans`), and planned on the run after it is gone.
    pub fn is_dependent_data(self) -> bool {
        matches!(
            self,
            AuditedKind::ConfigMap
                | AuditedKind::Secret
                | AuditedKind::ServiceAccount
                | AuditedKind::PersistentVolumeClaim
        )
    }
}

/// One entry of `kubernetes.kinds`: a kind driftsweep knows (`Deployment`), or any other
/// namespaced kind named `group/version/Kind` (`monitoring.coreos.com/v1/ServiceMonitor`),
/// found through the API's discovery.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KindName {
    Known(AuditedKind),
    Custom { api_version: String, kind: String },
}

impl KindName {
    /// The kind as Kubernetes spells it.
    pub fn as_str(&self) -> &str {
        match self {
            KindName::Known(k) => k.as_str(),
            KindName::Custom { kind, .. } => kind,
        }
    }

    pub fn known(&self) -> Option<AuditedKind> {
        match self {
            KindName::Known(k) => Some(*k),
            KindName::Custom { .. } => None,
        }
    }

    /// `group/version/Kind` or a known kind's name. Errors say what is accepted.
    pub fn parse(text: &str) -> Result<KindName, String> {
        if let Some(kind) = AuditedKind::parse(text) {
            return Ok(KindName::Known(kind));
        }
        let parts: Vec<&str> = text.split('/').collect();
        if let [group, version, kind] = parts[..] {
            let label = |s: &str| {
                !s.is_empty()
                    && s.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'
                    })
            };
            let kind_ok = kind.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && kind.chars().all(|c| c.is_ascii_alphanumeric());
            if label(group) && label(version) && kind_ok {
                if let Some(known) = AuditedKind::parse(kind)
                    && crate::inventory::cluster::kind_named(kind)
                        .is_some_and(|info| info.group == group && info.version == version)
                {
                    return Ok(KindName::Known(known));
                }
                return Ok(KindName::Custom {
                    api_version: format!("{group}/{version}"),
                    kind: kind.to_string(),
                });
            }
        }
        let known: Vec<&str> = AuditedKind::ALL.iter().map(|k| k.as_str()).collect();
        Err(format!(
            "`{text}` is not a kind driftsweep audits: use one of {}, or name another namespaced kind as group/version/Kind (e.g. `monitoring.coreos.com/v1/ServiceMonitor`)",
            known.join(", ")
        ))
    }
}

impl std::fmt::Display for KindName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KindName::Known(k) => f.write_str(k.as_str()),
            KindName::Custom { api_version, kind } => write!(f, "{api_version}/{kind}"),
        }
    }
}

impl Serialize for KindName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KindName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        KindName::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for KindName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "KindName".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // One string: the loader's own message (which names every accepted kind) is clearer
        // than a schema validator's for `anyOf`.
        let known: Vec<&str> = AuditedKind::ALL.iter().map(|k| k.as_str()).collect();
        schemars::json_schema!({
            "type": "string",
            "description": format!(
                "One of {}, or another namespaced kind as group/version/Kind.",
                known.join(", ")
            ),
        })
    }
}

fn default_kinds() -> Vec<KindName> {
    [
        AuditedKind::ConfigMap,
        AuditedKind::Secret,
        AuditedKind::ServiceAccount,
        AuditedKind::PersistentVolumeClaim,
    ]
    .into_iter()
    .map(KindName::Known)
    .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesPolicy {
    /// The repository's namespaces. Any other namespace that nothing keeps is deleted, so
    /// this list cannot be empty. Example: `[aia-production, aia-staging]`.
    pub namespaces: Vec<String>,
    /// Namespaces never touched, nor anything in them (in addition to the built-in floor:
    /// `kube-*`, `default`, `gke-*`, `gmp-*`).
    #[serde(default)]
    pub protected_namespaces: Vec<String>,
    /// Folders or files of repository manifests, relative to the policy file. Objects defined
    /// there are desired: kept when present, reported as `missing` when absent.
    #[serde(default)]
    pub manifests: Vec<PathBuf>,
    /// Kinds audited in the repository's namespaces: `ConfigMap`, `Secret`, `ServiceAccount`,
    /// `PersistentVolumeClaim`, `Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`, `Job`,
    /// `Service`, `Ingress`, `HorizontalPodAutoscaler`, `PodDisruptionBudget`,
    /// `NetworkPolicy`, `Role`, `RoleBinding`, `PersistentVolume` (cluster-scoped: the
    /// volumes whose claim was in a repository namespace), or any other namespaced kind as
    /// `group/version/Kind` (e.g. `monitoring.coreos.com/v1/ServiceMonitor`).
    #[serde(default = "default_kinds")]
    pub kinds: Vec<KindName>,
    /// PersistentVolumeClaims are deleted only when this is true: deleting one destroys data.
    #[serde(default)]
    pub delete_pvcs: bool,
    /// PersistentVolumes (`Released`, or `Available` with their claim gone) are deleted only
    /// when this is true. A volume bound to a live claim is never deleted.
    #[serde(default)]
    pub delete_pvs: bool,
    /// Extra keep rules. Example: `{kind: Secret, name: "aia-tls-*"}`.
    #[serde(default)]
    pub keep: Vec<KeepRule>,
}

/// Keeps every object whose name matches `name` (and `kind`, `namespace` when given).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepRule {
    /// Kubernetes kind as Kubernetes spells it (`Secret`, `Namespace`, ...). Any kind if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name pattern (`*` and `?`).
    #[schemars(with = "String")]
    pub name: Glob,
    /// Namespace pattern. Any namespace if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub namespace: Option<Glob>,
}

fn default_keep_recent() -> u32 {
    10
}
fn default_max_age_days() -> u32 {
    90
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryPolicy {
    /// The images the repository builds, as `host/path` without tag.
    /// Example: `us-docker.pkg.dev/aia-prod/aia/aia-api`.
    pub repositories: Vec<String>,
    /// Registry roots searched for images that are not the repository's (deleted as
    /// `foreign-image`). Example: `us-docker.pkg.dev/aia-prod/aia`.
    #[serde(default)]
    pub scan: Vec<String>,
    /// The newest image versions (digests) kept in each repository, whatever their age.
    #[serde(default = "default_keep_recent")]
    pub keep_recent: u32,
    /// Image versions younger than this are kept. Older ones go unless kept otherwise.
    #[serde(default = "default_max_age_days")]
    pub max_age_days: u32,
    /// Registry hosts reached over plain HTTP (local registries, tests). Example: `127.0.0.1:5000`.
    #[serde(default)]
    pub plain_http_hosts: Vec<String>,
    /// Keep every image version the cluster's workloads reference. `false` audits the
    /// registry alone and ignores what runs.
    #[serde(default = "yes")]
    pub protect_in_use: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcpPolicy {
    /// The project ID, e.g. `aia-prod`. Names the target in email subjects and tells the
    /// project's own service accounts (`NAME@PROJECT.iam.gserviceaccount.com`) from Google's
    /// service agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Compute firewall rules. Absent: firewall rules are not audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall_rules: Option<Allowlist>,
    /// Cloud Storage buckets. Absent: buckets are not audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<BucketPolicy>,
    /// IAM service accounts (matched by email). Absent: not audited. Enforce deletes in two
    /// phases: it disables an account first, and deletes it in a later run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<ServiceAccountPolicy>,
    /// Compute SSL certificates and Certificate Manager certificates. Absent: not audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_certificates: Option<Allowlist>,
    /// Static IP addresses, regional (matched by name, reported as `REGION/NAME`) and global.
    /// Only an address that is `RESERVED` and has no users is deleted; one a Google service
    /// holds (a `purpose` other than `GCE_ENDPOINT`, such as the `VPC_PEERING` range of
    /// private service access) is always kept. Absent: not audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Allowlist>,
    /// Zonal persistent disks (reported as `ZONE/NAME`; the allowlist matches the name). Only a
    /// `READY` disk attached to no instance, and unattached for `safety.min_age_hours` (from
    /// its last detach), is deleted, and enforce takes a final snapshot of it first. Disks
    /// GKE made for PersistentVolumes (`pvc-*`, a `kubernetes.io/` description) are kept.
    /// Absent: not audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<Allowlist>,
    /// Compute disk snapshots: retention per source disk, like image versions. A snapshot is
    /// deleted only when it is `READY`, older than `max_age_days`, not among the
    /// `keep_recent` newest of its disk, and not in `allowed`. A snapshot a snapshot schedule
    /// made is kept while its disk exists (the schedule's retention expires it), and the final
    /// snapshots driftsweep takes before it deletes a disk are kept unless
    /// `delete_final_snapshots` says otherwise. Absent: not audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<SnapshotPolicy>,
    /// Forwarding rules, regional (reported as `REGION/NAME`; the allowlist matches the
    /// name) and global: the top of a load balancer. An internal one (`loadBalancingScheme`
    /// `INTERNAL*`) is always kept, since a route or a service attachment may name it, and
    /// GKE's (`k8s-*`, `k8s1-*`, `k8s2-*`, `gkegw*`, a `kubernetes.io/` description) are kept.
    /// Absent: not audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding_rules: Option<Allowlist>,
    /// Target proxies (HTTP, HTTPS, SSL, TCP), global (reported as `TYPE/NAME`, e.g.
    /// `https/web`) and regional (`REGION/TYPE/NAME`); the allowlist matches the name. A proxy
    /// a kept forwarding rule names is kept (`in-use`); one only orphan forwarding rules name
    /// is deleted after them. Without the forwarding rules, none is deleted. GKE's (`k8s*-`,
    /// `gkegw*`, a `kubernetes.io/` description) are kept. Absent: not audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_proxies: Option<Allowlist>,
    /// URL maps, global (`NAME`) and regional (`REGION/NAME`). A map a kept HTTP(S) proxy
    /// names is kept (`in-use`); one only orphan proxies name is deleted after them. A map a
    /// gRPC proxy (Cloud Service Mesh) names is always kept. Without the proxies, none is
    /// deleted. Absent: not audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_maps: Option<Allowlist>,
    /// Backend services, global (`NAME`) and regional (`REGION/NAME`). One a kept URL map,
    /// TCP/SSL proxy or passthrough forwarding rule names is kept (`in-use`); one only orphan
    /// parts name is deleted after them. Services of scheme `INTERNAL_SELF_MANAGED` (Cloud
    /// Service Mesh routes may name them) are always kept. A URL map of another project naming
    /// a service here is not seen: allow such services by name. Absent: not audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_services: Option<Allowlist>,
    /// Backend buckets (global). One a kept URL map names is kept (`in-use`); one only orphan
    /// maps name is deleted after them. Its Cloud Storage bucket is not touched. Absent: not
    /// audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_buckets: Option<Allowlist>,
    /// Health checks, global (`NAME`) and regional (`REGION/NAME`). One a kept backend service
    /// names is kept (`in-use`); one only orphan services name is deleted after them. Checks a
    /// managed instance group autoheals with, and checks with source regions (Cloud DNS
    /// routing policies), are always kept. Absent: not audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_checks: Option<Allowlist>,
    /// Cloud Logging sinks of the project (matched by sink id). A sink outside the allowlist
    /// routes logs somewhere the repository does not know and is deleted; `_Default` and
    /// `_Required` are always kept. Absent: not audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_sinks: Option<Allowlist>,
    /// Cloud Logging buckets of every location (reported as `LOCATION/BUCKET`, e.g.
    /// `global/audit`; the allowlist matches either). `_Default` and `_Required`, locked
    /// buckets, buckets upgraded to Log Analytics and buckets already `DELETE_REQUESTED` are
    /// kept; a bucket a kept sink writes to
    /// is kept (`in-use`), one only orphan sinks write to is deleted after them. Without the
    /// sinks, none is deleted. Sinks of other projects, folders or the organization are not
    /// seen: allow the buckets they write to. A delete is soft (restorable for 7 days).
    /// Absent: not audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_buckets: Option<Allowlist>,
    /// Cloud SQL instances (reported by name). Kept unless `delete_databases` is true, and even
    /// then kept when deletion protection is on, when it has read replicas or is one, when a
    /// Pod or workload names its connection name or IP address, and (with `protect_in_use`)
    /// when the cluster was not read. Enforce takes an on-demand backup and a final backup
    /// before it deletes one. Absent: not audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_instances: Option<SqlInstancePolicy>,
    /// Cloud SQL backups: the backup runs of every instance (reported as `INSTANCE/RUN_ID`)
    /// and the project's backups that outlive their instance, retained and final ones
    /// (`INSTANCE/backups/ID`), with retention per instance like image versions. A backup is
    /// deleted only when it is `SUCCESSFUL`, older than `max_age_days`, not among the
    /// `keep_recent` newest successful backups of its instance, and its instance is not in
    /// `allowed`. Final backups and driftsweep's own backups before a deletion are kept
    /// unless `delete_final_backups` says otherwise. A deleted backup cannot be brought back.
    /// Absent: not audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_backups: Option<SqlBackupPolicy>,
}

/// Retention of Cloud SQL backups, per instance.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlBackupPolicy {
    /// Instance name patterns whose backups are all kept, whatever their age (may be empty:
    /// retention decides the rest). Example: `["aia-prod-*"]`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub allowed: Vec<Glob>,
    /// The newest successful backups kept per instance (runs and project backups counted
    /// together), whatever their age; at least 1: an instance's newest backup is its last
    /// restore point.
    #[serde(default = "default_sql_keep_recent")]
    pub keep_recent: u32,
    /// Backups younger than this are kept. Older ones go unless kept otherwise.
    #[serde(default = "default_max_age_days")]
    pub max_age_days: u32,
    /// Also apply retention to final backups (type `FINAL`, taken when an instance is
    /// deleted) and to the backups driftsweep takes before it deletes an instance (a
    /// description starting `driftsweep: `). They are often the only copy of a deleted
    /// database, so by default they are kept until a person deletes them.
    #[serde(default)]
    pub delete_final_backups: bool,
}

fn default_sql_keep_recent() -> u32 {
    7
}

/// Retention of Compute disk snapshots, per source disk.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotPolicy {
    /// Name patterns of snapshots kept whatever their age (may be empty: retention decides
    /// the rest). Example: `["aia-release-*"]`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub allowed: Vec<Glob>,
    /// The newest snapshots kept per source disk (grouped by the disk's id, `sourceDiskId`,
    /// so a disk deleted and made again under its name is another disk), whatever their age.
    #[serde(default = "default_keep_recent")]
    pub keep_recent: u32,
    /// Snapshots younger than this are kept. Older ones go unless kept otherwise.
    #[serde(default = "default_max_age_days")]
    pub max_age_days: u32,
    /// Also apply retention to the final snapshots driftsweep took before deleting a disk
    /// (label `driftsweep-final-snapshot-of`). They are the only copy of that disk's data, so
    /// by default they are kept until a person deletes them.
    #[serde(default)]
    pub delete_final_snapshots: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlInstancePolicy {
    /// Instance name patterns that may exist.
    #[schemars(with = "Vec<String>")]
    pub allowed: Vec<Glob>,
    /// Delete instances outside the allowlist at all. Off by default: a database is data,
    /// so its deletion is opted into on its own.
    #[serde(default)]
    pub delete_databases: bool,
    /// Keep every instance while the cluster's Pods and workloads could not be read (a GCP-only
    /// audit, a failed list): only they can show that an instance is still connected to.
    /// `false` audits the instances alone.
    #[serde(default = "yes")]
    pub protect_in_use: bool,
    /// Days Cloud SQL keeps the final backup it takes when enforce deletes an instance
    /// (1 to 365); the backup outlives the instance and restores it.
    #[serde(default = "default_final_backup_days")]
    pub final_backup_days: u32,
}

fn default_final_backup_days() -> u32 {
    30
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Allowlist {
    /// Name patterns that may exist. Everything else not kept by the floor is deleted, so the
    /// list cannot be empty.
    #[schemars(with = "Vec<String>")]
    pub allowed: Vec<Glob>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountPolicy {
    /// Account email patterns that may exist.
    #[schemars(with = "Vec<String>")]
    pub allowed: Vec<Glob>,
    /// Days an account stays disabled (by an enforce run, which records when in its
    /// description) before a later enforce run deletes it. Anything using it fails visibly in
    /// that time, and `gcloud iam service-accounts enable` undoes it.
    #[serde(default = "default_disable_days")]
    pub disable_days: u32,
}

fn default_disable_days() -> u32 {
    7
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BucketPolicy {
    /// Bucket name patterns that may exist.
    #[schemars(with = "Vec<String>")]
    pub allowed: Vec<Glob>,
    /// Also delete buckets that still hold objects (their data is not backed up).
    #[serde(default)]
    pub delete_non_empty: bool,
}

fn default_min_age_hours() -> u32 {
    24
}
fn default_max_deletions() -> u32 {
    50
}
fn default_opt_out() -> String {
    "driftsweep.io/keep".to_string()
}
fn default_plan_max_age_hours() -> u32 {
    72
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Safety {
    /// Anything younger than this many hours is kept.
    #[serde(default = "default_min_age_hours")]
    pub min_age_hours: u32,
    /// A plan with more deletions than this is blocked: nothing is deleted.
    #[serde(default = "default_max_deletions")]
    pub max_deletions: u32,
    /// Annotation (or label) that keeps an object when set to anything but `false`.
    #[serde(default = "default_opt_out")]
    pub opt_out_annotation: String,
    /// A reviewed plan older than this many hours is refused by enforce.
    #[serde(default = "default_plan_max_age_hours")]
    pub plan_max_age_hours: u32,
    /// The largest share (above 0, at most 1) of one kind's audited objects one run may
    /// delete, e.g. `0.3`; a plan over it is blocked and nothing is deleted. Off unless set.
    /// Registry image versions are exempt: retention removes most of them by design.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deletion_ratio: Option<f64>,
    /// Where enforce backs up every object before deleting it: a folder, or
    /// `gs://BUCKET/PREFIX` (use that in a pod: its disk dies with it). `run --backup`
    /// overrides it. Enforce refuses to start without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// The namespace of the `coordination.k8s.io` Lease `driftsweep` that lets only one
    /// enforce run at a time.
    #[serde(default = "default_lease_namespace")]
    pub lease_namespace: String,
}

fn default_lease_namespace() -> String {
    "driftsweep".to_string()
}

impl Default for Safety {
    fn default() -> Self {
        Self {
            min_age_hours: default_min_age_hours(),
            max_deletions: default_max_deletions(),
            opt_out_annotation: default_opt_out(),
            plan_max_age_hours: default_plan_max_age_hours(),
            max_deletion_ratio: None,
            backup: None,
            lease_namespace: default_lease_namespace(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportPolicy {
    /// Email delivery of the report (sent when `run --email` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailPolicy>,
    /// Archive every run's JSON report under this Cloud Storage prefix, e.g.
    /// `gs://aia-prod-reports/driftsweep` (`run --archive` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailPolicy {
    /// Recipients.
    pub to: Vec<String>,
    /// Sender address.
    pub from: String,
    /// SMTP relay. User and password come from `DRIFTSWEEP_SMTP_USERNAME` and
    /// `DRIFTSWEEP_SMTP_PASSWORD` (or `*_FILE`), never from the policy.
    pub smtp: SmtpPolicy,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpPolicy {
    /// The SMTP relay's host name, e.g. `smtp.example.com`.
    pub host: String,
    /// The relay's port: usually 587 with `starttls`, 465 with `implicit`.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// How the connection is encrypted: `starttls` upgrades a plain connection, `implicit`
    /// speaks TLS from the start, `none` sends in the clear (local relays and tests only).
    #[serde(default)]
    pub tls: SmtpTls,
}

fn default_smtp_port() -> u16 {
    587
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    #[default]
    Starttls,
    Implicit,
    None,
}
