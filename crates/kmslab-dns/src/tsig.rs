//! TSIG keys (RFC 8945) that sign dynamic updates: parsing, key files, generation.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, TSigner};

use crate::hresult;

/// Seconds of clock difference a TSIG signature tolerates (the RFC 8945 recommendation).
pub(crate) const TSIG_FUDGE: u16 = 300;

/// The HMAC algorithms kmslab signs updates with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TsigAlg {
    /// `hmac-sha256`, what BIND's `tsig-keygen` and [`TsigKey::generate`] use.
    HmacSha256,
    /// `hmac-sha384`.
    HmacSha384,
    /// `hmac-sha512`.
    HmacSha512,
}

impl TsigAlg {
    /// The algorithm's name as BIND and the `NAME:ALG:BASE64` form spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha384 => "hmac-sha384",
            Self::HmacSha512 => "hmac-sha512",
        }
    }

    pub(crate) fn to_hickory(self) -> TsigAlgorithm {
        match self {
            Self::HmacSha256 => TsigAlgorithm::HmacSha256,
            Self::HmacSha384 => TsigAlgorithm::HmacSha384,
            Self::HmacSha512 => TsigAlgorithm::HmacSha512,
        }
    }
}

impl fmt::Display for TsigAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TsigAlg {
    type Err = TsigKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // BIND also accepts the algorithm written as a domain name with a trailing dot.
        match s.trim().trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Ok(Self::HmacSha256),
            "hmac-sha384" => Ok(Self::HmacSha384),
            "hmac-sha512" => Ok(Self::HmacSha512),
            _ => Err(TsigKeyError::UnknownAlgorithm { found: s.trim().to_owned() }),
        }
    }
}

/// A shared TSIG secret: the key's name, its HMAC algorithm and the secret bytes.
///
/// `Debug` never prints the secret; `Display` does (it is the `NAME:ALG:BASE64` form that
/// `--tsig-key` takes back), so only display a key where the operator asked to see it.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// The key's name as both sides know it (`ddns-key`), without a trailing dot.
    pub name: String,
    /// The HMAC algorithm.
    pub algorithm: TsigAlg,
    /// The secret itself (32 random bytes for a generated key).
    pub secret: Vec<u8>,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .finish()
    }
}

impl fmt::Display for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.name, self.algorithm, BASE64.encode(&self.secret))
    }
}

impl TsigKey {
    /// Builds a key from its parts, checking that the name is a valid DNS name and the
    /// secret is not empty.
    pub fn new(name: &str, algorithm: TsigAlg, secret: Vec<u8>) -> Result<Self, TsigKeyError> {
        let name = validate_key_name(name)?;
        if secret.is_empty() {
            return Err(TsigKeyError::EmptySecret);
        }
        Ok(Self { name, algorithm, secret })
    }

    /// A new `hmac-sha256` key with a random 32-byte secret.
    pub fn generate(name: &str) -> Result<Self, TsigKeyError> {
        let secret: [u8; 32] = rand::random();
        Self::new(name, TsigAlg::HmacSha256, secret.to_vec())
    }

    /// Reads a key file: either one line `NAME:ALG:BASE64`, or a BIND key clause as written
    /// by `tsig-keygen` (`key "name" { algorithm hmac-sha256; secret "..."; };`). With several
    /// key clauses the first one is used.
    pub fn from_file(path: &Path) -> Result<Self, TsigKeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TsigKeyError::Io { path: path.to_owned(), source })?;
        let with_path = |error: TsigKeyError| TsigKeyError::InFile { path: path.to_owned(), detail: error.to_string() };
        if looks_like_bind_key(&text) { parse_bind_key(&text).map_err(with_path) } else { text.trim().parse().map_err(with_path) }
    }

    pub(crate) fn to_signer(&self) -> Result<TSigner, TsigKeyError> {
        let name = Name::from_ascii(format!("{}.", self.name))
            .map_err(|error| TsigKeyError::BadName { name: self.name.clone(), detail: error.to_string() })?;
        TSigner::new(self.secret.clone(), self.algorithm.to_hickory(), name, TSIG_FUDGE)
            .map_err(|error| TsigKeyError::Unsupported { detail: error.to_string() })
    }
}

