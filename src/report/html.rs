//! The standalone HTML report: inline CSS only, tables, no scripts and no external resources,
//! so that it reads the same in a browser and in a mail client.

use std::collections::BTreeMap;
use std::fmt::Write;

use html_escape::encode_text as esc;

use super::{Report, display_name, group_of, mode_words, outcome_words, reasons_in_words};
use crate::evaluate::{Action, Finding};

const TABLE: &str = "border-collapse:collapse;width:100%;font-size:13px;margin:8px 0 16px";
const TH: &str = "text-align:left;border-bottom:2px solid #ccc;padding:4px 8px;background:#f5f5f5";
const TD: &str = "border-bottom:1px solid #eee;padding:4px 8px;vertical-align:top";
const NUM: &str = "border-bottom:1px solid #eee;padding:4px 8px;text-align:right";

/// How much the HTML shows: the file shows everything; an email cuts long lists (the JSON
/// attachment always has everything) and lists kept objects by reason, since mail clients
/// cannot collapse a section.
#[derive(Debug, Clone, Copy, Default)]
pub struct HtmlOptions {
    pub limit: Option<usize>,
    pub email: bool,
    pub chart: ChartImage,
}

/// How the trend chart is put in the page: inline SVG (the HTML file), a PNG the email
/// carries as an inline part (`cid:`), or the same PNG as a `data:` URI (the email preview,
/// a file with no parts beside it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChartImage {
    #[default]
    Svg,
    Cid,
    DataUri,
}

/// The Content-ID of the chart's PNG part in the email.
pub const CHART_CID: &str = "trend-chart@driftsweep";

/// Rows of each list in the HTML report file: 25,000 findings would make a page of 12 MB
/// that no browser shows well and nobody reads. The JSON report lists every one.
pub const HTML_LIST_LIMIT: usize = 1000;

/// The HTML report file: each list cut at `HTML_LIST_LIMIT` rows.
pub fn render(report: &Report) -> String {
    render_with(
        report,
        HtmlOptions {
            limit: Some(HTML_LIST_LIMIT),
            ..HtmlOptions::default()
        },
    )
}

pub fn render_with(report: &Report, options: HtmlOptions) -> String {
    let mut out = String::new();
    let _ = write_report(report, options, &mut out);
    out
}

fn more_row(out: &mut String, columns: usize, hidden: usize, email: bool) -> std::fmt::Result {
    if hidden > 0 {
        let whole = if email {
            "see the attached JSON report"
        } else {
            "the JSON report lists every one"
        };
        writeln!(
            out,
            "<tr><td colspan=\"{columns}\" style=\"{TD};color:#555;font-style:italic\">and {hidden} more ({whole})</td></tr>"
        )?;
    }
    Ok(())
}

fn header_row(out: &mut String, columns: &[&str]) -> std::fmt::Result {
    write!(out, "<tr>")?;
    for c in columns {
        write!(out, "<th style=\"{TH}\">{}</th>", esc(c))?;
    }
    writeln!(out, "</tr>")
}

fn row(out: &mut String, cells: &[String]) -> std::fmt::Result {
    write!(out, "<tr>")?;
    for c in cells {
        write!(out, "<td style=\"{TD}\">{}</td>", esc(c))?;
    }
    writeln!(out, "</tr>")
}

