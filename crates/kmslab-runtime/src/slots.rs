//! Per-source connection slots: at most N connections open at once from one IP address,
//! so that one machine cannot hold every slot of a listener (KMS or admin).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts open connections per source address against a cap.
#[derive(Debug)]
pub struct PerSource {
    cap: usize,
    // A std mutex: one map lookup per accept or close, never held across an await.
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerSource {
    /// A table allowing `cap` (at least 1) connections per source.
    pub fn new(cap: usize) -> Arc<PerSource> {
        Arc::new(PerSource { cap: cap.max(1), open: Mutex::default() })
    }

    /// The cap per source.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Takes a slot for `ip`, or `None` when `ip` already holds `cap` connections. The
    /// slot is given back when the returned guard is dropped. IPv4-mapped IPv6 sources
    /// count as their IPv4 address.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(SourceSlot { table: Arc::clone(self), ip })
    }

    /// Connections open now from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

/// One connection's slot in a [`PerSource`] table; released on drop. Sources with no open
/// connection are removed, so the table holds at most one entry per open connection.
#[derive(Debug)]
pub struct SourceSlot {
    table: Arc<PerSource>,
    ip: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_gets_its_cap_and_slots_come_back() {
        let table = PerSource::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = table.try_acquire(a).unwrap();
        let _s2 = table.try_acquire("::ffff:10.0.0.1".parse().unwrap()).unwrap();
        assert!(table.try_acquire(a).is_none());
        assert!(table.try_acquire(b).is_some());
        drop(s1);
        assert_eq!(table.open_from(a), 1);
        assert!(table.try_acquire(a).is_some());
    }
}
