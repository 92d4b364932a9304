//! kms-host configuration: flags, `KMSLAB_*` environment variables and a TOML file, merged
//! (flags > env > file > defaults) and validated as a whole before anything is bound.
//!
//! Every value is taken as text first and checked here, so that a bad value, wherever it
//! came from, produces one [`ConfigError`] line naming the flag, the variable or the key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use kmslab_core::catalog::Catalog;
use kmslab_core::ledger::validate_interval;
use kmslab_core::wire::FrameKey;
use kmslab_core::{Timestamp, epid};
use kmslab_runtime::SimClock;
use kmslab_runtime::logging::LogFormat;
use serde::Deserialize;

use crate::access::{Cidr, RateLimit};

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

/// Command-line flags of `kms-host`. Each one can also come from `KMSLAB_<NAME>`.
#[derive(Debug, Default, Parser)]
#[command(name = "kms-host", version = kmslab_runtime::VERSION, about = "The kmslab KMS host daemon (kmslab's own open protocol, not Microsoft's RPC)")]
pub struct Cli {
    /// TOML configuration file (keys as the long flags, with `_` for `-`).
    #[arg(long, env = "KMSLAB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// KMS listener (repeatable; IPv6 as [::]:1688) [0.0.0.0:1688].
    #[arg(long, env = "KMSLAB_LISTEN", value_name = "ADDR", value_delimiter = ',')]
    pub listen: Vec<String>,
    /// Admin API / metrics / slmgr target address [127.0.0.1:8688].
    #[arg(long, env = "KMSLAB_ADMIN", value_name = "ADDR")]
    pub admin: Option<String>,
    /// Directory of the SQLite registry [kms-host-data].
    #[arg(long, env = "KMSLAB_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Host key group(s), comma separated: client-vl, kms-a, kms-b, kms-c, office-2010 [kms-b].
    #[arg(long, env = "KMSLAB_HOST_KEY_GROUP", value_name = "G")]
    pub host_key_group: Option<String>,
    /// The host's own activation is missing: answer 0xC004F041.
    #[arg(long, env = "KMSLAB_UNACTIVATED", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub unactivated: Option<String>,
    /// Activation interval sent to clients, minutes (15..43200) [120, or the value set by /sai].
    #[arg(long, env = "KMSLAB_ACTIVATION_INTERVAL", value_name = "MIN")]
    pub activation_interval: Option<String>,
    /// Renewal interval sent to clients, minutes (15..43200) [10080, or the value set by /sri].
    #[arg(long, env = "KMSLAB_RENEWAL_INTERVAL", value_name = "MIN")]
    pub renewal_interval: Option<String>,
    /// Fixed ePID [generated once, kept in the data dir].
    #[arg(long, env = "KMSLAB_EPID", value_name = "EPID")]
    pub epid: Option<String>,
    /// Restore the count (CMIDs seen in the last 30 days) from the registry at start.
    #[arg(long, env = "KMSLAB_KEEP_COUNT", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub keep_count: Option<String>,
    /// If the registry fails its start-up check, move it aside (renamed
    /// `registry.sqlite.damaged-<time>`) and start with an empty one (a new ePID, count 0).
    /// A sound registry is never touched. Command line only.
    #[arg(long)]
    pub reset_registry: bool,
    /// Extra product catalog (TOML, same format as the built-in one).
    #[arg(long, env = "KMSLAB_CATALOG", value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Bearer token required by mutating admin requests from sources outside
    /// --admin-local-network (it also grants read access from anywhere).
    #[arg(long, env = "KMSLAB_ADMIN_TOKEN", value_name = "TOKEN", hide_env_values = true, conflicts_with = "admin_token_file")]
    pub admin_token: Option<String>,
    /// File holding the --admin-token on one line (keeps it out of `ps` and the environment).
    #[arg(long, env = "KMSLAB_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// A name the admin API may be reached by, accepted in the `Host` header besides IP
    /// addresses and localhost (repeatable or comma separated; DNS rebinding defence).
    #[arg(long, env = "KMSLAB_ADMIN_HOST", value_name = "NAME", value_delimiter = ',')]
    pub admin_host: Vec<String>,
    /// Network whose sources may read the admin API, /metrics and the dashboard without the
    /// token (repeatable or comma separated) [none: only local sources may read].
    #[arg(long, env = "KMSLAB_ADMIN_READ_NETWORK", value_name = "CIDR", value_delimiter = ',')]
    pub admin_read_network: Vec<String>,
    /// Sources treated as local by the admin API: everything allowed without the token
    /// (repeatable or comma separated) [127.0.0.0/8,::1/128].
    #[arg(long, env = "KMSLAB_ADMIN_LOCAL_NETWORK", value_name = "CIDR", value_delimiter = ',')]
    pub admin_local_network: Vec<String>,
    /// Only sources in CIDR may send KMS requests (repeatable or comma separated); others
    /// are closed at accept [everyone].
    #[arg(long, env = "KMSLAB_ALLOW", value_name = "CIDR", value_delimiter = ',')]
    pub allow: Vec<String>,
    /// Per-source token bucket: PER_SECOND[,BURST] requests per source address; requests
    /// over it get 0xA04B0001 [off].
    #[arg(long, env = "KMSLAB_RATE_LIMIT", value_name = "PER_SECOND[,BURST]")]
    pub rate_limit: Option<String>,
    /// Pre-shared key file: every frame must carry an HMAC-SHA256 made with it, answers
    /// carry one too (docs/protocol.md) [off].
    #[arg(long, env = "KMSLAB_PSK", value_name = "FILE")]
    pub psk: Option<PathBuf>,
    /// Simulated time runs F times faster than real time [1].
    #[arg(long, env = "KMSLAB_TIME_SCALE", value_name = "F")]
    pub time_scale: Option<String>,
    /// Simulated time origin (RFC 3339) [process start].
    #[arg(long, env = "KMSLAB_TIME_ORIGIN", value_name = "T")]
    pub time_origin: Option<String>,
    /// Most concurrent KMS connections [1024, lowered to fit the open-files limit].
    #[arg(long, env = "KMSLAB_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<String>,
    /// Most concurrent KMS connections from one source address; more are closed at
    /// accept [half of --max-connections].
    #[arg(long, env = "KMSLAB_MAX_CONNECTIONS_PER_SOURCE", value_name = "N")]
    pub max_connections_per_source: Option<String>,
    /// Seconds a KMS connection may stay idle [30].
    #[arg(long, env = "KMSLAB_IDLE_TIMEOUT", value_name = "SECS")]
    pub idle_timeout: Option<String>,
    /// Log format: text or json [text].
    #[arg(long, env = "KMSLAB_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Registry commit durability: `full` (fsync every commit: survives a power cut) or
    /// `normal` (survives kill -9, not a power cut) [full].
    #[arg(long, env = "KMSLAB_REGISTRY_SYNC", value_name = "MODE")]
    pub registry_sync: Option<String>,
    /// DNS server receiving RFC 2136 updates (IP:PORT, or NAME:PORT resolved when publishing).
    #[arg(long, env = "KMSLAB_DNS_SERVER", value_name = "IP:PORT|NAME:PORT")]
    pub dns_server: Option<String>,
    /// Publish list entry ZONE[,PRIORITY[,WEIGHT]] (repeatable; in KMSLAB_DNS_ZONE separate entries by spaces or `;`).
    #[arg(long, env = "KMSLAB_DNS_ZONE", value_name = "Z[,PRIO[,WEIGHT]]")]
    pub dns_zone: Vec<String>,
    /// SRV target FQDN [the system host name, completed with the first zone when it has no dot].
    #[arg(long, env = "KMSLAB_DNS_HOSTNAME", value_name = "FQDN")]
    pub dns_hostname: Option<String>,
    /// Also publish an A/AAAA record with this address for --dns-hostname (a name: the address it resolves to when publishing).
    #[arg(long, env = "KMSLAB_DNS_ADDRESS", value_name = "IP|NAME")]
    pub dns_address: Option<String>,
    /// TTL of the published records, seconds [600].
    #[arg(long, env = "KMSLAB_DNS_TTL", value_name = "SECS")]
    pub dns_ttl: Option<String>,
    /// Do not publish in DNS at all (the /sdns setting is kept but ignored).
    #[arg(long, env = "KMSLAB_NO_DNS_PUBLISH", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub no_dns_publish: Option<String>,
    /// TSIG key signing the updates, NAME:ALG:BASE64 (hmac-sha256/384/512).
    #[arg(long, env = "KMSLAB_TSIG_KEY", value_name = "NAME:ALG:BASE64", conflicts_with = "tsig_key_file", hide_env_values = true)]
    pub tsig_key: Option<String>,
    /// File with the TSIG key (NAME:ALG:BASE64, or a BIND `key` clause).
    #[arg(long, env = "KMSLAB_TSIG_KEY_FILE", value_name = "FILE")]
    pub tsig_key_file: Option<PathBuf>,
    /// Remove this host's SRV record on a clean shutdown.
    #[arg(long, env = "KMSLAB_UNPUBLISH_ON_EXIT", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub unpublish_on_exit: Option<String>,
}

