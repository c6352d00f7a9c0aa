//! `driftsweep lint` on fixture repositories: every rule fires at the exact line and column,
//! the product's own manifests are clean, and the SARIF log is valid SARIF 2.1.0.

use serde_json::Value;

use crate::{driftsweep, stderr, stdout};

fn lint_json(policy: &str) -> Value {
    let out = driftsweep(&["lint", "--policy", policy, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn places(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}:{}:{}",
                f["rule"].as_str().unwrap(),
                f["file"].as_str().unwrap(),
                f["line"],
                f["column"]
            )
        })
        .collect()
}

const FIXTURE: &str = "tests/fixtures/lint/policy.yaml";

#[test]
fn every_rule_fires_at_its_line_and_column() {
    let report = lint_json(FIXTURE);
    let d = "tests/fixtures/lint";
    let expected = [
        // Manifests first (the policy's `kubernetes.manifests`, files in name order), then
        // the files of `lint.paths` in the order the policy names them.
        format!("unsafe-rollout {d}/k8s/aia-api-copy.yaml:10:11"),
        format!("unsafe-rollout {d}/k8s/aia-api-copy.yaml:30:1"),
        format!("image-untagged {d}/k8s/aia-api-copy.yaml:38:18"),
        format!("missing-probes {d}/k8s/aia-api-copy.yaml:39:17"),
        format!("duplicate-object {d}/k8s/aia-api.yaml:4:9"),
        format!("unsafe-rollout {d}/k8s/aia-api.yaml:12:23"),
        format!("missing-probes {d}/k8s/aia-api.yaml:20:17"),
        format!("version-mismatch {d}/k8s/aia-api.yaml:21:18"),
        format!("pull-always-mutable {d}/k8s/aia-api.yaml:22:28"),
        format!("image-latest {d}/k8s/aia-api.yaml:26:19"),
        format!("image-unknown {d}/k8s/aia-api.yaml:26:19"),
        format!("image-latest {d}/k8s/kustomization.yaml:4:13"),
        format!("image-latest {d}/cloudbuild.yaml:3:28"),
        format!("version-mismatch {d}/cloudbuild.yaml:7:28"),
        format!("image-latest {d}/cloudbuild.yaml:9:5"),
        format!("image-untagged {d}/Dockerfile:4:29"),
        format!("image-unknown {d}/Dockerfile:6:6"),
        format!("version-mismatch {d}/docker-compose.yml:5:12"),
    ];
    let want = expected.to_vec();
    assert_eq!(places(&report), want, "in this order: {report:#}");
    for rule in [
        "image-latest",
        "image-untagged",
        "image-unknown",
        "version-mismatch",
        "duplicate-object",
        "missing-probes",
        "unsafe-rollout",
        "pull-always-mutable",
    ] {
        assert!(
            want.iter().any(|w| w.starts_with(&format!("{rule} "))),
            "{rule} is covered"
        );
    }
}

#[test]
fn a_duplicate_names_both_definitions() {
    let report = lint_json(FIXTURE);
    let dup = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "duplicate-object")
        .unwrap();
    assert_eq!(dup["file"], "tests/fixtures/lint/k8s/aia-api.yaml");
    let first = &dup["related"][0];
    assert_eq!(first["file"], "tests/fixtures/lint/k8s/aia-api-copy.yaml");
    assert_eq!(
        (first["line"].as_u64(), first["column"].as_u64()),
        (Some(5), Some(9))
    );
    assert!(
        dup["message"]
            .as_str()
            .unwrap()
            .contains("Deployment `aia-staging/aia-api`")
    );
    assert!(!dup["fix"].as_str().unwrap().is_empty());
}

#[test]
fn required_digests_make_every_tag_alone_a_finding() {
    let report = lint_json("tests/fixtures/lint/digests/policy.yaml");
    let d = "tests/fixtures/lint";
    assert_eq!(
        places(&report),
        [
            format!("image-not-pinned {d}/Dockerfile:2:6"),
            format!("image-untagged {d}/Dockerfile:4:29"),
            format!("image-not-pinned {d}/Dockerfile:6:6"),
        ]
    );
}

#[test]
fn the_products_own_manifests_are_clean() {
    let out = driftsweep(&[
        "lint",
        "--policy",
        "policies/aia.yaml",
        "--fail-on-findings",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("no findings in 4 files"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn findings_exit_3_only_when_asked_and_text_names_place_rule_and_fix() {
    let out = driftsweep(&["lint", "--policy", FIXTURE, "--fail-on-findings"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("tests/fixtures/lint/cloudbuild.yaml:3:28: image-latest: `us-docker.pkg.dev/aia-prod/aia/aia-api:latest` is tagged `latest`"),
        "{text}"
    );
    assert!(
        text.contains("\n  fix: tag the build with its version"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("18 findings in 6 files"),
        "{}",
        stderr(&out)
    );
    let out = driftsweep(&["lint", "--policy", FIXTURE]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn unreadable_input_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let policy = crate::write(
        dir.path(),
        "policy.yaml",
        "version: 1\nname: t\nkubernetes:\n  namespaces: [a]\n  manifests: [k8s]\n",
    );
    crate::write(dir.path(), "k8s/bad.yaml", "kind: [unclosed\n");
    let out = driftsweep(&["lint", "--policy", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad.yaml"), "{}", stderr(&out));
    assert!(stderr(&out).contains("not valid YAML"), "{}", stderr(&out));

    let policy = crate::write(
        dir.path(),
        "glob.yaml",
        "version: 1\nname: t\nlint:\n  paths: [nothing-*.yaml]\n",
    );
    let out = driftsweep(&["lint", "--policy", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`nothing-*.yaml`"),
        "{}",
        stderr(&out)
    );

    let out = driftsweep(&["lint", "--policy", "no/such/policy.yaml"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sarif_output_validates_against_the_sarif_2_1_0_schema() {
    let out = driftsweep(&["lint", "--policy", FIXTURE, "--format", "sarif"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::root().join("tests/fixtures/sarif-schema-2.1.0.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&log)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 18);
    let first = &results[0]["locations"][0]["physicalLocation"];
    assert_eq!(
        first["artifactLocation"]["uri"],
        "tests/fixtures/lint/k8s/aia-api-copy.yaml"
    );
    assert!(first["region"]["startLine"].as_u64().is_some());
    // A schema check that accepts anything would prove nothing.
    let mut broken = log.clone();
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!validator.is_valid(&broken));
}

#[test]
fn the_example_repository_shows_the_problems_its_users_listed() {
    let out = driftsweep(&["lint", "--policy", "examples/repository/policy.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    // `latest` on two lines of the Cloud Build file, the Deployment defined in two files.
    for line in [
        "examples/repository/cloudbuild.yaml:4:28: image-latest:",
        "examples/repository/cloudbuild.yaml:10:5: image-latest:",
        "examples/repository/k8s/production/hotfix-aia-api.yaml:5:9: duplicate-object: Deployment `aia-production/aia-api` is defined again here; first at examples/repository/k8s/production/aia-api.yaml:4:9",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    // The README shows this output as it is.
    let readme = std::fs::read_to_string(crate::root().join("README.md")).unwrap();
    assert!(
        readme.contains(&text),
        "README.md shows lint's output on examples/repository:\n{text}"
    );
}
