//! The kmslab KMS host daemon as a library: `kms-host` is a thin `main` around [`run`].
//!
//! [`run`] takes already-bound listeners (so tests and `kmslab up` use port 0 and learn the
//! real ports), a validated [`HostConfig`] and a [`CancellationToken`]. It opens the
//! registry, restores counters, ePID and settings, serves KMS requests and the admin API,
//! and on cancellation drains in-flight requests within a grace period, flushes and closes
//! the registry.
//!
//! Every request is handled by the core [`Ledger`](kmslab_core::ledger::Ledger), recorded in
//! the registry (client row, counters and its 12290 event as one journaled write, folded
//! into the tables in one transaction), and answered only after the registry stored it
//! (its journal group on the disk).
//!
//! **Architecture Invariant:** KMS behaviour (counting, refusals, intervals) lives in
//! `kmslab-core`; this crate only feeds it sockets and time, and persists what it decides.
//! DNS publishing ([`publish`]) schedules and reports updates; the DNS protocol itself is
//! `kmslab-dns`'s.
#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod config;
// pages.rs times a page render in real time (the render-duration metric).
#[allow(clippy::disallowed_methods)]
pub mod dashboard;
pub mod events_csv;
pub mod faults;
pub mod genuine;
pub mod metrics;
pub mod publish;
pub mod series;
mod serve;
// state.rs stamps a start-up marker with the wall clock, not simulated time.
#[allow(clippy::disallowed_methods)]
pub mod state;
pub mod status;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::HostConfig;
pub use state::{HostState, StartError, stored_port};

/// Runs the host until `shutdown` is cancelled. Returns after the registry is closed.
pub async fn run(
    listeners: Vec<TcpListener>,
    admin: TcpListener,
    config: HostConfig,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    start(listeners, admin, config).await?.serve(shutdown).await
}

/// A host whose registry is open and whose start-up checks passed, not serving yet.
/// `kms-host` prints `listening on ...` and tells systemd it is ready only once it has
/// one, so a host that cannot start never looks ready.
#[derive(Debug)]
pub struct Started {
    listeners: Vec<TcpListener>,
    admin: TcpListener,
    config: HostConfig,
    state: HostState,
}

/// Opens and checks the registry and restores counters, ePID and settings (see
/// [`HostState::open`]) for the given listeners.
pub async fn start(listeners: Vec<TcpListener>, admin: TcpListener, config: HostConfig) -> Result<Started, StartError> {
    let kms_addrs = listeners.iter().map(TcpListener::local_addr).collect::<Result<Vec<_>, _>>()?;
    let admin_addr = admin.local_addr()?;
    let state = {
        // Opening the registry blocks (SQLite, the start-up check, first ePID write).
        let config = config.clone();
        tokio::task::spawn_blocking(move || HostState::open(config, kms_addrs, admin_addr))
            .await
            .map_err(|e| StartError::Io(std::io::Error::other(e)))??
    };
    Ok(Started { listeners, admin, config, state })
}

impl Started {
    /// Serves until `shutdown` is cancelled. Returns after the registry is closed.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let Started { listeners, admin, config, state } = self;
        run_started(listeners, admin, config, state, shutdown).await
    }
}