impl FromStr for TsigKey {
    type Err = TsigKeyError;

    /// Parses `NAME:ALG:BASE64`, e.g. `ddns-key:hmac-sha256:c2VjcmV0...`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().splitn(3, ':');
        let name = parts.next().unwrap_or_default();
        let (Some(alg), Some(secret)) = (parts.next(), parts.next()) else {
            return Err(TsigKeyError::Shape { parts: s.trim().split(':').count() });
        };
        let algorithm = alg.parse()?;
        let secret = decode_secret(secret)?;
        Self::new(name, algorithm, secret)
    }
}

/// Why a TSIG key could not be parsed, read or used.
#[derive(Debug, thiserror::Error)]
pub enum TsigKeyError {
    /// The text is not of the form `NAME:ALG:BASE64`. The text itself is not repeated: it
    /// may be a secret pasted on its own.
    #[error("TSIG key must look like NAME:ALG:BASE64, got {parts} colon-separated part(s)")]
    Shape {
        /// How many colon-separated parts the text had (fewer than three).
        parts: usize,
    },
    /// The key name part is empty or not a valid DNS name.
    #[error("TSIG key name {name:?} is not a valid DNS name: {detail}")]
    BadName {
        /// The name given.
        name: String,
        /// Why it is not valid.
        detail: String,
    },
    /// The algorithm part names an algorithm kmslab does not sign with.
    #[error("TSIG key algorithm {found:?} is not supported (use hmac-sha256, hmac-sha384 or hmac-sha512)")]
    UnknownAlgorithm {
        /// The algorithm given.
        found: String,
    },
    /// The secret part is not valid base64.
    #[error("TSIG key secret is not valid base64: {detail}")]
    BadBase64 {
        /// The decoder's complaint.
        detail: String,
    },
    /// The secret decodes to zero bytes.
    #[error("TSIG key secret is empty")]
    EmptySecret,
    /// A BIND key file lacks a part or has a syntax error.
    #[error("BIND key clause is malformed: {detail}")]
    BindSyntax {
        /// What is wrong or missing.
        detail: String,
    },
    /// The key file could not be read.
    #[error("cannot read TSIG key file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file was read but its content is not a valid key.
    #[error("TSIG key file {}: {detail}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        detail: String,
    },
    /// hickory refused the key (an algorithm its crypto backend lacks).
    #[error("TSIG key cannot be used for signing: {detail}")]
    Unsupported {
        /// hickory's reason.
        detail: String,
    },
}

impl TsigKeyError {
    /// The KMS-lab HRESULT for this error: always [`hresult::INVALID_ARGUMENT`] except an
    /// unreadable file ([`hresult::LOCAL_FAILURE`]).
    pub fn hresult(&self) -> u32 {
        match self {
            Self::Io { .. } => hresult::LOCAL_FAILURE,
            _ => hresult::INVALID_ARGUMENT,
        }
    }
}

fn validate_key_name(name: &str) -> Result<String, TsigKeyError> {
    let trimmed = name.trim().trim_end_matches('.');
    if trimmed.is_empty() {
        return Err(TsigKeyError::BadName { name: name.to_owned(), detail: "the name is empty".to_owned() });
    }
    Name::from_ascii(format!("{trimmed}.")).map_err(|error| TsigKeyError::BadName { name: name.to_owned(), detail: error.to_string() })?;
    Ok(trimmed.to_owned())
}

fn decode_secret(text: &str) -> Result<Vec<u8>, TsigKeyError> {
    // BIND writes long secrets on one line, but people paste them with stray whitespace.
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let secret = BASE64.decode(compact.as_bytes()).map_err(|error| TsigKeyError::BadBase64 { detail: error.to_string() })?;
    if secret.is_empty() {
        return Err(TsigKeyError::EmptySecret);
    }
    Ok(secret)
}

