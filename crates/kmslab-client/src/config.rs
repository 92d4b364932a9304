//! kms-client configuration: flags, `KMSLAB_*` environment variables and a TOML file,
//! merged (flags > env > file) and validated as a whole before anything is bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kmslab_core::Timestamp;
use kmslab_core::catalog::{Catalog, Product};
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::hresult::HResult;
use kmslab_core::wire::MAX_MACHINE_NAME_CHARS;
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
    pub kms: Option<String>,
    /// SRV lookup domain (like `slmgr /skms-domain`).
    #[arg(long, env = "KMSLAB_DOMAIN", value_name = "FQDN")]
    pub domain: Option<String>,
    /// DNS server to ask, IP:PORT or NAME:PORT (resolved on first use and after a failure) [system resolver].
    #[arg(long, env = "KMSLAB_DNS_SERVER", value_name = "IP:PORT|NAME:PORT")]
    pub dns_server: Option<String>,
    /// Turn KMS host caching off (like `slmgr /ckhc`).
    #[arg(long, env = "KMSLAB_NO_HOST_CACHING")]
    pub no_host_caching: bool,
    /// Machine name sent in requests [the system host name].
    #[arg(long, env = "KMSLAB_MACHINE_NAME", value_name = "NAME")]
    pub machine_name: Option<String>,
    /// Set the VM flag in requests.
    #[arg(long, env = "KMSLAB_VM")]
    pub vm: bool,
    /// Control API address, the slmgr target [127.0.0.1:8689].
    #[arg(long, env = "KMSLAB_ADMIN", value_name = "ADDR")]
    pub admin: Option<String>,
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
    pub admin_local_network: Vec<String>,
    /// Sources allowed to read the control API (status, events) without the token
    /// (repeatable or comma separated) [none].
    #[arg(long, env = "KMSLAB_ADMIN_READ_NETWORK", value_name = "CIDR", value_delimiter = ',')]
    pub admin_read_network: Vec<String>,
    /// A name the control API may be reached by, accepted in the `Host` header besides IP
    /// addresses and localhost (repeatable or comma separated; DNS rebinding defence).
    #[arg(long, env = "KMSLAB_ADMIN_HOST", value_name = "NAME", value_delimiter = ',')]
    pub admin_host: Vec<String>,
    /// Simulated time runs this many times faster than real time [1].
    #[arg(long, env = "KMSLAB_TIME_SCALE", value_name = "F")]
    pub time_scale: Option<String>,
    /// Simulated time origin (RFC 3339) [process start].
    #[arg(long, env = "KMSLAB_TIME_ORIGIN", value_name = "T")]
    pub time_origin: Option<String>,
    /// Log format: text or json [text].
    #[arg(long, env = "KMSLAB_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Extra product catalog (TOML) added to the built-in one.
    #[arg(long, env = "KMSLAB_CATALOG", value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Pre-shared key file: requests carry an HMAC-SHA256 made with it and answers
    /// without a valid one are refused, as by a host with the same --psk [off].
    #[arg(long, env = "KMSLAB_PSK", value_name = "FILE")]
    pub psk: Option<PathBuf>,
    /// The lab's activation service for MAK activation (`kmslab activation-service`).
    #[arg(long, env = "KMSLAB_ACTIVATION_SERVICE", value_name = "HOST:PORT")]
    pub activation_service: Option<String>,
    /// An OEM machine whose ACPI_SLIC table lacks a valid Windows marker: KMS activation
    /// of Windows fails with 0xC004F035; a MAK activates it.
    #[arg(long, env = "KMSLAB_SLIC_WITHOUT_MARKER")]
    pub slic_without_marker: bool,
}

