//! Exit codes, errors and help: the CLI contract.

use serde_json::Value;

use crate::{driftsweep, stderr, stdout, write};

const POLICY: &str = "version: 1\nname: t\nkubernetes:\n  namespaces: [app]\n";

fn small_snapshot(dir: &std::path::Path) {
    write(
        dir,
        "snap/kubernetes/all.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: app, creationTimestamp: '2025-01-01T00:00:00Z'}\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: stray, creationTimestamp: '2025-01-01T00:00:00Z'}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p, namespace: app, creationTimestamp: '2025-01-01T00:00:00Z'}\n  spec: {containers: [{name: c, image: x}]}\n",
    );
}

#[test]
fn example_audit_writes_every_report_it_was_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r/report.json");
    let md = dir.path().join("r/report.md");
    let html = dir.path().join("r/report.html");
    let out = driftsweep(&[
        "run",
        "--dry-run",
        "--policy",
        "policies/aia.yaml",
        "--snapshot",
        "examples/snapshot",
        "--report",
        json.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).is_empty(),
        "stdout carries only data asked for"
    );
    assert!(
        stderr(&out).contains("plan: 44 deletions"),
        "{}",
        stderr(&out)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(report["schema"], "driftsweep.report/v1");
    assert_eq!(report["mode"], "dry-run");
    assert!(report["blocked"].is_null());
    assert!(
        std::fs::read_to_string(md)
            .unwrap()
            .starts_with("# driftsweep report: aia (dry run)")
    );
    let html = std::fs::read_to_string(html).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>")
            && !html.contains("<script")
            && !html.contains("http://")
    );
}

#[test]
fn json_goes_to_stdout_only_when_asked() {
    let out = driftsweep(&[
        "run",
        "--policy",
        "policies/aia.yaml",
        "--snapshot",
        "examples/snapshot",
        "--report",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("stdout is the JSON report");
    assert_eq!(report["summary"]["delete"], 44);
}

#[test]
fn fail_on_findings_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(dir.path(), "policy.yaml", POLICY);
    small_snapshot(dir.path());
    let snap = dir.path().join("snap");
    let args = [
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--snapshot",
        snap.to_str().unwrap(),
    ];
    assert_eq!(driftsweep(&args).status.code(), Some(0));
    let mut with_flag = args.to_vec();
    with_flag.push("--fail-on-findings");
    assert_eq!(driftsweep(&with_flag).status.code(), Some(3));
}

#[test]
fn a_malformed_policy_lists_every_problem_with_lines_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "bad.yaml",
        "version: 1\nname: t\nkubernetes:\n  namespaces: [app]\n  namespcaes: [x]\nregistry:\n  repositories: [r.io/a/b]\n  keep_recent: -3\ngcp:\n  project: p\n  buckets: {allowed: []}\nsafety:\n  max_deletions: lots\n",
    );
    for args in [
        vec!["policy", "check", policy.to_str().unwrap()],
        vec![
            "run",
            "--policy",
            policy.to_str().unwrap(),
            "--snapshot",
            "examples/snapshot",
        ],
    ] {
        let out = driftsweep(&args);
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(err.contains("4 problems"), "{err}");
        for needle in [
            "bad.yaml:5:3: `kubernetes.namespcaes`: unknown field",
            "bad.yaml:8:3: `registry.keep_recent`: -3 is less than the minimum of 0",
            "bad.yaml:11:13: `gcp.buckets.allowed`: an empty allowlist would delete every bucket",
            "bad.yaml:13:3: `safety.max_deletions`",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }
}

