//! `max_connections_per_ip`: how many client connections each address holds, over all workers.
//!
//! Workers are per core and a client's connections land on any of them, so the count is shared:
//! a small map of address → open connections, split into shards behind their own mutexes so that
//! workers accepting at once rarely meet. It is touched twice per connection (at accept and at
//! close), never per request, and only when the limit is on. An address leaves the map when its
//! last connection closes, so the map holds at most one entry per open counted connection: its
//! size is bounded by `max_connections`.
//!
//! The address is the socket peer's: with `proxy_protocol` every connection comes from the proxy
//! in front, so the limit is not applied then (the worker does not count those connections).

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;

const SHARDS: usize = 16;

/// Open connections per client address.
#[derive(Debug, Default)]
pub struct PerIp {
    shards: [Mutex<HashMap<IpAddr, u32>>; SHARDS],
}

impl PerIp {
    pub fn new() -> PerIp {
        PerIp::default()
    }

    fn shard(&self, ip: IpAddr) -> &Mutex<HashMap<IpAddr, u32>> {
        let h = crate::balancer::hash_ip(ip);
        // SHARDS is a power of two: the low bits of a well-mixed hash pick the shard
        let i = (h as usize) & (SHARDS - 1);
        &self.shards[i]
    }

    /// Counts a new connection from `ip` unless it already holds `limit`; false: refuse it (and
    /// nothing was counted).
    pub fn try_acquire(&self, ip: IpAddr, limit: u32) -> bool {
        let mut map = self.shard(ip).lock();
        let n = map.entry(ip).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                map.remove(&ip);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// A counted connection from `ip` closed.
    pub fn release(&self, ip: IpAddr) {
        let mut map = self.shard(ip).lock();
        if let Some(n) = map.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }

    /// Addresses holding at least one counted connection.
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Counted connections open from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        self.shard(ip).lock().get(&ip).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn counts_refuses_and_forgets() {
        let p = PerIp::new();
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert!(p.try_acquire(a, 2));
        assert!(p.try_acquire(a, 2));
        assert!(!p.try_acquire(a, 2));
        assert!(p.try_acquire(b, 2));
        assert_eq!((p.open_from(a), p.tracked()), (2, 2));
        p.release(a);
        assert!(p.try_acquire(a, 2));
        p.release(a);
        p.release(a);
        p.release(b);
        // nothing is kept for addresses without connections, whatever was refused
        assert!(!p.try_acquire(a, 0));
        assert_eq!(p.tracked(), 0);
        // a release without an acquire (the limit turned on by a reload) changes nothing
        p.release(a);
        assert_eq!(p.tracked(), 0);
    }

    #[test]
    fn workers_share_one_count() {
        let p = std::sync::Arc::new(PerIp::new());
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let p = std::sync::Arc::clone(&p);
                std::thread::spawn(move || (0..100).filter(|_| p.try_acquire(ip, 50)).count())
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        assert_eq!(admitted, 50);
        assert_eq!(p.open_from(ip), 50);
    }
}
