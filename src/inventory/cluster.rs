//! The live Kubernetes source: lists what an audit needs from the API server, and deletes one
//! object exactly as reviewed.
//!
//! `kube` provides the configuration (kubeconfig or in-cluster), authentication, TLS and the
//! request builders; status handling is ours, because safety depends on it: every list is
//! followed to its last page or reported as incomplete, 429 and 5xx are retried honouring
//! `Retry-After`, and no other 4xx is ever retried. Secret values are never read by an audit:
//! Secrets are listed as metadata, their `type` learned through `type=` field selectors, and
//! every listed object loses the last-applied annotation (which holds a Secret's values) before
//! it is kept anywhere.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http_body_util::BodyExt;
use kube::core::params::{DeleteParams, GetParams, ListParams, Preconditions, PropagationPolicy};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{Gap, KubeObject, Protects, Provider};

/// Page size of every list (`limit`).
pub const PAGE_SIZE: u32 = 500;
/// Lists in flight at once, unless `DRIFTSWEEP_KUBE_LISTS` says otherwise.
const DEFAULT_LISTS: usize = 6;
/// Requests per second on average, unless `DRIFTSWEEP_KUBE_QPS` says otherwise.
const DEFAULT_QPS: f64 = 50.0;
/// Requests at once before `DEFAULT_QPS` applies, unless `DRIFTSWEEP_KUBE_BURST` says otherwise.
const DEFAULT_BURST: f64 = 300.0;
/// Attempts per request when the server answers 429 or 5xx, or the connection fails.
const ATTEMPTS: u32 = 5;
/// The longest `Retry-After` honoured; a server asking for more is treated as failing.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The Secret types the decisions depend on, each learned with a `type=` field selector.
pub const SECRET_TYPES: &[&str] = &[
    "Opaque",
    "kubernetes.io/service-account-token",
    "kubernetes.io/dockercfg",
    "kubernetes.io/dockerconfigjson",
    "kubernetes.io/basic-auth",
    "kubernetes.io/ssh-auth",
    "kubernetes.io/tls",
    "bootstrap.kubernetes.io/token",
    "helm.sh/release.v1",
    "driftsweep.io/deploy.v1",
];

/// Where to find the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// A kubeconfig file; default: `KUBECONFIG`, `~/.kube/config`, then the in-cluster
    /// service account.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig; default: its current context.
    pub context: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot configure the Kubernetes client{}: {message}", source_hint(.kubeconfig))]
    Config {
        kubeconfig: Option<PathBuf>,
        message: String,
    },
    #[error("{method} {path}: {code} {reason}: {message}")]
    Api {
        method: String,
        path: String,
        code: u16,
        reason: String,
        message: String,
    },
    #[error("{method} {path}: {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
    },
    #[error("the API server does not serve {what}")]
    NotServed { what: String },
}

fn source_hint(kubeconfig: &Option<PathBuf>) -> String {
    match kubeconfig {
        Some(path) => format!(" from `{}`", path.display()),
        None => String::new(),
    }
}

impl ClusterError {
    /// The HTTP status, when the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClusterError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// One kind of object and where the API serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl KindInfo {
    fn known(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        KindInfo {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespaced,
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The collection path: all namespaces when `namespace` is `None`.
    pub fn collection(&self, namespace: Option<&str>) -> String {
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{}/namespaces/{ns}/{}", self.prefix(), self.plural),
            None => format!("{}/{}", self.prefix(), self.plural),
        }
    }

    /// `plural.group`, as RBAC and file names spell a resource.
    pub fn resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// The kinds driftsweep knows without asking discovery.
pub fn known_kind(api_version: &str, kind: &str) -> Option<KindInfo> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    KNOWN
        .iter()
        .find(|k| k.2 == kind && k.0 == group && k.1 == version)
        .map(|k| KindInfo::known(k.0, k.1, k.2, k.3, k.4))
}

/// Kinds by the name driftsweep uses for them (the preferred version).
pub fn kind_named(kind: &str) -> Option<KindInfo> {
    KNOWN
        .iter()
        .find(|k| k.2 == kind)
        .map(|k| KindInfo::known(k.0, k.1, k.2, k.3, k.4))
}

const KNOWN: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "Namespace", "namespaces", false),
    ("", "v1", "ConfigMap", "configmaps", true),
    ("", "v1", "Secret", "secrets", true),
    ("", "v1", "ServiceAccount", "serviceaccounts", true),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    ("", "v1", "Pod", "pods", true),
    (
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        true,
    ),
    ("", "v1", "Service", "services", true),
    ("apps", "v1", "Deployment", "deployments", true),
    ("apps", "v1", "StatefulSet", "statefulsets", true),
    ("apps", "v1", "DaemonSet", "daemonsets", true),
    ("apps", "v1", "ReplicaSet", "replicasets", true),
    ("batch", "v1", "Job", "jobs", true),
    ("batch", "v1", "CronJob", "cronjobs", true),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", true),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    ("coordination.k8s.io", "v1", "Lease", "leases", true),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("", "v1", "PersistentVolume", "persistentvolumes", false),
    (
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
    ),
    (
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        false,
    ),
];

/// What keeps a Service in use from outside its namespace: admission webhooks and aggregated
/// APIs call it (deleting one a `Fail` webhook calls blocks writes to the whole cluster).
pub const SERVICE_CALLERS: &[&str] = &[
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
];

/// What a namespace's backup holds: every namespaced kind driftsweep knows but Leases
/// (coordination state, re-made by their holders; the read role does not grant them).
pub fn content_kinds() -> Vec<KindInfo> {
    KNOWN
        .iter()
        .filter(|k| k.4 && k.2 != "Lease")
        .map(|k| KindInfo::known(k.0, k.1, k.2, k.3, k.4))
        .collect()
}

/// Kinds whose objects prove another object is in use: Pods and what makes Pods (the
/// snapshot's reference kinds: image and volume references), plus Ingresses (TLS Secrets) and
/// role bindings (ServiceAccounts).
pub fn reference_kinds() -> impl Iterator<Item = &'static str> {
    super::snapshot::REFERENCE_KINDS.iter().copied().chain([
        "Ingress",
        "RoleBinding",
        "ClusterRoleBinding",
    ])
}

