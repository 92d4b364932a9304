//! slmgr's host verbs (filled in with the host daemon).

use std::process::ExitCode;

use crate::api::Ctx;

/// Runs one host verb against the daemon at `ctx.target`.
pub fn run(ctx: &Ctx, verb: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    let _ = (ctx, args);
    anyhow::bail!("/{verb} is not implemented for a KMS host yet")
}
