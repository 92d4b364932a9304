//! The stop signal every kmslab process obeys: SIGTERM or Ctrl-C (SIGINT).

/// Resolves at the first SIGTERM or Ctrl-C; with no SIGTERM handler available, at Ctrl-C.
pub async fn shutdown_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
