use super::*;

fn policy(yaml: &str) -> Policy {
    crate::policy::validate_source(yaml).expect("valid policy")
}

const POLICY: &str = "version: 1\nname: t\nregistry:\n  repositories: [r.io/p/api, r.io/p/web]\n";

fn lint_one(name: &str, kind: FileKind, text: &str) -> Vec<(Rule, usize, usize)> {
    let sources = vec![Source {
        display: name.to_string(),
        text: text.to_string(),
        kind,
    }];
    lint_sources(&policy(POLICY), &sources)
        .unwrap()
        .into_iter()
        .map(|f| (f.rule, f.place.line, f.place.column))
        .collect()
}

#[test]
fn substitutions_in_a_repository_match_the_repository_they_may_expand_to() {
    let found = lint_one(
        "cloudbuild.yaml",
        FileKind::Yaml,
        "steps:\n  - name: gcr.io/cloud-builders/docker:24.0.9\n    args: [push, 'r.io/$PROJECT_ID/api:latest']\n",
    );
    assert_eq!(found, vec![(Rule::ImageLatest, 3, 19)]);
}

#[test]
fn a_reference_that_is_only_a_variable_is_not_judged() {
    let found = lint_one(
        "cloudbuild.yaml",
        FileKind::Yaml,
        "steps:\n  - name: $_BUILDER\n    args: [build, -t, '${_IMAGE}', .]\n",
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn objects_of_a_list_are_linted_like_single_ones() {
    let text = "kind: List\napiVersion: v1\nitems:\n  - apiVersion: v1\n    kind: Pod\n    metadata: {name: p}\n    spec:\n      containers:\n        - {name: c, image: 'r.io/p/api:latest'}\n";
    let found = lint_one("list.yaml", FileKind::Yaml, text);
    assert_eq!(found, vec![(Rule::ImageLatest, 9, 29)]);
}

#[test]
fn a_dockerfile_base_named_by_an_unset_argument_is_not_judged() {
    let found = lint_one(
        "Dockerfile",
        FileKind::Dockerfile,
        "ARG BASE\nFROM ${BASE}\nFROM scratch\n",
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_percentage_max_unavailable_of_zero_is_safe() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  strategy:\n    rollingUpdate: {maxSurge: 25%, maxUnavailable: 0%}\n  template:\n    spec:\n      containers:\n        - name: c\n          image: r.io/p/api:${VERSION}\n          readinessProbe: {}\n          livenessProbe: {}\n";
    assert!(lint_one("d.yaml", FileKind::Yaml, text).is_empty());
    let risky = text.replace("maxUnavailable: 0%", "maxUnavailable: 10%");
    assert_eq!(
        lint_one("d.yaml", FileKind::Yaml, &risky),
        vec![(Rule::UnsafeRollout, 6, 52)]
    );
}

#[test]
fn an_unparsable_file_is_an_error_naming_it() {
    let sources = vec![Source {
        display: "bad.yaml".to_string(),
        text: "a: [1, 2\n".to_string(),
        kind: FileKind::Yaml,
    }];
    let err = lint_sources(&policy(POLICY), &sources).unwrap_err();
    assert!(err.to_string().contains("`bad.yaml`"), "{err}");
}

#[test]
fn json_manifests_have_lines_too() {
    let text = "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Pod\",\n  \"metadata\": {\"name\": \"p\"},\n  \"spec\": {\"containers\": [\n    {\"name\": \"c\", \"image\": \"r.io/p/api:latest\"}\n  ]}\n}\n";
    assert_eq!(
        lint_one("pod.json", FileKind::Json, text),
        vec![(Rule::ImageLatest, 6, 29)]
    );
}