/// A token bucket: up to `burst` requests at once, then `qps` a second on average, as
/// client-go's and kubectl's limiters do (kubectl: 50 a second, bursts of 300). A run's
/// listing (a few hundred pages even at 100,000 objects) goes at the server's pace; a loop of
/// requests gone wrong is still held to `qps`. The server's own limit is honoured apart from
/// this: a 429 is retried after its `Retry-After`.
struct RateLimiter {
    qps: f64,
    burst: f64,
    /// Tokens in the bucket, and when it was last counted.
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    fn new(qps: f64, burst: f64) -> Self {
        let valid = |v: f64, default: f64| if v.is_finite() && v > 0.0 { v } else { default };
        let burst = valid(burst, DEFAULT_BURST).max(1.0);
        RateLimiter {
            qps: valid(qps, DEFAULT_QPS),
            burst,
            bucket: Mutex::new((burst, Instant::now())),
        }
    }

    async fn wait(&self) {
        let now = Instant::now();
        let delay = self.take(&mut *self.bucket.lock().await, now);
        if !delay.is_zero() {
            tokio::time::sleep_until(now + delay).await;
        }
    }

    /// Takes a token at `now` and answers how long its request must wait. The count goes
    /// negative while requests queue: each waits a further 1/qps.
    fn take(&self, bucket: &mut (f64, Instant), now: Instant) -> Duration {
        let (tokens, counted) = *bucket;
        let refilled = now.saturating_duration_since(counted).as_secs_f64() * self.qps;
        let tokens = (tokens + refilled).min(self.burst) - 1.0;
        *bucket = (tokens, now);
        if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / self.qps)
        }
    }
}

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    limiter: Arc<RateLimiter>,
    /// How long one request may take, answer and body (`DRIFTSWEEP_KUBE_TIMEOUT_SECONDS`).
    timeout: Duration,
    /// Lists in flight at once (`DRIFTSWEEP_KUBE_LISTS`).
    lists: usize,
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    AlreadyGone,
    /// Not deleted, and why (the object changed, is terminating, is protected).
    Skipped(String),
}

/// The object a plan names, as the plan saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeTarget {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// A target re-read and checked by a server-side dry run: safe to back up and delete.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub target: KubeTarget,
    info: KindInfo,
    /// The object as the API returns it now (a Secret's data included: for the backup only,
    /// never for a log or a report).
    pub object: Value,
}

