//! The registry API client: Docker Registry HTTP API v2 / OCI distribution, with Google's
//! `tags/list` extension where the registry gives it.
//!
//! Reading a repository yields the same `tags/list` body a snapshot stores (Google's extension
//! synthesised from manifests and config blobs when the registry lacks it) plus the index
//! manifests, so a live audit and its replay go through one parser and decide alike.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::stream::{self, StreamExt};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, LINK, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::INDEX_MEDIA_TYPES;

/// Every manifest type we read. Without both Docker and OCI types a distribution registry
/// converts to schema1 and reports another digest.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Requests in flight per repository when manifests must be read one by one.
const CONCURRENCY: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("`{url}`: {message}")]
    Http { url: String, message: String },
    #[error("`{url}`: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("`{url}`: unexpected response: {message}")]
    Body { url: String, message: String },
}

/// How to authenticate: basic credentials (also used to get bearer tokens), an OAuth access
/// token for Google registries, or none.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub basic: Option<(String, String)>,
    /// An OAuth access token, sent as `Bearer` to Google registries only (Artifact Registry,
    /// `gcr.io`); never to any other host.
    pub google_token: Option<String>,
}

impl Credentials {
    /// `DRIFTSWEEP_REGISTRY_USERNAME` / `DRIFTSWEEP_REGISTRY_PASSWORD`.
    pub fn from_env() -> Self {
        let user = std::env::var("DRIFTSWEEP_REGISTRY_USERNAME").ok();
        let password = std::env::var("DRIFTSWEEP_REGISTRY_PASSWORD").ok();
        Credentials {
            basic: user.zip(password),
            google_token: None,
        }
    }
}

/// A repository as read from the registry: the body a snapshot stores, and index manifests.
#[derive(Debug, Clone)]
pub struct RepositoryListing {
    pub name: String,
    pub tag_list: Value,
    pub index_manifests: BTreeMap<String, Value>,
}

pub struct RegistryClient {
    http: reqwest::Client,
    plain_http_hosts: Vec<String>,
    credentials: Credentials,
    /// Bearer tokens by (host, scope).
    tokens: Mutex<HashMap<(String, String), String>>,
    requests: AtomicUsize,
}

/// `host/path` split at the first slash.
pub fn split_repository(repository: &str) -> (&str, &str) {
    repository.split_once('/').unwrap_or((repository, ""))
}

fn http_error(url: &str, e: reqwest::Error) -> RegistryError {
    RegistryError::Http {
        url: url.to_string(),
        message: format!("{e}"),
    }
}

/// The `next` URL of a `Link: <...>; rel="next"` header, made absolute.
fn next_link(headers: &HeaderMap, base: &str) -> Option<String> {
    let link = headers.get(LINK)?.to_str().ok()?;
    let target = link
        .split(';')
        .next()?
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    if !link.contains("rel=\"next\"") && !link.contains("rel=next") {
        return None;
    }
    if target.starts_with("http://") || target.starts_with("https://") {
        Some(target.to_string())
    } else {
        Some(format!("{base}{target}"))
    }
}

/// Parses `Bearer realm="…",service="…",scope="…"`.
fn challenge(header: &str) -> Option<(String, BTreeMap<String, String>)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, remaining) = if let Some(stripped) = after.strip_prefix('"') {
            let end = stripped.find('"')?;
            (
                &stripped[..end],
                stripped[end + 1..].trim_start_matches([',', ' ']),
            )
        } else {
            match after.split_once(',') {
                Some((v, r)) => (v, r.trim_start()),
                None => (after, ""),
            }
        };
        params.insert(key.trim().to_ascii_lowercase(), value.to_string());
        rest = remaining.trim();
    }
    Some((scheme.to_ascii_lowercase(), params))
}

