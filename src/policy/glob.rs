//! Name patterns of the policy: `*` matches any run of characters (slashes included), `?`
//! one character. A pattern is compiled once, when the policy is loaded.

use std::fmt;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone)]
pub struct Glob {
    text: String,
    matcher: GlobMatcher,
}

impl Glob {
    pub fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a pattern cannot be empty".to_string());
        }
        let glob = GlobBuilder::new(text)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| e.kind().to_string())?;
        Ok(Self {
            text: text.to_string(),
            matcher: glob.compile_matcher(),
        })
    }

    pub fn is_match(&self, candidate: &str) -> bool {
        self.matcher.is_match(candidate)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Serialize for Glob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Glob::new(&text).map_err(|e| serde::de::Error::custom(format!("bad pattern `{text}`: {e}")))
    }
}

/// True when any of `globs` matches `candidate`.
pub fn any_match(globs: &[Glob], candidate: &str) -> bool {
    globs.iter().any(|g| g.is_match(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_and_question_mark() {
        let g = Glob::new("aia-*@aia-prod.iam.gserviceaccount.com").unwrap();
        assert!(g.is_match("aia-api@aia-prod.iam.gserviceaccount.com"));
        assert!(!g.is_match("old@aia-prod.iam.gserviceaccount.com"));
        assert!(Glob::new("v?").unwrap().is_match("v1"));
        assert!(!Glob::new("v?").unwrap().is_match("v10"));
        assert!(Glob::new("a*").unwrap().is_match("a/b/c"));
    }

    #[test]
    fn rejects_broken_patterns() {
        assert!(Glob::new("aia-[").is_err());
        assert!(Glob::new("").is_err());
    }
}
