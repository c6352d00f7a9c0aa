//! The one-screen summary printed on stderr after a run.

use std::fmt::Write;

use super::{Report, mode_words};

/// Namespace deletions whose contents are listed on the terminal; the report lists all.
const NAMESPACE_NOTES: usize = 10;

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = write_summary(report, &mut out);
    out
}

fn write_summary(r: &Report, out: &mut String) -> std::fmt::Result {
    writeln!(
        out,
        "driftsweep {} of `{}` at {}",
        mode_words(r.mode),
        r.policy.name,
        r.evaluated_at.format("%Y-%m-%d %H:%M UTC")
    )?;
    writeln!(
        out,
        "  {:<12} {:>7} {:>7} {:>7}",
        "", "delete", "drift", "keep"
    )?;
    for (provider, c) in &r.summary.by_provider {
        writeln!(
            out,
            "  {:<12} {:>7} {:>7} {:>7}",
            provider.to_string(),
            c.delete,
            c.drift,
            c.keep
        )?;
    }
    for g in &r.errors {
        writeln!(
            out,
            "  error: {} {}: {} (nothing it protects is deleted)",
            g.provider, g.what, g.error
        )?;
    }
    if r.mode == super::Mode::Enforce && r.blocked.is_none() {
        use crate::evaluate::OutcomeStatus as S;
        writeln!(out, "  outcome: {}", super::outcome_counts(r))?;
        for f in r.actions().iter().filter(|f| {
            f.outcome
                .as_ref()
                .is_some_and(|o| matches!(o.status, S::Skipped | S::Failed | S::Disabled))
        }) {
            writeln!(
                out,
                "    {} {}: {}",
                f.kind,
                super::in_namespace(f, &f.name),
                super::outcome_words(f)
            )?;
        }
        return Ok(());
    }
    if super::plans_images(r) {
        writeln!(out, "  note: {}", super::IMAGES_NOT_RESTORABLE)?;
    }
    // A namespace takes its contents with it: say what, before the plan's count.
    let namespaces: Vec<_> = r
        .deletions()
        .into_iter()
        .filter_map(|f| {
            f.contents
                .as_ref()
                .filter(|c| !c.objects.is_empty())
                .map(|c| (f, c))
        })
        .collect();
    for (f, c) in namespaces.iter().take(NAMESPACE_NOTES) {
        writeln!(
            out,
            "  note: deleting namespace `{}` also deletes {}",
            f.name,
            c.describe()
        )?;
    }
    if namespaces.len() > NAMESPACE_NOTES {
        writeln!(
            out,
            "  note: and {} more namespaces with contents (see the report)",
            namespaces.len() - NAMESPACE_NOTES
        )?;
    }
    match &r.blocked {
        Some(b) => writeln!(out, "  BLOCKED: {}", b.message)?,
        None => writeln!(
            out,
            "  plan: {} deletion{}{}",
            r.summary.total.delete,
            if r.summary.total.delete == 1 { "" } else { "s" },
            if r.mode == super::Mode::DryRun {
                " (dry run: nothing deleted)"
            } else {
                ""
            }
        )?,
    }
    write_dashboard(r, out)
}

/// The version dashboard, the success metrics and the trend, a line each.
fn write_dashboard(r: &Report, out: &mut String) -> std::fmt::Result {
    if let Some(d) = &r.dashboard {
        writeln!(
            out,
            "  versions (repository {}):",
            d.repository_version.as_deref().unwrap_or("unknown")
        )?;
        for row in &d.services {
            writeln!(
                out,
                "    {:<11} {:<18} {:<16} {:<7} {}",
                row.environment,
                row.service,
                row.deployed_version.as_deref().unwrap_or("not running"),
                super::dashboard::match_words(row.matches),
                super::dashboard::last_deploy_words(row.last_deploy.as_ref())
            )?;
        }
    }
    if !r.metrics.is_empty() {
        writeln!(out, "  metrics:")?;
        for m in &r.metrics {
            writeln!(
                out,
                "    {:<24} {:>12}  target {:<9} {}",
                m.title,
                m.value_text(),
                m.target,
                m.status.as_str()
            )?;
        }
    }
    if let Some(t) = &r.trend {
        writeln!(out, "  trend: {}", super::trend::words(t))?;
    }
    Ok(())
}
