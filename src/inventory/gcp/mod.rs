//! The GCP kinds driftsweep audits, one file each, registered in `KINDS`.
//!
//! A kind's file holds everything about it: the calls that list it (every page), the
//! snapshot files those lists are stored as, the parse of those files into records (with what
//! puts a record in use), how enforce reads it again and deletes it, and the IAM permissions of
//! those calls. The live read, `snapshot`, replay and enforce iterate the table; none of them
//! names a kind (Cloud Custodian's resource registry is the model: one class per resource
//! declaring its list and delete).

pub mod address;
pub mod backend_bucket;
pub mod backend_service;
pub mod bucket;
pub mod certificate;
pub mod chain;
pub mod disk;
pub mod firewall;
pub mod forwarding_rule;
pub mod health_check;
pub mod log_bucket;
pub mod log_sink;
pub mod service_account;
pub mod snapshot;
pub mod sql_backup;
pub mod sql_instance;
pub mod ssl_certificate;
pub mod target_proxy;
pub mod url_map;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use super::gcp_live::{GcpClients, GcpDelete};
use super::{GcpKind, GcpResource};
use crate::policy::{GcpPolicy, Glob};

/// A kind's future, boxed so that the table can hold plain function pointers.
pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a kind's live read produced: the REST list bodies by snapshot file name
/// (`firewalls.json`, `objects/b.json`), and the lists that failed (what, why).
#[derive(Debug, Default)]
pub struct Listed {
    pub files: BTreeMap<String, Value>,
    pub failed: Vec<(String, String)>,
}

impl Listed {
    /// Stores a list's items as the REST list body `{key: [...]}` under `file`, or its error.
    pub fn store(&mut self, what: &str, file: &str, key: &str, items: Result<Vec<Value>, String>) {
        match items {
            Ok(items) => {
                let mut body = serde_json::Map::new();
                body.insert(key.to_string(), Value::Array(items));
                self.files.insert(file.to_string(), Value::Object(body));
            }
            Err(e) => self.failed.push((what.to_string(), e)),
        }
    }

    /// Stores a list body read whole (a shared list's) under `file`, or its failure under
    /// `what`.
    pub fn store_body(&mut self, what: &str, file: &str, body: Result<Value, String>) {
        match body {
            Ok(body) => {
                self.files.insert(file.to_string(), body);
            }
            Err(e) => self.failed.push((what.to_string(), e)),
        }
    }
}

/// A problem in one of a kind's files: the file, and what is wrong at which JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    pub message: String,
}

/// Where a kind's parse finds its files: the bodies a live read just listed, or a snapshot
/// folder. `None`: the file is absent.
pub trait Files: Sync {
    fn get(&self, file: &str) -> Result<Option<Value>, FileError>;
}

impl Files for BTreeMap<String, Value> {
    fn get(&self, file: &str) -> Result<Option<Value>, FileError> {
        Ok(BTreeMap::get(self, file).cloned())
    }
}

/// `parse` of the body of `file`, its errors naming the file; `None` when the file is absent.
pub fn parse_file<T>(
    files: &dyn Files,
    file: &str,
    parse: impl FnOnce(&Value) -> Result<T, String>,
) -> Result<Option<T>, FileError> {
    match files.get(file)? {
        None => Ok(None),
        Some(body) => parse(&body).map(Some).map_err(|message| FileError {
            file: file.to_string(),
            message,
        }),
    }
}

/// What enforce asks of a kind about one planned resource.
pub struct Target<'a> {
    pub name: &'a str,
    /// The full resource name the audit recorded, where the kind has one.
    pub resource_name: Option<&'a str>,
}

/// One deletion: the resource as it was read again (and backed up), and the run's settings.
pub struct Deletion<'a> {
    pub name: &'a str,
    pub current: &'a Value,
    /// The etag of the record the plan was made from (`None`: it had none).
    pub etag: Option<&'a str>,
    pub policy: &'a GcpPolicy,
    pub now: chrono::DateTime<chrono::Utc>,
}

