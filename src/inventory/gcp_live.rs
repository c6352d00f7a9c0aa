//! What every GCP kind (`super::gcp`) reads and deletes through: the run's one Google
//! credential, the official clients (made once, on first use), retries, paging, operation
//! results, and the Cloud Storage JSON API (the official bucket client is gRPC-only).
//!
//! Every list is read to its last page and turned into the REST list body a snapshot stores,
//! then parsed by the same parse a replay uses, so live and replayed verdicts agree. A list
//! that fails (an API disabled, forbidden, or failing after retries) is a gap protecting what
//! it could have protected. `DRIFTSWEEP_GCP_*_ENDPOINT` and `STORAGE_EMULATOR_HOST` point the
//! clients at other servers, and `DRIFTSWEEP_GCP_CREDENTIALS=anonymous` sends no credentials.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use google_cloud_auth::credentials::{AccessTokenCredentials, Credentials};
use serde_json::Value;

use super::{Gap, GcpKind, GcpResource, Protects, Provider};
use crate::policy::GcpPolicy;

/// The IAM permissions of the audit's calls that no GCP kind makes (the registry); each kind
/// declares its own (`gcp::Kind::auditor`).
const AUDITOR_OTHERS: &[&str] = &[
    "artifactregistry.dockerimages.list",
    "artifactregistry.repositories.downloadArtifacts",
];

/// The permissions enforce adds that no GCP kind declares (the registry).
const ENFORCER_OTHERS: &[&str] = &[
    "artifactregistry.tags.delete",
    "artifactregistry.versions.delete",
    "artifactregistry.repositories.deleteArtifacts",
];

/// The IAM permissions of every call the audit makes (`gcp/roles/auditor.yaml`), sorted.
pub fn auditor_permissions() -> Vec<&'static str> {
    permissions(AUDITOR_OTHERS, |k| k.auditor)
}

/// The permissions of every call enforce adds (`gcp/roles/enforcer.yaml`), sorted.
pub fn enforcer_permissions() -> Vec<&'static str> {
    permissions(ENFORCER_OTHERS, |k| k.enforcer)
}

fn permissions(
    others: &[&'static str],
    of: fn(&super::gcp::Kind) -> &'static [&'static str],
) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = others.to_vec();
    for kind in super::gcp::KINDS {
        all.extend_from_slice(of(kind));
    }
    all.sort_unstable();
    all.dedup();
    all
}

/// Attempts per call when the API answers 429 or 5xx, or the connection fails.
const ATTEMPTS: u32 = 5;

/// The one Google credential of a run.
#[derive(Clone)]
pub struct GcpAuth {
    /// `None`: anonymous (emulators, `DRIFTSWEEP_GCP_CREDENTIALS=anonymous`).
    token: Option<AccessTokenCredentials>,
}

impl GcpAuth {
    /// Application default credentials, or none when `DRIFTSWEEP_GCP_CREDENTIALS=anonymous`.
    /// Async because the credential's token cache needs the runtime it is made in.
    pub async fn from_env() -> Result<GcpAuth, String> {
        if std::env::var("DRIFTSWEEP_GCP_CREDENTIALS").is_ok_and(|v| v == "anonymous") {
            return Ok(GcpAuth { token: None });
        }
        google_cloud_auth::credentials::Builder::default()
            .with_scopes(["https://www.googleapis.com/auth/cloud-platform"])
            .build_access_token_credentials()
            .map(|t| GcpAuth { token: Some(t) })
            .map_err(|e| format!("application default credentials: {e}"))
    }

    pub fn anonymous() -> GcpAuth {
        GcpAuth { token: None }
    }

    /// For the official clients.
    pub fn credentials(&self) -> Credentials {
        match &self.token {
            Some(t) => Credentials::from(t.clone()),
            None => google_cloud_auth::credentials::anonymous::Builder::new().build(),
        }
    }

    /// A bearer token for plain HTTP calls; `None` when anonymous.
    pub async fn bearer(&self) -> Result<Option<String>, String> {
        match &self.token {
            Some(t) => t
                .access_token()
                .await
                .map(|a| Some(a.token))
                .map_err(|e| format!("application default credentials: {e}")),
            None => Ok(None),
        }
    }
}

