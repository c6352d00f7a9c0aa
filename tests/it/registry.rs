//! Registry retention against a real registry: Debian's `docker-registry` (CNCF distribution)
//! on 127.0.0.1, images pushed over its HTTP API; and Google's extended `tags/list` served by
//! a small local server.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{Duration, Utc};
use driftsweep::inventory::registry::client::{Credentials, DeleteOutcome, RegistryClient};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::services::free_port;
use crate::{root, stderr, stdout, write};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write(
        dir.path(),
        "config.yml",
        &format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    );
    let mut child = Command::new("docker-registry")
        .args(["serve", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Debian's docker-registry is installed (scripts/test.sh installs it)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "docker-registry did not start"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "docker-registry exited"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Registry {
        child,
        port,
        _dir: dir,
    }
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Pushes over the distribution API: blobs (POST then PUT), then manifests.
pub struct Pusher {
    http: reqwest::Client,
    base: String,
    rt: tokio::runtime::Runtime,
}

impl Pusher {
    pub fn new(port: u16) -> Self {
        Pusher {
            http: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{port}"),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    fn blob(&self, repo: &str, bytes: &[u8]) -> (String, usize) {
        let digest = sha(bytes);
        self.rt.block_on(async {
            let r = self
                .http
                .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 202);
            let location = r.headers()["location"].to_str().unwrap().to_string();
            let url = if location.starts_with("http") {
                location
            } else {
                format!("{}{location}", self.base)
            };
            let sep = if url.contains('?') { '&' } else { '?' };
            let r = self
                .http
                .put(format!("{url}{sep}digest={digest}"))
                .body(bytes.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 201, "blob upload");
        });
        (digest, bytes.len())
    }

    fn manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> String {
        self.rt.block_on(async {
            let r = self
                .http
                .put(format!("{}/v2/{repo}/manifests/{reference}", self.base))
                .header("content-type", media_type)
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status().as_u16(),
                201,
                "manifest push: {}",
                r.text().await.unwrap()
            );
        });
        sha(body)
    }

    /// The HTTP status of a HEAD on a manifest, asking for every manifest type.
    pub fn head(&self, repo: &str, reference: &str) -> u16 {
        self.rt.block_on(async {
            self.http
                .head(format!("{}/v2/{repo}/manifests/{reference}", self.base))
                .header(
                    "accept",
                    format!("{OCI_MANIFEST}, {OCI_INDEX}, application/vnd.docker.distribution.manifest.v2+json"),
                )
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    }

    /// An image whose config says it was created `days_ago`; returns (digest, manifest size).
    pub fn image(&self, repo: &str, tags: &[&str], days_ago: i64, seed: &str) -> (String, usize) {
        let created = (Utc::now() - Duration::days(days_ago)).to_rfc3339();
        let config = json!({"architecture": "amd64", "os": "linux", "created": created,
            "rootfs": {"type": "layers", "diff_ids": []}, "config": {"Labels": {"seed": seed}}});
        let (cfg_digest, cfg_size) = self.blob(repo, config.to_string().as_bytes());
        let (layer_digest, layer_size) = self.blob(repo, format!("layer {seed}").as_bytes());
        let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}]})
        .to_string();
        let digest = sha(manifest.as_bytes());
        if tags.is_empty() {
            self.manifest(repo, &digest, OCI_MANIFEST, manifest.as_bytes());
        }
        for t in tags {
            self.manifest(repo, t, OCI_MANIFEST, manifest.as_bytes());
        }
        (digest, manifest.len())
    }
}

fn policy(dir: &std::path::Path, host: &str, extra: &str) -> String {
    write(
        dir,
        "policy.yaml",
        &format!(
            "version: 1\nname: reg\nregistry:\n  repositories: [{host}/team/app]\n  scan: [{host}/team]\n  keep_recent: 2\n  max_age_days: 90\n  plain_http_hosts: ['{host}']\n{extra}"
        ),
    )
    .to_str()
    .unwrap()
    .to_string()
}

