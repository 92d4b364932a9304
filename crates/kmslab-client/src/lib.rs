//! kms-client: one volume-licensed machine running the KMS client over real TCP and DNS.
//!
//! The daemon is a thin driver around `kmslab_core::activator::Activator` (which holds
//! every KMS rule): [`daemon::drive`] sleeps on the simulated clock until the activator's
//! next timeout or a control command, runs its actions (SRV discovery through
//! `kmslab-dns`, a request to a host over TCP) as tasks, feeds the results back, logs the
//! events (12288/12289 with an `event_id` field) and saves the state atomically after
//! every change ([`persist`]). [`api`] serves the control API slmgr uses.
//!
//! Architecture invariant: no licensing decision is made here; the client only moves
//! bytes, time and files for the core, and converts its types to JSON.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod daemon;
pub mod net;
pub mod persist;

use std::sync::Arc;

use kmslab_core::rng::SplitMix64;
use kmslab_dns::DnsServerChoice;
use kmslab_runtime::SimClock;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Args, ClientConfig, ConfigError, Timeouts};

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The state directory holds an unreadable state, or saving failed at start.
    #[error(transparent)]
    State(#[from] persist::StateError),
    /// The clock settings are invalid.
    #[error(transparent)]
    Clock(#[from] kmslab_runtime::clock::ScaleError),
    /// Serving the control API failed.
    #[error("control API: {0}")]
    Admin(std::io::Error),
}

/// Runs one client machine until `shutdown` is cancelled; the state is saved on the way out.
pub async fn run(config: ClientConfig, admin: TcpListener, shutdown: CancellationToken) -> Result<(), RunError> {
    start(config)?.run(admin, shutdown).await
}

/// A client whose state file loaded and saved: ready to serve its control API and run.
/// `kms-client` says where it listens and tells systemd it is ready only once it has one.
#[derive(Debug)]
pub struct Started {
    config: ClientConfig,
    shared: Arc<daemon::Shared>,
}

/// Loads (or creates) the machine's state and saves it once, so that an unreadable or
/// unwritable state directory stops the client before it looks ready.
pub fn start(config: ClientConfig) -> Result<Started, RunError> {
    let clock = SimClock::new(config.time_scale, config.time_origin)?;
    let now = clock.now();
    let loaded = match &config.state_dir {
        Some(dir) => persist::load(dir, &config.catalog)?,
        None => None,
    };
    let first_start = loaded.is_none();
    let (hi, lo) = uuid::Uuid::new_v4().as_u64_pair();
    let mut rng = SplitMix64::new(hi ^ lo.rotate_left(17));
    let activator = daemon::initial_activator(&config, loaded, now, &mut rng);
    tracing::info!(
        cmid = %activator.cmid(),
        product = activator.product().map_or("(none)", |p| p.name.as_str()),
        status = activator.status().label(),
        first_start,
        "kms-client starting"
    );
    let shared = Arc::new(
        daemon::Shared::new(activator, rng, clock, config.catalog.clone(), config.state_dir.clone(), config.dns_server.clone())
            .with_activation_service(config.activation_service.clone()),
    );
    {
        let mut g = shared.lock();
        shared.save_if_changed(&mut g)?;
        if config.state_dir.is_none() {
            shared.mark_saved(&mut g);
        }
    }
    Ok(Started { config, shared })
}

impl Started {
    /// Serves the control API on `admin` and runs the machine until `shutdown`.
    pub async fn run(self, admin: TcpListener, shutdown: CancellationToken) -> Result<(), RunError> {
        let Started { config, shared } = self;
        serve(config, shared, admin, shutdown).await
    }
}

async fn serve(config: ClientConfig, shared: Arc<daemon::Shared>, admin: TcpListener, shutdown: CancellationToken) -> Result<(), RunError> {
    let net = net::Net::new(config.dns_server.clone().unwrap_or(DnsServerChoice::System), config.timeouts).with_psk(config.psk.clone());
    let app = api::router(shared.clone(), Arc::new(api::access_rules(&config, admin.local_addr().map_err(RunError::Admin)?)));
    let server_token = shutdown.clone();
    // The control API's connections are capped (in total, per source) and must send their
    // headers in time: a slow or silent peer cannot hold it (kmslab-admin).
    let (_, admin_cap) =
        kmslab_runtime::fdlimit::share(kmslab_runtime::fdlimit::nofile_limit(), usize::MAX, kmslab_admin::serve::DEFAULT_MAX_CONNECTIONS);
    let limits = kmslab_admin::ServeLimits { max_connections: admin_cap, ..Default::default() };
    let stats = Arc::new(kmslab_admin::ServeStats::default());
    let server = tokio::spawn(async move {
        kmslab_admin::serve(admin, app, limits, stats, server_token).await;
        Ok::<(), std::io::Error>(())
    });
    daemon::drive(shared, net, shutdown).await;
    // Open slmgr connections get a bounded grace period to finish.
    match tokio::time::timeout(std::time::Duration::from_secs(5), server).await {
        Ok(Ok(Err(e))) => return Err(RunError::Admin(e)),
        Ok(_) => {}
        Err(_) => tracing::warn!("control API did not stop within 5 s"),
    }
    Ok(())
}
