//! Alerts: a short message to a team's chat, besides the email, when something needs a look:
//! a failed deploy, an automatic rollback, version drift, a nightly audit that plans
//! deletions, and what an enforce run did. Google Chat and Slack incoming webhooks both take
//! the JSON built here. A webhook's URL is a credential (anyone holding it can post), so it
//! comes from the environment or a file, never from the policy, and is never printed.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::policy::{AlertEvent, AlertsPolicy};

/// How long one webhook may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(
        "`--alert`: the {channel} webhook's URL is not set\nhint: set {var} (or {var}_FILE to a file holding it); the policy's `alerts.{field}.url_env` names another variable"
    )]
    Missing {
        channel: &'static str,
        field: &'static str,
        var: String,
    },
    #[error("`--alert`: cannot read {var}_FILE `{path}`: {source}")]
    File {
        var: String,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "`--alert`: the {channel} webhook's URL (from {var}) is not an https:// URL\nhint: webhooks take https; plain http is accepted for 127.0.0.1 and localhost only"
    )]
    Insecure { channel: &'static str, var: String },
    #[error(
        "`--alert` needs an `alerts` section in the policy\nhint: `driftsweep policy reference` shows its fields"
    )]
    NoSection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    GoogleChat,
    Slack,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::GoogleChat => "google-chat",
            ChannelKind::Slack => "slack",
        }
    }

    fn field(self) -> &'static str {
        match self {
            ChannelKind::GoogleChat => "google_chat",
            ChannelKind::Slack => "slack",
        }
    }

    fn default_var(self) -> &'static str {
        match self {
            ChannelKind::GoogleChat => "DRIFTSWEEP_GOOGLE_CHAT_WEBHOOK_URL",
            ChannelKind::Slack => "DRIFTSWEEP_SLACK_WEBHOOK_URL",
        }
    }
}

/// One webhook, resolved.
pub struct Channel {
    pub kind: ChannelKind,
    /// The variable the URL came from: what messages name instead of the URL.
    pub var: String,
    url: reqwest::Url,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it is the credential.
        f.debug_struct("Channel")
            .field("kind", &self.kind)
            .field("var", &self.var)
            .finish()
    }
}

/// The alerts a run sends, resolved from the policy and the environment.
#[derive(Debug)]
pub struct AlertSettings {
    pub channels: Vec<Channel>,
    pub events: Vec<AlertEvent>,
}

impl AlertSettings {
    pub fn resolve(policy: Option<&AlertsPolicy>) -> Result<AlertSettings, AlertError> {
        let policy = policy.ok_or(AlertError::NoSection)?;
        let mut channels = Vec::new();
        for (kind, webhook) in [
            (ChannelKind::GoogleChat, &policy.google_chat),
            (ChannelKind::Slack, &policy.slack),
        ] {
            let Some(webhook) = webhook else { continue };
            let var = webhook
                .url_env
                .clone()
                .unwrap_or_else(|| kind.default_var().to_string());
            let text = secret(&var)?.ok_or_else(|| AlertError::Missing {
                channel: kind.as_str(),
                field: kind.field(),
                var: var.clone(),
            })?;
            let insecure = || AlertError::Insecure {
                channel: kind.as_str(),
                var: var.clone(),
            };
            let url = reqwest::Url::parse(text.trim()).map_err(|_| insecure())?;
            let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
            if !(url.scheme() == "https" || url.scheme() == "http" && loopback) {
                return Err(insecure());
            }
            channels.push(Channel { kind, var, url });
        }
        Ok(AlertSettings {
            channels,
            events: policy.on.clone(),
        })
    }
}

/// `var` (or the file `<var>_FILE` names), blank counting as unset.
fn secret(var: &str) -> Result<Option<String>, AlertError> {
    let value =
        crate::settings::secret_from_env(var).map_err(|(_, path, source)| AlertError::File {
            var: var.to_string(),
            path,
            source,
        })?;
    Ok(value.filter(|v| !v.trim().is_empty()))
}

/// One message.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub event: AlertEvent,
    /// One line: what happened, where.
    pub title: String,
    /// A few lines of detail.
    pub lines: Vec<String>,
    /// Where the full report is: a URL, or a path on the machine that ran.
    pub report: Option<String>,
}

/// What became of one alert on one channel: recorded in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertOutcome {
    pub channel: String,
    pub event: AlertEvent,
    /// `sent` or `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The browser link of an archived report.
pub fn archive_link(location: &crate::report::archive::GcsLocation) -> String {
    format!(
        "https://storage.cloud.google.com/{}",
        location_path(location)
    )
}

fn location_path(location: &crate::report::archive::GcsLocation) -> String {
    location.to_string().trim_start_matches("gs://").to_string()
}

