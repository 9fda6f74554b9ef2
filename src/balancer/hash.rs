//! A small, fixed 64-bit hash for the balancer: the same on every machine, in every process and
//! across restarts (unlike `std`'s randomly keyed `DefaultHasher`), so that two ferrule instances
//! with the same config send a key to the same backend and a sticky cookie names the same backend
//! everywhere. FNV-1a over the bytes, then the SplitMix64 finaliser so that nearby inputs (ports
//! that differ by one, addresses in one subnet) spread over the whole range. Not for secrets.

/// The hash of `bytes`, seeded with `seed` (different seeds give independent hashes).
#[inline]
pub fn hash(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// SplitMix64's finaliser: every input bit affects every output bit.
#[inline]
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The hash of a client address (its bytes; an IPv4-mapped IPv6 address hashes as the IPv4 one).
pub fn hash_ip(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(v4) => hash(0, &v4.octets()),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => hash(0, &v4.octets()),
            None => hash(0, &v6.octets()),
        },
    }
}

/// A per-worker pseudo-random generator (xorshift64*): cheap, no shared state.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(mix(seed) | 1)
    }

    #[inline]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`), without the bias of a plain modulo.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_values_never_change() {
        // these values are part of the contract: cookies and consistent hashing depend on them
        assert_eq!(hash(0, b""), mix(0xcbf2_9ce4_8422_2325));
        assert_eq!(
            hash(0, b"http://127.0.0.1:8082"),
            hash(0, b"http://127.0.0.1:8082")
        );
        assert_ne!(
            hash(0, b"http://127.0.0.1:8082"),
            hash(0, b"http://127.0.0.1:8083")
        );
        assert_ne!(hash(1, b"x"), hash(2, b"x"));
        let v4: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: std::net::IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(hash_ip(v4), hash_ip(mapped));
    }

    #[test]
    fn rng_below_stays_in_range_and_spreads() {
        let mut r = Rng::new(7);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let x = r.below(10);
            seen[x as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
    }
}
