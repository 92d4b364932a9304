//! slmgr's host verbs: `/dli`, `/dlv` (read `/api/v1/status`) and `/sai`, `/sri`, `/sprt`,
//! `/sdns`, `/cdns`, `/spri`, `/cpri` (POST `/api/v1/settings`), printed as slmgr.vbs does.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use serde_json::{Value, json};

use crate::api::Ctx;

/// Runs one host verb against the daemon at `ctx.target`.
pub fn run(ctx: &Ctx, verb: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    match verb {
        "dli" | "dlv" => {
            let status = ctx.get("/api/v1/status")?.ok()?;
            if ctx.json {
                println!("{status}");
            } else {
                let all = args.first().is_some_and(|a| a.eq_ignore_ascii_case("all"));
                print!("{}", render_dli(&status, verb == "dlv", all)?);
            }
            Ok(ExitCode::SUCCESS)
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
    Ok(ExitCode::from(1))
}

fn field<'a>(v: &'a Value, key: &str) -> anyhow::Result<&'a Value> {
    v.get(key).ok_or_else(|| anyhow!("the host's status has no {key:?} (is kms-host the same version?)"))
}

fn text(v: &Value, key: &str) -> anyhow::Result<String> {
    Ok(match field(v, key)? {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// The `/dli` (or `/dlv`) text of a host, from its `/api/v1/status` document; `all` is
/// `/dli all` (the same text for now).
pub fn render_dli(status: &Value, verbose: bool, all: bool) -> anyhow::Result<String> {
    let _ = all;
    let mut out = String::new();
    if verbose {
        writeln!(out, "Software licensing service version: kmslab {}", text(status, "version")?)?;
        out.push('\n');
    }
    writeln!(out, "Name: {}", text(status, "name")?)?;
    writeln!(out, "Description: {}", text(status, "description")?)?;
    if verbose {
        writeln!(out, "Extended PID: {}", text(status, "epid")?)?;
        let groups: Vec<&str> =
            field(status, "host_key_groups")?.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        writeln!(out, "Host key groups: {}", groups.join(", "))?;
    }
    writeln!(out, "Partial Product Key: {}", text(status, "partial_product_key")?)?;
    writeln!(out, "License Status: {}", text(status, "license_status")?)?;
    out.push('\n');
    out.push_str("Key Management Service is enabled on this machine\n");
    let counts = field(status, "counts")?.as_array().cloned().unwrap_or_default();
    let served: Vec<&Value> = counts.iter().filter(|c| c.get("served").and_then(Value::as_bool).unwrap_or(false)).collect();
    let group_name = |c: &Value| c.get("group").and_then(Value::as_str).unwrap_or("?").to_owned();
    let primary = served.iter().find(|c| group_name(c) == "windows").or(served.first()).copied();
    let count_of = |c: &Value| c.get("count").and_then(Value::as_u64).unwrap_or(0);
    writeln!(out, "    Current count: {}", primary.map_or(0, count_of))?;
    for c in &served {
        if Some(*c) != primary {
            writeln!(out, "    Current count ({}): {}", group_name(c), count_of(c))?;
        }
    }
    writeln!(out, "    Listening on Port: {}", text(status, "port")?)?;
    let dns = field(status, "dns_publishing")?.as_bool().unwrap_or(true);
    writeln!(out, "    DNS publishing {}", if dns { "enabled" } else { "disabled" })?;
    let settings = field(status, "settings")?;
    let low = settings.get("priority").and_then(Value::as_str) == Some("low");
    writeln!(out, "    KMS priority: {}", if low { "Low" } else { "Normal" })?;
    if verbose {
        writeln!(out, "    Activation interval: {} minutes", text(settings, "activation_interval")?)?;
        writeln!(out, "    Renewal interval: {} minutes", text(settings, "renewal_interval")?)?;
    }
    out.push('\n');
    out.push_str("Key Management Service cumulative requests received from clients\n");
    let counters = field(status, "counters")?;
    writeln!(out, "    Total requests received: {}", text(counters, "total")?)?;
    writeln!(out, "    Failed requests received: {}", text(counters, "failed")?)?;
    let by_status = field(counters, "by_status")?;
    for (key, label) in [
        ("unlicensed", "Unlicensed"),
        ("licensed", "Licensed"),
        ("initial_grace", "Initial grace period"),
        ("additional_grace", "License expired or Hardware out of tolerance"),
        ("non_genuine_grace", "Non-genuine grace period"),
        ("notification", "Notification"),
    ] {
        writeln!(out, "    Requests with License Status {label}: {}", text(by_status, key)?)?;
    }
    Ok(out)
}
