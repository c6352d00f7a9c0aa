//! A fault-injecting HTTP proxy in front of the real API server (or the real registry server):
//! faults are injected here, in front of the real thing, never imitated behind it.
//!
//! driftsweep talks plain HTTP to the proxy on 127.0.0.1; the proxy forwards every request to
//! the control plane over TLS, with the admin's client certificate when the request carries no
//! `Authorization` (the test's own identity) and with the request's bearer token otherwise (a
//! ServiceAccount, so RBAC decides as it would without the proxy). Rules answer a request
//! themselves (403, 410, 429 with `Retry-After`, 500), delay it, stall it, or cut its response
//! body midway; every request is logged with its answer so tests can count them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use regex::Regex;
use serde_json::{Value, json};

use crate::controlplane::ControlPlane;

/// One request as the proxy saw and answered it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The status the client got (the fault's, or the API server's).
    pub status: u16,
    /// The request body, when it was JSON (a DELETE's options: `dryRun`, `preconditions`).
    pub body: Value,
    /// A list page's answer: how many items it held, and whether it named a next page.
    pub page: Option<(usize, bool)>,
}

impl Logged {
    /// Whether the request was a server-side dry run (query or DeleteOptions body).
    pub fn dry_run(&self) -> bool {
        self.query.contains("dryRun=All") || self.body["dryRun"] == json!(["All"])
    }
}

#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and a Kubernetes `Status` body (or plain text, as API Priority
    /// and Fairness sends its 429s), optionally with `Retry-After`.
    Status {
        code: u16,
        retry_after: Option<u64>,
        text: bool,
    },
    /// Forward after this delay.
    Delay(Duration),
    /// Never answer (the client's timeout decides).
    Stall,
    /// Forward, then close the connection after this many bytes of the response body.
    Reset { after_bytes: usize },
}

/// Which requests a fault applies to, and how often.
#[derive(Debug, Clone)]
pub struct Rule {
    method: Option<String>,
    path: Regex,
    query: Option<Regex>,
    /// Only server-side dry runs (`true`) or only real requests (`false`).
    dry_run: Option<bool>,
    fault: Fault,
    /// Matching requests let through before the fault starts (`2` = the third one).
    skip: usize,
    /// How many times it fires; `None`: always.
    times: Option<usize>,
}

impl Rule {
    /// Requests with `method` (`"*"` for any) whose path matches the regex `path`.
    pub fn on(method: &str, path: &str) -> Rule {
        Rule {
            method: (method != "*").then(|| method.to_string()),
            path: Regex::new(path).expect("a valid path regex"),
            query: None,
            dry_run: None,
            fault: Fault::Delay(Duration::ZERO),
            skip: 0,
            times: None,
        }
    }

    /// Only when the query string matches the regex `query` (e.g. `continue=`).
    pub fn query(mut self, query: &str) -> Rule {
        self.query = Some(Regex::new(query).expect("a valid query regex"));
        self
    }

    /// Only server-side dry runs (`dryRun=All` in the query or the DeleteOptions body), or,
    /// with `false`, only requests that act.
    pub fn dry_run(mut self, dry_run: bool) -> Rule {
        self.dry_run = Some(dry_run);
        self
    }

    /// Answer with `code` and a Kubernetes `Status` body.
    pub fn status(mut self, code: u16) -> Rule {
        self.fault = Fault::Status {
            code,
            retry_after: None,
            text: false,
        };
        self
    }

    /// With `Retry-After: seconds` (and `details.retryAfterSeconds`), after `status`.
    pub fn retry_after(mut self, seconds: u64) -> Rule {
        if let Fault::Status { retry_after, .. } = &mut self.fault {
            *retry_after = Some(seconds);
        }
        self
    }

    /// A 429 with `Retry-After: seconds`, in plain text as API Priority and Fairness sends it.
    pub fn throttle(mut self, seconds: u64) -> Rule {
        self.fault = Fault::Status {
            code: 429,
            retry_after: Some(seconds),
            text: true,
        };
        self
    }

    pub fn delay_ms(mut self, ms: u64) -> Rule {
        self.fault = Fault::Delay(Duration::from_millis(ms));
        self
    }

    pub fn stall(mut self) -> Rule {
        self.fault = Fault::Stall;
        self
    }

    pub fn reset_after(mut self, bytes: usize) -> Rule {
        self.fault = Fault::Reset { after_bytes: bytes };
        self
    }

