//! DNS test support: a real BIND9 `named` on a loopback port with the update zones
//! (`kmslab-test-support`'s), and `dig` as an outside observer.

use std::net::SocketAddr;

use kmslab_dns::TsigKey;
use kmslab_test_support::Named;
pub use kmslab_test_support::{IP_ZONE, LOCKED_ZONE, TSIG_ZONE, dig, dig_srv, srv};

/// A `named` process serving the update zones; killed when dropped.
pub struct Bind {
    /// Where named answers (UDP and TCP).
    pub addr: SocketAddr,
    /// The key the TSIG zone accepts (`ddns-key`).
    pub tsig: TsigKey,
    _named: Named,
}

impl Bind {
    /// Starts named on a free loopback port and waits until it answers (a test fails
    /// when BIND is not installed).
    pub fn start() -> Self {
        let tsig = TsigKey::generate(kmslab_test_support::UPDATE_KEY).unwrap();
        let named = kmslab_test_support::named_for_updates(tsig.to_string().rsplit(':').next().unwrap(), Vec::new());
        Bind { addr: named.addr, tsig, _named: named }
    }
}
