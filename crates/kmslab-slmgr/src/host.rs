//! slmgr's host verbs: `/dli`, `/dlv` (read `/api/v1/status`), `/ipk`, `/ato` (the host's own
//! KMS host key and its genuine validation: POST `/api/v1/ipk`, `/api/v1/ato`) and `/sai`,
//! `/sri`, `/sprt`, `/sdns`, `/cdns`, `/spri`, `/cpri` (POST `/api/v1/settings`), printed as
//! slmgr.vbs does.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use kmslab_api::HostStatus;
use serde_json::{Value, json};

use crate::api::Ctx;

/// Runs one host verb against the daemon at `ctx.target`.
pub fn run(ctx: &Ctx, verb: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    match verb {
        "dli" | "dlv" => {
            // `/dli all`, `/dlv all`: every installed host key group's license.
            let all = match args {
                [] => false,
                [a] if a.eq_ignore_ascii_case("all") => true,
                _ => return Err(anyhow!("/{verb} takes no argument or `all` (got {:?})", args.join(" "))),
            };
            let status = ctx.get("/api/v1/status")?.ok()?;
            if ctx.json {
                println!("{status}");
            } else {
                print!("{}", render_dli(status, verb == "dlv", all)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        "ipk" => {
            let key = &args[0];
            let reply = ctx.post("/api/v1/ipk", &json!({ "key": key }))?;
            if (200..300).contains(&reply.status) {
                if ctx.json {
                    println!("{}", json!({ "ok": true, "status": reply.body }));
                } else {
                    println!("Installed product key {key} successfully.");
                }
                return Ok(ExitCode::SUCCESS);
            }
            Ok(refused(ctx, &reply))
        }
        "ato" => {
            let reply = ctx.post("/api/v1/ato", &json!({}))?;
            if !(200..300).contains(&reply.status) {
                return Ok(refused(ctx, &reply));
            }
            let body = reply.body;
            let code = body["hresult"].as_str().unwrap_or("0x80004005");
            let ok = code == "0x00000000";
            if ctx.json {
                println!("{body}");
            } else {
                let status = ctx.get("/api/v1/status").ok().and_then(|r| r.ok().ok()).unwrap_or(Value::Null);
                let name = status["name"].as_str().unwrap_or("KMS host");
                let id = status["activation_id"].as_str().unwrap_or("");
                println!("Activating {name} ({id}) ...");
                let meaning = body["meaning"].as_str().unwrap_or("Product activation failed.");
                if ok {
                    println!("Product activated successfully.");
                } else if code == kmslab_core::HResult::NONGENUINE_GRACE_PERIOD.to_string() {
                    // slmgr.vbs prints this informational code's text alone.
                    println!("{meaning}");
                } else {
                    println!("Error: {code} {}: {meaning}", body["name"].as_str().unwrap_or(""));
                }
            }
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        "sai" | "sri" => {
            let key = if verb == "sai" { "activation_interval" } else { "renewal_interval" };
            let value = number_arg(verb, args, "MIN (15..43200)")?;
            let done = if verb == "sai" { "Volume activation interval" } else { "Volume renewal interval" };
            change(ctx, json!({ key: value }), &format!("{done} set to {value} minutes successfully."))
        }
        "sprt" => {
            let port = number_arg(verb, args, "PORT (1..65535)")?;
            change(
                ctx,
                json!({ "port": port }),
                &format!("KMS port set to {port} successfully.\nThe new port takes effect when kms-host is next started."),
            )
        }
        "sdns" => change(ctx, json!({ "dns_publishing": true }), "DNS publishing enabled successfully."),
        "cdns" => change(ctx, json!({ "dns_publishing": false }), "DNS publishing disabled successfully."),
        "spri" => change(ctx, json!({ "priority": "normal" }), "KMS priority set to Normal successfully."),
        "cpri" => change(ctx, json!({ "priority": "low" }), "KMS priority set to Low successfully."),
        other => Err(anyhow!("/{other} is not a host verb")),
    }
}

fn number_arg(verb: &str, args: &[String], what: &str) -> anyhow::Result<u64> {
    let text = args.first().ok_or_else(|| anyhow!("/{verb} needs {what}"))?;
    text.parse().with_context(|| format!("/{verb} needs {what}, got {text:?}"))
}

/// POSTs a settings change; prints `done` (or the new settings with `--json`).
fn change(ctx: &Ctx, body: Value, done: &str) -> anyhow::Result<ExitCode> {
    let reply = ctx.post("/api/v1/settings", &body)?;
    if (200..300).contains(&reply.status) {
        if ctx.json {
            println!("{}", json!({ "ok": true, "settings": reply.body }));
        } else {
            println!("{done}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    Ok(refused(ctx, &reply))
}

/// Prints a refused change as slmgr does (`Error: 0x... NAME: what was wrong`); exit 1.
fn refused(ctx: &Ctx, reply: &crate::api::Reply) -> ExitCode {
    let hresult = reply.body.get("hresult").and_then(Value::as_str).unwrap_or("0x80004005").to_owned();
    let message = reply.body.get("error").and_then(Value::as_str).map_or_else(|| reply.text.trim().to_owned(), str::to_owned);
    if ctx.json {
        println!("{}", json!({ "ok": false, "hresult": hresult, "error": message }));
    } else {
        // As for client verbs: `Error: 0x80070057 E_INVALIDARG: <what was wrong>`.
        match kmslab_core::hresult::HResult::parse(&hresult).and_then(|h| h.info()) {
            Some(info) => eprintln!("Error: {hresult} {}: {message}", info.name),
            None => eprintln!("Error: {hresult} {message}"),
        }
    }
    ExitCode::from(1)
}

/// The `/dli` (or `/dlv`) text of a host, from its `/api/v1/status` document.
pub fn render_dli(status: Value, verbose: bool, all: bool) -> anyhow::Result<String> {
    let status: HostStatus = serde_json::from_value(status)
        .map_err(|e| anyhow!("the host's status is not what slmgr reads ({e}); is kms-host the same version?"))?;
    Ok(kmslab_api::render::host_dli(&status, verbose, all))
}
