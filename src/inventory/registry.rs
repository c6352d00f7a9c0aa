//! Container image versions, as a Docker Registry v2 `tags/list` with Google's extension
//! describes them (`manifest` map with upload times), plus the index manifests of multi-arch
//! images so that their children live and die with them.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

/// One repository (`host/path`) and every version (digest) in it.
#[derive(Debug, Clone, Default)]
pub struct Repository {
    pub name: String,
    pub versions: Vec<ImageVersion>,
}

/// What an image version contains.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Children {
    /// A single-platform image.
    #[default]
    None,
    /// An index whose child manifests are known.
    Known(Vec<String>),
    /// An index whose manifest was not read: its children are not known.
    Unknown,
}

/// One image version: a manifest digest with its tags.
#[derive(Debug, Clone, Default)]
pub struct ImageVersion {
    pub digest: String,
    pub tags: Vec<String>,
    pub media_type: Option<String>,
    /// When the registry received it (`timeUploadedMs`): the age that counts.
    pub uploaded: Option<DateTime<Utc>>,
    /// The image config's `created` (`timeCreatedMs`): a fallback only.
    pub created: Option<DateTime<Utc>>,
    pub size: Option<u64>,
    pub children: Children,
}

pub const INDEX_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

impl ImageVersion {
    pub fn is_index(&self) -> bool {
        !matches!(self.children, Children::None)
    }
}

/// Build tools stamp images with 1980-01-01 or the epoch; such a time says nothing about age.
fn plausible(t: DateTime<Utc>) -> bool {
    t.timestamp() > 315_619_200 // after 1980-01-02
}

fn millis(value: Option<&Value>, path: &str) -> Result<Option<DateTime<Utc>>, String> {
    let ms = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => s
            .parse::<i64>()
            .map_err(|_| format!("{path}: `{s}` is not a number of milliseconds"))?,
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("{path}: `{n}` is not a number of milliseconds"))?,
        Some(other) => {
            return Err(format!(
                "{path}: expected milliseconds as a string, found {}",
                super::kubernetes::type_name(other)
            ));
        }
    };
    Ok(Utc
        .timestamp_millis_opt(ms)
        .single()
        .filter(|t| plausible(*t)))
}

/// Reads a `tags/list` body. `index_manifest` returns the stored index manifest of a digest,
/// if any. Errors name the JSON path.
pub fn parse_tag_list(
    repository: &str,
    body: &Value,
    index_manifest: &mut dyn FnMut(&str) -> Result<Option<Value>, String>,
) -> Result<Repository, String> {
    let obj = body
        .as_object()
        .ok_or_else(|| "expected a tags/list object".to_string())?;
    let mut versions = Vec::new();
    match obj.get("manifest") {
        None | Some(Value::Null) => {}
        Some(Value::Object(manifests)) => {
            for (digest, info) in manifests {
                let path = format!("manifest[\"{digest}\"]");
                if !is_digest(digest) {
                    return Err(format!(
                        "{path}: `{digest}` is not a digest (`sha256:<64 hex>`)"
                    ));
                }
                let info = info
                    .as_object()
                    .ok_or_else(|| format!("{path}: expected an object"))?;
                let tags = match info.get("tag") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(t)) => t
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            t.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| format!("{path}.tag[{i}]: expected a string"))
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err(format!("{path}.tag: expected a list of tags")),
                };
                let media_type = info
                    .get("mediaType")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let stored = index_manifest(digest)?;
                let declared_index = media_type
                    .as_deref()
                    .is_some_and(|m| INDEX_MEDIA_TYPES.contains(&m));
                let children = match stored {
                    Some(manifest) => match manifest.get("manifests") {
                        Some(Value::Array(children)) => Children::Known(
                            children
                                .iter()
                                .filter_map(|c| c.get("digest").and_then(Value::as_str))
                                .map(str::to_string)
                                .collect(),
                        ),
                        _ if declared_index => {
                            return Err(format!(
                                "manifests/{digest}.json: an index manifest needs a `manifests` list"
                            ));
                        }
                        _ => Children::None,
                    },
                    None if declared_index => Children::Unknown,
                    None => Children::None,
                };
                versions.push(ImageVersion {
                    digest: digest.clone(),
                    tags,
                    media_type,
                    uploaded: millis(
                        info.get("timeUploadedMs"),
                        &format!("{path}.timeUploadedMs"),
                    )?,
                    created: millis(info.get("timeCreatedMs"), &format!("{path}.timeCreatedMs"))?,
                    size: match info.get("imageSizeBytes") {
                        Some(Value::String(s)) => s.parse().ok(),
                        Some(Value::Number(n)) => n.as_u64(),
                        _ => None,
                    },
                    children,
                });
            }
        }
        Some(_) => return Err("manifest: expected an object keyed by digest".to_string()),
    }
    match obj.get("tags") {
        None | Some(Value::Null) | Some(Value::Array(_)) => {}
        Some(_) => return Err("tags: expected a list".to_string()),
    }
    versions.sort_by(|a, b| a.digest.cmp(&b.digest));
    Ok(Repository {
        name: repository.to_string(),
        versions,
    })
}