/// The TOML file: the same settings as the flags. Read it with [`parse_file`] and check its
/// values with [`validate_file`] (or let [`load`] do both, with the flags and environment).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    listen: Option<Vec<String>>,
    admin: Option<String>,
    data_dir: Option<PathBuf>,
    host_key_group: Option<String>,
    unactivated: Option<bool>,
    activation_interval: Option<u64>,
    renewal_interval: Option<u64>,
    epid: Option<String>,
    keep_count: Option<bool>,
    catalog: Option<PathBuf>,
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
    admin_host: Option<Vec<String>>,
    admin_read_network: Option<Vec<String>>,
    admin_local_network: Option<Vec<String>>,
    allow: Option<Vec<String>>,
    rate_limit: Option<String>,
    psk: Option<PathBuf>,
    time_scale: Option<f64>,
    time_origin: Option<String>,
    max_connections: Option<u64>,
    max_connections_per_source: Option<u64>,
    idle_timeout: Option<u64>,
    log_format: Option<String>,
    registry_sync: Option<String>,
    dns_server: Option<String>,
    dns_zone: Option<Vec<String>>,
    dns_hostname: Option<String>,
    dns_address: Option<String>,
    dns_ttl: Option<u64>,
    no_dns_publish: Option<bool>,
    tsig_key: Option<String>,
    tsig_key_file: Option<PathBuf>,
    unpublish_on_exit: Option<bool>,
}

/// A configuration value that cannot work; the message names where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

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

/// Where a value came from, to name it in an error.
#[derive(Debug, Clone, Copy)]
enum From3 {
    Flag,
    Env,
    File,
}

/// One setting being resolved: its flag/env/key names. Without `matches` (see
/// [`validate_file`]) every value comes from the file.
struct Resolver<'a> {
    matches: Option<&'a ArgMatches>,
    file_path: Option<&'a Path>,
}

impl Resolver<'_> {
    fn source(&self, id: &str) -> Option<From3> {
        match self.matches?.value_source(id) {
            Some(ValueSource::CommandLine) => Some(From3::Flag),
            Some(ValueSource::EnvVariable) => Some(From3::Env),
            _ => None,
        }
    }

    fn name(&self, id: &str, from: From3) -> String {
        match from {
            From3::Flag => format!("--{}", id.replace('_', "-")),
            From3::Env => format!("KMSLAB_{}", id.to_uppercase()),
            From3::File => format!("key `{id}` in {}", self.file_path.map_or("the config file".into(), |p| p.display().to_string())),
        }
    }

    /// The text value and its name, from flag/env if given, else from the file.
    fn pick(&self, id: &str, cli: Option<String>, file: Option<String>) -> Option<(String, String)> {
        match (self.source(id), cli) {
            (Some(from), Some(v)) => Some((v, self.name(id, from))),
            _ => file.map(|v| (v, self.name(id, From3::File))),
        }
    }
}

