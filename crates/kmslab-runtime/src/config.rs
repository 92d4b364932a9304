//! What the daemons' configurations share: one [`ConfigError`] shape naming the flag, the
//! `KMSLAB_*` variable or the file key a bad value came from, and the typed values a
//! setting is declared with once for both clap (flag and variable) and serde (file key):
//! [`Ranged`] integers (the range checked by clap's own `value_parser!(u64).range(..)`,
//! and the same range in the file) and [`Parsed`] texts (any `FromStr` type); and the
//! settings both daemons have: [`Addr`] (a listener), [`TimeScale`] and [`Origin`] (the
//! simulated clock).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;

use clap::builder::{MapValueParser, RangedU64ValueParser, TypedValueParser, ValueParserFactory};
use kmslab_core::Timestamp;
use serde::de::{Deserialize, Deserializer, Error as _};

/// A configuration value that cannot work. The message names where it came from (`key`:
/// `--gvlk`, `KMSLAB_GVLK`, ``key `gvlk` in client.toml``, `config file client.toml`),
/// quotes the value when it is no secret, and says why; it is always one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", one_line(&self.render()))]
pub struct ConfigError {
    /// The flag, variable or file key, e.g. `--gvlk`.
    pub key: String,
    /// The refused value, when it may be shown (never a token or key).
    pub value: Option<String>,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// `invalid KEY: REASON`.
    pub fn new(key: impl Into<String>, reason: impl fmt::Display) -> Self {
        ConfigError { key: key.into(), value: None, reason: reason.to_string() }
    }

    /// `invalid KEY "VALUE": REASON`.
    pub fn value(key: impl Into<String>, value: impl Into<String>, reason: impl fmt::Display) -> Self {
        ConfigError { key: key.into(), value: Some(value.into()), reason: reason.to_string() }
    }

    /// A TOML file (`text`, read from `path` when there is one) refused by the parser:
    /// `invalid config file PATH: line 2, column 10, key listen: ...`.
    pub fn file(path: Option<&Path>, text: &str, error: &toml::de::Error) -> Self {
        let key = match path {
            Some(path) => format!("config file {}", path.display()),
            None => "config file".to_owned(),
        };
        ConfigError::new(key, kmslab_core::toml_error::describe(text, error))
    }

    fn render(&self) -> String {
        match &self.value {
            Some(value) => format!("invalid {} {value:?}: {}", self.key, self.reason),
            None => format!("invalid {}: {}", self.key, self.reason),
        }
    }
}

/// `message` as one line: a daemon prints a refusal as its one output line, and messages
/// from other crates (toml, hickory's DNS names) can carry control characters of the value
/// they refuse. A line feed becomes a space, any other control character its escape (`\r`,
/// `\u{1b}`).
pub fn one_line(message: &str) -> String {
    let mut line = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '\n' => line.push(' '),
            c if c.is_control() => line.extend(c.escape_default()),
            c => line.push(c),
        }
    }
    line
}

/// An integer setting within `MIN..=MAX`: a flag or variable outside is refused by clap
/// (`5 is not in 15..=43200`), a file key outside by the file parser, with the same words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranged<const MIN: u64, const MAX: u64>(pub u64);

impl<const MIN: u64, const MAX: u64> Ranged<MIN, MAX> {
    /// The values accepted.
    pub const RANGE: std::ops::RangeInclusive<u64> = MIN..=MAX;

    /// The value, known to be within `MIN..=MAX`.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl<const MIN: u64, const MAX: u64> ValueParserFactory for Ranged<MIN, MAX> {
    type Parser = MapValueParser<RangedU64ValueParser<u64>, fn(u64) -> Self>;

    fn value_parser() -> Self::Parser {
        RangedU64ValueParser::<u64>::new().range(MIN..=MAX).map(Ranged as fn(u64) -> Self)
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Ranged<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(deserializer)?;
        if !(MIN..=MAX).contains(&n) {
            return Err(D::Error::custom(format!("{n} is not in {MIN}..={MAX}")));
        }
        Ok(Ranged(n))
    }
}

/// A text setting parsed by `T`'s `FromStr`, the same way from a flag, a variable or a file
/// key (where it must be a TOML string). Not for secrets: a refusal quotes the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed<T>(pub T);

impl<T> ValueParserFactory for Parsed<T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: fmt::Display,
{
    type Parser = fn(&str) -> Result<Parsed<T>, String>;

    fn value_parser() -> Self::Parser {
        |text| text.parse().map(Parsed).map_err(|e: T::Err| e.to_string())
    }
}

