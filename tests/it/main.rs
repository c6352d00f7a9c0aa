//! The one integration binary: the real `driftsweep` executable, run as a user runs it.

mod alerts;
mod cli;
mod cluster;
mod controlplane;
mod dashboard;
mod delivery;
mod deploy;
mod enforce;
mod faults;
mod gcp;
mod gcp_lb;
mod gcp_logging;
mod gcp_sql;
mod gcp_sql_backups;
mod kubelet;
mod kubernetes;
mod lint;
mod proxy;
mod rbac;
mod registry;
mod reports;
mod secrets;
mod services;
mod version;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn driftsweep(args: &[&str]) -> Output {
    driftsweep_with(args, &[])
}

/// The binary in the repository's root with `env` set, and none of the settings a
/// developer's shell may hold (policy, backup, archive, credentials, webhooks, emulators).
pub fn driftsweep_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_driftsweep"));
    cmd.args(args).current_dir(root());
    for var in [
        "DRIFTSWEEP_POLICY",
        "DRIFTSWEEP_VERSION",
        "DRIFTSWEEP_BACKUP",
        "DRIFTSWEEP_ARCHIVE",
        "DRIFTSWEEP_SMTP_USERNAME",
        "DRIFTSWEEP_SMTP_PASSWORD",
        "DRIFTSWEEP_GOOGLE_CHAT_WEBHOOK_URL",
        "DRIFTSWEEP_SLACK_WEBHOOK_URL",
        "STORAGE_EMULATOR_HOST",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("driftsweep runs")
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(&path, text).expect("write");
    path
}
