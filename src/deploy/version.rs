//! The version a deploy names: computed from the repository's git tags (`driftsweep version`)
//! or parsed from what a user passes (`--version V`). One type and one rule, so image tags,
//! labels and history records spell the same version, and a mutable name such as `latest`
//! never gets in.
//!
//! The version of a commit (DESIGN "Deploy"):
//!
//! - HEAD is exactly on a version tag: that tag, e.g. `v1.2.3`, `v1.2.3-rc.1`, `v1.2.3+build.5`.
//!   When several version tags point at HEAD, the highest by semver precedence wins.
//! - Otherwise `<last tag>-dev.g<sha>`, where `<sha>` is the first [`SHORT_LEN`] hex digits of
//!   HEAD and `<last tag>` is the highest version tag reachable from HEAD (see [`describe`]):
//!   `v1.2.3-dev.g0123456789ab`. A base with a pre-release keeps it and appends
//!   `.dev.g<sha>` (`v1.2.3-rc.1.dev.g0123456789ab`); a base's build metadata is dropped, as it
//!   described the tagged build, not this one.
//! - No version tag reachable: `v0.0.0-dev.g<sha>`.
//!
//! Only tags spelled `v` + semver count (`v1.2.3`, `v1.2.3-rc.1`, `v1.2.3+build.5`); `latest`,
//! `release-3` or `1.2` are ignored by [`describe`] and refused by [`parse_version`].

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use gix::ObjectId;
use semver::{BuildMetadata, Prerelease};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Hex digits of the commit in [`RepoVersion::short`] and in a dev version. Fixed, unlike `git
/// describe` or gix's `Id::shorten()` (whose length grows with the repository), so a laptop and
/// CI name one commit with one version.
pub const SHORT_LEN: usize = 12;

/// The longest Kubernetes label value.
const LABEL_MAX: usize = 63;

#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error(
        "the version is empty\nhint: pass a version such as `v1.2.3`, or compute it with `driftsweep version`"
    )]
    Empty,
    #[error(
        "`{0}` is not a version: it is a tag that moves, so it cannot say which images ran, nor be rolled back to\nhint: pass the exact version, e.g. `--version v1.2.3`, or compute it with `driftsweep version`"
    )]
    Mutable(String),
    #[error(
        "`{value}` is not a semantic version: {reason}\nhint: write `v1.2.3` (or `1.2.3`), with an optional pre-release (`v1.2.3-rc.1`) or build metadata (`v1.2.3+build.5`)"
    )]
    NotSemver { value: String, reason: String },
    #[error(
        "`{}` does not exist or is not a folder\nhint: pass the repository's folder with `--repo DIR`",
        .0.display()
    )]
    NoFolder(PathBuf),
    #[error(
        "`{}` is not in a git repository (no `.git` there or in any parent folder)\nhint: run it inside the repository, or pass its folder with `--repo DIR`",
        .0.display()
    )]
    NotARepository(PathBuf),
    #[error(
        "the git repository `{}` has no commit yet, so there is no version to name\nhint: commit, then tag the release, e.g. `git tag v0.1.0`",
        .0.display()
    )]
    NoCommit(PathBuf),
    #[error("cannot read the git repository `{}` ({what})", dir.display())]
    Unreadable {
        dir: PathBuf,
        what: String,
        #[source]
        source: Box<gix::Error>,
    },
}

impl VersionError {
    /// Whether the user can fix it by passing something else (exit 2), rather than the
    /// repository failing to read (exit 1).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, VersionError::Unreadable { .. })
    }
}

/// A semantic version, written with a leading `v` (`v1.2.3-rc.1+build.5`).
///
/// `==` is "the same version string" (build metadata included); ordering is only through
/// [`Version::cmp_precedence`], which ignores build metadata as semver says. There is no `Ord`
/// on purpose: the two would disagree on `v1.2.3+a` and `v1.2.3+b`.
///
/// Precedence and dev versions: a dev build made after `v1.2.3` is `v1.2.3-dev.g…`, a
/// pre-release, so it sorts *below* `v1.2.3` (and below `v1.2.3-rc.1`, since `dev` < `rc`).
/// Never order dev builds against releases by precedence; use the history's times.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(semver::Version);