impl<'de, T> Deserialize<'de> for Parsed<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map(Parsed).map_err(|e| D::Error::custom(format!("{text:?}: {e}")))
    }
}

/// `IP:PORT` (IPv6 as `[::1]:1688`), blanks around it ignored: a listener's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr(pub SocketAddr);

impl FromStr for Addr {
    type Err = &'static str;

    fn from_str(v: &str) -> Result<Self, Self::Err> {
        v.trim().parse().map(Addr).map_err(|_| "expected IP:PORT (IPv6 as [::1]:1688)")
    }
}

/// `--time-scale F`: a number the simulated clock accepts (finite, > 0, <= 10000000); a
/// TOML integer or float in the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeScale(pub f64);

const TIME_SCALE_RANGE: &str = "must be a finite number > 0 and <= 10000000";

impl TimeScale {
    fn check(f: f64) -> Result<Self, &'static str> {
        crate::SimClock::new(f, None).map(|_| TimeScale(f)).map_err(|_| TIME_SCALE_RANGE)
    }
}

impl FromStr for TimeScale {
    type Err = &'static str;

    fn from_str(v: &str) -> Result<Self, Self::Err> {
        TimeScale::check(v.trim().parse().map_err(|_| "expected a number")?)
    }
}

impl ValueParserFactory for TimeScale {
    type Parser = fn(&str) -> Result<TimeScale, &'static str>;

    fn value_parser() -> Self::Parser {
        TimeScale::from_str
    }
}

impl<'de> Deserialize<'de> for TimeScale {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let f = f64::deserialize(deserializer)?;
        TimeScale::check(f).map_err(|e| D::Error::custom(format!("{f}: {e}")))
    }
}

/// `--time-origin T`: an RFC 3339 time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin(pub Timestamp);

impl FromStr for Origin {
    type Err = kmslab_core::time::ParseTimeError;

    fn from_str(v: &str) -> Result<Self, Self::Err> {
        Timestamp::parse_rfc3339(v).map(Origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct File {
        minutes: Option<Ranged<15, 43200>>,
        network: Option<Parsed<crate::cidr::Cidr>>,
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[arg(long)]
        minutes: Option<Ranged<15, 43200>>,
        #[arg(long)]
        network: Option<Parsed<crate::cidr::Cidr>>,
    }

    fn file_error(text: &str) -> String {
        let e = toml::from_str::<File>(text).unwrap_err();
        ConfigError::file(None, text, &e).to_string()
    }

    fn flag_error(args: &[&str]) -> String {
        use clap::Parser as _;
        let e = Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied())).unwrap_err();
        crate::usage::one_line(&e.to_string())
    }

    #[test]
    fn a_range_is_the_same_for_the_flag_and_the_file() {
        assert!(flag_error(&["--minutes", "5"]).starts_with("invalid value '5' for '--minutes <MINUTES>': 5 is not in 15..=43200"));
        assert_eq!(file_error("minutes = 5\n"), "invalid config file: line 1, column 11, key minutes: 5 is not in 15..=43200");
        assert_eq!(
            file_error("minutes = \"60\"\n"),
            "invalid config file: line 1, column 11, key minutes: invalid type: string \"60\", expected u64"
        );
        let ok: File = toml::from_str("minutes = 43200\nnetwork = \"10.0.0.0/8\"\n").unwrap();
        assert_eq!(ok.minutes.map(Ranged::get), Some(43200));
        assert_eq!(ok.network.map(|n| n.0.to_string()).as_deref(), Some("10.0.0.0/8"));
    }

    #[test]
    fn a_parsed_text_names_the_value_and_why() {
        assert!(flag_error(&["--network", "10.0.0.1/8"]).starts_with("invalid value '10.0.0.1/8' for '--network <NETWORK>': "));
        let e = file_error("network = \"10.0.0.1/8\"\n");
        assert!(e.starts_with("invalid config file: line 1, column 11, key network: \"10.0.0.1/8\": "), "{e}");
        assert!(file_error("network = 8\n").contains("key network: invalid type: integer `8`, expected a string"));
    }

    #[test]
    fn a_refusal_is_one_line_and_quotes_only_what_it_may() {
        let e = ConfigError::value("--epid", "a\rb", "bad\nvalue\u{1b}");
        assert_eq!(e.to_string(), "invalid --epid \"a\\rb\": bad value\\u{1b}");
        assert_eq!(ConfigError::new("--admin-token", "contains white space").to_string(), "invalid --admin-token: contains white space");
    }
}