async fn run_started(
    listeners: Vec<TcpListener>,
    admin: TcpListener,
    config: HostConfig,
    state: HostState,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let srv_port = state.kms_addrs.first().map(|a| a.port());
    let grace = config.shutdown_grace;
    // The open-files limit is shared out so that admin connections can never take the
    // descriptors the KMS listener needs (docs/reliability.md, "Threat model").
    let fd_limit = kmslab_runtime::fdlimit::nofile_limit();
    let (max_connections, admin_cap) =
        kmslab_runtime::fdlimit::share(fd_limit, config.max_connections, kmslab_admin::serve::DEFAULT_MAX_CONNECTIONS);
    if max_connections < config.max_connections {
        tracing::warn!(
            max_connections = config.max_connections,
            lowered_to = max_connections,
            open_files_limit = fd_limit,
            "--max-connections lowered to fit the open-files limit (raise LimitNOFILE / ulimit -n)"
        );
    }
    let per_source = kmslab_runtime::slots::PerSource::new(config.per_source_cap(max_connections));
    let state = Arc::new(state);
    let limit = Arc::new(Semaphore::new(max_connections));
    let tracker = TaskTracker::new();
    let mut accept_loops = Vec::new();
    for listener in listeners {
        accept_loops.push(tokio::spawn(serve::accept_loop(
            listener,
            Arc::clone(&state),
            Arc::clone(&limit),
            Arc::clone(&per_source),
            tracker.clone(),
            shutdown.clone(),
        )));
    }
    // Publishing has its own token so that it can still unpublish after the listeners stop.
    let dns_shutdown = CancellationToken::new();
    let dns_task = srv_port.map(|port| {
        let recorder = publish::Recorder { clock: state.clock, store: state.store.clone() };
        tokio::spawn(publish::run(Arc::clone(&state.dns), recorder, port, dns_shutdown.clone()))
    });
    let admin_shutdown = shutdown.clone();
    tokio::spawn(dashboard::alerts::watch(Arc::clone(&state), shutdown.clone()));
    tokio::spawn(validate_genuine(Arc::clone(&state), shutdown.clone()));
    let admin_limits = kmslab_admin::ServeLimits { max_connections: admin_cap, ..Default::default() };
    let admin_access = admin::access_rules(&config, state.admin_addr);
    let admin_task = tokio::spawn(async move {
        // Each request carries its peer address: the admin API's rules are per source.
        let app = admin::router(Arc::clone(&state), admin_access);
        kmslab_admin::serve(admin, app, admin_limits, Arc::clone(&state.metrics.admin), admin_shutdown).await;
        state
    });
    let allow: Vec<String> = config.allow.iter().map(ToString::to_string).collect();
    let admin_read: Vec<String> = config.admin_read_networks.iter().map(ToString::to_string).collect();
    tracing::info!(
        allow = %if allow.is_empty() { "everyone".to_owned() } else { allow.join(",") },
        rate_limit = ?config.rate_limit.map(|l| (l.per_second, l.burst)),
        psk = config.psk.is_some(),
        admin_read_network = %admin_read.join(","),
        admin_token = config.admin_token.is_some(),
        max_connections,
        max_connections_per_source = per_source.cap(),
        admin_max_connections = admin_cap,
        "access control"
    );
    tracing::info!("kms-host running");
    shutdown.cancelled().await;
    tracing::info!("shutting down: draining connections");
    for task in accept_loops {
        let _ = task.await;
    }
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(grace_ms = grace.as_millis() as u64, "connections still open after the grace period; closing them");
    }
    dns_shutdown.cancel();
    if let Some(task) = dns_task
        && tokio::time::timeout(grace, task).await.is_err()
    {
        tracing::warn!("DNS publishing did not stop within the grace period");
    }
    let state = match tokio::time::timeout(grace, admin_task).await {
        Ok(Ok(state)) => state,
        _ => {
            tracing::warn!("admin API did not stop within the grace period");
            return Ok(());
        }
    };
    if let Err(err) = state.store.flush().await {
        tracing::error!(error = %err, "final registry flush failed");
    }
    let store = state.store.clone();
    let _ = tokio::task::spawn_blocking(move || store.close()).await;
    tracing::info!("registry closed; bye");
    Ok(())
}

/// The genuine validation task (`genuine`): with an activation service, the host key is
/// validated at start, then once a day of simulated time, until `shutdown`.
async fn validate_genuine(state: Arc<HostState>, shutdown: CancellationToken) {
    if !state.genuine.configured() {
        return;
    }
    loop {
        if state.genuine.key().is_some() {
            state.validate_genuine().await;
        }
        let next =
            kmslab_core::Timestamp::from_unix_ms(state.now().as_unix_ms().saturating_add(kmslab_core::genuine::VALIDATION_INTERVAL_MS));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(state.clock.deadline(next)) => {}
        }
    }
}