impl Version {
    pub fn semver(&self) -> &semver::Version {
        &self.0
    }

    /// A release has no pre-release part (`v1.2.3`, `v1.2.3+build.5`); dev builds and release
    /// candidates are not releases.
    pub fn is_release(&self) -> bool {
        self.0.pre.is_empty()
    }

    /// Semver precedence: major, minor, patch, then pre-release; build metadata ignored.
    pub fn cmp_precedence(&self, other: &Version) -> Ordering {
        self.0.cmp_precedence(&other.0)
    }

    /// The image tag form, what `${VERSION}` in manifests stands for: without the `v`, as the
    /// repository's images are tagged (`aia-api:1.14.2`, `aia-api:1.15.0-rc.1`), and `+`
    /// written `_`, since OCI tags allow only `[A-Za-z0-9_.-]` (Helm maps chart versions to
    /// OCI tags the same way). A semver never contains `_`, so the mapping is one to one.
    pub fn tag(&self) -> String {
        self.0.to_string().replace('+', "_")
    }

    /// A valid Kubernetes label value (`app.kubernetes.io/version`): the [`tag`](Self::tag)
    /// form, cut to 63 characters and to an alphanumeric last character when longer. Labels
    /// select; the exact version belongs in an annotation.
    pub fn label_value(&self) -> String {
        let mut value = self.tag();
        // The tag form is ASCII (digits, letters, `.`, `-`, `_`), so byte indexes are char indexes.
        value.truncate(LABEL_MAX);
        while value.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
            value.pop();
        }
        value
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_version(text)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_version(&text).map_err(serde::de::Error::custom)
    }
}

/// A version as a user writes it: `v1.2.3` or `1.2.3`, with pre-release and build metadata as
/// semver defines. Refuses `latest` (it moves), the empty string and anything else that is not
/// semver (`1.2`, ` 1.2.3`, `1.2.3-rc.01`), naming the value.
pub fn parse_version(text: &str) -> Result<Version, VersionError> {
    if text.is_empty() {
        return Err(VersionError::Empty);
    }
    if text.eq_ignore_ascii_case("latest") {
        return Err(VersionError::Mutable(text.to_string()));
    }
    let bare = text.strip_prefix('v').unwrap_or(text);
    semver::Version::parse(bare)
        .map(Version)
        .map_err(|e| VersionError::NotSemver {
            value: text.to_string(),
            reason: e.to_string(),
        })
}

/// The version a tag names, when the tag is a version tag: `v` then semver. The `v` is
/// required here (unlike [`parse_version`]) so that tags such as `2024` are not versions.
fn version_tag(name: &str) -> Option<Version> {
    let bare = name.strip_prefix('v')?;
    semver::Version::parse(bare).ok().map(Version)
}

/// `<base>-dev.g<short>`, or `<base pre-release>.dev.g<short>` when the base is a pre-release,
/// without the base's build metadata; `0.0.0` when there is no base.
///
/// DESIGN writes `<last tag>-dev.<short sha>`. The `g` (as `git describe` writes it) keeps the
/// sha identifier alphanumeric: a sha of only digits would be a numeric identifier, invalid with
/// a leading zero (`dev.0123…`) and compared as a number otherwise. Appending `.dev.…` to a
/// pre-release, not `-dev.…`, keeps `rc.1.dev.g…` between `rc.1` and `rc.2` (`rc.1-dev.…`
/// would sort above `rc.2`). The dev part goes before `+`, never into the build metadata.
fn dev_version(base: Option<&Version>, short: &str) -> Version {
    let zero = semver::Version::new(0, 0, 0);
    let base = base.map_or(&zero, |b| &b.0);
    let dev = format!("dev.g{short}");
    let pre = if base.pre.is_empty() {
        dev
    } else {
        format!("{}.{dev}", base.pre)
    };
    // The base's identifiers parsed already, `dev` is a word and `g<hex>` starts with a letter,
    // so every identifier is valid and non-empty.
    let pre = Prerelease::new(&pre).expect("a valid pre-release plus alphanumeric identifiers");
    Version(semver::Version {
        major: base.major,
        minor: base.minor,
        patch: base.patch,
        pre,
        build: BuildMetadata::EMPTY,
    })
}