/// What enforce compares between the reviewed record and the resource read again: a
/// different id or creation time is another resource of the same name.
#[derive(Debug, Clone, Copy)]
pub struct Reverify {
    /// The field holding the resource's server-given id (`id`, `uniqueId`); `None` when the
    /// API's id is only the name.
    pub id: Option<&'static str>,
    /// The field holding its creation time.
    pub created: Option<&'static str>,
}

/// A kind's records from its files; `None` when the file of its resources is absent.
pub type Parsed = Result<Option<Vec<GcpResource>>, FileError>;

/// A resource as the API returns it now; `None` when it is gone.
pub type Current = Result<Option<Value>, String>;

/// One GCP kind.
pub struct Kind {
    pub kind: GcpKind,
    /// Plural, as errors and the report's gaps say it: `firewall rules`.
    pub what: &'static str,
    /// Whether the policy audits it.
    pub audited: fn(&GcpPolicy) -> bool,
    /// The names the policy allows, when it audits the kind.
    pub allowed: fn(&GcpPolicy) -> Option<&[Glob]>,
    /// Names Google or GKE give the resources of this kind they create (the floor).
    pub floor: &'static [&'static str],
    /// Lists it, every page, into the files `parse` reads.
    pub list: for<'a> fn(&'a GcpClients) -> Boxed<'a, Listed>,
    /// Its records from its files (a live read's or a snapshot's); `None` when the file of
    /// its resources is absent (not audited).
    pub parse: fn(&dyn Files) -> Parsed,
    /// The resource as the API returns it now; `None` when it is gone.
    pub current: for<'a> fn(&'a GcpClients, &'a Target<'a>) -> Boxed<'a, Current>,
    /// Deletes it, through its operation.
    pub delete:
        for<'a> fn(&'a GcpClients, &'a Deletion<'a>) -> Boxed<'a, Result<GcpDelete, String>>,
    pub reverify: Reverify,
    /// The IAM permissions of `list` (`gcp/roles/auditor.yaml`).
    pub auditor: &'static [&'static str],
    /// The IAM permissions of `current` and `delete` (`gcp/roles/enforcer.yaml`).
    pub enforcer: &'static [&'static str],
}

/// Every GCP kind.
pub static KINDS: &[&Kind] = &[
    &firewall::KIND,
    &ssl_certificate::KIND,
    &certificate::KIND,
    &service_account::KIND,
    &bucket::KIND,
    &address::KIND,
    &disk::KIND,
    &snapshot::KIND,
    &forwarding_rule::KIND,
    &target_proxy::KIND,
    &url_map::KIND,
    &backend_service::KIND,
    &backend_bucket::KIND,
    &health_check::KIND,
    &log_sink::KIND,
    &log_bucket::KIND,
    &sql_instance::KIND,
    &sql_backup::KIND,
];

/// A kind's place in a load balancer's chain, top-down: what sends traffic is deleted before
/// what it sends it to (the API refuses the other order), and a part is judged only after the
/// parts that name it. Kinds outside the chain are 0.
pub fn chain_rank(kind: GcpKind) -> u8 {
    match kind {
        GcpKind::TargetProxy => 1,
        GcpKind::UrlMap => 2,
        GcpKind::BackendService | GcpKind::BackendBucket => 3,
        GcpKind::HealthCheck => 4,
        // A log bucket is named by the sinks that write to it.
        GcpKind::LogBucket => 1,
        _ => 0,
    }
}

/// The entry of `kind`.
pub fn kind(kind: GcpKind) -> Option<&'static Kind> {
    KINDS.iter().copied().find(|k| k.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_registered_once() {
        for k in GcpKind::ALL {
            assert_eq!(
                KINDS.iter().filter(|e| e.kind == k).count(),
                1,
                "{}",
                k.as_str()
            );
        }
        assert_eq!(KINDS.len(), GcpKind::ALL.len());
    }
}