    pub fn skip(mut self, n: usize) -> Rule {
        self.skip = n;
        self
    }

    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }

    fn matches(&self, method: &str, path: &str, query: &str, body: &Value) -> bool {
        let dry_run = query.contains("dryRun=All") || body["dryRun"] == json!(["All"]);
        self.method.as_deref().is_none_or(|m| m == method)
            && self.path.is_match(path)
            && self.query.as_ref().is_none_or(|q| q.is_match(query))
            && self.dry_run.is_none_or(|d| d == dry_run)
    }
}

struct State {
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<Logged>>,
    upstream: Upstream,
}

/// What the proxy stands in front of.
enum Upstream {
    /// The control plane over TLS.
    Kube {
        /// Forwards with the admin's client certificate.
        admin: kube::Client,
        /// Forwards the request's own `Authorization`.
        bearer: kube::Client,
    },
    /// A plain-HTTP server on 127.0.0.1 (the registry), headers passed through.
    Http {
        base: String,
        client: reqwest::Client,
    },
}

impl State {
    /// The fault for this request, counting it against the rule that fires.
    fn fault_for(&self, method: &str, path: &str, query: &str, body: &Value) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        for rule in rules.iter_mut() {
            if !rule.matches(method, path, query, body) || rule.times == Some(0) {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                return None;
            }
            if let Some(t) = &mut rule.times {
                *t -= 1;
            }
            return Some(rule.fault.clone());
        }
        None
    }
}

pub struct FaultProxy {
    pub port: u16,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

type ProxyBody = BoxBody<Bytes, std::io::Error>;

impl FaultProxy {
    /// A proxy on a free 127.0.0.1 port in front of `plane`.
    pub fn start(plane: &ControlPlane, dir: &std::path::Path) -> FaultProxy {
        let runtime = runtime();
        let bearer_config = plane.kubeconfig(&dir.join("upstream-bearer"), &plane.server, None);
        let (admin, bearer) = runtime.block_on(async {
            (
                client_from(&plane.admin_kubeconfig).await,
                client_from(&bearer_config).await,
            )
        });
        Self::serve(runtime, Upstream::Kube { admin, bearer })
    }

    /// A proxy on a free 127.0.0.1 port in front of the plain-HTTP server on `port`.
    pub fn http(port: u16) -> FaultProxy {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let upstream = Upstream::Http {
            base: format!("http://127.0.0.1:{port}"),
            client,
        };
        Self::serve(runtime(), upstream)
    }

