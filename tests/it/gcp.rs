//! The live GCP sources end to end: the real binary with the official clients pointed at the
//! fake GCP server in `tests/gcpserver/` (Compute, IAM, Certificate Manager) and at
//! fake-gcs-server (buckets).

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::cluster::outcomes;
use crate::services::{Service, fake_gcs, python_server};
use crate::{stderr, write};

pub struct FakeGcp {
    /// The process; stopped when this is dropped.
    pub service: Service,
}

impl FakeGcp {
    pub fn start() -> FakeGcp {
        let service = python_server("tests/gcpserver/fake_gcp.py", "the fake GCP server");
        let gcp = FakeGcp { service };
        // Operations finish on the first poll: the clients' polling backoff is real time.
        gcp.control("POST", "/_fake/config", &json!({"operation_polls": 1}));
        gcp
    }

    pub fn control(&self, method: &str, path: &str, body: &Value) -> Value {
        let (status, text) = Service::http_to(self.service.port, method, path, &body.to_string());
        assert!(status < 300, "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub fn seed(&self, body: Value) {
        self.control("POST", "/_fake/seed", &body);
    }

    pub fn fault(&self, fault: Value) {
        self.control("POST", "/_fake/faults", &fault);
    }

    /// Whether a GET of the resource at `path` finds it.
    pub fn exists(&self, path: &str) -> bool {
        let (status, body) = Service::http_to(self.service.port, "GET", path, "");
        assert!(
            status == 200 || status == 404,
            "GET {path}: {status} {body}"
        );
        status == 200
    }

    pub fn requests(&self) -> Vec<Value> {
        match self.control("GET", "/_fake/requests", &Value::Null) {
            Value::Array(a) => a,
            other => panic!("request log: {other}"),
        }
    }

    /// The paths of the DELETE requests the server received, in order.
    pub fn deletes(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r["method"] == "DELETE")
            .map(|r| r["path"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Whether every verdict on a key starting with `prefix` (`"TargetProxy "`) is keep.
pub(crate) fn all_keep(
    v: &std::collections::BTreeMap<String, (String, Vec<String>)>,
    prefix: &str,
) -> bool {
    v.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .all(|(_, (a, _))| a == "keep")
}

pub const PROJECT: &str = "aia-test";

/// The project of the tests: allowed and stray resources of every kind, the tricky in-use ones.
pub struct Project {
    pub gcp: FakeGcp,
    pub gcs: Service,
    pub dir: tempfile::TempDir,
}

pub fn project() -> Project {
    let gcp = FakeGcp::start();
    // More than one page of firewall rules (the client asks for 500 at a time).
    let mut firewalls: Vec<Value> = (0..501)
        .map(|i| json!({"name": format!("aia-allow-{i:03}")}))
        .collect();
    firewalls.push(json!({"name": "old-open-ssh"}));
    firewalls.push(json!({"name": "gke-aia-1234-all"}));
    gcp.seed(json!({
        "project": PROJECT,
        "firewalls": firewalls,
        "sslCertificates": [
            {"name": "aia-cert"}, {"name": "old-cert"}, {"name": "used-cert"}
        ],
        "targetHttpsProxies": [{"name": "lb-proxy", "sslCertificates": ["used-cert"]}],
        "serviceAccounts": [
            {"accountId": "aia-api", "displayName": "API"},
            {"accountId": "old-batch", "displayName": "gone"},
            {"email": format!("service-1@gcp-sa-aia.iam.gserviceaccount.com")}
        ],
        "certificates": [{"name": "aia-cm"}, {"name": "old-cm"}, {"name": "mapped-cm"}],
        "certificateMaps": [{"name": "lb-map"}],
        "certificateMapEntries": [{"map": "lb-map", "name": "www", "certificates": ["mapped-cm"]}]
    }));
    let gcs = fake_gcs(&["aia-assets", "old-empty", "old-full"]);
    let (status, body) = gcs.http(
        "POST",
        "/upload/storage/v1/b/old-full/o?uploadType=media&name=data.csv",
        "a,b\n",
    );
    assert!(status < 300, "{status} {body}");
    Project {
        gcp,
        gcs,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Project {
    pub fn policy(&self, extra: &str) -> PathBuf {
        write(
            self.dir.path(),
            "policy.yaml",
            &format!(
                "version: 1\nname: gcp\ngcp:\n  project: {PROJECT}\n  firewall_rules: {{allowed: [\"aia-*\"]}}\n  buckets: {{allowed: [\"aia-*\"]{extra}}}\n  service_accounts: {{allowed: [\"aia-*\"]}}\n  ssl_certificates: {{allowed: [\"aia-*\"]}}\nsafety:\n  min_age_hours: 0\n  max_deletions: 20\n"
            ),
        )
    }

    pub fn env(&self) -> Vec<(String, String)> {
        let gcp = format!("http://127.0.0.1:{}", self.gcp.service.port);
        vec![
            ("DRIFTSWEEP_GCP_COMPUTE_ENDPOINT".into(), gcp.clone()),
            ("DRIFTSWEEP_GCP_IAM_ENDPOINT".into(), gcp.clone()),
            ("DRIFTSWEEP_GCP_CERTIFICATEMANAGER_ENDPOINT".into(), gcp),
            (
                "STORAGE_EMULATOR_HOST".into(),
                format!("127.0.0.1:{}", self.gcs.port),
            ),
            ("DRIFTSWEEP_GCP_CREDENTIALS".into(), "anonymous".into()),
        ]
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_driftsweep"));
        cmd.args(args)
            .current_dir(crate::root())
            .env_remove("DRIFTSWEEP_POLICY")
            .env_remove("DRIFTSWEEP_BACKUP");
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn report(&self, extra_args: &[&str], name: &str) -> (Output, Value) {
        let path = self.path(name);
        let policy = self.policy("");
        let mut args = vec![
            "run",
            "--policy",
            policy.to_str().unwrap(),
            "--report",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra_args);
        let out = self.run(&args);
        let report = std::fs::read_to_string(&path)
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or(Value::Null);
        (out, report)
    }
}

/// `Kind name` → (action, reasons).
pub fn verdicts(report: &Value) -> std::collections::BTreeMap<String, (String, Vec<String>)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                format!(
                    "{} {}",
                    f["kind"].as_str().unwrap(),
                    f["name"].as_str().unwrap()
                ),
                (
                    f["action"].as_str().unwrap().to_string(),
                    f["reasons"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_str().unwrap().to_string())
                        .collect(),
                ),
            )
        })
        .collect()
}

fn sa(name: &str) -> String {
    format!("IamServiceAccount {name}@{PROJECT}.iam.gserviceaccount.com")
}

#[test]
fn a_live_gcp_audit_reads_every_page_keeps_what_is_in_use_and_replays_equal() {
    let p = project();
    // One throttled answer on the first page: retried.
    p.gcp.fault(json!({"method": "GET", "path": "/global/firewalls$", "status": 429, "retry_after": 1, "times": 1}));
    let (out, live) = p.report(&[], "live.json");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = verdicts(&live);
    let action = |key: &str| {
        v.get(key)
            .unwrap_or_else(|| {
                panic!(
                    "no verdict for {key}: {:?}",
                    v.keys()
                        .filter(|k| !k.contains("aia-allow"))
                        .collect::<Vec<_>>()
                )
            })
            .0
            .as_str()
    };
    assert_eq!(
        v.keys()
            .filter(|k| k.starts_with("FirewallRule aia-allow-"))
            .count(),
        501,
        "both pages read"
    );
    assert_eq!(action("FirewallRule old-open-ssh"), "delete");
    assert_eq!(action("FirewallRule gke-aia-1234-all"), "keep");
    assert_eq!(action("SslCertificate old-cert"), "delete");
    assert_eq!(
        action("SslCertificate used-cert"),
        "keep",
        "used by a proxy, whatever the allowlist"
    );
    assert!(
        v["SslCertificate used-cert"]
            .1
            .contains(&"in-use".to_string())
    );
    assert_eq!(action("Certificate old-cm"), "delete");
    assert_eq!(action("Certificate mapped-cm"), "keep");
    assert_eq!(action(&sa("old-batch")), "delete");
    assert_eq!(action(&sa("aia-api")), "keep");
    assert_eq!(
        action("IamServiceAccount service-1@gcp-sa-aia.iam.gserviceaccount.com"),
        "keep"
    );
    assert_eq!(action("Bucket old-empty"), "delete");
    assert_eq!(action("Bucket old-full"), "keep", "not empty");
    assert_eq!(action("Bucket aia-assets"), "keep");
    let firewall_lists = p
        .gcp
        .requests()
        .iter()
        .filter(|r| {
            r["method"] == "GET" && r["path"].as_str().unwrap().ends_with("/global/firewalls")
        })
        .count();
    assert_eq!(firewall_lists, 3, "a 429, then two pages");

    // The snapshot of the same project replays to the same verdicts.
    let snap = p.path("snap");
    let policy = p.policy("");
    let out = p.run(&[
        "snapshot",
        "--policy",
        policy.to_str().unwrap(),
        "--out",
        snap.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let now = live["evaluated_at"].as_str().unwrap().to_string();
    let (out, replay) = p.report(
        &["--snapshot", snap.to_str().unwrap(), "--now", &now],
        "replay.json",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(verdicts(&replay), v);
}

#[test]
fn a_disabled_api_is_reported_for_its_provider_and_protects_its_kind() {
    let p = project();
    p.gcp
        .fault(json!({"path": "/serviceAccounts$", "status": 403, "reason": "SERVICE_DISABLED"}));
    p.gcp
        .fault(json!({"path": "/targetHttpsProxies$", "status": 403}));
    let (out, report) = p.report(&[], "report.json");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = verdicts(&report);
    assert!(
        !v.keys().any(|k| k.starts_with("IamServiceAccount ")),
        "no account judged unread"
    );
    for key in ["SslCertificate old-cert", "Certificate old-cm"] {
        assert_eq!(
            v[key].0, "keep",
            "{key}: proxies unread, so nothing proves it unused"
        );
        assert!(
            v[key].1.contains(&"listing-incomplete".to_string()),
            "{key}: {:?}",
            v[key].1
        );
    }
    assert_eq!(
        v["FirewallRule old-open-ssh"].0, "delete",
        "other providers go on"
    );
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("SERVICE_DISABLED") && errors.contains("service accounts"),
        "{errors}"
    );
    assert!(errors.contains("forbidden"), "{errors}");
}

impl Project {
    /// A dry run (the plan), then enforce of it, both deciding as of `now`.
    fn plan_and_enforce(&self, policy: &std::path::Path, now: &str, tag: &str) -> (Output, Value) {
        let plan = self.path(&format!("plan-{tag}.json"));
        let out = self.run(&[
            "run",
            "--policy",
            policy.to_str().unwrap(),
            "--now",
            now,
            "--report",
            plan.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let outcome = self.path(&format!("outcome-{tag}.json"));
        let backup = self.path("backups");
        let out = self.run(&[
            "run",
            "--enforce",
            "--policy",
            policy.to_str().unwrap(),
            "--now",
            now,
            "--plan",
            plan.to_str().unwrap(),
            "--backup",
            backup.to_str().unwrap(),
            "--report",
            outcome.to_str().unwrap(),
        ]);
        let report = std::fs::read_to_string(&outcome)
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or(Value::Null);
        (out, report)
    }
}

/// `days` from now, a minute on so that what the test just made is not younger than "now".
fn now_plus(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days) + chrono::Duration::minutes(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[test]
fn enforce_deletes_gcp_resources_through_their_operations_and_skips_what_is_in_use() {
    let p = project();
    // Between the lists and the delete, a proxy starts using the certificate: the API refuses.
    p.gcp.fault(json!({
        "method": "DELETE", "path": "/sslCertificates/old-cert$", "status": 400,
        "reason": "resourceInUseByAnotherResource",
        "message": "The ssl_certificate resource 'old-cert' is already being used by 'new-proxy'"
    }));
    let policy = p.policy("");
    let (out, report) = p.plan_and_enforce(&policy, &now_plus(0), "1");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = outcomes(&report);
    assert_eq!(o["FirewallRule old-open-ssh"].0, "deleted", "{o:?}");
    assert!(o["FirewallRule old-open-ssh"].2, "backed up first");
    assert_eq!(o["Certificate old-cm"].0, "deleted", "{o:?}");
    assert_eq!(o["Bucket old-empty"].0, "deleted", "{o:?}");
    assert_eq!(o["SslCertificate old-cert"].0, "skipped");
    assert!(
        o["SslCertificate old-cert"]
            .1
            .contains("in use by another resource"),
        "{o:?}"
    );
    assert_eq!(o[&sa("old-batch")].0, "disabled", "first phase only");
    assert!(
        o[&sa("old-batch")]
            .1
            .contains("gcloud iam service-accounts enable")
    );

    let compute = |coll: &str, name: &str| {
        p.gcp.exists(&format!(
            "/compute/v1/projects/{PROJECT}/global/{coll}/{name}"
        ))
    };
    let cm = |name: &str| {
        p.gcp.exists(&format!(
            "/v1/projects/{PROJECT}/locations/global/certificates/{name}"
        ))
    };
    assert!(
        !compute("firewalls", "old-open-ssh") && !cm("old-cm"),
        "gone from the project"
    );
    assert!(compute("sslCertificates", "old-cert") && compute("sslCertificates", "used-cert"));
    assert!(cm("mapped-cm") && compute("firewalls", "gke-aia-1234-all"));
    // The firewall delete was a long-running operation, polled until DONE.
    assert!(p.gcp.requests().iter().any(
        |r| r["method"] == "GET" && r["path"].as_str().unwrap().contains("/global/operations/")
    ));
    let (status, _) = p.gcs.http("GET", "/storage/v1/b/old-empty", "");
    assert_eq!(status, 404);
    let (status, _) = p.gcs.http("GET", "/storage/v1/b/old-full", "");
    assert_eq!(status, 200, "a non-empty bucket is not planned");
}

#[test]
fn service_accounts_are_disabled_then_deleted_after_the_grace_days() {
    let p = project();
    let policy = p.policy("");
    let account = |p: &Project| {
        p.gcp.exists(&format!(
            "/v1/projects/{PROJECT}/serviceAccounts/old-batch@{PROJECT}.iam.gserviceaccount.com"
        ))
    };
    let (out, first) = p.plan_and_enforce(&policy, &now_plus(0), "1");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(outcomes(&first)[&sa("old-batch")].0, "disabled");
    assert!(account(&p), "disabled, not deleted");

    // Three days later: still within `disable_days` (7).
    let (out, second) = p.plan_and_enforce(&policy, &now_plus(3), "2");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = outcomes(&second);
    assert_eq!(o[&sa("old-batch")].0, "skipped", "{o:?}");
    assert!(o[&sa("old-batch")].1.contains("disable_days"), "{o:?}");
    assert!(account(&p));

    // Eight days later: deleted, with the undelete command.
    let (out, third) = p.plan_and_enforce(&policy, &now_plus(8), "3");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = outcomes(&third);
    assert_eq!(o[&sa("old-batch")].0, "deleted", "{o:?}");
    assert!(
        o[&sa("old-batch")]
            .1
            .contains("gcloud iam service-accounts undelete"),
        "{o:?}"
    );
    assert!(!account(&p));
    assert!(p.gcp.exists(&format!(
        "/v1/projects/{PROJECT}/serviceAccounts/aia-api@{PROJECT}.iam.gserviceaccount.com"
    )));
}

#[test]
fn a_non_empty_bucket_is_deleted_only_when_the_policy_says_so() {
    let p = project();
    let policy = p.policy(", delete_non_empty: true");
    let (out, report) = p.plan_and_enforce(&policy, &now_plus(0), "1");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = outcomes(&report);
    assert_eq!(o["Bucket old-full"].0, "deleted", "{o:?}");
    assert!(
        o["Bucket old-full"]
            .1
            .contains("object data is not backed up"),
        "{o:?}"
    );
    let (status, _) = p.gcs.http("GET", "/storage/v1/b/old-full", "");
    assert_eq!(status, 404);
    let (status, _) = p.gcs.http("GET", "/storage/v1/b/aia-assets", "");
    assert_eq!(status, 200);
}

#[test]
fn the_custom_roles_grant_exactly_the_permissions_of_the_calls() {
    use driftsweep::inventory::gcp_live::{auditor_permissions, enforcer_permissions};
    for (file, expected) in [
        ("gcp/roles/auditor.yaml", auditor_permissions()),
        ("gcp/roles/enforcer.yaml", enforcer_permissions()),
    ] {
        let text = std::fs::read_to_string(crate::root().join(file)).unwrap();
        let doc = &driftsweep::yaml::parse_documents(&text).unwrap()[0].value;
        let mut listed: Vec<&str> = doc["includedPermissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        listed.sort();
        assert_eq!(listed, expected, "{file}");
        assert!(
            doc["title"].is_string() && doc["stage"] == "GA",
            "{file}: a gcloud role file"
        );
    }
    let guide = std::fs::read_to_string(crate::root().join("docs/guide.md")).unwrap();
    assert!(guide.contains("gcp/roles/auditor.yaml") && guide.contains("gcp/roles/enforcer.yaml"));
}

#[test]
fn a_bucket_written_to_after_review_is_not_deleted() {
    let p = project();
    let policy = p.policy("");
    let policy = policy.to_str().unwrap();
    let plan = p.path("plan.json");
    let now = now_plus(0);
    let out = p.run(&[
        "run",
        "--policy",
        policy,
        "--now",
        &now,
        "--report",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // After the review, someone starts using the empty bucket.
    let (status, body) = p.gcs.http(
        "POST",
        "/upload/storage/v1/b/old-empty/o?uploadType=media&name=new.csv",
        "x\n",
    );
    assert!(status < 300, "{status} {body}");
    let outcome = p.path("outcome.json");
    let backup = p.path("backups");
    let out = p.run(&[
        "run",
        "--enforce",
        "--policy",
        policy,
        "--now",
        &now,
        "--plan",
        plan.to_str().unwrap(),
        "--backup",
        backup.to_str().unwrap(),
        "--report",
        outcome.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&outcome).unwrap()).unwrap();
    let o = outcomes(&report);
    assert_eq!(o["Bucket old-empty"].0, "skipped", "{o:?}");
    // The re-read sees the object, so the bucket is no longer condemned.
    assert!(o["Bucket old-empty"].1.contains("not-empty"), "{o:?}");
    let (status, _) = p.gcs.http("GET", "/storage/v1/b/old-empty", "");
    assert_eq!(status, 200, "still there, with its new object");
}

#[test]
fn an_account_someone_else_disabled_is_never_deleted() {
    let p = project();
    // Disabled by a person, with no record of when: driftsweep cannot know it is safe.
    p.gcp.seed(json!({
        "project": PROJECT,
        "serviceAccounts": [{"accountId": "old-manual", "disabled": true, "description": "off for now"}]
    }));
    let policy = p.policy("");
    let manual = |p: &Project| {
        p.gcp.exists(&format!(
            "/v1/projects/{PROJECT}/serviceAccounts/old-manual@{PROJECT}.iam.gserviceaccount.com"
        ))
    };
    for (days, tag) in [(0, "1"), (30, "2")] {
        let (out, report) = p.plan_and_enforce(&policy, &now_plus(days), tag);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let o = outcomes(&report);
        assert_eq!(o[&sa("old-manual")].0, "skipped", "{o:?}");
        assert!(
            o[&sa("old-manual")].1.contains("disabled by someone else"),
            "{o:?}"
        );
        assert!(manual(&p), "after {days} days");
    }
}

#[test]
fn a_gcp_resource_re_created_after_review_is_not_deleted() {
    let p = project();
    let policy = p.policy("");
    let policy = policy.to_str().unwrap();
    let plan = p.path("plan.json");
    let now = now_plus(0);
    let out = p.run(&[
        "run",
        "--policy",
        policy,
        "--now",
        &now,
        "--report",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // After the review the rule is deleted and made again under the same name: another id.
    let rule = format!("/compute/v1/projects/{PROJECT}/global/firewalls/old-open-ssh");
    let (status, op) = Service::http_to(p.gcp.service.port, "DELETE", &rule, "");
    assert_eq!(status, 200, "{op}");
    let op: Value = serde_json::from_str(&op).unwrap();
    let poll = format!(
        "/compute/v1/projects/{PROJECT}/global/operations/{}",
        op["name"].as_str().unwrap()
    );
    let (status, _) = Service::http_to(p.gcp.service.port, "GET", &poll, "");
    assert_eq!(status, 200);
    assert!(!p.gcp.exists(&rule));
    p.gcp
        .seed(json!({"project": PROJECT, "firewalls": [{"name": "old-open-ssh"}]}));

    let outcome = p.path("outcome.json");
    let backup = p.path("backups");
    let out = p.run(&[
        "run",
        "--enforce",
        "--policy",
        policy,
        "--now",
        &now,
        "--plan",
        plan.to_str().unwrap(),
        "--backup",
        backup.to_str().unwrap(),
        "--report",
        outcome.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&outcome).unwrap()).unwrap();
    let o = outcomes(&report);
    assert_eq!(o["FirewallRule old-open-ssh"].0, "skipped", "{o:?}");
    assert!(
        o["FirewallRule old-open-ssh"]
            .1
            .contains("changed since review"),
        "{o:?}"
    );
    assert!(p.gcp.exists(&rule), "the new rule stays");
}

/// A project with static addresses: more than a page of allowed regional ones, orphans
/// regional and global, and the ones that only look unused.
fn address_project() -> (FakeGcp, tempfile::TempDir, PathBuf) {
    let gcp = FakeGcp::start();
    let mut addresses: Vec<Value> = (0..501)
        .map(|i| {
            let region = if i % 2 == 0 {
                "us-central1"
            } else {
                "europe-west1"
            };
            json!({"name": format!("aia-ip-{i:03}"), "region": region})
        })
        .collect();
    addresses.extend([
        json!({"name": "old-ip", "region": "us-central1"}),
        json!({"name": "old-global-ip"}),
        json!({"name": "old-attached", "region": "us-central1", "users": ["fr-web"]}),
        json!({"name": "old-lb-ip", "users": ["global/forwardingRules/fr-lb"]}),
        json!({"name": "google-managed-services-default", "addressType": "INTERNAL",
               "purpose": "VPC_PEERING", "prefixLength": 16}),
        json!({"name": "a0b1c2d3e4", "region": "us-central1",
               "description": "{\"kubernetes.io/service-name\":\"aia-production/aia-api\"}"}),
    ]);
    gcp.seed(json!({
        "project": PROJECT,
        "addresses": addresses,
        "firewalls": [{"name": "old-open-ssh"}]
    }));
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: gcp\ngcp:\n  project: {PROJECT}\n  firewall_rules: {{allowed: [\"aia-*\"]}}\n  addresses: {{allowed: [\"aia-*\"]}}\nsafety:\n  min_age_hours: 0\n  max_deletions: 20\n"
        ),
    );
    (gcp, dir, policy)
}

/// The binary against the fake project's Compute and Cloud Logging endpoints.
pub(crate) fn run_with(gcp: &FakeGcp, args: &[&str]) -> Output {
    let endpoint = format!("http://127.0.0.1:{}", gcp.service.port);
    Command::new(env!("CARGO_BIN_EXE_driftsweep"))
        .args(args)
        .current_dir(crate::root())
        .env_remove("DRIFTSWEEP_POLICY")
        .env_remove("DRIFTSWEEP_BACKUP")
        .env("DRIFTSWEEP_GCP_COMPUTE_ENDPOINT", &endpoint)
        .env("DRIFTSWEEP_GCP_LOGGING_ENDPOINT", &endpoint)
        .env("DRIFTSWEEP_GCP_CREDENTIALS", "anonymous")
        .output()
        .unwrap()
}

/// `run --enforce` of the reviewed `plan`, as of `now`, backing up to `backup` and writing the
/// outcome to `outcome`.
pub(crate) fn enforce_plan(
    gcp: &FakeGcp,
    policy: &str,
    now: &str,
    plan: &std::path::Path,
    backup: &std::path::Path,
    outcome: &std::path::Path,
) -> Output {
    run_with(
        gcp,
        &[
            "run",
            "--enforce",
            "--policy",
            policy,
            "--now",
            now,
            "--plan",
            plan.to_str().unwrap(),
            "--backup",
            backup.to_str().unwrap(),
            "--report",
            outcome.to_str().unwrap(),
        ],
    )
}

pub(crate) fn read_report(path: &std::path::Path) -> Value {
    std::fs::read_to_string(path)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null)
}

#[test]
fn static_addresses_every_page_only_reserved_unused_ones_deleted_and_replayed_equal() {
    let (gcp, dir, policy) = address_project();
    let policy = policy.to_str().unwrap();
    let live = dir.path().join("live.json");
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--report",
            live.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_report(&live);
    let v = verdicts(&report);
    assert_eq!(
        v.keys().filter(|k| k.contains("/aia-ip-")).count(),
        501,
        "both pages of the aggregated list"
    );
    let action = |k: &str| v.get(k).map(|x| x.0.as_str()).unwrap_or("absent");
    assert_eq!(action("Address us-central1/old-ip"), "delete");
    assert_eq!(action("Address old-global-ip"), "delete");
    for kept in [
        "Address us-central1/old-attached",
        "Address old-lb-ip",
        "Address google-managed-services-default",
        "Address us-central1/a0b1c2d3e4",
        "Address us-central1/aia-ip-000",
    ] {
        assert_eq!(action(kept), "keep", "{kept}: {:?}", v.get(kept));
    }
    assert!(v["Address old-lb-ip"].1.contains(&"in-use".to_string()));
    let lb = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "old-lb-ip")
        .unwrap();
    assert!(
        lb["detail"]
            .as_str()
            .unwrap()
            .contains("forwardingRules/fr-lb"),
        "the referrer is named: {lb}"
    );
    let aggregated = gcp
        .requests()
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .ends_with("/aggregated/addresses")
        })
        .count();
    assert_eq!(aggregated, 2, "two pages");

    // A recorded snapshot replays to the same verdicts.
    let snap = dir.path().join("snap");
    let out = run_with(
        &gcp,
        &[
            "snapshot",
            "--policy",
            policy,
            "--out",
            snap.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(snap.join("gcp/addresses.json").is_file());
    let replay = dir.path().join("replay.json");
    let now = report["evaluated_at"].as_str().unwrap().to_string();
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--snapshot",
            snap.to_str().unwrap(),
            "--now",
            &now,
            "--report",
            replay.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(verdicts(&read_report(&replay)), v);

    // Enforce: after the review a forwarding rule starts using old-ip (status and users
    // change, the id does not): not deleted. old-global-ip goes through its operation.
    let plan = dir.path().join("plan.json");
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--now",
            &now,
            "--report",
            plan.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ip = format!("/compute/v1/projects/{PROJECT}/regions/us-central1/addresses/old-ip");
    let (_, body) = Service::http_to(gcp.service.port, "GET", &ip, "");
    let mut seeded: Value = serde_json::from_str(&body).unwrap();
    seeded["users"] = json!(["fr-new"]);
    seeded["status"] = json!("IN_USE");
    seeded["region"] = json!("us-central1");
    gcp.seed(json!({"project": PROJECT, "addresses": [seeded]}));
    let outcome = dir.path().join("outcome.json");
    let backup = dir.path().join("backups");
    let out = enforce_plan(&gcp, policy, &now, &plan, &backup, &outcome);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = outcomes(&read_report(&outcome));
    assert_eq!(o["Address old-global-ip"].0, "deleted", "{o:?}");
    assert!(o["Address old-global-ip"].2, "backed up first");
    assert_eq!(o["Address us-central1/old-ip"].0, "skipped", "{o:?}");
    assert!(gcp.exists(&ip), "the address now in use stays");
    assert!(!gcp.exists(&format!(
        "/compute/v1/projects/{PROJECT}/global/addresses/old-global-ip"
    )));
    assert!(gcp.exists(&format!(
        "/compute/v1/projects/{PROJECT}/global/addresses/google-managed-services-default"
    )));
    assert!(gcp.requests().iter().any(
        |r| r["method"] == "GET" && r["path"].as_str().unwrap().contains("/global/operations/")
    ));
}

#[test]
fn a_forbidden_or_partial_address_list_protects_only_addresses() {
    for fault in ["forbidden", "unreachable"] {
        let (gcp, dir, policy) = address_project();
        if fault == "forbidden" {
            gcp.fault(json!({"path": "/global/addresses$", "status": 403}));
        } else {
            gcp.control(
                "POST",
                "/_fake/config",
                &json!({"aggregated_unreachables": ["regions/asia-east1"]}),
            );
        }
        let path = dir.path().join("report.json");
        let out = run_with(
            &gcp,
            &[
                "run",
                "--policy",
                policy.to_str().unwrap(),
                "--report",
                path.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{fault}: {}", stderr(&out));
        let report = read_report(&path);
        let v = verdicts(&report);
        assert!(
            !v.keys().any(|k| k.starts_with("Address ")),
            "{fault}: no address judged from a partial list: {v:?}"
        );
        assert_eq!(v["FirewallRule old-open-ssh"].0, "delete", "{fault}");
        assert!(
            report["errors"].to_string().contains("static addresses"),
            "{fault}: {}",
            report["errors"]
        );
    }
}

#[test]
fn an_unattached_disk_is_snapshotted_then_deleted_and_an_attached_one_never() {
    let gcp = FakeGcp::start();
    let mut disks: Vec<Value> = (0..501)
        .map(|i| json!({"name": format!("aia-data-{i:03}"), "zone": "us-central1-a"}))
        .collect();
    disks.extend([
        json!({"name": "old-data", "zone": "us-central1-a"}),
        json!({"name": "old-boot", "zone": "europe-west1-b", "users": ["vm-1"]}),
        json!({"name": "pvc-0f1e2d3c", "zone": "us-central1-a",
               "description": "{\"kubernetes.io/created-for/pvc/name\":\"data-0\"}"}),
    ]);
    gcp.seed(json!({"project": PROJECT, "disks": disks}));
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: gcp\ngcp:\n  project: {PROJECT}\n  disks: {{allowed: [\"aia-*\"]}}\nsafety:\n  min_age_hours: 0\n  max_deletions: 20\n"
        ),
    );
    let policy = policy.to_str().unwrap();
    let plan = dir.path().join("plan.json");
    let now = now_plus(0);
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--now",
            &now,
            "--report",
            plan.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_report(&plan);
    let v = verdicts(&report);
    assert_eq!(
        v.keys().filter(|k| k.contains("/aia-data-")).count(),
        501,
        "both pages"
    );
    assert_eq!(v["Disk us-central1-a/old-data"].0, "delete");
    assert_eq!(v["Disk europe-west1-b/old-boot"].0, "keep");
    assert!(
        v["Disk europe-west1-b/old-boot"]
            .1
            .contains(&"in-use".to_string())
    );
    assert_eq!(v["Disk us-central1-a/pvc-0f1e2d3c"].0, "keep");

    // Replay of the recorded snapshot: the same verdicts.
    let snap = dir.path().join("snap");
    let out = run_with(
        &gcp,
        &[
            "snapshot",
            "--policy",
            policy,
            "--out",
            snap.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let replay = dir.path().join("replay.json");
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--snapshot",
            snap.to_str().unwrap(),
            "--now",
            &now,
            "--report",
            replay.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(verdicts(&read_report(&replay)), v);

    let outcome = dir.path().join("outcome.json");
    let backup = dir.path().join("backups");
    let out = enforce_plan(&gcp, policy, &now, &plan, &backup, &outcome);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = outcomes(&read_report(&outcome));
    assert_eq!(o["Disk us-central1-a/old-data"].0, "deleted", "{o:?}");
    assert!(o["Disk us-central1-a/old-data"].2, "its record backed up");
    assert!(
        o["Disk us-central1-a/old-data"]
            .1
            .contains("--source-snapshot"),
        "{o:?}"
    );
    let zone = format!("/compute/v1/projects/{PROJECT}/zones");
    assert!(!gcp.exists(&format!("{zone}/us-central1-a/disks/old-data")));
    assert!(gcp.exists(&format!("{zone}/europe-west1-b/disks/old-boot")));
    let requests = gcp.requests();
    let snapshot_at = requests
        .iter()
        .position(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .ends_with("/disks/old-data/createSnapshot")
        })
        .expect("a final snapshot was taken");
    let delete_at = requests
        .iter()
        .position(|r| {
            r["method"] == "DELETE" && r["path"].as_str().unwrap().ends_with("/disks/old-data")
        })
        .expect("then the delete");
    assert!(snapshot_at < delete_at, "snapshot before delete");
    let snapshots =
        gcp.control("GET", "/_fake/state", &Value::Null)["projects"][PROJECT]["snapshots"].clone();
    assert_eq!(snapshots.as_array().map(Vec::len), Some(1), "{snapshots}");
}

#[test]
fn a_disk_whose_final_snapshot_fails_is_not_deleted() {
    let gcp = FakeGcp::start();
    gcp.seed(json!({"project": PROJECT, "disks": [{"name": "old-data", "zone": "us-central1-a"}]}));
    gcp.fault(json!({"method": "POST", "path": "/createSnapshot$", "status": 403}));
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: gcp\ngcp:\n  project: {PROJECT}\n  disks: {{allowed: [\"aia-*\"]}}\nsafety:\n  min_age_hours: 0\n"
        ),
    );
    let policy = policy.to_str().unwrap();
    let plan = dir.path().join("plan.json");
    let now = now_plus(0);
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--now",
            &now,
            "--report",
            plan.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let outcome = dir.path().join("outcome.json");
    let backup = dir.path().join("backups");
    let out = enforce_plan(&gcp, policy, &now, &plan, &backup, &outcome);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let o = outcomes(&read_report(&outcome));
    assert_eq!(o["Disk us-central1-a/old-data"].0, "failed", "{o:?}");
    assert!(
        o["Disk us-central1-a/old-data"]
            .1
            .contains("final snapshot"),
        "{o:?}"
    );
    assert!(gcp.exists(&format!(
        "/compute/v1/projects/{PROJECT}/zones/us-central1-a/disks/old-data"
    )));
}

/// `days` ago, as Compute writes a creation time.
fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339()
}

/// A project of snapshots: more than a page of allowed ones, three disks' worth of history,
/// and the ones that only look expired (a live schedule's, a final one, one being made, the
/// CSI driver's).
fn snapshot_project() -> (FakeGcp, tempfile::TempDir, PathBuf) {
    let gcp = FakeGcp::start();
    gcp.seed(json!({"project": PROJECT, "disks": [
        {"name": "data", "zone": "us-central1-a", "resourcePolicies": ["daily"]}
    ]}));
    let mut snapshots: Vec<Value> = (0..501)
        .map(|i| json!({"name": format!("aia-keep-{i:03}"), "creationTimestamp": days_ago(400)}))
        .collect();
    let of = |name: &str, disk: &str, days: i64| {
        json!({"name": name, "sourceDisk": format!("us-central1-a/{disk}"),
               "creationTimestamp": days_ago(days)})
    };
    snapshots.extend([
        of("data-1", "data", 200),
        of("data-2", "data", 150),
        of("data-3", "data", 120),
        of("data-4", "data", 100),
        of("data-5", "data", 40),
        // The schedule of a disk that exists: the schedule's to expire.
        json!({"name": "auto-data-1", "sourceDisk": "us-central1-a/data",
               "sourceSnapshotSchedulePolicy": "daily", "creationTimestamp": days_ago(300)}),
        // A schedule whose disk and schedule are both gone: retention applies.
        json!({"name": "auto-gone-1", "sourceDisk": "us-central1-a/gone",
               "sourceSnapshotSchedulePolicy": "weekly", "creationTimestamp": days_ago(300)}),
        json!({"name": "auto-gone-2", "sourceDisk": "us-central1-a/gone",
               "sourceSnapshotSchedulePolicy": "weekly", "creationTimestamp": days_ago(310)}),
        json!({"name": "auto-gone-3", "sourceDisk": "us-central1-a/gone",
               "sourceSnapshotSchedulePolicy": "weekly", "creationTimestamp": days_ago(320)}),
        of("old-a", "old", 50),
        of("old-b", "old", 45),
        json!({"name": "ds-final-old-20250101000000", "sourceDisk": "us-central1-a/old",
               "labels": {"driftsweep-final-snapshot-of": "old"}, "creationTimestamp": days_ago(400)}),
        json!({"name": "creating-1", "sourceDisk": "us-central1-a/data", "status": "CREATING",
               "creationTimestamp": days_ago(400)}),
        of("snapshot-0f1e2d3c-aaaa", "data", 400),
    ]);
    gcp.seed(json!({"project": PROJECT, "snapshots": snapshots, "firewalls": [{"name": "old-open-ssh"}]}));
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: gcp\ngcp:\n  project: {PROJECT}\n  firewall_rules: {{allowed: [\"aia-*\"]}}\n  snapshots: {{allowed: [\"aia-*\"], keep_recent: 2, max_age_days: 30}}\nsafety:\n  min_age_hours: 0\n  max_deletions: 20\n"
        ),
    );
    (gcp, dir, policy)
}

#[test]
fn snapshots_every_page_retention_per_disk_replayed_equal_and_deleted_through_operations() {
    let (gcp, dir, policy) = snapshot_project();
    let policy = policy.to_str().unwrap();
    let now = now_plus(0);
    let plan = dir.path().join("plan.json");
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--now",
            &now,
            "--report",
            plan.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_report(&plan);
    let v = verdicts(&report);
    assert_eq!(
        v.keys()
            .filter(|k| k.starts_with("Snapshot aia-keep-"))
            .count(),
        501,
        "both pages"
    );
    let lists = gcp
        .requests()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/global/snapshots"))
        .count();
    assert_eq!(lists, 2, "two pages");
    let verdict = |name: &str| {
        v.get(&format!("Snapshot {name}"))
            .unwrap_or_else(|| panic!("no verdict for {name}"))
            .clone()
    };
    for expired in ["data-1", "data-2", "data-3", "auto-gone-3"] {
        assert_eq!(
            verdict(expired),
            ("delete".to_string(), vec!["expired".to_string()]),
            "{expired}"
        );
    }
    for (kept, reason) in [
        ("data-4", "recent-version"),
        ("data-5", "recent-version"),
        ("auto-gone-1", "recent-version"),
        ("auto-data-1", "managed-elsewhere"),
        ("old-a", "recent-version"),
        ("ds-final-old-20250101000000", "final-snapshot"),
        ("creating-1", "in-use"),
        ("snapshot-0f1e2d3c-aaaa", "system-managed"),
        ("aia-keep-000", "in-allowlist"),
    ] {
        let (action, reasons) = verdict(kept);
        assert_eq!(action, "keep", "{kept}: {reasons:?}");
        assert!(reasons.contains(&reason.to_string()), "{kept}: {reasons:?}");
    }
    let auto = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "auto-data-1")
        .unwrap();
    assert!(
        auto["detail"]
            .as_str()
            .unwrap()
            .contains("schedule `daily`"),
        "{auto}"
    );

    // A recorded snapshot replays to the same verdicts.
    let snap = dir.path().join("snap");
    let out = run_with(
        &gcp,
        &[
            "snapshot",
            "--policy",
            policy,
            "--out",
            snap.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        snap.join("gcp/snapshots.json").is_file() && snap.join("gcp/snapshotDisks.json").is_file()
    );
    let replay = dir.path().join("replay.json");
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--snapshot",
            snap.to_str().unwrap(),
            "--now",
            &now,
            "--report",
            replay.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(verdicts(&read_report(&replay)), v);
    // Without the disks beside it, a replay refuses rather than guess.
    std::fs::remove_file(snap.join("gcp/snapshotDisks.json")).unwrap();
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--snapshot",
            snap.to_str().unwrap(),
            "--now",
            &now,
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("snapshotDisks.json"),
        "{}",
        stderr(&out)
    );

    // Enforce: after the review data-2 is deleted and taken again under its name (another
    // id): not deleted. data-1 goes through its global operation.
    let coll = format!("/compute/v1/projects/{PROJECT}/global/snapshots");
    gcp.seed(json!({"project": PROJECT, "snapshots": [{"name": "data-2",
        "sourceDisk": "us-central1-a/data", "creationTimestamp": days_ago(150)}]}));
    let outcome = dir.path().join("outcome.json");
    let backup = dir.path().join("backups");
    let out = enforce_plan(&gcp, policy, &now, &plan, &backup, &outcome);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = outcomes(&read_report(&outcome));
    assert_eq!(o["Snapshot data-1"].0, "deleted", "{o:?}");
    assert!(o["Snapshot data-1"].2, "its record backed up first");
    assert_eq!(o["Snapshot data-2"].0, "skipped", "{o:?}");
    assert!(
        o["Snapshot data-2"].1.contains("id differs")
            || o["Snapshot data-2"].1.contains("re-created"),
        "{o:?}"
    );
    assert!(!gcp.exists(&format!("{coll}/data-1")));
    for kept in [
        "data-2",
        "auto-data-1",
        "ds-final-old-20250101000000",
        "creating-1",
        "data-4",
    ] {
        assert!(gcp.exists(&format!("{coll}/{kept}")), "{kept}");
    }
    assert!(gcp.requests().iter().any(
        |r| r["method"] == "GET" && r["path"].as_str().unwrap().contains("/global/operations/")
    ));
}

#[test]
fn a_forbidden_snapshot_or_disk_list_protects_only_snapshots() {
    for path in ["/global/snapshots$", "/aggregated/disks$"] {
        let (gcp, dir, policy) = snapshot_project();
        gcp.fault(json!({"path": path, "status": 403}));
        let report = dir.path().join("report.json");
        let out = run_with(
            &gcp,
            &[
                "run",
                "--policy",
                policy.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{path}: {}", stderr(&out));
        let report = read_report(&report);
        let v = verdicts(&report);
        assert!(
            !v.keys().any(|k| k.starts_with("Snapshot ")),
            "{path}: no snapshot judged without both lists"
        );
        assert_eq!(v["FirewallRule old-open-ssh"].0, "delete", "{path}");
        let errors = report["errors"].to_string();
        assert!(
            errors.contains("snapshots") && errors.contains("forbidden"),
            "{path}: {errors}"
        );
    }
}

/// A project with forwarding rules: more than a page of allowed regional ones, orphans
/// regional and global, and the ones that are kept however they look.
fn forwarding_rule_project() -> (FakeGcp, tempfile::TempDir, PathBuf) {
    let gcp = FakeGcp::start();
    let mut rules: Vec<Value> = (0..501)
        .map(|i| {
            let region = if i % 2 == 0 {
                "us-central1"
            } else {
                "europe-west1"
            };
            json!({"name": format!("aia-fr-{i:03}"), "region": region, "target": "aia-proxy"})
        })
        .collect();
    rules.extend([
        json!({"name": "old-fr", "region": "us-central1", "target": "old-proxy"}),
        json!({"name": "old-fr-2", "region": "europe-west1", "target": "old-proxy-2"}),
        json!({"name": "old-global-fr", "target": "old-web"}),
        json!({"name": "aia-web", "target": "aia-web"}),
        json!({"name": "old-ilb", "region": "us-central1", "loadBalancingScheme": "INTERNAL",
               "backendService": "projects/p/regions/us-central1/backendServices/old-be"}),
        json!({"name": "k8s2-fr-abcd-web", "target": "k8s2-ts-abcd-web"}),
        json!({"name": "a0b1c2d3e4", "region": "us-central1",
               "description": "{\"kubernetes.io/service-name\":\"aia-production/aia-api\"}"}),
    ]);
    gcp.seed(json!({
        "project": PROJECT,
        "forwardingRules": rules,
        "firewalls": [{"name": "old-open-ssh"}]
    }));
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: gcp\ngcp:\n  project: {PROJECT}\n  firewall_rules: {{allowed: [\"aia-*\"]}}\n  forwarding_rules: {{allowed: [\"aia-*\"]}}\nsafety:\n  min_age_hours: 0\n  max_deletions: 20\n"
        ),
    );
    (gcp, dir, policy)
}

#[test]
fn forwarding_rules_every_page_internal_and_gke_ones_kept_replayed_equal_and_enforced() {
    let (gcp, dir, policy) = forwarding_rule_project();
    let policy = policy.to_str().unwrap();
    let live = dir.path().join("live.json");
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--report",
            live.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_report(&live);
    let v = verdicts(&report);
    assert_eq!(
        v.keys().filter(|k| k.contains("/aia-fr-")).count(),
        501,
        "both pages of the aggregated list"
    );
    let action = |k: &str| v.get(k).map(|x| x.0.as_str()).unwrap_or("absent");
    for orphan in [
        "ForwardingRule us-central1/old-fr",
        "ForwardingRule europe-west1/old-fr-2",
        "ForwardingRule old-global-fr",
    ] {
        assert_eq!(action(orphan), "delete", "{orphan}");
    }
    for (kept, reason) in [
        ("ForwardingRule aia-web", "in-allowlist"),
        ("ForwardingRule us-central1/aia-fr-000", "in-allowlist"),
        ("ForwardingRule us-central1/old-ilb", "in-use"),
        ("ForwardingRule k8s2-fr-abcd-web", "system-managed"),
        ("ForwardingRule us-central1/a0b1c2d3e4", "system-managed"),
    ] {
        assert_eq!(action(kept), "keep", "{kept}: {:?}", v.get(kept));
        assert!(
            v[kept].1.contains(&reason.to_string()),
            "{kept}: {:?}",
            v[kept]
        );
    }
    let pages = |suffix: &str| {
        gcp.requests()
            .iter()
            .filter(|r| r["path"].as_str().unwrap().ends_with(suffix))
            .count()
    };
    assert_eq!(pages("/aggregated/forwardingRules"), 2, "two pages");
    assert_eq!(pages("/global/forwardingRules"), 1);

    // A recorded snapshot replays to the same verdicts.
    let snap = dir.path().join("snap");
    let out = run_with(
        &gcp,
        &[
            "snapshot",
            "--policy",
            policy,
            "--out",
            snap.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(snap.join("gcp/forwardingRules.json").is_file());
    let replay = dir.path().join("replay.json");
    let now = report["evaluated_at"].as_str().unwrap().to_string();
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--snapshot",
            snap.to_str().unwrap(),
            "--now",
            &now,
            "--report",
            replay.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(verdicts(&read_report(&replay)), v);

    // Enforce: after the review old-fr is pointed at another proxy (its fingerprint changes,
    // its id does not): not deleted. The other two go through their operations.
    let plan = dir.path().join("plan.json");
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--now",
            &now,
            "--report",
            plan.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fr = format!("/compute/v1/projects/{PROJECT}/regions/us-central1/forwardingRules/old-fr");
    let (_, body) = Service::http_to(gcp.service.port, "GET", &fr, "");
    let mut changed: Value = serde_json::from_str(&body).unwrap();
    changed["target"] = json!("new-proxy");
    // Fingerprints are base64 (the client decodes them as bytes).
    changed["fingerprint"] = json!("Y2hhbmdlZA==");
    gcp.seed(json!({"project": PROJECT, "forwardingRules": [changed]}));
    let outcome = dir.path().join("outcome.json");
    let backup = dir.path().join("backups");
    let out = enforce_plan(&gcp, policy, &now, &plan, &backup, &outcome);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = outcomes(&read_report(&outcome));
    for gone in [
        "ForwardingRule old-global-fr",
        "ForwardingRule europe-west1/old-fr-2",
    ] {
        assert_eq!(o[gone].0, "deleted", "{gone}: {o:?}");
        assert!(o[gone].2, "{gone}: backed up first");
    }
    assert_eq!(o["ForwardingRule us-central1/old-fr"].0, "skipped", "{o:?}");
    assert!(gcp.exists(&fr), "the rule changed since review stays");
    assert!(!gcp.exists(&format!(
        "/compute/v1/projects/{PROJECT}/global/forwardingRules/old-global-fr"
    )));
    assert!(!gcp.exists(&format!(
        "/compute/v1/projects/{PROJECT}/regions/europe-west1/forwardingRules/old-fr-2"
    )));
    assert!(gcp.exists(&format!(
        "/compute/v1/projects/{PROJECT}/regions/us-central1/forwardingRules/old-ilb"
    )));
    let polled = |scope: &str| {
        gcp.requests()
            .iter()
            .any(|r| r["method"] == "GET" && r["path"].as_str().unwrap().contains(scope))
    };
    assert!(polled("/global/operations/") && polled("/regions/europe-west1/operations/"));
}

#[test]
fn a_forbidden_or_partial_forwarding_rule_list_protects_only_forwarding_rules() {
    for fault in ["forbidden", "unreachable"] {
        let (gcp, dir, policy) = forwarding_rule_project();
        if fault == "forbidden" {
            gcp.fault(json!({"path": "/global/forwardingRules$", "status": 403}));
        } else {
            gcp.control(
                "POST",
                "/_fake/config",
                &json!({"aggregated_unreachables": ["regions/asia-east1"]}),
            );
        }
        let path = dir.path().join("report.json");
        let out = run_with(
            &gcp,
            &[
                "run",
                "--policy",
                policy.to_str().unwrap(),
                "--report",
                path.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{fault}: {}", stderr(&out));
        let report = read_report(&path);
        let v = verdicts(&report);
        assert!(
            !v.keys().any(|k| k.starts_with("ForwardingRule ")),
            "{fault}: no forwarding rule judged from a partial list: {v:?}"
        );
        assert_eq!(v["FirewallRule old-open-ssh"].0, "delete", "{fault}");
        assert!(
            report["errors"].to_string().contains("forwarding rules"),
            "{fault}: {}",
            report["errors"]
        );
    }
}

/// A project with the top of a load balancer chain: forwarding rules and the target proxies
/// they name (every type, global and regional), kept and orphan.
fn proxy_project() -> (FakeGcp, tempfile::TempDir, PathBuf) {
    let gcp = FakeGcp::start();
    let mut http: Vec<Value> = (0..501)
        .map(|i| json!({"name": format!("aia-http-{i:03}")}))
        .collect();
    http.extend([
        json!({"name": "old-http", "region": "us-central1"}),
        json!({"name": "old-after-fail"}),
    ]);
    gcp.seed(json!({
        "project": PROJECT,
        "forwardingRules": [
            {"name": "aia-web", "target": "global/targetHttpsProxies/web-https"},
            {"name": "old-fr", "region": "us-central1",
             "target": "regions/us-central1/targetHttpProxies/old-http"},
            {"name": "old-global-fr", "target": "global/targetTcpProxies/old-tcp"},
            {"name": "old-fails", "target": "global/targetHttpProxies/old-after-fail"},
            {"name": "old-ilb", "region": "us-central1", "loadBalancingScheme": "INTERNAL_MANAGED",
             "target": "regions/us-central1/targetHttpsProxies/ilb-proxy"}
        ],
        "targetHttpProxies": http,
        "targetHttpsProxies": [{"name": "web-https"}, {"name": "ilb-proxy", "region": "us-central1"}],
        "targetSslProxies": [{"name": "old-ssl"}],
        "targetTcpProxies": [{"name": "old-tcp"}, {"name": "k8s2-tp-abcd-web"}],
        "firewalls": [{"name": "old-open-ssh"}]
    }));
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: gcp\ngcp:\n  project: {PROJECT}\n  firewall_rules: {{allowed: [\"aia-*\"]}}\n  forwarding_rules: {{allowed: [\"aia-*\"]}}\n  target_proxies: {{allowed: [\"aia-*\"]}}\nsafety:\n  min_age_hours: 0\n  max_deletions: 20\n"
        ),
    );
    (gcp, dir, policy)
}

#[test]
fn target_proxies_are_kept_by_kept_rules_and_deleted_after_orphan_rules_through_operations() {
    let (gcp, dir, policy) = proxy_project();
    let policy = policy.to_str().unwrap();
    let live = dir.path().join("live.json");
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--report",
            live.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_report(&live);
    let v = verdicts(&report);
    assert_eq!(
        v.keys().filter(|k| k.contains("http/aia-http-")).count(),
        501,
        "both pages of the HTTP proxy list"
    );
    let action = |k: &str| v.get(k).map(|x| x.0.as_str()).unwrap_or("absent");
    for orphan in [
        "ForwardingRule us-central1/old-fr",
        "ForwardingRule old-global-fr",
        "ForwardingRule old-fails",
        "TargetProxy us-central1/http/old-http",
        "TargetProxy tcp/old-tcp",
        "TargetProxy http/old-after-fail",
        "TargetProxy ssl/old-ssl",
    ] {
        assert_eq!(action(orphan), "delete", "{orphan}: {:?}", v.get(orphan));
    }
    for (kept, reason) in [
        ("TargetProxy https/web-https", "in-use"),
        ("TargetProxy us-central1/https/ilb-proxy", "in-use"),
        ("TargetProxy tcp/k8s2-tp-abcd-web", "system-managed"),
        ("TargetProxy http/aia-http-000", "in-allowlist"),
        ("ForwardingRule us-central1/old-ilb", "in-use"),
    ] {
        assert_eq!(action(kept), "keep", "{kept}: {:?}", v.get(kept));
        assert!(
            v[kept].1.contains(&reason.to_string()),
            "{kept}: {:?}",
            v[kept]
        );
    }
    let find = |name: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()
            .clone()
    };
    assert!(
        find("https/web-https")["detail"]
            .as_str()
            .unwrap()
            .contains("ForwardingRule aia-web"),
        "the kept referrer is named"
    );
    let orphan = find("us-central1/http/old-http");
    assert_eq!(
        orphan["identity"]["after"],
        json!(["ForwardingRule us-central1/old-fr"])
    );
    assert!(
        orphan["plan_order"].as_u64() > find("us-central1/old-fr")["plan_order"].as_u64(),
        "top-down: the rule before its proxy"
    );

    // A recorded snapshot replays to the same verdicts; without the forwarding rules it keeps
    // every proxy.
    let snap = dir.path().join("snap");
    let out = run_with(
        &gcp,
        &[
            "snapshot",
            "--policy",
            policy,
            "--out",
            snap.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for file in [
        "targetHttpProxies.json",
        "targetHttpsProxies.json",
        "targetSslProxies.json",
        "targetTcpProxies.json",
        "regionTargetHttpProxies.json",
        "regionTargetHttpsProxies.json",
        "regionTargetTcpProxies.json",
        "forwardingRules.json",
    ] {
        assert!(snap.join("gcp").join(file).is_file(), "{file}");
    }
    let replay = dir.path().join("replay.json");
    let now = report["evaluated_at"].as_str().unwrap().to_string();
    let replay_run = |path: &std::path::Path| {
        run_with(
            &gcp,
            &[
                "run",
                "--policy",
                policy,
                "--snapshot",
                snap.to_str().unwrap(),
                "--now",
                &now,
                "--report",
                path.to_str().unwrap(),
            ],
        )
    };
    let out = replay_run(&replay);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(verdicts(&read_report(&replay)), v);
    std::fs::remove_file(snap.join("gcp/forwardingRules.json")).unwrap();
    let out = replay_run(&replay);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let without = verdicts(&read_report(&replay));
    assert!(
        all_keep(&without, "TargetProxy "),
        "no proxy is unused without the forwarding rules: {without:?}"
    );

    // Enforce: the rules go first, then their proxies; old-fails' delete is refused, so its
    // proxy is not tried.
    let plan = dir.path().join("plan.json");
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy,
            "--now",
            &now,
            "--report",
            plan.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    gcp.fault(
        json!({"method": "DELETE", "path": "/global/forwardingRules/old-fails$", "status": 403}),
    );
    let outcome = dir.path().join("outcome.json");
    let backup = dir.path().join("backups");
    let out = enforce_plan(&gcp, policy, &now, &plan, &backup, &outcome);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one delete failed: {}",
        stderr(&out)
    );
    let o = outcomes(&read_report(&outcome));
    for gone in [
        "ForwardingRule us-central1/old-fr",
        "ForwardingRule old-global-fr",
        "TargetProxy us-central1/http/old-http",
        "TargetProxy tcp/old-tcp",
        "TargetProxy ssl/old-ssl",
    ] {
        assert_eq!(o[gone].0, "deleted", "{gone}: {o:?}");
        assert!(o[gone].2, "{gone}: backed up first");
    }
    assert_eq!(o["ForwardingRule old-fails"].0, "failed", "{o:?}");
    let (status, reason, _) = &o["TargetProxy http/old-after-fail"];
    assert_eq!(status, "skipped");
    assert!(
        reason.contains("ForwardingRule old-fails") && reason.contains("was not deleted"),
        "{reason}"
    );
    let base = format!("/compute/v1/projects/{PROJECT}");
    assert!(gcp.exists(&format!("{base}/global/targetHttpProxies/old-after-fail")));
    assert!(gcp.exists(&format!("{base}/global/targetHttpsProxies/web-https")));
    assert!(gcp.exists(&format!(
        "{base}/regions/us-central1/targetHttpsProxies/ilb-proxy"
    )));
    assert!(!gcp.exists(&format!(
        "{base}/regions/us-central1/targetHttpProxies/old-http"
    )));
    let deletes = gcp.deletes();
    let at = |suffix: &str| deletes.iter().position(|p| p.ends_with(suffix)).unwrap();
    assert!(
        at("/forwardingRules/old-fr") < at("/targetHttpProxies/old-http"),
        "{deletes:?}"
    );
    assert!(
        !deletes.iter().any(|p| p.ends_with("/old-after-fail")),
        "not tried: {deletes:?}"
    );
}

#[test]
fn a_forbidden_proxy_or_rule_list_protects_only_the_kinds_it_could_prove_unused() {
    // 403 on one proxy list: every proxy kept, the rules still judged.
    let (gcp, dir, policy) = proxy_project();
    gcp.fault(json!({"path": "/global/targetTcpProxies$", "status": 403}));
    let path = dir.path().join("report.json");
    let args = [
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--report",
        path.to_str().unwrap(),
    ];
    let out = run_with(&gcp, &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = read_report(&path);
    let v = verdicts(&report);
    assert!(all_keep(&v, "TargetProxy "), "{v:?}");
    assert_eq!(v["TargetProxy ssl/old-ssl"].1, ["listing-incomplete"]);
    assert_eq!(v["ForwardingRule us-central1/old-fr"].0, "delete");
    assert_eq!(v["FirewallRule old-open-ssh"].0, "delete");
    assert!(report["errors"].to_string().contains("target proxies"));

    // 403 on the forwarding rules: no rule judged, and no proxy is unused.
    let (gcp, dir, policy) = proxy_project();
    gcp.fault(json!({"path": "/global/forwardingRules$", "status": 403}));
    let path = dir.path().join("report.json");
    let out = run_with(
        &gcp,
        &[
            "run",
            "--policy",
            policy.to_str().unwrap(),
            "--report",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = verdicts(&read_report(&path));
    assert!(!v.keys().any(|k| k.starts_with("ForwardingRule ")), "{v:?}");
    assert!(all_keep(&v, "TargetProxy "), "{v:?}");
    assert_eq!(v["FirewallRule old-open-ssh"].0, "delete");
}
