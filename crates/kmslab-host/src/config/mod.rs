//! kms-host configuration: flags, `KMSLAB_*` environment variables and a TOML file, merged
//! (flags > env > file > defaults) and validated as a whole before anything is bound.
//!
//! Each setting is declared once, in the module of its section ([`kms`], [`admin`],
//! [`access`], [`registry`], [`runtime`], [`dns`]), by the [`section!`] macro: one field
//! is the flag (clap, with its `KMSLAB_*` variable), the file key (the same name, serde)
//! and a typed value (`Ranged`, `Parsed`, ...) that both parse the same way. A value bad in
//! itself is refused where it is read: by clap for a flag or a variable (clap's message,
//! naming the flag), by the file parser for a key (naming the line and the key). What
//! depends on other settings or on the disk (host key groups against the catalog, files
//! named by a value, DNS completion) is checked when the sections are applied, each
//! refusal a [`ConfigError`] naming the flag, the variable or the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use kmslab_core::catalog::Catalog;
use kmslab_core::wire::FrameKey;
use kmslab_core::{Timestamp, epid};
use kmslab_runtime::SimClock;
pub use kmslab_runtime::config::ConfigError;
use kmslab_runtime::logging::LogFormat;
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, Visitor};

use crate::access::{Cidr, RateLimit};

/// Declares one section of settings: a struct of `Option` fields that is both a set of
/// clap flags (`#[arg(..)]` on each field) and the keys of the file (the field names), with
/// `KEYS`, `take` (read one file key) and `or` (flags and environment over the file).
macro_rules! section {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, Clone, clap::Args)]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl $name {
            /// The file keys of this section: the flags' names with `_` for `-`.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Reads the value of file key `key` when it is one of this section's.
            pub(super) fn take<'de, A: serde::de::MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
                match key {
                    $( stringify!($field) => { self.$field = map.next_value()?; Ok(true) } )*
                    _ => Ok(false),
                }
            }

            /// Each setting from the flags or the environment when given there, else from the file.
            pub(super) fn or(self, file: Self) -> Self {
                $name { $( $field: self.$field.or(file.$field), )* }
            }
        }
    };
}

pub mod access;
pub mod admin;
pub mod dns;
pub mod kms;
pub mod registry;
pub mod runtime;
#[cfg(test)]
mod tests;

/// Default KMS listener.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:1688";
/// Default admin API address.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8688";
/// Default data directory (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "kms-host-data";
/// Default cap on concurrent KMS connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default idle timeout of a KMS connection, seconds.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 30;
/// Grace period for in-flight requests at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Command-line flags of `kms-host`. Each one but `--reset-registry` can also come from
/// `KMSLAB_<NAME>` and, but `--config`, from the file's key `<name>`.
#[derive(Debug, Default, Parser)]
#[command(name = "kms-host", version = kmslab_runtime::VERSION, about = "The kmslab KMS host daemon (kmslab's own open protocol, not Microsoft's RPC)")]
pub struct Cli {
    /// TOML configuration file (keys as the long flags, with `_` for `-`).
    #[arg(long, env = "KMSLAB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The settings also read from the file.
    #[command(flatten)]
    pub settings: Settings,
    /// If the registry fails its start-up check, move it aside (renamed
    /// `registry.sqlite.damaged-<time>`) and start with an empty one (a new ePID, count 0).
    /// A sound registry is never touched. Command line only.
    #[arg(long)]
    pub reset_registry: bool,
}

/// Every setting a flag, a variable or a file key can give, by section.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Settings {
    #[command(flatten)]
    kms: kms::Kms,
    #[command(flatten)]
    admin: admin::Admin,
    #[command(flatten)]
    registry: registry::Registry,
    #[command(flatten)]
    access: access::Access,
    #[command(flatten)]
    runtime: runtime::Runtime,
    #[command(flatten)]
    dns: dns::Dns,
}

impl Settings {
    /// Every file key, in the order of `--help`.
    fn keys() -> &'static [&'static str] {
        static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
            [kms::Kms::KEYS, admin::Admin::KEYS, registry::Registry::KEYS, access::Access::KEYS, runtime::Runtime::KEYS, dns::Dns::KEYS]
                .concat()
        });
        &KEYS
    }

    /// `self` (flags and environment) over `file`.
    fn or(self, file: Settings) -> Settings {
        Settings {
            kms: self.kms.or(file.kms),
            admin: self.admin.or(file.admin),
            registry: self.registry.or(file.registry),
            access: self.access.or(file.access),
            runtime: self.runtime.or(file.runtime),
            dns: self.dns.or(file.dns),
        }
    }
}