impl Cluster {
    /// Connects with the kubeconfig or the in-cluster service account.
    pub async fn connect(options: &ClusterOptions) -> Result<Cluster, ClusterError> {
        let err = |message: String| ClusterError::Config {
            kubeconfig: options.kubeconfig.clone(),
            message,
        };
        let kube_options = kube::config::KubeConfigOptions {
            context: options.context.clone(),
            ..Default::default()
        };
        let mut config = match &options.kubeconfig {
            Some(path) => {
                let file = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                    err(format!("{e}\nhint: check the path given to `--kubeconfig`"))
                })?;
                kube::Config::from_custom_kubeconfig(file, &kube_options)
                    .await
                    .map_err(|e| err(e.to_string()))?
            }
            None if options.context.is_some() => kube::Config::from_kubeconfig(&kube_options)
                .await
                .map_err(|e| err(e.to_string()))?,
            None => kube::Config::infer().await.map_err(|e| {
                err(format!(
                    "{e}\nhint: pass `--kubeconfig`, set KUBECONFIG, or run in a pod with a service account"
                ))
            })?,
        };
        // A request (a list page) that takes longer than this fails (and is retried, then
        // reported). The connector's read timeout alone does not end a request whose server
        // holds the connection open and sends nothing, so `call` bounds each attempt too.
        let timeout = crate::settings::seconds_from_env("DRIFTSWEEP_KUBE_TIMEOUT_SECONDS", 60);
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(timeout);
        let client = kube::Client::try_from(config).map_err(|e| err(e.to_string()))?;
        let number = |name: &str, default: f64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(default)
        };
        let limiter = RateLimiter::new(
            number("DRIFTSWEEP_KUBE_QPS", DEFAULT_QPS),
            number("DRIFTSWEEP_KUBE_BURST", DEFAULT_BURST),
        );
        let lists = number("DRIFTSWEEP_KUBE_LISTS", DEFAULT_LISTS as f64);
        Ok(Cluster {
            client,
            limiter: Arc::new(limiter),
            timeout,
            // A nonsense setting falls back to the default rather than to no list at all.
            lists: if (1.0..=64.0).contains(&lists) {
                lists as usize
            } else {
                DEFAULT_LISTS
            },
        })
    }

    /// Sends one request; retries 429, 5xx and connection failures with backoff (honouring
    /// `Retry-After`), never another 4xx. Answers the JSON body of a 2xx.
    async fn call(&self, request: http::Request<Vec<u8>>) -> Result<Value, ClusterError> {
        let method = request.method().to_string();
        let path = request.uri().path().to_string();
        let bytes = self.call_bytes(request).await?;
        serde_json::from_slice(&bytes).map_err(|_| ClusterError::Transport {
            method,
            path,
            message: "the answer is not JSON".to_string(),
        })
    }

    /// The same, answering the body of a 2xx as bytes, for the caller to decode.
    async fn call_bytes(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<bytes::Bytes, ClusterError> {
        let (parts, body) = request.into_parts();
        let method = parts.method.to_string();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.path().to_string())
            .unwrap_or_default();
        // What the request log says of the query: the selectors and the page size, not the
        // continue token (long, and meaningless to a reader).
        let query: String = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.starts_with("continue="))
            .collect::<Vec<_>>()
            .join("&");
        let metadata_only = parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("PartialObjectMetadata"));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut builder = http::Request::builder()
                .method(parts.method.clone())
                .uri(parts.uri.clone());
            for (name, value) in &parts.headers {
                builder = builder.header(name, value);
            }
            let request = builder
                .body(kube::client::Body::from(body.clone()))
                .map_err(|e| ClusterError::Transport {
                    method: method.clone(),
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            self.limiter.wait().await;
            let attempted = tokio::time::timeout(self.timeout, async {
                let response = self.client.send(request).await?;
                let (head, body) = response.into_parts();
                Ok::<_, kube::Error>((head, body.collect().await.map(|c| c.to_bytes())))
            })
            .await;
            let answered = match attempted {
                Ok(answered) => answered,
                Err(_) => {
                    let error = ClusterError::Transport {
                        method: method.clone(),
                        path: path.clone(),
                        message: format!(
                            "no answer within {} s (DRIFTSWEEP_KUBE_TIMEOUT_SECONDS)",
                            self.timeout.as_secs()
                        ),
                    };
                    if attempt >= ATTEMPTS {
                        return Err(error);
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
            };
            let (retry_after, error) = match answered {
                Ok((head, body)) => {
                    let status = head.status;
                    let retry_after = head
                        .headers
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let bytes = match body {
                        Ok(bytes) => bytes,
                        Err(e) => {
                            let error = ClusterError::Transport {
                                method: method.clone(),
                                path: path.clone(),
                                message: format!("reading the response: {e}"),
                            };
                            if attempt >= ATTEMPTS {
                                return Err(error);
                            }
                            tokio::time::sleep(backoff(attempt)).await;
                            continue;
                        }
                    };
                    // One line per answered request (`DRIFTSWEEP_LOG=driftsweep::kube::request=debug`):
                    // how many requests a run makes, and of what, is read from these.
                    tracing::debug!(
                        target: "driftsweep::kube::request",
                        %method,
                        %path,
                        %query,
                        metadata_only,
                        status = status.as_u16(),
                        bytes = bytes.len(),
                        attempt,
                        "kubernetes request"
                    );
                    if status.is_success() {
                        return Ok(bytes);
                    }
                    let json: Option<Value> = serde_json::from_slice(&bytes).ok();
                    let error = api_error(&method, &path, status, json.as_ref());
                    let retryable =
                        status == http::StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if !retryable {
                        return Err(error);
                    }
                    let body_retry = json
                        .as_ref()
                        .and_then(|j| j.pointer("/details/retryAfterSeconds"))
                        .and_then(Value::as_u64)
                        .map(Duration::from_secs);
                    (retry_after.or(body_retry), error)
                }
                Err(e) => (
                    None,
                    ClusterError::Transport {
                        method: method.clone(),
                        path: path.clone(),
                        message: transport_message(&e),
                    },
                ),
            };
            if attempt >= ATTEMPTS || retry_after.is_some_and(|d| d > MAX_RETRY_AFTER) {
                return Err(error);
            }
            let wait = retry_after.unwrap_or_else(|| backoff(attempt));
            tracing::debug!(%method, %path, attempt, wait_ms = wait.as_millis() as u64, error = %error, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Every object of `info` in all namespaces, following `continue` to the last page.
    /// `metadata_only` lists `PartialObjectMetadata` (no Secret data leaves the server).
    pub async fn list(
        &self,
        info: &KindInfo,
        metadata_only: bool,
        field_selector: Option<&str>,
    ) -> Result<Vec<Value>, ListFailure> {
        self.list_in(info, None, metadata_only, field_selector)
            .await
    }

    /// The same, in one namespace (`None`: all).
    pub async fn list_in(
        &self,
        info: &KindInfo,
        namespace: Option<&str>,
        metadata_only: bool,
        field_selector: Option<&str>,
    ) -> Result<Vec<Value>, ListFailure> {
        let mut items = Vec::new();
        self.list_each(info, namespace, metadata_only, field_selector, |item| {
            items.push(item);
            Ok(())
        })
        .await?;
        Ok(items)
    }

    /// Pages through a list, handing each item to `each` as its page arrives, so that a
    /// caller keeping less than the whole object never holds more than one page of JSON.
    /// An error from `each` ends the list as a failure.
    pub async fn list_each(
        &self,
        info: &KindInfo,
        namespace: Option<&str>,
        metadata_only: bool,
        field_selector: Option<&str>,
        mut each: impl FnMut(Value) -> Result<(), String>,
    ) -> Result<(), ListFailure> {
        self.list_pages(info, namespace, metadata_only, field_selector, |bytes| {
            let items = generic_page(bytes)?;
            let count = items.len();
            for item in items {
                each(item)?;
            }
            Ok(count)
        })
        .await
    }

    /// Pages through a list, handing each page's body to `page`, which decodes it and answers
    /// how many items it held. The next page is asked for before this one is decoded (its
    /// token is at the head of the body), so the server's time and ours overlap; the
    /// requests are the same, one per page. An error from `page` ends the list as a failure.
    async fn list_pages(
        &self,
        info: &KindInfo,
        namespace: Option<&str>,
        metadata_only: bool,
        field_selector: Option<&str>,
        mut page: impl FnMut(&[u8]) -> Result<usize, String>,
    ) -> Result<(), ListFailure> {
        let request = kube::core::Request::new(info.collection(namespace));
        let failure = |seen: usize, message: String| ListFailure {
            seen,
            error: ClusterError::Transport {
                method: "GET".to_string(),
                path: info.collection(None),
                message,
            },
        };
        let fetch = |token: Option<String>, seen: usize| {
            let mut params = ListParams::default().limit(PAGE_SIZE);
            if let Some(selector) = field_selector {
                params = params.fields(selector);
            }
            if let Some(t) = &token {
                params = params.continue_token(t);
            }
            let built = if metadata_only {
                request.list_metadata(&params)
            } else {
                request.list(&params)
            };
            async move {
                let built = built.map_err(|e| failure(seen, e.to_string()))?;
                self.call_bytes(built)
                    .await
                    .map_err(|error| ListFailure { seen, error })
            }
        };
        let mut seen = 0;
        let mut body = fetch(None, seen).await?;
        loop {
            let next = page_token(&body).map_err(|message| failure(seen, message))?;
            let Some(token) = next else {
                page(&body).map_err(|message| failure(seen, message))?;
                return Ok(());
            };
            // The yield lets the runtime's one thread write the next request before it
            // decodes this page (without it the request waited for the decode, 2 ms a page).
            let (fetched, decoded) = futures::join!(fetch(Some(token), seen), async {
                tokio::task::yield_now().await;
                page(&body)
            });
            seen += decoded.map_err(|message| failure(seen, message))?;
            // The next page failed after this one was read: say so in the count.
            body = fetched.map_err(|f| ListFailure { seen, ..f })?;
        }
    }

    /// Where the API serves `api_version`/`kind`: the built-in table, else discovery.
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<KindInfo, ClusterError> {
        if let Some(info) = known_kind(api_version, kind) {
            return Ok(info);
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let path = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let request =
            http::Request::get(&path)
                .body(Vec::new())
                .map_err(|e| ClusterError::Transport {
                    method: "GET".to_string(),
                    path: path.clone(),
                    message: e.to_string(),
                })?;
        let list = match self.call(request).await {
            Err(e) if e.code() == Some(404) => {
                return Err(ClusterError::NotServed {
                    what: api_version.to_string(),
                });
            }
            other => other?,
        };
        list.get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|r| {
                r.get("kind").and_then(Value::as_str) == Some(kind)
                    && r.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| !n.contains('/'))
            })
            .map(|r| KindInfo {
                group: group.to_string(),
                version: version.to_string(),
                kind: kind.to_string(),
                plural: r
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                namespaced: r.get("namespaced").and_then(Value::as_bool).unwrap_or(true),
            })
            .ok_or_else(|| ClusterError::NotServed {
                what: format!("{kind} in {api_version}"),
            })
    }

    /// Re-reads a planned object and checks, with a server-side dry run, that deleting it
    /// exactly as reviewed would succeed. `Err(outcome)` when it must not be deleted.
    pub async fn prepare_delete(
        &self,
        target: &KubeTarget,
    ) -> Result<Result<Prepared, DeleteOutcome>, ClusterError> {
        let info = self.resolve(&target.api_version, &target.kind).await?;
        let (Some(uid), Some(resource_version)) = (&target.uid, &target.resource_version) else {
            return Ok(Err(DeleteOutcome::Skipped(
                "the plan does not record the object's uid and resourceVersion; review a new dry run"
                    .to_string(),
            )));
        };
        let request = kube::core::Request::new(info.collection(target.namespace.as_deref()));
        let get = request
            .get(&target.name, &GetParams::default())
            .map_err(|e| build_error(&info, e))?;
        let object = match self.call(get).await {
            Err(e) if e.code() == Some(404) => return Ok(Err(DeleteOutcome::AlreadyGone)),
            other => other?,
        };
        let now_uid = object.pointer("/metadata/uid").and_then(Value::as_str);
        if now_uid != Some(uid.as_str()) {
            return Ok(Err(DeleteOutcome::Skipped(format!(
                "re-created since review: uid is now {} (was {uid})",
                now_uid.unwrap_or("unknown")
            ))));
        }
        let now_version = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        if now_version != Some(resource_version.as_str()) {
            return Ok(Err(DeleteOutcome::Skipped(format!(
                "changed since review: resourceVersion is now {} (was {resource_version})",
                now_version.unwrap_or("unknown")
            ))));
        }
        if object
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
        {
            return Ok(Err(DeleteOutcome::Skipped(
                "already terminating".to_string(),
            )));
        }
        let dry_run = delete_params(&info, uid, resource_version).dry_run();
        let delete = request
            .delete(&target.name, &dry_run)
            .map_err(|e| build_error(&info, e))?;
        match self.call(delete).await {
            Ok(_) => Ok(Ok(Prepared {
                target: target.clone(),
                info,
                object,
            })),
            Err(e) => match e.code() {
                Some(404) => Ok(Err(DeleteOutcome::AlreadyGone)),
                Some(409) => Ok(Err(DeleteOutcome::Skipped(format!(
                    "the server's dry run refused: {}",
                    message_of(&e)
                )))),
                _ => Err(e),
            },
        }
    }

    /// Deletes a prepared object with preconditions on its uid and resourceVersion.
    pub async fn delete(&self, prepared: &Prepared) -> Result<DeleteOutcome, ClusterError> {
        let target = &prepared.target;
        let (Some(uid), Some(resource_version)) = (&target.uid, &target.resource_version) else {
            return Ok(DeleteOutcome::Skipped(
                "the plan does not record the object's uid and resourceVersion".to_string(),
            ));
        };
        let info = &prepared.info;
        let request = kube::core::Request::new(info.collection(target.namespace.as_deref()));
        let delete = request
            .delete(&target.name, &delete_params(info, uid, resource_version))
            .map_err(|e| build_error(info, e))?;
        match self.call(delete).await {
            Ok(_) => Ok(DeleteOutcome::Deleted),
            Err(e) => match e.code() {
                Some(404) => Ok(DeleteOutcome::AlreadyGone),
                Some(409) => Ok(DeleteOutcome::Skipped(format!(
                    "changed since review: {}",
                    message_of(&e)
                ))),
                // No answer (a cut connection, a timeout): the server may have deleted it
                // all the same. A re-read tells, so the report says what happened.
                None if matches!(e, ClusterError::Transport { .. }) => {
                    match self.exists(target).await {
                        Ok(false) => Ok(DeleteOutcome::Deleted),
                        _ => Err(e),
                    }
                }
                _ => Err(e),
            },
        }
    }

    /// Asks `/version` (open to every client): one clear error when the cluster cannot be
    /// reached, instead of one per list.
    pub async fn probe(&self) -> Result<String, ClusterError> {
        let request = http::Request::get("/version")
            .body(Vec::new())
            .map_err(|e| ClusterError::Transport {
                method: "GET".to_string(),
                path: "/version".to_string(),
                message: e.to_string(),
            })?;
        let version = self.call(request).await?;
        Ok(version
            .get("gitVersion")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string())
    }

    /// Whether the object still exists under the reviewed uid (`false` when gone or re-created).
    pub async fn exists(&self, target: &KubeTarget) -> Result<bool, ClusterError> {
        let info = self.resolve(&target.api_version, &target.kind).await?;
        let request = kube::core::Request::new(info.collection(target.namespace.as_deref()));
        let get = request
            .get(&target.name, &GetParams::default())
            .map_err(|e| build_error(&info, e))?;
        match self.call(get).await {
            Ok(object) => Ok(target.uid.is_none()
                || object.pointer("/metadata/uid").and_then(Value::as_str)
                    == target.uid.as_deref()),
            Err(e) if e.code() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every object in `namespace` of the namespaced kinds driftsweep knows, in full (Secrets
    /// with their data): what a namespace's backup holds before the namespace is deleted.
    pub async fn namespace_contents(&self, namespace: &str) -> Result<Vec<Value>, ClusterError> {
        let mut out = Vec::new();
        for info in content_kinds() {
            let mut items = self
                .list_in(&info, Some(namespace), false, None)
                .await
                .map_err(|f| f.error)?;
            let api_version = info.api_version();
            for item in &mut items {
                complete(item, &api_version, &info.kind);
            }
            out.extend(items);
        }
        Ok(out)
    }

    /// Re-reads, dry-runs and deletes one object: the whole primitive.
    pub async fn delete_object(&self, target: &KubeTarget) -> Result<DeleteOutcome, ClusterError> {
        match self.prepare_delete(target).await? {
            Ok(prepared) => self.delete(&prepared).await,
            Err(outcome) => Ok(outcome),
        }
    }

    /// Whether this client's account may `verb` objects of `info` in `namespace` (in every
    /// namespace when `None`), asked with a SelfSubjectAccessReview: RBAC's own answer, which
    /// every authenticated account may ask for itself.
    pub async fn can(
        &self,
        verb: &str,
        info: &KindInfo,
        namespace: Option<&str>,
    ) -> Result<bool, ClusterError> {
        let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
        let body = serde_json::json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {
                "verb": verb,
                "group": info.group,
                "resource": info.plural,
                "namespace": namespace.filter(|_| info.namespaced).unwrap_or(""),
            }},
        });
        let request = http::Request::post(path)
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes())
            .map_err(|e| ClusterError::Transport {
                method: "POST".to_string(),
                path: path.to_string(),
                message: e.to_string(),
            })?;
        let review = self.call(request).await?;
        Ok(review.pointer("/status/allowed") == Some(&Value::Bool(true)))
    }

    /// Sends a request built elsewhere (restore, the Lease) through the same retry policy.
    pub async fn send_json(&self, request: http::Request<Vec<u8>>) -> Result<Value, ClusterError> {
        self.call(request).await
    }
}

fn delete_params(info: &KindInfo, uid: &str, resource_version: &str) -> DeleteParams {
    let propagation = if info.kind == "Namespace" && info.group.is_empty() {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    };
    DeleteParams {
        propagation_policy: Some(propagation),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: Some(resource_version.to_string()),
        }),
        ..DeleteParams::default()
    }
}

