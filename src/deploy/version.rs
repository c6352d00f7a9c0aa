//! STUB until the version module lands: semantic versions of releases.

use std::fmt;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("`{0}` is not a semantic version")]
    Invalid(String),
    #[error("cannot compute the version of `{0}`")]
    Repo(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(pub semver::Version);

impl Version {
    pub fn is_release(&self) -> bool {
        self.0.pre.is_empty()
    }
    pub fn tag(&self) -> String {
        self.0.to_string()
    }
    pub fn label_value(&self) -> String {
        format!("v{}", self.0).replace('+', "_")
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

pub struct RepoVersion {
    pub version: Version,
    pub commit: String,
    pub dirty: bool,
}

pub fn parse_version(text: &str) -> Result<Version, VersionError> {
    semver::Version::parse(text.strip_prefix('v').unwrap_or(text))
        .map(Version)
        .map_err(|_| VersionError::Invalid(text.to_string()))
}

pub fn describe(repo: &Path) -> Result<RepoVersion, VersionError> {
    Err(VersionError::Repo(repo.display().to_string()))
}
