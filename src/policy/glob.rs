//! Name patterns of the policy: `*` matches any run of characters (slashes included), `?`
//! one character. A pattern is compiled once, when the policy is loaded.
//!
//! globset parses every pattern (so its syntax and errors are the same for all), but only
//! patterns with classes (`[a-z]`), alternatives (`{a,b}`) or `**` are matched by its regex:
//! one compiled regex costs about 10 KB, and a policy of 40,000 keep rules took 480 MB. The
//! rest (literals, `*`, `?`) are matched here, byte by byte as globset's regex does.

use std::fmt;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone)]
pub struct Glob {
    text: String,
    matcher: Matcher,
}

#[derive(Clone)]
enum Matcher {
    Wildcards(Vec<Token>),
    Regex(Box<GlobMatcher>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `?`: one byte (globset's regex is byte-based: `(?-u).`).
    Any,
    /// `*`: any run of bytes.
    Star,
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
        let matcher = match wildcards(text) {
            Some(tokens) => Matcher::Wildcards(tokens),
            None => Matcher::Regex(Box::new(glob.compile_matcher())),
        };
        Ok(Self {
            text: text.to_string(),
            matcher,
        })
    }

    pub fn is_match(&self, candidate: &str) -> bool {
        match &self.matcher {
            Matcher::Wildcards(tokens) => wildcard_match(tokens, candidate.as_bytes()),
            Matcher::Regex(m) => m.is_match(candidate),
        }
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

/// The tokens of a pattern made of literals, `*`, `?` and backslash escapes only; `None` when
/// it needs globset's regex.
fn wildcards(text: &str) -> Option<Vec<Token>> {
    if text.contains(['[', ']', '{', '}']) || text.contains("**") {
        return None;
    }
    let mut tokens = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        let literal = match c {
            '*' => {
                tokens.push(Token::Star);
                continue;
            }
            '?' => {
                tokens.push(Token::Any);
                continue;
            }
            // globset refused a dangling backslash already.
            '\\' => chars.next()?,
            c => c,
        };
        tokens.extend(literal.encode_utf8(&mut buf).bytes().map(Token::Byte));
    }
    Some(tokens)
}

/// Wildcard matching with one backtrack point (the last `*`): linear in practice.
fn wildcard_match(tokens: &[Token], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Star) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Token::Any) => {
                p += 1;
                t += 1;
            }
            Some(Token::Byte(b)) if *b == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|t| *t == Token::Star)
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

    fn regex_of(text: &str) -> GlobMatcher {
        GlobBuilder::new(text)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .unwrap()
            .compile_matcher()
    }

    #[test]
    fn classes_and_alternatives_still_match_as_globset_does() {
        let g = Glob::new("aia-{api,web}-[0-9]").unwrap();
        assert!(g.is_match("aia-api-1") && g.is_match("aia-web-9"));
        assert!(!g.is_match("aia-db-1"));
        assert!(Glob::new("a/**/b").unwrap().is_match("a/b"));
        let escaped = Glob::new("a\\*b").unwrap();
        assert!(escaped.is_match("a*b") && !escaped.is_match("axb"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The hand matcher agrees with globset's regex on every pattern it takes.
        #[test]
        fn wildcards_match_exactly_what_globset_matches(
            pattern in "[ab*?/é\\\\-]{1,8}",
            candidate in "[ab/é-]{0,10}",
        ) {
            if let Ok(glob) = Glob::new(&pattern)
                && matches!(glob.matcher, Matcher::Wildcards(_))
            {
                proptest::prop_assert_eq!(
                    glob.is_match(&candidate),
                    regex_of(&pattern).is_match(&candidate),
                    "pattern {:?} candidate {:?}", pattern, candidate
                );
            }
        }
    }

    #[test]
    fn rejects_broken_patterns() {
        assert!(Glob::new("aia-[").is_err());
        assert!(Glob::new("").is_err());
    }
}
