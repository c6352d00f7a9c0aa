//! What exists: normalised records from every provider, whichever source read them.
//!
//! A record keeps what a decision needs (age, labels, references) and what enforce needs to
//! delete exactly that object (uid and resourceVersion, digest, self link). Sources fill an
//! `Inventory`; a list that failed is recorded as a `Gap`, so that nothing it could have
//! protected is deleted.

pub mod artifact_registry;
pub mod cluster;
mod decode;
pub mod gcp;
mod gcp_common;
pub mod gcp_live;
pub mod kubernetes;
pub mod live;
pub mod registry;
pub mod relations;
pub mod snapshot;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use kubernetes::{Container, KubeObject, ObjectRef, OwnerRef};
pub use registry::{Children, ImageVersion, Repository};

/// Where a record comes from. Serialised as the report's `provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Kubernetes,
    Registry,
    Gcp,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Kubernetes => "kubernetes",
            Provider::Registry => "registry",
            Provider::Gcp => "gcp",
        })
    }
}

/// The GCP resource kinds driftsweep audits, spelled as the report spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GcpKind {
    FirewallRule,
    Bucket,
    IamServiceAccount,
    SslCertificate,
    Certificate,
    Address,
    Disk,
    Snapshot,
    ForwardingRule,
    TargetProxy,
    UrlMap,
    BackendService,
    BackendBucket,
    HealthCheck,
    LogSink,
    LogBucket,
    SqlInstance,
    SqlBackup,
}

impl GcpKind {
    pub const ALL: [GcpKind; 18] = [
        GcpKind::FirewallRule,
        GcpKind::Bucket,
        GcpKind::IamServiceAccount,
        GcpKind::SslCertificate,
        GcpKind::Certificate,
        GcpKind::Address,
        GcpKind::Disk,
        GcpKind::Snapshot,
        GcpKind::ForwardingRule,
        GcpKind::TargetProxy,
        GcpKind::UrlMap,
        GcpKind::BackendService,
        GcpKind::BackendBucket,
        GcpKind::HealthCheck,
        GcpKind::LogSink,
        GcpKind::LogBucket,
        GcpKind::SqlInstance,
        GcpKind::SqlBackup,
    ];

    /// The kind a report spells `kind`.
    pub fn parse(kind: &str) -> Option<GcpKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GcpKind::FirewallRule => "FirewallRule",
            GcpKind::Bucket => "Bucket",
            GcpKind::IamServiceAccount => "IamServiceAccount",
            GcpKind::SslCertificate => "SslCertificate",
            GcpKind::Certificate => "Certificate",
            GcpKind::Address => "Address",
            GcpKind::Disk => "Disk",
            GcpKind::Snapshot => "Snapshot",
            GcpKind::ForwardingRule => "ForwardingRule",
            GcpKind::TargetProxy => "TargetProxy",
            GcpKind::UrlMap => "UrlMap",
            GcpKind::BackendService => "BackendService",
            GcpKind::BackendBucket => "BackendBucket",
            GcpKind::HealthCheck => "HealthCheck",
            GcpKind::LogSink => "LogSink",
            GcpKind::LogBucket => "LogBucket",
            GcpKind::SqlInstance => "SqlInstance",
            GcpKind::SqlBackup => "SqlBackup",
        }
    }
}

/// One GCP resource.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GcpResource {
    pub kind: GcpKind,
    /// Short name; the email for service accounts.
    pub name: String,
    /// Full resource name where the API has one (`projects/p/locations/l/certificates/c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Service accounts: whether the account is disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Buckets: whether it holds no object; `None` when not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty: Option<bool>,
    /// Buckets: a locked retention policy forbids deletion.
    #[serde(default)]
    pub retention_locked: bool,
    /// What uses it: the proxies or certificate map entries of a certificate, the users
    /// (forwarding rules, instances) of an address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
    /// The API's own status, where a verdict depends on it (an address: `RESERVED`,
    /// `IN_USE`, `RESERVING`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// What the API says it is for, where a Google service may hold it (an address:
    /// `VPC_PEERING`, `PRIVATE_SERVICE_CONNECT`, ...); a Cloud SQL backup's type
    /// (`AUTOMATED`, `ON_DEMAND`, `FINAL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Disks: when it was last detached from an instance; it counts as unused only from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detached: Option<chrono::DateTime<chrono::Utc>>,
    /// Snapshots: the disk it was taken of (`sourceDiskId`, else `sourceDisk`); Cloud SQL
    /// backups: the instance (of a deleted one: with its deletion time). Retention counts the
    /// newest per source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Snapshots: what expires it instead of driftsweep (the snapshot schedule of a disk that
    /// still exists), in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    /// Load balancer parts: the report names of the parts one level down the chain this one
    /// names (a forwarding rule: its target proxy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// Load balancer parts: the parts one level up the chain that name this one. Each keeps
    /// it unless that part is itself deleted, and then it is deleted after it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<Referrer>,
    /// Cloud SQL instances: what keeps one that nothing else shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<Box<SqlFacts>>,
}