/// `message` as one line: `kms-host` prints a refusal as its one output line, and messages
/// from other crates (toml, hickory's DNS names) can carry control characters of the value
/// they refuse. A line feed becomes a space (as before), any other control character its
/// escape (`\r`, `\u{1b}`).
fn one_line(message: &str) -> String {
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

fn bad(name: &str, value: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("invalid {name} {value:?}: {why}"))
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(bad(name, other, "expected true or false")),
    }
}

/// An `--admin-host` name: a DNS name (letters, digits, `-`, `_`, dots), lower case,
/// without a final dot.
fn admin_host_name(name: &str, v: &str) -> Result<String, ConfigError> {
    let n = v.trim().strip_suffix('.').unwrap_or(v.trim()).to_ascii_lowercase();
    let label_ok = |l: &str| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if n.is_empty() || n.len() > 253 || !n.split('.').all(label_ok) {
        return Err(bad(name, v, "expected a DNS name such as kms1.lab.test (IP addresses are always accepted)"));
    }
    Ok(n)
}

fn parse_addr(name: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| bad(name, v, "expected IP:PORT (IPv6 as [::1]:1688)"))
}

/// Parses the command line (or `args`), reads env and the file, and validates everything.
/// `Err` carries either clap's own error (help, version, unknown flag) or a config error.
pub fn load(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<HostConfig, LoadError> {
    let matches = Cli::command().try_get_matches_from(args).map_err(LoadError::Clap)?;
    let cli = Cli::from_arg_matches(&matches).map_err(LoadError::Clap)?;
    resolve(cli, &matches).map_err(LoadError::Config)
}

/// Why [`load`] failed.
#[derive(Debug)]
pub enum LoadError {
    /// Clap refused the command line (or `--help` / `--version` was asked for).
    Clap(clap::Error),
    /// A value is bad.
    Config(ConfigError),
}

/// Parses the text of a `--config` file: TOML with the keys of [`FileConfig`], an unknown
/// key refused by name. This checks the syntax and the types only; [`validate_file`] checks
/// the values. Touches nothing outside (no disk, environment or network).
pub fn parse_file(text: &str) -> Result<FileConfig, ConfigError> {
    parse_file_at(text, None)
}

/// [`parse_file`], the error naming the file's `path` when there is one.
fn parse_file_at(text: &str, path: Option<&Path>) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let msg = one_line(&kmslab_core::toml_error::describe(text, &e));
        match path {
            Some(path) => ConfigError(format!("invalid config file {}: {msg}", path.display())),
            None => ConfigError(format!("invalid config file: {msg}")),
        }
    })
}

/// Validates the values of a config file alone, by the code [`load`] uses: the result is
/// the configuration `kms-host --config FILE` runs with when no flag and no `KMSLAB_*`
/// variable is set. Unlike `load` it touches nothing outside (no disk, environment or
/// network), which makes two differences: a key naming another file (`catalog`, `psk`,
/// `tsig_key_file`) is refused, since that file would have to be read, and there is no
/// system host name to derive the DNS host name from (so `dns_server` needs `dns_hostname`).
pub fn validate_file(file: FileConfig) -> Result<HostConfig, ConfigError> {
    resolve_values(Cli::default(), None, file, None, Outside::Nothing).map_err(|e| ConfigError(one_line(&e.0)))
}

/// What resolving may consult besides the values themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outside {
    /// The files that values name and the system host name ([`load`]).
    System,
    /// Nothing ([`validate_file`]).
    Nothing,
}

impl Outside {
    /// Refuses the value `v` of `name`, naming a file, when no file may be read.
    fn may_read(self, name: &str, v: &str) -> Result<(), ConfigError> {
        match self {
            Outside::System => Ok(()),
            Outside::Nothing => Err(bad(name, v, "names a file, which is not read when checking the config file alone")),
        }
    }
}

fn resolve(cli: Cli, matches: &ArgMatches) -> Result<HostConfig, ConfigError> {
    let file = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("cannot read --config {}: {e}", path.display())))?;
            parse_file_at(&text, Some(path))?
        }
        None => FileConfig::default(),
    };
    let file_path = cli.config.clone();
    resolve_values(cli, Some(matches), file, file_path.as_deref(), Outside::System).map_err(|e| ConfigError(one_line(&e.0)))
}

