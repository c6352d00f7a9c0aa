//! Auditing 2,000 tags over HTTP, with and without Google's `tags/list` extension, against
//! local servers (no network). Prints requests made; criterion times each path.
//! With the extension: one request per repository page. Without: the tag list, a HEAD per tag,
//! and at most two requests (manifest, config blob) per unique digest.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;

use criterion::{Criterion, criterion_group};
use driftsweep::inventory::registry::client::{Credentials, RegistryClient};
use serde_json::{Value, json};

const TAGS: usize = 2_000;
/// Two tags per image: 1,000 unique digests.
const TAGS_PER_DIGEST: usize = 2;

fn digest(i: usize) -> String {
    format!("sha256:{i:064x}")
}

/// Serves one repository `p/app`; `google` adds the extension to `tags/list`.
fn serve(google: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("local address").port();
    let tags: Vec<String> = (0..TAGS).map(|i| format!("v{i}")).collect();
    let mut manifest = serde_json::Map::new();
    for i in 0..TAGS / TAGS_PER_DIGEST {
        let t: Vec<&String> = tags[i * TAGS_PER_DIGEST..(i + 1) * TAGS_PER_DIGEST]
            .iter()
            .collect();
        manifest.insert(
            digest(i),
            json!({"tag": t, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "timeUploadedMs": (1_700_000_000_000u64 + i as u64 * 1000).to_string()}),
        );
    }
    let list = if google {
        json!({"name": "p/app", "tags": tags, "manifest": manifest})
    } else {
        json!({"name": "p/app", "tags": tags})
    }
    .to_string();
    let list = Arc::new(list);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let list = list.clone();
            std::thread::spawn(move || handle(stream, &list));
        }
    });
    port
}

fn handle(mut stream: std::net::TcpStream, list: &str) {
    // Small writes without Nagle: otherwise delayed ACKs, not the client, set the pace.
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let (body, extra) = if path.ends_with("/tags/list") {
            (list.to_string(), String::new())
        } else if let Some(reference) = path.strip_prefix("/v2/p/app/manifests/") {
            let i = match reference.strip_prefix('v') {
                Some(n) => n.parse::<usize>().unwrap_or(0) / TAGS_PER_DIGEST,
                None => {
                    usize::from_str_radix(reference.trim_start_matches("sha256:"), 16).unwrap_or(0)
                }
            };
            let m = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{:064x}", 1_000_000 + i), "size": 10},
                "layers": []});
            (
                m.to_string(),
                format!("Docker-Content-Digest: {}\r\n", digest(i)),
            )
        } else if path.starts_with("/v2/p/app/blobs/") {
            (
                json!({"created": "2025-01-01T00:00:00Z"}).to_string(),
                String::new(),
            )
        } else {
            ("{}".to_string(), String::new())
        };
        let payload = if method == "HEAD" { "" } else { body.as_str() };
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{payload}",
            body.len()
        );
    }
}

fn audit(port: u16) -> (usize, usize) {
    let host = format!("127.0.0.1:{port}");
    let client =
        RegistryClient::new(std::slice::from_ref(&host), Credentials::default()).expect("client");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listing = rt
        .block_on(client.read_repository(&format!("{host}/p/app")))
        .expect("the repository reads");
    let versions = listing.tag_list["manifest"]
        .as_object()
        .map_or(0, serde_json::Map::len);
    (client.requests(), versions)
}

/// Repositories and versions of the project-sized read (issue 16).
const REPOSITORIES: usize = 1_000;
const VERSIONS: usize = 50;

/// Serves `REPOSITORIES` repositories `r0000`…, `VERSIONS` tagged versions each, and the
/// catalog (`n` per page, with `Link` to the next); `google` adds the extension.
fn serve_project(google: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("local address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || handle_project(stream, google));
        }
    });
    port
}

