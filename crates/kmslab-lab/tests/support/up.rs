//! `kmslab up` started on port 0 for a lab test (kmslab-test-support's `Daemon`): its lab
//! control API address and its own `XDG_RUNTIME_DIR`; killed on drop.

use std::net::SocketAddr;
use std::path::Path;

use kmslab_test_support::Daemon;

/// A running `kmslab up`; killed on drop.
pub struct Up {
    pub daemon: Daemon,
    pub lab: SocketAddr,
    runtime: tempfile::TempDir,
}

impl Up {
    /// `clients` machines at 28800x: renewals (7 days) every 21 real seconds, and the
    /// host's 4-hour clock tolerance is half a real second, more than a loaded box delays
    /// a request.
    pub fn start(clients: usize) -> Up {
        let runtime = tempfile::tempdir().unwrap();
        let cmd = kmslab_test_support::kmslab_up(
            env!("CARGO_BIN_EXE_kmslab"),
            runtime.path(),
            &["--clients", &clients.to_string(), "--time-scale", "28800"],
        );
        let daemon = Daemon::spawn(cmd, &["lab"]);
        Up { lab: daemon.addr("lab"), daemon, runtime }
    }

    /// Its `XDG_RUNTIME_DIR` (where the lab address file is).
    pub fn runtime_dir(&self) -> &Path {
        self.runtime.path()
    }

    /// `http://LAB{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.lab)
    }
}
