//! `kmslab lab`: the command line of the lab control API of a running `kmslab up`
//! (docs/interfaces.md "Lab control"). Without `--target` it reads the lab address file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// Flags of `kmslab lab`.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// The lab control API (`listening on lab ADDR`) [the lab address file of `kmslab up`].
    #[arg(long, value_name = "ADDR", global = true)]
    pub target: Option<String>,
    /// Print the API's JSON answer instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Bearer token file (`kmslab up --control-token-file`), for a lab on another machine.
    #[arg(long, value_name = "FILE", global = true)]
    pub token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: LabCommand,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// The hosts with their roles and counts, DNS, the machines by license state.
    Status,
    /// Every machine: name, product, status, host, last result.
    Machines {
        /// Only machines in this status (licensed, initial_grace, notification, ...).
        #[arg(long)]
        status: Option<String>,
        /// Only machines whose name, CMID, host or result contains this.
        #[arg(long)]
        search: Option<String>,
    },
    /// The lab events (faults applied), oldest first.
    Events,
    /// Stop a host (its SRV record stays).
    Stop { host: String },
    /// Start a stopped host.
    Start { host: String },
    /// Restart a host: its count collection starts again.
    Restart { host: String },
    /// Close a host's KMS port (connections refused) while it keeps running.
    Block { host: String },
    /// Open it again.
    Unblock { host: String },
    /// The host loses its own activation: requests are answered 0xC004F041.
    Unactivate { host: String },
    /// The host gets its activation back.
    Activate { host: String },
    /// A host's activation interval (slmgr /sai), minutes.
    Sai { host: String, minutes: u64 },
    /// A host's renewal interval (slmgr /sri), minutes.
    Sri { host: String, minutes: u64 },
    /// DNS faults.
    Dns {
        #[command(subcommand)]
        action: DnsCommand,
    },
    /// Set a machine's clock HOURS ahead (negative: behind).
    Skew {
        machine: String,
        #[arg(allow_hyphen_values = true)]
        hours: f64,
    },
    /// Add N copies of a machine sharing its CMID.
    Clone { machine: String, count: usize },
    /// slmgr /rearm on a machine.
    Rearm { machine: String },
    /// Add N machines.
    Add {
        count: usize,
        /// Their product [win7-enterprise].
        #[arg(long)]
        product: Option<String>,
    },
}

/// DNS faults.
#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// The server refuses dynamic updates: the hosts log 12293.
    RefuseUpdates,
    /// It accepts them again.
    AcceptUpdates,
    /// Queries go unanswered (clients time out).
    Outage,
    /// The outage ends.
    Restore,
    /// Remove a host's SRV record (it publishes it again at its next round).
    RemoveRecord { host: String },
}

