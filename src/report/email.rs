//! Email delivery of a report: one message per run, plain text and HTML alternatives, the
//! JSON report attached (gzipped when large). Sending is retried with backoff; a report that
//! cannot be sent is still on disk, and the run exits 1.

use std::io::Write as _;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::html::{HtmlOptions, render_with};
use super::{Report, display_name, reasons_in_words};
use crate::evaluate::Action;
use crate::policy::{EmailPolicy, SmtpTls};

/// Longest list an email shows; the attachment always has everything.
pub const EMAIL_LIST_LIMIT: usize = 50;
/// Attachments larger than this are gzipped.
pub const GZIP_ABOVE_BYTES: usize = 512 * 1024;
/// Delays between send attempts.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(3)];

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("`report.email.{field}`: `{value}` is not an email address")]
    Address { field: &'static str, value: String },
    #[error("{0} is set but {1} is not: set both, or neither for an unauthenticated relay")]
    HalfCredentials(&'static str, &'static str),
    #[error("cannot read `{name}` file `{path}`")]
    CredentialFile {
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the message")]
    Build(#[source] lettre::error::Error),
    // lettre's errors print their own cause, so they are carried as text, not as a
    // `#[source]` that would print the cause a second time.
    #[error("cannot reach SMTP server `{host}:{port}`: {message}")]
    Transport {
        host: String,
        port: u16,
        message: String,
    },
    #[error("sending to `{host}:{port}` failed after {attempts} attempts: {message}")]
    Send {
        host: String,
        port: u16,
        attempts: usize,
        message: String,
    },
}

/// Resolved delivery settings: the policy's addresses and relay, credentials from the
/// environment (never from the policy).
#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<(String, String)>,
}

fn env_secret(name: &str) -> Result<Option<String>, EmailError> {
    crate::settings::secret_from_env(name)
        .map_err(|(name, path, source)| EmailError::CredentialFile { name, path, source })
}

impl EmailSettings {
    pub fn resolve(policy: &EmailPolicy) -> Result<Self, EmailError> {
        let parse = |field: &'static str, value: &str| {
            value.parse::<Mailbox>().map_err(|_| EmailError::Address {
                field,
                value: value.to_string(),
            })
        };
        let from = parse("from", &policy.from)?;
        let to = policy
            .to
            .iter()
            .map(|t| parse("to", t))
            .collect::<Result<Vec<_>, _>>()?;
        let user = env_secret("DRIFTSWEEP_SMTP_USERNAME")?;
        let password = env_secret("DRIFTSWEEP_SMTP_PASSWORD")?;
        let credentials = match (user, password) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(EmailError::HalfCredentials(
                    "DRIFTSWEEP_SMTP_USERNAME",
                    "DRIFTSWEEP_SMTP_PASSWORD",
                ));
            }
            (None, Some(_)) => {
                return Err(EmailError::HalfCredentials(
                    "DRIFTSWEEP_SMTP_PASSWORD",
                    "DRIFTSWEEP_SMTP_USERNAME",
                ));
            }
        };
        Ok(Self {
            from,
            to,
            host: policy.smtp.host.clone(),
            port: policy.smtp.port,
            tls: policy.smtp.tls,
            credentials,
        })
    }
}

/// `[driftsweep] aia-prod dry-run: 12 to delete, 3 drifted, 0 errors`, with BLOCKED or
/// FAILED in front of the counts when the run was blocked or a list failed.
pub fn subject(report: &Report, target: &str) -> String {
    let mode = match report.mode {
        super::Mode::DryRun => "dry-run",
        super::Mode::Enforce => "enforce",
    };
    let failed = report.errors.iter().any(|g| g.failed);
    let state = match (&report.blocked, failed) {
        (_, true) => " FAILED",
        (Some(_), false) => " BLOCKED",
        (None, false) => "",
    };
    if report.mode == super::Mode::Enforce && report.blocked.is_none() {
        use crate::evaluate::OutcomeStatus as S;
        let failed_actions = report.outcome_count(S::Failed);
        let state = if failed || failed_actions > 0 {
            " FAILED"
        } else {
            ""
        };
        // What enforce did: an object already gone was not deleted by this run.
        return format!(
            "[driftsweep] {target} {mode}{state}: {}, {} error{}",
            super::outcome_counts(report),
            report.errors.len(),
            if report.errors.len() == 1 { "" } else { "s" }
        );
    }
    format!(
        "[driftsweep] {target} {mode}{state}: {} to delete, {} drifted, {} error{}",
        report.summary.total.delete,
        report.summary.total.drift,
        report.errors.len(),
        if report.errors.len() == 1 { "" } else { "s" }
    )
}

