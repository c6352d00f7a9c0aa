//! `driftsweep version` on throwaway git repositories made with the `git` CLI: which tag names
//! the version, and what is said (not hidden) about dirty work trees and shallow clones.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::{stderr, stdout, write};

/// Runs `git` in `dir`, isolated from the machine's git configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(["-c", "tag.gpgSign=false", "-c", "commit.gpgSign=false"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn init(dir: &Path) {
    git(dir, &["init", "-q"]);
}

/// An empty commit with message `message`; returns its full sha.
fn commit(dir: &Path, message: &str) -> String {
    git(dir, &["commit", "-q", "--allow-empty", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

fn version(repo: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_driftsweep"))
        .arg("version")
        .arg("--repo")
        .arg(repo)
        .args(extra)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("driftsweep runs")
}

/// The text output, checked to be the version alone with nothing said on stderr.
fn clean_version(repo: &Path) -> String {
    let out = version(repo, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "a clean, full clone needs no note");
    let text = stdout(&out);
    assert!(
        text.ends_with('\n') && text.lines().count() == 1,
        "{text:?}"
    );
    text.trim_end().to_string()
}

fn json(repo: &Path) -> Value {
    let out = version(repo, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("stdout is JSON")
}

fn short(sha: &str) -> &str {
    &sha[..12]
}

#[test]
fn head_on_a_release_tag_is_that_version() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    commit(dir.path(), "one");
    let head = commit(dir.path(), "two");
    git(dir.path(), &["tag", "v1.2.3"]);
    assert_eq!(clean_version(dir.path()), "v1.2.3");
    let j = json(dir.path());
    assert_eq!(j["version"], "v1.2.3");
    assert_eq!(j["commit"], head.as_str());
    assert_eq!(j["short"], short(&head));
    assert_eq!(j["exact_tag"], "v1.2.3");
    assert!(j["dirty"].is_null());
    assert_eq!(j["shallow"], false);
    assert_eq!(j.as_object().unwrap().len(), 6);
    let text = stdout(&version(dir.path(), &["--format", "json"]));
    let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap();
    let keys = [
        "version",
        "commit",
        "short",
        "exact_tag",
        "dirty",
        "shallow",
    ];
    assert!(keys.windows(2).all(|k| at(k[0]) < at(k[1])), "{text}");
}

#[test]
fn commits_after_a_tag_are_a_dev_version_of_it_named_by_a_fixed_length_sha() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    commit(dir.path(), "one");
    git(dir.path(), &["tag", "v1.2.3"]);
    commit(dir.path(), "two");
    let head = commit(dir.path(), "three");
    assert_eq!(
        clean_version(dir.path()),
        format!("v1.2.3-dev.g{}", short(&head))
    );
    let j = json(dir.path());
    assert!(j["exact_tag"].is_null());
    assert_eq!(j["short"].as_str().unwrap().len(), 12);
}

#[test]
fn no_version_tag_is_a_dev_version_of_zero() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let head = commit(dir.path(), "one");
    assert_eq!(
        clean_version(dir.path()),
        format!("v0.0.0-dev.g{}", short(&head))
    );
}

#[test]
fn a_pre_release_tag_is_exact_and_a_dev_build_after_it_extends_its_pre_release() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    commit(dir.path(), "one");
    git(dir.path(), &["tag", "v1.3.0-rc.1"]);
    assert_eq!(clean_version(dir.path()), "v1.3.0-rc.1");
    let head = commit(dir.path(), "two");
    assert_eq!(
        clean_version(dir.path()),
        format!("v1.3.0-rc.1.dev.g{}", short(&head))
    );
}

#[test]
fn a_tag_with_build_metadata_is_exact_and_a_dev_build_after_it_drops_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    commit(dir.path(), "one");
    git(dir.path(), &["tag", "v1.2.3+build.5"]);
    assert_eq!(clean_version(dir.path()), "v1.2.3+build.5");
    let head = commit(dir.path(), "two");
    assert_eq!(
        clean_version(dir.path()),
        format!("v1.2.3-dev.g{}", short(&head))
    );
}

#[test]
fn annotated_tags_count_like_lightweight_ones() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    commit(dir.path(), "one");
    git(dir.path(), &["tag", "-a", "v2.0.0", "-m", "release 2.0.0"]);
    assert_eq!(clean_version(dir.path()), "v2.0.0");
    assert_eq!(json(dir.path())["exact_tag"], "v2.0.0");
    let head = commit(dir.path(), "two");
    assert_eq!(
        clean_version(dir.path()),
        format!("v2.0.0-dev.g{}", short(&head))
    );
}

#[test]
fn several_tags_on_head_give_the_highest_precedence() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    commit(dir.path(), "one");
    for tag in ["v1.2.2", "v1.2.3-rc.2", "v1.2.3", "v1.2.3-rc.10"] {
        git(dir.path(), &["tag", tag]);
    }
    git(
        dir.path(),
        &["tag", "-a", "v1.2.3-rc.11", "-m", "annotated"],
    );
    assert_eq!(clean_version(dir.path()), "v1.2.3");
}

