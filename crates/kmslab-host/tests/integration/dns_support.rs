//! DNS test support: a real BIND9 `named` on a loopback port (`kmslab-test-support`'s) with
//! the zones the host tests need, and `dig` as an outside observer.

use std::net::SocketAddr;

use kmslab_dns::TsigKey;
use kmslab_test_support::{Named, NamedKey, Zone};
pub use kmslab_test_support::{dig, dig_srv, srv};

/// Zone whose updates BIND accepts from 127.0.0.1 without a signature.
pub const IP_ZONE: &str = "ipauth.test";
/// Zone whose updates BIND accepts only when signed with `ddns-key`.
pub const TSIG_ZONE: &str = "tsig.test";
/// Zone that accepts no updates at all.
pub const LOCKED_ZONE: &str = "locked.test";

/// A `named` process serving the test zones; killed when dropped.
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
        let tsig = TsigKey::generate("ddns-key").unwrap();
        let key = NamedKey { name: "ddns-key".into(), secret: tsig.to_string().rsplit(':').next().unwrap().to_owned() };
        let zones =
            [Zone::updatable(IP_ZONE, "127.0.0.1;"), Zone::updatable(TSIG_ZONE, "key ddns-key;"), Zone::updatable(LOCKED_ZONE, "none;")];
        let named = Named::start(&zones, &[key]);
        Bind { addr: named.addr, tsig, _named: named }
    }
}
