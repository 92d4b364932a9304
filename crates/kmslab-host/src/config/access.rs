//! Who may send KMS requests and how much: source networks, the per-source rate limit,
//! the pre-shared key of authenticated framing, and the connection caps.

use std::path::PathBuf;
use std::time::Duration;

use kmslab_runtime::config::{ConfigError, Parsed, Ranged};

use super::{HostConfig, Names, Outside};
use crate::access::{Cidr, RateLimit};

/// A connection cap.
pub type Connections = Ranged<1, 1_000_000>;

section! {
    /// KMS access control and limits.
    pub struct Access {
        /// Only sources in CIDR may send KMS requests (repeatable or comma separated); others
        /// are closed at accept [everyone].
        #[arg(long, env = "KMSLAB_ALLOW", value_name = "CIDR", value_delimiter = ',')]
        pub allow: Option<Vec<Parsed<Cidr>>>,
        /// Per-source token bucket: PER_SECOND[,BURST] requests per source address; requests
        /// over it get 0xA04B0001 [off].
        #[arg(long, env = "KMSLAB_RATE_LIMIT", value_name = "PER_SECOND[,BURST]")]
        pub rate_limit: Option<Parsed<RateLimit>>,
        /// Pre-shared key file: every frame must carry an HMAC-SHA256 made with it, answers
        /// carry one too (docs/protocol.md) [off].
        #[arg(long, env = "KMSLAB_PSK", value_name = "FILE")]
        pub psk: Option<PathBuf>,
        /// Most concurrent KMS connections (1..=1000000) [1024, lowered to fit the open-files limit].
        #[arg(long, env = "KMSLAB_MAX_CONNECTIONS", value_name = "N")]
        pub max_connections: Option<Connections>,
        /// Most concurrent KMS connections from one source address (1..=1000000); more are
        /// closed at accept [half of --max-connections].
        #[arg(long, env = "KMSLAB_MAX_CONNECTIONS_PER_SOURCE", value_name = "N")]
        pub max_connections_per_source: Option<Connections>,
        /// Seconds a KMS connection may stay idle (1..=86400) [30].
        #[arg(long, env = "KMSLAB_IDLE_TIMEOUT", value_name = "SECS")]
        pub idle_timeout: Option<Ranged<1, 86_400>>,
    }
}

impl Access {
    pub(super) fn apply(self, n: &Names, outside: Outside, config: &mut HostConfig) -> Result<(), ConfigError> {
        if let Some(list) = self.allow {
            config.allow = list.into_iter().map(|c| c.0).collect();
        }
        config.rate_limit = self.rate_limit.map(|r| r.0);
        if let Some(path) = self.psk {
            let name = n.of("psk");
            outside.may_read(&name, &path.display().to_string())?;
            config.psk = Some(kmslab_runtime::psk::load(&path).map_err(|e| ConfigError::new(name, e))?);
        }
        // Within `Connections`, which fits a usize.
        if let Some(cap) = self.max_connections {
            config.max_connections = cap.get() as usize;
        }
        config.max_connections_per_source = self.max_connections_per_source.map(|cap| cap.get() as usize);
        if let Some(secs) = self.idle_timeout {
            config.idle_timeout = Duration::from_secs(secs.get());
        }
        Ok(())
    }
}
