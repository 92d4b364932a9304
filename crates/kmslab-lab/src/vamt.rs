//! `kmslab vamt`: a Volume Activation Management Tool 1.2 for the lab. It keeps the machines
//! it manages in a CIL file (XML, `kmslab_activation::cil`, docs/vamt.md), reaches each
//! kms-client through its control API, and the activation service through its admin API
//! (`--service`, proxy activation and CIDs) or its wire protocol (`key-count`).
//!
//! Isolated lab: `discover`, `install-key`, `export --no-pii` inside; `acquire-cids` on a
//! host that reaches the service; `import` and `apply-cids` inside again.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use kmslab_activation::cil::{Cil, Computer, Product, Products, Sku};
use serde_json::{Value, json};

use crate::activation::http;

/// One line of output.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {
        $out.push(format!($($arg)*))
    };
}

/// Flags of `kmslab vamt`.
#[derive(Debug, Args)]
pub struct VamtArgs {
    /// The CIL file VAMT works on (created by `discover`).
    #[arg(long, value_name = "FILE.cil", default_value = "vamt.cil")]
    pub cil: PathBuf,
    /// The operation.
    #[command(subcommand)]
    pub verb: VamtVerb,
}

/// VAMT operations.
#[derive(Debug, Subcommand)]
pub enum VamtVerb {
    /// Add machines by their kms-client control API address (HOST:PORT) and read their status.
    Discover {
        /// Control API addresses.
        #[arg(required = true)]
        machines: Vec<String>,
    },
    /// Update every machine's status and print it.
    Status,
    /// Install a product key (MAK or GVLK) on every machine.
    InstallKey {
        /// The key.
        key: String,
    },
    /// Activate every machine itself (each needs its own --activation-service).
    Activate,
    /// Activate every MAK machine through this host: read its installation ID, get the
    /// confirmation ID from the service, deposit it.
    ProxyActivate {
        /// The activation service's admin API.
        #[arg(long, value_name = "ADDR")]
        service: String,
    },
    /// Write the CIL for another VAMT host.
    Export {
        /// Where.
        out: PathBuf,
        /// Drop machine names, editions and network addresses (a secure export).
        #[arg(long)]
        no_pii: bool,
    },
    /// Get confirmation IDs for every installation ID in FILE (updated in place); the
    /// host needs only the service, not the machines.
    AcquireCids {
        /// The exported CIL.
        file: PathBuf,
        /// The activation service's admin API.
        #[arg(long, value_name = "ADDR")]
        service: String,
    },
    /// Merge the confirmation IDs of FILE into the CIL (by computer Id).
    Import {
        /// A CIL with confirmation IDs.
        file: PathBuf,
    },
    /// Deposit each machine's acquired confirmation ID.
    ApplyCids,
    /// Remaining activations of a MAK, asked of the service over the wire protocol.
    KeyCount {
        /// The MAK.
        key: String,
        /// The activation service (its --listen address).
        #[arg(long, value_name = "ADDR")]
        service: String,
    },
}

