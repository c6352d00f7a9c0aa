//! History: one Secret per deploy in the environment's namespace, capped, each far under the
//! 1 MiB object limit: what was deployed (version, digest per service, commit), by whom, when,
//! for how long, the result, and the exact render (gzipped) that a rollback re-applies.
//!
//! A Secret, not a ConfigMap, because a render may hold Secrets. Its type
//! `driftsweep.io/deploy.v1` keeps it in the audit's floor, and its annotations carry the
//! version and digests (metadata, which the audit reads without reading any Secret value), so
//! the nightly audit keeps the images a rollback needs and compares what runs with the last
//! good deploy.

use std::io::{Read, Write};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::render::{MANAGED_BY, MANAGED_BY_LABEL, Pin};
use crate::inventory::cluster::{Cluster, ClusterError};

pub const SECRET_TYPE: &str = "driftsweep.io/deploy.v1";
pub const RECORD_LABEL: &str = "driftsweep.io/record";
pub const ENVIRONMENT_LABEL: &str = "driftsweep.io/environment";
pub const RESULT_LABEL: &str = "driftsweep.io/result";
pub const VERSION_ANNOTATION: &str = "driftsweep.io/version";
/// `{"service": "image@sha256:…"}`: what the audit keeps and compares against.
pub const DIGESTS_ANNOTATION: &str = "driftsweep.io/digests";
pub const RECORD_SCHEMA: &str = "driftsweep.deploy-record/v1";
/// The largest compressed render a record holds: far under the 1 MiB object limit.
pub const MAX_RENDER_BYTES: usize = 512 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("deploy record `{name}` is unreadable: {message}")]
    Corrupt { name: String, message: String },
    #[error(
        "the render is {size} bytes compressed, over the {MAX_RENDER_BYTES} a deploy record may hold\nhint: split the environment's manifests, or move large data out of ConfigMaps"
    )]
    TooLarge { size: usize },
}

/// How a deploy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Applied, not finished (or the deploy died: the next holder of the lock says so).
    Pending,
    Healthy,
    Failed,
    /// Failed, then the previous good record was re-applied and is healthy.
    RolledBack,
    /// Failed, and the rollback failed too.
    RollbackFailed,
    /// Died before it finished (found pending by the next deploy).
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Healthy => "healthy",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled-back",
            Outcome::RollbackFailed => "rollback-failed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// One deploy (or rollback), as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub schema: String,
    pub environment: String,
    pub namespace: String,
    pub sequence: u64,
    /// `v1.2.3`.
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default)]
    pub dirty: bool,
    pub services: Vec<Pin>,
    pub who: String,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    pub result: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set on a rollback: the record whose render it re-applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<u64>,
    /// `sha256:` of the uncompressed render.
    pub render_sha256: String,
    /// `rolling` or `blue-green` (absent in records made before blue-green: `rolling`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Blue-green: the colour this deploy brought up (and, when healthy, switched to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<String>,
    /// Blue-green: the colour users were on before (kept at full scale until
    /// `scale_down_at`, so that a rollback is a switch back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_colour: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_at: Option<DateTime<Utc>>,
}

impl Record {
    /// Whether this record's render ran healthy: a rollback target.
    pub fn good(&self) -> bool {
        self.result == Outcome::Healthy
    }

    /// Whether this record was deployed blue-green.
    pub fn blue_green(&self) -> bool {
        self.strategy.as_deref() == Some("blue-green")
    }

    pub fn digest_of(&self, service: &str) -> Option<&str> {
        self.services
            .iter()
            .find(|p| p.service == service)
            .map(|p| p.digest.as_str())
    }
}

/// A record with the Secret it lives in.
#[derive(Debug, Clone)]
pub struct Stored {
    pub record: Record,
    pub name: String,
    secret: Value,
}

impl Stored {
    /// The render this record applied, checked against its digest.
    pub fn render(&self) -> Result<Vec<Value>, HistoryError> {
        let corrupt = |message: String| HistoryError::Corrupt {
            name: self.name.clone(),
            message,
        };
        let encoded = self
            .secret
            .pointer("/data/render.json.gz")
            .and_then(Value::as_str)
            .ok_or_else(|| corrupt("no `render.json.gz`".to_string()))?;
        let gz = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| corrupt(e.to_string()))?;
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .take(64 * 1024 * 1024)
            .read_to_end(&mut json)
            .map_err(|e| corrupt(e.to_string()))?;
        if sha(&json) != self.record.render_sha256 {
            return Err(corrupt(
                "its render does not match its recorded sha256".to_string(),
            ));
        }
        serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))
    }
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn secrets_path(namespace: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/secrets")
}