/// The plain-text alternative.
pub fn plain_text(report: &Report) -> String {
    let mut out = super::terminal(report);
    let enforce = report.mode == super::Mode::Enforce;
    let deletions = report.actions();
    if !deletions.is_empty() {
        out.push_str(if enforce {
            "\nPlanned deletions:\n"
        } else {
            "\nTo delete:\n"
        });
        for f in deletions.iter().take(EMAIL_LIST_LIMIT) {
            out.push_str(&format!(
                "  {:>3}. {} {} - {}\n",
                f.plan_order.unwrap_or_default(),
                f.kind,
                super::in_namespace(f, &display_name(f)),
                if enforce {
                    super::outcome_words(f)
                } else {
                    reasons_in_words(f)
                }
            ));
        }
        if deletions.len() > EMAIL_LIST_LIMIT {
            out.push_str(&format!(
                "  and {} more\n",
                deletions.len() - EMAIL_LIST_LIMIT
            ));
        }
    }
    let drift: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.action == Action::Drift)
        .collect();
    if !drift.is_empty() {
        out.push_str("\nDrift:\n");
        for f in drift.iter().take(EMAIL_LIST_LIMIT) {
            out.push_str(&format!(
                "  {} {} - {}\n",
                f.kind,
                super::in_namespace(f, &f.name),
                reasons_in_words(f)
            ));
            for d in &f.drift {
                out.push_str(&format!(
                    "      {}: repository {}, cluster {}\n",
                    d.container,
                    d.expected.as_deref().unwrap_or("(none)"),
                    d.actual.as_deref().unwrap_or("(none)")
                ));
            }
        }
        if drift.len() > EMAIL_LIST_LIMIT {
            out.push_str(&format!("  and {} more\n", drift.len() - EMAIL_LIST_LIMIT));
        }
    }
    out.push_str("\nThe attached JSON report lists everything, kept objects included.\n");
    out
}

/// The JSON attachment: `(file name, content type, bytes)`.
pub fn attachment(report: &Report) -> (String, ContentType, Vec<u8>) {
    let json = report.json().into_bytes();
    let base = format!("driftsweep-{}", report.run_id);
    if json.len() <= GZIP_ABOVE_BYTES {
        return (
            format!("{base}.json"),
            ContentType::parse("application/json").unwrap_or(ContentType::TEXT_PLAIN),
            json,
        );
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(&json);
    let gz = encoder.finish().unwrap_or_default();
    (
        format!("{base}.json.gz"),
        ContentType::parse("application/gzip").unwrap_or(ContentType::TEXT_PLAIN),
        gz,
    )
}

/// The HTML alternative: the HTML report with long lists cut.
pub fn html_body(report: &Report) -> String {
    render_with(
        report,
        HtmlOptions {
            limit: Some(EMAIL_LIST_LIMIT),
            email: true,
            chart: super::ChartImage::Cid,
        },
    )
}

/// The HTML body as a file (`--email-preview`): the chart's PNG inline as a `data:` URI,
/// since a file has no message parts for `cid:` to name.
pub fn preview_body(report: &Report) -> String {
    render_with(
        report,
        HtmlOptions {
            limit: Some(EMAIL_LIST_LIMIT),
            email: true,
            chart: super::ChartImage::DataUri,
        },
    )
}

pub fn compose(
    report: &Report,
    target: &str,
    settings: &EmailSettings,
) -> Result<Message, EmailError> {
    let html = html_body(report);
    let (name, content_type, bytes) = attachment(report);
    let mut builder = Message::builder()
        .from(settings.from.clone())
        .subject(subject(report, target));
    for to in &settings.to {
        builder = builder.to(to.clone());
    }
    // The chart travels as an inline PNG part beside the HTML (multipart/related): mail
    // clients show it, where they would drop an inline SVG or a data: URI.
    let chart = report
        .trend
        .as_ref()
        .filter(|t| t.points.len() > 1)
        .and_then(|t| super::chart::png(t).ok());
    let alternative = match chart {
        Some(png) => MultiPart::alternative()
            .singlepart(SinglePart::plain(plain_text(report)))
            .multipart(
                MultiPart::related()
                    .singlepart(SinglePart::html(html))
                    .singlepart(Attachment::new_inline(super::CHART_CID.to_string()).body(
                        png,
                        ContentType::parse("image/png").unwrap_or(ContentType::TEXT_PLAIN),
                    )),
            ),
        None => MultiPart::alternative_plain_html(plain_text(report), html),
    };
    builder
        .multipart(
            MultiPart::mixed()
                .multipart(alternative)
                .singlepart(Attachment::new(name).body(bytes, content_type)),
        )
        .map_err(EmailError::Build)
}

fn transport(settings: &EmailSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, EmailError> {
    let transport_err = |e: lettre::transport::smtp::Error| EmailError::Transport {
        host: settings.host.clone(),
        port: settings.port,
        message: e.to_string(),
    };
    let builder = match settings.tls {
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
            .map_err(transport_err)?,
        SmtpTls::Implicit => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host).map_err(transport_err)?
        }
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host),
    };
    let mut builder = builder
        .port(settings.port)
        .timeout(Some(Duration::from_secs(30)));
    if let Some((user, password)) = &settings.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

/// Sends `message`, retrying with backoff.
pub async fn send(settings: &EmailSettings, message: &Message) -> Result<(), EmailError> {
    let mailer = transport(settings)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match mailer.send(message.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_permanent() || attempt > RETRY_DELAYS.len() => {
                return Err(EmailError::Send {
                    host: settings.host.clone(),
                    port: settings.port,
                    attempts: attempt,
                    message: e.to_string(),
                });
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, "sending the report failed; retrying");
                tokio::time::sleep(RETRY_DELAYS[attempt - 1]).await;
            }
        }
    }
}
