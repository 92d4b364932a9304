//! slmgr's client verbs, against a `kms-client` control API (`/api/v1/...`).
//!
//! `/dli`, `/dlv` and `/xpr` print the lines of interfaces.md through the one renderer
//! (`kmslab_api::render`); the other verbs print slmgr-style one-liners. A failure prints
//! `Error: 0x........ NAME: meaning` and exits 1; bad arguments print usage and exit 2.

use std::process::ExitCode;

use kmslab_api::ClientStatus;
use kmslab_api::render;
use kmslab_core::hostaddr::HostAddr;
use serde_json::{Value, json};

use crate::api::{Ctx, Reply};

const CLIENT_USAGE: &str = "client verbs: /dli [all] /dlv [all] /xpr [all] /ato /ipk KEY /upk /skms HOST[:PORT] /ckms /skms-domain FQDN /ckms-domain /skhc /ckhc /rearm /dti /atp CID";

/// Runs one client verb against the daemon at `ctx.target`.
pub fn run(ctx: &Ctx, verb: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    let takes_arg = matches!(verb, "ipk" | "skms" | "skms-domain" | "atp");
    // `/dli all`, `/dlv all`, `/xpr all`: every installed license.
    let all = matches!(verb, "dli" | "dlv" | "xpr") && args.len() == 1 && args[0].eq_ignore_ascii_case("all");
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
            let status: ClientStatus = serde_json::from_value(status)
                .map_err(|e| anyhow::anyhow!("the client's status is not what slmgr reads ({e}); is kms-client the same version?"))?;
            let text = match verb {
                "dli" => render::client_dli(&status, false, all),
                "dlv" => render::client_dli(&status, true, all),
                _ => render::client_xpr(&status, all),
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
                } else if code == kmslab_core::HResult::NONGENUINE_GRACE_PERIOD.to_string() {
                    // slmgr.vbs prints this informational code's text alone.
                    println!("{}", str_or(&body["meaning"], ""));
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
            Ok(phone_verb(ctx, "dti", reply, |b| format!("Installation ID: {}", str_or(&b["installation_id"], ""))))
        }
        "atp" => {
            let reply = ctx.post("/api/v1/atp", &json!({ "cid": args[0] }))?;
            Ok(phone_verb(ctx, "atp", reply, |b| {
                format!("Confirmation ID for product {} deposited successfully.", str_or(&b["activation_id"], ""))
            }))
        }
        other => Ok(usage(&format!("/{other} is not a client verb"))),
    }
}

/// Prints the answer of `/dti` or `/atp` (`text` of its body, or the JSON with `--json`),
/// or why there is none.
fn phone_verb(ctx: &Ctx, verb: &str, reply: Reply, text: impl Fn(&Value) -> String) -> ExitCode {
    if let Some(code) = unsupported(ctx, verb, &reply) {
        return code;
    }
    if reply.status >= 300 {
        return failure(ctx, reply);
    }
    if ctx.json {
        println!("{}", reply.body);
    } else {
        println!("{}", text(&reply.body));
    }
    ExitCode::SUCCESS
}

/// A daemon that answers 404 without an HRESULT for `/dti` or `/atp` has no MAK or phone
/// activation (an older kms-client): one line saying so, exit 1.
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

fn usage(reason: &str) -> ExitCode {
    eprintln!("slmgr: {reason}\n{CLIENT_USAGE}");
    ExitCode::from(2)
}

fn str_or<'a>(v: &'a Value, default: &'a str) -> &'a str {
    v.as_str().unwrap_or(default)
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

#[cfg(test)]
mod tests {
    use kmslab_api::render::client_dli;
    use serde_json::json;

    use super::*;

    fn status(state: &str, minutes: u64, reason: Option<&str>) -> ClientStatus {
        serde_json::from_value(json!({
            "role": "client", "now": "2026-01-01T00:00:00Z",
            "product": {"name": "win7-enterprise", "display_name": "Windows(R) 7, Enterprise edition", "description": "d",
                        "partial_key": "HVTHH", "activation_id": "a", "application_id": "b", "required_count": 25},
            "status": state, "status_code": 1, "status_label": "label", "minutes_remaining": minutes, "notification_reason": reason,
            "cmid": "c", "previous_cmid": "00000000-0000-0000-0000-000000000000", "grace_end": null, "valid_until": null,
            "host": {}, "activation_interval": 120, "renewal_interval": 10080, "next_attempt": null, "attempt_in_progress": false,
            "epid": null, "current_count": null, "host_caching": true, "domain": null, "dns_server": null, "rearm_count": 3,
            "machine_name": "m", "vm": false, "state_save_error": null, "last_result": null,
        }))
        .unwrap()
    }

    fn line_with(text: &str, prefix: &str) -> String {
        text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix:?} in {text}")).to_owned()
    }

    #[test]
    fn day_counts_are_truncated_like_windows_7_slmgr_vbs() {
        let dli = client_dli(&status("initial_grace", 43_140, None), false, false).unwrap();
        assert_eq!(line_with(&dli, "Time remaining:"), "Time remaining: 43140 minute(s) (29 day(s))");
        let dli = client_dli(&status("licensed", 259_199, None), false, false).unwrap();
        assert_eq!(line_with(&dli, "Volume activation expiration:"), "Volume activation expiration: 259199 minute(s) (179 day(s))");
    }

    #[test]
    fn notification_reason_reads_as_slmgr_vbs_writes_it() {
        let check = |reason: Option<&str>, expected: &str| {
            let dli = client_dli(&status("notification", 0, reason), false, false).unwrap();
            assert_eq!(line_with(&dli, "Notification Reason:"), expected);
        };
        check(Some("0xC004F009"), "Notification Reason: 0xC004F009 (grace time expired).");
        check(None, "Notification Reason: 0xC004F009 (grace time expired).");
        check(Some("0xC004F200"), "Notification Reason: 0xC004F200 (non-genuine).");
        check(Some("0xC004F074"), "Notification Reason: 0xC004F074.");
    }
}
