//! Deploy end to end: the real binary against the real control plane (its Deployment and
//! ReplicaSet controllers, the kubelet stand-in running the Pods) and Debian's registry server
//! with images pushed by the test.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::TestCluster;
use crate::kubelet::Kubelet;
use crate::registry::{Pusher, Registry, start_registry};
use crate::{stderr, write};

const SERVICES: [&str; 3] = ["api", "web", "worker"];

struct Scene {
    c: TestCluster,
    _registry: Registry,
    push: Pusher,
    host: String,
    staging: String,
    prod: String,
    kubelet: Kubelet,
    policy: PathBuf,
    /// What driftsweep is given (the admin's, unless a test uses the deploy account).
    kubeconfig: PathBuf,
}

/// The tag images of `version` carry (what `${VERSION}` becomes).
fn tag(version: &str) -> String {
    driftsweep::deploy::version::parse_version(version)
        .unwrap()
        .tag()
}

fn manifests(host: &str, ns: &str, deadline: u32, extra: &str) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: api\n  namespace: {ns}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api-config\n  namespace: {ns}\ndata:\n  LOG_LEVEL: info\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: api\n  namespace: {ns}\nspec:\n  selector:\n    app: api\n  ports:\n  - port: 80\n"
    );
    for svc in SERVICES {
        out.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {svc}\n  namespace: {ns}\nspec:\n  replicas: 2\n  progressDeadlineSeconds: {deadline}\n  selector:\n    matchLabels:\n      app: {svc}\n  strategy:\n    type: RollingUpdate\n    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}\n  template:\n    metadata:\n      labels:\n        app: {svc}\n    spec:\n      containers:\n      - name: {svc}\n        image: {host}/aia/{svc}:${{VERSION}}\n        envFrom:\n        - configMapRef:\n            name: api-config\n"
        ));
    }
    out.push_str(extra);
    out
}

impl Scene {
    fn new(deadline: u32) -> Scene {
        Self::on(TestCluster::start(), deadline, 5)
    }

    fn on(c: TestCluster, deadline: u32, history: u32) -> Scene {
        let registry = start_registry();
        let host = format!("127.0.0.1:{}", registry.port);
        let push = Pusher::new(registry.port);
        let staging = c.ns("staging");
        let prod = c.ns("prod");
        c.namespace(&staging);
        c.namespace(&prod);
        let kubelet = Kubelet::start(&[staging.clone(), prod.clone()]);
        let repositories = SERVICES
            .iter()
            .map(|s| format!("{host}/aia/{s}"))
            .collect::<Vec<_>>();
        let services = SERVICES
            .iter()
            .map(|s| format!("    - {{name: {s}, image: {host}/aia/{s}}}\n"))
            .collect::<String>();
        let policy = write(
            c.dir.path(),
            "policy.yaml",
            &format!(
                "version: 1\nname: e2e\nkubernetes:\n  namespaces: [\"{staging}\", \"{prod}\"]\n  manifests: [manifests]\nregistry:\n  repositories: [{}]\n  plain_http_hosts: ['{host}']\nsafety:\n  backup: backups\ndeploy:\n  services:\n{services}  environments:\n    staging: {{namespace: \"{staging}\", accepts: any}}\n    production: {{namespace: \"{prod}\", accepts: release, promote_from: staging}}\n  timeout_minutes: 1\n  history: {history}\n",
                repositories.join(", ")
            ),
        );
        let kubeconfig = c.kubeconfig.clone();
        let scene = Scene {
            c,
            _registry: registry,
            push,
            host,
            staging,
            prod,
            kubelet,
            policy,
            kubeconfig,
        };
        scene.set_manifests(deadline, "");
        scene
    }

    fn set_manifests(&self, deadline: u32, extra: &str) {
        let text = format!(
            "{}---\n{}",
            manifests(&self.host, &self.staging, deadline, extra),
            manifests(&self.host, &self.prod, deadline, "")
        );
        write(self.c.dir.path(), "manifests/app.yaml", &text);
    }

    /// Pushes an image of every service at `version`; answers their digests.
    fn release(&self, version: &str) -> BTreeMap<String, String> {
        SERVICES
            .iter()
            .map(|s| {
                let seed = format!("{s}-{version}-{}", self.c.prefix);
                let (digest, _) = self
                    .push
                    .image(&format!("aia/{s}"), &[&tag(version)], 0, &seed);
                (s.to_string(), digest)
            })
            .collect()
    }

    fn command(&self, args: &[&str], report: &std::path::Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_driftsweep"));
        cmd.args(args)
            .args(["--policy", self.policy.to_str().unwrap()])
            .args(["--report", report.to_str().unwrap()])
            .args(["--kubeconfig", self.kubeconfig.to_str().unwrap()])
            .current_dir(self.c.dir.path())
            .env_remove("DRIFTSWEEP_POLICY")
            .env_remove("DRIFTSWEEP_VERSION")
            .env_remove("DRIFTSWEEP_BACKUP")
            .env("DRIFTSWEEP_DEPLOY_WHO", "e2e@test")
            .env("DRIFTSWEEP_LEASE_SECONDS", "3");
        cmd
    }

    fn run(&self, args: &[&str]) -> (Output, Value) {
        let report = self.c.path("deploy.json");
        let _ = std::fs::remove_file(&report);
        let out = self.command(args, &report).output().unwrap();
        let json = std::fs::read_to_string(&report)
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or(Value::Null);
        (out, json)
    }

    fn deploy(&self, env: &str, version: &str, extra: &[&str]) -> (Output, Value) {
        let mut args = vec!["deploy", "--env", env, "--version", version];
        args.extend(extra);
        self.run(&args)
    }

    fn ns_of(&self, env: &str) -> &str {
        if env == "staging" {
            &self.staging
        } else {
            &self.prod
        }
    }

