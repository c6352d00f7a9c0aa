//! SARIF 2.1.0 output, so code-scanning tools (GitHub code scanning, GitLab, IDEs) show each
//! finding on its line in review. Paths are relative to `%SRCROOT%`, the folder lint ran in.

use serde_json::{Value, json};

use super::{Finding, LintReport, Place, Rule};

const SARIF_SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// A relative path as a URI reference: `/` separators, anything else outside the unreserved
/// set percent-encoded.
fn uri(path: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let path = path.replace('\\', "/");
    percent_encoding::utf8_percent_encode(&path, KEEP).to_string()
}

fn location(place: &Place, message: Option<&str>) -> Value {
    let mut l = json!({
        "physicalLocation": {
            "artifactLocation": {"uri": uri(&place.file), "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": place.line, "startColumn": place.column},
        }
    });
    if let Some(m) = message {
        l["message"] = json!({"text": m});
    }
    l
}

fn result(f: &Finding) -> Value {
    let index = Rule::ALL.iter().position(|r| *r == f.rule).unwrap_or(0);
    let mut r = json!({
        "ruleId": f.rule.code(),
        "ruleIndex": index,
        "level": "warning",
        "message": {"text": format!("{}\nfix: {}", f.message, f.fix)},
        "locations": [location(&f.place, None)],
    });
    if !f.related.is_empty() {
        r["relatedLocations"] = f
            .related
            .iter()
            .enumerate()
            .map(|(i, rel)| {
                let mut l = location(&rel.place, Some(&rel.message));
                l["id"] = json!(i + 1);
                l
            })
            .collect();
    }
    r
}

/// The SARIF log of one lint run.
pub fn render(report: &LintReport) -> String {
    let rules: Vec<Value> = Rule::ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.code(),
                "name": r.code(),
                "shortDescription": {"text": r.title()},
                "fullDescription": {"text": r.why()},
                "help": {"text": r.why()},
                "defaultConfiguration": {"level": "warning"},
            })
        })
        .collect();
    let root = std::env::current_dir()
        .ok()
        .map(|d| {
            let text = d.display().to_string().replace('\\', "/");
            let text = if text.ends_with('/') {
                text
            } else {
                format!("{text}/")
            };
            let text = if text.starts_with('/') {
                text
            } else {
                format!("/{text}")
            };
            format!("file://{}", uri(&text))
        })
        .unwrap_or_else(|| "file:///".to_string());
    let log = json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "driftsweep",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": root}},
            "artifacts": report.files.iter().map(|f| json!({
                "location": {"uri": uri(f), "uriBaseId": "%SRCROOT%"}
            })).collect::<Vec<_>>(),
            "results": report.findings.iter().map(result).collect::<Vec<_>>(),
            "columnKind": "unicodeCodePoints",
        }],
    });
    let mut text = serde_json::to_string_pretty(&log).unwrap_or_default();
    text.push('\n');
    text
}