/// A load balancer part that names another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referrer {
    pub kind: GcpKind,
    /// As the report names it.
    pub name: String,
}

/// What a Cloud SQL instance's verdict reads beyond the common fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlFacts {
    /// The project of the instance (`PROJECT` of `PROJECT:REGION:INSTANCE`).
    pub project: String,
    /// `PROJECT:REGION:INSTANCE`, what the Cloud SQL Auth Proxy and connectors are given.
    pub connection_name: Option<String>,
    /// Its IP addresses and DNS name, what a client connecting directly is given.
    pub addresses: Vec<String>,
    /// `settings.deletionProtectionEnabled`.
    pub deletion_protection: bool,
    /// `instanceType`: `CLOUD_SQL_INSTANCE`, `READ_REPLICA_INSTANCE`, ...
    pub instance_type: Option<String>,
    /// A read replica's primary (`masterInstanceName`).
    pub primary: Option<String>,
}

impl GcpResource {
    /// A resource of `kind` with nothing else known yet.
    pub fn of(kind: GcpKind, name: &str) -> Self {
        GcpResource {
            kind,
            name: name.to_string(),
            resource_name: None,
            id: None,
            self_link: None,
            etag: None,
            created: None,
            labels: Default::default(),
            description: None,
            disabled: None,
            empty: None,
            retention_locked: false,
            used_by: Vec::new(),
            status: None,
            purpose: None,
            detached: None,
            source: None,
            managed_by: None,
            references: Vec::new(),
            referrers: Vec::new(),
            sql: None,
        }
    }

    pub fn kind(&self) -> GcpKind {
        self.kind
    }
}

/// What a failed or incomplete list could have protected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "value")]
pub enum Protects {
    /// The cluster's references (Pods, workload templates, Ingresses, ...): no Kubernetes
    /// object of an audited kind is deleted, and no image version is deleted.
    KubernetesReferences,
    /// One Kubernetes kind was not listed: none of it is deleted, nor anything it could own.
    KubernetesKind(String),
    /// One registry repository could not be read completely.
    Repository(String),
    /// One GCP kind could not be listed, or what uses it could not be.
    Gcp(GcpKind),
}

/// A list that failed or is incomplete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    pub provider: Provider,
    /// What could not be read, e.g. `Pods in all namespaces`.
    pub what: String,
    pub error: String,
    pub protects: Protects,
    /// An API call failed (the run exits 1). False when the data is only absent, as in a
    /// snapshot that did not record it: protected all the same, but not a failure.
    #[serde(default = "yes")]
    pub failed: bool,
}

fn yes() -> bool {
    true
}

/// Everything a run saw.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Kubernetes objects; `None` when the cluster was not read at all.
    pub kubernetes: Option<Vec<KubeObject>>,
    pub registry: Vec<Repository>,
    pub gcp: Vec<GcpResource>,
    /// GCP kinds whose list was read (an absent list means: not audited).
    pub gcp_listed: Vec<GcpKind>,
    /// Kubernetes kinds known to be listed completely (a live read, or a snapshot's
    /// `snapshot.json`): an absent object of such a kind is really absent.
    pub kubernetes_listed: Vec<String>,
    pub gaps: Vec<Gap>,
}

impl Inventory {
    pub fn kubernetes_objects(&self) -> &[KubeObject] {
        self.kubernetes.as_deref().unwrap_or(&[])
    }

    pub fn has_gap(&self, protects: &Protects) -> bool {
        self.gaps.iter().any(|g| &g.protects == protects)
    }
}

/// `text` as one URL path segment or query value: everything but RFC 3986's unreserved
/// characters (`A-Z a-z 0-9 - _ . ~`) percent-encoded.
pub fn url_encode(text: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, RESERVED).to_string()
}
