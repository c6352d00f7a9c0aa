//! The live GCP sources and deletes: firewall rules, SSL certificates and what uses them
//! (Compute), IAM service accounts, Certificate Manager certificates and map entries, through
//! the official clients; buckets through the Cloud Storage JSON API (the official bucket client
//! is gRPC-only).
//!
//! Every list is read to its last page and turned into the REST list body a snapshot stores,
//! then parsed by the same parsers a replay uses, so live and replayed verdicts agree. A list
//! that fails (an API disabled, forbidden, or failing after retries) is a gap protecting what
//! it could have protected. One credential serves every client and the registry.
//! `DRIFTSWEEP_GCP_*_ENDPOINT` and `STORAGE_EMULATOR_HOST` point them at other servers, and
//! `DRIFTSWEEP_GCP_CREDENTIALS=anonymous` sends no credentials.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use google_cloud_auth::credentials::{AccessTokenCredentials, Credentials};
use serde_json::{Value, json};

use super::{Gap, GcpKind, GcpResource, Protects, Provider};
use crate::policy::GcpPolicy;

/// The IAM permissions of the audit's calls that no GCP kind makes (buckets' objects, the
/// registry); each kind declares its own (`gcp::Kind::auditor`).
const AUDITOR_OTHERS: &[&str] = &[
    "compute.sslCertificates.list",
    "compute.targetHttpsProxies.list",
    "compute.targetSslProxies.list",
    "certificatemanager.certs.list",
    "certificatemanager.certmaps.list",
    "certificatemanager.certmapentries.list",
    "iam.serviceAccounts.list",
    "storage.buckets.list",
    "storage.objects.list",
    "artifactregistry.dockerimages.list",
    "artifactregistry.repositories.downloadArtifacts",
];

