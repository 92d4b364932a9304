//! slmgr: manage kmslab KMS hosts and clients with the verbs of Windows' slmgr.vbs.
//!
//! `slmgr [--target ADDR] [--machine NAME] [--json] [--admin-token T] VERB [ARGS]`. Verbs
//! are accepted as `/dli`, `-dli` or `--dli`; the command line is parsed by
//! [`kmslab_slmgr::parse`] (clap). The target defaults to the local client daemon
//! (127.0.0.1:8689); slmgr asks the target's `/api/v1/status` whether it is a host or a
//! client and runs the verb with the matching module. With `--machine NAME` the target is a
//! lab's control plane and every request goes to `/api/v1/lab/machines/NAME/...`.
//! `/explain` needs no daemon.
#![forbid(unsafe_code)]

mod api;
mod client;
mod explain;
mod host;

use std::process::ExitCode;
use std::time::Duration;

use api::Ctx;

use kmslab_slmgr::{CLIENT_VERBS, HOST_VERBS, ParseError, USAGE};

fn main() -> ExitCode {
    let inv = match kmslab_slmgr::parse(std::env::args().skip(1), |name| std::env::var(name).ok()) {
        Ok(inv) => inv,
        Err(ParseError::Display(text)) => {
            let _ = text.print();
            return ExitCode::SUCCESS;
        }
        Err(ParseError::Usage(reason)) => return usage_error(&reason),
    };
    let verb = inv.verb.as_str();
    if verb == "explain" {
        return explain::run(inv.args.first().map(String::as_str), inv.json);
    }
    let ctx = Ctx { target: inv.target, json: inv.json, token: inv.token, timeout: Duration::from_secs(120), machine: inv.machine };
    let role = match ctx.get("/api/v1/status") {
        // A lab machine is a client; its status document says so too.
        Ok(reply) if ctx.machine.is_some() && reply.status == 404 => {
            eprintln!(
                "slmgr: the lab at {} has no machine {:?} (GET {}: HTTP 404)",
                ctx.target,
                ctx.machine.as_deref().unwrap_or_default(),
                ctx.path("/api/v1/status")
            );
            return ExitCode::from(1);
        }
        Ok(reply) => match reply.ok() {
            Ok(status) => match status.get("role").and_then(|r| r.as_str()) {
                Some(role) => role.to_owned(),
                None if ctx.machine.is_some() => "client".to_owned(),
                None => String::new(),
            },
            Err(e) => {
                eprintln!("slmgr: {e:#}");
                return ExitCode::from(1);
            }
        },
        Err(e) => {
            eprintln!("slmgr: {e:#}");
            return ExitCode::from(1);
        }
    };
    let result = match role.as_str() {
        "host" if HOST_VERBS.contains(&verb) => host::run(&ctx, verb, &inv.args),
        "client" if CLIENT_VERBS.contains(&verb) => client::run(&ctx, verb, &inv.args),
        "host" | "client" => {
            let on = match &ctx.machine {
                Some(name) => format!("lab machine {name} at {}", ctx.target),
                None => format!("daemon at {}", ctx.target),
            };
            return usage_error(&format!("\"/{verb}\" is not a verb for a KMS {role} (the {on})"));
        }
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