pub(crate) fn endpoint(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// Why a call failed, in the words an operator acts on.
pub fn describe(what: &str, e: &google_cloud_gax::error::Error) -> String {
    let disabled = e.status().is_some_and(|s| {
        s.details.iter().any(|d| {
            matches!(d, google_cloud_gax::error::rpc::StatusDetails::ErrorInfo(i)
                if i.reason == "SERVICE_DISABLED" || i.reason == "accessNotConfigured")
        }) || s.message.contains("has not been used in project")
            || s.message.contains("it is disabled")
    });
    if disabled {
        return format!(
            "{what}: the API is disabled in the project (SERVICE_DISABLED): enable it, or remove the kind from the policy's `gcp` section ({e})"
        );
    }
    match e.http_status_code() {
        Some(403) => format!(
            "{what}: forbidden; grant the role in gcp/roles/auditor.yaml (enforcer.yaml for deletes) ({e})"
        ),
        _ => format!("{what}: {e}"),
    }
}

fn retryable(e: &google_cloud_gax::error::Error) -> bool {
    e.http_status_code().is_some_and(|c| c == 429 || c >= 500)
        || e.is_timeout()
        || e.is_io()
        || e.is_transport()
}

/// Calls `f` until it succeeds, retrying 429, 5xx and connection failures with backoff.
pub(crate) async fn with_retries<T, F, Fut>(what: &str, mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, google_cloud_gax::error::Error>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if retryable(&e) && attempt < ATTEMPTS => {
                let wait = Duration::from_millis(250u64 << attempt.min(6));
                tracing::debug!(what, attempt, error = %e, "retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(describe(what, &e)),
        }
    }
}

pub(crate) fn to_json<T: serde::Serialize>(items: Vec<T>) -> Vec<Value> {
    items
        .into_iter()
        .filter_map(|i| serde_json::to_value(i).ok())
        .collect()
}

type SharedList = std::sync::Arc<futures::lock::Mutex<Option<Result<Value, String>>>>;

/// The official clients, made once per run.
pub struct GcpClients {
    pub project: String,
    auth: GcpAuth,
    /// The official clients the kinds made, one per type (`client!`).
    made: std::sync::Mutex<Vec<Box<dyn std::any::Any + Send + Sync>>>,
    /// Lists more than one kind reads (the target proxies), each read once per run.
    shared: std::sync::Mutex<BTreeMap<&'static str, SharedList>>,
    http: reqwest::Client,
    storage: String,
}

macro_rules! build_client {
    ($ty:ty, $var:expr, $auth:expr) => {{
        let mut builder = <$ty>::builder().with_credentials($auth.credentials());
        if let Some(e) = $crate::inventory::gcp_live::endpoint($var) {
            builder = builder.with_endpoint(e);
        }
        builder.build().await.map_err(|e| e.to_string())
    }};
}

/// The run's one client of type `$ty`, made on first use with the endpoint `$var` names.
macro_rules! client {
    ($clients:expr, $ty:ty, $var:expr) => {{
        let clients: &$crate::inventory::gcp_live::GcpClients = $clients;
        clients
            .client::<$ty, _, _>(|| async move {
                $crate::inventory::gcp_live::build_client!($ty, $var, clients.auth())
            })
            .await
    }};
}

/// A get through `with_retries`, as JSON; `None` when the resource is gone.
macro_rules! get {
    ($call:expr, $what:expr) => {
        match $crate::inventory::gcp_live::with_retries($what, || $call).await {
            Ok(v) => Ok(serde_json::to_value(v).ok()),
            Err(e) if e.contains("404") || e.contains("NOT_FOUND") || e.contains("not found") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    };
}

/// `get!` of one Compute resource through its client, global or, with `region R`, regional:
/// `compute_get!("addresses.get", clients, Addresses, set_address(name), region r)`.
macro_rules! compute_get {
    ($what:expr, $clients:expr, $ty:ident, $set:ident($name:expr) $(, region $region:expr)?) => {{
        let clients: &$crate::inventory::gcp_live::GcpClients = $clients;
        let c = $crate::inventory::gcp_live::client!(
            clients,
            $ty,
            $crate::inventory::gcp_live::COMPUTE
        )?;
        $crate::inventory::gcp_live::get!(
            c.get()
                .set_project(clients.project.clone())
                $(.set_region($region))?
                .$set($name)
                .send(),
            $what
        )
    }};
}

/// The delete of one Compute resource, followed through its operation to the end, as
/// `compute_get!` names it; the result is what `compute_deleted` reads.
macro_rules! compute_delete {
    ($clients:expr, $ty:ident, $set:ident($name:expr) $(, region $region:expr)?) => {{
        use google_cloud_lro::Poller as _;
        let clients: &$crate::inventory::gcp_live::GcpClients = $clients;
        let c = $crate::inventory::gcp_live::client!(
            clients,
            $ty,
            $crate::inventory::gcp_live::COMPUTE
        )?;
        c.delete()
            .set_project(clients.project.clone())
            $(.set_region($region))?
            .$set($name)
            .poller()
            .until_done()
            .await
    }};
}

pub(crate) use {build_client, client, compute_delete, compute_get, get};

pub(crate) const COMPUTE: &str = "DRIFTSWEEP_GCP_COMPUTE_ENDPOINT";

impl GcpClients {
    /// Clients for what `policy` audits.
    pub async fn new(policy: &GcpPolicy, auth: GcpAuth) -> Result<GcpClients, String> {
        let project = policy
            .project
            .clone()
            .ok_or_else(|| "the live GCP sources need `gcp.project` in the policy".to_string())?;
        let clients = GcpClients {
            project,
            auth: auth.clone(),
            made: std::sync::Mutex::new(Vec::new()),
            shared: std::sync::Mutex::new(BTreeMap::new()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| e.to_string())?,
            storage: match std::env::var("STORAGE_EMULATOR_HOST") {
                Ok(host) if host.starts_with("http") => host.trim_end_matches('/').to_string(),
                Ok(host) if !host.is_empty() => format!("http://{host}"),
                _ => "https://storage.googleapis.com".to_string(),
            },
        };
        Ok(clients)
    }

    pub(crate) fn auth(&self) -> &GcpAuth {
        &self.auth
    }

    /// The run's client of type `T`, made by `make` the first time one is asked for.
    pub(crate) async fn client<T, F, Fut>(&self, make: F) -> Result<T, String>
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let made = |list: &Vec<Box<dyn std::any::Any + Send + Sync>>| {
            list.iter().find_map(|c| c.downcast_ref::<T>().cloned())
        };
        if let Some(c) = self.made.lock().ok().and_then(|l| made(&l)) {
            return Ok(c);
        }
        let c = make().await?;
        if let Ok(mut list) = self.made.lock()
            && made(&list).is_none()
        {
            list.push(Box::new(c.clone()));
        }
        Ok(c)
    }

    /// The list body stored as `file`, read by `list` the first time a kind asks for it; a
    /// kind asking while another reads it waits for that read.
    pub(crate) async fn shared_list<F, Fut>(
        &self,
        file: &'static str,
        list: F,
    ) -> Result<Value, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value, String>>,
    {
        let slot = self
            .shared
            .lock()
            .ok()
            .map(|mut map| map.entry(file).or_default().clone());
        let Some(slot) = slot else {
            return list().await;
        };
        let mut guard = slot.lock().await;
        if let Some(done) = guard.as_ref() {
            return done.clone();
        }
        let result = list().await;
        *guard = Some(result.clone());
        result
    }

    /// A Cloud Storage call without a body: its HTTP status (429 and 5xx retried).
    pub(crate) async fn storage_send(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<u16, String> {
        let url = format!("{}{path}", self.storage);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.http.request(method.clone(), &url);
            if let Some(token) = self.auth.bearer().await? {
                request = request.bearer_auth(token);
            }
            match request.send().await {
                Ok(r)
                    if (r.status().as_u16() == 429 || r.status().is_server_error())
                        && attempt < ATTEMPTS => {}
                Ok(r) => return Ok(r.status().as_u16()),
                Err(_) if attempt < ATTEMPTS => {}
                Err(e) => return Err(format!("{method} {url}: {e}")),
            }
            tokio::time::sleep(Duration::from_millis(250u64 << attempt.min(6))).await;
        }
    }

    /// A Cloud Storage GET, as JSON (429 and 5xx retried); an error names a disabled API.
    pub(crate) async fn storage_get(&self, path: &str) -> Result<Value, String> {
        let url = format!("{}{path}", self.storage);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.http.get(&url);
            if let Some(token) = self.auth.bearer().await? {
                request = request.bearer_auth(token);
            }
            let result = request.send().await;
            let retry = match &result {
                Ok(r) => r.status().as_u16() == 429 || r.status().is_server_error(),
                Err(_) => true,
            };
            if retry && attempt < ATTEMPTS {
                tokio::time::sleep(Duration::from_millis(250u64 << attempt.min(6))).await;
                continue;
            }
            let response = result.map_err(|e| format!("GET {url}: {e}"))?;
            let status = response.status();
            let body: Value = response
                .json()
                .await
                .map_err(|e| format!("GET {url}: the answer is not JSON: {e}"))?;
            if !status.is_success() {
                let message = body
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message");
                let disabled = body.to_string().contains("SERVICE_DISABLED")
                    || body.to_string().contains("accessNotConfigured");
                return Err(if disabled {
                    format!(
                        "GET {url}: the Cloud Storage API is disabled in the project (SERVICE_DISABLED): {message}"
                    )
                } else {
                    format!("GET {url}: {status}: {message}")
                });
            }
            return Ok(body);
        }
    }
}