fn verdicts(report: &Value) -> BTreeMap<String, String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_live_audit_of_a_distribution_registry_replays_equal_and_deletes_exactly_one_version() {
    let registry = start_registry();
    let host = format!("127.0.0.1:{}", registry.port);
    let push = Pusher::new(registry.port);
    let mut digests = BTreeMap::new();
    for (tag, days) in [
        ("v1", 400),
        ("v2", 300),
        ("v3", 200),
        ("v4", 150),
        ("v5", 100),
    ] {
        digests.insert(tag, push.image("team/app", &[tag], days, tag).0);
    }
    digests.insert(
        "v6",
        push.image("team/app", &["v6", "latest", "stable"], 5, "v6")
            .0,
    );
    let untagged = push.image("team/app", &[], 500, "untagged").0;
    // A multi-arch index with two children pushed by digest.
    let (amd, amd_size) = push.image("team/app", &[], 300, "amd64");
    let (arm, arm_size) = push.image("team/app", &[], 300, "arm64");
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd, "size": amd_size, "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": arm, "size": arm_size, "platform": {"architecture": "arm64", "os": "linux"}}]})
    .to_string();
    let index_digest = push.manifest("team/app", "multi", OCI_INDEX, index.as_bytes());
    push.image("team/prototype", &["0.1"], 30, "proto");

    let dir = tempfile::tempdir().unwrap();
    // No cluster is read in this build's live mode: audit the registry on its own.
    let policy = policy(dir.path(), &host, "  protect_in_use: false\n");
    let out = crate::driftsweep(&["run", "--policy", &policy, "--report", "-"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let live: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(live["source"], "live");
    let v = verdicts(&live);
    let name = |d: &str| format!("{host}/team/app@{d}");
    for tag in ["v1", "v2", "v3", "v4"] {
        assert_eq!(v[&name(&digests[tag])], "delete", "{tag}");
    }
    for tag in ["v5", "v6"] {
        assert_eq!(v[&name(&digests[tag])], "keep", "{tag}");
    }
    assert_eq!(
        v[&name(&index_digest)],
        "keep",
        "an index without a known age is kept"
    );
    assert!(
        !v.contains_key(&name(&untagged)),
        "a distribution registry cannot list untagged manifests"
    );
    let six = live["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name(&digests["v6"]))
        .unwrap();
    assert_eq!(six["identity"]["tags"], json!(["latest", "stable", "v6"]));
    let prototype: Vec<_> = v
        .iter()
        .filter(|(k, _)| k.contains("/team/prototype@"))
        .collect();
    assert_eq!(prototype.len(), 1);
    assert_eq!(
        prototype[0].1, "delete",
        "a foreign image under the scan root"
    );

    // The snapshot of the live registry replays to the same verdicts.
    let snap = dir.path().join("snap");
    let out = crate::driftsweep(&[
        "snapshot",
        "--policy",
        &policy,
        "--out",
        snap.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        snap.join(format!(
            "registry/{host}/team/app/manifests/{index_digest}.json"
        ))
        .is_file()
    );
    let out = crate::driftsweep(&[
        "run",
        "--policy",
        &policy,
        "--snapshot",
        snap.to_str().unwrap(),
        "--report",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let replay: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(verdicts(&replay), v, "live and replayed verdicts differ");

    // Delete one planned version: exactly that digest and its tags go.
    let client = RegistryClient::new(std::slice::from_ref(&host), Credentials::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let repo = format!("{host}/team/app");
    let outcome = rt
        .block_on(client.delete_version(&repo, &digests["v1"], &["v1".to_string()]))
        .unwrap();
    assert_eq!(outcome, DeleteOutcome::Deleted);
    assert_eq!(rt.block_on(client.resolve_tag(&repo, "v1")).unwrap(), None);
    for tag in ["v2", "v3", "v4", "v5", "v6", "latest", "stable"] {
        let key = if ["latest", "stable"].contains(&tag) {
            "v6"
        } else {
            tag
        };
        assert_eq!(
            rt.block_on(client.resolve_tag(&repo, tag))
                .unwrap()
                .as_deref(),
            Some(digests[key].as_str()),
            "{tag}"
        );
    }
    assert_eq!(
        rt.block_on(client.resolve_tag(&repo, "multi"))
            .unwrap()
            .as_deref(),
        Some(index_digest.as_str())
    );
    // Again: already gone.
    let again = rt
        .block_on(client.delete_version(&repo, &digests["v1"], &["v1".to_string()]))
        .unwrap();
    assert_eq!(again, DeleteOutcome::AlreadyGone);
    // A tag that moved since the review is not deleted with the old digest.
    push.image("team/app", &["v2"], 1, "v2-rebuilt");
    let moved = rt
        .block_on(client.delete_version(
            &repo,
            &digests["v3"],
            &["v3".to_string(), "v2".to_string()],
        ))
        .unwrap();
    assert!(
        matches!(moved, DeleteOutcome::Skipped(ref why) if why.contains("tag `v2` now points at")),
        "{moved:?}"
    );
    assert_eq!(
        rt.block_on(client.resolve_tag(&repo, "v3"))
            .unwrap()
            .as_deref(),
        Some(digests["v3"].as_str())
    );
}

/// A local HTTP server, one connection per request: `respond(method and path, headers in
/// lower case)` gives the status line, extra header lines and the body.
fn local_server(respond: impl Fn(&str, &str) -> (String, String, String) + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut headers = String::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
                headers.push_str(&h.to_ascii_lowercase());
            }
            let request: String = line
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            let (status, extra, body) = respond(&request, &headers);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// A registry that speaks Google's extended `tags/list`, in pages, counting requests.
fn google_registry(versions: usize, page: usize) -> (u16, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let now = Utc::now().timestamp_millis();
    let day = 86_400_000i64;
    let entries: Vec<(String, Value)> = (0..versions)
        .map(|i| {
            let digest = format!("sha256:{i:064x}");
            // Version 0 was built "in 1980" but uploaded today: upload time decides.
            let created = if i == 0 { 315_532_800_000 } else { now - (i as i64) * day };
            let uploaded = now - (i as i64) * day;
            (digest, json!({"tag": [format!("v{i}")], "mediaType": OCI_MANIFEST,
                "timeCreatedMs": created.to_string(), "timeUploadedMs": uploaded.to_string(), "imageSizeBytes": "1000"}))
        })
        .collect();
    let port = local_server(move |request, _| {
        counter.fetch_add(1, Ordering::SeqCst);
        let start: usize = request
            .split("last=")
            .nth(1)
            .and_then(|s| s.split(['&', ' ']).next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let end = (start + page).min(entries.len());
        let manifest: serde_json::Map<String, Value> =
            entries[start..end].iter().cloned().collect();
        let tags: Vec<String> = (start..end).map(|i| format!("v{i}")).collect();
        let body =
            json!({"name": "p/app", "tags": tags, "manifest": manifest, "child": []}).to_string();
        let link = if end < entries.len() {
            format!("Link: </v2/p/app/tags/list?n={page}&last={end}>; rel=\"next\"\r\n")
        } else {
            String::new()
        };
        ("200 OK".to_string(), link, body)
    });
    (port, count)
}

#[test]
fn google_extended_tag_lists_are_read_in_one_request_per_page_with_upload_time_winning() {
    let (port, requests) = google_registry(5_000, 2_000);
    let host = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: g\nregistry:\n  repositories: [{host}/p/app]\n  keep_recent: 10\n  max_age_days: 90\n  plain_http_hosts: ['{host}']\n  protect_in_use: false\n"
        ),
    );
    let out = crate::driftsweep(&["run", "--policy", policy.to_str().unwrap(), "--report", "-"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        requests.load(Ordering::SeqCst),
        3,
        "one request per page of 2,000"
    );
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let v = verdicts(&report);
    assert_eq!(v.len(), 5_000);
    assert_eq!(
        v[&format!("{host}/p/app@sha256:{:064x}", 0)],
        "keep",
        "uploaded today, built in 1980"
    );
    // Versions 0..=89 are younger than 90 days; the rest go.
    assert_eq!(report["summary"]["delete"], 5_000 - 90);
    let _ = root();
}

/// Google registries get an access token from application default credentials; here the
/// metadata server is a local stand-in (`GCE_METADATA_HOST`), as on GKE with Workload Identity.
#[test]
fn google_registries_get_a_token_from_application_default_credentials() {
    let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = paths.clone();
    let port = local_server(move |request, headers| {
        seen.lock().unwrap().push(request.to_string());
        let body = if headers.contains("metadata-flavor: google") {
            r#"{"access_token": "ya29.test-token", "expires_in": 3599, "token_type": "Bearer"}"#
        } else {
            "missing Metadata-Flavor"
        };
        (
            "200 OK".to_string(),
            "Metadata-Flavor: Google\r\n".to_string(),
            body.to_string(),
        )
    });
    // SAFETY: no other test in this binary reads these variables.
    unsafe {
        std::env::set_var("GCE_METADATA_HOST", format!("127.0.0.1:{port}"));
        std::env::remove_var("GOOGLE_APPLICATION_CREDENTIALS");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The run's one credential, the same the GCP clients get.
    let token = rt
        .block_on(async {
            let auth = driftsweep::inventory::gcp_live::GcpAuth::from_env().await?;
            auth.bearer().await
        })
        .unwrap();
    assert_eq!(token.as_deref(), Some("ya29.test-token"));
    assert!(
        paths
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.contains("/service-accounts/default/token"))
    );
    assert!(driftsweep::inventory::registry::client::is_google_host(
        "us-docker.pkg.dev"
    ));
    assert!(driftsweep::inventory::registry::client::is_google_host(
        "gcr.io"
    ));
    assert!(!driftsweep::inventory::registry::client::is_google_host(
        "registry.example.com"
    ));
}

/// Artifact Registry refuses a child manifest while its index is still going; the delete
/// waits and tries again instead of failing.
#[test]
fn a_dangling_parent_answer_is_retried() {
    let deletes = Arc::new(AtomicUsize::new(0));
    let counter = deletes.clone();
    let port = local_server(move |_, _| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            (
                "400 Bad Request".to_string(),
                String::new(),
                r#"{"errors":[{"code":"GOOGLE_MANIFEST_DANGLING_PARENT_IMAGE","message":"parent index still exists"}]}"#.to_string(),
            )
        } else {
            ("202 Accepted".to_string(), String::new(), String::new())
        }
    });
    let host = format!("127.0.0.1:{port}");
    let client = RegistryClient::new(std::slice::from_ref(&host), Credentials::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let digest = format!("sha256:{:064x}", 7);
    let outcome = rt
        .block_on(client.delete_version(&format!("{host}/p/app"), &digest, &[]))
        .unwrap();
    assert_eq!(outcome, DeleteOutcome::Deleted);
    assert_eq!(deletes.load(Ordering::SeqCst), 2);
}

/// Foreign images under an Artifact Registry root are found with `dockerImages.list`, every
/// page of it; a local server replays the documented REST responses.
#[test]
fn artifact_registry_roots_are_enumerated_with_docker_images_list() {
    let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = paths.clone();
    let port = local_server(move |request, _| {
        seen.lock().unwrap().push(request.to_string());
        let image = |name: &str, n: u32| {
            json!({"name": format!("projects/p/locations/us/repositories/r/dockerImages/{name}@sha256:{n:064x}"),
                   "uri": format!("us-docker.pkg.dev/p/r/{name}@sha256:{n:064x}"),
                   "tags": [format!("v{n}")], "uploadTime": "2026-01-01T00:00:00Z"})
        };
        let body = if request.contains("pageToken=page-2") {
            json!({"dockerImages": [image("old-prototype", 3), image("team/tool", 4)]})
        } else {
            json!({"dockerImages": [image("aia-api", 1), image("aia-api", 2)], "nextPageToken": "page-2"})
        };
        ("200 OK".to_string(), String::new(), body.to_string())
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let found = rt.block_on(async {
        let client = driftsweep::inventory::artifact_registry::client(
            Some(format!("http://127.0.0.1:{port}")),
            &driftsweep::inventory::gcp_live::GcpAuth::anonymous(),
        )
        .await
        .unwrap();
        driftsweep::inventory::artifact_registry::repositories(&client, "us-docker.pkg.dev/p/r")
            .await
            .unwrap()
    });
    assert_eq!(
        found,
        vec![
            "us-docker.pkg.dev/p/r/aia-api".to_string(),
            "us-docker.pkg.dev/p/r/old-prototype".to_string(),
            "us-docker.pkg.dev/p/r/team/tool".to_string(),
        ]
    );
    let paths = paths.lock().unwrap();
    assert_eq!(paths.len(), 2, "both pages read: {paths:?}");
    assert!(
        paths[0].starts_with("GET /v1/projects/p/locations/us/repositories/r/dockerImages"),
        "{paths:?}"
    );
}