/// Uncommitted changes in the work tree: files modified, added, deleted or renamed in the
/// index or on disk, and untracked files that are not ignored, each counted once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DirtyState {
    pub files: usize,
}

/// What [`describe`] found. Its JSON is what `driftsweep version --format json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct RepoVersion {
    pub version: Version,
    /// HEAD's full commit id (40 hex digits).
    pub commit: String,
    /// The first [`SHORT_LEN`] hex digits of `commit`.
    pub short: String,
    /// The tag HEAD is exactly on, as git names it (`v1.2.3`); `None` for a dev version.
    pub exact_tag: Option<String>,
    /// `None` when the work tree matches HEAD (or there is none: a bare repository). The
    /// version is unchanged by it: it names the commit, not what is on disk.
    pub dirty: Option<DirtyState>,
    /// A shallow clone: tags and history beyond its depth are missing, so the last tag found
    /// may not be the last tag.
    pub shallow: bool,
}

/// The version of HEAD in the git repository that holds `repo` (the folder or any parent).
///
/// The "last tag" of a dev version is the highest-precedence version tag reachable from HEAD,
/// not the nearest by commit count as `git describe` picks: it is the newest release this
/// commit contains. The nearest depends on merge topology (a maintenance tag `v1.2.5` merged
/// back into a main that holds `v1.3.0` is nearer) and would move a dev build's base backwards.
///
/// Dirty work trees and shallow clones are stated in the result, never hidden, and never
/// change the version string.
pub fn describe(repo: &Path) -> Result<RepoVersion, VersionError> {
    let (repository, dir, mut described) = describe_commit(repo)?;
    described.dirty = dirty(&repository, &dir)?;
    Ok(described)
}

/// The same without the work tree's state, which reads every file of the checkout: for a
/// caller that shows only the version (the report's dashboard). `dirty` is always `None`.
pub fn describe_head(repo: &Path) -> Result<RepoVersion, VersionError> {
    describe_commit(repo).map(|(_, _, described)| described)
}

fn describe_commit(repo: &Path) -> Result<(gix::Repository, PathBuf, RepoVersion), VersionError> {
    if !repo.is_dir() {
        return Err(VersionError::NoFolder(repo.to_path_buf()));
    }
    let repository = gix::discover(repo).map_err(|source| {
        use gix::discover::upwards::Error as Upwards;
        match source.downcast_any_ref::<Upwards>() {
            Some(
                Upwards::NoGitRepository { .. }
                | Upwards::NoGitRepositoryWithinCeiling { .. }
                | Upwards::NoGitRepositoryWithinFs { .. },
            ) => VersionError::NotARepository(repo.to_path_buf()),
            _ => unreadable(repo, "opening it")(source),
        }
    })?;
    let dir = repository
        .workdir()
        .unwrap_or_else(|| repository.git_dir())
        .to_path_buf();

    let mut head = repository
        .head()
        .map_err(unreadable(&dir, "reading `HEAD`"))?;
    if head.is_unborn() {
        return Err(VersionError::NoCommit(dir));
    }
    let head_commit = head
        .peel_to_commit()
        .map_err(unreadable(&dir, "reading the commit `HEAD` names"))?;
    let head_id = head_commit.id;
    let commit = head_id.to_string();
    let short = head_id.to_hex_with_len(SHORT_LEN).to_string();
    let shallow = repository
        .is_shallow()
        .map_err(unreadable(&dir, "reading its shallow file"))?;

    let tags = version_tags(&repository, &dir)?;
    let (version, exact_tag) = match tags.get(&head_id).and_then(highest) {
        Some((version, name)) => (version.clone(), Some(name.clone())),
        None => {
            let base = last_tag(&head_commit, &tags, &dir)?;
            (dev_version(base.map(|(v, _)| v), &short), None)
        }
    };
    // Both borrow the repository, which is handed back.
    drop(head_commit);
    drop(head);
    let described = RepoVersion {
        version,
        commit,
        short,
        exact_tag,
        dirty: None,
        shallow,
    };
    Ok((repository, dir, described))
}

fn unreadable(dir: &Path, what: &str) -> impl FnOnce(gix::Error) -> VersionError {
    let dir = dir.to_path_buf();
    let what = what.to_string();
    move |source| VersionError::Unreadable {
        dir,
        what,
        source: Box::new(source),
    }
}

