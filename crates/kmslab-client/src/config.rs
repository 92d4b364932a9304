//! kms-client configuration: flags, `KMSLAB_*` environment variables and a TOML file,
//! merged (flags > env > file) and validated as a whole before anything is bound.
//!
//! As kms-host's: each setting has one typed value (`Parsed`, `TimeScale`, ... of
//! kmslab-runtime's `config`, or [`Domain`], [`MachineName`], [`DnsServer`]) that parses
//! the flag, the variable and the file key alike, so a value bad in itself is refused by
//! clap (naming the flag, exit 2) or by the file parser (naming the line and the key); what
//! needs the catalog or the disk (product, key, token, `--psk`, state directory) is checked
//! here, each refusal a [`ConfigError`] naming the flag.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kmslab_core::Timestamp;
use kmslab_core::catalog::{Catalog, Product};
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::hresult::HResult;
use kmslab_core::wire::MAX_MACHINE_NAME_CHARS;
use kmslab_runtime::cidr::Cidr;
use kmslab_runtime::config::{Addr, Origin, Parsed, TimeScale};
use kmslab_runtime::logging::LogFormat;
use serde::Deserialize;

/// Default admin (control API) address.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8689";

/// Command-line flags; each also reads a `KMSLAB_*` variable (clap gives flags priority).
#[derive(Debug, Default, Parser)]
#[command(name = "kms-client", version = kmslab_runtime::VERSION, about = "kmslab KMS client daemon: one simulated volume-licensed machine")]
pub struct Args {
    /// TOML configuration file (keys as the flags, with `_` for `-`).
    #[arg(long, env = "KMSLAB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Product to install, e.g. win7-enterprise, server2008r2-standard.
    #[arg(long, env = "KMSLAB_PRODUCT", value_name = "NAME")]
    pub product: Option<String>,
    /// Volume setup key (GVLK) to install instead of --product.
    #[arg(long, env = "KMSLAB_GVLK", value_name = "KEY")]
    pub gvlk: Option<String>,
    /// Directory keeping CMID, key, license state and settings across restarts.
    #[arg(long, env = "KMSLAB_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Manual KMS host (like `slmgr /skms`): no discovery.
    #[arg(long, env = "KMSLAB_KMS", value_name = "HOST[:PORT]")]
    pub kms: Option<Parsed<HostAddr>>,
    /// SRV lookup domain (like `slmgr /skms-domain`).
    #[arg(long, env = "KMSLAB_DOMAIN", value_name = "FQDN")]
    pub domain: Option<Parsed<Domain>>,
    /// DNS server to ask, IP:PORT or NAME:PORT (resolved on first use and after a failure) [system resolver].
    #[arg(long, env = "KMSLAB_DNS_SERVER", value_name = "IP:PORT|NAME:PORT")]
    pub dns_server: Option<Parsed<DnsServer>>,
    /// Turn KMS host caching off (like `slmgr /ckhc`).
    #[arg(long, env = "KMSLAB_NO_HOST_CACHING")]
    pub no_host_caching: bool,
    /// Machine name sent in requests [the system host name].
    #[arg(long, env = "KMSLAB_MACHINE_NAME", value_name = "NAME")]
    pub machine_name: Option<Parsed<MachineName>>,
    /// Set the VM flag in requests.
    #[arg(long, env = "KMSLAB_VM")]
    pub vm: bool,
    /// Control API address, the slmgr target [127.0.0.1:8689].
    #[arg(long, env = "KMSLAB_ADMIN", value_name = "ADDR")]
    pub admin: Option<Parsed<Addr>>,
    /// Bearer token allowing sources outside --admin-local-network to use the control API
    /// (slmgr sends it with --admin-token or KMSLAB_ADMIN_TOKEN).
    #[arg(long, env = "KMSLAB_ADMIN_TOKEN", value_name = "TOKEN", hide_env_values = true, conflicts_with = "admin_token_file")]
    pub admin_token: Option<String>,
    /// File holding the --admin-token on one line (keeps it out of `ps` and the environment).
    #[arg(long, env = "KMSLAB_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Sources allowed everything on the control API without the token (repeatable or
    /// comma separated) [127.0.0.0/8,::1/128].
    #[arg(long, env = "KMSLAB_ADMIN_LOCAL_NETWORK", value_name = "CIDR", value_delimiter = ',')]
    pub admin_local_network: Vec<Parsed<Cidr>>,
    /// Sources allowed to read the control API (status, events) without the token
    /// (repeatable or comma separated) [none].
    #[arg(long, env = "KMSLAB_ADMIN_READ_NETWORK", value_name = "CIDR", value_delimiter = ',')]
    pub admin_read_network: Vec<Parsed<Cidr>>,
    /// A name the control API may be reached by, accepted in the `Host` header besides IP
    /// addresses and localhost (repeatable or comma separated; DNS rebinding defence).
    #[arg(long, env = "KMSLAB_ADMIN_HOST", value_name = "NAME", value_delimiter = ',')]
    pub admin_host: Vec<Parsed<Domain>>,
    /// Simulated time runs this many times faster than real time [1].
    #[arg(long, env = "KMSLAB_TIME_SCALE", value_name = "F")]
    pub time_scale: Option<TimeScale>,
    /// Simulated time origin (RFC 3339) [process start].
    #[arg(long, env = "KMSLAB_TIME_ORIGIN", value_name = "T")]
    pub time_origin: Option<Parsed<Origin>>,
    /// Log format: text or json [text].
    #[arg(long, env = "KMSLAB_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<Parsed<LogFormat>>,
    /// Extra product catalog (TOML) added to the built-in one.
    #[arg(long, env = "KMSLAB_CATALOG", value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Pre-shared key file: requests carry an HMAC-SHA256 made with it and answers
    /// without a valid one are refused, as by a host with the same --psk [off].
    #[arg(long, env = "KMSLAB_PSK", value_name = "FILE")]
    pub psk: Option<PathBuf>,
    /// The lab's activation service for MAK activation (`kmslab activation-service`).
    #[arg(long, env = "KMSLAB_ACTIVATION_SERVICE", value_name = "HOST:PORT")]
    pub activation_service: Option<Parsed<HostAddr>>,
    /// An OEM machine whose ACPI_SLIC table lacks a valid Windows marker: KMS activation
    /// of Windows fails with 0xC004F035; a MAK activates it.
    #[arg(long, env = "KMSLAB_SLIC_WITHOUT_MARKER")]
    pub slic_without_marker: bool,
}