    /// Each service's Deployment image in `env`.
    fn running(&self, env: &str) -> BTreeMap<String, String> {
        SERVICES
            .iter()
            .filter_map(|s| {
                let d = self
                    .c
                    .get("apps/v1", "Deployment", Some(self.ns_of(env)), s)?;
                Some((
                    s.to_string(),
                    d["spec"]["template"]["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                ))
            })
            .collect()
    }

    /// What `running` shows when `digests` of `version` run.
    fn pinned(
        &self,
        version: &str,
        digests: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        digests
            .iter()
            .map(|(s, d)| {
                (
                    s.clone(),
                    format!("{}/aia/{s}:{}@{d}", self.host, tag(version)),
                )
            })
            .collect()
    }

    /// The deploy records of `env`, oldest first.
    fn history(&self, env: &str) -> Vec<Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_driftsweep"))
            .args(["history", "--env", env, "--format", "json"])
            .args(["--policy", self.policy.to_str().unwrap()])
            .args(["--kubeconfig", self.kubeconfig.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn results(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["version"].as_str().unwrap(),
                r["result"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn a_healthy_deploy_puts_every_service_on_one_pinned_version_and_records_it() {
    let s = Scene::new(600);
    let digests = s.release("v1.0.0");
    let (out, report) = s.deploy("staging", "v1.0.0", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["schema"], "driftsweep.deploy/v1");
    assert_eq!(report["result"], "deployed");
    assert_eq!(report["wait"]["result"], "healthy");
    // Measured, not asserted (BENCHMARKS.md): what a deploy spends beside the rollout.
    let total = report["duration_seconds"].as_f64().unwrap();
    let rollout = report["wait"]["seconds"].as_f64().unwrap();
    eprintln!(
        "bench: deploy of 3 services took {total:.1} s, {:.1} s of it beside the rollout wait",
        total - rollout
    );
    assert_eq!(s.running("staging"), s.pinned("v1.0.0", &digests));
    for svc in SERVICES {
        let d =
            s.c.get("apps/v1", "Deployment", Some(&s.staging), svc)
                .unwrap();
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "driftsweep"
        );
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/version"],
            tag("v1.0.0")
        );
        assert_eq!(d["status"]["readyReplicas"], 2, "{svc} is really running");
    }
    let cm =
        s.c.get("v1", "ConfigMap", Some(&s.staging), "api-config")
            .unwrap();
    assert_eq!(
        cm["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "driftsweep"
    );
    assert!(
        s.running("production").is_empty(),
        "another environment is untouched"
    );

    let records = s.history("staging");
    assert_eq!(results(&records), ["v1.0.0 healthy"]);
    let r = &records[0];
    assert_eq!(r["who"], "e2e@test");
    for svc in SERVICES {
        let pin = r["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["service"] == svc)
            .unwrap();
        assert_eq!(pin["digest"], json!(digests[svc]));
    }
    assert!(r["duration_seconds"].as_f64().unwrap() > 0.0);

    // The same again: nothing to do, no new record.
    let (out, report) = s.deploy("staging", "v1.0.0", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["result"], "unchanged");
    assert_eq!(s.history("staging").len(), 1);

    // The table a person reads.
    let out = Command::new(env!("CARGO_BIN_EXE_driftsweep"))
        .args([
            "history",
            "--env",
            "staging",
            "--policy",
            s.policy.to_str().unwrap(),
        ])
        .args(["--kubeconfig", s.c.kubeconfig.to_str().unwrap()])
        .output()
        .unwrap();
    let table = crate::stdout(&out);
    assert!(
        table.contains("v1.0.0") && table.contains("healthy") && table.contains("e2e@test"),
        "{table}"
    );
}

#[test]
fn a_deploy_whose_pods_crash_loop_rolls_back_to_the_previous_digests() {
    let s = Scene::new(600);
    let good = s.release("v1.0.0");
    let (out, _) = s.deploy("staging", "v1.0.0", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    s.release("v1.1.0");
    s.kubelet
        .fail_image(&format!(":{}@", tag("v1.1.0")), "CrashLoopBackOff");

    // The team's chats hear of it.
    let sink = crate::services::WebhookSink::start(200);
    let text = std::fs::read_to_string(&s.policy).unwrap();
    std::fs::write(
        &s.policy,
        text + "alerts:\n  slack: {}\n  google_chat: {}\n",
    )
    .unwrap();
    let report_path = s.c.path("deploy.json");
    let out = s
        .command(
            &[
                "deploy",
                "--env",
                "staging",
                "--version",
                "v1.1.0",
                "--alert",
            ],
            &report_path,
        )
        .env("DRIFTSWEEP_SLACK_WEBHOOK_URL", sink.url("slack"))
        .env("DRIFTSWEEP_GOOGLE_CHAT_WEBHOOK_URL", sink.url("chat"))
        .output()
        .unwrap();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed deploy exits 1: {}",
        stderr(&out)
    );
    let messages = sink.messages();
    assert_eq!(messages.len(), 2, "{messages:?}");
    let paths: Vec<_> = messages.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["/hooks/chat", "/hooks/slack"]);
    for (_, body) in &messages {
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with("*staging deploy v1.1.0: failed, rolled back automatically*"),
            "{text}"
        );
        assert!(text.contains("CrashLoopBackOff"), "{text}");
        assert!(text.contains("rollback to v1.0.0: healthy"), "{text}");
    }
    let alerts = report["alerts"].as_array().unwrap();
    assert!(
        alerts.len() == 2
            && alerts
                .iter()
                .all(|a| a["status"] == "sent" && a["event"] == "rolled-back"),
        "{alerts:?}"
    );
    assert_eq!(report["result"], "rolled-back", "{report:#}");
    assert_eq!(report["wait"]["result"], "failed");
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("CrashLoopBackOff"),
        "{report:#}"
    );
    assert_eq!(report["rollback"]["result"], "healthy");
    assert_eq!(report["rollback"]["to_version"], "v1.0.0");
    assert!(stderr(&out).contains("ROLLED-BACK"), "{}", stderr(&out));
    assert_eq!(
        s.running("staging"),
        s.pinned("v1.0.0", &good),
        "the previous digests run again"
    );
    s.c.wait_for("the rolled-back Deployments to be ready", || {
        SERVICES.iter().all(|svc| {
            s.c.get("apps/v1", "Deployment", Some(&s.staging), svc)
                .unwrap()["status"]["readyReplicas"]
                == 2
        })
    });
    assert_eq!(
        results(&s.history("staging")),
        ["v1.0.0 healthy", "v1.1.0 rolled-back", "v1.0.0 healthy"]
    );
}

#[test]
fn a_deploy_past_its_progress_deadline_rolls_back() {
    let s = Scene::new(4);
    let good = s.release("v1.0.0");
    let (out, _) = s.deploy("staging", "v1.0.0", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    s.release("v1.1.0");
    // Running, never ready: only the Deployment controller's deadline ends the wait.
    s.kubelet
        .fail_image(&format!(":{}@", tag("v1.1.0")), "NotReady");
    let (out, report) = s.deploy("staging", "v1.1.0", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("ProgressDeadlineExceeded"),
        "{report:#}"
    );
    assert_eq!(report["rollback"]["result"], "healthy", "{report:#}");
    assert_eq!(s.running("staging"), s.pinned("v1.0.0", &good));
}

#[test]
fn what_cannot_be_deployed_is_refused_with_nothing_applied() {
    let s = Scene::new(600);
    s.release("v1.0.0");
    let refused = |args: &[&str], why: &str| {
        let (out, report) = s.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
        assert_eq!(report["result"], "refused", "{args:?}");
    };
    refused(
        &["deploy", "--env", "staging", "--version", "latest"],
        "latest",
    );
    refused(
        &["deploy", "--env", "staging", "--version", "not-a-version"],
        "not-a-version",
    );
    refused(
        &["deploy", "--env", "staging", "--version", "v9.9.9"],
        "no image",
    );
    refused(
        &["deploy", "--env", "qa", "--version", "v1.0.0"],
        "no environment `qa`",
    );
    refused(
        &["deploy", "--env", "production", "--version", "v1.0.0"],
        "never deployed healthy to `staging`",
    );
    s.release("v1.1.0-rc.1");
    refused(
        &["deploy", "--env", "production", "--version", "v1.1.0-rc.1"],
        "not a release",
    );
    // Half a release: one service's image is missing.
    let tag = tag("v1.2.0");
    s.push.image("aia/api", &[&tag], 0, "only-api");
    refused(
        &["deploy", "--env", "staging", "--version", "v1.2.0"],
        "aia/web",
    );
    for env in ["staging", "production"] {
        assert!(s.running(env).is_empty(), "nothing applied to {env}");
        assert!(s.history(env).is_empty());
    }
}

#[test]
fn an_overwritten_tag_is_refused_for_a_deploy_and_a_promotion() {
    let s = Scene::new(600);
    let first = s.release("v1.0.0");
    let (out, _) = s.deploy("staging", "v1.0.0", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Someone pushes another image under the same tag.
    s.push.image("aia/web", &[&tag("v1.0.0")], 0, "rebuilt");
    let (out, _) = s.deploy("production", "v1.0.0", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("overwritten"), "{}", stderr(&out));
    assert!(s.running("production").is_empty());
    let (out, _) = s.deploy("staging", "v1.0.0", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("overwritten"), "{}", stderr(&out));
    assert_eq!(
        s.running("staging"),
        s.pinned("v1.0.0", &first),
        "what ran still runs"
    );
}

#[test]
fn a_release_promoted_from_staging_reaches_production_with_the_same_digests() {
    let s = Scene::new(600);
    let digests = s.release("v1.0.0");
    let (out, _) = s.deploy("staging", "v1.0.0", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (out, report) = s.deploy("production", "v1.0.0", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["result"], "deployed");
    assert_eq!(s.running("production"), s.pinned("v1.0.0", &digests));
}

#[test]
fn two_deploys_at_once_never_both_apply() {
    let s = Scene::new(600);
    s.release("v1.0.0");
    let report = |n: u8| s.c.path(&format!("d{n}.json"));
    let spawn = |n: u8| {
        s.command(
            &["deploy", "--env", "staging", "--version", "v1.0.0"],
            &report(n),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (a, b) = (spawn(1), spawn(2));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let codes = [a.status.code(), b.status.code()];
    assert!(
        codes.contains(&Some(0)),
        "one deploys: {}\n{}",
        stderr(&a),
        stderr(&b)
    );
    let loser = if a.status.code() == Some(0) { &b } else { &a };
    // The other was refused by the lock, or came second and found nothing to do.
    let err = stderr(loser);
    assert!(
        (loser.status.code() == Some(1) && err.contains("holds the Lease"))
            || (loser.status.code() == Some(0) && err.contains("UNCHANGED")),
        "{err}"
    );
    assert_eq!(
        results(&s.history("staging")),
        ["v1.0.0 healthy"],
        "one record, one apply"
    );
}

#[test]
fn a_deploy_killed_midway_is_repaired_by_the_next_one() {
    let s = Scene::new(600);
    s.release("v1.0.0");
    let (out, _) = s.deploy("staging", "v1.0.0", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let next = s.release("v1.1.0");
    s.kubelet
        .fail_image(&format!(":{}@", tag("v1.1.0")), "NotReady");
    let report = s.c.path("killed.json");
    let mut run = s
        .command(
            &["deploy", "--env", "staging", "--version", "v1.1.0"],
            &report,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it applied and waits (its record says pending).
    s.c.wait_for("the deploy to apply", || {
        results(&s.history("staging")).contains(&"v1.1.0 pending".to_string())
    });
    run.kill().unwrap();
    run.wait().unwrap();
    s.kubelet.heal_image(&format!(":{}@", tag("v1.1.0")));
    // Its Lease expires (3 s here); then the same deploy again finishes the work.
    std::thread::sleep(Duration::from_secs(4));
    let (out, report) = s.deploy("staging", "v1.1.0", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["result"], "deployed");
    assert_eq!(s.running("staging"), s.pinned("v1.1.0", &next));
    assert_eq!(
        results(&s.history("staging")),
        ["v1.0.0 healthy", "v1.1.0 interrupted", "v1.1.0 healthy"]
    );
}

#[test]
fn prune_removes_exactly_what_left_the_render_and_backs_it_up() {
    let s = Scene::new(600);
    s.release("v1.0.0");
    let old = format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old-config\n  namespace: {}\ndata:\n  k: v\n",
        s.staging
    );
    s.set_manifests(600, &old);
    let (out, _) = s.deploy("staging", "v1.0.0", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Made by hand: not driftsweep's to prune.
    s.c.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "hand-made", "namespace": s.staging}}));
    s.set_manifests(600, "");
    s.release("v1.1.0");

    let (out, report) = s.deploy("staging", "v1.1.0", &["--prune", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["pruned"][0]["outcome"], "would-prune", "{report:#}");
    assert!(
        s.c.get("v1", "ConfigMap", Some(&s.staging), "old-config")
            .is_some(),
        "a dry run prunes nothing"
    );
    assert!(
        stderr(&out).contains("change Deployment"),
        "{}",
        stderr(&out)
    );
    assert!(
        s.running("staging")
            .values()
            .all(|image| image.contains(&format!(":{}@", tag("v1.0.0")))),
        "a dry run applies nothing"
    );

    let (out, report) = s.deploy("staging", "v1.1.0", &["--prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pruned: Vec<(&str, &str)> = report["pruned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["object"].as_str().unwrap(),
                p["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    let expected = format!("ConfigMap {}/old-config", s.staging);
    assert_eq!(pruned, [(expected.as_str(), "pruned")]);
    let backup = report["pruned"][0]["backup"].as_str().unwrap();
    // `safety.backup: backups`, relative to where driftsweep ran.
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(s.c.dir.path().join(backup)).unwrap())
            .unwrap();
    assert_eq!(saved["metadata"]["name"], "old-config");
    assert!(
        s.c.get("v1", "ConfigMap", Some(&s.staging), "old-config")
            .is_none()
    );
    assert!(
        s.c.get("v1", "ConfigMap", Some(&s.staging), "hand-made")
            .is_some()
    );
    assert!(
        s.c.get("v1", "ConfigMap", Some(&s.staging), "api-config")
            .is_some()
    );
    assert_eq!(
        s.history("staging").len(),
        2,
        "deploy records are never pruned as objects"
    );
}

#[test]
fn rollback_to_a_version_restores_its_exact_digests() {
    let s = Scene::new(600);
    let v1 = s.release("v1.0.0");
    assert_eq!(s.deploy("staging", "v1.0.0", &[]).0.status.code(), Some(0));
    let v2 = s.release("v1.1.0");
    assert_eq!(s.deploy("staging", "v1.1.0", &[]).0.status.code(), Some(0));
    assert_eq!(s.running("staging"), s.pinned("v1.1.0", &v2));

    let started = Instant::now();
    let (out, report) = s.run(&["rollback", "--env", "staging"]);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["result"], "rolled-back");
    assert_eq!(s.running("staging"), s.pinned("v1.0.0", &v1));
    // Measured, not asserted (BENCHMARKS.md has the figures).
    eprintln!("bench: rollback of 3 services took {seconds:.1} s");

    let (out, _) = s.run(&["rollback", "--env", "staging", "--to", "v1.1.0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.running("staging"), s.pinned("v1.1.0", &v2));
    let (out, _) = s.run(&["rollback", "--env", "staging", "--to", "v0.9.0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no healthy deploy of `v0.9.0`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        results(&s.history("staging")),
        [
            "v1.0.0 healthy",
            "v1.1.0 healthy",
            "v1.0.0 healthy",
            "v1.1.0 healthy"
        ]
    );
}

#[test]
fn the_nightly_audit_keeps_deploy_records_and_sees_drift_from_the_last_good_deploy() {
    let s = Scene::new(600);
    let v1 = s.release("v1.0.0");
    assert_eq!(s.deploy("staging", "v1.0.0", &[]).0.status.code(), Some(0));
    s.release("v1.1.0");
    assert_eq!(s.deploy("staging", "v1.1.0", &[]).0.status.code(), Some(0));
    let audit = |name: &str| {
        let report = s.c.path(name);
        let later = (chrono::Utc::now() + chrono::Duration::days(30))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let out = Command::new(env!("CARGO_BIN_EXE_driftsweep"))
            .args([
                "run",
                "--policy",
                s.policy.to_str().unwrap(),
                "--now",
                &later,
            ])
            .args(["--report", report.to_str().unwrap()])
            .args(["--kubeconfig", s.c.kubeconfig.to_str().unwrap()])
            .current_dir(s.c.dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["namespace"] == json!(s.staging) || f["provider"] == "registry")
            .cloned()
            .collect::<Vec<Value>>()
    };
    let findings = audit("audit.json");
    let of = |findings: &[Value], kind: &str, name: &str| {
        findings
            .iter()
            .find(|f| f["kind"] == kind && f["name"].as_str().unwrap().contains(name))
            .cloned()
            .unwrap_or_else(|| panic!("no finding for {kind} {name}"))
    };
    for record in [
        "driftsweep.deploy.staging.v1",
        "driftsweep.deploy.staging.v2",
    ] {
        let f = of(&findings, "Secret", record);
        assert_eq!(f["action"], "keep", "{f}");
        assert!(f["reasons"].to_string().contains("system-managed"), "{f}");
    }
    // The images the previous deploy ran are what a rollback needs: kept as in use.
    let old = of(&findings, "Image", &v1["api"]);
    assert_eq!(old["action"], "keep", "{old}");
    assert!(old["reasons"].to_string().contains("in-use"), "{old}");
    assert!(
        !findings.iter().any(|f| f["action"] == "drift"),
        "what the last deploy pinned runs: {findings:#?}"
    );

    // Someone runs the old image by hand: drift from the last good deploy.
    let mut api =
        s.c.get("apps/v1", "Deployment", Some(&s.staging), "api")
            .unwrap();
    api["spec"]["template"]["spec"]["containers"][0]["image"] = json!(format!(
        "{}/aia/api:{}@{}",
        s.host,
        tag("v1.0.0"),
        v1["api"]
    ));
    s.c.send(
        "PUT",
        &format!("/apis/apps/v1/namespaces/{}/deployments/api", s.staging),
        Some(&api),
    )
    .unwrap();
    let findings = audit("drift.json");
    let d = of(&findings, "Deployment", "api");
    assert_eq!(d["action"], "drift", "{d}");
    assert!(d["reasons"].to_string().contains("version-drift"), "{d}");
    assert!(
        d.to_string().contains("driftsweep.deploy.staging.v2"),
        "{d}"
    );
}

#[test]
fn the_deploy_account_does_everything_deploy_needs_with_exactly_its_grants() {
    let mut s = Scene::on(TestCluster::with_proxy(), 600, 2);
    // k8s/deploy as an operator applies it, with the test's namespaces for AIA's.
    let tools = s.c.ns("tools");
    s.c.namespace(&tools);
    let rendered = Command::new("kubectl")
        .args(["kustomize", "k8s/deploy"])
        .current_dir(crate::root())
        .output()
        .expect("kubectl runs (scripts/test.sh installs it)");
    assert!(rendered.status.success(), "{}", stderr(&rendered));
    let yaml = crate::stdout(&rendered)
        .replace(
            "namespace: aia-staging",
            &format!("namespace: {}", s.staging),
        )
        .replace(
            "namespace: aia-production",
            &format!("namespace: {}", s.prod),
        )
        .replace("namespace: driftsweep", &format!("namespace: {tools}"));
    s.c.kubectl_apply(&yaml);
    let token = s.c.token(&tools, "driftsweep-deploy");
    s.kubeconfig = s.c.kubeconfig_with_token("deploy-account", &token);

    // One object of each kind the Role covers leaves the render, so prune uses every grant.
    let old = format!(
        "---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: old-sa\n  namespace: {ns}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old-config\n  namespace: {ns}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: old-svc\n  namespace: {ns}\nspec:\n  selector: {{app: old}}\n  ports: [{{port: 80}}]\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: old-app\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: old}}}}\n  template:\n    metadata: {{labels: {{app: old}}}}\n    spec:\n      containers: [{{name: old, image: 'registry.invalid/old:1.0.0'}}]\n",
        ns = s.staging
    );
    s.set_manifests(600, &old);
    s.release("v1.0.0");
    s.c.proxy().clear_requests();
    let (out, _) = s.deploy("staging", "v1.0.0", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    s.set_manifests(600, "");
    s.release("v1.1.0");
    let (out, report) = s.deploy("staging", "v1.1.0", &["--prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["pruned"].as_array().unwrap().len(), 4, "{report:#}");
    let (out, _) = s.deploy("production", "v1.1.0", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "promotion reads staging's records: {}",
        stderr(&out)
    );
    let (out, _) = s.run(&["rollback", "--env", "staging"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        s.history("staging").len(),
        2,
        "records beyond `history: 2` were deleted"
    );

    let role = std::fs::read_to_string(crate::root().join("k8s/deploy/rbac.yaml")).unwrap();
    let doc = driftsweep::yaml::parse_documents(&role)
        .unwrap()
        .into_iter()
        .find(|d| d.value["kind"] == "Role")
        .unwrap();
    let mut granted = std::collections::BTreeSet::new();
    for rule in doc.value["rules"].as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    granted.insert((
                        group.as_str().unwrap().to_string(),
                        resource.as_str().unwrap().to_string(),
                        verb.as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    }
    let requests = s.c.proxy().requests();
    let denied: Vec<_> = requests.iter().filter(|r| r.status == 403).collect();
    assert!(
        denied.is_empty(),
        "nothing deploy needs is missing: {denied:?}"
    );
    let mut used: std::collections::BTreeSet<_> =
        requests.iter().filter_map(crate::rbac::grant_of).collect();
    // A server-side apply is one PATCH, which the API server also authorizes as `create`
    // when the object is new (as every object of the first deploy was).
    let applied: Vec<_> = used.iter().filter(|g| g.2 == "patch").cloned().collect();
    for (group, resource, _) in applied {
        used.insert((group, resource, "create".to_string()));
    }
    assert_eq!(used, granted, "deploy uses exactly the Role's grants");
}

#[test]
fn the_deploy_report_is_emailed_with_old_and_new_versions() {
    let s = Scene::new(600);
    let smtp = crate::services::smtp_sink();
    let policy = std::fs::read_to_string(&s.policy).unwrap();
    std::fs::write(
        &s.policy,
        format!(
            "{policy}report:\n  email:\n    to: [team@example.com]\n    from: driftsweep@example.com\n    smtp: {{host: 127.0.0.1, port: {}, tls: none}}\n",
            smtp.port
        ),
    )
    .unwrap();
    let v1 = s.release("v1.0.0");
    assert_eq!(s.deploy("staging", "v1.0.0", &[]).0.status.code(), Some(0));
    let v2 = s.release("v1.1.0");
    let (out, _) = s.deploy("staging", "v1.1.0", &["--email"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let message = mail_parser::MessageParser::default()
        .parse(&messages[0])
        .unwrap();
    let subject = message.subject().unwrap();
    assert!(
        subject.contains("staging deploy v1.1.0: DEPLOYED"),
        "{subject}"
    );
    let text = message.body_text(0).unwrap();
    let short = |d: &str| d.trim_start_matches("sha256:")[..12].to_string();
    assert!(
        text.contains(&format!(
            "api: v1.0.0 ({}) -> v1.1.0 ({})",
            short(&v1["api"]),
            short(&v2["api"])
        )),
        "{text}"
    );
    assert!(text.contains("wait: healthy"), "{text}");
    let attached = message.attachment(0).unwrap();
    let report: Value = serde_json::from_slice(attached.contents()).unwrap();
    assert_eq!(report["schema"], "driftsweep.deploy/v1");
    assert_eq!(report["result"], "deployed");
}

// Blue-green (`deploy.strategy: blue-green`): colours, one switch, the delay, the way back.

/// Turns blue-green (with previews) on or off for every environment of the scene.
fn set_blue_green(s: &Scene, on: bool) {
    let policy = std::fs::read_to_string(&s.policy).unwrap();
    let bg = "  strategy: blue-green\n  preview: true\n";
    let policy = policy.replace(bg, "");
    let policy = if on {
        policy.replace(
            "  timeout_minutes: 1\n",
            &format!("{bg}  timeout_minutes: 1\n"),
        )
    } else {
        policy
    };
    std::fs::write(&s.policy, policy).unwrap();
}

/// A Service per service in staging, so the switch has three Services to move together.
fn services_for_all(s: &Scene) {
    let extra: String = ["web", "worker"]
        .iter()
        .map(|svc| {
            format!(
                "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {svc}\n  namespace: {}\nspec:\n  selector:\n    app: {svc}\n  ports:\n  - port: 80\n",
                s.staging
            )
        })
        .collect();
    s.set_manifests(600, &extra);
}

/// Runs driftsweep with the scale-down delay set to `delay` seconds.
fn run_bg(s: &Scene, args: &[&str], delay: u32) -> (Output, Value) {
    let report = s.c.path("bg.json");
    let _ = std::fs::remove_file(&report);
    let out = s
        .command(args, &report)
        .env("DRIFTSWEEP_SCALE_DOWN_DELAY_SECONDS", delay.to_string())
        .output()
        .unwrap();
    let json = std::fs::read_to_string(&report)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    (out, json)
}

fn deploy_bg(s: &Scene, version: &str, delay: u32) -> (Output, Value) {
    run_bg(
        s,
        &["deploy", "--env", "staging", "--version", version],
        delay,
    )
}

impl Scene {
    fn deployment(&self, name: &str) -> Option<Value> {
        self.c
            .get("apps/v1", "Deployment", Some(&self.staging), name)
    }

    /// Each service's image in colour `colour` of staging.
    fn colour_images(&self, colour: &str) -> BTreeMap<String, String> {
        SERVICES
            .iter()
            .filter_map(|svc| {
                let d = self.deployment(&format!("{svc}-{colour}"))?;
                Some((
                    svc.to_string(),
                    d["spec"]["template"]["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                ))
            })
            .collect()
    }

    fn colour_replicas(&self, colour: &str) -> Vec<i64> {
        SERVICES
            .iter()
            .map(|svc| {
                self.deployment(&format!("{svc}-{colour}"))
                    .map_or(-1, |d| d["spec"]["replicas"].as_i64().unwrap_or(1))
            })
            .collect()
    }

    /// The colour each Service of staging (and its preview) selects.
    fn selected(&self, names: &[&str]) -> Vec<String> {
        names
            .iter()
            .map(|n| {
                self.c.get("v1", "Service", Some(&self.staging), n).map_or(
                    "(none)".to_string(),
                    |s| {
                        s["spec"]["selector"]["driftsweep.io/colour"]
                            .as_str()
                            .unwrap_or("(no colour)")
                            .to_string()
                    },
                )
            })
            .collect()
    }
}

const ALL: [&str; 3] = ["api", "web", "worker"];

#[test]
fn a_healthy_blue_green_release_switches_every_service_together_and_keeps_the_old_colour() {
    let s = Scene::new(600);
    set_blue_green(&s, true);
    services_for_all(&s);
    let v1 = s.release("v1.0.0");
    let (out, report) = deploy_bg(&s, "v1.0.0", 600);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["result"], "deployed", "{report:#}");
    assert_eq!(report["blue_green"]["colour"], "blue");
    assert_eq!(s.colour_images("blue"), s.pinned("v1.0.0", &v1));
    assert_eq!(s.selected(&ALL), ["blue", "blue", "blue"]);
    assert_eq!(
        s.selected(&["api-preview"]),
        ["green"],
        "the preview selects the idle colour"
    );
    assert!(
        s.running("staging").is_empty(),
        "no Deployment under the manifests' own names"
    );
    for svc in SERVICES {
        let d = s.deployment(&format!("{svc}-blue")).unwrap();
        assert_eq!(
            d["spec"]["selector"]["matchLabels"]["driftsweep.io/colour"],
            "blue"
        );
        assert_eq!(d["status"]["readyReplicas"], 2, "{svc}-blue really runs");
    }

    let v2 = s.release("v1.1.0");
    let (out, report) = deploy_bg(&s, "v1.1.0", 600);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["result"], "deployed", "{report:#}");
    let bg = &report["blue_green"];
    assert_eq!(
        (bg["previous_colour"].as_str(), bg["colour"].as_str()),
        (Some("blue"), Some("green"))
    );
    assert_eq!(bg["switched"], true);
    assert_eq!(s.colour_images("green"), s.pinned("v1.1.0", &v2));
    assert_eq!(
        s.selected(&ALL),
        ["green", "green", "green"],
        "one switch for all"
    );
    assert_eq!(s.selected(&["api-preview"]), ["blue"]);
    // The old colour stays at full scale, on its version, with its scale-down time.
    assert_eq!(s.colour_images("blue"), s.pinned("v1.0.0", &v1));
    assert_eq!(s.colour_replicas("blue"), [2, 2, 2]);
    let blue = s.deployment("api-blue").unwrap();
    assert!(
        blue["metadata"]["annotations"]["driftsweep.io/scale-down-at"].is_string(),
        "{blue:#}"
    );
    assert!(
        stderr(&out).contains("blue -> green, switched"),
        "{}",
        stderr(&out)
    );
    let records = s.history("staging");
    assert_eq!(results(&records), ["v1.0.0 healthy", "v1.1.0 healthy"]);
    assert_eq!(records[1]["colour"], "green");
    assert_eq!(records[1]["previous_colour"], "blue");
    assert_eq!(records[1]["strategy"], "blue-green");

    // The same again: nothing to do.
    let (out, report) = deploy_bg(&s, "v1.1.0", 600);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["result"], "unchanged", "{report:#}");

    // The nightly audit: both colours and the previews are the repository's.
    let audit_report = s.c.path("audit.json");
    let out = Command::new(env!("CARGO_BIN_EXE_driftsweep"))
        .args(["run", "--policy", s.policy.to_str().unwrap()])
        .args(["--report", audit_report.to_str().unwrap()])
        .args(["--kubeconfig", s.c.kubeconfig.to_str().unwrap()])
        .current_dir(s.c.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let audit: Value =
        serde_json::from_str(&std::fs::read_to_string(audit_report).unwrap()).unwrap();
    let ours: Vec<&Value> = audit["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["namespace"] == json!(s.staging))
        .filter(|f| f["action"] != "keep")
        .collect();
    assert!(
        ours.is_empty(),
        "no drift, nothing missing, no orphan: {ours:#?}"
    );
}

#[test]
fn a_failing_new_colour_is_never_switched_to_and_is_scaled_down() {
    let s = Scene::new(600);
    set_blue_green(&s, true);
    services_for_all(&s);
    let v1 = s.release("v1.0.0");
    assert_eq!(deploy_bg(&s, "v1.0.0", 600).0.status.code(), Some(0));
    s.release("v1.1.0");
    s.kubelet
        .fail_image(&format!(":{}@", tag("v1.1.0")), "CrashLoopBackOff");
    let (out, report) = deploy_bg(&s, "v1.1.0", 600);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(report["result"], "failed", "{report:#}");
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("CrashLoopBackOff"),
        "{report:#}"
    );
    assert_eq!(report["blue_green"]["switched"], false);
    assert!(
        report.get("rollback").is_none(),
        "nothing to roll back: users never moved"
    );
    assert_eq!(s.selected(&ALL), ["blue", "blue", "blue"], "never switched");
    assert_eq!(
        s.colour_replicas("green"),
        [0, 0, 0],
        "the failed colour is scaled down"
    );
    assert_eq!(s.colour_images("blue"), s.pinned("v1.0.0", &v1));
    assert_eq!(s.colour_replicas("blue"), [2, 2, 2]);
    let blue = s.deployment("api-blue").unwrap();
    assert!(
        blue["metadata"]["annotations"]["driftsweep.io/scale-down-at"].is_null(),
        "the serving colour is not scheduled for scale-down: {blue:#}"
    );
    assert!(stderr(&out).contains("NOT switched"), "{}", stderr(&out));
    assert_eq!(
        results(&s.history("staging")),
        ["v1.0.0 healthy", "v1.1.0 failed"]
    );

    // Fixed: the next deploy brings green up again and switches.
    s.kubelet.heal_image(&format!(":{}@", tag("v1.1.0")));
    let (out, _) = deploy_bg(&s, "v1.1.0", 600);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.selected(&ALL), ["green", "green", "green"]);
}

#[test]
fn a_blue_green_rollback_inside_the_delay_switches_back_in_seconds() {
    let s = Scene::new(600);
    set_blue_green(&s, true);
    services_for_all(&s);
    let v1 = s.release("v1.0.0");
    assert_eq!(deploy_bg(&s, "v1.0.0", 600).0.status.code(), Some(0));
    let v2 = s.release("v1.1.0");
    assert_eq!(deploy_bg(&s, "v1.1.0", 600).0.status.code(), Some(0));
    assert_eq!(s.selected(&ALL), ["green", "green", "green"]);

    let started = Instant::now();
    let (out, report) = run_bg(&s, &["rollback", "--env", "staging"], 600);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["result"], "rolled-back", "{report:#}");
    let bg = &report["blue_green"];
    assert_eq!(bg["fast_rollback"], true, "{report:#}");
    assert_eq!(
        s.selected(&ALL),
        ["blue", "blue", "blue"],
        "the old selector is back"
    );
    assert_eq!(s.selected(&["api-preview"]), ["green"]);
    assert_eq!(s.colour_images("blue"), s.pinned("v1.0.0", &v1));
    // The colour switched back to serves: no scale-down time. The one left keeps the delay.
    let blue = s.deployment("api-blue").unwrap();
    assert!(blue["metadata"]["annotations"]["driftsweep.io/scale-down-at"].is_null());
    let green = s.deployment("api-green").unwrap();
    assert!(green["metadata"]["annotations"]["driftsweep.io/scale-down-at"].is_string());
    assert_eq!(s.colour_images("green"), s.pinned("v1.1.0", &v2));
    // Measured, not asserted beyond "seconds" (BENCHMARKS.md has the figures).
    let switch = bg["switch_seconds"].as_f64().unwrap();
    eprintln!(
        "bench: blue-green rollback of 3 services inside the delay took {seconds:.2} s (command start to end), the switch of 3 Services {switch:.3} s"
    );
    assert!(
        seconds < 20.0,
        "a switch back, not a rollout: {seconds:.1} s"
    );
    let records = s.history("staging");
    assert_eq!(
        results(&records),
        ["v1.0.0 healthy", "v1.1.0 healthy", "v1.0.0 healthy"]
    );
    assert_eq!(records[2]["rollback_to"], 1);
    assert_eq!(records[2]["colour"], "blue");
}

#[test]
fn the_old_colour_is_scaled_down_after_the_delay_and_a_later_rollback_brings_it_up() {
    let s = Scene::new(600);
    set_blue_green(&s, true);
    services_for_all(&s);
    let v1 = s.release("v1.0.0");
    assert_eq!(deploy_bg(&s, "v1.0.0", 2).0.status.code(), Some(0));
    s.release("v1.1.0");
    assert_eq!(deploy_bg(&s, "v1.1.0", 2).0.status.code(), Some(0));
    assert_eq!(
        s.colour_replicas("blue"),
        [2, 2, 2],
        "kept during the delay"
    );
    std::thread::sleep(Duration::from_secs(3));
    let (out, report) = run_bg(&s, &["deploy", "--env", "staging", "--finish"], 2);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["result"], "finished", "{report:#}");
    let mut scaled: Vec<String> = report["blue_green"]["scaled_down"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    scaled.sort();
    assert_eq!(scaled, ["api-blue", "web-blue", "worker-blue"]);
    assert_eq!(s.colour_replicas("blue"), [0, 0, 0]);
    assert_eq!(
        s.colour_replicas("green"),
        [2, 2, 2],
        "the serving colour is untouched"
    );
    assert_eq!(s.selected(&ALL), ["green", "green", "green"]);
    // Nothing more to do the second time.
    let (out, report) = run_bg(&s, &["deploy", "--env", "staging", "--finish"], 2);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        report["blue_green"].get("scaled_down").is_none(),
        "{report:#}"
    );

    // After the delay a rollback is a release of the old version as the idle colour.
    let (out, report) = run_bg(&s, &["rollback", "--env", "staging"], 600);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["result"], "rolled-back", "{report:#}");
    assert_eq!(report["blue_green"]["fast_rollback"], false, "{report:#}");
    assert_eq!(s.selected(&ALL), ["blue", "blue", "blue"]);
    assert_eq!(s.colour_images("blue"), s.pinned("v1.0.0", &v1));
    assert_eq!(s.colour_replicas("blue"), [2, 2, 2]);
}

#[test]
fn an_environment_switches_from_rolling_to_blue_green_and_back() {
    let s = Scene::new(600);
    let v1 = s.release("v1.0.0");
    assert_eq!(s.deploy("staging", "v1.0.0", &[]).0.status.code(), Some(0));
    assert_eq!(s.running("staging"), s.pinned("v1.0.0", &v1));

    set_blue_green(&s, true);
    let v2 = s.release("v1.1.0");
    let (out, report) = deploy_bg(&s, "v1.1.0", 600);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["result"], "deployed", "{report:#}");
    assert!(report["blue_green"]["converted"].is_string(), "{report:#}");
    // What ran came up as blue, users switched to it, then the new version went to green.
    assert_eq!(s.colour_images("blue"), s.pinned("v1.0.0", &v1));
    assert_eq!(s.colour_images("green"), s.pinned("v1.1.0", &v2));
    assert_eq!(s.selected(&["api"]), ["green"]);
    for svc in SERVICES {
        assert_eq!(
            s.deployment(svc).unwrap()["spec"]["replicas"],
            0,
            "the rolling {svc} is scaled to zero"
        );
    }
    assert_eq!(
        results(&s.history("staging")),
        ["v1.0.0 healthy", "v1.0.0 healthy", "v1.1.0 healthy"]
    );

    // Prune takes the rolling Deployments left at zero, never a colour (the one serving is
    // in no render of the idle colour) nor a preview.
    s.release("v1.1.1");
    let (out, report) = run_bg(
        &s,
        &[
            "deploy",
            "--env",
            "staging",
            "--version",
            "v1.1.1",
            "--prune",
            "--dry-run",
        ],
        600,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["result"], "would-deploy", "{report:#}");
    assert!(
        stderr(&out).contains("change Deployment") && stderr(&out).contains("-blue"),
        "the dry run names the idle colour's changes: {}",
        stderr(&out)
    );
    assert_eq!(
        s.selected(&["api"]),
        ["green"],
        "a dry run switches nothing"
    );
    let (out, report) = run_bg(
        &s,
        &[
            "deploy",
            "--env",
            "staging",
            "--version",
            "v1.1.1",
            "--prune",
        ],
        600,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut pruned: Vec<String> = report["pruned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["object"].as_str().unwrap(),
                p["outcome"].as_str().unwrap()
            )
        })
        .collect();
    pruned.sort();
    let ns = &s.staging;
    assert_eq!(
        pruned,
        SERVICES
            .iter()
            .map(|svc| format!("Deployment {ns}/{svc} pruned"))
            .collect::<Vec<_>>(),
        "{report:#}"
    );
    assert_eq!(s.selected(&["api"]), ["blue"]);
    assert_eq!(
        s.colour_replicas("green"),
        [2, 2, 2],
        "the old colour is kept for its delay"
    );
    assert!(s.c.get("v1", "Service", Some(ns), "api-preview").is_some());

    // And back: the running version comes up rolling, then the new one rolls out.
    set_blue_green(&s, false);
    let v3 = s.release("v1.2.0");
    let (out, report) = s.deploy("staging", "v1.2.0", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["result"], "deployed", "{report:#}");
    assert_eq!(s.running("staging"), s.pinned("v1.2.0", &v3));
    assert_eq!(s.selected(&["api"]), ["(no colour)"]);
    assert_eq!(s.colour_replicas("blue"), [0, 0, 0]);
    assert_eq!(s.colour_replicas("green"), [0, 0, 0]);
    let records = s.history("staging");
    assert_eq!(
        results(&records[records.len() - 2..]),
        ["v1.1.1 healthy", "v1.2.0 healthy"],
        "the conversion is a deploy of the running version, rolling"
    );
    assert_eq!(records[records.len() - 2]["strategy"], "rolling");
}

#[test]
fn deploy_commands_never_show_a_secret_value_of_the_manifests() {
    let s = Scene::new(60);
    let value = |n: u32| format!("MARKER-{}-deploy-secret-{n}", s.c.prefix);
    let secret = |n: u32| {
        format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: api-secret\n  namespace: {}\nstringData:\n  password: {}\n",
            s.staging,
            value(n)
        )
    };
    let markers = crate::secrets::Markers::new(&[
        ("the first Secret value", &value(1)),
        ("the second Secret value", &value(2)),
    ]);
    s.release("v1.0.0");
    s.release("v1.1.0");
    let run = |args: &[&str]| {
        let report = s.c.path("deploy.json");
        let _ = std::fs::remove_file(&report);
        let mut cmd = if args[0] == "history" {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_driftsweep"));
            cmd.args(args)
                .args(["--policy", s.policy.to_str().unwrap()])
                .args(["--kubeconfig", s.kubeconfig.to_str().unwrap()]);
            cmd
        } else {
            s.command(args, &report)
        };
        let out = cmd.env("DRIFTSWEEP_LOG", "debug").output().unwrap();
        markers.assert_output_clean(&args.join(" "), &out);
        if let Ok(bytes) = std::fs::read(&report) {
            markers.assert_absent(&format!("the report of `{}`", args.join(" ")), &bytes);
        }
        out
    };
    s.set_manifests(60, &secret(1));
    for args in [
        &[
            "deploy",
            "--env",
            "staging",
            "--version",
            "v1.0.0",
            "--dry-run",
        ][..],
        &["deploy", "--env", "staging", "--version", "v1.0.0"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    // The Secret's value changes with the release: the diff says so, without the values.
    s.set_manifests(60, &secret(2));
    let out = run(&[
        "deploy",
        "--env",
        "staging",
        "--version",
        "v1.1.0",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown = format!("{}{}", stderr(&out), crate::stdout(&out));
    assert!(shown.contains("api-secret"), "the change is shown: {shown}");
    for args in [
        &["deploy", "--env", "staging", "--version", "v1.1.0"][..],
        &["history", "--env", "staging"],
        &["history", "--env", "staging", "--format", "json"],
        &["rollback", "--env", "staging"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
    // The value was deployed (the scan looked for something that exists), and rolled back.
    let deployed =
        s.c.get("v1", "Secret", Some(&s.staging), "api-secret")
            .expect("the Secret is deployed");
    use base64::Engine;
    assert_eq!(
        deployed["data"]["password"],
        json!(base64::engine::general_purpose::STANDARD.encode(value(1)))
    );
}