fn write_report(r: &Report, options: HtmlOptions, out: &mut String) -> std::fmt::Result {
    let limit = options.limit.unwrap_or(usize::MAX);
    let title = format!(
        "driftsweep report: {} ({})",
        r.policy.name,
        mode_words(r.mode)
    );
    writeln!(out, "<!DOCTYPE html>")?;
    writeln!(out, "<html lang=\"en\"><head><meta charset=\"utf-8\">")?;
    writeln!(out, "<title>{}</title></head>", esc(&title))?;
    writeln!(
        out,
        "<body style=\"font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#222;max-width:1100px;margin:16px auto;padding:0 12px\">"
    )?;
    writeln!(out, "<h1 style=\"font-size:22px\">{}</h1>", esc(&title))?;
    writeln!(
        out,
        "<p style=\"color:#555\">Evaluated at {} from <code>{}</code> with policy <code>{}</code> ({}).</p>",
        r.evaluated_at.format("%Y-%m-%d %H:%M UTC"),
        esc(&r.source),
        esc(&r.policy.path),
        esc(&r.policy.digest)
    )?;

    writeln!(out, "<h2 style=\"font-size:18px\">Summary</h2>")?;
    match &r.blocked {
        Some(b) => writeln!(
            out,
            "<p style=\"background:#fdecea;border-left:4px solid #c62828;padding:8px\"><strong>Blocked ({}):</strong> {}</p>",
            esc(&b.gate),
            esc(&b.message)
        )?,
        None if r.mode == super::Mode::Enforce => writeln!(
            out,
            "<p style=\"background:#eef6ee;border-left:4px solid #2e7d32;padding:8px\"><strong>{}</strong> ({} planned deletions). Now {} condemned, {} drifted, {} kept.</p>",
            esc(&super::outcome_counts(r)),
            r.actions().len(),
            r.summary.total.delete,
            r.summary.total.drift,
            r.summary.total.keep,
        )?,
        None => writeln!(
            out,
            "<p style=\"background:#eef6ee;border-left:4px solid #2e7d32;padding:8px\"><strong>{} to delete, {} drifted, {} kept.</strong>{}</p>",
            r.summary.total.delete,
            r.summary.total.drift,
            r.summary.total.keep,
            if r.mode == super::Mode::DryRun {
                " Nothing was deleted: this is a dry run."
            } else {
                ""
            }
        )?,
    }
    writeln!(out, "<table style=\"{TABLE}\">")?;
    writeln!(
        out,
        "<tr><th style=\"{TH}\">provider</th><th style=\"{TH}\">kind</th><th style=\"{TH};text-align:right\">delete</th><th style=\"{TH};text-align:right\">drift</th><th style=\"{TH};text-align:right\">keep</th></tr>"
    )?;
    for k in &r.summary.by_kind {
        writeln!(
            out,
            "<tr><td style=\"{TD}\">{}</td><td style=\"{TD}\">{}</td><td style=\"{NUM}\">{}</td><td style=\"{NUM}\">{}</td><td style=\"{NUM}\">{}</td></tr>",
            k.provider,
            esc(&k.kind),
            k.counts.delete,
            k.counts.drift,
            k.counts.keep
        )?;
    }
    writeln!(out, "</table>")?;
    if !r.errors.is_empty() {
        writeln!(
            out,
            "<div style=\"background:#fff8e1;border-left:4px solid #f9a825;padding:8px\"><strong>Lists that could not be read.</strong> Nothing they could protect is deleted.<ul>"
        )?;
        for g in &r.errors {
            writeln!(
                out,
                "<li>{} {}: {}</li>",
                g.provider,
                esc(&g.what),
                esc(&g.error)
            )?;
        }
        writeln!(out, "</ul></div>")?;
    }

    write_dashboard(r, options, out)?;

    let enforce = r.mode == super::Mode::Enforce;
    let deletions = r.actions();
    writeln!(
        out,
        "<h2 style=\"font-size:18px\">{} ({})</h2>",
        if enforce {
            "Planned deletions and their outcome"
        } else {
            "To delete"
        },
        deletions.len()
    )?;
    if deletions.is_empty() {
        writeln!(out, "<p>Nothing.</p>")?;
    }
    if super::plans_images(r) {
        writeln!(
            out,
            "<p><strong>{}</strong></p>",
            esc(super::IMAGES_NOT_RESTORABLE)
        )?;
    }
    let mut groups: BTreeMap<(crate::inventory::Provider, String), Vec<&Finding>> = BTreeMap::new();
    for f in &deletions {
        groups.entry((f.provider, group_of(f))).or_default().push(f);
    }
    for ((provider, group), items) in &groups {
        writeln!(
            out,
            "<h3 style=\"font-size:15px\">{}: {}</h3>",
            provider,
            esc(group)
        )?;
        writeln!(out, "<table style=\"{TABLE}\">")?;
        if enforce {
            header_row(out, &["#", "kind", "name", "outcome"])?;
        } else {
            header_row(out, &["#", "kind", "name", "age", "why"])?;
        }
        for f in items.iter().take(limit) {
            let order = f.plan_order.unwrap_or_default().to_string();
            if enforce {
                row(
                    out,
                    &[order, f.kind.clone(), display_name(f), outcome_words(f)],
                )?;
            } else {
                row(
                    out,
                    &[
                        order,
                        f.kind.clone(),
                        display_name(f),
                        f.created_at
                            .map(|t| format!("{}d", (r.evaluated_at - t).num_days()))
                            .unwrap_or_else(|| "?".to_string()),
                        reasons_in_words(f),
                    ],
                )?;
            }
        }
        more_row(
            out,
            if enforce { 4 } else { 5 },
            items.len().saturating_sub(limit),
            options.email,
        )?;
        writeln!(out, "</table>")?;
    }

    let drift: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.action == Action::Drift)
        .collect();
    writeln!(
        out,
        "<h2 style=\"font-size:18px\">Drift ({})</h2>",
        drift.len()
    )?;
    if drift.is_empty() {
        writeln!(
            out,
            "<p>None: the cluster matches the repository's manifests.</p>"
        )?;
    } else {
        writeln!(out, "<table style=\"{TABLE}\">")?;
        header_row(out, &["kind", "namespace", "name", "repository", "cluster"])?;
        for f in drift.iter().take(limit) {
            let (expected, actual) = if f.drift.is_empty() {
                (reasons_in_words(f), "missing".to_string())
            } else {
                (
                    f.drift
                        .iter()
                        .map(|d| {
                            format!(
                                "{}: {}",
                                d.container,
                                d.expected.as_deref().unwrap_or("(none)")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                    f.drift
                        .iter()
                        .map(|d| {
                            format!(
                                "{}: {}",
                                d.container,
                                d.actual.as_deref().unwrap_or("(none)")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            };
            row(
                out,
                &[
                    f.kind.clone(),
                    f.namespace.clone().unwrap_or_default(),
                    f.name.clone(),
                    expected,
                    actual,
                ],
            )?;
        }
        more_row(out, 5, drift.len().saturating_sub(limit), options.email)?;
        writeln!(out, "</table>")?;
    }

    let kept: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.action == Action::Keep)
        .collect();
    if options.email {
        let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &kept {
            for reason in &f.reasons {
                *by_reason.entry(reason.describe()).or_default() += 1;
            }
        }
        writeln!(
            out,
            "<h2 style=\"font-size:18px\">Kept ({})</h2>",
            kept.len()
        )?;
        writeln!(out, "<table style=\"{TABLE}\">")?;
        header_row(out, &["why", "objects"])?;
        for (reason, count) in by_reason {
            writeln!(
                out,
                "<tr><td style=\"{TD}\">{}</td><td style=\"{NUM}\">{count}</td></tr>",
                esc(reason)
            )?;
        }
        writeln!(out, "</table>")?;
        writeln!(
            out,
            "<p style=\"color:#555\">Every kept object, with its reasons, is in the attached JSON report.</p>"
        )?;
        writeln!(out, "</body></html>")?;
        return Ok(());
    }
    writeln!(
        out,
        "<details><summary style=\"font-size:18px;font-weight:bold;cursor:pointer\">Kept ({}), and why</summary>",
        kept.len()
    )?;
    writeln!(out, "<table style=\"{TABLE}\">")?;
    header_row(out, &["provider", "kind", "namespace", "name", "why"])?;
    for f in kept.iter().take(limit) {
        row(
            out,
            &[
                f.provider.to_string(),
                f.kind.clone(),
                f.namespace.clone().unwrap_or_default(),
                display_name(f),
                reasons_in_words(f),
            ],
        )?;
    }
    more_row(out, 5, kept.len().saturating_sub(limit), options.email)?;
    writeln!(out, "</table></details>")?;
    writeln!(out, "</body></html>")?;
    Ok(())
}

const GREEN: &str = "background:#e8f5e9;color:#1b5e20";
const RED: &str = "background:#fdecea;color:#b71c1c";
const GREY: &str = "background:#f5f5f5;color:#555";

fn badge(status: super::dashboard::Status) -> String {
    badge_text(status, status.as_str())
}

fn badge_text(status: super::dashboard::Status, text: &str) -> String {
    use super::dashboard::Status;
    let style = match status {
        Status::Green => GREEN,
        Status::Red => RED,
        Status::Unknown => GREY,
    };
    format!(
        "<span style=\"{style};padding:1px 8px;border-radius:8px;font-weight:600\">{}</span>",
        esc(text)
    )
}

/// The version dashboard, the success metrics and the trend chart.
fn write_dashboard(r: &Report, options: HtmlOptions, out: &mut String) -> std::fmt::Result {
    if let Some(d) = &r.dashboard {
        writeln!(out, "<h2 style=\"font-size:18px\">Version dashboard</h2>")?;
        writeln!(
            out,
            "<p>Repository version: <strong><code>{}</code></strong></p>",
            esc(d.repository_version.as_deref().unwrap_or("unknown"))
        )?;
        writeln!(out, "<table style=\"{TABLE}\">")?;
        header_row(
            out,
            &[
                "environment",
                "service",
                "deployed",
                "digest",
                "repository version",
                "last deploy",
            ],
        )?;
        for row in &d.services {
            let status = match row.matches {
                Some(true) => super::dashboard::Status::Green,
                Some(false) => super::dashboard::Status::Red,
                None => super::dashboard::Status::Unknown,
            };
            writeln!(
                out,
                "<tr><td style=\"{TD}\">{}</td><td style=\"{TD}\">{}</td><td style=\"{TD}\"><code>{}</code></td><td style=\"{TD}\"><code>{}</code></td><td style=\"{TD}\">{}</td><td style=\"{TD}\">{}</td></tr>",
                esc(&row.environment),
                esc(&row.service),
                esc(row.deployed_version.as_deref().unwrap_or("not running")),
                esc(&row
                    .deployed_digest
                    .as_deref()
                    .map(super::markdown_short_digest)
                    .unwrap_or_default()),
                badge_text(status, super::dashboard::match_words(row.matches)),
                esc(&super::dashboard::last_deploy_words(
                    row.last_deploy.as_ref()
                ))
            )?;
        }
        writeln!(out, "</table>")?;
    }
    if !r.metrics.is_empty() {
        writeln!(out, "<h2 style=\"font-size:18px\">Success metrics</h2>")?;
        writeln!(out, "<table style=\"{TABLE}\">")?;
        header_row(out, &["metric", "value", "target", "status", "how"])?;
        for m in &r.metrics {
            writeln!(
                out,
                "<tr><td style=\"{TD}\">{}</td><td style=\"{NUM}\"><strong>{}</strong></td><td style=\"{TD}\">{}</td><td style=\"{TD}\">{}</td><td style=\"{TD};color:#555\">{}</td></tr>",
                esc(&m.title),
                esc(&m.value_text()),
                esc(&m.target),
                badge(m.status),
                esc(&m.detail)
            )?;
        }
        writeln!(out, "</table>")?;
    }
    if let Some(t) = &r.trend {
        writeln!(
            out,
            "<h2 style=\"font-size:18px\">Last {} days</h2>",
            t.days
        )?;
        writeln!(
            out,
            "<p style=\"color:#555\">{}.</p>",
            esc(&super::trend::words(t))
        )?;
        if t.points.len() > 1 {
            let image = match options.chart {
                ChartImage::Svg => super::chart::svg(t).ok(),
                ChartImage::Cid => Some(format!(
                    "<img src=\"cid:{CHART_CID}\" width=\"{}\" height=\"{}\" alt=\"trend of orphans planned, drift and failed lists\">",
                    super::chart::WIDTH,
                    super::chart::HEIGHT
                )),
                ChartImage::DataUri => super::chart::png(t).ok().map(|png| {
                    use base64::Engine;
                    format!(
                        "<img src=\"data:image/png;base64,{}\" width=\"{}\" height=\"{}\" alt=\"trend of orphans planned, drift and failed lists\">",
                        base64::engine::general_purpose::STANDARD.encode(png),
                        super::chart::WIDTH,
                        super::chart::HEIGHT
                    )
                }),
            };
            if let (Some(image), Some((start, end))) = (image, super::chart::span(t)) {
                let key = |colour: (u8, u8, u8), what: &str| {
                    format!(
                        "<span style=\"display:inline-block;width:10px;height:10px;background:{};margin:0 4px 0 12px\"></span>{what}",
                        super::chart::css(colour)
                    )
                };
                writeln!(
                    out,
                    "<table style=\"border-collapse:collapse;font-size:12px;color:#555\"><tr><td style=\"vertical-align:top;text-align:right;padding-right:4px\">{}</td><td>{image}</td></tr><tr><td style=\"vertical-align:bottom;text-align:right;padding-right:4px\">0</td><td><span style=\"float:right\">{}</span>{}</td></tr></table>",
                    super::chart::top(t),
                    end.format("%Y-%m-%d"),
                    start.format("%Y-%m-%d"),
                )?;
                writeln!(
                    out,
                    "<p style=\"font-size:12px;color:#555\">{}{}{}</p>",
                    key(super::chart::ORPHANS, "orphans planned"),
                    key(super::chart::DRIFT, "drift"),
                    key(super::chart::FAILED, "failed lists")
                )?;
            }
        }
    }
    Ok(())
}