/// The `--config` file; every key optional, unknown keys refused. Each key has its flag's
/// type, so a value bad in itself is refused by the file parser naming the line and the key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    product: Option<String>,
    gvlk: Option<String>,
    state_dir: Option<PathBuf>,
    kms: Option<Parsed<HostAddr>>,
    domain: Option<Parsed<Domain>>,
    dns_server: Option<Parsed<DnsServer>>,
    host_caching: Option<bool>,
    machine_name: Option<Parsed<MachineName>>,
    vm: Option<bool>,
    admin: Option<Parsed<Addr>>,
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
    admin_local_network: Option<Vec<Parsed<Cidr>>>,
    admin_read_network: Option<Vec<Parsed<Cidr>>>,
    admin_host: Option<Vec<Parsed<Domain>>>,
    time_scale: Option<TimeScale>,
    time_origin: Option<Parsed<Origin>>,
    log_format: Option<Parsed<LogFormat>>,
    catalog: Option<PathBuf>,
    psk: Option<PathBuf>,
    activation_service: Option<Parsed<HostAddr>>,
    slic_without_marker: Option<bool>,
}

/// An SRV lookup domain or a `--admin-host` name ([`validate_domain`]): lower case, without
/// a final dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain(pub String);

impl FromStr for Domain {
    type Err = String;

    fn from_str(v: &str) -> Result<Self, String> {
        validate_domain(v).map(Domain)
    }
}

