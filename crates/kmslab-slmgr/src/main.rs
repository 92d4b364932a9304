//! slmgr: manage kmslab KMS hosts and clients with the verbs of Windows' slmgr.vbs.
//!
//! `slmgr [--target ADDR] [--json] [--admin-token T] VERB [ARGS]`. Verbs are accepted as
//! `/dli`, `-dli` or `--dli`. The target defaults to the local client daemon
//! (127.0.0.1:8689); slmgr asks the target's `/api/v1/status` whether it is a host or a
//! client and runs the verb with the matching module. `/explain` needs no daemon.
#![forbid(unsafe_code)]

mod api;
mod client;
mod explain;
mod host;

use std::process::ExitCode;
use std::time::Duration;

use api::Ctx;

use kmslab_slmgr::{CLIENT_VERBS, HOST_VERBS, USAGE};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut target = std::env::var("KMSLAB_SLMGR_TARGET").unwrap_or_else(|_| "127.0.0.1:8689".into());
    let mut json = false;
    let mut token = std::env::var("KMSLAB_ADMIN_TOKEN").ok();
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--target" => match it.next() {
                Some(t) => target = t,
                None => return usage_error("--target needs an address (HOST:PORT)"),
            },
            "--admin-token" => match it.next() {
                Some(t) => token = Some(t),
                None => return usage_error("--admin-token needs a value"),
            },
            "--json" => json = true,
            "-h" | "--help" | "/?" | "-?" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("slmgr {}", kmslab_runtime::VERSION);
                return ExitCode::SUCCESS;
            }
            _ => rest.push(a),
        }
    }
    let rest = match kmslab_slmgr::split_machine(&rest) {
        Ok((Some(machine), verb_and_args)) => {
            target = machine.target;
            token = machine.token.or(token);
            verb_and_args.to_vec()
        }
        Ok((None, _)) => rest,
        Err(reason) => return usage_error(&reason),
    };
    let Some(first) = rest.first() else { return usage_error("no verb given") };
    let verb = first.trim_start_matches(['/', '-']).to_ascii_lowercase();
    let verb_args = &rest[1..];
    if verb == "explain" {
        return explain::run(verb_args.first().map(String::as_str), json);
    }
    if !CLIENT_VERBS.contains(&verb.as_str()) && !HOST_VERBS.contains(&verb.as_str()) {
        return match kmslab_slmgr::nearest_verb(first) {
            Some(meant) => usage_error(&format!("unknown verb {first:?} (did you mean /{meant}?)")),
            None => usage_error(&format!("unknown verb {first:?}")),
        };
    }
    let ctx = Ctx { target, json, token, timeout: Duration::from_secs(120) };
    let role = match ctx.get("/api/v1/status").and_then(|r| r.ok()) {
        Ok(status) => status.get("role").and_then(|r| r.as_str()).unwrap_or("").to_owned(),
        Err(e) => {
            eprintln!("slmgr: {e:#}");
            return ExitCode::from(1);
        }
    };
    let result = match role.as_str() {
        "host" if HOST_VERBS.contains(&verb.as_str()) => host::run(&ctx, &verb, verb_args),
        "client" if CLIENT_VERBS.contains(&verb.as_str()) => client::run(&ctx, &verb, verb_args),
        "host" | "client" => return usage_error(&format!("{first:?} is not a verb for a KMS {role} (the daemon at {})", ctx.target)),
        other => {
            eprintln!("slmgr: the daemon at {} is not a kmslab host or client (role {other:?})", ctx.target);
            return ExitCode::from(1);
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("slmgr: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn usage_error(reason: &str) -> ExitCode {
    eprintln!("slmgr: {reason}\n{USAGE}");
    ExitCode::from(2)
}