/// What the GCP read gave: resources, the REST list bodies a snapshot writes, and gaps.
#[derive(Debug, Default)]
pub struct GcpRead {
    pub resources: Vec<GcpResource>,
    pub listed: Vec<GcpKind>,
    /// `gcp/<file>` → body.
    pub files: BTreeMap<String, Value>,
    pub gaps: Vec<Gap>,
}

impl GcpRead {
    /// One kind's lists: its records and files, or a gap for each list that failed.
    fn add(&mut self, kind: &super::gcp::Kind, listed: super::gcp::Listed) {
        for (what, error) in listed.failed {
            self.gap(kind.kind, &what, error);
        }
        match (kind.parse)(&listed.files) {
            Ok(Some(mut resources)) => {
                self.resources.append(&mut resources);
                self.listed.push(kind.kind);
            }
            Ok(None) => {}
            Err(e) => self.gap(kind.kind, kind.what, format!("{}: {}", e.file, e.message)),
        }
        self.files.extend(listed.files);
    }

    fn gap(&mut self, kind: GcpKind, what: &str, error: String) {
        self.gaps.push(Gap {
            provider: Provider::Gcp,
            what: what.to_string(),
            error,
            protects: Protects::Gcp(kind),
            failed: true,
        });
    }
}

/// Every item of one global Compute collection, as REST JSON; the four clients share the
/// shape of their `list` but not a type.
macro_rules! compute_list {
    ($client:expr, $project:expr, $what:expr) => {
        $crate::inventory::gcp_live::list_compute(
            |token| {
                let c = $client.clone();
                let p = $project.clone();
                async move {
                    let page = c
                        .list()
                        .set_project(p)
                        .set_max_results(500u32)
                        .set_page_token(token)
                        .send()
                        .await?;
                    Ok((
                        $crate::inventory::gcp_live::to_json(page.items),
                        page.next_page_token,
                    ))
                }
            },
            $what,
        )
        .await
    };
}