/// The TOML file: the same settings as the flags, each key a flag's name with `_` for `-`.
/// Read it with [`parse_file`] and check its values with [`validate_file`] (or let [`load`]
/// do both, with the flags and environment).
#[derive(Debug, Clone, Default)]
pub struct FileConfig(Settings);

impl<'de> Deserialize<'de> for FileConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Table;
        impl<'de> Visitor<'de> for Table {
            type Value = FileConfig;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table of kms-host settings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileConfig, A::Error> {
                let mut s = Settings::default();
                while let Some(key) = map.next_key_seed(Key)? {
                    let known = s.kms.take(key, &mut map)?
                        || s.admin.take(key, &mut map)?
                        || s.registry.take(key, &mut map)?
                        || s.access.take(key, &mut map)?
                        || s.runtime.take(key, &mut map)?
                        || s.dns.take(key, &mut map)?;
                    debug_assert!(known, "{key} is in Settings::keys");
                }
                Ok(FileConfig(s))
            }
        }
        deserializer.deserialize_map(Table)
    }
}

/// A file key, refused (where it is, by name) unless it is one of [`Settings::keys`].
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = &'static str;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<&'static str, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = &'static str;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a setting's name")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<&'static str, E> {
                Settings::keys().iter().find(|k| **k == v).copied().ok_or_else(|| E::unknown_field(v, Settings::keys()))
            }
        }
        deserializer.deserialize_identifier(Name)
    }
}

pub use kmslab_runtime::config::Addr;

/// An ePID as `PPPPP-GGGGG-KKK-NNNNNN-03-LLLL-BBBB.0000-DDDYYYY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epid(pub String);

impl FromStr for Epid {
    type Err = &'static str;

    fn from_str(v: &str) -> Result<Self, Self::Err> {
        if !epid::is_valid(v) {
            return Err("expected PPPPP-GGGGG-KKK-NNNNNN-03-LLLL-BBBB.0000-DDDYYYY");
        }
        Ok(Epid(v.to_owned()))
    }
}

/// The validated host configuration.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// KMS listeners to bind.
    pub listen: Vec<SocketAddr>,
    /// True when `listen` was configured explicitly (else a port set by `/sprt` applies).
    pub listen_explicit: bool,
    /// Admin API address.
    pub admin: SocketAddr,
    /// Registry directory.
    pub data_dir: PathBuf,
    /// Host key groups installed.
    pub host_key_groups: Vec<String>,
    /// False with `--unactivated`.
    pub activated: bool,
    /// `--host-key`: the KMS host key (a lab `LABH…` key) installed at the first start;
    /// one installed later with `slmgr /ipk` (kept in the registry) takes its place.
    pub host_key: Option<String>,
    /// `--activation-service`: where the host validates its host key (genuine validation).
    pub activation_service: Option<kmslab_core::hostaddr::HostAddr>,
    /// Explicit activation interval (overrides and replaces the stored `/sai` value).
    pub activation_interval: Option<u32>,
    /// Explicit renewal interval (overrides and replaces the stored `/sri` value).
    pub renewal_interval: Option<u32>,
    /// Explicit ePID.
    pub epid: Option<String>,
    /// Restore the count from the registry at start.
    pub keep_count: bool,
    /// Move a registry that fails its start-up check aside and start empty (`--reset-registry`).
    pub reset_registry: bool,
    /// Products known to the host.
    pub catalog: Arc<Catalog>,
    /// Bearer token for mutating admin endpoints (only its digest is kept).
    pub admin_token: Option<kmslab_admin::AdminToken>,
    /// Names accepted in the admin API's `Host` header (`--admin-host`), lower case.
    pub admin_hosts: Vec<String>,
    /// Non-local sources that may read the admin API (`--admin-read-network`).
    pub admin_read_networks: Vec<Cidr>,
    /// Sources the admin API treats as local (`--admin-local-network`, default loopback).
    pub admin_local_networks: Vec<Cidr>,
    /// Sources that may send KMS requests (`--allow`); empty = everyone.
    pub allow: Vec<Cidr>,
    /// Per-source rate limit (`--rate-limit`).
    pub rate_limit: Option<RateLimit>,
    /// Pre-shared key of authenticated framing (`--psk`).
    pub psk: Option<FrameKey>,
    /// Simulated time scale.
    pub time_scale: f64,
    /// Simulated time origin.
    pub time_origin: Option<Timestamp>,
    /// Connection cap.
    pub max_connections: usize,
    /// Per-source connection cap (`--max-connections-per-source`); `None`: half the cap.
    pub max_connections_per_source: Option<usize>,
    /// Idle timeout per connection.
    pub idle_timeout: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Grace period for draining at shutdown.
    pub shutdown_grace: Duration,
    /// Lab and test knob (no flag): cap the registry at this many SQLite pages, so that a
    /// full disk can be produced without filling one.
    pub registry_max_pages: Option<u64>,
    /// Registry commit durability (`--registry-sync`).
    pub registry_sync: kmslab_store::Synchronous,
    /// DNS publishing (`--dns-*`, `--tsig-key*`, `--unpublish-on-exit`).
    pub dns: crate::publish::DnsConfig,
    /// Faults a lab switches at run time (`kmslab up`); none for `kms-host` (no flag).
    pub faults: Option<std::sync::Arc<crate::faults::Faults>>,
}