fn looks_like_bind_key(text: &str) -> bool {
    tokenize(text).is_ok_and(|tokens| tokens.first() == Some(&Token::Word("key".to_owned())))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Semicolon,
}

/// Splits BIND configuration text into tokens, dropping `#`, `//` and `/* */` comments.
fn tokenize(text: &str) -> Result<Vec<Token>, TsigKeyError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'/') => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut previous = ' ';
                loop {
                    match chars.next() {
                        Some('/') if previous == '*' => break,
                        Some(next) => previous = next,
                        None => {
                            return Err(TsigKeyError::BindSyntax { detail: "unterminated /* comment".to_owned() });
                        }
                    }
                }
            }
            '{' => tokens.push(Token::Open),
            '}' => tokens.push(Token::Close),
            ';' => tokens.push(Token::Semicolon),
            '"' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(next) => value.push(next),
                        None => {
                            return Err(TsigKeyError::BindSyntax { detail: "unterminated quoted string".to_owned() });
                        }
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            first => {
                let mut word = String::from(first);
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || matches!(next, '{' | '}' | ';' | '"') {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if c == '\n' {
            break;
        }
    }
}

/// Parses the first `key NAME { algorithm ALG; secret "BASE64"; };` clause.
fn parse_bind_key(text: &str) -> Result<TsigKey, TsigKeyError> {
    let syntax = |detail: &str| TsigKeyError::BindSyntax { detail: detail.to_owned() };
    let tokens = tokenize(text)?;
    let mut tokens = tokens.into_iter();
    if tokens.next() != Some(Token::Word("key".to_owned())) {
        return Err(syntax("expected `key`"));
    }
    let name = match tokens.next() {
        Some(Token::Word(name) | Token::Quoted(name)) => name,
        _ => return Err(syntax("expected the key name after `key`")),
    };
    if tokens.next() != Some(Token::Open) {
        return Err(syntax("expected `{` after the key name"));
    }
    let mut algorithm = None;
    let mut secret = None;
    loop {
        let statement = match tokens.next() {
            Some(Token::Close) => break,
            Some(Token::Word(word)) => word.to_ascii_lowercase(),
            _ => {
                return Err(syntax("expected `algorithm`, `secret` or `}` in the key clause"));
            }
        };
        let value = match tokens.next() {
            Some(Token::Word(value) | Token::Quoted(value)) => value,
            _ => return Err(syntax(&format!("expected a value after `{statement}`"))),
        };
        if tokens.next() != Some(Token::Semicolon) {
            return Err(syntax(&format!("expected `;` after `{statement} {value}`")));
        }
        match statement.as_str() {
            "algorithm" => algorithm = Some(value.parse::<TsigAlg>()?),
            "secret" => secret = Some(decode_secret(&value)?),
            other => {
                return Err(syntax(&format!("unknown statement `{other}` in the key clause")));
            }
        }
    }
    let algorithm = algorithm.ok_or_else(|| syntax("the key clause has no `algorithm`"))?;
    let secret = secret.ok_or_else(|| syntax("the key clause has no `secret`"))?;
    TsigKey::new(&name, algorithm, secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_B64: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";

    #[test]
    fn parses_and_displays_the_one_line_form() {
        let text = format!("ddns-key:hmac-sha256:{SECRET_B64}");
        let key: TsigKey = text.parse().unwrap();
        assert_eq!(key.name, "ddns-key");
        assert_eq!(key.algorithm, TsigAlg::HmacSha256);
        assert_eq!(key.secret, b"secret-secret-secret-secret-1234");
        assert_eq!(key.to_string(), text);
    }

    #[test]
    fn accepts_each_algorithm_and_trailing_dots() {
        for (alg, expected) in
            [("hmac-sha256", TsigAlg::HmacSha256), ("HMAC-SHA384", TsigAlg::HmacSha384), ("hmac-sha512.", TsigAlg::HmacSha512)]
        {
            let key: TsigKey = format!("k.lab.test.:{alg}:{SECRET_B64}").parse().unwrap();
            assert_eq!(key.algorithm, expected);
            assert_eq!(key.name, "k.lab.test");
        }
    }

    #[test]
    fn errors_name_the_bad_part() {
        let check = |input: &str, expected: &str| {
            let error = input.parse::<TsigKey>().unwrap_err();
            let message = error.to_string();
            assert!(message.contains(expected), "{input:?}: {message:?} should mention {expected:?}");
            assert_eq!(error.hresult(), hresult::INVALID_ARGUMENT);
        };
        check("ddns-key", "NAME:ALG:BASE64");
        check("ddns-key:hmac-sha256", "NAME:ALG:BASE64");
        check(&format!(":hmac-sha256:{SECRET_B64}"), "name");
        check(&format!("ddns-key:hmac-md5:{SECRET_B64}"), "algorithm \"hmac-md5\"");
        check("ddns-key:hmac-sha256:not base64!", "base64");
        check("ddns-key:hmac-sha256:", "empty");
        check(&format!("bad..name:hmac-sha256:{SECRET_B64}"), "bad..name");
    }

    #[test]
    fn debug_and_errors_never_show_the_secret() {
        let key: TsigKey = format!("ddns-key:hmac-sha256:{SECRET_B64}").parse().unwrap();
        let debug = format!("{key:?}");
        assert!(!debug.contains(SECRET_B64), "{debug}");
        assert!(debug.contains("32 bytes"), "{debug}");

        let error = SECRET_B64.parse::<TsigKey>().unwrap_err().to_string();
        assert!(!error.contains(SECRET_B64), "{error}");
        assert!(error.contains("1 colon-separated part"), "{error}");
    }

    #[test]
    fn generated_keys_are_random_and_round_trip() {
        let first = TsigKey::generate("lab-key").unwrap();
        let second = TsigKey::generate("lab-key").unwrap();
        assert_eq!(first.secret.len(), 32);
        assert_eq!(first.algorithm, TsigAlg::HmacSha256);
        assert_ne!(first.secret, second.secret);
        let parsed: TsigKey = first.to_string().parse().unwrap();
        assert_eq!(parsed, first);
        first.to_signer().unwrap();
    }

    #[test]
    fn reads_bind_and_one_line_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let bind = dir.path().join("ddns.key");
        std::fs::write(
            &bind,
            format!(
                "# written by tsig-keygen\nkey \"ddns-key\" {{\n\talgorithm hmac-sha512;\n\t\
                 secret \"{SECRET_B64}\"; // the secret\n}};\n"
            ),
        )
        .unwrap();
        let key = TsigKey::from_file(&bind).unwrap();
        assert_eq!(key.name, "ddns-key");
        assert_eq!(key.algorithm, TsigAlg::HmacSha512);
        assert_eq!(key.secret, b"secret-secret-secret-secret-1234");

        let line = dir.path().join("line.key");
        std::fs::write(&line, format!("  {key}\n")).unwrap();
        assert_eq!(TsigKey::from_file(&line).unwrap(), key);

        let broken = dir.path().join("broken.key");
        std::fs::write(&broken, "key \"ddns-key\" { algorithm hmac-sha256; };\n").unwrap();
        let message = TsigKey::from_file(&broken).unwrap_err().to_string();
        assert!(message.contains("broken.key"), "{message}");
        assert!(message.contains("no `secret`"), "{message}");

        let missing = TsigKey::from_file(&dir.path().join("absent.key")).unwrap_err();
        assert!(matches!(missing, TsigKeyError::Io { .. }));
        assert_eq!(missing.hresult(), hresult::LOCAL_FAILURE);
    }
}