fn build_error(info: &KindInfo, e: kube::core::request::Error) -> ClusterError {
    ClusterError::Transport {
        method: "build".to_string(),
        path: info.collection(None),
        message: e.to_string(),
    }
}

fn message_of(e: &ClusterError) -> String {
    match e {
        ClusterError::Api { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn api_error(
    method: &str,
    path: &str,
    status: http::StatusCode,
    body: Option<&Value>,
) -> ClusterError {
    let text = |key: &str| {
        body.and_then(|b| b.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    ClusterError::Api {
        method: method.to_string(),
        path: path.to_string(),
        code: status.as_u16(),
        reason: text("reason")
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string()),
        message: text("message").unwrap_or_else(|| "no message".to_string()),
    }
}

fn transport_message(e: &kube::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(6)))
}

/// A list that stopped before its last page.
#[derive(Debug, Clone)]
pub struct ListFailure {
    /// Items read before it failed (they are not used).
    pub seen: usize,
    pub error: ClusterError,
}

impl ListFailure {
    fn describe(&self) -> String {
        match self.error.code() {
            Some(410) => format!(
                "the list expired mid-pagination (410 Gone) after {} objects, so it is incomplete: {}",
                self.seen, self.error
            ),
            _ if self.seen > 0 => format!(
                "failed after {} objects, so the list is incomplete: {}",
                self.seen, self.error
            ),
            _ => self.error.to_string(),
        }
    }
}

/// What a read of the cluster gave: objects, and the raw lists `snapshot` writes.
#[derive(Debug, Default)]
pub struct ClusterRead {
    pub objects: Vec<KubeObject>,
    /// `kubernetes/<resource>.json` → a `List` of the objects as read.
    pub lists: BTreeMap<String, Value>,
    /// The kinds listed completely.
    pub listed: Vec<String>,
    pub gaps: Vec<Gap>,
}

/// Which kinds a run lists, and what a failed list of each could protect.
pub struct ReadPlan {
    pub kinds: Vec<(String, String, Protects)>,
}

impl ReadPlan {
    /// Namespaces and the audited kinds (`audited`), every kind that proves use, and the kinds
    /// the repository's manifests define (`manifest_kinds`: apiVersion and kind).
    pub fn new(audited: &[&str], references: bool, manifest_kinds: &[(String, String)]) -> Self {
        let mut kinds: Vec<(String, String, Protects)> = Vec::new();
        let mut push = |api_version: String, kind: String, protects: Protects| {
            if !kinds
                .iter()
                .any(|(a, k, _)| a == &api_version && k == &kind)
            {
                kinds.push((api_version, kind, protects));
            }
        };
        for kind in audited {
            if let Some(info) = kind_named(kind) {
                push(
                    info.api_version(),
                    info.kind.clone(),
                    Protects::KubernetesKind(info.kind.clone()),
                );
            }
        }
        if references {
            for kind in reference_kinds() {
                if let Some(info) = kind_named(kind) {
                    push(
                        info.api_version(),
                        info.kind.clone(),
                        Protects::KubernetesReferences,
                    );
                }
            }
            // Pods name their ServiceAccount; the account list itself proves nothing.
            push(
                "v1".to_string(),
                "ServiceAccount".to_string(),
                Protects::KubernetesKind("ServiceAccount".to_string()),
            );
        }
        // What keeps the audited kinds beyond Pods: a failed list of it protects that kind.
        let audits = |kind: &str| audited.contains(&kind);
        if audits("Service") {
            for kind in SERVICE_CALLERS {
                if let Some(info) = kind_named(kind) {
                    push(
                        info.api_version(),
                        info.kind.clone(),
                        Protects::KubernetesKind("Service".to_string()),
                    );
                }
            }
        }
        if audits("PersistentVolume") {
            push(
                "v1".to_string(),
                "PersistentVolumeClaim".to_string(),
                Protects::KubernetesKind("PersistentVolume".to_string()),
            );
        }
        for (api_version, kind) in manifest_kinds {
            push(
                api_version.clone(),
                kind.clone(),
                Protects::KubernetesKind(kind.clone()),
            );
        }
        ReadPlan { kinds }
    }
}

/// Lists every kind of the plan, a few at a time, each page becoming records as it arrives.
/// A kind that fails is recorded as a gap protecting what it could have protected; its
/// partial items are dropped. `keep_lists` also keeps the objects as read, for `snapshot`
/// (an audit needs only the records: enforce re-reads every object before it deletes it).
pub async fn read(
    cluster: &Cluster,
    plan: &ReadPlan,
    deadlines: &Deadlines,
    keep_lists: bool,
) -> ClusterRead {
    let results: Vec<_> = futures::stream::iter(start_order(&plan.kinds))
        .map(|(api_version, kind, protects)| async move {
            // However the server behaves (a hang, a trickle, retries), a list ends by its own
            // deadline and by the run's: what is not read by then is a gap.
            let (budget, which) = deadlines.for_next_list();
            let listed = read_kind(cluster, api_version, kind, keep_lists);
            let result = match tokio::time::timeout(budget, listed).await {
                Ok(result) => result,
                Err(_) => Err(ReadError::Failed(format!(
                    "not read within {} s ({which}); nothing it could protect is deleted",
                    budget.as_secs()
                ))),
            };
            (api_version, kind, protects, result)
        })
        .buffer_unordered(cluster.lists)
        .collect()
        .await;
    let mut read = ClusterRead::default();
    let total: usize = results
        .iter()
        .filter_map(|(_, _, _, r)| r.as_ref().ok())
        .map(|listed| listed.objects.len())
        .sum();
    read.objects.reserve_exact(total);
    // The plan's order, whichever list finished first.
    let position = |api_version: &str, kind: &str| {
        plan.kinds
            .iter()
            .position(|(a, k, _)| a == api_version && k == kind)
    };
    let mut results = results;
    results.sort_by_key(|(api_version, kind, _, _)| position(api_version, kind));
    for (api_version, kind, protects, result) in results {
        match result {
            Ok(listed) => {
                read.objects.extend(listed.objects);
                read.listed.push(kind.clone());
                if let Some(values) = listed.values {
                    read.lists.insert(
                        listed.info.resource(),
                        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": values}),
                    );
                }
            }
            Err(ReadError::NotServed(e)) => read.gaps.push(Gap {
                provider: Provider::Kubernetes,
                what: format!("{kind} ({api_version})"),
                error: e.to_string(),
                protects: protects.clone(),
                failed: false,
            }),
            Err(ReadError::Failed(e)) => read.gaps.push(gap(kind, e, protects.clone())),
        }
    }
    read
}

/// How long reading may take: each list, and the whole run.
#[derive(Debug, Clone)]
pub struct Deadlines {
    pub list: Duration,
    /// When the run's reading must be done.
    pub run_ends: Instant,
}

impl Deadlines {
    /// `DRIFTSWEEP_LIST_DEADLINE_SECONDS` (default 120) per list and
    /// `DRIFTSWEEP_RUN_DEADLINE_SECONDS` (default 900) for all reading, from now.
    pub fn from_env() -> Deadlines {
        use crate::settings::seconds_from_env;
        Deadlines {
            list: seconds_from_env("DRIFTSWEEP_LIST_DEADLINE_SECONDS", 120),
            run_ends: Instant::now() + seconds_from_env("DRIFTSWEEP_RUN_DEADLINE_SECONDS", 900),
        }
    }

    /// The time the next list may take, and which deadline sets it.
    pub fn for_next_list(&self) -> (Duration, &'static str) {
        let left = self.run_left();
        if left < self.list {
            (left, "the run's deadline, DRIFTSWEEP_RUN_DEADLINE_SECONDS")
        } else {
            (
                self.list,
                "the list's deadline, DRIFTSWEEP_LIST_DEADLINE_SECONDS",
            )
        }
    }

    /// What is left of the run's reading time.
    pub fn run_left(&self) -> Duration {
        self.run_ends.saturating_duration_since(Instant::now())
    }
}

fn gap(kind: &str, error: String, protects: Protects) -> Gap {
    Gap {
        provider: Provider::Kubernetes,
        what: format!("{kind} in all namespaces"),
        error,
        protects,
        failed: true,
    }
}

enum ReadError {
    NotServed(ClusterError),
    Failed(String),
}

/// A Secret's type by its namespace and name, as the typed lists said.
type SecretTypeOf<'a> = dyn Fn(&str, &str) -> Option<String> + 'a;

/// One kind, read.
struct Listed {
    info: KindInfo,
    objects: Vec<KubeObject>,
    /// The objects as read (redacted), when the caller keeps them.
    values: Option<Vec<Value>>,
    /// The object the API returned that no record can be made of, named: the list's failure.
    unreadable: Option<String>,
}

impl Listed {
    fn new(info: KindInfo, keep_lists: bool) -> Listed {
        Listed {
            info,
            objects: Vec::new(),
            values: keep_lists.then(Vec::new),
            unreadable: None,
        }
    }

    /// Makes a record of one redacted item; an unreadable one is the whole list's failure,
    /// named.
    fn add(&mut self, item: Value) -> Result<(), String> {
        let record = match KubeObject::from_json(&item) {
            Ok(record) => record,
            Err(e) => {
                let name = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let message = format!(
                    "the API returned an unreadable {} `{name}`: {e}",
                    self.info.kind
                );
                self.unreadable = Some(message.clone());
                return Err(message);
            }
        };
        self.objects.push(record);
        if let Some(values) = &mut self.values {
            values.push(item);
        }
        Ok(())
    }

    /// Reads a page: straight into records when it is of a data kind and not kept
    /// (`decode`), else as generic JSON, each item made whole by `prepare` first.
    fn page(
        &mut self,
        bytes: &[u8],
        secret_type: Option<&SecretTypeOf<'_>>,
        mut prepare: impl FnMut(Value) -> Result<Value, String>,
    ) -> Result<usize, String> {
        let typed = self.values.is_none() && is_data_kind(&self.info);
        if typed {
            let api_version = self.info.api_version();
            let types = |ns: &str, name: &str| secret_type.and_then(|f| f(ns, name));
            if let Some(records) =
                super::decode::data_page(bytes, &api_version, &self.info.kind, types)
            {
                let count = records.len();
                self.objects.extend(records);
                return Ok(count);
            }
        }
        let items = match super::decode::items_without_managed_fields(bytes) {
            Some(items) => items,
            None => generic_page(bytes)?,
        };
        let count = items.len();
        for item in items {
            let item = prepare(item).inspect_err(|e| self.unreadable = Some(e.clone()))?;
            self.add(item)?;
        }
        Ok(count)
    }

    fn failure(&mut self, failure: ListFailure) -> ReadError {
        ReadError::Failed(self.unreadable.take().unwrap_or_else(|| failure.describe()))
    }
}

/// The order the lists start in: the kinds that hold most of a cluster's objects first, the
/// ConfigMaps ahead of all (on a cluster of tens of thousands of objects their list is the
/// longest chain of pages, the one the read waits for), then the plan's order. Only the start
/// changes: the results are put back in the plan's order.
fn start_order(kinds: &[(String, String, Protects)]) -> Vec<&(String, String, Protects)> {
    const LARGEST: &[(&str, &str)] = &[("v1", "ConfigMap"), ("v1", "Pod"), ("v1", "Secret")];
    let mut order: Vec<_> = kinds.iter().collect();
    // Stable: the other kinds keep the plan's order.
    order.sort_by_key(|(api_version, kind, _)| {
        LARGEST
            .iter()
            .position(|(a, k)| a == api_version && k == kind)
            .unwrap_or(LARGEST.len())
    });
    order
}

/// ConfigMaps and Secrets: most of a cluster's objects, of which a record reads little.
fn is_data_kind(info: &KindInfo) -> bool {
    info.group.is_empty() && (info.kind == "ConfigMap" || info.kind == "Secret")
}

async fn read_kind(
    cluster: &Cluster,
    api_version: &str,
    kind: &str,
    keep_lists: bool,
) -> Result<Listed, ReadError> {
    let info = match cluster.resolve(api_version, kind).await {
        Ok(info) => info,
        Err(e @ ClusterError::NotServed { .. }) => return Err(ReadError::NotServed(e)),
        Err(e) => return Err(ReadError::Failed(format!("discovery: {e}"))),
    };
    if info.kind == "Secret" && info.group.is_empty() {
        return read_secrets(cluster, info, keep_lists).await;
    }
    let api_version = info.api_version();
    let mut listed = Listed::new(info.clone(), keep_lists);
    let read = cluster
        .list_pages(&info, None, false, None, |bytes| {
            listed.page(bytes, None, |mut item| {
                complete(&mut item, &api_version, &info.kind);
                super::kubernetes::redact(&mut item);
                Ok(item)
            })
        })
        .await;
    match read {
        Ok(()) => Ok(listed),
        Err(f) => Err(listed.failure(f)),
    }
}

/// Secrets as metadata plus type: one metadata list per known type (a few at a time), then
/// one of all, each item made a record with its type as it arrives.
async fn read_secrets(
    cluster: &Cluster,
    info: KindInfo,
    keep_lists: bool,
) -> Result<Listed, ReadError> {
    let info = &info;
    let typed: Vec<_> = futures::stream::iter(SECRET_TYPES.iter().copied())
        .map(|secret_type| async move {
            let mut keys = Vec::new();
            cluster
                .list_pages(
                    info,
                    None,
                    true,
                    Some(&format!("type={secret_type}")),
                    |bytes| {
                        if let Some(page) = super::decode::key_page(bytes) {
                            let count = page.len();
                            keys.extend(page);
                            return Ok(count);
                        }
                        let items = generic_page(bytes)?;
                        let count = items.len();
                        keys.extend(items.iter().map(key_of));
                        Ok(count)
                    },
                )
                .await
                .map(|()| (secret_type, keys))
                .map_err(|f| {
                    ReadError::Failed(format!(
                        "listing Secrets of type {secret_type}: {}",
                        f.describe()
                    ))
                })
        })
        .buffer_unordered(cluster.lists)
        .collect()
        .await;
    let mut types: BTreeMap<(String, String), &str> = BTreeMap::new();
    for result in typed {
        let (secret_type, keys) = result?;
        for key in keys {
            types.insert(key, secret_type);
        }
    }
    let type_of = |namespace: &str, name: &str| {
        types
            .get(&(namespace.to_string(), name.to_string()))
            .map(|t| (*t).to_string())
    };
    let mut listed = Listed::new(info.clone(), keep_lists);
    let read = cluster
        .list_pages(info, None, true, None, |bytes| {
            listed.page(bytes, Some(&type_of), |item| {
                let Value::Object(mut item) = item else {
                    return Err("the API returned a Secret that is not an object".to_string());
                };
                let metadata = item.remove("metadata").unwrap_or(Value::Null);
                let mut secret = serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": metadata,
                });
                if let Some(t) = type_of(
                    secret
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    secret
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                ) {
                    secret["type"] = Value::String(t);
                }
                // Metadata-only lists still carry the last-applied annotation: the values again.
                super::kubernetes::redact(&mut secret);
                Ok(secret)
            })
        })
        .await;
    match read {
        Ok(()) => Ok(listed),
        Err(f) => Err(listed.failure(f)),
    }
}