/// The permissions enforce adds that no GCP kind declares (the registry).
const ENFORCER_OTHERS: &[&str] = &[
    "compute.sslCertificates.get",
    "compute.sslCertificates.delete",
    "compute.globalOperations.get",
    "certificatemanager.certs.get",
    "certificatemanager.certs.delete",
    "certificatemanager.operations.get",
    "iam.serviceAccounts.get",
    "iam.serviceAccounts.update",
    "iam.serviceAccounts.disable",
    "iam.serviceAccounts.delete",
    "storage.buckets.get",
    "storage.buckets.delete",
    "storage.objects.delete",
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
    iam: Option<google_cloud_iam_admin_v1::client::Iam>,
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

pub(crate) use {build_client, client, get};

pub(crate) const COMPUTE: &str = "DRIFTSWEEP_GCP_COMPUTE_ENDPOINT";
const IAM: &str = "DRIFTSWEEP_GCP_IAM_ENDPOINT";

impl GcpClients {
    /// Clients for what `policy` audits.
    pub async fn new(policy: &GcpPolicy, auth: GcpAuth) -> Result<GcpClients, String> {
        let project = policy
            .project
            .clone()
            .ok_or_else(|| "the live GCP sources need `gcp.project` in the policy".to_string())?;
        let mut clients = GcpClients {
            project,
            auth: auth.clone(),
            made: std::sync::Mutex::new(Vec::new()),
            shared: std::sync::Mutex::new(BTreeMap::new()),
            iam: None,
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
        if policy.service_accounts.is_some() {
            clients.iam = Some(build_client!(
                google_cloud_iam_admin_v1::client::Iam,
                IAM,
                auth
            )?);
        }
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

    async fn storage_get(&self, path: &str) -> Result<Value, String> {
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

/// Reads every GCP kind the policy audits.
pub async fn read(policy: &GcpPolicy, clients: &GcpClients) -> GcpRead {
    let mut read = GcpRead::default();
    let p = clients.project.clone();
    for kind in super::gcp::KINDS {
        if (kind.audited)(policy) {
            let listed = (kind.list)(clients).await;
            read.add(kind, listed);
        }
    }
    if let Some(client) = &clients.iam {
        let name = format!("projects/{p}");
        let listed = list_paged(
            |token| {
                let c = client.clone();
                let name = name.clone();
                async move {
                    let page = c
                        .list_service_accounts()
                        .set_name(name)
                        .set_page_size(100)
                        .set_page_token(token)
                        .send()
                        .await?;
                    Ok((to_json(page.accounts), page.next_page_token))
                }
            },
            "serviceAccounts.list",
        )
        .await;
        record(
            &mut read,
            GcpKind::IamServiceAccount,
            "service accounts",
            "serviceAccounts.json",
            "accounts",
            listed,
            super::iam::parse_service_accounts,
        );
    }
    if policy.buckets.is_some() {
        read_buckets(clients, &mut read).await;
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

#[allow(clippy::too_many_arguments)]
fn record(
    read: &mut GcpRead,
    kind: GcpKind,
    what: &str,
    file: &str,
    key: &str,
    listed: Result<Vec<Value>, String>,
    parse: fn(&Value) -> Result<Vec<GcpResource>, String>,
) {
    match listed.and_then(|items| {
        let mut body = serde_json::Map::new();
        body.insert(key.to_string(), Value::Array(items));
        let body = Value::Object(body);
        parse(&body).map(|r| (body, r))
    }) {
        Ok((body, mut resources)) => {
            read.resources.append(&mut resources);
            read.listed.push(kind);
            read.files.insert(file.to_string(), body);
        }
        Err(e) => read.gap(kind, what, e),
    }
}

async fn read_buckets(clients: &GcpClients, read: &mut GcpRead) {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = format!("/storage/v1/b?project={}&maxResults=500", clients.project);
        if let Some(t) = &token {
            path.push_str(&format!("&pageToken={t}"));
        }
        match clients.storage_get(&path).await {
            Ok(page) => {
                if let Some(Value::Array(got)) = page.get("items") {
                    items.extend(got.iter().cloned());
                }
                token = page
                    .get("nextPageToken")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            Err(e) => return read.gap(GcpKind::Bucket, "buckets", e),
        }
    }
    let body = json!({ "items": items });
    let mut buckets = match super::gcs::parse_buckets(&body) {
        Ok(b) => b,
        Err(e) => return read.gap(GcpKind::Bucket, "buckets", e),
    };
    read.files.insert("buckets.json".to_string(), body);
    for bucket in &mut buckets {
        // One object is enough to know it is not empty; unknown stays unknown.
        let path = format!("/storage/v1/b/{}/o?maxResults=1", bucket.name);
        match clients.storage_get(&path).await {
            Ok(objects) => {
                bucket.empty = super::gcs::objects_list_is_empty(&objects).ok();
                read.files
                    .insert(format!("objects/{}.json", bucket.name), objects);
            }
            Err(e) => tracing::warn!(bucket = %bucket.name, error = %e, "bucket contents not read"),
        }
    }
    read.resources.append(&mut buckets);
    read.listed.push(GcpKind::Bucket);
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

/// The description marker that records when enforce disabled an account.
const DISABLED_MARKER: &str = "[driftsweep: disabled at ";

/// When enforce disabled the account, from its description.
pub fn disabled_at(description: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let start = description.rfind(DISABLED_MARKER)? + DISABLED_MARKER.len();
    let end = description[start..].find(']')? + start;
    chrono::DateTime::parse_from_rfc3339(&description[start..end])
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
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
        if let Some(k) = super::gcp::kind(kind) {
            let target = super::gcp::Target {
                name,
                resource_name,
            };
            return (k.current)(self, &target).await;
        }
        match kind {
            GcpKind::FirewallRule | GcpKind::SslCertificate | GcpKind::Certificate => {
                Err("registered".to_string())
            }
            GcpKind::IamServiceAccount => {
                let c = self.iam.as_ref().ok_or("no IAM client")?;
                let full = format!("projects/-/serviceAccounts/{name}");
                get!(
                    c.get_service_account().set_name(full.clone()).send(),
                    "serviceAccounts.get"
                )
            }
            GcpKind::Bucket => match self.storage_get(&format!("/storage/v1/b/{name}")).await {
                Ok(v) => Ok(Some(v)),
                Err(e) if e.contains("404") => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Deletes one resource (`current` is what `current` returned, already backed up).
    pub async fn delete(
        &self,
        kind: GcpKind,
        name: &str,
        current: &Value,
        policy: &GcpPolicy,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<GcpDelete, String> {
        if let Some(k) = super::gcp::kind(kind) {
            let d = super::gcp::Deletion {
                name,
                current,
                policy,
                now,
            };
            return (k.delete)(self, &d).await;
        }
        match kind {
            GcpKind::FirewallRule | GcpKind::SslCertificate | GcpKind::Certificate => {
                Err("registered".to_string())
            }
            GcpKind::IamServiceAccount => self.service_account(name, current, policy, now).await,
            GcpKind::Bucket => self.bucket(name, current, policy).await,
        }
    }

    /// Two phases: disable and record when; delete once disabled long enough.
    async fn service_account(
        &self,
        email: &str,
        current: &Value,
        policy: &GcpPolicy,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<GcpDelete, String> {
        let c = self.iam.as_ref().ok_or("no IAM client")?;
        let days = policy
            .service_accounts
            .as_ref()
            .map_or(7, |s| s.disable_days);
        let full = format!("projects/{}/serviceAccounts/{email}", self.project);
        let description = current
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let disabled = current.get("disabled").and_then(Value::as_bool) == Some(true);
        let unique_id = current
            .get("uniqueId")
            .and_then(Value::as_str)
            .unwrap_or("UNIQUE_ID")
            .to_string();
        if !disabled {
            let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let marked = if description.is_empty() {
                format!("{DISABLED_MARKER}{stamp}]")
            } else {
                format!("{description} {DISABLED_MARKER}{stamp}]")
            };
            let account = google_cloud_iam_admin_v1::model::ServiceAccount::new()
                .set_name(full.clone())
                .set_description(marked);
            with_retries("serviceAccounts.patch", || {
                c.patch_service_account()
                    .set_service_account(account.clone())
                    .set_update_mask(
                        google_cloud_wkt::FieldMask::default().set_paths(["description"]),
                    )
                    .send()
            })
            .await?;
            with_retries("serviceAccounts.disable", || {
                c.disable_service_account().set_name(full.clone()).send()
            })
            .await?;
            return Ok(GcpDelete::Disabled(format!(
                "disabled, not deleted: a later enforce deletes it after {days} days if it is still disabled. Undo: gcloud iam service-accounts enable {email} --project {}",
                self.project
            )));
        }
        let Some(since) = disabled_at(&description) else {
            return Ok(GcpDelete::Skipped(
                "disabled by someone else (no driftsweep record of when); not deleted".to_string(),
            ));
        };
        let due = since + chrono::Duration::days(i64::from(days));
        if now < due {
            return Ok(GcpDelete::Skipped(format!(
                "disabled at {since}; deleted by an enforce run from {due} (`gcp.service_accounts.disable_days`: {days})"
            )));
        }
        match with_retries("serviceAccounts.delete", || {
            c.delete_service_account().set_name(full.clone()).send()
        })
        .await
        {
            Ok(()) => Ok(GcpDelete::Deleted(Some(format!(
                "undo within 30 days: gcloud iam service-accounts undelete {unique_id} --project {}",
                self.project
            )))),
            Err(e) if e.contains("404") || e.contains("NOT_FOUND") => Ok(GcpDelete::AlreadyGone),
            Err(e) => Err(e),
        }
    }

    async fn storage_send(&self, method: reqwest::Method, path: &str) -> Result<u16, String> {
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

    /// Only an empty bucket, unless `delete_non_empty`; never one with a locked retention.
    async fn bucket(
        &self,
        name: &str,
        current: &Value,
        policy: &GcpPolicy,
    ) -> Result<GcpDelete, String> {
        if current
            .pointer("/retentionPolicy/isLocked")
            .and_then(Value::as_bool)
            == Some(true)
        {
            return Ok(GcpDelete::Skipped(
                "its retention policy is locked".to_string(),
            ));
        }
        let delete_non_empty = policy.buckets.as_ref().is_some_and(|b| b.delete_non_empty);
        let objects = self
            .storage_get(&format!("/storage/v1/b/{name}/o?maxResults=1"))
            .await?;
        let empty = super::gcs::objects_list_is_empty(&objects)?;
        let mut note = None;
        if !empty {
            if !delete_non_empty {
                return Ok(GcpDelete::Skipped(
                    "not empty (set `gcp.buckets.delete_non_empty` to delete its objects too)"
                        .to_string(),
                ));
            }
            let count = self.empty_bucket(name).await?;
            note = Some(format!(
                "{count} objects deleted first; object data is not backed up"
            ));
        }
        match self
            .storage_send(reqwest::Method::DELETE, &format!("/storage/v1/b/{name}"))
            .await?
        {
            200..=299 => Ok(GcpDelete::Deleted(note)),
            404 => Ok(GcpDelete::AlreadyGone),
            409 | 412 => Ok(GcpDelete::Skipped(
                "not empty: objects were written since".to_string(),
            )),
            status => Err(format!("deleting bucket {name}: HTTP {status}")),
        }
    }

    async fn empty_bucket(&self, name: &str) -> Result<usize, String> {
        let mut count = 0;
        loop {
            let page = self
                .storage_get(&format!("/storage/v1/b/{name}/o?maxResults=1000"))
                .await?;
            let items: Vec<String> = page
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|o| o.get("name").and_then(Value::as_str).map(str::to_string))
                .collect();
            if items.is_empty() {
                return Ok(count);
            }
            for object in items {
                let encoded: String = super::url_encode(&object);
                match self
                    .storage_send(
                        reqwest::Method::DELETE,
                        &format!("/storage/v1/b/{name}/o/{encoded}"),
                    )
                    .await?
                {
                    200..=299 | 404 => count += 1,
                    status => {
                        return Err(format!("deleting object {object} of {name}: HTTP {status}"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disable_time_is_read_back_from_the_description() {
        let t = disabled_at("batch jobs [driftsweep: disabled at 2026-11-29T07:30:00Z]").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-29T07:30:00+00:00");
        assert!(disabled_at("no marker").is_none());
        assert!(disabled_at("[driftsweep: disabled at garbage]").is_none());
    }

    #[test]
    fn object_names_are_encoded_for_their_path() {
        assert_eq!(crate::inventory::url_encode("a/b c.csv"), "a%2Fb%20c.csv");
    }
}