/// Merges the flags and environment (`cli`, `matches`) with the parsed `file` and validates
/// every value; `file_path` names the file in errors.
fn resolve_values(
    cli: Cli,
    matches: Option<&ArgMatches>,
    file: FileConfig,
    file_path: Option<&Path>,
    outside: Outside,
) -> Result<HostConfig, ConfigError> {
    let r = Resolver { matches, file_path };
    let mut config = HostConfig::with_data_dir(DEFAULT_DATA_DIR);

    let listen: Option<(Vec<String>, String)> = match r.source("listen") {
        Some(from) if !cli.listen.is_empty() => Some((cli.listen.clone(), r.name("listen", from))),
        _ => file.listen.clone().map(|l| (l, r.name("listen", From3::File))),
    };
    if let Some((list, name)) = listen {
        if list.is_empty() {
            return Err(ConfigError(format!("invalid {name}: at least one address is needed")));
        }
        config.listen = list.iter().map(|v| parse_addr(&name, v.trim())).collect::<Result<_, _>>()?;
        config.listen_explicit = true;
    }
    if let Some((v, name)) = r.pick("admin", cli.admin, file.admin) {
        config.admin = parse_addr(&name, &v)?;
    }
    if let Some(source) = r.source("data_dir").and(cli.data_dir).or(file.data_dir) {
        config.data_dir = source;
    }
    if let Some((v, name)) = r.pick("catalog", cli.catalog.map(|p| p.display().to_string()), file.catalog.map(|p| p.display().to_string()))
    {
        outside.may_read(&name, &v)?;
        let text = std::fs::read_to_string(&v).map_err(|e| bad(&name, &v, e))?;
        let mut catalog = Catalog::builtin();
        catalog.extend_from_toml(&text).map_err(|e| bad(&name, &v, e))?;
        config.catalog = Arc::new(catalog);
    }
    if let Some((v, name)) = r.pick("host_key_group", cli.host_key_group, file.host_key_group) {
        let groups: Vec<String> = v.split(',').map(|g| g.trim().to_owned()).filter(|g| !g.is_empty()).collect();
        if groups.is_empty() {
            return Err(bad(&name, &v, "at least one host key group is needed"));
        }
        for g in &groups {
            if config.catalog.host_key_group(g).is_none() {
                let known: Vec<&str> = config.catalog.host_key_groups().iter().map(|h| h.name.as_str()).collect();
                return Err(bad(&name, g, format!("unknown host key group (known: {})", known.join(", "))));
            }
        }
        config.host_key_groups = groups;
    }
    if let Some((v, name)) = r.pick("unactivated", cli.unactivated, file.unactivated.map(|b| b.to_string())) {
        config.activated = !parse_bool(&name, &v)?;
    }
    if let Some((v, name)) = r.pick("keep_count", cli.keep_count, file.keep_count.map(|b| b.to_string())) {
        config.keep_count = parse_bool(&name, &v)?;
    }
    config.reset_registry = cli.reset_registry;
    for (id, cli_v, file_v) in [
        ("activation_interval", cli.activation_interval, file.activation_interval),
        ("renewal_interval", cli.renewal_interval, file.renewal_interval),
    ] {
        if let Some((v, name)) = r.pick(id, cli_v, file_v.map(|n| n.to_string())) {
            let n: u64 = v.trim().parse().map_err(|_| bad(&name, &v, "expected a number of minutes (15..43200)"))?;
            let minutes = validate_interval(id, n).map_err(|_| bad(&name, &v, "must be between 15 and 43200 minutes"))?;
            if id == "activation_interval" {
                config.activation_interval = Some(minutes);
            } else {
                config.renewal_interval = Some(minutes);
            }
        }
    }
    if let Some((v, name)) = r.pick("epid", cli.epid, file.epid) {
        if !epid::is_valid(&v) {
            return Err(bad(&name, &v, "expected PPPPP-GGGGG-KKK-NNNNNN-03-LLLL-BBBB.0000-DDDYYYY"));
        }
        config.epid = Some(v);
    }
    let token_file = r.pick(
        "admin_token_file",
        cli.admin_token_file.map(|p| p.display().to_string()),
        file.admin_token_file.map(|p| p.display().to_string()),
    );
    match (r.pick("admin_token", cli.admin_token, file.admin_token), token_file) {
        (Some((_, a)), Some((_, b))) => return Err(ConfigError(format!("invalid {a}: give either it or {b}, not both"))),
        // The value is never quoted: it is a secret.
        (Some((v, name)), None) => {
            config.admin_token = Some(kmslab_admin::AdminToken::new(&v).map_err(|e| ConfigError(format!("invalid {name}: {e}")))?)
        }
        (None, Some((v, name))) => {
            outside.may_read(&name, &v)?;
            let token = kmslab_admin::AdminToken::from_file(Path::new(&v)).map_err(|e| ConfigError(format!("invalid {name}: {e}")))?;
            config.admin_token = Some(token);
        }
        (None, None) => {}
    }
    let admin_hosts = match r.source("admin_host") {
        Some(from) if !cli.admin_host.is_empty() => Some((cli.admin_host.clone(), r.name("admin_host", from))),
        _ => file.admin_host.clone().map(|l| (l, r.name("admin_host", From3::File))),
    };
    if let Some((list, name)) = admin_hosts {
        config.admin_hosts = list.iter().map(|v| admin_host_name(&name, v)).collect::<Result<_, _>>()?;
    }
    for (id, cli_v, file_v) in [
        ("admin_read_network", cli.admin_read_network, file.admin_read_network),
        ("admin_local_network", cli.admin_local_network, file.admin_local_network),
        ("allow", cli.allow, file.allow),
    ] {
        // A list comes whole from one place (flags, env or file), like --listen.
        let list = match r.source(id) {
            Some(from) if !cli_v.is_empty() => Some((cli_v, r.name(id, from))),
            _ => file_v.map(|l| (l, r.name(id, From3::File))),
        };
        let Some((list, name)) = list else { continue };
        let cidrs = list.iter().map(|v| v.parse::<Cidr>().map_err(|e| bad(&name, v, e))).collect::<Result<Vec<_>, _>>()?;
        match id {
            "admin_read_network" => config.admin_read_networks = cidrs,
            "admin_local_network" => config.admin_local_networks = cidrs,
            _ => config.allow = cidrs,
        }
    }
    if let Some((v, name)) = r.pick("rate_limit", cli.rate_limit, file.rate_limit) {
        config.rate_limit = Some(v.parse().map_err(|e: String| bad(&name, &v, e))?);
    }
    if let Some((v, name)) = r.pick("psk", cli.psk.map(|p| p.display().to_string()), file.psk.map(|p| p.display().to_string())) {
        outside.may_read(&name, &v)?;
        config.psk = Some(kmslab_runtime::psk::load(Path::new(&v)).map_err(|e| ConfigError(format!("invalid {name}: {e}")))?);
    }
    if let Some((v, name)) = r.pick("time_scale", cli.time_scale, file.time_scale.map(|f| f.to_string())) {
        let f: f64 = v.trim().parse().map_err(|_| bad(&name, &v, "expected a number"))?;
        SimClock::new(f, None).map_err(|_| bad(&name, &v, "must be a finite number > 0 and <= 10000000"))?;
        config.time_scale = f;
    }
    if let Some((v, name)) = r.pick("time_origin", cli.time_origin, file.time_origin) {
        config.time_origin = Some(Timestamp::parse_rfc3339(&v).map_err(|e| bad(&name, &v, e))?);
    }
    if let Some((v, name)) = r.pick("max_connections", cli.max_connections, file.max_connections.map(|n| n.to_string())) {
        let n: usize = v.trim().parse().map_err(|_| bad(&name, &v, "expected a number 1..=1000000"))?;
        if !(1..=1_000_000).contains(&n) {
            return Err(bad(&name, &v, "must be between 1 and 1000000"));
        }
        config.max_connections = n;
    }
    if let Some((v, name)) =
        r.pick("max_connections_per_source", cli.max_connections_per_source, file.max_connections_per_source.map(|n| n.to_string()))
    {
        let n: usize = v.trim().parse().map_err(|_| bad(&name, &v, "expected a number 1..=1000000"))?;
        if !(1..=1_000_000).contains(&n) {
            return Err(bad(&name, &v, "must be between 1 and 1000000"));
        }
        config.max_connections_per_source = Some(n);
    }
    if let Some((v, name)) = r.pick("idle_timeout", cli.idle_timeout, file.idle_timeout.map(|n| n.to_string())) {
        let n: u64 = v.trim().parse().map_err(|_| bad(&name, &v, "expected seconds 1..=86400"))?;
        if !(1..=86_400).contains(&n) {
            return Err(bad(&name, &v, "must be between 1 and 86400 seconds"));
        }
        config.idle_timeout = Duration::from_secs(n);
    }
    if let Some((v, name)) = r.pick("log_format", cli.log_format, file.log_format) {
        config.log_format = v.parse().map_err(|e: String| bad(&name, &v, e))?;
    }
    if let Some((v, name)) = r.pick("registry_sync", cli.registry_sync, file.registry_sync) {
        config.registry_sync = match v.as_str() {
            "full" => kmslab_store::Synchronous::Full,
            "normal" => kmslab_store::Synchronous::Normal,
            _ => return Err(bad(&name, &v, "expected full or normal")),
        };
    }
    // DNS publishing. The list comes whole from one place (flags, env or file), like --listen.
    let zones: Option<(Vec<String>, String)> = match r.source("dns_zone") {
        Some(from) if !cli.dns_zone.is_empty() => Some((cli.dns_zone.clone(), r.name("dns_zone", from))),
        _ => file.dns_zone.clone().map(|l| (l, r.name("dns_zone", From3::File))),
    };
    let dns_zones = zones.map(|(list, name)| {
        let entries = list.iter().flat_map(|v| v.split([';', ' '])).filter(|v| !v.trim().is_empty());
        entries.map(|v| v.parse().map_err(|e| bad(&name, v, e))).collect::<Result<Vec<_>, _>>()
    });
    let dns_server = r
        .pick("dns_server", cli.dns_server, file.dns_server)
        .map(|(v, name)| kmslab_dns::DnsServerChoice::parse_server(&v).map_err(|e| ConfigError(format!("invalid {name}: {e}"))))
        .transpose()?;
    let dns_hostname = r.pick("dns_hostname", cli.dns_hostname, file.dns_hostname);
    // An IP, or a name looked up when publishing (a Swarm service name: its virtual IP).
    let (dns_address, dns_address_name) = match r.pick("dns_address", cli.dns_address, file.dns_address) {
        Some((v, name)) => match v.trim().parse::<IpAddr>() {
            Ok(ip) => (Some(ip), None),
            Err(_) => match v.trim().parse::<kmslab_core::hostaddr::HostAddr>() {
                Ok(h) if !v.contains(':') && h.host.chars().any(|c| c.is_ascii_alphabetic()) => (None, Some(h.host)),
                _ => return Err(bad(&name, &v, "expected an IPv4 or IPv6 address or a host name")),
            },
        },
        None => (None, None),
    };
    let dns_ttl = r.pick("dns_ttl", cli.dns_ttl, file.dns_ttl.map(|n| n.to_string()));
    let no_publish = r.pick("no_dns_publish", cli.no_dns_publish, file.no_dns_publish.map(|b| b.to_string()));
    let tsig_key = r.pick("tsig_key", cli.tsig_key, file.tsig_key);
    let tsig_key_file =
        r.pick("tsig_key_file", cli.tsig_key_file.map(|p| p.display().to_string()), file.tsig_key_file.map(|p| p.display().to_string()));
    let unpublish = r.pick("unpublish_on_exit", cli.unpublish_on_exit, file.unpublish_on_exit.map(|b| b.to_string()));
    let dns = &mut config.dns;
    dns.server = dns_server;
    dns.zones = dns_zones.transpose()?.unwrap_or_default();
    dns.address = dns_address;
    dns.address_name = dns_address_name;
    if let Some((v, name)) = dns_ttl {
        let n: u32 = v.trim().parse().map_err(|_| bad(&name, &v, "expected seconds 1..=604800"))?;
        if !(1..=604_800).contains(&n) {
            return Err(bad(&name, &v, "must be between 1 and 604800 seconds"));
        }
        dns.ttl = n;
    }
    if let Some((v, name)) = no_publish {
        dns.publish = !parse_bool(&name, &v)?;
    }
    if let Some((v, name)) = unpublish {
        dns.unpublish_on_exit = parse_bool(&name, &v)?;
    }
    match (tsig_key, tsig_key_file) {
        (Some((_, a)), Some((_, b))) => return Err(ConfigError(format!("invalid {a}: give either it or {b}, not both"))),
        (Some((v, name)), None) => dns.tsig = Some(v.parse().map_err(|e| ConfigError(format!("invalid {name}: {e}")))?),
        (None, Some((v, name))) => {
            outside.may_read(&name, &v)?;
            dns.tsig = Some(kmslab_dns::TsigKey::from_file(Path::new(&v)).map_err(|e| ConfigError(format!("invalid {name} {v:?}: {e}")))?)
        }
        (None, None) => {}
    }
    let system_hostname: fn() -> Option<String> = match outside {
        Outside::System => crate::publish::system_hostname,
        Outside::Nothing => || None,
    };
    crate::publish::finish_config_with(dns, dns_hostname, system_hostname)?;
    if !config.admin.ip().is_loopback() && config.admin_token.is_none() {
        tracing::warn!(admin = %config.admin, "admin API is not on loopback and no --admin-token is set: mutating requests from non-local sources are refused");
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<std::ffi::OsString> {
        std::iter::once("kms-host").chain(list.iter().copied()).map(Into::into).collect()
    }

    fn check_err(list: &[&str], needle: &str) {
        match load(args(list)) {
            Err(LoadError::Config(e)) => assert!(e.0.contains(needle), "{e} does not name {needle}"),
            other => panic!("{list:?}: expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn bad_values_name_their_flag() {
        check_err(&["--activation-interval", "5"], "--activation-interval");
        check_err(&["--listen", "nonsense"], "--listen");
        check_err(&["--host-key-group", "kms-b,kms-z"], "--host-key-group");
        check_err(&["--epid", "12"], "--epid");
        check_err(&["--time-scale", "0"], "--time-scale");
        check_err(&["--max-connections", "0"], "--max-connections");
    }

    #[test]
    fn dns_publishing_settings_are_checked_and_named() {
        check_err(&["--dns-server", "nowhere"], "--dns-server");
        check_err(&["--dns-zone", "lab.test,high"], "--dns-zone");
        check_err(&["--dns-zone", "lab.test"], "--dns-server");
        check_err(&["--dns-server", "127.0.0.1:53", "--dns-zone", "lab.test", "--dns-hostname", "kms1"], "--dns-hostname");
        check_err(&["--dns-address", "kms1:1688"], "--dns-address");
        check_err(&["--dns-address", "a b"], "--dns-address");
        check_err(&["--dns-ttl", "0"], "--dns-ttl");
        check_err(&["--tsig-key", "ddns-key:hmac-md5:AAAA"], "--tsig-key");
        check_err(&["--tsig-key-file", "/nonexistent/key"], "--tsig-key-file");
        let c = load(args(&[
            "--dns-server",
            "127.0.0.1:5353",
            "--dns-zone",
            "lab.test,10,20",
            "--dns-zone",
            "other.test",
            "--dns-hostname",
            "kms1.lab.test",
            "--dns-address",
            "::1",
            "--dns-ttl",
            "120",
            "--unpublish-on-exit",
            "--tsig-key",
            "ddns-key:hmac-sha256:c2VjcmV0",
        ]))
        .map_err(|e| format!("{e:?}"))
        .unwrap();
        assert!(c.dns.active() && c.dns.unpublish_on_exit);
        assert_eq!(c.dns.zones.iter().map(ToString::to_string).collect::<Vec<_>>(), ["lab.test,10,20", "other.test,0,0"]);
        assert_eq!((c.dns.ttl, c.dns.address), (120, Some("::1".parse().unwrap())));
        assert_eq!(c.dns.tsig.as_ref().map(|k| k.name.as_str()), Some("ddns-key"));
        // The TOML file takes the same keys; --no-dns-publish turns everything off.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(&path, "dns_server = \"127.0.0.1:53\"\ndns_zone = [\"lab.test,5\"]\ndns_hostname = \"kms2.lab.test\"\n").unwrap();
        let p = path.to_str().unwrap();
        let c = load(args(&["--config", p])).map_err(|e| format!("{e:?}")).unwrap();
        assert_eq!(c.dns.zones[0].priority, 5);
        let c = load(args(&["--config", p, "--no-dns-publish"])).map_err(|e| format!("{e:?}")).unwrap();
        assert!(!c.dns.active());
        std::fs::write(&path, "dns_zone = [\"lab.test,x\"]\n").unwrap();
        check_err(&["--config", p], "key `dns_zone`");
    }

    #[test]
    fn access_control_settings_are_checked_and_named() {
        check_err(&["--allow", "10.0.0.1/8"], "--allow");
        check_err(&["--allow", "everyone"], "--allow");
        check_err(&["--admin-read-network", "10.0.0.0/40"], "--admin-read-network");
        check_err(&["--admin-local-network", "x"], "--admin-local-network");
        check_err(&["--rate-limit", "0"], "--rate-limit");
        check_err(&["--rate-limit", "5,0"], "--rate-limit");
        check_err(&["--psk", "/nonexistent/lab.psk"], "--psk");
        check_err(&["--admin-token", "two words"], "--admin-token");
        check_err(&["--admin-token-file", "/nonexistent/token"], "--admin-token-file");
        check_err(&["--admin-host", "bad name"], "--admin-host");
        check_err(&["--max-connections-per-source", "0"], "--max-connections-per-source");
        let c = load(args(&["--admin-token", "s3cret", "--admin-host", "KMS1.lab.test.,kms1"])).map_err(|e| format!("{e:?}")).unwrap();
        assert!(c.admin_token.as_ref().is_some_and(|t| t.matches("s3cret")));
        assert!(!format!("{c:?}").contains("s3cret"), "the token is not in the config's Debug");
        assert_eq!(c.admin_hosts, ["kms1.lab.test", "kms1"]);
        assert_eq!((c.per_source_cap(1024), c.per_source_cap(40), c.per_source_cap(1)), (512, 20, 1));
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.psk");
        std::fs::write(&short, "tooshort\n").unwrap();
        check_err(&["--psk", short.to_str().unwrap()], "--psk");
        let psk = dir.path().join("lab.psk");
        std::fs::write(&psk, "0123456789abcdef0123456789abcdef\n").unwrap();
        let c = load(args(&[
            "--allow",
            "10.0.0.0/8,192.168.1.0/24",
            "--allow",
            "::1",
            "--admin-read-network",
            "10.1.0.0/16",
            "--rate-limit",
            "2,10",
            "--psk",
            psk.to_str().unwrap(),
        ]))
        .map_err(|e| format!("{e:?}"))
        .unwrap();
        assert_eq!(c.allow.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.0.0.0/8", "192.168.1.0/24", "::1/128"]);
        assert_eq!(c.admin_read_networks.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.1.0.0/16"]);
        assert_eq!(c.admin_local_networks.iter().map(ToString::to_string).collect::<Vec<_>>(), ["127.0.0.0/8", "::1/128"]);
        assert_eq!(c.rate_limit, Some(RateLimit { per_second: 2.0, burst: 10.0 }));
        assert!(c.psk.is_some());
        // The same keys in the file.
        let path = dir.path().join("host.toml");
        std::fs::write(&path, "allow = [\"10.0.0.0/8\"]\nrate_limit = \"1\"\nadmin_local_network = [\"127.0.0.1/32\"]\n").unwrap();
        let c = load(args(&["--config", path.to_str().unwrap()])).map_err(|e| format!("{e:?}")).unwrap();
        assert_eq!((c.allow.len(), c.admin_local_networks.len()), (1, 1));
        std::fs::write(&path, "allow = [\"10.0.0.0/x\"]\n").unwrap();
        check_err(&["--config", path.to_str().unwrap()], "key `allow`");
    }

    #[test]
    fn file_keys_are_checked_and_flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(
            &path,
            "activation_interval = 60\nhost_key_group = \"kms-c,office-2010\"\nlisten = [\"127.0.0.1:0\", \"[::1]:0\"]\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = load(args(&["--config", p, "--activation-interval", "30"])).map_err(|e| format!("{e:?}")).unwrap();
        assert_eq!(c.activation_interval, Some(30));
        assert_eq!(c.host_key_groups, ["kms-c", "office-2010"]);
        assert_eq!(c.listen.len(), 2);
        std::fs::write(&path, "activation_intervall = 60\n").unwrap();
        check_err(&["--config", p], "activation_intervall");
        std::fs::write(&path, "renewal_interval = 99999\n").unwrap();
        check_err(&["--config", p], "key `renewal_interval`");
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;

    /// The example of docs/operations.md ("A host configured by file").
    const OPERATIONS_EXAMPLE: &str = r#"listen = ["127.0.0.1:17688"]
admin = "127.0.0.1:17788"
data_dir = "/tmp/ops/cfg/data"
activation_interval = 60
renewal_interval = 1440
no_dns_publish = true
"#;

    /// Every key but `catalog`, `psk` and `tsig_key_file`, whose files `validate_file` does
    /// not read.
    const EVERY_KEY: &str = r#"
listen = ["0.0.0.0:1688", "[::]:1688"]
admin = "127.0.0.1:8688"
data_dir = "/var/lib/kmslab"
host_key_group = "kms-b,office-2010"
unactivated = false
activation_interval = 120
renewal_interval = 10080
epid = "55041-00168-305-123456-03-1033-7600.0000-0012026"
keep_count = true
admin_token = "s3cret-token"
admin_host = ["kms1.lab.test", "kms1"]
admin_read_network = ["10.1.0.0/16", "fd00::/8"]
admin_local_network = ["127.0.0.0/8", "::1/128"]
allow = ["10.0.0.0/8", "192.168.1.0/24", "::1"]
rate_limit = "0.5,10"
time_scale = 86400.0
time_origin = "2026-01-01T09:30:00.250+02:00"
max_connections = 1024
max_connections_per_source = 512
idle_timeout = 30
log_format = "json"
registry_sync = "normal"
dns_server = "127.0.0.1:5353"
dns_zone = ["lab.test,10,20", "other.test"]
dns_hostname = "kms1.lab.test"
dns_address = "::1"
dns_ttl = 600
no_dns_publish = false
tsig_key = "ddns-key:hmac-sha256:c2VjcmV0"
unpublish_on_exit = true
"#;

    fn check(text: &str) -> Result<HostConfig, ConfigError> {
        validate_file(parse_file(text)?)
    }

    #[test]
    fn parse_file_refuses_unknown_keys_by_name_and_wrong_types() {
        let e = parse_file("activation_intervall = 60\n").unwrap_err();
        assert!(
            e.0.starts_with("invalid config file: line 1, column 1: unknown field `activation_intervall`, expected one of `listen`"),
            "{e}"
        );
        assert!(!e.0.contains('\n'), "{e}");
        let e = parse_file("sai = 60\nlisten = [\"0.0.0.0:1688\"]\n").unwrap_err();
        assert!(e.0.contains("`sai`"), "{e}");
        let e = parse_file("dns_ttl = 60\nlisten = \"127.0.0.1:1\"\n").unwrap_err();
        assert_eq!(e.0, "invalid config file: line 2, column 10, key listen: invalid type: string \"127.0.0.1:1\", expected a sequence");
        assert!(parse_file("activation_interval = \"60\"\n").is_err());
        assert!(parse_file("activation_interval = -1\n").is_err());
        assert!(parse_file("listen = [\n").is_err());
        assert!(parse_file("").is_ok());
    }

    #[test]
    fn a_valid_file_validates_as_load_reads_it() {
        let c = check(OPERATIONS_EXAMPLE).unwrap();
        assert_eq!((c.listen.as_slice(), c.listen_explicit), (["127.0.0.1:17688".parse().unwrap()].as_slice(), true));
        assert_eq!(c.admin, "127.0.0.1:17788".parse().unwrap());
        assert_eq!(c.data_dir, Path::new("/tmp/ops/cfg/data"));
        assert_eq!((c.activation_interval, c.renewal_interval), (Some(60), Some(1440)));
        assert!(!c.dns.publish);
        // `load --config` of the same file, with no flag, gives the same configuration.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kms-host.toml");
        std::fs::write(&path, OPERATIONS_EXAMPLE).unwrap();
        let args = ["kms-host", "--config", path.to_str().unwrap()].map(std::ffi::OsString::from);
        let l = load(args).map_err(|e| format!("{e:?}")).unwrap();
        let summary = |c: &HostConfig| {
            format!(
                "{:?}",
                (
                    &c.listen,
                    c.admin,
                    &c.data_dir,
                    c.activation_interval,
                    c.renewal_interval,
                    c.dns.publish,
                    c.max_connections,
                    c.time_scale
                )
            )
        };
        assert_eq!(summary(&c), summary(&l));
    }

    #[test]
    fn every_key_but_the_file_names_is_accepted() {
        // Also a seed of the host_config fuzz target (fuzz/corpus/host_config/).
        let c = check(EVERY_KEY).map_err(|e| e.to_string()).unwrap();
        assert_eq!(c.host_key_groups, ["kms-b", "office-2010"]);
        assert_eq!((c.keep_count, c.log_format, c.registry_sync), (true, LogFormat::Json, kmslab_store::Synchronous::Normal));
        assert_eq!(c.time_origin.map(|t| t.to_string()).as_deref(), Some("2026-01-01T07:30:00.250Z"));
        assert!(c.dns.active() && c.dns.unpublish_on_exit && c.dns.tsig.is_some());
        assert_eq!(c.dns.zones.len(), 2);
    }

    /// Found by the `host_config` fuzz target: hickory's refusal of a DNS name quotes the
    /// offending character raw, so `dns_zone = ["a\rb"]` (a carriage return) made a
    /// two-line refusal that overwrote its own beginning on a terminal.
    #[test]
    fn refusals_are_one_line_whatever_the_value_holds() {
        for text in [
            "dns_zone = [\"lab\\rtest\"]\n",
            "dns_server = \"127.0.0.1:53\"\ndns_hostname = \"kms1.lab\\u001b[2Jtest\"\n",
            "tsig_key = \"ddns\\rkey:hmac-sha256:c2VjcmV0\"\n",
            "\"a\\rb\" = 1\n",
        ] {
            let e = check(text).unwrap_err();
            assert!(!e.0.chars().any(char::is_control), "{text:?}: {:?}", e.0);
        }
        let e = check("dns_zone = [\"lab\\rtest\"]\n").unwrap_err();
        assert!(e.0.starts_with("invalid key `dns_zone` in the config file \"lab\\rtest\": ") && e.0.ends_with("\\r"), "{e}");
        // Through `load` too.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(&path, "tsig_key = \"ddns\\rkey:hmac-sha256:c2VjcmV0\"\n").unwrap();
        let args = ["kms-host", "--config", path.to_str().unwrap()].map(std::ffi::OsString::from);
        match load(args) {
            Err(LoadError::Config(e)) => assert!(e.0.contains("key `tsig_key`") && !e.0.chars().any(char::is_control), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    /// Found by running the `host_config` fuzz target on edge values: these files were
    /// accepted, then the clock overflowed (`now`) or panicked (`real_duration`, which the
    /// DNS republish calls), or the origin printed as a time no longer accepted.
    #[test]
    fn accepted_time_settings_give_a_working_clock() {
        for text in [
            "time_scale = 10000000\ntime_origin = \"1970-01-02T00:00:00Z\"\n",
            "time_scale = 10000000\ntime_origin = \"9999-12-31T23:59:59.999Z\"\n",
            "time_scale = 1e-300\n",
            "time_scale = 5e-324\n",
        ] {
            let c = check(text).unwrap();
            let clock = c.clock();
            let now = clock.now();
            assert!(Timestamp::parse_rfc3339(&now.to_string()).is_ok(), "{text}: {now}");
            let _ = clock.real_duration(crate::publish::REPUBLISH_MS);
            let _ = clock.deadline(now.plus_ms(crate::publish::REPUBLISH_MS));
        }
        for text in ["time_origin = \"0000-01-01T00:00:00+01:00\"\n", "time_origin = \"9999-12-31T23:59:59.999-01:00\"\n"] {
            let e = check(text).unwrap_err();
            assert!(e.0.starts_with("invalid key `time_origin`") && e.0.contains("outside years 0000..9999"), "{e}");
        }
    }

    /// Found by the `host_config` fuzz target: `dns_hostname = "u.B. ."` was kept as
    /// "u.B. " (trimmed, then its final dots dropped), which validating again turned into
    /// "u.B": what the host showed was not the name it published.
    #[test]
    fn a_dns_hostname_is_kept_as_validated() {
        for text in ["dns_hostname = \"u.B. .\"\n", "dns_server = \"127.0.0.1:53\"\ndns_hostname = \"u.B. .\"\n"] {
            assert_eq!(check(text).unwrap().dns.hostname.as_deref(), Some("u.B"), "{text}");
        }
    }

    #[test]
    fn validate_file_names_bad_values_and_reads_no_file() {
        let e = check("renewal_interval = 99999\n").unwrap_err();
        assert_eq!(e.0, "invalid key `renewal_interval` in the config file \"99999\": must be between 15 and 43200 minutes");
        // Keys naming another file are refused, not read (/etc/hostname exists but is no
        // catalog, key or TSIG key file: reading it would give another error).
        for key in ["catalog", "psk", "tsig_key_file"] {
            let e = check(&format!("{key} = \"/etc/hostname\"\n")).unwrap_err();
            assert!(e.0.contains(&format!("key `{key}`")) && e.0.contains("not read"), "{e}");
        }
        // No system host name to complete the DNS host name with.
        let e = check("dns_server = \"127.0.0.1:53\"\ndns_zone = [\"lab.test\"]\n").unwrap_err();
        assert!(e.0.contains("--dns-hostname"), "{e}");
        let c = check("dns_server = \"127.0.0.1:53\"\ndns_zone = [\"lab.test\"]\ndns_hostname = \"kms1.lab.test\"\n").unwrap();
        assert!(c.dns.active());
    }
}
