//! `kmslab dns`: the embedded lab DNS server (`kmslab_dns::LabDnsServer`, on hickory-server)
//! on its own, for compose fleets and hand-run labs.
//!
//! Key handling: `--tsig-key` (or `--tsig-key-file`) wins. Otherwise, with `--data-dir`, the key saved there by an
//! earlier run (file `tsig-key`, one `NAME:ALG:BASE64` line, mode 0600) is reused, so that
//! a restarted server keeps accepting the hosts already configured with it; the first run
//! generates it and saves it. Without `--data-dir` a fresh key is generated and the zone
//! lives in a temporary directory removed at exit. Whenever the key did not come from
//! `--tsig-key`, it is printed as `tsig-key NAME:ALG:BASE64`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use kmslab_dns::{LabDnsConfig, LabDnsServer, ServeError, TsigKey};

/// Name of a key `kmslab dns` generates.
const GENERATED_KEY_NAME: &str = "kmslab-ddns";
/// File in `--data-dir` keeping a generated key.
const KEY_FILE: &str = "tsig-key";

/// Flags of `kmslab dns`.
#[derive(Debug, Args)]
pub struct DnsArgs {
    /// Zone to serve, e.g. lab.test.
    #[arg(long, value_name = "Z")]
    pub zone: String,
    /// UDP and TCP address (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5353")]
    pub listen: SocketAddr,
    /// The only key accepted for updates [reused from --data-dir, else generated].
    #[arg(long, value_name = "NAME:ALG:BASE64", conflicts_with = "tsig_key_file")]
    pub tsig_key: Option<TsigKey>,
    /// The same, read from a file (a BIND key file or one NAME:ALG:BASE64 line; e.g. a
    /// Swarm or Kubernetes secret under /run/secrets).
    #[arg(long, value_name = "FILE")]
    pub tsig_key_file: Option<PathBuf>,
    /// Zone file, update journal and generated key; records survive a restart [temporary].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(args: DnsArgs) -> anyhow::Result<ExitCode> {
    let (data_dir, temporary) = match &args.data_dir {
        Some(dir) => (dir.clone(), false),
        None => (std::env::temp_dir().join(format!("kmslab-dns-{}", std::process::id())), true),
    };
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create --data-dir {}", data_dir.display()))?;
    let given = match (&args.tsig_key, &args.tsig_key_file) {
        (Some(key), _) => Some(key.clone()),
        (None, Some(path)) => match TsigKey::from_file(path) {
            Ok(key) => Some(key),
            Err(e) => {
                eprintln!("kmslab: invalid --tsig-key-file {}: {e}", path.display());
                return Ok(ExitCode::from(2));
            }
        },
        (None, None) => None,
    };
    let (key, print_key) = match given {
        Some(key) => (key, false),
        None => (stored_or_new_key(&data_dir, !temporary)?, true),
    };
    let config = LabDnsConfig { zone: args.zone.clone(), listen: args.listen, data_dir: data_dir.clone(), tsig: key.clone() };
    let server = match LabDnsServer::start(config).await {
        Ok(server) => server,
        Err(e @ ServeError::InvalidZone { .. }) => {
            eprintln!("kmslab: invalid --zone: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e).context("cannot start the DNS server"),
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on dns {}", server.local_addr())?;
        if print_key {
            writeln!(out, "tsig-key {key}")?;
        }
        out.flush()?;
    }
    kmslab_runtime::signal::shutdown_requested().await;
    let result = server.shutdown().await;
    if temporary {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    result.context("DNS server shutdown")?;
    Ok(ExitCode::SUCCESS)
}

/// The key saved in `dir` by an earlier run, or a new one (saved when `save`).
fn stored_or_new_key(dir: &Path, save: bool) -> anyhow::Result<TsigKey> {
    let path = dir.join(KEY_FILE);
    if path.exists() {
        return TsigKey::from_file(&path).with_context(|| format!("cannot reuse the key in {}", path.display()));
    }
    let key = TsigKey::generate(GENERATED_KEY_NAME)?;
    if save {
        std::fs::write(&path, format!("{key}\n")).with_context(|| format!("cannot save the key to {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(key)
}