pub(crate) use compute_list;

/// Every item of one Compute aggregated list whose scope starts with `$scope` (`"regions/"`,
/// `"zones/"`), as REST JSON; `$field` is the scoped list's field (`addresses`, `disks`).
macro_rules! aggregated_list {
    ($client:expr, $project:expr, $what:expr, $scope:expr, $field:ident) => {
        $crate::inventory::gcp_live::list_aggregated(
            |token| {
                let c = $client.clone();
                let p = $project.clone();
                async move {
                    let page = c
                        .aggregated_list()
                        .set_project(p)
                        .set_max_results(500u32)
                        .set_page_token(token)
                        .send()
                        .await?;
                    Ok($crate::inventory::gcp_live::AggregatedPage {
                        scopes: page
                            .items
                            .into_iter()
                            .map(|(scope, list)| {
                                (scope, $crate::inventory::gcp_live::to_json(list.$field))
                            })
                            .collect(),
                        unreachables: page.unreachables,
                        next: page.next_page_token,
                    })
                }
            },
            $what,
            $scope,
        )
        .await
    };
}

pub(crate) use aggregated_list;

/// One page of an aggregated list: its items by scope (`regions/R`, `zones/Z`).
pub(crate) struct AggregatedPage {
    pub scopes: Vec<(String, Vec<Value>)>,
    pub unreachables: Vec<String>,
    pub next: Option<String>,
}

/// Every page of an aggregated list, the items of the scopes starting with `scope`, in scope
/// order. A scope the API could not reach (`unreachables`) fails the list: its items are
/// unknown.
pub(crate) async fn list_aggregated<F, Fut>(
    mut page: F,
    what: &str,
    scope: &str,
) -> Result<Vec<Value>, String>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<AggregatedPage, google_cloud_gax::error::Error>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let got = with_retries(what, || page(token.clone())).await?;
        if !got.unreachables.is_empty() {
            return Err(format!(
                "{what}: unreachable: {}",
                got.unreachables.join(", ")
            ));
        }
        let mut scopes = got.scopes;
        scopes.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, list) in scopes {
            if name.starts_with(scope) {
                items.extend(list);
            }
        }
        match got.next.filter(|t| !t.is_empty()) {
            Some(next) => token = next,
            None => return Ok(items),
        }
    }
}

