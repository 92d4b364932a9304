//! `kms-client`: parses the configuration, binds the control API and runs the client.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use kmslab_client::{Args, ClientConfig};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => return kmslab_runtime::usage::exit_on_clap_error("kms-client", &e),
    };
    let config = match ClientConfig::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kms-client: {e}");
            return ExitCode::from(2);
        }
    };
    kmslab_runtime::logging::init(config.log_format, "info");
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kms-client: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kms-client: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn serve(config: ClientConfig) -> anyhow::Result<()> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(config.admin).await.with_context(|| format!("cannot bind --admin {}", config.admin))?;
    println!("listening on admin {}", listener.local_addr()?);
    // The control API is bound: systemd (Type=notify) may start dependants now.
    kmslab_runtime::notify::ready();
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        kmslab_runtime::signal::shutdown_requested().await;
        tracing::info!("stop signal received");
        kmslab_runtime::notify::stopping();
        signals.cancel();
    });
    kmslab_client::run(config, listener, shutdown).await?;
    Ok(())
}