/// The alerts a nightly audit or an enforce run raises.
pub fn for_report(report: &crate::report::Report, link: Option<String>) -> Vec<Alert> {
    use crate::report::Mode;
    let name = &report.policy.name;
    let mut alerts = Vec::new();
    match report.mode {
        Mode::Enforce => {
            let outcomes = report
                .summary
                .outcomes
                .iter()
                .map(|(status, n)| format!("{n} {status}"))
                .collect::<Vec<_>>();
            let failed = report.summary.outcomes.get("failed").copied().unwrap_or(0);
            let title = if report.blocked.is_some() {
                format!("{name}: enforce was blocked, nothing deleted")
            } else if failed > 0 {
                format!("{name}: enforce ran, {failed} deletion(s) failed")
            } else {
                format!("{name}: enforce ran")
            };
            let mut lines = vec![if outcomes.is_empty() {
                "no planned action".to_string()
            } else {
                outcomes.join(", ")
            }];
            if let Some(blocked) = &report.blocked {
                lines.push(format!("blocked: {}", blocked.message));
            }
            alerts.push(Alert {
                event: AlertEvent::Enforce,
                title,
                lines,
                report: link.clone(),
            });
        }
        Mode::DryRun => {
            let drifted: Vec<String> = report
                .findings
                .iter()
                .filter(|f| f.action == crate::evaluate::Action::Drift)
                .map(|f| match &f.namespace {
                    Some(ns) => format!("{} {ns}/{}", f.kind, f.name),
                    None => format!("{} {}", f.kind, f.name),
                })
                .collect();
            if !drifted.is_empty() {
                let mut lines: Vec<String> = drifted.iter().take(5).cloned().collect();
                if drifted.len() > 5 {
                    lines.push(format!("and {} more", drifted.len() - 5));
                }
                alerts.push(Alert {
                    event: AlertEvent::Drift,
                    title: format!(
                        "{name}: {} object(s) drifted from the repository",
                        drifted.len()
                    ),
                    lines,
                    report: link.clone(),
                });
            }
            let planned = report.summary.total.delete;
            if planned > 0 {
                let mut lines = vec![format!(
                    "review the report, then `driftsweep run --enforce --plan` it ({} list error(s))",
                    report.summary.errors
                )];
                if let Some(blocked) = &report.blocked {
                    lines.push(format!("blocked: {}", blocked.message));
                }
                alerts.push(Alert {
                    event: AlertEvent::DeletionsPlanned,
                    title: format!("{name}: {planned} deletion(s) planned"),
                    lines,
                    report: link,
                });
            }
        }
    }
    alerts
}

/// The alerts a deploy or rollback raises.
pub fn for_deploy(
    report: &crate::deploy::report::DeployReport,
    link: Option<String>,
) -> Vec<Alert> {
    let what = format!("{} {} {}", report.environment, report.mode, report.version);
    let reason = report.reason.clone().unwrap_or_default();
    let event = match report.result.as_str() {
        "failed" | "rollback-failed" => AlertEvent::DeployFailed,
        "rolled-back" if report.mode == "deploy" => AlertEvent::RolledBack,
        _ => return Vec::new(),
    };
    let title = match report.result.as_str() {
        "rollback-failed" => format!("{what}: FAILED, and the rollback failed too"),
        "rolled-back" => format!("{what}: failed, rolled back automatically"),
        _ => format!("{what}: FAILED"),
    };
    let mut lines = Vec::new();
    if !reason.is_empty() {
        lines.push(reason);
    }
    if let Some(rollback) = &report.rollback {
        lines.push(format!(
            "rollback to {}: {}",
            rollback.to_version, rollback.result
        ));
    }
    vec![Alert {
        event,
        title,
        lines,
        report: link,
    }]
}

/// The text both chats show: Slack's and Google Chat's `<url|label>` links, `*bold*`.
fn text_of(alert: &Alert) -> String {
    let mut text = format!("*{}*", alert.title);
    for line in &alert.lines {
        text.push_str("\n• ");
        text.push_str(line);
    }
    match &alert.report {
        Some(r) if r.starts_with("https://") || r.starts_with("http://") => {
            text.push_str(&format!("\n<{r}|the full report>"));
        }
        Some(r) => text.push_str(&format!("\nthe full report: {r}")),
        None => {}
    }
    text
}

/// The body an incoming webhook of `kind` takes.
pub fn payload(kind: ChannelKind, alert: &Alert) -> Value {
    let text = text_of(alert);
    match kind {
        ChannelKind::GoogleChat => json!({ "text": text }),
        ChannelKind::Slack => json!({
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        }),
    }
}

