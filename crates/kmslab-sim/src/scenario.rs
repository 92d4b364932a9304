//! The scenario file: hosts, DNS, MAKs, client cohorts and the horizon (`docs/sim.md`).

use kmslab_core::Timestamp;
use kmslab_core::catalog::Catalog;
use kmslab_core::ledger::validate_interval;
use serde::Deserialize;

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Free text shown in the summary.
    #[serde(default)]
    pub name: String,
    /// Simulated start (RFC 3339) [2026-01-01T00:00:00Z].
    #[serde(default = "default_start")]
    pub start: String,
    /// Days to simulate.
    pub days: u32,
    /// Seed used when `--seed` is not given.
    #[serde(default)]
    pub seed: u64,
    /// The DNS domain hosts publish in and clients search.
    #[serde(default = "default_domain")]
    pub domain: String,
    /// DNS server behaviour.
    #[serde(default)]
    pub dns: Dns,
    /// The KMS hosts.
    #[serde(rename = "host", default)]
    pub hosts: Vec<Host>,
    /// The client cohorts.
    #[serde(rename = "cohort", default)]
    pub cohorts: Vec<Cohort>,
    /// Multiple Activation Keys of the lab's activation service, used by MAK cohorts.
    #[serde(rename = "mak", default)]
    pub maks: Vec<Mak>,
}

/// A Multiple Activation Key and its activation count.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mak {
    /// Short name, used by cohorts (`mak = "NAME"`), in the timeline and on the plot.
    pub name: String,
    /// Activations the key starts with.
    pub count: u32,
    /// Catalog names of the products it activates [the products of the cohorts using it].
    #[serde(default)]
    pub products: Vec<String>,
    /// `[day, count]`: activations the Activation Center adds on that day.
    #[serde(default)]
    pub add: Vec<[u32; 2]>,
}

/// DNS server behaviour.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// Day ranges `[from, to)` during which the DNS server is down.
    #[serde(default)]
    pub outages: Vec<[u32; 2]>,
}

/// One KMS host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Short name; the host is reachable as `<name>.<domain>:1688`.
    pub name: String,
    /// SRV priority [0].
    #[serde(default)]
    pub priority: u16,
    /// SRV weight [0].
    #[serde(default)]
    pub weight: u16,
    /// Host key groups [`["kms-b"]`].
    #[serde(default = "default_key_groups")]
    pub key_groups: Vec<String>,
    /// Activation interval sent to clients [120].
    #[serde(default = "default_activation_interval")]
    pub activation_interval: u32,
    /// Renewal interval sent to clients [10080].
    #[serde(default = "default_renewal_interval")]
    pub renewal_interval: u32,
    /// False: the host's own activation is missing (0xC004F041) [true].
    #[serde(default = "yes")]
    pub activated: bool,
    /// False: DNS refuses its SRV record, so clients never discover it [true].
    #[serde(default = "yes")]
    pub publish: bool,
    /// Day the host is installed [0]; before that it neither answers nor is published.
    #[serde(default)]
    pub start_day: u32,
    /// Day ranges `[from, to)` during which the host is down (its SRV record stays:
    /// a stale record pointing at a dead host).
    #[serde(default)]
    pub outages: Vec<[u32; 2]>,
    /// Days on which the host restarts (its count starts again from zero).
    #[serde(default)]
    pub restarts: Vec<u32>,
    /// Day the host is decommissioned for good; its SRV record stays (stale).
    pub decommission_day: Option<u32>,
}

/// A group of identical client machines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cohort {
    /// Product name, e.g. `win7-enterprise`.
    pub product: String,
    /// Number of machines.
    pub count: u32,
    /// Day they are installed [0].
    #[serde(default)]
    pub join_day: u32,
    /// Spread the installs evenly over this many days [0 = all on `join_day`].
    #[serde(default)]
    pub join_spread_days: u32,
    /// Machines per CMID: K > 1 models K clones of one image sharing a CMID [1].
    #[serde(default = "one")]
    pub clones: u32,
    /// Day every machine of the cohort runs `slmgr /rearm` (gets a new CMID).
    pub rearm_day: Option<u32>,
    /// Minutes the machines' clocks are ahead (negative: behind) [0].
    #[serde(default)]
    pub clock_skew_minutes: i64,
    /// Host caching (`/skhc`) [true].
    #[serde(default = "yes")]
    pub host_caching: bool,
    /// Pin the cohort to a host by name (`/skms`), no discovery.
    pub manual_host: Option<String>,
    /// A `[[mak]]` by name: the machines are MAK machines (`slmgr /ipk MAK`, then `/ato` on
    /// the day they join) instead of KMS clients.
    pub mak: Option<String>,
    /// Days between `/ato` retries of a MAK machine not yet activated (the rollout running
    /// `/ato` again), 0 = never [1].
    #[serde(default = "one")]
    pub mak_retry_days: u32,
}

