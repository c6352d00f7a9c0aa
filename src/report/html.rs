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
}

pub fn render(report: &Report) -> String {
    render_with(report, HtmlOptions::default())
}

pub fn render_with(report: &Report, options: HtmlOptions) -> String {
    let mut out = String::new();
    let _ = write_report(report, options, &mut out);
    out
}

fn more_row(out: &mut String, columns: usize, hidden: usize) -> std::fmt::Result {
    if hidden > 0 {
        writeln!(
            out,
            "<tr><td colspan=\"{columns}\" style=\"{TD};color:#555;font-style:italic\">and {hidden} more (see the attached JSON report)</td></tr>"
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
        more_row(out, 5, drift.len().saturating_sub(limit))?;
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
    for f in &kept {
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
    writeln!(out, "</table></details>")?;
    writeln!(out, "</body></html>")?;
    Ok(())
}
