//! slmgr's client verbs, against a `kms-client` control API (`/api/v1/...`).
//!
//! `/dli` prints exactly the lines of interfaces.md; `/dlv` adds the IDs, the rearm count
//! and the last result; the other verbs print slmgr-style one-liners. A failure prints
//! `Error: 0x........ NAME: meaning` and exits 1; bad arguments print usage and exit 2.

use std::process::ExitCode;

use kmslab_core::HResult;
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::license::{days_from_minutes, notification_reason_line};
use serde_json::{Value, json};

use crate::api::{Ctx, Reply};

const CLIENT_USAGE: &str = "client verbs: /dli [all] /dlv [all] /xpr /ato /ipk KEY /upk /skms HOST[:PORT] /ckms /skms-domain FQDN /ckms-domain /skhc /ckhc /rearm /dti /atp CID";

/// Runs one client verb against the daemon at `ctx.target`.
pub fn run(ctx: &Ctx, verb: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    let takes_arg = matches!(verb, "ipk" | "skms" | "skms-domain" | "atp");
    // `/dli all`, `/dlv all`: slmgr.vbs's every-product form.
    let all = matches!(verb, "dli" | "dlv") && args.len() == 1 && args[0].eq_ignore_ascii_case("all");
    if takes_arg && args.len() != 1 {
        return Ok(usage(&format!("/{verb} needs exactly one argument")));
    }
    if !takes_arg && !all && !args.is_empty() {
        return Ok(usage(&format!("/{verb} takes no arguments (got {:?})", args.join(" "))));
    }
    match verb {
        "dli" | "dlv" | "xpr" => {
            let status = ctx.get("/api/v1/status")?.ok()?;
            if ctx.json {
                println!("{status}");
                return Ok(ExitCode::SUCCESS);
            }
            let text = match verb {
                "dli" => render_dli(&status, false, all),
                "dlv" => render_dli(&status, true, all),
                _ => render_xpr(&status),
            };
            match text {
                Ok(t) => {
                    print!("{t}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(line) => {
                    println!("{line}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        "ato" => {
            let reply = ctx.post("/api/v1/ato", &json!({}))?;
            if reply.status >= 300 {
                return Ok(failure(ctx, reply));
            }
            let body = reply.body;
            if ctx.json {
                println!("{body}");
            }
            let code = body["hresult"].as_str().unwrap_or("0x00000000");
            let ok = code == "0x00000000" && body["activated"].as_bool() == Some(true);
            if !ctx.json {
                let status = ctx.get("/api/v1/status").ok().and_then(|r| r.ok().ok()).unwrap_or(Value::Null);
                let name = status["product"]["display_name"].as_str().unwrap_or("Windows");
                let id = status["product"]["activation_id"].as_str().unwrap_or("");
                println!("Activating {name} ({id}) ...");
                if ok {
                    println!("Product activated successfully.");
                } else {
                    println!("Error: {code} {}: {}", str_or(&body["name"], ""), str_or(&body["meaning"], ""));
                }
            }
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        "ipk" => {
            let key = &args[0];
            simple(ctx, "/api/v1/ipk", json!({ "key": key }), &format!("Installed product key {key} successfully."))
        }
        "upk" => simple(ctx, "/api/v1/upk", json!({}), "Uninstalled product key successfully."),
        "skms" => {
            let host: HostAddr = match args[0].parse() {
                Ok(h) => h,
                Err(e) => return Ok(usage(&e.to_string())),
            };
            simple(
                ctx,
                "/api/v1/skms",
                json!({ "host": host.to_string() }),
                &format!("Key Management Service machine name set to {host} successfully."),
            )
        }
        "ckms" => simple(ctx, "/api/v1/ckms", json!({}), "Key Management Service machine name cleared successfully."),
        "skms-domain" => {
            let d = args[0].trim().trim_end_matches('.');
            let valid = !d.is_empty()
                && d.split('.')
                    .all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            if !valid {
                return Ok(usage(&format!("{:?} is not a DNS domain name", args[0])));
            }
            simple(
                ctx,
                "/api/v1/skms-domain",
                json!({ "domain": d }),
                &format!("Key Management Service lookup domain set to {d} successfully."),
            )
        }
        "ckms-domain" => simple(ctx, "/api/v1/ckms-domain", json!({}), "Key Management Service lookup domain cleared successfully."),
        "skhc" => simple(ctx, "/api/v1/skhc", json!({}), "KMS host caching is enabled"),
        "ckhc" => simple(ctx, "/api/v1/ckhc", json!({}), "KMS host caching is disabled"),
        "rearm" => simple(
            ctx,
            "/api/v1/rearm",
            json!({}),
            "Command completed successfully.\nPlease restart the system for the changes to take effect.",
        ),
        "dti" => {
            let reply = ctx.get("/api/v1/dti")?;
            if let Some(code) = unsupported(ctx, "dti", &reply) {
                return Ok(code);
            }
            if reply.status >= 300 {
                return Ok(failure(ctx, reply));
            }
            if ctx.json {
                println!("{}", reply.body);
            } else {
                println!("Installation ID: {}", str_or(&reply.body["installation_id"], ""));
            }
            Ok(ExitCode::SUCCESS)
        }
        "atp" => {
            let reply = ctx.post("/api/v1/atp", &json!({ "cid": args[0] }))?;
            if let Some(code) = unsupported(ctx, "atp", &reply) {
                return Ok(code);
            }
            if reply.status >= 300 {
                return Ok(failure(ctx, reply));
            }
            if ctx.json {
                println!("{}", reply.body);
            } else {
                println!("Confirmation ID for product {} deposited successfully.", str_or(&reply.body["activation_id"], ""));
            }
            Ok(ExitCode::SUCCESS)
        }
        other => Ok(usage(&format!("/{other} is not a client verb"))),
    }
}

fn usage(reason: &str) -> ExitCode {
    eprintln!("slmgr: {reason}\n{CLIENT_USAGE}");
    ExitCode::from(2)
}

fn str_or<'a>(v: &'a Value, default: &'a str) -> &'a str {
    v.as_str().unwrap_or(default)
}

/// A 404 without an HRESULT: the daemon predates the verb's endpoint (MAK and phone
/// activation). One line on stderr and exit 1 instead of a bare "HTTP 404".
fn unsupported(ctx: &Ctx, verb: &str, reply: &Reply) -> Option<ExitCode> {
    if reply.status != 404 || reply.body["hresult"].is_string() {
        return None;
    }
    eprintln!(
        "slmgr: /{verb} is not available on the kms-client at {} (HTTP 404 for {}: it has no MAK or phone activation)",
        ctx.target,
        ctx.path(&format!("/api/v1/{verb}"))
    );
    Some(ExitCode::from(1))
}

/// POSTs a verb and prints `done` (or the daemon's answer with `--json`).
fn simple(ctx: &Ctx, path: &str, body: Value, done: &str) -> anyhow::Result<ExitCode> {
    let reply = ctx.post(path, &body)?;
    if reply.status >= 300 {
        return Ok(failure(ctx, reply));
    }
    if ctx.json {
        println!("{}", reply.body);
    } else {
        println!("{done}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a daemon error like slmgr does (`Error: 0xC004F050 ...`); exit 1, or 2 when the
/// daemon refused the argument itself (HTTP 400 without an HRESULT).
fn failure(ctx: &Ctx, reply: Reply) -> ExitCode {
    if ctx.json {
        println!("{}", if reply.body.is_null() { json!({"error": reply.text.trim()}) } else { reply.body.clone() });
    }
    let message = reply.body["error"].as_str().map(str::to_owned).unwrap_or_else(|| reply.text.trim().to_owned());
    if reply.body["hresult"].is_string() {
        if !ctx.json {
            println!("Error: {message}");
        }
        ExitCode::from(1)
    } else if reply.status == 400 || reply.status == 422 {
        usage(&message)
    } else {
        eprintln!("slmgr: {message} (HTTP {})", reply.status);
        ExitCode::from(1)
    }
}

/// Minutes and whole days as `/dli` prints them: `N minute(s) (D day(s))`, the days
/// truncated as Windows 7's slmgr.vbs does ([`days_from_minutes`]).
fn minutes_and_days(minutes: u64) -> String {
    format!("{minutes} minute(s) ({} day(s))", days_from_minutes(minutes))
}

/// The `/dli` (or `/dlv` when `verbose`) text for a status object; `Err` holds the one
/// line printed when no product key is installed. `all` is `/dli all` (the same text for
/// now: a client holds one product).
pub fn render_dli(s: &Value, verbose: bool, all: bool) -> Result<String, String> {
    let _ = all;
    let Some(product) = s.get("product").filter(|p| p.is_object()) else {
        return Err("Error: product key not found.".to_owned());
    };
    let mut out = String::new();
    let mut line = |l: &str| {
        out.push_str(l);
        out.push('\n');
    };
    if verbose {
        line(&format!("Software licensing service version: 6.1.7600.16385 (kmslab {})", env!("CARGO_PKG_VERSION")));
        line("");
    }
    line(&format!("Name: {}", str_or(&product["display_name"], "")));
    line(&format!("Description: {}", str_or(&product["description"], "")));
    if verbose {
        line(&format!("Activation ID: {}", str_or(&product["activation_id"], "")));
        line(&format!("Application ID: {}", str_or(&product["application_id"], "")));
    }
    line(&format!("Partial Product Key: {}", str_or(&product["partial_key"], "")));
    line(&format!("License Status: {}", str_or(&s["status_label"], "")));
    let status = str_or(&s["status"], "");
    if status == "notification" {
        let reason = s["notification_reason"].as_str().and_then(HResult::parse).unwrap_or(HResult::GRACE_EXPIRED);
        line(&notification_reason_line(reason));
    }
    let minutes = s["minutes_remaining"].as_u64().unwrap_or(0);
    match status {
        "licensed" => line(&format!("Volume activation expiration: {}", minutes_and_days(minutes))),
        "initial_grace" | "additional_grace" | "non_genuine_grace" | "extended_grace" => {
            line(&format!("Time remaining: {}", minutes_and_days(minutes)))
        }
        _ => {}
    }
    if verbose {
        line(&format!("Remaining Windows rearm count: {}", s["rearm_count"].as_u64().unwrap_or(0)));
        line(&format!("Trusted time: {}", str_or(&s["now"], "")));
    }
    line("");
    line("Key Management Service client information");
    line(&format!("    Client Machine ID (CMID): {}", str_or(&s["cmid"], "")));
    let host = &s["host"];
    if let Some(manual) = host["manual"].as_str() {
        line(&format!("    Registered KMS machine name: {manual}"));
    } else if let Some(h) = host["last"].as_str().filter(|_| host["last_source"].as_str() != Some("manual")).or(host["cached"].as_str()) {
        line(&format!("    KMS machine name from DNS: {h}"));
    } else {
        line("    DNS auto-discovery: KMS name not available");
    }
    if let Some(epid) = s["epid"].as_str() {
        line(&format!("    KMS machine extended PID: {epid}"));
    }
    line(&format!("    Activation interval: {} minutes", s["activation_interval"].as_u64().unwrap_or(0)));
    line(&format!("    Renewal interval: {} minutes", s["renewal_interval"].as_u64().unwrap_or(0)));
    line(if s["host_caching"].as_bool() == Some(true) { "    KMS host caching is enabled" } else { "    KMS host caching is disabled" });
    if verbose {
        if let Some(d) = s["domain"].as_str() {
            line(&format!("    KMS SRV record lookup domain: {d}"));
        }
        if let Some(prev) = s["previous_cmid"].as_str().filter(|p| !p.starts_with("00000000-")) {
            line(&format!("    Previous Client Machine ID (CMID): {prev}"));
        }
        if let Some(c) = s["current_count"].as_u64() {
            line(&format!("    Current count reported by the KMS host: {c}"));
        }
        if let Some(last) = s["last_result"].as_object() {
            line(&format!(
                "    Last activation result: {} {} at {}",
                last.get("hresult").and_then(Value::as_str).unwrap_or(""),
                last.get("name").and_then(Value::as_str).unwrap_or(""),
                last.get("at").and_then(Value::as_str).unwrap_or(""),
            ));
        }
    }
    Ok(out)
}

/// The `/xpr` text.
pub fn render_xpr(s: &Value) -> Result<String, String> {
    let Some(product) = s.get("product").filter(|p| p.is_object()) else {
        return Err("Error: product key not found.".to_owned());
    };
    let name = str_or(&product["display_name"], "");
    let detail = match str_or(&s["status"], "") {
        "licensed" => format!("Volume activation will expire {}", str_or(&s["valid_until"], "")),
        "initial_grace" => format!("Initial grace period ends {}", str_or(&s["grace_end"], "")),
        "additional_grace" => format!("Additional grace period ends {}", str_or(&s["grace_end"], "")),
        "notification" => "Windows is in Notification mode".to_owned(),
        _ => str_or(&s["status_label"], "").to_owned(),
    };
    Ok(format!("{name}:\n    {detail}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str, minutes: u64, reason: Option<&str>) -> Value {
        json!({
            "product": {"display_name": "Windows(R) 7, Enterprise edition", "description": "d", "partial_key": "HVTHH"},
            "status": state, "status_label": "label", "minutes_remaining": minutes, "notification_reason": reason,
            "cmid": "c", "host": {}, "activation_interval": 120, "renewal_interval": 10080, "host_caching": true,
        })
    }

    fn line_with(text: &str, prefix: &str) -> String {
        text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix:?} in {text}")).to_owned()
    }

    #[test]
    fn day_counts_are_truncated_like_windows_7_slmgr_vbs() {
        let dli = render_dli(&status("initial_grace", 43_140, None), false, false).unwrap();
        assert_eq!(line_with(&dli, "Time remaining:"), "Time remaining: 43140 minute(s) (29 day(s))");
        let dli = render_dli(&status("licensed", 259_199, None), false, false).unwrap();
        assert_eq!(line_with(&dli, "Volume activation expiration:"), "Volume activation expiration: 259199 minute(s) (179 day(s))");
    }

    #[test]
    fn notification_reason_reads_as_slmgr_vbs_writes_it() {
        let check = |reason: Option<&str>, expected: &str| {
            let dli = render_dli(&status("notification", 0, reason), false, false).unwrap();
            assert_eq!(line_with(&dli, "Notification Reason:"), expected);
        };
        check(Some("0xC004F009"), "Notification Reason: 0xC004F009 (grace time expired).");
        check(None, "Notification Reason: 0xC004F009 (grace time expired).");
        check(Some("0xC004F200"), "Notification Reason: 0xC004F200 (non-genuine).");
        check(Some("0xC004F074"), "Notification Reason: 0xC004F074.");
    }
}
