//! `kmslab activation-service`: the lab's simulated Microsoft activation service (MAK
//! counts, online and phone activation, genuine validation; `kmslab_activation`), its key
//! generator (`--generate-mak`, `--generate-host-key`) and its admin verbs (`count`, `add`, `block`, `unblock`, `confirm`),
//! which talk to the service's admin API (`--admin`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use kmslab_core::catalog::Catalog;
use serde_json::{Value, json};

/// Default admin address of the service.
const DEFAULT_ADMIN: &str = "127.0.0.1:8690";

/// Flags of `kmslab activation-service` (its choices are in the subcommand's long help).
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
#[command(group(clap::ArgGroup::new("generate").multiple(true).args(["generate_mak", "generate_host_key"])))]
pub struct ActivationServiceArgs {
    /// An admin verb instead of running the service.
    #[command(subcommand)]
    pub verb: Option<Verb>,
    /// Address of the activation protocol listener (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1689")]
    pub listen: SocketAddr,
    /// Admin API address (the verbs' --target) [127.0.0.1:8690].
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// Keys file (TOML, `[[mak]]` and `[[host_key]]`); required to run the service.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// Directory of the service's state (activation.sqlite): counts survive restarts
    /// [./kmslab-activation].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Generate a MAK for PRODUCT with COUNT activations (repeatable), print each as
    /// `mak KEY PRODUCT COUNT` and write a keys file (--out), instead of serving.
    #[arg(long, value_name = "PRODUCT=COUNT")]
    pub generate_mak: Vec<String>,
    /// Generate a KMS host key of GROUP (kms-a, kms-b, kms-c, client-vl, office-2010;
    /// repeatable), print each as `host_key KEY GROUP` and write it to the keys file too.
    #[arg(long, value_name = "GROUP")]
    pub generate_host_key: Vec<String>,
    /// Where --generate-mak and --generate-host-key write the keys file [stdout only].
    #[arg(long, value_name = "FILE", requires = "generate")]
    pub out: Option<PathBuf>,
    /// Extra product catalog (TOML) added to the built-in one.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
}

