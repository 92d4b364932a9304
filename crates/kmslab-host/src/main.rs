//! `kms-host`: parse and validate the config, bind every socket, print where, run.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use kmslab_host::config::{self, LoadError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let config = match config::load(std::env::args_os()) {
        Ok(c) => c,
        Err(LoadError::Clap(e)) => return kmslab_runtime::usage::exit_on_clap_error("kms-host", &e),
        Err(LoadError::Config(e)) => {
            eprintln!("kms-host: {e}");
            return ExitCode::from(2);
        }
    };
    kmslab_runtime::logging::init(config.log_format, "info");
    // Every descriptor the hard limit allows: the connection caps are sized from it (`run`).
    let open_files = kmslab_runtime::fdlimit::raise_nofile_limit();
    tracing::debug!(open_files, "open-files limit");
    let mut config = config;
    if !config.listen_explicit
        && let Some(port) = kmslab_host::stored_port(&config)
    {
        // `/sprt` takes effect at the next start, unless --listen says otherwise.
        for addr in &mut config.listen {
            addr.set_port(port);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kms-host: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kms-host: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn serve(config: kmslab_host::HostConfig) -> anyhow::Result<()> {
    let mut listeners = Vec::new();
    for addr in &config.listen {
        listeners.push(bind(*addr).await.with_context(|| format!("cannot listen on {addr}"))?);
    }
    let admin = bind(config.admin).await.with_context(|| format!("cannot listen on admin {}", config.admin))?;
    let kms_addrs = listeners.iter().map(TcpListener::local_addr).collect::<Result<Vec<_>, _>>()?;
    let admin_addr = admin.local_addr()?;
    let registry = config.registry_path();
    let registry = std::path::absolute(&registry).unwrap_or(registry);
    // The registry is opened and checked before the host says where it listens: a host
    // that cannot serve never looks ready (the start error is the last word).
    let started = kmslab_host::start(listeners, admin, config).await?;
    // Without --data-dir the registry is made in the working directory: say where.
    println!("registry {}", registry.display());
    for addr in &kms_addrs {
        println!("listening on kms {addr}");
    }
    println!("listening on admin {admin_addr}");
    // Every socket is bound and the registry is sound: systemd (Type=notify) may start
    // dependants now.
    kmslab_runtime::notify::ready();
    let shutdown = CancellationToken::new();
    let signal_token = shutdown.clone();
    tokio::spawn(async move {
        kmslab_runtime::signal::shutdown_requested().await;
        tracing::info!("signal received");
        kmslab_runtime::notify::stopping();
        signal_token.cancel();
    });
    started.serve(shutdown).await?;
    Ok(())
}

async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    // SO_REUSEADDR lets a restarted host bind at once while old connections sit in TIME_WAIT.
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