fn request(method: &str, uri: &str, body: Option<&Value>) -> http::Request<Vec<u8>> {
    let mut request =
        http::Request::new(body.map(|b| b.to_string().into_bytes()).unwrap_or_default());
    *request.method_mut() = method.parse().unwrap_or(http::Method::GET);
    if let Ok(uri) = uri.parse() {
        *request.uri_mut() = uri;
    }
    if body.is_some() {
        request.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    request
}

/// Every record of `environment` in `namespace`, oldest first.
pub async fn list(
    cluster: &Cluster,
    namespace: &str,
    environment: &str,
) -> Result<Vec<Stored>, HistoryError> {
    let selector = format!("{RECORD_LABEL}=deploy,{ENVIRONMENT_LABEL}={environment}");
    let uri = format!(
        "{}?labelSelector={}",
        secrets_path(namespace),
        crate::inventory::url_encode(&selector)
    );
    let list = cluster.send_json(request("GET", &uri, None)).await?;
    let mut out = Vec::new();
    for secret in list
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if secret.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
            continue;
        }
        let name = secret
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let record = decode_record(&name, secret)?;
        out.push(Stored {
            record,
            name,
            secret: secret.clone(),
        });
    }
    out.sort_by_key(|s| s.record.sequence);
    Ok(out)
}

fn decode_record(name: &str, secret: &Value) -> Result<Record, HistoryError> {
    let corrupt = |message: String| HistoryError::Corrupt {
        name: name.to_string(),
        message,
    };
    let encoded = secret
        .pointer("/data/record.json")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt("no `record.json`".to_string()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| corrupt(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))
}

/// `driftsweep.deploy.<environment>.v<sequence>`.
pub fn name_of(environment: &str, sequence: u64) -> String {
    format!("driftsweep.deploy.{environment}.v{sequence}")
}

/// Compresses a render for a record; refuses one too large to store.
pub fn pack(render: &[Value]) -> Result<(Vec<u8>, String), HistoryError> {
    let json = serde_json::to_vec(render).unwrap_or_default();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let gz = encoder
        .write_all(&json)
        .and_then(|()| encoder.finish())
        .map_err(|e| HistoryError::Corrupt {
            name: "(new render)".to_string(),
            message: e.to_string(),
        })?;
    if gz.len() > MAX_RENDER_BYTES {
        return Err(HistoryError::TooLarge { size: gz.len() });
    }
    Ok((gz, sha(&json)))
}

fn secret_body(record: &Record, gz: &[u8]) -> Value {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let digests: serde_json::Map<String, Value> = record
        .services
        .iter()
        .map(|p| {
            (
                p.service.clone(),
                json!(format!("{}@{}", p.image, p.digest)),
            )
        })
        .collect();
    // What the audit's dashboard and success metrics measure, in metadata like the version:
    // the audit never reads a record's data.
    let mut annotations = serde_json::Map::new();
    annotations.insert(VERSION_ANNOTATION.to_string(), json!(record.version));
    annotations.insert(
        DIGESTS_ANNOTATION.to_string(),
        json!(Value::Object(digests).to_string()),
    );
    if let Some(seconds) = record.duration_seconds {
        annotations.insert(
            crate::report::dashboard::DURATION_ANNOTATION.to_string(),
            json!(format!("{seconds:.1}")),
        );
    }
    if let Some(to) = record.rollback_to {
        annotations.insert(
            crate::report::dashboard::ROLLBACK_TO_ANNOTATION.to_string(),
            json!(to.to_string()),
        );
    }
    if let Some(at) = record.finished_at {
        annotations.insert(
            crate::report::dashboard::FINISHED_ANNOTATION.to_string(),
            json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        );
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {
            "name": name_of(&record.environment, record.sequence),
            "namespace": record.namespace,
            "labels": {
                MANAGED_BY_LABEL: MANAGED_BY,
                RECORD_LABEL: "deploy",
                ENVIRONMENT_LABEL: record.environment,
                RESULT_LABEL: record.result.as_str(),
                "driftsweep.io/sequence": record.sequence.to_string(),
            },
            "annotations": annotations,
        },
        "data": {
            "record.json": b64(&serde_json::to_vec_pretty(record).unwrap_or_default()),
            "render.json.gz": b64(gz),
        },
    })
}

/// Writes a new record (its sequence one past the newest). A create, so two writers can
/// never share a sequence: the second is refused by the server.
pub async fn create(cluster: &Cluster, record: &Record, gz: &[u8]) -> Result<Stored, HistoryError> {
    let body = secret_body(record, gz);
    let secret = cluster
        .send_json(request(
            "POST",
            &secrets_path(&record.namespace),
            Some(&body),
        ))
        .await?;
    Ok(Stored {
        record: record.clone(),
        name: name_of(&record.environment, record.sequence),
        secret,
    })
}

/// Rewrites a record's outcome, at the resourceVersion read (its render unchanged).
pub async fn update(cluster: &Cluster, stored: &mut Stored) -> Result<(), HistoryError> {
    let gz = stored
        .secret
        .pointer("/data/render.json.gz")
        .and_then(Value::as_str)
        .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
        .unwrap_or_default();
    let mut body = secret_body(&stored.record, &gz);
    body["metadata"]["resourceVersion"] = stored.secret["metadata"]["resourceVersion"].clone();
    let uri = format!("{}/{}", secrets_path(&stored.record.namespace), stored.name);
    stored.secret = cluster.send_json(request("PUT", &uri, Some(&body))).await?;
    Ok(())
}

