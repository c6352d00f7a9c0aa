//! The 30-day trend: orphans planned, drift and failed lists of the earlier dry runs the
//! report archive holds, drawn as a small chart (SVG in the HTML page, PNG in the email, since
//! mail clients show images but not inline SVG).
//!
//! Reading the archive never fails a run: an archive that cannot be listed or read gives a
//! trend that says so, and the report is written and sent as always.

use std::time::Duration;

use chrono::{DateTime, Datelike, Months, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::archive::GcsLocation;
use super::{Mode, Report};

/// How far back the trend reaches.
pub const DAYS: i64 = 30;
/// Archived reports larger than this are skipped (their counts are all the trend reads).
const MAX_REPORT_BYTES: u64 = 64 * 1024 * 1024;
/// Reports read at most: a run a night for 30 days is 30; a run an hour, 720.
const MAX_REPORTS: usize = 1000;
/// All reading of the archive ends after this.
const DEADLINE: Duration = Duration::from_secs(60);

/// One archived dry run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    pub run_id: String,
    pub at: DateTime<Utc>,
    /// Objects planned for deletion.
    pub orphans: usize,
    pub drift: usize,
    /// Lists that failed or were incomplete.
    pub failed_lists: usize,
}

/// The report's `trend` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Where the runs were read from.
    pub archive: String,
    pub days: i64,
    /// Oldest first; this run last.
    pub points: Vec<TrendPoint>,
    /// Why the archive could not be read (the trend then shows what could be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Archived reports that could not be read or parsed, skipped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl TrendPoint {
    pub fn of(report: &Report) -> TrendPoint {
        TrendPoint {
            run_id: report.run_id.clone(),
            at: report.evaluated_at,
            orphans: report.summary.total.delete,
            drift: report.summary.total.drift,
            failed_lists: report.summary.errors,
        }
    }

    /// The counts of an archived report, read leniently: any `driftsweep.report/v1` has them.
    fn from_archived(v: &Value) -> Option<TrendPoint> {
        if v.get("schema").and_then(Value::as_str) != Some(super::SCHEMA)
            || v.get("mode").and_then(Value::as_str) != Some("dry-run")
        {
            return None;
        }
        let count = |k: &str| {
            v.pointer(&format!("/summary/{k}"))
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize
        };
        let at = v
            .get("evaluated_at")
            .or_else(|| v.get("started_at"))
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
            .with_timezone(&Utc);
        Some(TrendPoint {
            run_id: v.get("run_id")?.as_str()?.to_string(),
            at,
            orphans: count("delete"),
            drift: count("drift"),
            failed_lists: count("errors"),
        })
    }
}

/// The archive's JSON API and its credential (the emulator at `STORAGE_EMULATOR_HOST` takes
/// none), as the archive writer uses them.
struct Lister {
    http: reqwest::Client,
    endpoint: String,
    auth: crate::inventory::gcp_live::GcpAuth,
}

impl Lister {
    async fn new() -> Result<Lister, String> {
        let emulator = std::env::var("STORAGE_EMULATOR_HOST")
            .ok()
            .filter(|h| !h.is_empty());
        let auth = if emulator.is_some() {
            crate::inventory::gcp_live::GcpAuth::anonymous()
        } else {
            crate::inventory::gcp_live::GcpAuth::from_env().await?
        };
        let endpoint = match emulator {
            Some(h) if h.starts_with("http") => h.trim_end_matches('/').to_string(),
            Some(h) => format!("http://{h}"),
            None => "https://storage.googleapis.com".to_string(),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Lister {
            http,
            endpoint,
            auth,
        })
    }

    async fn get(&self, url: &str) -> Result<reqwest::Response, String> {
        let mut request = self.http.get(url);
        if let Some(token) = self.auth.bearer().await? {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        Ok(response)
    }

    /// `(name, size)` of every object under `prefix`, following pages.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, u64)>, String> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/storage/v1/b/{}/o?prefix={}&fields=items(name,size),nextPageToken",
                self.endpoint,
                crate::inventory::url_encode(bucket),
                crate::inventory::url_encode(prefix)
            );
            if let Some(t) = &token {
                url.push_str(&format!("&pageToken={}", crate::inventory::url_encode(t)));
            }
            let page: Value = self
                .get(&url)
                .await?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            for item in page
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
                let size = item
                    .get("size")
                    .and_then(|s| s.as_str().and_then(|s| s.parse().ok()).or(s.as_u64()))
                    .unwrap_or(0);
                out.push((name.to_string(), size));
            }
            token = page
                .get("nextPageToken")
                .and_then(Value::as_str)
                .map(str::to_string);
            if token.is_none() || out.len() > MAX_REPORTS * 4 {
                return Ok(out);
            }
        }
    }

    async fn read(&self, bucket: &str, name: &str) -> Result<Value, String> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}?alt=media",
            self.endpoint,
            crate::inventory::url_encode(bucket),
            crate::inventory::url_encode(name)
        );
        let bytes = self
            .get(&url)
            .await?
            .bytes()
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))
    }
}

/// The month folders (`PREFIX/YYYY/MM/`) the last `DAYS` days fall in.
fn month_prefixes(archive: &GcsLocation, now: DateTime<Utc>) -> Vec<String> {
    let start = now - chrono::Duration::days(DAYS);
    let mut month = start.date_naive().with_day(1).unwrap_or(start.date_naive());
    let mut out = Vec::new();
    while month <= now.date_naive() {
        let folder = month.format("%Y/%m/").to_string();
        out.push(if archive.path.is_empty() {
            folder
        } else {
            format!("{}/{folder}", archive.path)
        });
        match month.checked_add_months(Months::new(1)) {
            Some(next) => month = next,
            None => break,
        }
    }
    out
}

