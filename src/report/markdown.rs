//! The Markdown report: summary first, then deletions grouped by provider and namespace or
//! repository, then drift, then what was kept and why (collapsed).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Report, display_name, group_of, mode_words, outcome_words, reasons_in_words};
use crate::evaluate::{Action, Finding};

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn age(report: &Report, f: &Finding) -> String {
    match f.created_at {
        Some(t) => format!("{}d", (report.evaluated_at - t).num_days()),
        None => "?".to_string(),
    }
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = write_report(report, &mut out);
    out
}

fn write_report(r: &Report, out: &mut String) -> std::fmt::Result {
    writeln!(
        out,
        "# driftsweep report: {} ({})",
        r.policy.name,
        mode_words(r.mode)
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Evaluated at {} from `{}` with policy `{}` ({}).",
        r.evaluated_at.format("%Y-%m-%d %H:%M UTC"),
        r.source,
        r.policy.path,
        &r.policy.digest
    )?;
    writeln!(out)?;
    writeln!(out, "## Summary")?;
    writeln!(out)?;
    match &r.blocked {
        Some(b) => writeln!(out, "**Blocked ({}):** {}", b.gate, b.message)?,
        None if r.mode == super::Mode::Enforce => writeln!(
            out,
            "**{}** ({} planned deletions). Now {} condemned, {} drifted, {} kept.",
            super::outcome_counts(r),
            r.actions().len(),
            r.summary.total.delete,
            r.summary.total.drift,
            r.summary.total.keep,
        )?,
        None => writeln!(
            out,
            "**{} to delete, {} drifted, {} kept.** {}",
            r.summary.total.delete,
            r.summary.total.drift,
            r.summary.total.keep,
            match r.mode {
                super::Mode::DryRun => "Nothing was deleted: this is a dry run.",
                super::Mode::Enforce => "",
            }
        )?,
    }
    writeln!(out)?;
    writeln!(out, "| provider | kind | delete | drift | keep |")?;
    writeln!(out, "| --- | --- | ---: | ---: | ---: |")?;
    for k in &r.summary.by_kind {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            k.provider, k.kind, k.counts.delete, k.counts.drift, k.counts.keep
        )?;
    }
    writeln!(out)?;
    if !r.errors.is_empty() {
        writeln!(out, "### Lists that could not be read")?;
        writeln!(out)?;
        writeln!(out, "Nothing these lists could protect is deleted.")?;
        writeln!(out)?;
        for g in &r.errors {
            writeln!(out, "- **{}** {}: {}", g.provider, g.what, g.error)?;
        }
        writeln!(out)?;
    }

    write_dashboard(r, out)?;

    let enforce = r.mode == super::Mode::Enforce;
    let deletions = r.actions();
    if enforce {
        writeln!(
            out,
            "## Planned deletions and their outcome ({})",
            deletions.len()
        )?;
    } else {
        writeln!(out, "## To delete ({})", deletions.len())?;
    }
    writeln!(out)?;
    if deletions.is_empty() {
        writeln!(out, "Nothing.")?;
        writeln!(out)?;
    }
    if super::plans_images(r) {
        writeln!(out, "> {}", super::IMAGES_NOT_RESTORABLE)?;
        writeln!(out)?;
    }
    let mut groups: BTreeMap<(crate::inventory::Provider, String), Vec<&Finding>> = BTreeMap::new();
    for f in &deletions {
        groups.entry((f.provider, group_of(f))).or_default().push(f);
    }
    for ((provider, group), items) in &groups {
        writeln!(out, "### {provider}: {group}")?;
        writeln!(out)?;
        if enforce {
            writeln!(out, "| # | kind | name | outcome |")?;
            writeln!(out, "| ---: | --- | --- | --- |")?;
        } else {
            writeln!(out, "| # | kind | name | age | why |")?;
            writeln!(out, "| ---: | --- | --- | ---: | --- |")?;
        }
        for f in items {
            if enforce {
                writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    f.plan_order.unwrap_or_default(),
                    f.kind,
                    cell(&display_name(f)),
                    cell(&outcome_words(f))
                )?;
            } else {
                writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    f.plan_order.unwrap_or_default(),
                    f.kind,
                    cell(&display_name(f)),
                    age(r, f),
                    cell(&reasons_in_words(f))
                )?;
            }
        }
        writeln!(out)?;
    }

    let drift: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.action == Action::Drift)
        .collect();
    writeln!(out, "## Drift ({})", drift.len())?;
    writeln!(out)?;
    if drift.is_empty() {
        writeln!(out, "None: the cluster matches the repository's manifests.")?;
    } else {
        writeln!(out, "| kind | namespace | name | what |")?;
        writeln!(out, "| --- | --- | --- | --- |")?;
        for f in &drift {
            let what = if f.drift.is_empty() {
                reasons_in_words(f)
            } else {
                f.drift
                    .iter()
                    .map(|d| {
                        format!(
                            "`{}`: repository `{}`, cluster `{}`",
                            d.container,
                            d.expected.as_deref().unwrap_or("(none)"),
                            d.actual.as_deref().unwrap_or("(none)")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            writeln!(
                out,
                "| {} | {} | {} | {} |",
                f.kind,
                f.namespace.as_deref().unwrap_or(""),
                cell(&f.name),
                cell(&what)
            )?;
        }
    }
    writeln!(out)?;

    let kept: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.action == Action::Keep)
        .collect();
    writeln!(out, "## Kept ({})", kept.len())?;
    writeln!(out)?;
    writeln!(out, "<details><summary>What was kept, and why</summary>")?;
    writeln!(out)?;
    writeln!(out, "| provider | kind | namespace | name | why |")?;
    writeln!(out, "| --- | --- | --- | --- | --- |")?;
    for f in &kept {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            f.provider,
            f.kind,
            f.namespace.as_deref().unwrap_or(""),
            cell(&display_name(f)),
            cell(&reasons_in_words(f))
        )?;
    }
    writeln!(out)?;
    writeln!(out, "</details>")?;
    Ok(())
}

/// The version dashboard, the success metrics and the trend.
fn write_dashboard(r: &Report, out: &mut String) -> std::fmt::Result {
    if let Some(d) = &r.dashboard {
        writeln!(out, "## Version dashboard")?;
        writeln!(out)?;
        writeln!(
            out,
            "Repository version: **{}**.",
            d.repository_version.as_deref().unwrap_or("unknown")
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "| environment | service | deployed | digest | repository version | last deploy |"
        )?;
        writeln!(out, "| --- | --- | --- | --- | --- | --- |")?;
        for row in &d.services {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&row.environment),
                cell(&row.service),
                cell(row.deployed_version.as_deref().unwrap_or("not running")),
                cell(
                    &row.deployed_digest
                        .as_deref()
                        .map(short_digest)
                        .unwrap_or_default()
                ),
                super::dashboard::match_words(row.matches),
                cell(&super::dashboard::last_deploy_words(
                    row.last_deploy.as_ref()
                ))
            )?;
        }
        writeln!(out)?;
    }
    if !r.metrics.is_empty() {
        writeln!(out, "## Success metrics")?;
        writeln!(out)?;
        writeln!(out, "| metric | value | target | status | how |")?;
        writeln!(out, "| --- | ---: | --- | --- | --- |")?;
        for m in &r.metrics {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&m.title),
                cell(&m.value_text()),
                cell(&m.target),
                match m.status {
                    super::dashboard::Status::Green => "green",
                    super::dashboard::Status::Red => "**red**",
                    super::dashboard::Status::Unknown => "unknown",
                },
                cell(&m.detail)
            )?;
        }
        writeln!(out)?;
    }
    if let Some(t) = &r.trend {
        writeln!(out, "## Trend ({} days)", t.days)?;
        writeln!(out)?;
        writeln!(out, "{}.", cell(&super::trend::words(t)))?;
        writeln!(out)?;
        if t.points.len() > 1 {
            writeln!(out, "| run | orphans planned | drift | failed lists |")?;
            writeln!(out, "| --- | ---: | ---: | ---: |")?;
            for p in &t.points {
                writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    p.at.format("%Y-%m-%d %H:%M"),
                    p.orphans,
                    p.drift,
                    p.failed_lists
                )?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

/// `sha256:` and the first 12 hex digits.
pub(crate) fn short_digest(d: &str) -> String {
    d.split(", ")
        .map(|d| match d.strip_prefix("sha256:") {
            Some(h) => format!("sha256:{}", &h[..h.len().min(12)]),
            None => d.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