impl Host {
    /// Whether the host is installed and not yet decommissioned on `day`.
    pub fn installed_on(&self, day: u32) -> bool {
        day >= self.start_day && self.decommission_day.is_none_or(|d| day < d)
    }

    /// Whether the host answers on `day`: installed and not in an outage.
    pub fn up_on(&self, day: u32) -> bool {
        self.installed_on(day) && !in_ranges(day, &self.outages)
    }
}

impl Dns {
    /// Whether the DNS server answers on `day`.
    pub fn up_on(&self, day: u32) -> bool {
        !in_ranges(day, &self.outages)
    }
}

impl Cohort {
    /// The machines of the cohort (numbered `0..count`) installed on `day`: machine `k`
    /// joins on `join_day + floor(k * join_spread_days / count)`.
    pub fn joining_on(&self, day: u32) -> std::ops::Range<u64> {
        if day < self.join_day {
            return 0..0;
        }
        let count = u64::from(self.count);
        // The first machine joining on day `d` or later.
        let first = |d: u32| -> u64 {
            let since = u64::from(d - self.join_day);
            match (since, self.join_spread_days) {
                (0, _) => 0,
                (_, 0) => count,
                (since, spread) => (since * count).div_ceil(u64::from(spread)).min(count),
            }
        };
        first(day)..first(day + 1)
    }
}

/// Whether `day` is in one of the `[from, to)` ranges.
pub fn in_ranges(day: u32, ranges: &[[u32; 2]]) -> bool {
    ranges.iter().any(|r| (r[0]..r[1]).contains(&day))
}

/// Why a scenario was refused. The message names the entry and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// Not valid TOML, or an unknown key (serde's message names it).
    #[error("scenario: {0}")]
    Syntax(String),
    /// A value is invalid.
    #[error("scenario: {0}")]
    Invalid(String),
}

fn default_start() -> String {
    "2026-01-01T00:00:00Z".into()
}
fn default_domain() -> String {
    "lab.test".into()
}
fn default_key_groups() -> Vec<String> {
    vec!["kms-b".into()]
}
fn default_activation_interval() -> u32 {
    120
}
fn default_renewal_interval() -> u32 {
    10_080
}
fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}

impl Scenario {
    /// The products MAK `m` activates: its own list, or the products of the cohorts using it.
    pub fn mak_products(&self, m: &Mak) -> Vec<String> {
        if !m.products.is_empty() {
            return m.products.clone();
        }
        let mut products: Vec<String> = Vec::new();
        for c in self.cohorts.iter().filter(|c| c.mak.as_deref() == Some(m.name.as_str())) {
            if !products.contains(&c.product) {
                products.push(c.product.clone());
            }
        }
        products
    }