/// The trend from the archive's earlier dry runs, ending with this `report`.
pub async fn read(archive: &GcsLocation, report: &Report) -> Trend {
    let mut trend = Trend {
        archive: archive.to_string(),
        days: DAYS,
        points: Vec::new(),
        error: None,
        skipped: 0,
    };
    match tokio::time::timeout(DEADLINE, read_points(archive, report, &mut trend)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            trend.error = Some(format!("cannot read the report archive `{archive}`: {e}"))
        }
        Err(_) => {
            trend.error = Some(format!(
                "reading the report archive `{archive}` took longer than {} s; the trend shows what was read",
                DEADLINE.as_secs()
            ))
        }
    }
    finish(&mut trend, report);
    trend
}

async fn read_points(
    archive: &GcsLocation,
    report: &Report,
    trend: &mut Trend,
) -> Result<(), String> {
    let lister = Lister::new().await?;
    let since = report.evaluated_at - chrono::Duration::days(DAYS);
    let mut names = Vec::new();
    for prefix in month_prefixes(archive, report.evaluated_at) {
        names.extend(lister.list(&archive.bucket, &prefix).await?);
    }
    names.sort();
    // The newest first, so a cut keeps the recent end of the window.
    for (name, size) in names.into_iter().rev().take(MAX_REPORTS) {
        if !name.ends_with(".json") || name.ends_with(&format!("/{}.json", report.run_id)) {
            continue;
        }
        if size > MAX_REPORT_BYTES {
            trend.skipped += 1;
            continue;
        }
        match lister.read(&archive.bucket, &name).await {
            // Enforce reports are archived too; the trend is of the nightly dry runs.
            Ok(v) if v.get("mode").and_then(Value::as_str) == Some("enforce") => {}
            Ok(v) => match TrendPoint::from_archived(&v) {
                Some(p) if p.at >= since && p.at <= report.evaluated_at => trend.points.push(p),
                Some(_) => {}
                None => trend.skipped += 1,
            },
            Err(e) => {
                tracing::warn!(object = %name, error = %e, "archived report unreadable; skipped");
                trend.skipped += 1;
            }
        }
    }
    Ok(())
}

/// The trend when the archive could not even be tried: this run alone, and why.
pub fn unreadable(archive: &GcsLocation, report: &Report, why: &str) -> Trend {
    let mut trend = Trend {
        archive: archive.to_string(),
        days: DAYS,
        points: Vec::new(),
        error: Some(format!("cannot read the report archive `{archive}`: {why}")),
        skipped: 0,
    };
    finish(&mut trend, report);
    trend
}

/// Sorts the points and adds this run as the last one.
fn finish(trend: &mut Trend, report: &Report) {
    if report.mode == Mode::DryRun {
        trend.points.push(TrendPoint::of(report));
    }
    trend
        .points
        .sort_by(|a, b| (a.at, &a.run_id).cmp(&(b.at, &b.run_id)));
    trend.points.dedup_by(|a, b| a.run_id == b.run_id);
}

/// The trend in one line: `12 runs since 2026-10-30: orphans 30 → 21, drift 4 → 2, failed
/// lists 0 → 1`, with what could not be read.
pub fn words(t: &Trend) -> String {
    let mut text = match (t.points.first(), t.points.last()) {
        (Some(first), Some(last)) if t.points.len() > 1 => format!(
            "{} runs since {}: orphans planned {} → {}, drift {} → {}, failed lists {} → {}",
            t.points.len(),
            first.at.format("%Y-%m-%d"),
            first.orphans,
            last.orphans,
            first.drift,
            last.drift,
            first.failed_lists,
            last.failed_lists
        ),
        _ => format!(
            "no earlier run in the last {} days of `{}`",
            t.days, t.archive
        ),
    };
    if t.skipped > 0 {
        text.push_str(&format!(
            " ({} archived reports unreadable, skipped)",
            t.skipped
        ));
    }
    if let Some(e) = &t.error {
        text.push_str(&format!("; {e}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_spans_the_months_it_touches() {
        let archive: GcsLocation = "gs://b/driftsweep".parse().unwrap();
        let now = DateTime::parse_from_rfc3339("2026-11-29T07:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            month_prefixes(&archive, now),
            ["driftsweep/2026/10/", "driftsweep/2026/11/"]
        );
        let root: GcsLocation = "gs://b".parse().unwrap();
        let jan = DateTime::parse_from_rfc3339("2027-01-10T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(month_prefixes(&root, jan), ["2026/12/", "2027/01/"]);
    }

    #[test]
    fn only_dry_run_reports_count() {
        let v = serde_json::json!({"schema": "driftsweep.report/v1", "mode": "enforce", "run_id": "x", "evaluated_at": "2026-11-01T00:00:00Z", "summary": {"delete": 1}});
        assert!(TrendPoint::from_archived(&v).is_none());
        let v = serde_json::json!({"schema": "driftsweep.report/v1", "mode": "dry-run", "run_id": "x", "evaluated_at": "2026-11-01T00:00:00Z", "summary": {"delete": 4, "drift": 2, "errors": 1}});
        let p = TrendPoint::from_archived(&v).unwrap();
        assert_eq!((p.orphans, p.drift, p.failed_lists), (4, 2, 1));
    }
}
