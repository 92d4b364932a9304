//! What the host answers KMS clients with: listeners, host key groups, its host key and
//! activation service (genuine validation), its activation,
//! the intervals and ePID it sends, and the product catalog it knows.

use std::path::PathBuf;
use std::sync::Arc;

use kmslab_core::catalog::Catalog;
use kmslab_runtime::config::{ConfigError, Parsed, Ranged};

use super::{Addr, Epid, HostConfig, Names, Outside};

/// An activation or renewal interval, minutes (the range of `ledger::INTERVAL_RANGE`).
pub type Interval = Ranged<15, 43_200>;

section! {
    /// KMS answers.
    pub struct Kms {
        /// KMS listener (repeatable; IPv6 as [::]:1688) [0.0.0.0:1688].
        #[arg(long, env = "KMSLAB_LISTEN", value_name = "ADDR", value_delimiter = ',')]
        pub listen: Option<Vec<Parsed<Addr>>>,
        /// Host key group(s), comma separated: client-vl, kms-a, kms-b, kms-c, office-2010 [kms-b].
        #[arg(long, env = "KMSLAB_HOST_KEY_GROUP", value_name = "G")]
        pub host_key_group: Option<String>,
        /// The host's own activation is missing: answer 0xC004F041.
        #[arg(long, env = "KMSLAB_UNACTIVATED", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
        pub unactivated: Option<bool>,
        /// KMS host key (a lab key, LABH…) installed at the first start; `slmgr /ipk` replaces it.
        #[arg(long, env = "KMSLAB_HOST_KEY", value_name = "KEY")]
        pub host_key: Option<String>,
        /// Activation service (HOST:PORT) the host validates its host key with, at start, daily, on /ipk and /ato.
        #[arg(long, env = "KMSLAB_ACTIVATION_SERVICE", value_name = "HOST:PORT")]
        pub activation_service: Option<String>,
        /// Activation interval sent to clients, minutes (15..43200) [120, or the value set by /sai].
        #[arg(long, env = "KMSLAB_ACTIVATION_INTERVAL", value_name = "MIN")]
        pub activation_interval: Option<Interval>,
        /// Renewal interval sent to clients, minutes (15..43200) [10080, or the value set by /sri].
        #[arg(long, env = "KMSLAB_RENEWAL_INTERVAL", value_name = "MIN")]
        pub renewal_interval: Option<Interval>,
        /// Fixed ePID [generated once, kept in the data dir].
        #[arg(long, env = "KMSLAB_EPID", value_name = "EPID")]
        pub epid: Option<Parsed<Epid>>,
        /// Extra product catalog (TOML, same format as the built-in one).
        #[arg(long, env = "KMSLAB_CATALOG", value_name = "FILE")]
        pub catalog: Option<PathBuf>,
    }
}

impl Kms {
    pub(super) fn apply(self, n: &Names, outside: Outside, config: &mut HostConfig) -> Result<(), ConfigError> {
        if let Some(list) = self.listen {
            if list.is_empty() {
                return Err(ConfigError::new(n.of("listen"), "at least one address is needed"));
            }
            config.listen = list.into_iter().map(|a| a.0.0).collect();
            config.listen_explicit = true;
        }
        if let Some(path) = self.catalog {
            let (name, v) = (n.of("catalog"), path.display().to_string());
            outside.may_read(&name, &v)?;
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::value(&name, &v, e))?;
            let mut catalog = Catalog::builtin();
            catalog.extend_from_toml(&text).map_err(|e| ConfigError::value(&name, &v, e))?;
            config.catalog = Arc::new(catalog);
        }
        if let Some(v) = self.host_key_group {
            let name = n.of("host_key_group");
            let groups: Vec<String> = v.split(',').map(|g| g.trim().to_owned()).filter(|g| !g.is_empty()).collect();
            if groups.is_empty() {
                return Err(ConfigError::value(name, v, "at least one host key group is needed"));
            }
            for g in &groups {
                if config.catalog.host_key_group(g).is_none() {
                    let known: Vec<&str> = config.catalog.host_key_groups().iter().map(|h| h.name.as_str()).collect();
                    return Err(ConfigError::value(name, g, format!("unknown host key group (known: {})", known.join(", "))));
                }
            }
            config.host_key_groups = groups;
        }
        if let Some(unactivated) = self.unactivated {
            config.activated = !unactivated;
        }
        if let Some(v) = self.host_key {
            let name = n.of("host_key");
            match kmslab_core::labkey::parse(&v) {
                Ok((kmslab_core::labkey::LabKeyKind::HostKey, key)) => config.host_key = Some(key),
                Ok((kind, _)) => return Err(ConfigError::value(name, v, format!("is a lab {}, not a KMS host key (LABH…)", kind.label()))),
                Err(why) => return Err(ConfigError::value(name, v, why)),
            }
        }
        if let Some(v) = self.activation_service {
            let name = n.of("activation_service");
            let addr = v.parse::<kmslab_core::hostaddr::HostAddr>().map_err(|e| ConfigError::value(&name, &v, e.to_string()))?;
            config.activation_service = Some(addr);
        }
        // Within `Interval`, which is within u32.
        config.activation_interval = self.activation_interval.map(|m| m.get() as u32);
        config.renewal_interval = self.renewal_interval.map(|m| m.get() as u32);
        config.epid = self.epid.map(|e| e.0.0);
        Ok(())
    }
}