impl HostConfig {
    /// A configuration with every default, for tests and embedding (`kmslab up`).
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        HostConfig {
            listen: vec![DEFAULT_LISTEN.parse().expect("valid default")],
            listen_explicit: false,
            admin: DEFAULT_ADMIN.parse().expect("valid default"),
            data_dir: data_dir.into(),
            host_key_groups: vec!["kms-b".into()],
            activated: true,
            host_key: None,
            activation_service: None,
            activation_interval: None,
            renewal_interval: None,
            epid: None,
            keep_count: false,
            reset_registry: false,
            catalog: Arc::new(Catalog::builtin()),
            admin_token: None,
            admin_hosts: Vec::new(),
            admin_read_networks: Vec::new(),
            admin_local_networks: Cidr::loopback(),
            allow: Vec::new(),
            rate_limit: None,
            psk: None,
            time_scale: 1.0,
            time_origin: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_source: None,
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            log_format: LogFormat::Text,
            shutdown_grace: SHUTDOWN_GRACE,
            registry_max_pages: None,
            registry_sync: kmslab_store::Synchronous::Full,
            dns: crate::publish::DnsConfig::default(),
            faults: None,
        }
    }

    /// The simulated clock this configuration asks for.
    pub fn clock(&self) -> SimClock {
        SimClock::new(self.time_scale, self.time_origin).expect("validated scale")
    }

    /// The per-source KMS connection cap in force for a total cap of `max_connections`.
    pub fn per_source_cap(&self, max_connections: usize) -> usize {
        self.max_connections_per_source.unwrap_or(max_connections.div_ceil(2)).clamp(1, max_connections.max(1))
    }

    /// Path of the registry database.
    pub fn registry_path(&self) -> PathBuf {
        self.data_dir.join("registry.sqlite")
    }
}

/// Names a setting in a refusal by where its value came from: `--flag`, `KMSLAB_FLAG`, or
/// ``key `flag` in FILE``. Without `matches` (see [`validate_file`]) every value comes from
/// the file.
pub(crate) struct Names<'a> {
    matches: Option<&'a ArgMatches>,
    file_path: Option<&'a Path>,
}

impl Names<'_> {
    /// The name of setting `id` (a field of a section).
    pub(crate) fn of(&self, id: &str) -> String {
        match self.matches.and_then(|m| m.value_source(id)) {
            Some(ValueSource::CommandLine) => format!("--{}", id.replace('_', "-")),
            Some(ValueSource::EnvVariable) => format!("KMSLAB_{}", id.to_uppercase()),
            _ => format!("key `{id}` in {}", self.file_path.map_or("the config file".into(), |p| p.display().to_string())),
        }
    }
}