/// The oldest records (of `records`, oldest first) beyond `keep`, but never the newest good
/// one: it is what a rollback re-applies.
fn prunable(records: &[Stored], keep: usize) -> Vec<&Stored> {
    let newest_good = records
        .iter()
        .rev()
        .find(|s| s.record.good())
        .map(|s| s.record.sequence);
    let excess = records.len().saturating_sub(keep);
    records
        .iter()
        .take(excess)
        .filter(|s| Some(s.record.sequence) != newest_good)
        .collect()
}

/// Deletes the oldest records beyond `keep`, never the newest good one (the rollback target).
pub async fn prune(
    cluster: &Cluster,
    records: &[Stored],
    keep: usize,
) -> Result<usize, HistoryError> {
    let mut deleted = 0;
    for stored in prunable(records, keep) {
        let uri = format!("{}/{}", secrets_path(&stored.record.namespace), stored.name);
        let preconditions = json!({"apiVersion": "v1", "kind": "DeleteOptions",
            "preconditions": {"uid": stored.secret["metadata"]["uid"],
                "resourceVersion": stored.secret["metadata"]["resourceVersion"]}});
        match cluster
            .send_json(request("DELETE", &uri, Some(&preconditions)))
            .await
        {
            Ok(_) => deleted += 1,
            Err(e) if matches!(e.code(), Some(404 | 409)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_render_round_trips_through_a_record_and_is_checked() {
        let render = vec![
            json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v".repeat(10_000)}}),
        ];
        let (gz, sha) = pack(&render).unwrap();
        assert!(gz.len() < 1000, "compressed: {}", gz.len());
        let record = Record {
            schema: RECORD_SCHEMA.into(),
            environment: "staging".into(),
            namespace: "aia-staging".into(),
            sequence: 3,
            version: "v1.2.3".into(),
            commit: None,
            dirty: false,
            services: vec![Pin {
                service: "api".into(),
                image: "h/api".into(),
                tag: "1.2.3".into(),
                digest: "sha256:aa".into(),
            }],
            who: "me".into(),
            started_at: Utc::now(),
            finished_at: None,
            duration_seconds: None,
            result: Outcome::Pending,
            reason: None,
            rollback_to: None,
            render_sha256: sha,
            strategy: None,
            colour: None,
            previous_colour: None,
            scale_down_at: None,
        };
        let secret = secret_body(&record, &gz);
        assert_eq!(secret["type"], SECRET_TYPE);
        assert_eq!(secret["metadata"]["name"], "driftsweep.deploy.staging.v3");
        assert_eq!(
            secret["metadata"]["annotations"][DIGESTS_ANNOTATION],
            r#"{"api":"h/api@sha256:aa"}"#
        );
        let stored = Stored {
            record: decode_record("x", &secret).unwrap(),
            name: "x".into(),
            secret: secret.clone(),
        };
        assert_eq!(stored.render().unwrap(), render);
        let mut tampered = stored.clone();
        tampered.record.render_sha256 = "sha256:00".into();
        assert!(
            tampered
                .render()
                .unwrap_err()
                .to_string()
                .contains("sha256")
        );
    }

    #[test]
    fn pruning_keeps_the_newest_good_record_however_old() {
        let stored = |sequence: u64, result: Outcome| {
            let mut record: Record = serde_json::from_value(json!({
                "schema": RECORD_SCHEMA, "environment": "production", "namespace": "aia",
                "sequence": sequence, "version": "v1.0.0", "services": [], "who": "me",
                "started_at": "2026-12-01T00:00:00Z", "result": "pending",
                "render_sha256": "sha256:00"}))
            .unwrap();
            record.result = result;
            Stored {
                record,
                name: format!("driftsweep.deploy.production.v{sequence}"),
                secret: Value::Null,
            }
        };
        let sequences = |records: &[Stored], keep| {
            prunable(records, keep)
                .iter()
                .map(|s| s.record.sequence)
                .collect::<Vec<_>>()
        };
        // The only good record is the oldest, beyond `keep`: it stays, the failures go.
        let records = vec![
            stored(1, Outcome::Healthy),
            stored(2, Outcome::Failed),
            stored(3, Outcome::Failed),
            stored(4, Outcome::Failed),
        ];
        assert_eq!(sequences(&records, 2), [2]);
        // Older good records than the newest are history like any other.
        let records = vec![
            stored(1, Outcome::Healthy),
            stored(2, Outcome::Healthy),
            stored(3, Outcome::RolledBack),
        ];
        assert_eq!(sequences(&records, 1), [1]);
        assert_eq!(sequences(&records, 3), Vec::<u64>::new());
    }

    #[test]
    fn a_render_too_large_for_a_record_is_refused() {
        // Incompressible data: a different value per key.
        let data: serde_json::Map<String, Value> = (0..40_000)
            .map(|i| {
                (
                    format!("k{i}"),
                    json!(format!("{:x}", Sha256::digest(i.to_string().as_bytes()))),
                )
            })
            .collect();
        let render = vec![json!({"kind": "ConfigMap", "data": data})];
        assert!(matches!(pack(&render), Err(HistoryError::TooLarge { .. })));
    }
}