    /// Parses and validates a scenario against `catalog`.
    pub fn from_toml(text: &str, catalog: &Catalog) -> Result<Self, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Syntax(kmslab_core::toml_error::describe(text, &e)))?;
        s.validate(catalog)?;
        Ok(s)
    }

    /// The start as a timestamp.
    pub fn start_time(&self) -> Timestamp {
        Timestamp::parse_rfc3339(&self.start).expect("validated")
    }

    fn validate(&self, catalog: &Catalog) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        Timestamp::parse_rfc3339(&self.start).map_err(|e| ScenarioError::Invalid(format!("`start`: {e}")))?;
        if self.days == 0 || self.days > 3650 {
            return bad(format!("`days` must be between 1 and 3650, got {}", self.days));
        }
        if self.hosts.is_empty() {
            return bad("at least one [[host]] is needed".into());
        }
        for (i, h) in self.hosts.iter().enumerate() {
            let at = format!("host {:?}", h.name);
            if h.name.is_empty() || !h.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return bad(format!("host #{}: `name` must be letters, digits and dashes", i + 1));
            }
            if self.hosts[..i].iter().any(|o| o.name == h.name) {
                return bad(format!("{at}: `name` is used twice"));
            }
            for g in &h.key_groups {
                if catalog.host_key_group(g).is_none() {
                    return bad(format!("{at}: `key_groups` names unknown group {g:?}"));
                }
            }
            validate_interval("activation_interval", u64::from(h.activation_interval))
                .map_err(|e| ScenarioError::Invalid(format!("{at}: {e}")))?;
            validate_interval("renewal_interval", u64::from(h.renewal_interval))
                .map_err(|e| ScenarioError::Invalid(format!("{at}: {e}")))?;
            check_ranges(&at, "outages", &h.outages)?;
        }
        check_ranges("[dns]", "outages", &self.dns.outages)?;
        for (i, c) in self.cohorts.iter().enumerate() {
            let at = format!("cohort #{} ({})", i + 1, c.product);
            if catalog.product_by_name(&c.product).is_none() {
                return bad(format!("{at}: `product` {:?} is not in the catalog", c.product));
            }
            if c.clones == 0 {
                return bad(format!("{at}: `clones` must be at least 1"));
            }
            if c.count == 0 || c.count > 10_000_000 {
                return bad(format!("{at}: `count` must be between 1 and 10000000"));
            }
            if let Some(h) = &c.manual_host
                && !self.hosts.iter().any(|x| &x.name == h)
            {
                return bad(format!("{at}: `manual_host` {h:?} names no host"));
            }
            if let Some(m) = &c.mak {
                let Some(mak) = self.maks.iter().find(|k| &k.name == m) else {
                    return bad(format!("{at}: `mak` {m:?} names no [[mak]]"));
                };
                if c.manual_host.is_some() {
                    return bad(format!("{at}: `mak` and `manual_host` exclude each other (a MAK machine asks no KMS host)"));
                }
                if !mak.products.is_empty() && !mak.products.contains(&c.product) {
                    return bad(format!("{at}: MAK {m:?} does not activate {} (its products: {})", c.product, mak.products.join(", ")));
                }
            }
        }
        for (i, m) in self.maks.iter().enumerate() {
            let at = format!("mak {:?}", m.name);
            if m.name.is_empty() || !m.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return bad(format!("mak #{}: `name` must be letters, digits and dashes", i + 1));
            }
            if self.maks[..i].iter().any(|o| o.name == m.name) {
                return bad(format!("{at}: `name` is used twice"));
            }
            for p in &m.products {
                if catalog.product_by_name(p).is_none() {
                    return bad(format!("{at}: `products` names {p:?}, which is not in the catalog"));
                }
            }
            for a in &m.add {
                if a[0] >= self.days {
                    return bad(format!("{at}: `add` on day {} is after the last day ({})", a[0], self.days - 1));
                }
            }
        }
        Ok(())
    }
}

fn check_ranges(at: &str, key: &str, ranges: &[[u32; 2]]) -> Result<(), ScenarioError> {
    for r in ranges {
        if r[0] >= r[1] {
            return Err(ScenarioError::Invalid(format!("{at}: `{key}` range [{}, {}] must have from < to", r[0], r[1])));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_follow_the_spread_formula() {
        let catalog = Catalog::builtin();
        let text = "days = 30\n[[host]]\nname = \"kms1\"\n[[cohort]]\nproduct = \"win7-enterprise\"\ncount = 80\njoin_day = 2\njoin_spread_days = 10\n";
        let s = Scenario::from_toml(text, &catalog).unwrap();
        let c = &s.cohorts[0];
        let mut seen = 0;
        for day in 0..30 {
            let r = c.joining_on(day);
            for k in r.clone() {
                assert_eq!(u64::from(c.join_day) + k * 10 / 80, u64::from(day), "machine {k}");
            }
            assert_eq!(r.start, seen.min(80));
            seen = r.end;
        }
        assert_eq!(seen, 80);
        let mut all_at_once = c.clone();
        all_at_once.join_spread_days = 0;
        assert_eq!((all_at_once.joining_on(1), all_at_once.joining_on(2), all_at_once.joining_on(3)), (0..0, 0..80, 80..80));
    }
}