/// A list page read as generic JSON: its items.
fn generic_page(bytes: &[u8]) -> Result<Vec<Value>, String> {
    let page: Value =
        serde_json::from_slice(bytes).map_err(|_| "the answer is not JSON".to_string())?;
    let Value::Object(mut page) = page else {
        return Err("the answer is not a list object".to_string());
    };
    match page.remove("items") {
        Some(Value::Array(items)) => Ok(items),
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(_) => Err("`items` is not an array".to_string()),
    }
}

/// Where the next page of a list starts (`metadata.continue`; none when empty or absent),
/// read without decoding the items: the reading stops at `metadata`, which the API server
/// writes before them (were it after, the items are skipped to reach it). The next request
/// waits for this, so it does not scan the page's megabytes first.
fn page_token(bytes: &[u8]) -> Result<Option<String>, String> {
    use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};

    /// Stops the reading once `metadata` is read: the rest of the page is the items.
    const READ: &str = "metadata read";

    struct Head<'a>(&'a mut Option<Option<String>>);

    impl<'de> Visitor<'de> for Head<'_> {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                if key == "metadata" {
                    let meta: Option<super::decode::PageMeta> = map.next_value()?;
                    *self.0 = Some(meta.and_then(|m| m.next));
                    return Err(de::Error::custom(READ));
                }
                map.next_value::<IgnoredAny>()?;
            }
            *self.0 = Some(None);
            Ok(())
        }
    }

    let mut token = None;
    let read = serde_json::Deserializer::from_slice(bytes).deserialize_map(Head(&mut token));
    match (token, read) {
        (Some(token), _) => Ok(token.filter(|t| !t.is_empty())),
        (None, Err(e)) => Err(format!("the answer is not a JSON list ({e})")),
        (None, Ok(())) => Ok(None),
    }
}