/// A machine name ([`validate_machine_name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineName(pub String);

impl FromStr for MachineName {
    type Err = String;

    fn from_str(v: &str) -> Result<Self, String> {
        validate_machine_name(v).map(MachineName)
    }
}

/// `--dns-server`: `IP:PORT` or `NAME:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsServer(pub kmslab_dns::DnsServerChoice);

impl FromStr for DnsServer {
    type Err = String;

    fn from_str(v: &str) -> Result<Self, String> {
        kmslab_dns::DnsServerChoice::parse_server(v).map(DnsServer)
    }
}

/// Network timeouts of the client (real time).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect to a KMS host.
    pub connect: Duration,
    /// Waiting for the host's answer once connected.
    pub response: Duration,
    /// One DNS lookup.
    pub dns: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(2), response: Duration::from_secs(5), dns: Duration::from_secs(3) }
    }
}

/// A validated configuration. Settings given as `Some` override what the state directory
/// remembers; `None` keeps it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The catalog (built in plus `--catalog`).
    pub catalog: Arc<Catalog>,
    /// The product to install (from `--product` or `--gvlk`).
    pub product: Option<Arc<Product>>,
    /// Where the state is kept; `None` keeps it in memory only.
    pub state_dir: Option<PathBuf>,
    /// Manual host.
    pub kms: Option<HostAddr>,
    /// SRV lookup domain.
    pub domain: Option<String>,
    /// DNS server; `None` is the system resolver.
    pub dns_server: Option<kmslab_dns::DnsServerChoice>,
    /// Host caching, when given.
    pub host_caching: Option<bool>,
    /// Machine name, when given.
    pub machine_name: Option<String>,
    /// VM flag (only ever turned on by configuration).
    pub vm: bool,
    /// Control API address.
    pub admin: SocketAddr,
    /// Bearer token of the control API (only its digest is kept).
    pub admin_token: Option<kmslab_admin::AdminToken>,
    /// Sources the control API treats as local (`--admin-local-network`, default loopback).
    pub admin_local_networks: Vec<kmslab_runtime::cidr::Cidr>,
    /// Non-local sources that may read the control API (`--admin-read-network`).
    pub admin_read_networks: Vec<kmslab_runtime::cidr::Cidr>,
    /// Names accepted in the control API's `Host` header (`--admin-host`), lower case.
    pub admin_hosts: Vec<String>,
    /// Simulated time scale.
    pub time_scale: f64,
    /// Simulated time origin.
    pub time_origin: Option<Timestamp>,
    /// Log format.
    pub log_format: LogFormat,
    /// Network timeouts.
    pub timeouts: Timeouts,
    /// Pre-shared key of authenticated framing (`--psk`).
    pub psk: Option<kmslab_core::wire::FrameKey>,
    /// The activation service of MAK activation (`--activation-service`).
    pub activation_service: Option<HostAddr>,
    /// An OEM machine without a valid Windows marker (`--slic-without-marker`).
    pub slic_without_marker: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            catalog: Arc::new(Catalog::builtin()),
            product: None,
            state_dir: None,
            kms: None,
            domain: None,
            dns_server: None,
            host_caching: None,
            machine_name: None,
            vm: false,
            admin: DEFAULT_ADMIN.parse().expect("valid default"),
            admin_token: None,
            admin_local_networks: kmslab_runtime::cidr::Cidr::loopback(),
            admin_read_networks: Vec::new(),
            admin_hosts: Vec::new(),
            time_scale: 1.0,
            time_origin: None,
            log_format: LogFormat::Text,
            timeouts: Timeouts::default(),
            psk: None,
            activation_service: None,
            slic_without_marker: false,
        }
    }
}

/// A bad setting: names the flag (or file key) and says why (`invalid --gvlk: ...`), the
/// shape kms-host refuses a setting with too. Exit code 2.
pub use kmslab_runtime::config::ConfigError;