fn load(path: &Path) -> anyhow::Result<Cil> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read CIL {}", path.display()))?;
    Cil::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn save(path: &Path, cil: &Cil) -> anyhow::Result<()> {
    let tmp = path.with_extension("cil.tmp");
    std::fs::write(&tmp, cil.to_xml()).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn ok(addr: &str, (status, body): (u16, Value)) -> anyhow::Result<Value> {
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let msg = body.get("error").and_then(Value::as_str).map_or_else(|| body.to_string(), str::to_owned);
    bail!("{addr}: {msg}")
}

/// What a machine's control API says now, as a CIL computer.
fn read_machine(addr: &str) -> anyhow::Result<Computer> {
    let s = ok(addr, http(addr, "GET", "/api/v1/status", None)?)?;
    let iid = match http(addr, "GET", "/api/v1/dti", None)? {
        (200, b) => b["installation_id"].as_str().map(str::to_owned),
        _ => None,
    };
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let p = &s["product"];
    let products = if p.is_object() {
        vec![Product {
            sku: Sku {
                id: text(&p["activation_id"]).unwrap_or_default(),
                name: text(&p["display_name"]),
                application_id: text(&p["application_id"]).unwrap_or_default(),
            },
            channel: text(&s["channel"]),
            partial_key: text(&p["partial_key"]),
            license_status: text(&s["status"]),
            installation_id: iid,
            confirmation_id: None,
        }]
    } else {
        Vec::new()
    };
    Ok(Computer {
        id: text(&s["cmid"]).context("status without a cmid")?,
        name: text(&s["machine_name"]),
        os_edition: text(&p["name"]),
        network_type: "Workgroup".into(),
        network_name: Some(addr.to_owned()),
        products: Products { list: products },
    })
}

fn line(c: &Computer) -> String {
    let p = c.products.list.first();
    format!(
        "{} {} {} {} {}",
        c.name.as_deref().unwrap_or("-"),
        c.id,
        p.and_then(|p| p.channel.as_deref()).unwrap_or("-"),
        p.and_then(|p| p.partial_key.as_deref()).unwrap_or("-"),
        p.and_then(|p| p.license_status.as_deref()).unwrap_or("unlicensed"),
    )
}

/// Runs `f` on every machine of the CIL with an address, refreshes it, saves, prints a
/// line per machine; any failure is printed and makes the exit code 1.
fn each(
    out: &mut Vec<String>,
    path: &Path,
    verb: &str,
    mut f: impl FnMut(&str, &Computer) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let mut cil = load(path)?;
    let mut failed = false;
    let machines: Vec<Computer> = cil.computers.list.clone();
    for c in machines {
        let Some(addr) = c.network_name.clone() else {
            say!(out, "{}: no address (a secure export); import it into the CIL that has one", c.id);
            failed = true;
            continue;
        };
        if let Err(e) = f(&addr, &c) {
            say!(out, "{verb} failed: {e:#}");
            failed = true;
        }
        match read_machine(&addr) {
            Ok(now) => {
                say!(out, "{}", line(&now));
                cil.upsert(now);
            }
            Err(e) => {
                say!(out, "{}: cannot read status: {e:#}", c.id);
                failed = true;
            }
        }
    }
    save(path, &cil)?;
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn confirm(service: &str, iid: &str) -> anyhow::Result<String> {
    let b = ok(service, http(service, "POST", "/api/v1/confirm", Some(&json!({ "installation_id": iid })))?)?;
    b["confirmation_id"].as_str().map(str::to_owned).context("answer without a confirmation_id")
}

fn attempt_ok(addr: &str, body: Value) -> anyhow::Result<()> {
    match body["hresult"].as_str() {
        Some("0x00000000") => Ok(()),
        Some(code) => bail!("{addr}: {code} {}", body["name"].as_str().unwrap_or("")),
        None => bail!("{addr}: unexpected answer {body}"),
    }
}

/// Runs one verb, printing what it did.
pub async fn run(args: VamtArgs) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    let code = run_to(args, &mut out).await;
    for line in &out {
        println!("{line}");
    }
    code
}

/// Runs one verb; what it would print goes to `out`, a line each (the drills show it).
pub async fn run_to(args: VamtArgs, out: &mut Vec<String>) -> anyhow::Result<ExitCode> {
    let path = args.cil.as_path();
    match args.verb {
        VamtVerb::Discover { machines } => {
            let mut cil = if path.exists() { load(path)? } else { Cil::new() };
            for addr in &machines {
                let c = read_machine(addr)?;
                say!(out, "{}", line(&c));
                cil.upsert(c);
            }
            save(path, &cil)?;
            Ok(ExitCode::SUCCESS)
        }
        VamtVerb::Status => each(out, path, "status", |_, _| Ok(())),
        VamtVerb::InstallKey { key } => {
            each(out, path, "install-key", |addr, _| ok(addr, http(addr, "POST", "/api/v1/ipk", Some(&json!({ "key": key })))?).map(drop))
        }
        VamtVerb::Activate => {
            each(out, path, "activate", |addr, _| attempt_ok(addr, ok(addr, http(addr, "POST", "/api/v1/ato", Some(&json!({})))?)?))
        }
        VamtVerb::ProxyActivate { service } => each(out, path, "proxy-activate", |addr, _| {
            let dti = ok(addr, http(addr, "GET", "/api/v1/dti", None)?)?;
            let iid = dti["installation_id"].as_str().context("no installation_id")?;
            let cid = confirm(&service, iid)?;
            ok(addr, http(addr, "POST", "/api/v1/atp", Some(&json!({ "cid": cid })))?).map(drop)
        }),
        VamtVerb::Export { out: file, no_pii } => {
            let cil = load(path)?.export(no_pii);
            save(&file, &cil)?;
            say!(
                out,
                "exported {} computers to {}{}",
                cil.computers.list.len(),
                file.display(),
                if no_pii { " (no personal data)" } else { "" }
            );
            Ok(ExitCode::SUCCESS)
        }
        VamtVerb::AcquireCids { file, service } => {
            let mut cil = load(&file)?;
            let (mut got, mut failed) = (0, false);
            for c in &mut cil.computers.list {
                for p in &mut c.products.list {
                    let (Some(iid), None) = (&p.installation_id, &p.confirmation_id) else { continue };
                    if p.channel.as_deref() != Some("VOLUME_MAK") {
                        continue;
                    }
                    match confirm(&service, iid) {
                        Ok(cid) => {
                            p.confirmation_id = Some(cid);
                            got += 1;
                        }
                        Err(e) => {
                            say!(out, "{}: {e:#}", c.id);
                            failed = true;
                        }
                    }
                }
            }
            save(&file, &cil)?;
            say!(out, "acquired {got} confirmation IDs into {}", file.display());
            Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        VamtVerb::Import { file } => {
            let mut cil = load(path)?;
            let (taken, unknown) = cil.import(&load(&file)?);
            save(path, &cil)?;
            say!(out, "imported {taken} confirmation IDs");
            for id in &unknown {
                say!(out, "{id}: not in {} (was it discovered here?)", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        VamtVerb::ApplyCids => each(out, path, "apply-cids", |addr, c| {
            let Some(cid) = c.products.list.first().and_then(|p| p.confirmation_id.clone()) else { return Ok(()) };
            if c.products.list.first().and_then(|p| p.license_status.as_deref()) == Some("licensed") {
                // Applying again costs nothing but is not needed.
                return Ok(());
            }
            ok(addr, http(addr, "POST", "/api/v1/atp", Some(&json!({ "cid": cid })))?).map(drop)
        }),
        VamtVerb::KeyCount { key, service } => {
            use kmslab_core::wire::{Message, ServiceRequest};
            let mut stream = tokio::net::TcpStream::connect(&service)
                .await
                .with_context(|| format!("cannot reach the activation service at {service}"))?;
            let mut buf = Vec::new();
            kmslab_runtime::framed::write_message(
                &mut stream,
                &Message::ServiceRequest(ServiceRequest::KeyInfo { key: key.clone() }),
                &mut buf,
            )
            .await?;
            match kmslab_runtime::framed::read_message(&mut stream, &mut buf).await? {
                Some(Message::ServiceAnswer(a)) => {
                    say!(out, "{key} remaining {} used {}{}", a.remaining, a.used, if a.blocked { " blocked" } else { "" });
                    Ok(ExitCode::SUCCESS)
                }
                Some(Message::Error(e)) => {
                    say!(out, "Error: {} {}: {}", e.hresult, e.hresult.name(), e.message);
                    Ok(ExitCode::from(1))
                }
                other => bail!("unexpected answer from {service}: {other:?}"),
            }
        }
    }
}