fn key_of(item: &Value) -> (String, String) {
    let text = |p: &str| {
        item.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (text("/metadata/namespace"), text("/metadata/name"))
}

/// List items omit `apiVersion` and `kind`; put them back so each item stands alone.
fn complete(item: &mut Value, api_version: &str, kind: &str) {
    if let Some(map) = item.as_object_mut() {
        map.insert(
            "apiVersion".to_string(),
            Value::String(api_version.to_string()),
        );
        map.insert("kind".to_string(), Value::String(kind.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_lets_a_burst_through_then_spaces_requests_at_its_rate() {
        let limiter = RateLimiter::new(10.0, 3.0);
        let start = Instant::now();
        let mut bucket = (3.0, start);
        let waits: Vec<Duration> = (0..5).map(|_| limiter.take(&mut bucket, start)).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(waits, [ms(0), ms(0), ms(0), ms(100), ms(200)]);
        // A long pause refills the bucket to its burst, no further: three at once again.
        let later = start + Duration::from_secs(60);
        let waits: Vec<Duration> = (0..4).map(|_| limiter.take(&mut bucket, later)).collect();
        assert_eq!(waits, [ms(0), ms(0), ms(0), ms(100)]);
        // Nonsense settings fall back to the defaults rather than to no limit.
        let fallback = RateLimiter::new(f64::NAN, -1.0);
        assert_eq!((fallback.qps, fallback.burst), (DEFAULT_QPS, DEFAULT_BURST));
    }

    #[test]
    fn reference_lists_protect_everything_they_could_prove_in_use() {
        let plan = ReadPlan::new(&["ConfigMap", "Secret"], true, &[]);
        let pods = plan.kinds.iter().find(|(_, k, _)| k == "Pod").unwrap();
        assert_eq!(pods.2, Protects::KubernetesReferences);
        let ingress = plan.kinds.iter().find(|(_, k, _)| k == "Ingress").unwrap();
        assert_eq!(ingress.2, Protects::KubernetesReferences);
        let cm = plan
            .kinds
            .iter()
            .find(|(_, k, _)| k == "ConfigMap")
            .unwrap();
        assert_eq!(cm.2, Protects::KubernetesKind("ConfigMap".to_string()));
    }

    #[test]
    fn the_largest_kinds_start_first_and_the_rest_keep_the_plan_order() {
        let plan = ReadPlan::new(&["Namespace", "Secret", "ConfigMap", "Service"], true, &[]);
        let order: Vec<&str> = start_order(&plan.kinds)
            .into_iter()
            .map(|(_, kind, _)| kind.as_str())
            .collect();
        assert_eq!(&order[..3], ["ConfigMap", "Pod", "Secret"]);
        let rest: Vec<&str> = plan
            .kinds
            .iter()
            .map(|(_, kind, _)| kind.as_str())
            .filter(|k| !["ConfigMap", "Pod", "Secret"].contains(k))
            .collect();
        assert_eq!(&order[3..], rest.as_slice());
        assert_eq!(order.len(), plan.kinds.len());
    }

    #[test]
    fn manifest_kinds_are_listed_once() {
        let plan = ReadPlan::new(
            &["ConfigMap"],
            false,
            &[
                ("v1".to_string(), "ConfigMap".to_string()),
                (
                    "monitoring.coreos.com/v1".to_string(),
                    "ServiceMonitor".to_string(),
                ),
            ],
        );
        let kinds: Vec<&str> = plan.kinds.iter().map(|(_, k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["ConfigMap", "ServiceMonitor"]);
    }

    #[test]
    fn paths_follow_the_api_layout() {
        let ns = kind_named("Namespace").unwrap();
        assert_eq!(ns.collection(Some("x")), "/api/v1/namespaces");
        let deploy = kind_named("Deployment").unwrap();
        assert_eq!(deploy.collection(None), "/apis/apps/v1/deployments");
        assert_eq!(
            deploy.collection(Some("aia")),
            "/apis/apps/v1/namespaces/aia/deployments"
        );
        assert_eq!(deploy.resource(), "deployments.apps");
    }

    #[test]
    fn namespaces_are_deleted_in_the_foreground() {
        let ns = kind_named("Namespace").unwrap();
        let p = delete_params(&ns, "u", "1");
        assert!(matches!(
            p.propagation_policy,
            Some(PropagationPolicy::Foreground)
        ));
        let cm = kind_named("ConfigMap").unwrap();
        let p = delete_params(&cm, "u", "1");
        assert!(matches!(
            p.propagation_policy,
            Some(PropagationPolicy::Background)
        ));
        assert_eq!(p.preconditions.unwrap().uid.as_deref(), Some("u"));
    }

    #[test]
    fn the_next_page_is_read_from_the_head_wherever_the_server_puts_it() {
        let head = br#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"abc"},"items":[{"metadata":{"name":"a"}}]}"#;
        assert_eq!(page_token(head).unwrap().as_deref(), Some("abc"));
        // After the items: they are skipped to reach it.
        let tail = br#"{"items":[{"metadata":{"name":"a","continue":"no"}}],"metadata":{"continue":"xyz"}}"#;
        assert_eq!(page_token(tail).unwrap().as_deref(), Some("xyz"));
        // The last page: no token, an empty one, or no metadata at all.
        for last in [
            &br#"{"metadata":{"resourceVersion":"9"},"items":[]}"#[..],
            br#"{"metadata":{"continue":""},"items":[]}"#,
            br#"{"items":[]}"#,
        ] {
            assert_eq!(page_token(last).unwrap(), None);
        }
        // Not a list: an error, never "the last page" (which would end the list early).
        for bad in [
            &b"<html>"[..],
            b"[1,2]",
            br#"{"items":[}"#,
            br#"{"metadata":{"continue":7}}"#,
        ] {
            assert!(page_token(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_page_read_without_managed_fields_is_the_page_as_redacted() {
        let page = serde_json::json!({"kind": "PodList", "apiVersion": "v1",
        "metadata": {"continue": "t"},
        "items": [
            {"metadata": {"name": "a", "namespace": "n", "labels": {"app": "x"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:x": {}}}}]},
             "spec": {"containers": [{"name": "c", "image": "i:1"}]},
             "status": {"phase": "Running"}},
            {"metadata": {"name": "b", "namespace": "n"}, "spec": {}}
        ]});
        let bytes = serde_json::to_vec(&page).unwrap();
        let fast = super::super::decode::items_without_managed_fields(&bytes).unwrap();
        let mut generic = generic_page(&bytes).unwrap();
        for item in &mut generic {
            super::super::kubernetes::redact(item);
        }
        assert_eq!(fast, generic);
        assert!(fast[0].pointer("/metadata/managedFields").is_none());
        assert_eq!(fast[0]["status"]["phase"], "Running");
        // What it does not expect it leaves to the generic reader, which names the problem.
        for odd in [
            serde_json::json!({"items": [{"metadata": "not an object"}]}),
            serde_json::json!({"items": ["not an object"]}),
            serde_json::json!({"items": {"not": "a list"}}),
        ] {
            let bytes = serde_json::to_vec(&odd).unwrap();
            assert!(
                super::super::decode::items_without_managed_fields(&bytes).is_none(),
                "{odd}"
            );
        }
        assert_eq!(
            super::super::decode::items_without_managed_fields(br#"{"items":null}"#),
            Some(Vec::new())
        );
    }
}
