//! `consistent-hash`: a lookup table in the manner of Maglev (Eisenbud et al., NSDI 2016): `M`
//! entries (a prime: 65,537, or the first prime at or above 100 × backends when that is more) map
//! a key's hash to a backend in one read. Each entry is given to its backend by rendezvous
//! (highest-random-weight) hashing: the backend whose hash with the entry scores highest, scores
//! scaled by weight. (Maglev fills its table by letting backends take turns along permutations;
//! that moves a few keys between backends that both stay when one leaves. Rendezvous moves none,
//! at a build cost of `M × backends` hashes, paid when a pool is published, never per request.)
//! So:
//! - two ferrule processes with the same backend list build the same table (the hashes are fixed,
//!   `src/hash.rs`, and the table is a function of the set of URLs and weights alone), and send a key
//!   to the same backend with no shared state;
//! - removing one of N backends moves its keys, about 1/N, and no key moves between two backends
//!   that both stay; adding one takes about 1/(N+1) from the others;
//! - an unavailable backend's keys go to the next entries of the table, and come back when it
//!   recovers (the table does not change with health).

use std::sync::Arc;

use super::backend::{eligible, Backend};
use crate::hash::{mix, stable_hash};

/// Entries looked at past unavailable ones before falling back to a scan of the backends.
const WALK: usize = 128;

#[derive(Debug)]
pub struct Table {
    entries: Vec<u32>,
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

/// The table size for `n` backends.
pub fn table_size(n: usize) -> usize {
    let mut m = (100 * n as u64).max(65_537);
    while !is_prime(m) {
        m += 1;
    }
    m as usize
}

impl Table {
    /// The table for backends named by `names` (their URLs), with `weights`.
    pub fn build(names: &[&str], weights: &[u32]) -> Table {
        let n = names.len();
        if n == 0 {
            return Table {
                entries: Vec::new(),
            };
        }
        let m = table_size(n);
        let ids: Vec<u64> = names
            .iter()
            .map(|name| stable_hash(1, name.as_bytes()))
            .collect();
        let equal = weights.iter().all(|&w| w == weights[0]);
        // weighted rendezvous: the highest -w / ln(u), u uniform in (0, 1) from the hash
        let scale: Vec<f64> = weights.iter().map(|&w| f64::from(w.max(1))).collect();
        let entries = (0..m as u64)
            .map(|slot| {
                let s = mix(slot ^ 0x6a09_e667_f3bc_c908);
                let mut best = (0usize, f64::NEG_INFINITY, 0u64);
                for (i, &id) in ids.iter().enumerate() {
                    let h = mix(s ^ id);
                    let score = if equal {
                        h as f64
                    } else {
                        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                        -scale[i] / u.ln()
                    };
                    if score > best.1 || (score == best.1 && h > best.2) {
                        best = (i, score, h);
                    }
                }
                best.0 as u32
            })
            .collect();
        Table { entries }
    }

    /// The backend position for `key` (entries that are unavailable pass to the next ones).
    pub fn pick(&self, backends: &[Arc<Backend>], key: u64, exclude: Option<u64>) -> Option<usize> {
        let m = self.entries.len();
        if m == 0 {
            return None;
        }
        let start = (key % m as u64) as usize;
        for k in 0..WALK {
            let i = self.entries[(start + k) % m] as usize;
            if backends.get(i).is_some_and(|b| eligible(b, exclude)) {
                return Some(i);
            }
        }
        let n = backends.len();
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| eligible(&backends[i], exclude))
    }

    /// The backend position of `key` when every backend is available.
    #[cfg(test)]
    pub fn owner(&self, key: u64) -> Option<usize> {
        let m = self.entries.len();
        (m > 0).then(|| self.entries[(key % m as u64) as usize] as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::pool;
    use super::super::WorkerPick;
    use super::*;
    use crate::config::Strategy;
    use crate::hash::stable_hash;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("http://10.0.0.{i}:8080")).collect()
    }

    fn table(names: &[String]) -> Table {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        Table::build(&refs, &vec![1; names.len()])
    }

    #[test]
    fn sizes_are_primes_of_at_least_a_hundred_per_backend() {
        assert_eq!(table_size(3), 65_537);
        assert_eq!(table_size(655), 65_537);
        assert_eq!(table_size(1000), 100_003);
        assert!(is_prime(table_size(2000) as u64) && table_size(2000) >= 200_000);
    }

    #[test]
    fn the_same_backends_build_the_same_table() {
        let a = table(&names(5));
        let b = table(&names(5));
        assert_eq!(a.entries, b.entries);
        // every backend owns close to 1/N of the entries
        for i in 0..5 {
            let owned = a.entries.iter().filter(|&&e| e == i as u32).count();
            assert!((12_500..=13_700).contains(&owned), "{i}: {owned}");
        }
    }

    #[test]
    fn removing_one_of_n_moves_about_one_nth_and_nothing_between_survivors() {
        let all = names(10);
        let before = table(&all);
        let mut fewer = all.clone();
        fewer.remove(3);
        let after = table(&fewer);
        let (mut moved, keys) = (0, 20_000u64);
        for k in 0..keys {
            let key = stable_hash(9, &k.to_le_bytes());
            let old = before.owner(key).unwrap();
            let new = after.owner(key).unwrap();
            let new_name = &fewer[new];
            if old != 3 {
                // a key of a surviving backend stays with it
                assert_eq!(&all[old], new_name, "key {k} moved between survivors");
            } else {
                moved += 1;
            }
        }
        let share = moved as f64 / keys as f64;
        assert!((0.08..0.12).contains(&share), "{share}");
    }

    #[test]
    fn an_unavailable_backends_keys_go_elsewhere_and_come_back() {
        let p = pool(Strategy::ConsistentHash, &[1, 1, 1]);
        let mut st = WorkerPick::new(0);
        let owner = |st: &mut WorkerPick, key| p.pick(st, key, None).unwrap().id;
        let keys: Vec<u64> = (0..300u64)
            .map(|k| stable_hash(5, &k.to_le_bytes()))
            .collect();
        let first: Vec<u64> = keys.iter().map(|&k| owner(&mut st, k)).collect();
        p.backends()[1].set_healthy(false);
        for (&k, &was) in keys.iter().zip(&first) {
            let now = owner(&mut st, k);
            assert_ne!(now, 1);
            if was != 1 {
                assert_eq!(now, was, "a key of a healthy backend moved");
            }
        }
        p.backends()[1].set_healthy(true);
        let again: Vec<u64> = keys.iter().map(|&k| owner(&mut st, k)).collect();
        assert_eq!(first, again);
    }

    #[test]
    fn weights_give_proportional_shares() {
        let n = names(2);
        let refs: Vec<&str> = n.iter().map(String::as_str).collect();
        let t = Table::build(&refs, &[3, 1]);
        let heavy = t.entries.iter().filter(|&&e| e == 0).count() as f64;
        let share = heavy / t.entries.len() as f64;
        assert!((0.73..0.77).contains(&share), "{share}");
    }
}