fn bad(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(key, reason.into())
}

impl ClientConfig {
    /// Merges flags/env (already in `args`) with the `--config` file and validates it all.
    pub fn from_args(args: Args) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut catalog = Catalog::builtin();
        if let Some(path) = args.catalog.or(file.catalog) {
            let text = std::fs::read_to_string(&path).map_err(|e| bad("--catalog", format!("cannot read {}: {e}", path.display())))?;
            catalog.extend_from_toml(&text).map_err(|e| bad("--catalog", e.to_string()))?;
        }
        let product_name = args.product.or(file.product);
        let gvlk = args.gvlk.or(file.gvlk);
        let product = match (product_name, gvlk) {
            (Some(_), Some(_)) => return Err(bad("--product", "give either --product or --gvlk, not both")),
            (Some(name), None) => {
                Some(catalog.product_by_name(&name).cloned().ok_or_else(|| bad("--product", catalog.unknown_product(&name)))?)
            }
            (None, Some(key)) => Some(catalog.product_by_gvlk(&key).cloned().ok_or_else(|| {
                let code = HResult::INVALID_PRODUCT_KEY;
                let meaning = code.info().map_or("invalid product key", |i| i.meaning);
                bad("--gvlk", format!("{code} {meaning}"))
            })?),
            (None, None) => None,
        };
        let kms = args.kms.or(file.kms).map(|k| k.0);
        let domain = args.domain.or(file.domain).map(|d| d.0.0);
        let dns_server = args.dns_server.or(file.dns_server).map(|d| d.0.0);
        let host_caching = if args.no_host_caching { Some(false) } else { file.host_caching };
        let machine_name = args.machine_name.or(file.machine_name).map(|n| n.0.0);
        let vm = args.vm || file.vm.unwrap_or(false);
        let admin = match args.admin.or(file.admin) {
            Some(a) => a.0.0,
            None => DEFAULT_ADMIN.parse().expect("valid default"),
        };
        let admin_token = match (args.admin_token.or(file.admin_token), args.admin_token_file.or(file.admin_token_file)) {
            (Some(_), Some(_)) => return Err(bad("--admin-token", "give either --admin-token or --admin-token-file, not both")),
            // The value is never quoted: it is a secret.
            (Some(t), None) => Some(kmslab_admin::AdminToken::new(&t).map_err(|e| bad("--admin-token", e.to_string()))?),
            (None, Some(path)) => Some(kmslab_admin::AdminToken::from_file(&path).map_err(|e| bad("--admin-token-file", e.to_string()))?),
            (None, None) => None,
        };
        // A list comes whole from one place (flags and env, else the file).
        let list = |cli: Vec<Parsed<Cidr>>, file: Option<Vec<Parsed<Cidr>>>| {
            let list = if cli.is_empty() { file } else { Some(cli) };
            list.map(|l| l.into_iter().map(|c| c.0).collect::<Vec<_>>())
        };
        let admin_local_networks = list(args.admin_local_network, file.admin_local_network).unwrap_or_else(Cidr::loopback);
        let admin_read_networks = list(args.admin_read_network, file.admin_read_network).unwrap_or_default();
        let host_list = if args.admin_host.is_empty() { file.admin_host.unwrap_or_default() } else { args.admin_host };
        let admin_hosts = host_list.into_iter().map(|h| h.0.0).collect();
        let time_scale = args.time_scale.or(file.time_scale).map_or(1.0, |s| s.0);
        let time_origin = args.time_origin.or(file.time_origin).map(|o| o.0.0);
        let log_format = args.log_format.or(file.log_format).map_or(LogFormat::Text, |f| f.0);
        let state_dir = args.state_dir.or(file.state_dir);
        if let Some(dir) = &state_dir
            && dir.exists()
            && !dir.is_dir()
        {
            return Err(bad("--state-dir", format!("{} exists and is not a directory", dir.display())));
        }
        let psk = match args.psk.or(file.psk) {
            Some(path) => Some(kmslab_runtime::psk::load(&path).map_err(|e| bad("--psk", e))?),
            None => None,
        };
        let activation_service = args.activation_service.or(file.activation_service).map(|s| s.0);
        let slic_without_marker = args.slic_without_marker || file.slic_without_marker.unwrap_or(false);
        Ok(ClientConfig {
            catalog: Arc::new(catalog),
            product,
            state_dir,
            kms,
            domain,
            dns_server,
            host_caching,
            machine_name,
            vm,
            admin,
            admin_token,
            admin_local_networks,
            admin_read_networks,
            admin_hosts,
            time_scale,
            time_origin,
            log_format,
            timeouts: Timeouts::default(),
            psk,
            activation_service,
            slic_without_marker,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| bad("--config", format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        let msg = kmslab_core::toml_error::describe(&text, &e);
        bad("--config", format!("{}: {msg}", path.display()))
    })
}

/// Checks an SRV lookup domain (`/skms-domain`, `--domain`); returns it without a final dot.
pub fn validate_domain(domain: &str) -> Result<String, String> {
    let d = domain.trim().trim_end_matches('.');
    if d.is_empty() || d.len() > 253 {
        return Err(format!("{domain:?} is not a DNS domain name"));
    }
    let label_ok = |l: &str| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !d.split('.').all(label_ok) {
        return Err(format!("{domain:?} is not a DNS domain name"));
    }
    Ok(d.to_ascii_lowercase())
}

/// Checks a machine name (at most 63 characters, printable).
pub fn validate_machine_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.chars().count() > MAX_MACHINE_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(format!("{name:?} must be 1 to {MAX_MACHINE_NAME_CHARS} printable characters"));
    }
    Ok(name.to_owned())
}