/// Where the verbs find the service.
#[derive(Debug, Args)]
pub struct Target {
    /// The service's admin API address.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_ADMIN)]
    pub target: String,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Admin verbs.
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Remaining activations of one MAK, or of every MAK.
    Count {
        /// The MAK or KMS host key [every MAK].
        key: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Add activations to a MAK (what the Activation Center does on request).
    Add {
        /// The MAK.
        key: String,
        /// Activations to add.
        count: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Block a MAK (activations with it fail with 0xC004C003) or a KMS host key (hosts
    /// holding it turn non-genuine at their next validation).
    Block {
        /// The MAK or KMS host key.
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Unblock a MAK or a KMS host key.
    Unblock {
        /// The MAK or KMS host key.
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Answer a phone activation: the Confirmation ID for an Installation ID (uses one
    /// activation of the key the ID was made with, none for a repeat).
    Confirm {
        /// The Installation ID (slmgr /dti), digits with or without separators.
        installation_id: String,
        #[command(flatten)]
        target: Target,
    },
}

fn catalog(path: Option<&PathBuf>) -> anyhow::Result<Catalog> {
    let mut catalog = Catalog::builtin();
    if let Some(path) = path {
        let text = std::fs::read_to_string(path).with_context(|| format!("--catalog {}", path.display()))?;
        catalog.extend_from_toml(&text).map_err(|e| anyhow::anyhow!("--catalog {}: {e}", path.display()))?;
    }
    Ok(catalog)
}

/// Runs the service, the generator or a verb.
pub async fn run(args: ActivationServiceArgs) -> anyhow::Result<ExitCode> {
    if let Some(verb) = args.verb {
        return verb_run(verb);
    }
    let catalog = catalog(args.catalog.as_ref())?;
    if !args.generate_mak.is_empty() || !args.generate_host_key.is_empty() {
        let mut specs = Vec::new();
        for text in &args.generate_mak {
            match kmslab_activation::MakSpec::parse(text, &catalog) {
                Ok(s) => specs.push(s),
                Err(e) => {
                    eprintln!("kmslab: {e}");
                    return Ok(ExitCode::from(2));
                }
            }
        }
        let mut keys = kmslab_activation::keys::generate(&specs);
        for group in &args.generate_host_key {
            match kmslab_activation::keys::generate_host_key(group, &catalog) {
                Ok(h) => keys.host_keys.push(h),
                Err(e) => {
                    eprintln!("kmslab: {e}");
                    return Ok(ExitCode::from(2));
                }
            }
        }
        if let Some(out) = &args.out {
            std::fs::write(out, keys.to_toml()).with_context(|| format!("cannot write --out {}", out.display()))?;
        }
        let mut stdout = std::io::stdout().lock();
        for m in &keys.maks {
            writeln!(stdout, "mak {} {} {}", m.key, m.products[0], m.activations)?;
        }
        for h in &keys.host_keys {
            writeln!(stdout, "host_key {} {}", h.key, h.group)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(keys) = args.keys else {
        eprintln!("kmslab: activation-service: --keys FILE is required to run the service (or use --generate-mak)");
        return Ok(ExitCode::from(2));
    };
    kmslab_runtime::logging::init(kmslab_runtime::logging::LogFormat::Text, "info");
    let data_dir = args.data_dir.unwrap_or_else(|| PathBuf::from("kmslab-activation"));
    let service = match kmslab_activation::start(&keys, &data_dir, &catalog) {
        Ok(s) => s,
        Err(e @ kmslab_activation::StartError::BadKeys { .. }) => {
            eprintln!("kmslab: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    let admin_addr = args.admin.unwrap_or_else(|| DEFAULT_ADMIN.parse().expect("valid default"));
    let admin = tokio::net::TcpListener::bind(admin_addr).await.with_context(|| format!("cannot listen on --admin {admin_addr}"))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on activation {}", listener.local_addr()?)?;
        writeln!(out, "listening on admin {}", admin.local_addr()?)?;
        out.flush()?;
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        kmslab_runtime::signal::shutdown_requested().await;
        token.cancel();
    });
    kmslab_activation::run(service, listener, Some(admin), shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// One HTTP/1.1 request to the service's admin API (loopback JSON, `Connection: close`;
/// axum answers JSON with a `Content-Length`, never chunked). Returns status and body.
pub(crate) fn http(target: &str, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
    use std::io::Read as _;
    use std::net::ToSocketAddrs as _;
    let addr = target
        .to_socket_addrs()
        .with_context(|| format!("invalid --target {target:?}"))?
        .next()
        .context("--target resolves to no address")?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
        .with_context(|| format!("cannot reach the activation service's admin API at {target} (see --target)"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let payload = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n");
    if body.is_some() {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", payload.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(payload.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("no answer from {target}"))?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("malformed HTTP answer")?;
    let status_line = String::from_utf8_lossy(&raw[..split]).lines().next().unwrap_or_default().to_owned();
    let status =
        status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).with_context(|| format!("bad status line {status_line:?}"))?;
    let text = String::from_utf8_lossy(&raw[split + 4..]).into_owned();
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

fn key_line(k: &Value) -> String {
    if k["kind"] == "host_key" {
        let group = k["products"][0].as_str().unwrap_or("");
        let blocked = if k["blocked"].as_bool() == Some(true) { " blocked" } else { "" };
        return format!("{} host key {group}{blocked}", k["key"].as_str().unwrap_or(""));
    }
    format!(
        "{} remaining {} used {} of {}{}",
        k["key"].as_str().unwrap_or(""),
        k["remaining"],
        k["used"],
        k["granted"].as_u64().unwrap_or(0) + k["added"].as_u64().unwrap_or(0),
        if k["blocked"].as_bool() == Some(true) { " blocked" } else { "" }
    )
}

fn path_key(key: &str) -> String {
    // Keys are letters, digits and dashes; anything else is refused by the service anyway.
    key.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect()
}

fn verb_run(verb: Verb) -> anyhow::Result<ExitCode> {
    let (target, (status, body)) = match &verb {
        Verb::Count { key: None, target } => (target, http(&target.target, "GET", "/api/v1/keys", None)?),
        Verb::Count { key: Some(key), target } => (target, http(&target.target, "GET", &format!("/api/v1/keys/{}", path_key(key)), None)?),
        Verb::Add { key, count, target } => {
            (target, http(&target.target, "POST", &format!("/api/v1/keys/{}/add", path_key(key)), Some(&json!({ "count": count })))?)
        }
        Verb::Block { key, target } => {
            (target, http(&target.target, "POST", &format!("/api/v1/keys/{}/block", path_key(key)), Some(&json!({})))?)
        }
        Verb::Unblock { key, target } => {
            (target, http(&target.target, "POST", &format!("/api/v1/keys/{}/unblock", path_key(key)), Some(&json!({})))?)
        }
        Verb::Confirm { installation_id, target } => {
            (target, http(&target.target, "POST", "/api/v1/confirm", Some(&json!({ "installation_id": installation_id })))?)
        }
    };
    if !(200..300).contains(&status) {
        let message = body.get("error").and_then(Value::as_str).map_or_else(|| body.to_string(), str::to_owned);
        println!("Error: {message}");
        return Ok(ExitCode::from(1));
    }
    if target.json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    match verb {
        Verb::Count { key: None, .. } => {
            for k in body["keys"].as_array().into_iter().flatten() {
                println!("{}", key_line(k));
            }
        }
        Verb::Confirm { .. } => {
            println!("Confirmation ID: {}", body["confirmation_id"].as_str().unwrap_or(""));
            println!("Remaining activations: {}", body["remaining"]);
        }
        _ => println!("{}", key_line(&body)),
    }
    Ok(ExitCode::SUCCESS)
}
