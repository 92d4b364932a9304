//! The admin API: where it listens, its token, the names it answers to and the networks
//! that may read it or do everything without the token.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use kmslab_runtime::config::{ConfigError, Parsed};

use super::{Addr, HostConfig, Names, Outside};
use crate::access::Cidr;

/// An `--admin-host` name: a DNS name (letters, digits, `-`, `_`, dots), kept lower case
/// and without a final dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminHost(pub String);

impl FromStr for AdminHost {
    type Err = &'static str;

    fn from_str(v: &str) -> Result<Self, Self::Err> {
        let n = v.trim().strip_suffix('.').unwrap_or(v.trim()).to_ascii_lowercase();
        let label_ok = |l: &str| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if n.is_empty() || n.len() > 253 || !n.split('.').all(label_ok) {
            return Err("expected a DNS name such as kms1.lab.test (IP addresses are always accepted)");
        }
        Ok(AdminHost(n))
    }
}

section! {
    /// The admin API.
    pub struct Admin {
        /// Admin API / metrics / slmgr target address [127.0.0.1:8688].
        #[arg(long, env = "KMSLAB_ADMIN", value_name = "ADDR")]
        pub admin: Option<Parsed<Addr>>,
        /// Bearer token required by mutating admin requests from sources outside
        /// --admin-local-network (it also grants read access from anywhere).
        #[arg(long, env = "KMSLAB_ADMIN_TOKEN", value_name = "TOKEN", hide_env_values = true, conflicts_with = "admin_token_file")]
        pub admin_token: Option<String>,
        /// File holding the --admin-token on one line (keeps it out of `ps` and the environment).
        #[arg(long, env = "KMSLAB_ADMIN_TOKEN_FILE", value_name = "FILE")]
        pub admin_token_file: Option<PathBuf>,
        /// A name the admin API may be reached by, accepted in the `Host` header besides IP
        /// addresses and localhost (repeatable or comma separated; DNS rebinding defence).
        #[arg(long, env = "KMSLAB_ADMIN_HOST", value_name = "NAME", value_delimiter = ',')]
        pub admin_host: Option<Vec<Parsed<AdminHost>>>,
        /// Network whose sources may read the admin API, /metrics and the dashboard without the
        /// token (repeatable or comma separated) [none: only local sources may read].
        #[arg(long, env = "KMSLAB_ADMIN_READ_NETWORK", value_name = "CIDR", value_delimiter = ',')]
        pub admin_read_network: Option<Vec<Parsed<Cidr>>>,
        /// Sources treated as local by the admin API: everything allowed without the token
        /// (repeatable or comma separated) [127.0.0.0/8,::1/128].
        #[arg(long, env = "KMSLAB_ADMIN_LOCAL_NETWORK", value_name = "CIDR", value_delimiter = ',')]
        pub admin_local_network: Option<Vec<Parsed<Cidr>>>,
    }
}

impl Admin {
    pub(super) fn apply(self, n: &Names, outside: Outside, config: &mut HostConfig) -> Result<(), ConfigError> {
        if let Some(admin) = self.admin {
            config.admin = admin.0.0;
        }
        match (self.admin_token, self.admin_token_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(n.of("admin_token"), format!("give either it or {}, not both", n.of("admin_token_file"))));
            }
            // The value is never quoted: it is a secret.
            (Some(v), None) => {
                config.admin_token = Some(kmslab_admin::AdminToken::new(&v).map_err(|e| ConfigError::new(n.of("admin_token"), e))?)
            }
            (None, Some(path)) => {
                let name = n.of("admin_token_file");
                outside.may_read(&name, &path.display().to_string())?;
                config.admin_token = Some(kmslab_admin::AdminToken::from_file(Path::new(&path)).map_err(|e| ConfigError::new(name, e))?);
            }
            (None, None) => {}
        }
        if let Some(hosts) = self.admin_host {
            config.admin_hosts = hosts.into_iter().map(|h| h.0.0).collect();
        }
        if let Some(list) = self.admin_read_network {
            config.admin_read_networks = list.into_iter().map(|c| c.0).collect();
        }
        if let Some(list) = self.admin_local_network {
            config.admin_local_networks = list.into_iter().map(|c| c.0).collect();
        }
        Ok(())
    }
}
