//! kmslab's simulated Microsoft activation service (`kmslab activation-service`).
//!
//! It never contacts anyone: it is the lab's stand-in for Microsoft's hosted activation,
//! holding MAKs with their activation counts and KMS host keys ([`keys`]), deciding online
//! and phone activations ([`service`]), answering kmslab's wire protocol ([`serve`]) and an
//! admin API behind kmslab-admin's guard ([`admin`]). Its state (counts used and added,
//! blocking, which installation each key activated) is kept in SQLite by
//! `kmslab_store::mak`, under `--data-dir`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cil;
pub mod keys;
pub mod serve;
pub mod service;

use std::path::PathBuf;
use std::sync::Arc;

use kmslab_core::catalog::Catalog;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use keys::{Keys, MakSpec};
pub use service::{KeyStatus, Service};

/// Name of the state file in `--data-dir`.
pub const STATE_FILE: &str = "activation.sqlite";

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The keys file could not be read.
    #[error("--keys {path}: {error}")]
    ReadKeys {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The keys file is invalid.
    #[error("--keys {path}: {reason}")]
    BadKeys {
        /// The file.
        path: PathBuf,
        /// What is wrong (names the key).
        reason: String,
    },
    /// The state could not be opened.
    #[error("--data-dir: {0}")]
    Store(#[from] kmslab_store::StoreError),
}

/// Loads `keys_path` (checked against `catalog`) and opens the state in `data_dir`.
pub fn start(keys_path: &std::path::Path, data_dir: &std::path::Path, catalog: &Catalog) -> Result<Service, StartError> {
    let text = std::fs::read_to_string(keys_path).map_err(|error| StartError::ReadKeys { path: keys_path.to_owned(), error })?;
    let keys = Keys::parse(&text, catalog).map_err(|reason| StartError::BadKeys { path: keys_path.to_owned(), reason })?;
    let store = kmslab_store::mak::MakStore::open(&data_dir.join(STATE_FILE))?;
    tracing::info!(maks = keys.maks.len(), host_keys = keys.host_keys.len(), "activation service keys loaded");
    Ok(Service::new(keys, store))
}

/// Serves the wire protocol on `listener` and, when given, the admin API on `admin`, until
/// `shutdown`.
pub async fn run(service: Service, listener: TcpListener, admin: Option<TcpListener>, shutdown: CancellationToken) -> std::io::Result<()> {
    let service = Arc::new(service);
    let admin_task = match admin {
        Some(admin) => {
            let access = Arc::new(kmslab_admin::AdminAccess::new("activation-service", admin.local_addr()?));
            let app = admin::router(Arc::clone(&service), access);
            let stats = Arc::new(kmslab_admin::ServeStats::default());
            let token = shutdown.clone();
            Some(tokio::spawn(async move { kmslab_admin::serve(admin, app, kmslab_admin::ServeLimits::default(), stats, token).await }))
        }
        None => None,
    };
    serve::serve(listener, service, shutdown).await;
    if let Some(task) = admin_task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }
    Ok(())
}