type TagsByCommit = HashMap<ObjectId, Vec<(Version, String)>>;

/// Version tags (lightweight or annotated) by the commit they name. Tags that are not version
/// tags are skipped before they are read; a version tag that names a tree or blob is skipped.
fn version_tags(repository: &gix::Repository, dir: &Path) -> Result<TagsByCommit, VersionError> {
    let mut tags = TagsByCommit::new();
    let references = repository
        .references()
        .map_err(unreadable(dir, "listing its references"))?;
    for reference in references
        .tags()
        .map_err(unreadable(dir, "listing its tags"))?
    {
        let mut reference = reference.map_err(unreadable(dir, "reading a tag"))?;
        let name = reference.name().shorten().to_string();
        let Some(version) = version_tag(&name) else {
            continue;
        };
        let target = reference
            .peel_to_id()
            .map_err(unreadable(dir, &format!("reading the tag `{name}`")))?
            .detach();
        let kind = repository
            .find_header(target)
            .map_err(unreadable(
                dir,
                &format!("reading what the tag `{name}` names"),
            ))?
            .kind();
        if kind == gix::objs::Kind::Commit {
            tags.entry(target).or_default().push((version, name));
        }
    }
    Ok(tags)
}

/// The highest by precedence; ties (same precedence, other build metadata) broken by the full
/// version, then by the tag name, so the choice never depends on listing order.
fn highest<'t>(
    candidates: impl IntoIterator<Item = &'t (Version, String)>,
) -> Option<&'t (Version, String)> {
    candidates.into_iter().max_by(|a, b| {
        a.0.cmp_precedence(&b.0)
            .then_with(|| a.0.0.cmp(&b.0.0))
            .then_with(|| a.1.cmp(&b.1))
    })
}

/// The highest version tag on HEAD's ancestors (HEAD included), walking until every tagged
/// commit was seen or history ends.
fn last_tag<'t>(
    head: &gix::Commit<'_>,
    tags: &'t TagsByCommit,
    dir: &Path,
) -> Result<Option<&'t (Version, String)>, VersionError> {
    if tags.is_empty() {
        return Ok(None);
    }
    let mut reachable: Vec<&(Version, String)> = Vec::new();
    let mut seen = 0;
    let walk = head
        .ancestors()
        .all()
        .map_err(unreadable(dir, "walking the history of `HEAD`"))?;
    for info in walk {
        let info = info.map_err(unreadable(dir, "walking the history of `HEAD`"))?;
        if let Some(on_commit) = tags.get(&info.id) {
            reachable.extend(on_commit);
            seen += 1;
            if seen == tags.len() {
                break;
            }
        }
    }
    Ok(highest(reachable))
}