fn handle_project(mut stream: std::net::TcpStream, google: bool) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut extra = String::new();
        let body = if let Some(query) = path.strip_prefix("/v2/_catalog?") {
            let n: usize = query
                .split('&')
                .find_map(|p| p.strip_prefix("n="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(100);
            let last: Option<usize> = query
                .split('&')
                .find_map(|p| p.strip_prefix("last=r"))
                .and_then(|n| n.parse().ok());
            let start = last.map_or(0, |l| l + 1);
            let end = (start + n).min(REPOSITORIES);
            if end < REPOSITORIES {
                extra = format!(
                    "Link: </v2/_catalog?n={n}&last=r{:04}>; rel=\"next\"\r\n",
                    end - 1
                );
            }
            let names: Vec<String> = (start..end).map(|i| format!("r{i:04}")).collect();
            json!({"repositories": names}).to_string()
        } else if let Some(rest) = path.strip_prefix("/v2/r") {
            let (repo, tail) = rest.split_once('/').unwrap_or((rest, ""));
            let r: usize = repo.parse().unwrap_or(0);
            let version = |v: usize| r * VERSIONS + v;
            if tail == "tags/list" {
                let tags: Vec<String> = (0..VERSIONS).map(|v| format!("1.0.{v}")).collect();
                let mut manifest = serde_json::Map::new();
                for v in 0..VERSIONS {
                    manifest.insert(
                        digest(version(v)),
                        json!({"tag": [format!("1.0.{v}")],
                            "mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "timeUploadedMs": (1_700_000_000_000u64 + v as u64 * 1000).to_string()}),
                    );
                }
                if google {
                    json!({"name": format!("r{repo}"), "tags": tags, "manifest": manifest})
                } else {
                    json!({"name": format!("r{repo}"), "tags": tags})
                }
                .to_string()
            } else if let Some(reference) = tail.strip_prefix("manifests/") {
                let v = match reference.strip_prefix("1.0.") {
                    Some(n) => version(n.parse::<usize>().unwrap_or(0)),
                    None => usize::from_str_radix(reference.trim_start_matches("sha256:"), 16)
                        .unwrap_or(0),
                };
                extra = format!("Docker-Content-Digest: {}\r\n", digest(v));
                json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": format!("sha256:{:064x}", 10_000_000 + v), "size": 10},
                    "layers": []})
                .to_string()
            } else {
                json!({"created": "2025-01-01T00:00:00Z"}).to_string()
            }
        } else {
            "{}".to_string()
        };
        let payload = if method == "HEAD" { "" } else { body.as_str() };
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{payload}",
            body.len()
        );
    }
}

/// The whole registry read of a run (`live::read_registry`: the catalog, then every
/// repository): requests made, versions read.
fn audit_project(port: u16) -> (usize, usize) {
    use driftsweep::inventory::Inventory;
    use driftsweep::inventory::gcp_live::GcpAuth;
    use driftsweep::policy::RegistryPolicy;
    let host = format!("127.0.0.1:{port}");
    let client =
        RegistryClient::new(std::slice::from_ref(&host), Credentials::default()).expect("client");
    let policy = RegistryPolicy {
        repositories: Vec::new(),
        scan: vec![host.clone()],
        keep_recent: 10,
        max_age_days: 90,
        plain_http_hosts: vec![host.clone()],
        protect_in_use: true,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut inventory = Inventory::default();
    let mut listings = Vec::new();
    rt.block_on(driftsweep::inventory::live::read_registry(
        &client,
        &policy,
        &GcpAuth::anonymous(),
        &mut inventory,
        &mut listings,
    ));
    assert!(inventory.gaps.is_empty(), "{:?}", inventory.gaps);
    let versions = inventory.registry.iter().map(|r| r.versions.len()).sum();
    (client.requests(), versions)
}

fn bench(c: &mut Criterion) {
    let google = serve(true);
    let plain = serve(false);
    let mut group = c.benchmark_group("registry audit, 2000 tags");
    group.sample_size(10);
    group.bench_function("google extension", |b| b.iter(|| audit(google)));
    group.bench_function("distribution (HEAD + manifest + config)", |b| {
        b.iter(|| audit(plain))
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    for (name, google) in [("google extension", true), ("distribution", false)] {
        let port = serve(google);
        let start = std::time::Instant::now();
        let (requests, versions) = audit(port);
        println!(
            "{name}: {requests} requests for {TAGS} tags, {versions} versions, {:.0} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    for (name, google) in [("google extension", true), ("distribution", false)] {
        let port = serve_project(google);
        let mut times = Vec::new();
        let mut counted = (0, 0);
        for _ in 0..3 {
            let start = std::time::Instant::now();
            counted = audit_project(port);
            times.push(start.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{REPOSITORIES} repositories x {VERSIONS} versions, {name}: {} requests, {} versions, {:.2} s (median of 3; {:.2}–{:.2} s)",
            counted.0, counted.1, times[1], times[0], times[2]
        );
    }
    let _: Option<Value> = None;
    benches();
    Criterion::default().configure_from_args().final_summary();
}