/// Parses the command line (or `args`), reads env and the file, and validates everything.
/// `Err` carries either clap's own error (help, version, unknown flag, a value bad in
/// itself) or a config error.
pub fn load(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<HostConfig, LoadError> {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let matches = Cli::command().try_get_matches_from(&args).map_err(|e| from_env(e, &args))?;
    let cli = Cli::from_arg_matches(&matches).map_err(LoadError::Clap)?;
    resolve(cli, &matches).map_err(LoadError::Config)
}

/// clap names the flag when it refuses a value, even one that came from its `KMSLAB_*`
/// variable: name the variable then, as every other refusal does.
fn from_env(error: clap::Error, args: &[std::ffi::OsString]) -> LoadError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(error.kind(), ErrorKind::ValueValidation | ErrorKind::InvalidValue) {
        return LoadError::Clap(error);
    }
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) =
        (error.get(ContextKind::InvalidArg), error.get(ContextKind::InvalidValue))
    else {
        return LoadError::Clap(error);
    };
    let long = arg.split(' ').next().unwrap_or_default();
    let given = |a: &std::ffi::OsString| a.to_str().is_some_and(|a| a == long || a.starts_with(&format!("{long}=")));
    let command = Cli::command();
    let env = command.get_arguments().find(|a| a.get_long().is_some_and(|l| format!("--{l}") == long)).and_then(|a| a.get_env());
    match env {
        Some(env) if !args.iter().any(given) && std::env::var_os(env).is_some() => {
            let reason = std::error::Error::source(&error).map_or_else(|| "invalid value".to_owned(), ToString::to_string);
            LoadError::Config(ConfigError::value(env.to_string_lossy(), value.clone(), reason))
        }
        _ => LoadError::Clap(error),
    }
}

/// Why [`load`] failed.
#[derive(Debug)]
pub enum LoadError {
    /// Clap refused the command line or the environment (or `--help` / `--version` was
    /// asked for).
    Clap(clap::Error),
    /// A value is bad.
    Config(ConfigError),
}

/// Parses the text of a `--config` file: TOML with the keys of the flags, an unknown key
/// refused by name, every value checked for its type and, where it has one, its range or
/// form. [`validate_file`] checks what depends on other settings. Touches nothing outside
/// (no disk, environment or network).
pub fn parse_file(text: &str) -> Result<FileConfig, ConfigError> {
    parse_file_at(text, None)
}

/// [`parse_file`], the error naming the file's `path` when there is one.
fn parse_file_at(text: &str, path: Option<&Path>) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::file(path, text, &e))
}

/// Validates the values of a config file alone, by the code [`load`] uses: the result is
/// the configuration `kms-host --config FILE` runs with when no flag and no `KMSLAB_*`
/// variable is set. Unlike `load` it touches nothing outside (no disk, environment or
/// network), which makes two differences: a key naming another file (`catalog`, `psk`,
/// `tsig_key_file`, `admin_token_file`) is refused, since that file would have to be read,
/// and there is no system host name to derive the DNS host name from (so `dns_server`
/// needs `dns_hostname`).
pub fn validate_file(file: FileConfig) -> Result<HostConfig, ConfigError> {
    apply(file.0, false, &Names { matches: None, file_path: None }, Outside::Nothing)
}

/// What resolving may consult besides the values themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outside {
    /// The files that values name and the system host name ([`load`]).
    System,
    /// Nothing ([`validate_file`]).
    Nothing,
}

impl Outside {
    /// Refuses the value `v` of `name`, naming a file, when no file may be read.
    pub(crate) fn may_read(self, name: &str, v: &str) -> Result<(), ConfigError> {
        match self {
            Outside::System => Ok(()),
            Outside::Nothing => Err(ConfigError::value(name, v, "names a file, which is not read when checking the config file alone")),
        }
    }
}

fn resolve(cli: Cli, matches: &ArgMatches) -> Result<HostConfig, ConfigError> {
    let file = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(format!("--config {}", path.display()), e))?;
            parse_file_at(&text, Some(path))?
        }
        None => FileConfig::default(),
    };
    let names = Names { matches: Some(matches), file_path: cli.config.as_deref() };
    apply(cli.settings.or(file.0), cli.reset_registry, &names, Outside::System)
}

/// Applies the merged `settings` to the defaults, checking what depends on other settings
/// or on what is `outside`.
fn apply(settings: Settings, reset_registry: bool, names: &Names, outside: Outside) -> Result<HostConfig, ConfigError> {
    let mut config = HostConfig::with_data_dir(DEFAULT_DATA_DIR);
    let Settings { kms, admin, registry, access, runtime, dns } = settings;
    kms.apply(names, outside, &mut config)?;
    admin.apply(names, outside, &mut config)?;
    registry.apply(names, &mut config)?;
    access.apply(names, outside, &mut config)?;
    runtime.apply(names, &mut config)?;
    dns.apply(names, outside, &mut config)?;
    config.reset_registry = reset_registry;
    if !config.admin.ip().is_loopback() && config.admin_token.is_none() {
        tracing::warn!(admin = %config.admin, "admin API is not on loopback and no --admin-token is set: mutating requests from non-local sources are refused");
    }
    Ok(config)
}
