//! Which files lint reads: the manifests of `kubernetes.manifests` (folders recursively,
//! kustomizations included) and whatever the `lint.paths` globs match.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use super::{FileKind, LintError};
use crate::policy::Policy;

/// A path pattern relative to the policy's folder: a literal start (`../build`) and a glob
/// for the rest (`**/Dockerfile`), so `..` works and the walk starts where the glob does.
#[derive(Debug, Clone)]
pub struct PathGlob {
    text: String,
    prefix: PathBuf,
    rest: Option<GlobMatcher>,
}

fn has_meta(component: &str) -> bool {
    component.contains(['*', '?', '[', '{'])
}

impl PathGlob {
    pub fn new(text: &str) -> Result<PathGlob, String> {
        if text.trim().is_empty() {
            return Err("a path pattern cannot be empty".to_string());
        }
        let parts: Vec<&str> = text.split('/').collect();
        let literal = parts.iter().take_while(|p| !has_meta(p)).count();
        let prefix: PathBuf = parts[..literal].iter().collect();
        let rest = if literal < parts.len() {
            let glob = GlobBuilder::new(&parts[literal..].join("/"))
                .literal_separator(true)
                .build()
                .map_err(|e| e.kind().to_string())?;
            Some(glob.compile_matcher())
        } else {
            None
        };
        Ok(PathGlob {
            text: text.to_string(),
            prefix,
            rest,
        })
    }

    /// The files under `base` this pattern names, sorted.
    fn files(&self, base: &Path) -> Vec<PathBuf> {
        let start = if self.prefix.is_absolute() {
            self.prefix.clone()
        } else {
            base.join(&self.prefix)
        };
        match &self.rest {
            None if start.is_file() => vec![start],
            None if start.is_dir() => walk(&start).into_iter().filter(|p| kind_known(p)).collect(),
            None => Vec::new(),
            Some(matcher) => walk(&start)
                .into_iter()
                .filter(|p| {
                    p.strip_prefix(&start)
                        .is_ok_and(|rel| matcher.is_match(rel))
                })
                .collect(),
        }
    }
}

/// Every file under `dir`, sorted; version-control and build folders skipped.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                if !matches!(name.as_str(), ".git" | "target" | "node_modules") {
                    stack.push(path);
                }
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn is_dockerfile(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name == "dockerfile" || name.starts_with("dockerfile.") || name.ends_with(".dockerfile")
}

fn kind_known(path: &Path) -> bool {
    is_dockerfile(path)
        || path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
}

/// What a file is, by its name: YAML (told apart by content later), JSON or a Dockerfile.
pub fn kind_of(path: &Path) -> FileKind {
    if is_dockerfile(path) {
        FileKind::Dockerfile
    } else if path.extension().is_some_and(|e| e == "json") {
        FileKind::Json
    } else {
        FileKind::Yaml
    }
}

/// The manifests, then the `lint.paths` files, each once.
pub fn files_to_lint(policy: &Policy, base: &Path) -> Result<Vec<PathBuf>, LintError> {
    let mut out: Vec<PathBuf> = Vec::new();
    let push = |p: PathBuf, out: &mut Vec<PathBuf>| {
        let key = std::path::absolute(&p).unwrap_or_else(|_| p.clone());
        if !out
            .iter()
            .any(|o| std::path::absolute(o).unwrap_or_else(|_| o.clone()) == key)
        {
            out.push(p);
        }
    };
    if let Some(k) = &policy.kubernetes {
        for m in &k.manifests {
            let root = if m.is_absolute() {
                m.clone()
            } else {
                base.join(m)
            };
            if !root.exists() {
                return Err(LintError::Unreadable {
                    path: super::display_path(&root),
                    message: "does not exist (named by the policy's `kubernetes.manifests`)"
                        .to_string(),
                });
            }
            let files = if root.is_file() {
                vec![root]
            } else {
                walk(&root)
                    .into_iter()
                    .filter(|p| kind_known(p) && !is_dockerfile(p))
                    .collect()
            };
            for f in files {
                push(f, &mut out);
            }
        }
    }
    if let Some(lint) = &policy.lint {
        for pattern in &lint.paths {
            let glob = PathGlob::new(pattern).map_err(|message| LintError::Unreadable {
                path: pattern.clone(),
                message,
            })?;
            let files = glob.files(base);
            if files.is_empty() {
                return Err(LintError::NoMatch {
                    pattern: glob.text.clone(),
                    base: super::display_path(base),
                });
            }
            for f in files {
                push(f, &mut out);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_walks_from_its_literal_start() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        for f in [
            "cloudbuild.yaml",
            "build/a/Dockerfile",
            "build/b.txt",
            "policy/p.yaml",
        ] {
            let p = repo.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "").unwrap();
        }
        let base = repo.join("policy");
        let g = PathGlob::new("../build/**/Dockerfile").unwrap();
        assert_eq!(g.files(&base), vec![base.join("../build/a/Dockerfile")]);
        let g = PathGlob::new("../*.yaml").unwrap();
        assert_eq!(g.files(&base), vec![base.join("../cloudbuild.yaml")]);
        let g = PathGlob::new("../cloudbuild.yaml").unwrap();
        assert_eq!(g.files(&base).len(), 1);
        assert!(PathGlob::new("../[").is_err());
        assert!(PathGlob::new("").is_err());
    }
}
