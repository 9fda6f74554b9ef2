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
//! An IPv6 peer counts as its `ipv6_client_prefix` network (`client_ip::client_key`, applied here
//! on every call, so the callers pass the peer as it is): a host that owns a /64 cannot open
//! `limit` connections from each of its addresses. The prefix is fixed for the life of the map
//! (the key needs a restart), so a release always finds what its acquire counted.

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;

use crate::client_ip::client_key;

const SHARDS: usize = 16;

/// Open connections per client (an address, or an IPv6 network: see the module header).
#[derive(Debug)]
pub struct PerIp {
    shards: [Mutex<HashMap<IpAddr, u32>>; SHARDS],
    /// `ipv6_client_prefix`.
    ipv6_prefix: u8,
}

impl PerIp {
    /// An empty count, grouping IPv6 peers by their first `ipv6_prefix` bits.
    pub fn new(ipv6_prefix: u8) -> PerIp {
        PerIp {
            shards: Default::default(),
            ipv6_prefix,
        }
    }

    fn shard(&self, ip: IpAddr) -> &Mutex<HashMap<IpAddr, u32>> {
        let h = crate::hash::hash_ip(ip);
        // SHARDS is a power of two: the low bits of a well-mixed hash pick the shard
        let i = (h as usize) & (SHARDS - 1);
        &self.shards[i]
    }

    /// Counts a new connection from `ip` unless it already holds `limit`; false: refuse it (and
    /// nothing was counted).
    pub fn try_acquire(&self, ip: IpAddr, limit: u32) -> bool {
        let ip = client_key(ip, self.ipv6_prefix);
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
        let ip = client_key(ip, self.ipv6_prefix);
        let mut map = self.shard(ip).lock();
        if let Some(n) = map.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }

    /// Clients (addresses, IPv6 networks) holding at least one counted connection.
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Counted connections open from `ip`'s client (its IPv6 network included).
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        let ip = client_key(ip, self.ipv6_prefix);
        self.shard(ip).lock().get(&ip).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn counts_refuses_and_forgets() {
        let p = PerIp::new(64);
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
    fn an_ipv6_network_is_one_client() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let p = PerIp::new(64);
        // three addresses of one /64: one count, whichever address opens or closes
        assert!(p.try_acquire(ip("2001:db8:1:2::1"), 2));
        assert!(p.try_acquire(ip("2001:db8:1:2::ffff:2"), 2));
        assert!(!p.try_acquire(ip("2001:db8:1:2:a:b:c:d"), 2));
        assert_eq!(p.open_from(ip("2001:db8:1:2::99")), 2);
        // the next /64 is another client
        assert!(p.try_acquire(ip("2001:db8:1:3::1"), 2));
        assert_eq!(p.tracked(), 2);
        p.release(ip("2001:db8:1:2:a:b:c:d"));
        assert!(p.try_acquire(ip("2001:db8:1:2::7"), 2));
        assert_eq!(p.open_from(ip("2001:db8:1:2::1")), 2);
        for a in ["2001:db8:1:2::2", "2001:db8:1:3::9"] {
            p.release(ip(a));
        }
        assert_eq!(p.open_from(ip("2001:db8:1:2::1")), 1);
        assert_eq!(p.tracked(), 1);
        p.release(ip("2001:db8:1:2::1"));
        assert_eq!(p.tracked(), 0);

        // with a /128 each address is its own client; with a /48, so is each /48
        let whole = PerIp::new(128);
        assert!(whole.try_acquire(ip("2001:db8:1:2::1"), 1));
        assert!(whole.try_acquire(ip("2001:db8:1:2::2"), 1));
        let wide = PerIp::new(48);
        assert!(wide.try_acquire(ip("2001:db8:1:2::1"), 1));
        assert!(!wide.try_acquire(ip("2001:db8:1:ffff::1"), 1));
        assert!(wide.try_acquire(ip("2001:db8:2::1"), 1));

        // IPv4 is the address, and an IPv4-mapped peer is that IPv4 address
        let v4 = PerIp::new(1);
        assert!(v4.try_acquire(ip("10.0.0.1"), 1));
        assert!(!v4.try_acquire(ip("::ffff:10.0.0.1"), 1));
        assert!(v4.try_acquire(ip("10.0.0.2"), 1));
        v4.release(ip("::ffff:10.0.0.1"));
        assert_eq!(v4.open_from(ip("10.0.0.1")), 0);
    }

    #[test]
    fn workers_share_one_count() {
        let p = std::sync::Arc::new(PerIp::new(64));
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