/// `None` when nothing differs from HEAD or there is no work tree. Untracked files count (a
/// build would include them); ignored files don't.
fn dirty(repository: &gix::Repository, dir: &Path) -> Result<Option<DirtyState>, VersionError> {
    if repository.workdir().is_none() {
        return Ok(None);
    }
    let what = "comparing the work tree with `HEAD`";
    let changes = repository
        .status(gix::progress::Discard)
        .map_err(unreadable(dir, what))?
        .untracked_files(gix::status::UntrackedFiles::Files)
        .index_worktree_rewrites(None)
        .index_worktree_submodules(gix::status::Submodule::AsConfigured { check_dirty: true })
        .into_iter(None::<gix::bstr::BString>)
        .map_err(unreadable(dir, what))?;
    let mut files = BTreeSet::new();
    for change in changes {
        let change = change.map_err(unreadable(dir, what))?;
        let counts = match &change {
            // `None` for ignored files and for index entries that merely need a stat refresh.
            gix::status::Item::IndexWorktree(item) => item.summary().is_some(),
            gix::status::Item::TreeIndex(_) => true,
        };
        if counts {
            files.insert(change.location().to_owned());
        }
    }
    Ok((!files.is_empty()).then_some(DirtyState { files: files.len() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        parse_version(text).unwrap()
    }

    #[test]
    fn accepts_versions_with_or_without_the_v() {
        assert_eq!(v("v1.2.3"), v("1.2.3"));
        assert_eq!(v("1.2.3").to_string(), "v1.2.3");
        assert_eq!(v("v1.2.3-rc.1").to_string(), "v1.2.3-rc.1");
        assert_eq!(v("v1.2.3+build.5").to_string(), "v1.2.3+build.5");
        assert_eq!(v("1.2.3-rc.1+build.05").semver().build.as_str(), "build.05");
    }

    #[test]
    fn refuses_latest_because_it_moves() {
        for text in ["latest", "LATEST", "Latest"] {
            let e = parse_version(text).unwrap_err();
            assert!(matches!(e, VersionError::Mutable(_)), "{text}");
            let message = e.to_string();
            assert!(message.contains(&format!("`{text}`")), "{message}");
            assert!(message.contains("moves"), "{message}");
            assert!(message.contains("\nhint: "), "{message}");
        }
    }

    #[test]
    fn refuses_the_empty_version() {
        assert!(matches!(parse_version(""), Err(VersionError::Empty)));
    }

    #[test]
    fn refuses_what_is_not_semver_and_names_it() {
        for text in [
            "1.2",
            "v1",
            "release-3",
            "V1.2.3",
            "vv1.2.3",
            " 1.2.3",
            "1.2.3 ",
            "1.2.3-",
            "01.2.3",
            "1.2.3-rc.01",
            "v",
            "stable",
        ] {
            let e = parse_version(text).unwrap_err();
            assert!(matches!(e, VersionError::NotSemver { .. }), "{text}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("`{text}` is not a semantic version"))
            );
            assert!(e.to_string().contains("\nhint: write `v1.2.3`"));
            assert!(e.is_bad_input());
        }
    }

    #[test]
    fn a_release_has_no_pre_release_even_with_build_metadata() {
        assert!(v("v1.2.3").is_release());
        assert!(v("v1.2.3+build.5").is_release());
        assert!(!v("v1.2.3-rc.1").is_release());
        assert!(!dev_version(Some(&v("v1.2.3")), "0123456789ab").is_release());
    }

    #[test]
    fn precedence_ignores_build_metadata_and_equality_does_not() {
        assert_eq!(v("1.2.3+a").cmp_precedence(&v("1.2.3+b")), Ordering::Equal);
        assert_ne!(v("1.2.3+a"), v("1.2.3+b"));
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0-rc.1.dev.g0123456789ab",
            "1.0.0-rc.2",
            "1.0.0",
            "1.0.1-dev.gabcdefabcdef",
            "1.0.1",
            "1.10.0",
        ];
        for pair in ordered.windows(2) {
            assert_eq!(
                v(pair[0]).cmp_precedence(&v(pair[1])),
                Ordering::Less,
                "{} < {}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn a_dev_build_sorts_below_the_release_it_follows() {
        let dev = dev_version(Some(&v("v1.2.3")), "abcdefabcdef");
        assert_eq!(dev.cmp_precedence(&v("v1.2.3")), Ordering::Less);
        assert_eq!(dev.cmp_precedence(&v("v1.2.2")), Ordering::Greater);
    }

    #[test]
    fn dev_versions_are_valid_semver_even_for_all_digit_shas() {
        let base = v("v1.2.3");
        for short in [
            "012345678901",
            "123456789012",
            "000000000000",
            "abcdef012345",
        ] {
            let dev = dev_version(Some(&base), short);
            assert_eq!(dev.to_string(), format!("v1.2.3-dev.g{short}"));
            assert_eq!(parse_version(&dev.to_string()).unwrap(), dev, "round trip");
        }
    }

    #[test]
    fn dev_version_of_no_tag_is_zero() {
        assert_eq!(
            dev_version(None, "0123456789ab").to_string(),
            "v0.0.0-dev.g0123456789ab"
        );
    }

    #[test]
    fn dev_version_of_a_pre_release_appends_to_it() {
        let dev = dev_version(Some(&v("v1.2.3-rc.1")), "0123456789ab");
        assert_eq!(dev.to_string(), "v1.2.3-rc.1.dev.g0123456789ab");
        assert_eq!(dev.cmp_precedence(&v("v1.2.3-rc.1")), Ordering::Greater);
        assert_eq!(dev.cmp_precedence(&v("v1.2.3-rc.2")), Ordering::Less);
    }

    #[test]
    fn dev_version_drops_the_base_build_metadata() {
        let dev = dev_version(Some(&v("v1.2.3+build.5")), "0123456789ab");
        assert_eq!(dev.to_string(), "v1.2.3-dev.g0123456789ab");
        let dev = dev_version(Some(&v("v1.2.3-rc.1+build.5")), "0123456789ab");
        assert_eq!(dev.to_string(), "v1.2.3-rc.1.dev.g0123456789ab");
    }

    #[test]
    fn only_v_prefixed_semver_tags_are_version_tags() {
        assert_eq!(version_tag("v1.2.3"), Some(v("1.2.3")));
        assert_eq!(version_tag("v1.2.3-rc.1+b.5"), Some(v("1.2.3-rc.1+b.5")));
        for name in [
            "1.2.3",
            "latest",
            "release-3",
            "v1.2",
            "1.2",
            "v1.2.3-rc.01",
            "deploy/v1.2.3",
        ] {
            assert_eq!(version_tag(name), None, "{name}");
        }
    }

    #[test]
    fn the_highest_tag_wins_and_ties_do_not_depend_on_order() {
        let tags = |names: &[&str]| -> Vec<(Version, String)> {
            names
                .iter()
                .map(|n| (version_tag(n).unwrap(), n.to_string()))
                .collect()
        };
        let pick = |names: &[&str]| highest(&tags(names)).unwrap().1.clone();
        assert_eq!(pick(&["v1.2.3-rc.1", "v1.2.3", "v1.2.2"]), "v1.2.3");
        assert_eq!(pick(&["v1.2.3", "v1.2.3-rc.1"]), "v1.2.3");
        assert_eq!(
            pick(&["v1.2.3+b", "v1.2.3+a"]),
            pick(&["v1.2.3+a", "v1.2.3+b"])
        );
    }

    #[test]
    fn image_tags_have_no_v_and_no_plus() {
        assert_eq!(v("v1.14.2").tag(), "1.14.2");
        assert_eq!(v("v1.15.0-rc.1").tag(), "1.15.0-rc.1");
        assert_eq!(v("v1.2.3+build.5").tag(), "1.2.3_build.5");
    }

    fn valid_label(value: &str) -> bool {
        value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric())
    }

    #[test]
    fn label_values_are_valid_kubernetes_labels() {
        assert_eq!(v("v1.2.3").label_value(), "1.2.3");
        assert_eq!(v("v1.2.3-rc.1+build.5").label_value(), "1.2.3-rc.1_build.5");
        let dev = dev_version(Some(&v("v1.2.3-rc.1+b")), "0123456789ab");
        assert_eq!(dev.label_value(), "1.2.3-rc.1.dev.g0123456789ab");
        // Longer than 63: cut, and never ending on a separator.
        let long = v(&format!("1.2.3-{}.b.c+d", "a".repeat(60)));
        assert!(long.tag().len() > 63);
        let label = long.label_value();
        assert!(valid_label(&label), "{label}");
        assert_eq!(label, long.tag()[..label.len()]);
        // A version whose 63rd character is a separator, and one ending with `-`.
        let cut = v(&format!("1.2.3-{}.bbbb", "a".repeat(56)));
        assert_eq!(cut.tag().as_bytes()[62], b'.');
        assert_eq!(cut.label_value(), format!("1.2.3-{}", "a".repeat(56)));
        let dash = v("1.2.3-rc-");
        assert_eq!(dash.label_value(), "1.2.3-rc");
        for text in ["0.0.0", "v1.2.3+build.05", "1.2.3-x.7.z.92+exp.sha.5114f85"] {
            assert!(valid_label(&v(text).label_value()), "{text}");
        }
    }

    #[test]
    fn serializes_as_the_v_string_and_reads_it_back() {
        let version = v("1.2.3-rc.1+b.5");
        let json = serde_json::to_string(&version).unwrap();
        assert_eq!(json, "\"v1.2.3-rc.1+b.5\"");
        assert_eq!(serde_json::from_str::<Version>(&json).unwrap(), version);
        assert!(serde_json::from_str::<Version>("\"latest\"").is_err());
    }
}