/// Reads every GCP kind the policy audits, the kinds concurrently (each follows its own
/// pages; a list two kinds need is read once). A kind's failed list is a gap for that kind
/// only; the caller's run deadline still bounds the whole read.
pub async fn read(policy: &GcpPolicy, clients: &GcpClients) -> GcpRead {
    let kinds: Vec<&super::gcp::Kind> = super::gcp::KINDS
        .iter()
        .copied()
        .filter(|k| (k.audited)(policy))
        .collect();
    let listed = futures::future::join_all(kinds.iter().map(|k| (k.list)(clients))).await;
    let mut read = GcpRead::default();
    // In the table's order, whatever order the lists finished in.
    for (kind, listed) in kinds.into_iter().zip(listed) {
        read.add(kind, listed);
    }
    read
}

type Page = (Vec<Value>, String);

/// Compute pages: `next_page_token` is optional there.
pub(crate) async fn list_compute<F, Fut>(mut page: F, what: &str) -> Result<Vec<Value>, String>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(Vec<Value>, Option<String>), google_cloud_gax::error::Error>>,
{
    list_paged(
        move |token| {
            let fut = page(token);
            async move {
                fut.await
                    .map(|(items, next)| (items, next.unwrap_or_default()))
            }
        },
        what,
    )
    .await
}

pub(crate) async fn list_paged<F, Fut>(mut page: F, what: &str) -> Result<Vec<Value>, String>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<Page, google_cloud_gax::error::Error>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let (mut got, next) = with_retries(what, || page(token.clone())).await?;
        items.append(&mut got);
        if next.is_empty() {
            return Ok(items);
        }
        token = next;
    }
}

/// What a Compute delete's operation says happened.
pub(crate) fn compute_deleted(
    result: Result<google_cloud_compute_v1::model::Operation, google_cloud_gax::error::Error>,
) -> Result<GcpDelete, String> {
    match result {
        Ok(op) => match op.error.as_ref().map(|e| &e.errors) {
            Some(errors) if !errors.is_empty() => {
                let text = errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e.code.as_deref().unwrap_or("error"),
                            e.message.as_deref().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                if text.contains("RESOURCE_IN_USE") || text.contains("being used by") {
                    Ok(GcpDelete::Skipped(format!(
                        "in use by another resource: {text}"
                    )))
                } else if text.contains("NOT_FOUND") {
                    Ok(GcpDelete::AlreadyGone)
                } else {
                    Err(format!("the delete operation failed: {text}"))
                }
            }
            _ => Ok(GcpDelete::Deleted(None)),
        },
        Err(e) if not_found(&e) => Ok(GcpDelete::AlreadyGone),
        Err(e) if in_use(&e) => Ok(GcpDelete::Skipped(format!(
            "in use by another resource: {e}"
        ))),
        Err(e) => Err(describe("delete", &e)),
    }
}

/// What a GCP delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcpDelete {
    /// Deleted; the note says how to undo it where that is possible.
    Deleted(Option<String>),
    AlreadyGone,
    Skipped(String),
    /// Service accounts, first phase: disabled, to be deleted by a later run.
    Disabled(String),
}

pub(crate) fn not_found(e: &google_cloud_gax::error::Error) -> bool {
    e.http_status_code() == Some(404)
        || e.status()
            .is_some_and(|s| s.code == google_cloud_gax::error::rpc::Code::NotFound)
}

pub(crate) fn in_use(e: &google_cloud_gax::error::Error) -> bool {
    let text = e.to_string();
    text.contains("resourceInUseByAnotherResource")
        || text.contains("RESOURCE_IN_USE_BY_ANOTHER_RESOURCE")
        || text.contains("is already being used by")
        || e.status()
            .is_some_and(|s| s.code == google_cloud_gax::error::rpc::Code::FailedPrecondition)
}

impl GcpClients {
    /// The resource as the API returns it now; `None` when it is gone.
    pub async fn current(
        &self,
        kind: GcpKind,
        name: &str,
        resource_name: Option<&str>,
    ) -> Result<Option<Value>, String> {
        let k =
            super::gcp::kind(kind).ok_or_else(|| format!("unknown GCP kind {}", kind.as_str()))?;
        let target = super::gcp::Target {
            name,
            resource_name,
        };
        (k.current)(self, &target).await
    }

    /// Deletes one resource (`current` is what `current` returned, already backed up).
    pub async fn delete(
        &self,
        kind: GcpKind,
        name: &str,
        current: &Value,
        etag: Option<&str>,
        policy: &GcpPolicy,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<GcpDelete, String> {
        let k =
            super::gcp::kind(kind).ok_or_else(|| format!("unknown GCP kind {}", kind.as_str()))?;
        let d = super::gcp::Deletion {
            name,
            current,
            etag,
            policy,
            now,
        };
        (k.delete)(self, &d).await
    }
}
