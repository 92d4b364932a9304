//! RFC 2782 ordering of `_vlmcs._tcp` SRV records, with the RNG injected.
//!
//! Lowest priority first; within one priority, a weighted random order: the records are
//! arranged in a random order with those of weight 0 first, a number is drawn uniformly from
//! `0..=sum_of_weights`, and the first record whose running sum of weights is at least that
//! number is taken next. Repeat until every record of the priority is ordered. Exactly as
//! the RFC's "Usage rules", which allow any arrangement before the draw: a random one makes
//! the choice among records of equal priority and weight 0 (two hosts publishing with the
//! defaults) random too, whatever order the DNS server returned them in.
//!
//! Only Windows 7 / Windows Server 2008 R2 clients use priority and weight; Windows Vista and
//! Windows Server 2008 clients pick a host at random from all the records and, when it does
//! not answer, another one at random ([`SrvPolicy`], chosen by the product's client family).

use crate::hostaddr::HostAddr;
use crate::rng::KmsRng;

/// One SRV record, as discovery hands it to the activator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SrvCandidate {
    /// Priority: lower is tried first.
    pub priority: u16,
    /// Weight: relative share within one priority.
    pub weight: u16,
    /// The host and port the record points at.
    pub target: HostAddr,
}

/// How a client family orders the SRV records it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrvPolicy {
    /// RFC 2782: lowest priority first, weighted random order within a priority
    /// (Windows 7 and Windows Server 2008 R2).
    PriorityWeight,
    /// Priority and weight are ignored: every record is equally likely at each pick
    /// (Windows Vista and Windows Server 2008).
    IgnorePriorityWeight,
}

/// Orders `records` for trying, the way a client of `policy` does.
pub fn order_with(records: Vec<SrvCandidate>, policy: SrvPolicy, rng: &mut impl KmsRng) -> Vec<SrvCandidate> {
    match policy {
        SrvPolicy::PriorityWeight => order(records, rng),
        // A uniformly random order: a random pick among all records, then a random pick
        // among the rest, which is what a client that ignores priority and weight does.
        SrvPolicy::IgnorePriorityWeight => {
            let mut records = records;
            shuffle(&mut records, rng);
            records
        }
    }
}

/// Orders `records` for trying, per RFC 2782.
pub fn order(mut records: Vec<SrvCandidate>, rng: &mut impl KmsRng) -> Vec<SrvCandidate> {
    // Stable sort: within a priority, weight-0 records first, the rest in the order given.
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let n = rest.iter().take_while(|r| r.priority == first.priority).count();
        let (same, tail) = rest.split_at(n);
        let mut pool: Vec<&SrvCandidate> = same.iter().collect();
        shuffle(&mut pool, rng);
        // Stable: weight-0 records first, each group in the shuffled order.
        pool.sort_by_key(|r| r.weight != 0);
        while !pool.is_empty() {
            let sum: u64 = pool.iter().map(|r| u64::from(r.weight)).sum();
            let pick = rng.below_or_equal(sum);
            let mut running = 0u64;
            let idx = pool
                .iter()
                .position(|r| {
                    running += u64::from(r.weight);
                    running >= pick
                })
                .unwrap_or(pool.len() - 1);
            out.push(pool.remove(idx).clone());
        }
        rest = tail;
    }
    out
}

/// Fisher-Yates with the injected RNG.
fn shuffle<T>(items: &mut [T], rng: &mut impl KmsRng) {
    for i in (1..items.len()).rev() {
        let j = rng.below_or_equal(i as u64) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn rec(priority: u16, weight: u16, host: &str) -> SrvCandidate {
        SrvCandidate { priority, weight, target: HostAddr::new(host, 1688) }
    }

    #[test]
    fn lower_priority_always_comes_first() {
        let mut rng = SplitMix64::new(5);
        for _ in 0..200 {
            let o = order(vec![rec(10, 100, "b"), rec(0, 1, "a"), rec(20, 0, "c")], &mut rng);
            let names: Vec<_> = o.iter().map(|r| r.target.host.as_str()).collect();
            assert_eq!(names, ["a", "b", "c"]);
        }
    }

    #[test]
    fn all_zero_weights_keep_every_record_in_a_random_order() {
        let mut rng = SplitMix64::new(9);
        let mut first = std::collections::BTreeMap::<String, u32>::new();
        for _ in 0..3_000 {
            let o = order(vec![rec(0, 0, "a"), rec(0, 0, "b"), rec(0, 0, "c")], &mut rng);
            let mut names: Vec<_> = o.iter().map(|r| r.target.host.clone()).collect();
            *first.entry(names[0].clone()).or_default() += 1;
            names.sort();
            assert_eq!(names, ["a", "b", "c"]);
        }
        // Each of three equal records leads about a third of the orders.
        assert_eq!(first.len(), 3, "{first:?}");
        assert!(first.values().all(|n| (850..=1150).contains(n)), "{first:?}");
    }

    #[test]
    fn two_equal_records_are_both_chosen_whatever_order_dns_gave() {
        let mut rng = SplitMix64::new(2026);
        let mut kms1_first = 0;
        for _ in 0..1_000 {
            // The order an unrotating DNS server always returns.
            if order(vec![rec(0, 0, "kms1"), rec(0, 0, "kms2")], &mut rng)[0].target.host == "kms1" {
                kms1_first += 1;
            }
        }
        assert!((400..=600).contains(&kms1_first), "kms1 first {kms1_first} of 1000");
    }

    #[test]
    fn ignoring_priority_and_weight_makes_every_record_equally_likely_first() {
        let mut rng = SplitMix64::new(13);
        let records = vec![rec(0, 90, "a"), rec(10, 10, "b"), rec(20, 0, "c")];
        let mut first = std::collections::HashMap::new();
        for _ in 0..9_000 {
            let o = order_with(records.clone(), SrvPolicy::IgnorePriorityWeight, &mut rng);
            assert_eq!(o.len(), 3, "every record is kept");
            *first.entry(o[0].target.host.clone()).or_insert(0) += 1;
        }
        // About 3,000 each; RFC 2782 would put "a" first every time.
        for host in ["a", "b", "c"] {
            let n = first.get(host).copied().unwrap_or(0);
            assert!((2_700..=3_300).contains(&n), "{host} first {n} times");
        }
    }

    #[test]
    fn the_priority_weight_policy_is_rfc_2782() {
        let records = vec![rec(10, 100, "b"), rec(0, 1, "a"), rec(20, 0, "c")];
        let (mut r1, mut r2) = (SplitMix64::new(3), SplitMix64::new(3));
        for _ in 0..100 {
            assert_eq!(order_with(records.clone(), SrvPolicy::PriorityWeight, &mut r1), order(records.clone(), &mut r2));
        }
    }

    #[test]
    fn zero_weight_is_rarely_first_when_others_have_weight() {
        let mut rng = SplitMix64::new(11);
        let mut zero_first = 0;
        for _ in 0..10_000 {
            if order(vec![rec(0, 0, "z"), rec(0, 50, "a"), rec(0, 50, "b")], &mut rng)[0].target.host == "z" {
                zero_first += 1;
            }
        }
        // Only a draw of exactly 0 out of 0..=100 selects it: about 1%.
        assert!((50..=150).contains(&zero_first), "{zero_first}");
    }
}
