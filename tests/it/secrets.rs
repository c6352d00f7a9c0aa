//! Nothing secret leaves the cluster but in a backup: every command's terminal output and
//! logs (also at `DRIFTSWEEP_LOG=debug` and `trace`), every file it writes, every email and
//! every archived report is scanned for the values of seeded Secrets and for the token
//! driftsweep authenticates with. Deploy's own commands are scanned in `deploy.rs`.

use std::path::{Path, PathBuf};
use std::process::Output;

use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};

use crate::cluster::TestCluster;
use crate::services::{fake_gcs, smtp_sink};
use crate::{stderr, write};

/// A value no output may hold, in every form a Secret carries it.
pub struct Markers(Vec<(String, String)>);

impl Markers {
    pub fn new(values: &[(&str, &str)]) -> Markers {
        use base64::Engine;
        let mut forms = Vec::new();
        for (what, value) in values {
            forms.push((what.to_string(), value.to_string()));
            let encoded = base64::engine::general_purpose::STANDARD.encode(value);
            forms.push((format!("{what} (base64)"), encoded));
        }
        Markers(forms)
    }

    /// Fails naming `source` and the marker it holds.
    pub fn assert_absent(&self, source: &str, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        for (what, form) in &self.0 {
            assert!(!text.contains(form.as_str()), "{source} holds {what}");
        }
    }

    pub fn assert_output_clean(&self, command: &str, out: &Output) {
        self.assert_absent(&format!("stdout of `{command}`"), &out.stdout);
        self.assert_absent(&format!("stderr of `{command}`"), &out.stderr);
    }

    /// Every file under `dir` but those under `except`.
    pub fn assert_files_clean(&self, dir: &Path, except: &[&Path]) -> usize {
        let mut scanned = 0;
        for file in files(dir) {
            if except.iter().any(|e| file.starts_with(e)) {
                continue;
            }
            self.assert_absent(&file.display().to_string(), &std::fs::read(&file).unwrap());
            scanned += 1;
        }
        scanned
    }

    /// A message as sent and as a reader sees it (decoded parts and attachments).
    pub fn assert_email_clean(&self, raw: &[u8]) {
        self.assert_absent("the raw email", raw);
        let message = MessageParser::default().parse(raw).expect("a MIME message");
        for i in 0..message.text_body_count() {
            let body = message.body_text(i).unwrap_or_default();
            self.assert_absent("the email's text", body.as_bytes());
        }
        for i in 0..message.html_body_count() {
            let body = message.body_html(i).unwrap_or_default();
            self.assert_absent("the email's HTML", body.as_bytes());
        }
        for attachment in message.attachments() {
            let name = attachment.attachment_name().unwrap_or("unnamed");
            self.assert_absent(
                &format!("the email's attachment {name}"),
                attachment.contents(),
            );
        }
    }
}

pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn no_secret_value_or_token_reaches_a_report_snapshot_log_email_or_terminal() {
    let c = TestCluster::start();
    let app = c.ns("app");
    let lease = c.ns("lease");
    c.namespace(&app);
    c.namespace(&lease);
    let value = format!("MARKER-{}-s3cr3t-value", c.prefix);
    let applied = format!("MARKER-{}-applied-value", c.prefix);
    let docker = format!("MARKER-{}-registry-password", c.prefix);

    // The Secrets a team has: one a Deployment uses, one orphan (enforce deletes it), one
    // made by a client-side `kubectl apply` (its annotation holds the whole Secret), one
    // registry credential.
    let opaque = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": app},
            "stringData": {"password": value}})
    };
    c.create(opaque("used"));
    c.create(opaque("orphan"));
    let last_applied = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "applied", "namespace": app},
        "stringData": {"token": applied}})
    .to_string();
    c.create(
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "applied", "namespace": app, "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": last_applied}},
        "stringData": {"token": applied}}),
    );
    let auth = json!({"auths": {"registry.example.com": {"username": "ci", "password": docker}}});
    c.create(json!({"apiVersion": "v1", "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "pull", "namespace": app},
        "stringData": {".dockerconfigjson": auth.to_string()}}));
    c.create(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": app},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"imagePullSecrets": [{"name": "pull"}],
                    "containers": [{"name": "web", "image": "registry.invalid/web:1.0.0",
                    "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "used", "key": "password"}}}]}]}}}
    }));

    // driftsweep authenticates with a token, which is as secret as the values.
    c.kubectl_apply(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sweeper\n  namespace: {app}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: {app}-sweeper\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n- kind: ServiceAccount\n  name: sweeper\n  namespace: {app}\n"
    ));
    let token = c.token(&app, "sweeper");
    let kubeconfig = c.kubeconfig_with_token("token.kubeconfig", &token);
    let markers = Markers::new(&[
        ("a Secret's value", &value),
        ("a value in kubectl's last-applied annotation", &applied),
        ("a registry password", &docker),
        ("the API token", &token),
    ]);

    let sink = smtp_sink();
    let gcs = fake_gcs(&["reports"]);
    let policy = write(
        c.dir.path(),
        "policy.yaml",
        &format!(
            "version: 1\nname: e2e\nkubernetes:\n  namespaces: [\"{app}\"]\n  protected_namespaces: [kube-system, kube-public, \"{lease}\"]\nsafety:\n  min_age_hours: 0\n  max_deletions: 100000\n  lease_namespace: \"{lease}\"\nreport:\n  email:\n    to: [team@example.com]\n    from: driftsweep@example.com\n    smtp: {{host: 127.0.0.1, port: {}, tls: none}}\n",
            sink.port
        ),
    );
    let policy = policy.to_str().unwrap();
    let out_dir = c.path("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let at = |name: &str| out_dir.join(name).to_str().unwrap().to_string();
    let backups = c.path("backups");
    let storage = format!("127.0.0.1:{}", gcs.port);

    let run = |name: &str, args: &[&str], log: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_driftsweep"));
        cmd.args(args)
            .current_dir(c.dir.path())
            .env_remove("DRIFTSWEEP_POLICY")
            .env_remove("DRIFTSWEEP_VERSION")
            .env_remove("DRIFTSWEEP_BACKUP")
            .env("DRIFTSWEEP_LOG", log)
            .env("STORAGE_EMULATOR_HOST", &storage)
            .env("DRIFTSWEEP_LEASE_SECONDS", "3");
        let out = cmd.output().unwrap();
        markers.assert_output_clean(&format!("{name} ({log})"), &out);
        out
    };
    let kc = kubeconfig.to_str().unwrap();
    for log in ["debug", "trace"] {
        let out = run("policy check", &["policy", "check", policy], log);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

        let snap = at(&format!("snapshot-{log}"));
        let out = run(
            "snapshot",
            &[
                "snapshot",
                "--policy",
                policy,
                "--out",
                &snap,
                "--kubeconfig",
                kc,
            ],
            log,
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let secrets = std::fs::read_to_string(Path::new(&snap).join("kubernetes/secrets.json"))
            .expect("the snapshot records Secrets");
        assert!(
            secrets.contains("\"orphan\"") && secrets.contains("kubernetes.io/dockerconfigjson"),
            "the snapshot keeps what decides (names, types): {secrets}"
        );

        let out = run(
            "run --snapshot",
            &[
                "run",
                "--policy",
                policy,
                "--snapshot",
                &snap,
                "--report",
                &at(&format!("replay-{log}.json")),
                "--markdown",
                &at(&format!("replay-{log}.md")),
                "--html",
                &at(&format!("replay-{log}.html")),
                "--email",
            ],
            log,
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

        let out = run(
            "run",
            &[
                "run",
                "--policy",
                policy,
                "--kubeconfig",
                kc,
                "--report",
                &at(&format!("plan-{log}.json")),
                "--markdown",
                &at(&format!("plan-{log}.md")),
                "--html",
                &at(&format!("plan-{log}.html")),
                "--email-preview",
                &at(&format!("mail-{log}.html")),
                "--email",
                "--archive",
                "gs://reports/driftsweep",
            ],
            log,
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }

    // Enforce deletes the orphan Secret (its backup is the one place its value may be), and
    // restore brings it back.
    let plan = PathBuf::from(at("plan-debug.json"));
    c.narrow_to_own(&plan);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    let planned = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "Secret" && f["name"] == "orphan" && f["action"] == "delete");
    assert!(planned, "the orphan Secret is planned: {report}");
    let out = run(
        "run --enforce",
        &[
            "run",
            "--enforce",
            "--policy",
            policy,
            "--kubeconfig",
            kc,
            "--plan",
            plan.to_str().unwrap(),
            "--backup",
            backups.to_str().unwrap(),
            "--report",
            &at("enforce.json"),
            "--markdown",
            &at("enforce.md"),
            "--email",
            "--archive",
            "gs://reports/driftsweep",
        ],
        "debug",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        c.get("v1", "Secret", Some(&app), "orphan").is_none(),
        "enforce deleted the orphan"
    );
    let run_id = report["run_id"].as_str().unwrap();
    let folder = backups.join(run_id);
    let backed_up: Vec<_> = files(&folder)
        .into_iter()
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .contains("orphan")
        })
        .collect();
    assert!(
        !backed_up.is_empty(),
        "the deletion is backed up in {folder:?}"
    );
    let out = run(
        "restore",
        &[
            "restore",
            folder.to_str().unwrap(),
            "--kubeconfig",
            kc,
            "--report",
            "-",
        ],
        "debug",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let restored = c
        .get("v1", "Secret", Some(&app), "orphan")
        .expect("restore brought the Secret back");
    assert_eq!(restored["data"]["password"], json!(base64_of(&value)));

    // Every file written but the backup, every message sent, every archived report.
    let scanned = markers.assert_files_clean(&out_dir, &[]);
    assert!(
        scanned >= 14,
        "reports and snapshots were written: {scanned}"
    );
    let messages = sink.messages();
    assert_eq!(
        messages.len(),
        5,
        "two replays, two dry runs and enforce sent mail"
    );
    for raw in &messages {
        markers.assert_email_clean(raw);
    }
    let (status, listing) = gcs.http("GET", "/storage/v1/b/reports/o?prefix=driftsweep/", "");
    assert_eq!(status, 200, "{listing}");
    let listing: Value = serde_json::from_str(&listing).unwrap();
    let objects = listing["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(objects.len(), 3, "three reports archived: {listing}");
    for object in objects {
        let name = object["name"].as_str().unwrap().replace('/', "%2F");
        let (status, body) = gcs.http(
            "GET",
            &format!("/storage/v1/b/reports/o/{name}?alt=media"),
            "",
        );
        assert_eq!(status, 200);
        markers.assert_absent(
            &format!("archived gs://reports/{}", object["name"]),
            body.as_bytes(),
        );
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