#[test]
fn a_malformed_snapshot_names_the_file_and_the_field_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(dir.path(), "policy.yaml", POLICY);
    write(
        dir.path(),
        "snap/kubernetes/cm.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": [{"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "app", "labels": ["x"]}}]}"#,
    );
    write(
        dir.path(),
        "snap2/gcp/firewalls.json",
        r#"{"items": [{"name": "a",}]}"#,
    );
    let out = driftsweep(&[
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--snapshot",
        dir.path().join("snap").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("cm.json`: items[0].metadata.labels: expected an object, found a list"),
        "{}",
        stderr(&out)
    );
    let out = driftsweep(&[
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--snapshot",
        dir.path().join("snap2").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("firewalls.json`: not valid JSON"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_inputs_are_explained() {
    let out = driftsweep(&[
        "run",
        "--policy",
        "policies/aia.yaml",
        "--snapshot",
        "no/such/dir",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"));
    let out = driftsweep(&[
        "run",
        "--policy",
        "nope.yaml",
        "--snapshot",
        "examples/snapshot",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read policy `nope.yaml`"),
        "{}",
        stderr(&out)
    );
    let out = driftsweep(&[
        "run",
        "--policy",
        "policies/aia.yaml",
        "--snapshot",
        "examples/snapshot",
        "--now",
        "tomorrow",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = driftsweep(&["run", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_failed_list_recorded_in_the_snapshot_exits_1_but_still_reports() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(dir.path(), "policy.yaml", POLICY);
    small_snapshot(dir.path());
    write(
        dir.path(),
        "snap/errors.json",
        r#"[{"provider": "kubernetes", "what": "Pods in all namespaces", "error": "403 Forbidden", "protects": {"type": "kubernetes-references"}}]"#,
    );
    let report = dir.path().join("report.json");
    let out = driftsweep(&[
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--snapshot",
        dir.path().join("snap").to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(report["errors"][0]["what"], "Pods in all namespaces");
    // The namespace decision does not rest on the failed list; it still stands.
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "stray" && f["action"] == "delete")
    );
}

#[test]
fn a_plan_over_max_deletions_is_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.yaml",
        "version: 1\nname: t\ngcp:\n  project: p\n  firewall_rules: {allowed: [keep-me]}\nsafety:\n  max_deletions: 1\n",
    );
    write(
        dir.path(),
        "snap/gcp/firewalls.json",
        r#"{"items": [{"name": "a", "creationTimestamp": "2025-01-01T00:00:00Z"}, {"name": "b", "creationTimestamp": "2025-01-01T00:00:00Z"}]}"#,
    );
    let out = driftsweep(&[
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--snapshot",
        dir.path().join("snap").to_str().unwrap(),
        "--report",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["blocked"]["gate"], "max-deletions");
    assert_eq!(
        (
            report["blocked"]["limit"].as_u64(),
            report["blocked"]["count"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert!(stderr(&out).contains("BLOCKED"));
}

#[test]
fn a_nul_byte_in_the_policy_or_the_plan_is_refused_with_its_offset_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    // Everything after the NUL, the protection of `stray` included, used to be ignored.
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        b"version: 1\nname: t\n# a comment \0 cut here\nkubernetes:\n  namespaces: [app]\n  protected_namespaces: [stray]\n",
    )
    .unwrap();
    small_snapshot(dir.path());
    for args in [
        vec!["policy", "check", policy.to_str().unwrap()],
        vec![
            "run",
            "--policy",
            policy.to_str().unwrap(),
            "--snapshot",
            dir.path().join("snap").to_str().unwrap(),
        ],
    ] {
        let out = driftsweep(&args);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("policy.yaml")
                && err.contains("byte 31 (line 3, column 13) is a NUL byte"),
            "{err}"
        );
    }

    // A plan is read the same way, before anything else is done with it.
    let policy = write(dir.path(), "good.yaml", POLICY);
    let plan = dir.path().join("plan.json");
    std::fs::write(&plan, b"{\"schema\": \"driftsweep.report/v1\xff\"}").unwrap();
    let out = driftsweep(&[
        "run",
        "--enforce",
        "--policy",
        policy.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
        "--backup",
        dir.path().join("backups").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("plan.json")
            && stderr(&out).contains("byte 32 (line 1, column 33) is not valid UTF-8"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_alias_bomb_policy_is_refused_with_the_limit_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let mut bomb =
        "version: 1\nname: bomb\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n".to_string();
    for (prev, next) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        let refs = vec![format!("*{prev}"); 9].join(", ");
        bomb.push_str(&format!("{next}: &{next} [{refs}]\n"));
    }
    let policy = write(dir.path(), "bomb.yaml", &bomb);
    let out = driftsweep(&["policy", "check", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("bomb.yaml:8:") && err.contains("more than the limit of `100000`"),
        "{err}"
    );
}

#[test]
fn policy_check_and_schema() {
    let out = driftsweep(&["policy", "check", "policies/aia.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("is valid"));
    let out = driftsweep(&["policy", "schema"]);
    let schema: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(schema["title"], "Policy");
    assert!(schema.to_string().contains("keep_recent"));
}

#[test]
fn help_explains_every_command_with_examples() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["policy", "check", "--help"],
        vec!["policy", "schema", "--help"],
        vec!["snapshot", "--help"],
        vec!["restore", "--help"],
        vec!["version", "--help"],
    ] {
        let out = driftsweep(&args);
        assert_eq!(out.status.code(), Some(0));
        assert!(stdout(&out).contains("Example"), "{args:?}");
    }
    let run_help = stdout(&driftsweep(&["run", "--help"]));
    for flag in [
        "--dry-run",
        "--policy",
        "--snapshot",
        "--report",
        "--markdown",
        "--html",
        "--fail-on-findings",
        "--now",
        "--version",
        "--kubeconfig",
        "--context",
        "--enforce",
        "--plan",
        "--no-review",
        "--backup",
    ] {
        assert!(run_help.contains(flag), "{flag} missing from run --help");
    }
}

#[test]
fn a_live_run_that_cannot_reach_its_cluster_fails_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.yaml",
        "version: 1\nname: t\nkubernetes:\n  namespaces: [app]\n",
    );
    // A cluster nobody listens for.
    let port = crate::services::free_port();
    let kubeconfig = write(
        dir.path(),
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n"
        ),
    );
    let out = driftsweep(&[
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--report",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(
        errors.len(),
        1,
        "one clear error, not one per list: {errors:?}"
    );
    assert_eq!(errors[0]["provider"], "kubernetes");
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach the cluster")
    );
    assert_eq!(report["summary"]["delete"], 0);

    // A kubeconfig that does not exist is bad input, named.
    let out = driftsweep(&[
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--kubeconfig",
        "no/such/kubeconfig",
        "--report",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no/such/kubeconfig"),
        "{}",
        stderr(&out)
    );
}