    fn serve(runtime: tokio::runtime::Runtime, upstream: Upstream) -> FaultProxy {
        let state = Arc::new(State {
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            upstream,
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let serving = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(state, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            port,
            state,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Adds a rule; earlier rules are tried first.
    pub fn fault(&self, rule: Rule) {
        self.state.rules.lock().unwrap().push(rule);
    }

    pub fn clear_faults(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// Every request forwarded or answered so far, oldest first.
    pub fn requests(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn clear_requests(&self) {
        self.state.log.lock().unwrap().clear();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

async fn client_from(kubeconfig: &std::path::Path) -> kube::Client {
    let file = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn status_response(code: u16, retry_after: Option<u64>, text: bool) -> http::Response<ProxyBody> {
    // The reasons and messages kube-apiserver gives, marked as injected.
    let (reason, text_of) = match code {
        403 => ("Forbidden", "forbidden"),
        404 => ("NotFound", "not found"),
        409 => ("Conflict", "the object has been modified"),
        410 => (
            "Expired",
            "The provided continue parameter is too old to display a consistent list result",
        ),
        429 => (
            "TooManyRequests",
            "Too many requests, please try again later",
        ),
        500 => ("InternalError", "Internal error occurred"),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
        _ => ("Unknown", "injected failure"),
    };
    let message = format!("{text_of} (injected by the test proxy)");
    let mut builder = http::Response::builder().status(code);
    if let Some(seconds) = retry_after {
        builder = builder.header("retry-after", seconds.to_string());
    }
    let body = if text {
        builder = builder.header("content-type", "text/plain; charset=utf-8");
        format!("{message}\n")
    } else {
        builder = builder.header("content-type", "application/json");
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code,
        });
        if let Some(seconds) = retry_after {
            status["details"] = json!({"retryAfterSeconds": seconds});
        }
        status.to_string()
    };
    builder.body(full(body)).unwrap()
}

async fn handle(state: Arc<State>, request: http::Request<Incoming>) -> http::Response<ProxyBody> {
    let (parts, body) = request.into_parts();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let logged_body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fault = state.fault_for(&method, &path, &query, &logged_body);
    let log_page = |status: u16, page: Option<(usize, bool)>| {
        state.log.lock().unwrap().push(Logged {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            status,
            body: logged_body.clone(),
            page,
        });
    };
    let log = |status: u16| log_page(status, None);
    match &fault {
        Some(Fault::Status {
            code,
            retry_after,
            text,
        }) => {
            log(*code);
            return status_response(*code, *retry_after, *text);
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(*d).await,
        Some(Fault::Stall) => {
            log(0);
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Some(Fault::Reset { .. }) | None => {}
    }

    let (status, headers, bytes) = match forward(&state.upstream, parts, body).await {
        Ok(answer) => answer,
        Err(e) => {
            log(502);
            return http::Response::builder()
                .status(502)
                .body(full(format!("test proxy: upstream failed: {e}")))
                .unwrap();
        }
    };
    let gzipped = headers
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let page = (method == "GET" && status.is_success())
        .then(|| {
            if gzipped {
                let mut plain = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::GzDecoder::new(&bytes[..]),
                    &mut plain,
                )
                .ok()?;
                serde_json::from_slice::<Value>(&plain).ok()
            } else {
                serde_json::from_slice::<Value>(&bytes).ok()
            }
        })
        .flatten()
        .and_then(|answer| {
            // An empty metadata list says `"items": null`.
            let items = match answer.get("items")? {
                Value::Null => 0,
                items => items.as_array()?.len(),
            };
            let next = answer["metadata"]["continue"]
                .as_str()
                .is_some_and(|t| !t.is_empty());
            Some((items, next))
        });
    log_page(status.as_u16(), page);
    let mut out = http::Response::builder().status(status);
    for (name, value) in &headers {
        if name != http::header::CONTENT_LENGTH && name != http::header::TRANSFER_ENCODING {
            out = out.header(name, value);
        }
    }
    if method == "HEAD" {
        // No body, and the length of the one a GET would have.
        if let Some(length) = headers.get(http::header::CONTENT_LENGTH) {
            out = out.header(http::header::CONTENT_LENGTH, length);
        }
        return out.body(full(Bytes::new())).unwrap();
    }
    match fault {
        Some(Fault::Reset { after_bytes }) if after_bytes < bytes.len() => {
            // Announce the whole length, send part of it, then fail the body: hyper closes
            // the connection, and the client sees a body cut short.
            let head = bytes.slice(..after_bytes);
            let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
                Ok(Frame::data(head)),
                Err(std::io::Error::other("reset by the test proxy")),
            ];
            out.header(http::header::CONTENT_LENGTH, bytes.len())
                .body(BodyExt::boxed(StreamBody::new(futures::stream::iter(
                    frames,
                ))))
                .unwrap()
        }
        _ => out
            .header(http::header::CONTENT_LENGTH, bytes.len())
            .body(full(bytes))
            .unwrap(),
    }
}

/// Sends the request on and answers the response, whole.
async fn forward(
    upstream: &Upstream,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<(http::StatusCode, http::HeaderMap, Bytes), String> {
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    match upstream {
        Upstream::Kube { admin, bearer } => {
            let mut request = http::Request::builder()
                .method(parts.method.clone())
                .uri(path_and_query);
            for (name, value) in &parts.headers {
                if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
                    request = request.header(name, value);
                }
            }
            let client = if parts.headers.contains_key(http::header::AUTHORIZATION) {
                bearer
            } else {
                admin
            };
            let request = request
                .body(kube::client::Body::from(body.to_vec()))
                .map_err(|e| e.to_string())?;
            let response = client.send(request).await.map_err(|e| e.to_string())?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok((parts.status, parts.headers, bytes))
        }
        Upstream::Http { base, client } => {
            let mut request =
                client.request(parts.method.clone(), format!("{base}{path_and_query}"));
            for (name, value) in &parts.headers {
                if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
                    request = request.header(name, value);
                }
            }
            let response = request.body(body).send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.bytes().await.map_err(|e| e.to_string())?;
            Ok((status, headers, bytes))
        }
    }
}