/// The `--config` file; every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    product: Option<String>,
    gvlk: Option<String>,
    state_dir: Option<PathBuf>,
    kms: Option<String>,
    domain: Option<String>,
    dns_server: Option<String>,
    host_caching: Option<bool>,
    machine_name: Option<String>,
    vm: Option<bool>,
    admin: Option<String>,
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
    admin_local_network: Option<Vec<String>>,
    admin_read_network: Option<Vec<String>>,
    admin_host: Option<Vec<String>>,
    time_scale: Option<f64>,
    time_origin: Option<String>,
    log_format: Option<String>,
    catalog: Option<PathBuf>,
    psk: Option<PathBuf>,
    activation_service: Option<String>,
    slic_without_marker: Option<bool>,
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
        let kms = match args.kms.or(file.kms) {
            Some(text) => Some(text.parse::<HostAddr>().map_err(|e| bad("--kms", e.to_string()))?),
            None => None,
        };
        let domain = match args.domain.or(file.domain) {
            Some(d) => Some(validate_domain(&d).map_err(|r| bad("--domain", r))?),
            None => None,
        };
        let dns_server = match args.dns_server.or(file.dns_server) {
            Some(text) => Some(kmslab_dns::DnsServerChoice::parse_server(&text).map_err(|e| bad("--dns-server", e))?),
            None => None,
        };
        let host_caching = if args.no_host_caching { Some(false) } else { file.host_caching };
        let machine_name = match args.machine_name.or(file.machine_name) {
            Some(name) => Some(validate_machine_name(&name).map_err(|r| bad("--machine-name", r))?),
            None => None,
        };
        let vm = args.vm || file.vm.unwrap_or(false);
        let admin_text = args.admin.or(file.admin).unwrap_or_else(|| DEFAULT_ADMIN.to_owned());
        let admin = admin_text.parse::<SocketAddr>().map_err(|_| bad("--admin", format!("{admin_text:?} is not IP:PORT")))?;
        let admin_token = match (args.admin_token.or(file.admin_token), args.admin_token_file.or(file.admin_token_file)) {
            (Some(_), Some(_)) => return Err(bad("--admin-token", "give either --admin-token or --admin-token-file, not both")),
            // The value is never quoted: it is a secret.
            (Some(t), None) => Some(kmslab_admin::AdminToken::new(&t).map_err(|e| bad("--admin-token", e.to_string()))?),
            (None, Some(path)) => Some(kmslab_admin::AdminToken::from_file(&path).map_err(|e| bad("--admin-token-file", e.to_string()))?),
            (None, None) => None,
        };
        let cidrs =
            |key: &str, cli: Vec<String>, file: Option<Vec<String>>| -> Result<Option<Vec<kmslab_runtime::cidr::Cidr>>, ConfigError> {
                // A list comes whole from one place (flags and env, else the file).
                let list = if cli.is_empty() { file } else { Some(cli) };
                list.map(|l| l.iter().map(|v| v.trim().parse().map_err(|e: String| bad(key, format!("{v:?}: {e}")))).collect()).transpose()
            };
        let admin_local_networks = cidrs("--admin-local-network", args.admin_local_network, file.admin_local_network)?
            .unwrap_or_else(kmslab_runtime::cidr::Cidr::loopback);
        let admin_read_networks = cidrs("--admin-read-network", args.admin_read_network, file.admin_read_network)?.unwrap_or_default();
        let host_list = if args.admin_host.is_empty() { file.admin_host.unwrap_or_default() } else { args.admin_host };
        let admin_hosts =
            host_list.iter().map(|h| validate_domain(h).map_err(|r| bad("--admin-host", r))).collect::<Result<Vec<_>, _>>()?;
        let time_scale = match args.time_scale {
            Some(text) => text.parse::<f64>().map_err(|_| bad("--time-scale", format!("{text:?} is not a number")))?,
            None => file.time_scale.unwrap_or(1.0),
        };
        kmslab_runtime::SimClock::new(time_scale, None).map_err(|e| bad("--time-scale", e.to_string()))?;
        let time_origin = match args.time_origin.or(file.time_origin) {
            Some(text) => Some(Timestamp::parse_rfc3339(&text).map_err(|e| bad("--time-origin", e.to_string()))?),
            None => None,
        };
        let log_format = match args.log_format.or(file.log_format) {
            Some(text) => text.parse::<LogFormat>().map_err(|e| bad("--log-format", e))?,
            None => LogFormat::Text,
        };
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
        let activation_service = match args.activation_service.or(file.activation_service) {
            Some(text) => Some(text.parse::<HostAddr>().map_err(|e| bad("--activation-service", e.to_string()))?),
            None => None,
        };
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

    #[test]
    fn bad_values_name_their_flag() {
        let check = |list: &[&str], key: &str| {
            let e = args(list).unwrap_err();
            assert_eq!(e.key, key, "{e}");
        };
        check(&["--gvlk", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"], "--gvlk");
        check(&["--product", "win95"], "--product");
        check(&["--kms", "a b"], "--kms");
        check(&["--dns-server", "localhost"], "--dns-server");
        check(&["--admin", "nowhere"], "--admin");
        check(&["--time-scale", "0"], "--time-scale");
        check(&["--time-origin", "yesterday"], "--time-origin");
        check(&["--log-format", "xml"], "--log-format");
        check(&["--domain", "bad domain"], "--domain");
        check(&["--psk", "/nonexistent/lab.psk"], "--psk");
        check(&["--admin-local-network", "10.0.0.1/8"], "--admin-local-network");
        check(&["--admin-read-network", "nowhere"], "--admin-read-network");
        check(&["--admin-host", "bad name"], "--admin-host");
        check(&["--admin-token", "two words"], "--admin-token");
        check(&["--admin-token-file", "/nonexistent/token"], "--admin-token-file");
        let c = args(&["--admin-token", "s3cret", "--admin-local-network", "10.0.0.0/8,::1", "--admin-host", "Client1.Lab.Test"]).unwrap();
        assert!(c.admin_token.as_ref().is_some_and(|t| t.matches("s3cret")));
        assert!(!format!("{c:?}").contains("s3cret"), "the token is not in the config's Debug");
        assert_eq!(c.admin_local_networks.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.0.0.0/8", "::1/128"]);
        assert_eq!(c.admin_hosts, ["client1.lab.test"]);
        let e = args(&["--gvlk", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"]).unwrap_err();
        assert!(e.to_string().contains("0xC004F050"), "{e}");
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
    }
}