/// The machine name used when none is configured: the system host name, cut to 63 chars.
pub fn default_machine_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let name: String = name.chars().filter(|c| !c.is_control()).take(MAX_MACHINE_NAME_CHARS).collect();
    if name.is_empty() { "kms-client".to_owned() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<ClientConfig, ConfigError> {
        let mut argv = vec!["kms-client"];
        argv.extend_from_slice(list);
        ClientConfig::from_args(Args::try_parse_from(argv).unwrap())
    }

    /// clap's one-line refusal of `list`.
    fn refused_by_clap(list: &[&str]) -> String {
        let mut argv = vec!["kms-client"];
        argv.extend_from_slice(list);
        let e = Args::try_parse_from(argv).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{e}");
        kmslab_runtime::usage::one_line(&e.to_string())
    }

    #[test]
    fn bad_values_name_their_flag() {
        let long_name = "x".repeat(64);
        // A value bad in itself: clap refuses it, naming the flag.
        for (list, key) in [
            (&["--kms", "a b"][..], "--kms"),
            (&["--dns-server", "localhost"], "--dns-server"),
            (&["--admin", "nowhere"], "--admin"),
            (&["--time-scale", "0"], "--time-scale"),
            (&["--time-scale", "fast"], "--time-scale"),
            (&["--time-origin", "yesterday"], "--time-origin"),
            (&["--log-format", "xml"], "--log-format"),
            (&["--domain", "bad domain"], "--domain"),
            (&["--machine-name", long_name.as_str()], "--machine-name"),
            (&["--admin-local-network", "10.0.0.1/33"], "--admin-local-network"),
            (&["--admin-read-network", "nowhere"], "--admin-read-network"),
            (&["--admin-host", "bad name"], "--admin-host"),
            (&["--activation-service", "a b"], "--activation-service"),
        ] {
            let e = refused_by_clap(list);
            assert!(e.contains(&format!("'{key} <")), "{list:?}: {e}");
            assert!(e.contains(&format!("'{}'", list[1])), "{list:?}: the value is quoted: {e}");
        }
        // The simulated clock's range, in clap's words.
        let e = refused_by_clap(&["--time-scale", "20000000"]);
        assert!(e.contains("must be a finite number > 0 and <= 10000000"), "{e}");
        // What needs the catalog or the disk: a ConfigError naming the flag.
        let check = |list: &[&str], key: &str| {
            let e = args(list).unwrap_err();
            assert_eq!(e.key, key, "{e}");
        };
        check(&["--gvlk", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"], "--gvlk");
        check(&["--product", "win95"], "--product");
        check(&["--psk", "/nonexistent/lab.psk"], "--psk");
        check(&["--admin-token", "two words"], "--admin-token");
        check(&["--admin-token-file", "/nonexistent/token"], "--admin-token-file");
        let c = args(&["--admin-token", "s3cret", "--admin-local-network", "10.0.0.0/8,::1", "--admin-host", "Client1.Lab.Test"]).unwrap();
        assert!(c.admin_token.as_ref().is_some_and(|t| t.matches("s3cret")));
        assert!(!format!("{c:?}").contains("s3cret"), "the token is not in the config's Debug");
        assert_eq!(c.admin_local_networks.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.0.0.0/8", "::1/128"]);
        assert_eq!(c.admin_hosts, ["client1.lab.test"]);
        let e = args(&["--gvlk", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"]).unwrap_err();
        assert!(e.to_string().contains("0xC004F050"), "{e}");
        let c = args(&["--kms", "kms1.lab.test:1700", "--time-scale", "60", "--log-format", "json", "--admin", " 127.0.0.1:0 "]).unwrap();
        assert_eq!(c.kms.unwrap().to_string(), "kms1.lab.test:1700");
        assert_eq!((c.time_scale, c.log_format, c.admin), (60.0, LogFormat::Json, "127.0.0.1:0".parse().unwrap()));
    }

    #[test]
    fn flags_win_over_the_file_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "product = \"server2008r2-standard\"\nkms = \"kms9:1700\"\nhost_caching = false\n").unwrap();
        let p = path.to_str().unwrap();
        let c = args(&["--config", p, "--product", "win7-enterprise"]).unwrap();
        assert_eq!(c.product.unwrap().name, "win7-enterprise");
        assert_eq!(c.kms.unwrap().to_string(), "kms9:1700");
        assert_eq!(c.host_caching, Some(false));
        std::fs::write(&path, "prodcut = \"x\"\n").unwrap();
        let e = args(&["--config", p]).unwrap_err();
        assert_eq!(e.key, "--config");
        assert!(e.reason.contains("prodcut"), "{e}");
        // A wrong type names the key and where it is.
        std::fs::write(&path, "product = \"win7-enterprise\"\nvm = \"yes\"\n").unwrap();
        let e = args(&["--config", p]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("invalid --config: {p}: line 2, column 6, key vm: invalid type: string \"yes\", expected a boolean")
        );
        // A key's value is parsed as its flag's: refused by the file parser, naming the key.
        for (text, key, why) in [
            ("kms = \"a b\"\n", "key kms", "\"a b\""),
            ("kms = 1688\n", "key kms", "expected a string"),
            ("time_scale = 0\n", "key time_scale", "must be a finite number > 0"),
            ("admin = \"nowhere\"\n", "key admin", "expected IP:PORT"),
            ("admin_read_network = [\"10.0.0.0/8\", \"x\"]\n", "key admin_read_network", "expected an IP network"),
            ("log_format = \"xml\"\n", "key log_format", "\"xml\""),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = args(&["--config", p]).unwrap_err();
            assert_eq!(e.key, "--config", "{text}: {e}");
            assert!(e.reason.contains(key) && e.reason.contains(why), "{text}: {e}");
        }
        std::fs::write(&path, "time_scale = 3600\nlog_format = \"json\"\nadmin_host = [\"Kms1.Lab.Test.\"]\n").unwrap();
        let c = args(&["--config", p]).unwrap();
        assert_eq!((c.time_scale, c.log_format, c.admin_hosts), (3600.0, LogFormat::Json, vec!["kms1.lab.test".to_owned()]));
    }
}
