//! Where the registry lives, how hard its commits reach the disk, and whether the count
//! is restored from it at start.

use std::path::PathBuf;
use std::str::FromStr;

use kmslab_runtime::config::{ConfigError, Parsed};
use kmslab_store::Synchronous;

use super::{HostConfig, Names};

/// `--registry-sync full|normal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncMode(pub Synchronous);

impl FromStr for SyncMode {
    type Err = &'static str;

    fn from_str(v: &str) -> Result<Self, Self::Err> {
        match v {
            "full" => Ok(SyncMode(Synchronous::Full)),
            "normal" => Ok(SyncMode(Synchronous::Normal)),
            _ => Err("expected full or normal"),
        }
    }
}

section! {
    /// The registry.
    pub struct Registry {
        /// Directory of the SQLite registry (DIR/registry.sqlite), created if missing; the
        /// host prints `registry PATH` at start [kms-host-data, in the working directory].
        #[arg(long, env = "KMSLAB_DATA_DIR", value_name = "DIR")]
        pub data_dir: Option<PathBuf>,
        /// Restore the count (CMIDs seen in the last 30 days) from the registry at start.
        #[arg(long, env = "KMSLAB_KEEP_COUNT", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
        pub keep_count: Option<bool>,
        /// Registry commit durability: `full` (fsync every commit: survives a power cut) or
        /// `normal` (survives kill -9, not a power cut) [full].
        #[arg(long, env = "KMSLAB_REGISTRY_SYNC", value_name = "MODE")]
        pub registry_sync: Option<Parsed<SyncMode>>,
    }
}

impl Registry {
    pub(super) fn apply(self, _: &Names, config: &mut HostConfig) -> Result<(), ConfigError> {
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        if let Some(keep) = self.keep_count {
            config.keep_count = keep;
        }
        if let Some(mode) = self.registry_sync {
            config.registry_sync = mode.0.0;
        }
        Ok(())
    }
}
