//! The admin bearer token: read from a flag, a variable or a file, kept only as its SHA-256
//! digest, compared in constant time, never printed.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Empty, or contains white space or control characters.
    #[error("must be non-empty, without spaces or control characters")]
    Malformed,
    /// The token file could not be read.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The token file holds more than one line of text.
    #[error("{0} must hold the token alone, on one line")]
    NotOneLine(String),
}

/// A bearer token. Only its SHA-256 digest is kept: comparing two digests of fixed length
/// in constant time reveals neither the token's bytes nor its length, and `Debug` (config
/// dumps, logs) has nothing secret to print.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// A token from its text (a flag, a variable, a config key).
    pub fn new(text: &str) -> Result<AdminToken, TokenError> {
        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TokenError::Malformed);
        }
        Ok(AdminToken { digest: Sha256::digest(text.as_bytes()).into() })
    }

    /// A token from a file holding it on one line (a final line feed is allowed), so that
    /// it need not appear in `ps` or the environment.
    pub fn from_file(path: &Path) -> Result<AdminToken, TokenError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TokenError::Unreadable { path: path.display().to_string(), reason: e.to_string() })?;
        let line = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
        if line.contains('\n') {
            return Err(TokenError::NotOneLine(path.display().to_string()));
        }
        AdminToken::new(line)
    }

    /// True when `given` is the token. Digests of fixed length are compared byte by byte
    /// without an early exit, so the time taken does not depend on where they differ.
    pub fn matches(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        given.iter().zip(&self.digest).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_matches_and_debug_hides_it() {
        let t = AdminToken::new("s3cret-token").unwrap();
        assert!(t.matches("s3cret-token"));
        for wrong in ["", "s3cret", "s3cret-token-", "S3cret-token", "s3cret-tokeN"] {
            assert!(!t.matches(wrong), "{wrong}");
        }
        assert!(!format!("{t:?}").contains("s3cret"));
        for bad in ["", "two words", "tab\there", "nl\n"] {
            assert_eq!(AdminToken::new(bad), Err(TokenError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn a_token_file_holds_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        for (text, ok) in
            [("s3cret\n", true), ("s3cret", true), ("s3cret\r\n", true), ("a\nb\n", false), ("\n", false), (" s3cret\n", false)]
        {
            std::fs::write(&path, text).unwrap();
            let t = AdminToken::from_file(&path);
            assert_eq!(t.as_ref().is_ok_and(|t| t.matches("s3cret")), ok, "{text:?}: {t:?}");
        }
        assert!(matches!(AdminToken::from_file(&dir.path().join("none")), Err(TokenError::Unreadable { .. })));
    }
}