/// Sends every alert whose event the policy wants to every channel; one outcome each.
pub async fn send(settings: &AlertSettings, alerts: &[Alert]) -> Vec<AlertOutcome> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("driftsweep/", env!("CARGO_PKG_VERSION")))
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| format!("no HTTP client: {}", e.without_url()));
    let mut outcomes = Vec::new();
    for alert in alerts.iter().filter(|a| settings.events.contains(&a.event)) {
        for channel in &settings.channels {
            let error = match &client {
                Ok(client) => post(client, channel, &payload(channel.kind, alert))
                    .await
                    .err(),
                Err(e) => Some(e.clone()),
            };
            outcomes.push(AlertOutcome {
                channel: channel.kind.as_str().to_string(),
                event: alert.event,
                status: if error.is_none() { "sent" } else { "failed" }.to_string(),
                error,
            });
        }
    }
    outcomes
}

async fn post(client: &reqwest::Client, channel: &Channel, body: &Value) -> Result<(), String> {
    let webhook = format!("the {} webhook ({})", channel.kind.as_str(), channel.var);
    let response = client
        .post(channel.url.clone())
        .json(body)
        .send()
        .await
        // `without_url`: the URL is the credential.
        .map_err(|e| format!("{webhook}: {}", e.without_url()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().take(200).collect();
    Err(format!("{webhook} answered {status}: {}", text.trim()))
}

/// Prints what failed; answers whether everything was sent.
pub fn print_outcomes(outcomes: &[AlertOutcome]) -> bool {
    let mut ok = true;
    for o in outcomes {
        match &o.error {
            None => eprintln!("  alerted: {} ({})", o.channel, o.event.as_str()),
            Some(e) => {
                ok = false;
                eprintln!("error: the {} alert was not sent: {e}", o.event.as_str());
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            event: AlertEvent::DeployFailed,
            title: "production deploy v1.4.0: FAILED".to_string(),
            lines: vec!["progress-deadline-exceeded".to_string()],
            report: Some("https://storage.cloud.google.com/r/2026/12/01/x.json".to_string()),
        }
    }

    #[test]
    fn slack_gets_text_and_a_mrkdwn_section_google_chat_gets_text() {
        let chat = payload(ChannelKind::GoogleChat, &alert());
        assert_eq!(
            chat,
            json!({"text": "*production deploy v1.4.0: FAILED*\n• progress-deadline-exceeded\n<https://storage.cloud.google.com/r/2026/12/01/x.json|the full report>"})
        );
        let slack = payload(ChannelKind::Slack, &alert());
        assert_eq!(slack["text"], chat["text"]);
        assert_eq!(slack["blocks"][0]["type"], "section");
        assert_eq!(slack["blocks"][0]["text"]["type"], "mrkdwn");
        assert_eq!(slack["blocks"][0]["text"]["text"], chat["text"]);
    }

    #[test]
    fn a_report_path_is_named_not_linked() {
        let mut a = alert();
        a.report = Some("/var/reports/today.json".to_string());
        let text = payload(ChannelKind::GoogleChat, &a)["text"].to_string();
        assert!(
            text.contains("the full report: /var/reports/today.json"),
            "{text}"
        );
    }

    #[test]
    fn a_failed_deploy_and_an_automatic_rollback_alert_a_healthy_one_does_not() {
        use crate::deploy::report::DeployReport;
        let report = |mode: &str, result: &str| {
            let mut r = DeployReport::new(mode, false, "production", "aia", chrono::Utc::now());
            r.version = "v1.4.0".to_string();
            r.result = result.to_string();
            r.reason = Some("pod-stuck: CrashLoopBackOff".to_string());
            r
        };
        let events = |mode: &str, result: &str| {
            for_deploy(&report(mode, result), None)
                .iter()
                .map(|a| (a.event, a.title.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            events("deploy", "failed"),
            [(
                AlertEvent::DeployFailed,
                "production deploy v1.4.0: FAILED".to_string()
            )]
        );
        assert_eq!(
            events("deploy", "rollback-failed")[0].0,
            AlertEvent::DeployFailed
        );
        assert_eq!(
            events("deploy", "rolled-back"),
            [(
                AlertEvent::RolledBack,
                "production deploy v1.4.0: failed, rolled back automatically".to_string()
            )]
        );
        assert_eq!(events("rollback", "failed")[0].0, AlertEvent::DeployFailed);
        for (mode, result) in [
            ("deploy", "deployed"),
            ("deploy", "unchanged"),
            ("deploy", "would-deploy"),
            ("rollback", "rolled-back"),
        ] {
            assert_eq!(events(mode, result), [], "{mode} {result}");
        }
        let alert = &for_deploy(&report("deploy", "failed"), None)[0];
        assert_eq!(alert.lines, ["pod-stuck: CrashLoopBackOff"]);
    }
}
