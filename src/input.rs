//! Files from outside (the policy, manifests, snapshot files, reviewed plans) are read here,
//! and only here, before any parser sees them.
//!
//! Each kind of file has a size limit, and its bytes must be UTF-8 without a NUL. yaml-rust2
//! stops at a NUL as if the file ended there, so a NUL in a comment silently dropped the rest
//! of a policy (its keep rules, its safety section); replacing invalid UTF-8 instead of refusing
//! it changes names. Either is refused with the byte offset, the line and the column.

use std::io::Read;
use std::path::Path;

const MIB: u64 = 1 << 20;

/// How large one kind of input may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// What the file is, in words: `policy`, `manifest file`.
    pub what: &'static str,
    pub bytes: u64,
}

/// A policy is written by hand: 40,000 keep rules are 1.3 MiB.
pub const POLICY: Limit = Limit {
    what: "policy",
    bytes: 4 * MIB,
};
/// One repository manifest file. The largest public all-in-one bundles (an operator's CRDs)
/// are a few MiB; the API server stores no object above 1.5 MiB.
pub const MANIFEST: Limit = Limit {
    what: "manifest file",
    bytes: 16 * MIB,
};
/// One file of a snapshot folder: `kubectl get … -A -o json` of a large cluster (100,000
/// objects) is about 300 MiB.
pub const SNAPSHOT_FILE: Limit = Limit {
    what: "snapshot file",
    bytes: 512 * MIB,
};
/// A reviewed plan (a dry-run report): 100,000 findings are about 60 MiB.
pub const PLAN: Limit = Limit {
    what: "plan",
    bytes: 256 * MIB,
};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read it: {0}")]
    Read(std::io::Error),
    #[error(
        "it is {} bytes, more than the limit of `{}` bytes ({} MiB) for a {what}\nhint: no real {what} is this large; check that the path names the file you meant",
        size_words(*size, *limit), limit, limit / MIB
    )]
    TooLarge {
        what: &'static str,
        /// What was measured; `None` when the file grew past the limit while read.
        size: Option<u64>,
        limit: u64,
    },
    #[error(
        "byte {offset} (line {line}, column {column}) is a NUL byte, which no text file holds; a YAML parser stops there and would ignore the rest\nhint: the file is damaged or not text: remove the NUL byte, or write the file again"
    )]
    Nul {
        offset: usize,
        line: usize,
        column: usize,
    },
    #[error(
        "byte {offset} (line {line}, column {column}) is not valid UTF-8\nhint: save the file as UTF-8 text"
    )]
    NotUtf8 {
        offset: usize,
        line: usize,
        column: usize,
    },
}

fn size_words(size: Option<u64>, limit: u64) -> String {
    match size {
        Some(s) => format!("`{s}`"),
        None => format!("more than `{limit}`"),
    }
}

/// Reads the file at `path`, refusing it when it is larger than `limit` or not NUL-free UTF-8.
pub fn read_text(path: &Path, limit: Limit) -> Result<String, InputError> {
    let file = std::fs::File::open(path).map_err(InputError::Read)?;
    let declared = file.metadata().map(|m| m.len()).unwrap_or(0);
    if declared > limit.bytes {
        return Err(InputError::TooLarge {
            what: limit.what,
            size: Some(declared),
            limit: limit.bytes,
        });
    }
    // Read at most one byte past the limit: a file that grows, or a device, stays bounded.
    let mut bytes = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
    file.take(limit.bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(InputError::Read)?;
    text(bytes, limit)
}

/// Checks bytes read from elsewhere (a plan in Cloud Storage) as `read_text` checks a file.
pub fn text(bytes: Vec<u8>, limit: Limit) -> Result<String, InputError> {
    if bytes.len() as u64 > limit.bytes {
        return Err(InputError::TooLarge {
            what: limit.what,
            size: None,
            limit: limit.bytes,
        });
    }
    let nul = bytes.iter().position(|&b| b == 0);
    match String::from_utf8(bytes) {
        Ok(text) => match nul {
            Some(offset) => Err(nul_at(&text, offset)),
            None => Ok(text),
        },
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            // Whichever comes first; the text before it is valid UTF-8 either way.
            let offset = nul.filter(|&n| n < valid).unwrap_or(valid);
            let prefix = std::str::from_utf8(&bytes[..offset]).unwrap_or_default();
            let (line, column) = line_and_column(prefix);
            if nul == Some(offset) {
                Err(InputError::Nul {
                    offset,
                    line,
                    column,
                })
            } else {
                Err(InputError::NotUtf8 {
                    offset,
                    line,
                    column,
                })
            }
        }
    }
}

/// The error for a NUL at byte `offset` of `text` (for text already in memory).
fn nul_at(text: &str, offset: usize) -> InputError {
    let (line, column) = position(text, offset);
    InputError::Nul {
        offset,
        line,
        column,
    }
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
pub fn position(text: &str, offset: usize) -> (usize, usize) {
    line_and_column(text.get(..offset).unwrap_or_default())
}

/// The 1-based line and column (in characters) just after `prefix`.
fn line_and_column(prefix: &str) -> (usize, usize) {
    let line = prefix.matches('\n').count() + 1;
    let column = prefix
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limit = Limit {
        what: "test file",
        bytes: 64,
    };

    #[test]
    fn a_nul_byte_is_refused_with_its_offset_line_and_column() {
        let err = text(b"a: 1\n# comment \0 b: 2\n".to_vec(), SMALL).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(
                err,
                InputError::Nul {
                    offset: 15,
                    line: 2,
                    column: 11
                }
            ),
            "{err:?}"
        );
        assert!(message.starts_with("byte 15 (line 2, column 11) is a NUL byte"));
        assert!(message.contains("\nhint: "), "the hint is on its own line");
    }

    #[test]
    fn invalid_utf8_is_refused_not_replaced() {
        let err = text(b"name: caf\xc3\xa9\nns: \xff\xfe\n".to_vec(), SMALL).unwrap_err();
        assert!(
            matches!(
                err,
                InputError::NotUtf8 {
                    offset: 16,
                    line: 2,
                    column: 5
                }
            ),
            "{err:?}"
        );
        // The earlier of a NUL and a bad byte is the one reported.
        let err = text(b"a\0\xff".to_vec(), SMALL).unwrap_err();
        assert!(matches!(err, InputError::Nul { offset: 1, .. }), "{err:?}");
        let err = text(b"a\xff\0".to_vec(), SMALL).unwrap_err();
        assert!(
            matches!(err, InputError::NotUtf8 { offset: 1, .. }),
            "{err:?}"
        );
        assert_eq!(text("é\n".as_bytes().to_vec(), SMALL).unwrap(), "é\n");
    }

    #[test]
    fn a_file_over_its_limit_is_refused_with_both_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        std::fs::write(&path, "x".repeat(65)).unwrap();
        let err = read_text(&path, SMALL).unwrap_err().to_string();
        assert!(
            err.starts_with("it is `65` bytes, more than the limit of `64` bytes"),
            "{err}"
        );
        assert!(err.contains("for a test file"), "{err}");
        std::fs::write(&path, "x".repeat(64)).unwrap();
        assert_eq!(read_text(&path, SMALL).unwrap().len(), 64);
    }
}
