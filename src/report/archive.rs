//! The report archive in Cloud Storage: every run's JSON report at
//! `PREFIX/YYYY/MM/DD/<run-id>.json`, so history is kept and a reviewed plan can be read back
//! from `gs://`. Uses the official `google-cloud-storage` client (its object reads and writes
//! are HTTP+JSON); `STORAGE_EMULATOR_HOST` points it at an emulator.

use std::fmt;
use std::str::FromStr;

use google_cloud_storage::client::Storage;

use super::Report;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("`{0}` is not a Cloud Storage location\nhint: write it as `gs://BUCKET/PREFIX`")]
    Location(String),
    #[error("cannot create the Cloud Storage client")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot write `{0}`")]
    Write(String, #[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot read `{0}`")]
    Read(String, #[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("`{0}` does not exist")]
    NotFound(String),
    #[error("`{0}` is not a driftsweep report")]
    Parse(String, #[source] serde_json::Error),
    #[error("`{0}`: {1}")]
    Input(String, crate::input::InputError),
}

/// `gs://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcsLocation {
    pub bucket: String,
    pub path: String,
}

impl FromStr for GcsLocation {
    type Err = ArchiveError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("gs://")
            .ok_or_else(|| ArchiveError::Location(s.to_string()))?;
        let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || bucket.contains(char::is_whitespace) {
            return Err(ArchiveError::Location(s.to_string()));
        }
        Ok(GcsLocation {
            bucket: bucket.to_string(),
            path: path.trim_matches('/').to_string(),
        })
    }
}

impl fmt::Display for GcsLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gs://{}/{}", self.bucket, self.path)
    }
}

impl GcsLocation {
    fn bucket_name(&self) -> String {
        format!("projects/_/buckets/{}", self.bucket)
    }

    /// Where a run's report goes under this prefix.
    pub fn for_report(&self, report: &Report) -> GcsLocation {
        let date = report.started_at.format("%Y/%m/%d");
        let object = format!("{date}/{}.json", report.run_id);
        GcsLocation {
            bucket: self.bucket.clone(),
            path: if self.path.is_empty() {
                object
            } else {
                format!("{}/{object}", self.path)
            },
        }
    }
}

/// A storage client: the emulator at `STORAGE_EMULATOR_HOST` with no credentials, else the
/// application default credentials (`DRIFTSWEEP_GCP_CREDENTIALS=anonymous` sends none).
pub async fn client() -> Result<Storage, ArchiveError> {
    use google_cloud_gax::retry_policy::RetryPolicyExt;
    // Bounded: an unreachable archive must fail the run in seconds, not after the client's
    // default five minutes.
    let mut builder = Storage::builder().with_retry_policy(
        google_cloud_storage::retry_policy::RetryableErrors
            .with_attempt_limit(4)
            .with_time_limit(std::time::Duration::from_secs(20)),
    );
    let emulator = std::env::var("STORAGE_EMULATOR_HOST")
        .ok()
        .filter(|h| !h.is_empty());
    let anonymous = emulator.is_some()
        || std::env::var("DRIFTSWEEP_GCP_CREDENTIALS").is_ok_and(|v| v == "anonymous");
    if let Some(host) = emulator {
        let endpoint = if host.contains("://") {
            host
        } else {
            format!("http://{host}")
        };
        builder = builder.with_endpoint(endpoint);
    }
    if anonymous {
        builder = builder
            .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build());
    }
    builder
        .build()
        .await
        .map_err(|e| ArchiveError::Client(Box::new(e)))
}

/// Stores `report` under `prefix`; returns where it went.
pub async fn store(
    client: &Storage,
    prefix: &GcsLocation,
    report: &Report,
) -> Result<GcsLocation, ArchiveError> {
    let target = prefix.for_report(report);
    client
        .write_object(target.bucket_name(), target.path.clone(), report.json())
        .set_content_type("application/json")
        .send_buffered()
        .await
        .map_err(|e| ArchiveError::Write(target.to_string(), Box::new(e)))?;
    Ok(target)
}

/// Reads a report back (a reviewed plan).
pub async fn read(client: &Storage, location: &GcsLocation) -> Result<Report, ArchiveError> {
    let limit = crate::input::PLAN;
    let bytes = get_bounded(client, location, limit.bytes)
        .await?
        .ok_or_else(|| ArchiveError::NotFound(location.to_string()))?;
    let text = crate::input::text(bytes, limit)
        .map_err(|e| ArchiveError::Input(location.to_string(), e))?;
    serde_json::from_str(&text).map_err(|e| ArchiveError::Parse(location.to_string(), e))
}

/// Writes one object (the backups use it too).
pub async fn put(
    client: &Storage,
    location: &GcsLocation,
    bytes: Vec<u8>,
    content_type: &str,
) -> Result<(), ArchiveError> {
    client
        .write_object(
            location.bucket_name(),
            location.path.clone(),
            bytes::Bytes::from(bytes),
        )
        .set_content_type(content_type)
        .send_buffered()
        .await
        .map_err(|e| ArchiveError::Write(location.to_string(), Box::new(e)))?;
    Ok(())
}

/// Reads one object; `None` when it does not exist.
pub async fn get(
    client: &Storage,
    location: &GcsLocation,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    get_bounded(client, location, u64::MAX).await
}

/// Reads one object, stopping one byte past `max` (the caller refuses what is too large).
async fn get_bounded(
    client: &Storage,
    location: &GcsLocation,
    max: u64,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    let read_err =
        |e: google_cloud_storage::Error| ArchiveError::Read(location.to_string(), Box::new(e));
    let mut response = match client
        .read_object(location.bucket_name(), location.path.clone())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) if e.http_status_code() == Some(404) => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = response.next().await.transpose().map_err(read_err)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > max {
            break;
        }
    }
    Ok(Some(bytes))
}

impl GcsLocation {
    /// `rel` under this location.
    pub fn join(&self, rel: &str) -> GcsLocation {
        GcsLocation {
            bucket: self.bucket.clone(),
            path: if self.path.is_empty() {
                rel.to_string()
            } else {
                format!("{}/{rel}", self.path)
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        let l: GcsLocation = "gs://aia-prod-reports/driftsweep/".parse().unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.path.as_str()),
            ("aia-prod-reports", "driftsweep")
        );
        assert!("s3://x".parse::<GcsLocation>().is_err());
        assert!("gs://".parse::<GcsLocation>().is_err());
    }
}