impl RegistryClient {
    pub fn new(
        plain_http_hosts: &[String],
        credentials: Credentials,
    ) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("driftsweep/", env!("CARGO_PKG_VERSION")))
            // A request that takes longer fails (and is retried, then reported).
            .timeout(crate::settings::seconds_from_env(
                "DRIFTSWEEP_REGISTRY_TIMEOUT_SECONDS",
                60,
            ))
            .build()
            .map_err(|e| http_error("(client)", e))?;
        Ok(Self {
            http,
            plain_http_hosts: plain_http_hosts.to_vec(),
            credentials,
            tokens: Mutex::new(HashMap::new()),
            requests: AtomicUsize::new(0),
        })
    }

    /// Requests sent so far (for benchmarks and tests).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    fn base(&self, host: &str) -> String {
        let scheme = if self.plain_http_hosts.iter().any(|h| h == host) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}")
    }

    /// Sends a request, answering one authentication challenge (basic or bearer token).
    async fn send(
        &self,
        method: Method,
        url: &str,
        host: &str,
        scope: &str,
        accept: &str,
    ) -> Result<Response, RegistryError> {
        let token_key = (host.to_string(), scope.to_string());
        let cached = self
            .tokens
            .lock()
            .ok()
            .and_then(|t| t.get(&token_key).cloned());
        let build = |auth: Option<String>| {
            let mut req = self
                .http
                .request(method.clone(), url)
                .header(ACCEPT, accept);
            if let Some(a) = auth {
                req = req.header(AUTHORIZATION, a);
            }
            req
        };
        let initial = cached.map(|t| format!("Bearer {t}")).or_else(|| {
            self.credentials
                .google_token
                .as_ref()
                .filter(|_| is_google_host(host))
                .map(|t| format!("Bearer {t}"))
        });
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = build(initial)
            .send()
            .await
            .map_err(|e| http_error(url, e))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let header = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let auth = match challenge(&header) {
            Some((scheme, _)) if scheme == "basic" => match &self.credentials.basic {
                Some((u, p)) => {
                    use base64::Engine as _;
                    Some(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                    ))
                }
                None => None,
            },
            Some((scheme, params)) if scheme == "bearer" => {
                let token = self.fetch_token(&params, scope).await?;
                if let Ok(mut t) = self.tokens.lock() {
                    t.insert(token_key, token.clone());
                }
                Some(format!("Bearer {token}"))
            }
            _ => None,
        };
        let Some(auth) = auth else {
            return Ok(response);
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        build(Some(auth))
            .send()
            .await
            .map_err(|e| http_error(url, e))
    }

    async fn fetch_token(
        &self,
        params: &BTreeMap<String, String>,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let realm = params.get("realm").cloned().unwrap_or_default();
        let mut req = self.http.get(&realm);
        let mut query = vec![("scope", scope.to_string())];
        if let Some(service) = params.get("service") {
            query.push(("service", service.clone()));
        }
        req = req.query(&query);
        if let Some((u, p)) = &self.credentials.basic {
            req = req.basic_auth(u, Some(p));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = req.send().await.map_err(|e| http_error(&realm, e))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| http_error(&realm, e))?;
        if !status.is_success() {
            return Err(RegistryError::Status {
                url: realm,
                status: status.as_u16(),
                body: body.to_string(),
            });
        }
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(RegistryError::Body {
                url: realm,
                message: "the token response has no `token`".to_string(),
            })
    }

    async fn get_json(
        &self,
        url: &str,
        host: &str,
        scope: &str,
        accept: &str,
    ) -> Result<(Value, HeaderMap), RegistryError> {
        let response = self.send(Method::GET, url, host, scope, accept).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(|e| http_error(url, e))?;
        if !status.is_success() {
            return Err(RegistryError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                body: text.chars().take(300).collect(),
            });
        }
        let value = serde_json::from_str(&text).map_err(|e| RegistryError::Body {
            url: url.to_string(),
            message: format!("not JSON: {e}"),
        })?;
        Ok((value, headers))
    }

    /// Every repository under `root` (`host/path`), from `_catalog` with pagination.
    pub async fn catalog(&self, root: &str) -> Result<Vec<String>, RegistryError> {
        let (host, prefix) = split_repository(root);
        let base = self.base(host);
        let mut url = format!("{base}/v2/_catalog?n=1000");
        let mut out = Vec::new();
        loop {
            let (body, headers) = self
                .get_json(&url, host, "registry:catalog:*", "application/json")
                .await?;
            for name in body
                .get("repositories")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = name.as_str()
                    && (prefix.is_empty()
                        || name == prefix
                        || name.starts_with(&format!("{prefix}/")))
                {
                    out.push(format!("{host}/{name}"));
                }
            }
            match next_link(&headers, &base) {
                Some(next) => url = next,
                None => break,
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Reads one repository.
    pub async fn read_repository(
        &self,
        repository: &str,
    ) -> Result<RepositoryListing, RegistryError> {
        let (host, path) = split_repository(repository);
        let base = self.base(host);
        let scope = format!("repository:{path}:pull");
        let mut url = format!("{base}/v2/{path}/tags/list");
        let mut tags: Vec<String> = Vec::new();
        let mut google: serde_json::Map<String, Value> = serde_json::Map::new();
        let mut extension = false;
        loop {
            let (body, headers) = self
                .get_json(&url, host, &scope, "application/json")
                .await?;
            for t in body
                .get("tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(t) = t.as_str() {
                    tags.push(t.to_string());
                }
            }
            if let Some(Value::Object(m)) = body.get("manifest") {
                extension = true;
                google.extend(m.clone());
            }
            match next_link(&headers, &base) {
                Some(next) => url = next,
                None => break,
            }
        }
        tags.sort();
        tags.dedup();
        if !extension {
            google = self.describe_tags(&base, host, path, &scope, &tags).await?;
        }
        // Index manifests, so that children live and die with their index.
        let indexes: Vec<String> = google
            .iter()
            .filter(|(_, info)| {
                info.get("mediaType")
                    .and_then(Value::as_str)
                    .is_some_and(|m| INDEX_MEDIA_TYPES.contains(&m))
            })
            .map(|(d, _)| d.clone())
            .collect();
        let (base_ref, scope_ref) = (&base, &scope);
        let fetched: Vec<Result<(String, Value), RegistryError>> = stream::iter(indexes)
            .map(|digest| async move {
                let url = format!("{base_ref}/v2/{path}/manifests/{digest}");
                let (body, _) = self
                    .get_json(&url, host, scope_ref, MANIFEST_ACCEPT)
                    .await?;
                Ok((digest, body))
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut index_manifests = BTreeMap::new();
        for f in fetched {
            let (d, body) = f?;
            index_manifests.insert(d, body);
        }
        Ok(RepositoryListing {
            name: repository.to_string(),
            tag_list: json!({"name": path, "tags": tags, "manifest": google}),
            index_manifests,
        })
    }

    /// Google's extension, synthesised: HEAD per tag for its digest, then per unique digest
    /// its manifest and (for images) its config blob for the `created` time.
    async fn describe_tags(
        &self,
        base: &str,
        host: &str,
        path: &str,
        scope: &str,
        tags: &[String],
    ) -> Result<serde_json::Map<String, Value>, RegistryError> {
        let heads: Vec<Result<(String, String), RegistryError>> =
            stream::iter(tags.iter().cloned())
                .map(|tag| async move {
                    let url = format!("{base}/v2/{path}/manifests/{tag}");
                    let response = self
                        .send(Method::HEAD, &url, host, scope, MANIFEST_ACCEPT)
                        .await?;
                    if !response.status().is_success() {
                        return Err(RegistryError::Status {
                            url,
                            status: response.status().as_u16(),
                            body: String::new(),
                        });
                    }
                    let digest = response
                        .headers()
                        .get("docker-content-digest")
                        .and_then(|h| h.to_str().ok())
                        .map(str::to_string)
                        .ok_or(RegistryError::Body {
                            url: url.clone(),
                            message: "no Docker-Content-Digest header".to_string(),
                        })?;
                    Ok((tag, digest))
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        let mut by_digest: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for h in heads {
            let (tag, digest) = h?;
            by_digest.entry(digest).or_default().push(tag);
        }
        let described: Vec<Result<(String, Value), RegistryError>> = stream::iter(by_digest)
            .map(|(digest, mut tags)| async move {
                tags.sort();
                let url = format!("{base}/v2/{path}/manifests/{digest}");
                let (manifest, headers) = self.get_json(&url, host, scope, MANIFEST_ACCEPT).await?;
                let media_type = manifest
                    .get("mediaType")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| {
                        headers
                            .get("content-type")
                            .and_then(|h| h.to_str().ok())
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                let mut info = json!({"tag": tags, "mediaType": media_type});
                let size: u64 = manifest
                    .get("layers")
                    .and_then(Value::as_array)
                    .map(|l| {
                        l.iter()
                            .filter_map(|x| x.get("size").and_then(Value::as_u64))
                            .sum()
                    })
                    .unwrap_or(0);
                info["imageSizeBytes"] = json!(size.to_string());
                if let Some(config) = manifest.pointer("/config/digest").and_then(Value::as_str) {
                    let url = format!("{base}/v2/{path}/blobs/{config}");
                    let (blob, _) = self
                        .get_json(&url, host, scope, "application/json, */*")
                        .await?;
                    if let Some(created) = blob.get("created").and_then(Value::as_str)
                        && let Ok(t) = chrono::DateTime::parse_from_rfc3339(created)
                    {
                        info["timeCreatedMs"] = json!(t.timestamp_millis().to_string());
                    }
                }
                Ok((digest, info))
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut map = serde_json::Map::new();
        for d in described {
            let (digest, info) = d?;
            map.insert(digest, info);
        }
        Ok(map)
    }

    /// The digest a tag points to now, or `None` when the tag is gone.
    pub async fn resolve_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<String>, RegistryError> {
        let (host, path) = split_repository(repository);
        let url = format!("{}/v2/{path}/manifests/{tag}", self.base(host));
        let response = self
            .send(
                Method::HEAD,
                &url,
                host,
                &format!("repository:{path}:pull"),
                MANIFEST_ACCEPT,
            )
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(response
                .headers()
                .get("docker-content-digest")
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)),
            s => Err(RegistryError::Status {
                url,
                status: s.as_u16(),
                body: String::new(),
            }),
        }
    }

    /// Deletes one image version exactly: every tag the plan saw must still point at `digest`
    /// (a moved tag means someone pushed since the review: skip); Google registries need their
    /// tags deleted first; then the manifest by digest. 404 is "already gone".
    pub async fn delete_version(
        &self,
        repository: &str,
        digest: &str,
        tags: &[String],
    ) -> Result<DeleteOutcome, RegistryError> {
        for tag in tags {
            match self.resolve_tag(repository, tag).await? {
                Some(d) if d == digest => {}
                Some(d) => {
                    return Ok(DeleteOutcome::Skipped(format!(
                        "tag `{tag}` now points at {d}, not at the reviewed {digest}"
                    )));
                }
                None => {}
            }
        }
        let (host, path) = split_repository(repository);
        let base = self.base(host);
        let scope = format!("repository:{path}:pull,delete");
        if is_google_host(host) {
            for tag in tags {
                let url = format!("{base}/v2/{path}/manifests/{tag}");
                let response = self
                    .send(Method::DELETE, &url, host, &scope, MANIFEST_ACCEPT)
                    .await?;
                let status = response.status();
                if !status.is_success() && status != StatusCode::NOT_FOUND {
                    return Err(RegistryError::Status {
                        url,
                        status: status.as_u16(),
                        body: response.text().await.unwrap_or_default(),
                    });
                }
            }
        }
        let url = format!("{base}/v2/{path}/manifests/{digest}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = self
                .send(Method::DELETE, &url, host, &scope, MANIFEST_ACCEPT)
                .await?;
            let status = response.status();
            if status == StatusCode::NOT_FOUND {
                return Ok(DeleteOutcome::AlreadyGone);
            }
            if status.is_success() {
                return Ok(DeleteOutcome::Deleted);
            }
            let body = response.text().await.unwrap_or_default();
            // Artifact Registry refuses a child manifest while its index is still being
            // deleted; the plan deletes the index first, so waiting lets it finish.
            if body.contains(DANGLING_PARENT) && attempt < DANGLING_PARENT_ATTEMPTS {
                tokio::time::sleep(std::time::Duration::from_secs(2 * attempt as u64)).await;
                continue;
            }
            return Err(RegistryError::Status {
                url,
                status: status.as_u16(),
                body,
            });
        }
    }
}

/// Artifact Registry's answer when a manifest is still referenced by an index.
const DANGLING_PARENT: &str = "GOOGLE_MANIFEST_DANGLING_PARENT_IMAGE";
const DANGLING_PARENT_ATTEMPTS: usize = 4;

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    AlreadyGone,
    Skipped(String),
}

pub fn is_google_host(host: &str) -> bool {
    host.ends_with("-docker.pkg.dev") || host == "gcr.io" || host.ends_with(".gcr.io")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let (scheme, p) = challenge(r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull""#).unwrap();
        assert_eq!(scheme, "bearer");
        assert_eq!(p["realm"], "https://auth.example.com/token");
        assert_eq!(p["service"], "registry.example.com");
        assert_eq!(p["scope"], "repository:a/b:pull");
        assert_eq!(
            challenge(r#"Basic realm="basic-realm""#).unwrap().0,
            "basic"
        );
    }

    #[test]
    fn follows_relative_and_absolute_links() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            "</v2/_catalog?last=b&n=2>; rel=\"next\"".parse().unwrap(),
        );
        assert_eq!(
            next_link(&h, "http://r:5000").as_deref(),
            Some("http://r:5000/v2/_catalog?last=b&n=2")
        );
        h.insert(
            LINK,
            "<https://x/v2/a/tags/list?n=1&last=z>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h, "http://r").as_deref(),
            Some("https://x/v2/a/tags/list?n=1&last=z")
        );
        assert_eq!(next_link(&HeaderMap::new(), "http://r"), None);
    }
}