pub fn is_digest(s: &str) -> bool {
    match s.split_once(':') {
        Some((algo, hex)) => {
            !algo.is_empty()
                && hex.len() >= 32
                && hex
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        }
        None => false,
    }
}

/// An image reference split into repository, tag and digest. `nginx` becomes
/// `docker.io/library/nginx`, as container runtimes read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(reference: &str) -> Option<ImageRef> {
        let reference = reference
            .trim()
            .trim_start_matches("docker-pullable://")
            .trim_start_matches("docker://");
        if reference.is_empty() {
            return None;
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (reference, None),
        };
        // A bare digest (`sha256:…`) as some runtimes report imageID.
        if digest.is_none() && is_digest(rest) {
            return Some(ImageRef {
                repository: String::new(),
                tag: None,
                digest: Some(rest.to_string()),
            });
        }
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (repo, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        Some(ImageRef {
            repository: normalise_repository(repo),
            tag,
            digest,
        })
    }
}

pub fn normalise_repository(repo: &str) -> String {
    let first = repo.split('/').next().unwrap_or_default();
    let has_host =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_host {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_image_references() {
        let r = ImageRef::parse("us-docker.pkg.dev/p/r/app:1.2.3").unwrap();
        assert_eq!(r.repository, "us-docker.pkg.dev/p/r/app");
        assert_eq!(r.tag.as_deref(), Some("1.2.3"));
        let r = ImageRef::parse("localhost:5000/app@sha256:abcd").unwrap();
        assert_eq!(r.repository, "localhost:5000/app");
        assert_eq!(r.digest.as_deref(), Some("sha256:abcd"));
        assert_eq!(
            ImageRef::parse("nginx").unwrap().repository,
            "docker.io/library/nginx"
        );
        let r = ImageRef::parse("docker-pullable://h.io/a/b@sha256:ff").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.digest.as_deref()),
            ("h.io/a/b", Some("sha256:ff"))
        );
    }

    #[test]
    fn reads_google_extension_and_index_children() {
        let d1 = format!("sha256:{}", "a".repeat(64));
        let d2 = format!("sha256:{}", "b".repeat(64));
        let body = json!({"name": "p/app", "tags": ["v1"], "manifest": {
            d1.clone(): {"tag": ["v1"], "timeUploadedMs": "1735689600000", "timeCreatedMs": "315532800000",
                         "mediaType": "application/vnd.oci.image.index.v1+json"},
            d2.clone(): {"tag": [], "timeUploadedMs": "1735689600000", "mediaType": "application/vnd.oci.image.manifest.v1+json"}
        }});
        let d2c = d2.clone();
        let repo = parse_tag_list("h/p/app", &body, &mut |d: &str| {
            Ok((d == d1).then(|| json!({"manifests": [{"digest": d2c}]})))
        })
        .unwrap();
        let index = repo.versions.iter().find(|v| v.digest == d1).unwrap();
        assert_eq!(index.children, Children::Known(vec![d2.clone()]));
        assert!(index.uploaded.is_some());
        assert_eq!(index.created, None, "1980 build stamps carry no age");
    }

    #[test]
    fn index_without_stored_manifest_has_unknown_children() {
        let d1 = format!("sha256:{}", "c".repeat(64));
        let body = json!({"manifest": {d1: {"mediaType": "application/vnd.docker.distribution.manifest.list.v2+json"}}});
        let repo = parse_tag_list("h/a", &body, &mut |_: &str| Ok(None)).unwrap();
        assert_eq!(repo.versions[0].children, Children::Unknown);
    }

    #[test]
    fn malformed_entries_name_the_path() {
        let body = json!({"manifest": {"sha256:zz": {}}});
        assert!(
            parse_tag_list("h/a", &body, &mut |_: &str| Ok(None))
                .unwrap_err()
                .contains("not a digest")
        );
        let d = format!("sha256:{}", "d".repeat(64));
        let body = json!({"manifest": {d: {"timeUploadedMs": "soon"}}});
        let e = parse_tag_list("h/a", &body, &mut |_: &str| Ok(None)).unwrap_err();
        assert!(e.contains("timeUploadedMs"), "{e}");
    }
}

pub mod client;