#[test]
fn tags_that_are_not_v_semver_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    commit(dir.path(), "one");
    git(dir.path(), &["tag", "v1.0.0"]);
    let head = commit(dir.path(), "two");
    for tag in ["latest", "release-3", "1.2", "9.9.9", "v2", "deploy/v3.0.0"] {
        git(dir.path(), &["tag", tag]);
    }
    assert_eq!(
        clean_version(dir.path()),
        format!("v1.0.0-dev.g{}", short(&head))
    );
    assert!(json(dir.path())["exact_tag"].is_null());
}

#[test]
fn the_last_tag_is_the_highest_reachable_not_the_nearest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    commit(d, "base");
    git(d, &["tag", "v1.2.0"]);
    git(d, &["branch", "maint"]);
    git(d, &["branch", "experiment"]);
    commit(d, "feature");
    git(d, &["tag", "v1.3.0"]);
    commit(d, "more");
    commit(d, "and more");
    git(d, &["checkout", "-q", "maint"]);
    commit(d, "fix");
    git(d, &["tag", "v1.2.5"]);
    git(d, &["checkout", "-q", "experiment"]);
    commit(d, "unmerged");
    git(d, &["tag", "v9.0.0"]);
    git(d, &["checkout", "-q", "main"]);
    git(d, &["merge", "-q", "--no-edit", "maint"]);
    let head = git(d, &["rev-parse", "HEAD"]);
    // `git describe` would say v1.2.5 (one commit away); v1.3.0 is in this commit too, and
    // v9.0.0 is not reachable.
    assert_eq!(clean_version(d), format!("v1.3.0-dev.g{}", short(&head)));
}

#[test]
fn a_dirty_work_tree_is_said_on_stderr_and_in_json_and_leaves_the_version_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    write(d, "tracked.txt", "one\n");
    write(d, ".gitignore", "*.log\n");
    git(d, &["add", "."]);
    commit(d, "one");
    git(d, &["tag", "v1.2.3"]);
    let head = git(d, &["rev-parse", "HEAD"]);
    write(d, "build.log", "ignored files do not count\n");
    assert_eq!(clean_version(d), "v1.2.3");

    write(d, "tracked.txt", "changed\n");
    write(d, "new/untracked.txt", "new\n");
    let out = version(d, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "v1.2.3\n", "the version names the commit");
    assert_eq!(
        stderr(&out),
        format!(
            "note: the work tree has 2 uncommitted changes; the version names commit `{}`, not what is on disk\n",
            short(&head)
        )
    );
    let j = json(d);
    assert_eq!(j["version"], "v1.2.3");
    assert_eq!(j["dirty"], serde_json::json!({"files": 2}));

    // Staged but not committed counts as well.
    git(d, &["add", "tracked.txt"]);
    assert_eq!(json(d)["dirty"]["files"], 2);
}

#[test]
fn a_shallow_clone_is_said_when_it_may_hide_the_last_tag() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    std::fs::create_dir(&origin).unwrap();
    init(&origin);
    commit(&origin, "one");
    git(&origin, &["tag", "v1.0.0"]);
    commit(&origin, "two");
    let head = commit(&origin, "three");
    let url = format!("file://{}", origin.display());
    git(dir.path(), &["clone", "-q", "--depth", "1", &url, "clone"]);
    let clone = dir.path().join("clone");

    let out = version(&clone, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("v0.0.0-dev.g{}\n", short(&head)));
    assert!(stderr(&out).contains("shallow clone"), "{}", stderr(&out));
    assert!(stderr(&out).contains("git fetch --unshallow --tags"));
    assert_eq!(json(&clone)["shallow"], true);
}

#[test]
fn a_subfolder_of_the_repository_names_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    write(dir.path(), "sub/file.txt", "x\n");
    git(dir.path(), &["add", "."]);
    commit(dir.path(), "one");
    git(dir.path(), &["tag", "v0.4.0"]);
    assert_eq!(clean_version(&dir.path().join("sub")), "v0.4.0");
}

#[test]
fn not_a_repository_exits_2_naming_the_folder_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = version(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: `{}` is not in a git repository",
            dir.path().display()
        )),
        "{err}"
    );
    assert!(
        err.contains("\nhint: ") && err.contains("`--repo DIR`"),
        "{err}"
    );

    let out = version(&dir.path().join("missing"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn a_repository_without_commits_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let out = version(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has no commit yet"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_command_and_the_flag_say_which_version_is_which() {
    let help = Command::new(env!("CARGO_BIN_EXE_driftsweep"))
        .args(["version", "--help"])
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    let text = stdout(&help);
    assert!(text.contains("driftsweep --version"), "{text}");
    assert!(
        text.contains("Examples:") && text.contains("--format json"),
        "{text}"
    );

    let own = Command::new(env!("CARGO_BIN_EXE_driftsweep"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(own.status.code(), Some(0));
    assert_eq!(
        stdout(&own),
        format!("driftsweep {}\n", env!("CARGO_PKG_VERSION"))
    );

    let top = Command::new(env!("CARGO_BIN_EXE_driftsweep"))
        .arg("--help")
        .output()
        .unwrap();
    let text = stdout(&top);
    assert!(
        text.contains("version") && text.contains("own version"),
        "{text}"
    );
}