/// Runs one `kmslab lab` command.
pub fn run(args: LabArgs) -> anyhow::Result<ExitCode> {
    let target = match &args.target {
        Some(t) => t.clone(),
        None => match kmslab_lab::labaddr::read() {
            Ok(a) => a.to_string(),
            Err(e) => {
                eprintln!("kmslab lab: {e}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    let token = match &args.token_file {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("--token-file {}: {e}", p.display()))?.trim().to_owned()),
        None => None,
    };
    let client = Client { base: format!("http://{target}"), token };
    let (method_post, path, body) = request(&args.command);
    let answer = if method_post { client.post(&path, &body) } else { client.get(&path) };
    let (code, value) = match answer {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kmslab lab: {target}: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if !(200..300).contains(&code) {
        let message = value["error"].as_str().map_or_else(|| value.to_string(), str::to_owned);
        eprintln!("kmslab lab: {message}");
        return Ok(ExitCode::from(1));
    }
    if args.json {
        println!("{value}");
        return Ok(ExitCode::SUCCESS);
    }
    match &args.command {
        LabCommand::Status => print_status(&value),
        LabCommand::Machines { .. } => {
            for m in value.as_array().into_iter().flatten() {
                println!(
                    "{:<16} {:<24} {:<18} {:<28} {}  {}",
                    text(&m["name"]),
                    text(&m["product"]),
                    text(&m["status"]),
                    text(&m["host"]),
                    text(&m["last_result"]),
                    text(&m["cmid"])
                );
            }
        }
        LabCommand::Events => {
            for e in value["events"].as_array().into_iter().flatten() {
                let detail = if e["detail"].is_null() { String::new() } else { format!(" {}", e["detail"]) };
                println!("{} {} {}{detail}", text(&e["time"]), text(&e["kind"]), text(&e["target"]));
            }
        }
        LabCommand::Clone { .. } | LabCommand::Add { .. } => {
            let names: Vec<String> = value["added"].as_array().into_iter().flatten().map(text).collect();
            println!("added {} machine(s): {}", names.len(), names.join(", "));
        }
        LabCommand::Skew { machine, .. } | LabCommand::Rearm { machine } => {
            println!("{machine}: {} ({}), CMID {}", text(&value["status_label"]), text(&value["status"]), text(&value["cmid"]));
        }
        _ => print_status(&value),
    }
    Ok(ExitCode::SUCCESS)
}

/// The method (true: POST), path and body of a command.
fn request(command: &LabCommand) -> (bool, String, Value) {
    let host = |h: &str, action: &str| (true, format!("/api/v1/lab/hosts/{}/{action}", seg(h)), json!({}));
    let machine = |m: &str, action: &str, body: Value| (true, format!("/api/v1/lab/machines/{}/{action}", seg(m)), body);
    match command {
        LabCommand::Status => (false, "/api/v1/lab".into(), Value::Null),
        LabCommand::Machines { status, search } => {
            let mut query = Vec::new();
            if let Some(s) = status {
                query.push(format!("status={}", seg(s)));
            }
            if let Some(q) = search {
                query.push(format!("q={}", seg(q)));
            }
            let q = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
            (false, format!("/api/v1/lab/machines{q}"), Value::Null)
        }
        LabCommand::Events => (false, "/api/v1/lab/events".into(), Value::Null),
        LabCommand::Stop { host: h } => host(h, "stop"),
        LabCommand::Start { host: h } => host(h, "start"),
        LabCommand::Restart { host: h } => host(h, "restart"),
        LabCommand::Block { host: h } => host(h, "block"),
        LabCommand::Unblock { host: h } => host(h, "unblock"),
        LabCommand::Unactivate { host: h } => host(h, "unactivate"),
        LabCommand::Activate { host: h } => host(h, "activate"),
        LabCommand::Sai { host: h, minutes } => (true, format!("/api/v1/lab/hosts/{}/sai", seg(h)), json!({ "minutes": minutes })),
        LabCommand::Sri { host: h, minutes } => (true, format!("/api/v1/lab/hosts/{}/sri", seg(h)), json!({ "minutes": minutes })),
        LabCommand::Dns { action } => match action {
            DnsCommand::RefuseUpdates => (true, "/api/v1/lab/dns/refuse-updates".into(), json!({})),
            DnsCommand::AcceptUpdates => (true, "/api/v1/lab/dns/accept-updates".into(), json!({})),
            DnsCommand::Outage => (true, "/api/v1/lab/dns/outage".into(), json!({})),
            DnsCommand::Restore => (true, "/api/v1/lab/dns/restore".into(), json!({})),
            DnsCommand::RemoveRecord { host } => (true, "/api/v1/lab/dns/remove-record".into(), json!({ "host": host })),
        },
        LabCommand::Skew { machine: m, hours } => machine(m, "skew", json!({ "hours": hours })),
        LabCommand::Clone { machine: m, count } => machine(m, "clone", json!({ "count": count })),
        LabCommand::Rearm { machine: m } => machine(m, "rearm", json!({})),
        LabCommand::Add { count, product } => {
            (true, "/api/v1/lab/machines".into(), json!({ "count": count, "product": product.as_deref().unwrap_or("win7-enterprise") }))
        }
    }
}

/// A path segment: names are letters, digits, `-`, `_` and `.`; anything else is escaped.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_status(s: &Value) {
    println!("lab at {} (simulated, time x{})", text(&s["now"]), s["time_scale"]);
    for h in s["hosts"].as_array().into_iter().flatten() {
        println!(
            "  {:<6} {:<12} count {:<5} requests {} (failed {})  SRV priority {}  {}  dashboard {}",
            text(&h["name"]),
            text(&h["role"]),
            h["count"],
            text(&h["requests"]),
            text(&h["failed"]),
            h["priority"],
            text(&h["srv"]),
            text(&h["dashboard"])
        );
    }
    let d = &s["dns"];
    println!(
        "  DNS {} zone {}: updates {}{}",
        text(&d["addr"]),
        text(&d["zone"]),
        text(&d["updates"]),
        if d["outage"] == true { ", OUTAGE (queries time out)" } else { "" }
    );
    let m = &s["machines"];
    if m.is_object() {
        println!(
            "  machines {}: Licensed {}, Initial grace {}, Additional grace {}, Notification {}, Unlicensed {}; {} requests",
            m["clients"], m["licensed"], m["initial_grace"], m["additional_grace"], m["notification"], m["unlicensed"], m["requests"]
        );
        if let Some(errors) = m["errors"].as_object().filter(|e| !e.is_empty()) {
            let parts: Vec<String> = errors
                .iter()
                .map(|(code, n)| {
                    let name = kmslab_core::HResult::parse(code).map_or("", |h| h.name());
                    format!("{code} {name} x{n}")
                })
                .collect();
            println!("  failed attempts: {}", parts.join(", "));
        }
    }
}

struct Client {
    base: String,
    token: Option<String>,
}

impl Client {
    fn agent() -> ureq::Agent {
        // `ato` on a machine may wait for a whole attempt.
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(120))).build().into()
    }

    fn finish(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<(u16, Value), String> {
        let mut response = response.map_err(|e| e.to_string())?;
        let code = response.status().as_u16();
        let body = response.body_mut().read_to_string().map_err(|e| e.to_string())?;
        Ok((code, serde_json::from_str(&body).unwrap_or(Value::String(body))))
    }

    fn get(&self, path: &str) -> Result<(u16, Value), String> {
        let mut req = Self::agent().get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        Self::finish(req.call())
    }

    fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let mut req = Self::agent().post(format!("{}{path}", self.base)).header("Content-Type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        Self::finish(req.send(body.to_string()))
    }
}
