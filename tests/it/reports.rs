//! Snapshot tests of the three reports of the bundled example: any change to what users read
//! shows up in review.

use crate::driftsweep;

fn render(flag: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    let out = driftsweep(&[
        "run",
        "--policy",
        "policies/aia.yaml",
        "--snapshot",
        "examples/snapshot",
        "--now",
        "2026-11-29T07:30:00Z",
        flag,
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    std::fs::read_to_string(path).unwrap()
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r#""started_at": "[^"]+""#, r#""started_at": "[time]""#);
    s.add_filter(r#""run_id": "[^"]+""#, r#""run_id": "[run-id]""#);
    s.add_filter(
        r#""driftsweep_version": "[^"]+""#,
        r#""driftsweep_version": "[version]""#,
    );
    // The dashboard's repository version is `driftsweep version` of this checkout.
    s.add_filter(
        r"v\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?[-.]dev\.g[0-9a-f]{12}",
        "[repository-version]",
    );
    s
}

#[test]
fn json_report_of_the_example() {
    settings().bind(|| insta::assert_snapshot!(render("--report")));
}

#[test]
fn markdown_report_of_the_example() {
    settings().bind(|| insta::assert_snapshot!(render("--markdown")));
}

#[test]
fn html_report_of_the_example() {
    settings().bind(|| insta::assert_snapshot!(render("--html")));
}
