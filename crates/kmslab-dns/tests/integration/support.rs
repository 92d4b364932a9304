//! Test support: a real BIND9 `named` on a loopback port (`kmslab-test-support`'s), with
//! the zones these tests need, and `dig` as an outside observer.

use std::net::SocketAddr;
use std::time::Duration;

use kmslab_dns::{PublishZone, Publisher, PublisherConfig, TsigKey};
pub use kmslab_test_support::{IP_ZONE, LOCKED_ZONE, TSIG_ZONE, dig, dig_srv, dig_srv_with, dig_status, srv};
use kmslab_test_support::{Named, Zone};

/// Zone with fixed SRV records for discovery tests.
pub const STATIC_ZONE: &str = "static.test";

/// How long a test waits for any single DNS answer.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The static zone: two priority-0 hosts split 75/25 and a priority-10 fallback, an
/// address for kms1, and a name that exists with a TXT but no SRV record.
const STATIC_ZONE_RECORDS: &str = "\
_vlmcs._tcp IN SRV 0 75 1688 kms1.static.test.
_vlmcs._tcp IN SRV 0 25 1688 kms2.static.test.
_vlmcs._tcp IN SRV 10 0 1689 kms3.static.test.
kms1 IN A 192.0.2.11
kms1 IN AAAA 2001:db8::11
kms2 IN A 192.0.2.12
_vlmcs._tcp.nosrv IN TXT \"this name has no SRV record\"
";

/// named with the update zones and the static zone; killed when dropped.
pub struct Bind {
    /// Where named answers (UDP and TCP).
    pub addr: SocketAddr,
    /// The key the TSIG zone accepts (`ddns-key`).
    pub tsig: TsigKey,
    _named: Named,
}

impl Bind {
    /// Starts named on a free loopback port and waits until it answers. Panics, failing
    /// the test, when BIND is not installed: these tests must not pass without it.
    pub fn start() -> Self {
        let tsig = TsigKey::generate(kmslab_test_support::UPDATE_KEY).unwrap();
        let secret = tsig.to_string().rsplit(':').next().unwrap().to_owned();
        let named = kmslab_test_support::named_for_updates(&secret, vec![Zone::fixed(STATIC_ZONE, STATIC_ZONE_RECORDS)]);
        Bind { addr: named.addr, tsig, _named: named }
    }

    /// A publisher for `hostname` that sends its updates to this named.
    pub fn publisher(&self, hostname: &str, port: u16, tsig: Option<TsigKey>) -> Publisher {
        publisher_for(self.addr, hostname, port, tsig)
    }
}

/// A publisher for `hostname` at `server` with short test timeouts.
pub fn publisher_for(server: SocketAddr, hostname: &str, port: u16, tsig: Option<TsigKey>) -> Publisher {
    Publisher::new(PublisherConfig { server, hostname: hostname.to_owned(), port, ttl: 60, tsig, address: None, timeout: TIMEOUT }).unwrap()
}

/// A publish-list entry.
pub fn zone(zone: &str, priority: u16, weight: u16) -> PublishZone {
    PublishZone { zone: zone.to_owned(), priority, weight }
}
