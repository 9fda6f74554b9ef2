//! The per-request decision. A worker keeps its own `Arc<Pool>` in its [`Picker`] and looks only
//! at the balancer's generation, one relaxed load of a line written only when the pool changes:
//! picking takes no lock.
//!
//! [`Picker::choose`] is the whole decision for one request ([`Ask`] → [`Choice`]): the sticky
//! binding if it holds, else the strategy (then the client is bound to what it chose), `Full`
//! when every candidate is at its `max_conns` (the request waits in its worker's queue), and,
//! when no backend is healthy, `fail_open` sends to the enabled ones anyway. [`Pool::pick`] is the
//! strategy's part: it reads the tables the pool precomputed (`pool.rs`) with the worker's own
//! state ([`WorkerPick`]: its random generator, `rng.rs`, and its tie-breaking cursor), and hands
//! them to the strategy's file (`round_robin.rs`, `least_conn.rs`, `p2c.rs`, `random.rs`,
//! `maglev.rs`).
//!
//! Neighbours: the stream asks (`stream/backend.rs`); the balancer (`mod.rs`) publishes the pool
//! a picker takes up; the sticky table is `sticky.rs`.

use std::sync::Arc;
use std::time::Instant;

use super::backend::{eligible, Backend};
use super::pool::{Pool, Selector, Sticky};
use super::rng::Rng;
use super::{least_conn, p2c, Balancer};

/// What a request brings to the choice of its backend.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// The hash `consistent-hash` looks up (`hash_key`'s value, or the client address).
    pub key: u64,
    /// The hash of the client's address (`crate::hash::hash_ip`; sticky `ip` mode).
    pub client: u64,
    /// The backend the sticky cookie named, if the request carried a well-formed one.
    pub cookie: Option<u64>,
    /// A backend that just failed this request: avoided unless it is the only one.
    pub exclude: Option<u64>,
    pub now: Instant,
}

/// The outcome of [`Picker::choose`].
#[derive(Debug)]
pub enum Choice<'a> {
    /// This backend; `set_cookie`: the response must (re)set the sticky cookie.
    Backend {
        backend: &'a Arc<Backend>,
        set_cookie: bool,
    },
    /// Every candidate is at its `max_conns`: wait for a slot.
    Full,
    /// No backend is available.
    None,
}

/// A worker's own selection state: its random generator and its tie-breaking cursor.
#[derive(Debug, Clone)]
pub struct WorkerPick {
    rng: Rng,
    cursor: usize,
}

impl WorkerPick {
    /// The state of worker `index`: a generator seeded apart from the others', a cursor that
    /// starts elsewhere.
    pub fn new(index: usize) -> WorkerPick {
        WorkerPick {
            rng: Rng::new(0x5eed ^ (index as u64).wrapping_mul(0x9e37_79b9)),
            cursor: index,
        }
    }
}

impl Pool {
    /// Chooses a backend for a request, skipping `exclude` (a backend that just failed) unless it
    /// is the only one available. `key` is the request's hash for `consistent-hash` (ignored by
    /// the other strategies). `None` when no backend is available.
    ///
    /// Slow start: a backend under way takes only its share of the turns it is picked for (10 %
    /// at first, all of them at the end, `Backend::ramp_per_mille`); the others take the rest.
    /// With weighted round-robin its share of the requests is that much of its weight's; with
    /// least-conn, p2c and random, about that much. Not with `consistent-hash`, whose keys would
    /// move twice, nor for a retry (`exclude`).
    pub fn pick(
        &self,
        state: &mut WorkerPick,
        key: u64,
        exclude: Option<u64>,
    ) -> Option<&Arc<Backend>> {
        let chosen = self.strategy_pick(state, key, exclude)?;
        let slow_start = self.policy.slow_start_ms;
        match chosen.back_since() {
            // the common case: one relaxed load of the chosen backend's own field
            None => Some(chosen),
            Some(_) if slow_start == 0 || exclude.is_some() => Some(chosen),
            // consistent hashing keeps a key where it is: a ramp would move keys twice
            Some(_) if matches!(*self.selector, Selector::ConsistentHash(_)) => Some(chosen),
            Some(since) => {
                let now = crate::timer::clock_ms(Instant::now());
                let Some(share) = chosen.ramp_per_mille(slow_start, now) else {
                    chosen.ramp_done(since);
                    return Some(chosen);
                };
                if state.rng.below(1000) < share {
                    return Some(chosen);
                }
                // this turn goes to the others (to it still, when it is the only candidate)
                match self.strategy_pick(state, key, Some(chosen.id)) {
                    Some(other) => Some(other),
                    None => Some(chosen),
                }
            }
        }
    }

    /// The strategy's choice, `exclude` avoided unless it is the only candidate.
    fn strategy_pick(
        &self,
        state: &mut WorkerPick,
        key: u64,
        exclude: Option<u64>,
    ) -> Option<&Arc<Backend>> {
        let b = &self.backends;
        let chosen = match &*self.selector {
            Selector::RoundRobin(schedule) => schedule.pick(b, exclude),
            Selector::LeastConn => least_conn::pick(b, &mut state.cursor, exclude),
            Selector::P2c => p2c::pick(b, &mut state.rng, &mut state.cursor, exclude),
            Selector::Random(weights) => weights.pick(b, &mut state.rng, exclude),
            Selector::ConsistentHash(table) => table.pick(b, key, exclude),
        };
        match chosen {
            Some(i) => b.get(i),
            None if exclude.is_some() => self.strategy_pick(state, key, None),
            None => None,
        }
    }
}

/// A worker's view of the pool and its selection state.
#[derive(Debug)]
pub struct Picker {
    pool: Arc<Pool>,
    state: WorkerPick,
}

impl Picker {
    /// The picker of worker `index`.
    pub fn new(balancer: &Balancer, index: usize) -> Picker {
        Picker {
            pool: balancer.current(),
            state: WorkerPick::new(index),
        }
    }

    /// Chooses a backend (see [`Pool::pick`]), after taking up a newer pool if one was published.
    #[inline]
    pub fn pick(
        &mut self,
        balancer: &Balancer,
        key: u64,
        exclude: Option<u64>,
    ) -> Option<&Arc<Backend>> {
        if balancer.generation() != self.pool.generation {
            self.pool = balancer.current();
        }
        self.pool.pick(&mut self.state, key, exclude)
    }

    /// The pool this worker picks from.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The backend for a request: its sticky binding when that backend is available, else the
    /// strategy's choice (and the client is bound to it).
    pub fn choose(&mut self, balancer: &Balancer, ask: &Ask) -> Choice<'_> {
        if balancer.generation() != self.pool.generation {
            self.pool = balancer.current();
        }
        let pool = &self.pool;
        let sticky = pool.policy.sticky.as_ref();
        if ask.exclude.is_none() {
            let bound = match sticky {
                Some(Sticky::Ip(table)) => table
                    .get(ask.client, ask.now)
                    .and_then(|id| pool.by_id.get(&id)),
                Some(Sticky::Cookie) => ask.cookie.and_then(|c| pool.by_cookie.get(&c)),
                None => None,
            };
            if let Some(b) = bound.and_then(|&i| pool.backends.get(i)) {
                if eligible(b, None) {
                    return Choice::Backend {
                        backend: b,
                        set_cookie: false,
                    };
                }
            }
        }
        match pool.pick(&mut self.state, ask.key, ask.exclude) {
            Some(backend) => {
                let set_cookie = match sticky {
                    Some(Sticky::Ip(table)) => {
                        table.bind(ask.client, backend.id, ask.now);
                        false
                    }
                    Some(Sticky::Cookie) => ask.cookie != Some(backend.cookie_id()),
                    None => false,
                };
                Choice::Backend {
                    backend,
                    set_cookie,
                }
            }
            None if pool.backends.iter().any(|b| b.is_available()) => Choice::Full,
            None if pool.policy.fail_open => {
                // every backend is down: try the enabled ones anyway, in turn
                let n = pool.backends.len();
                let start = self.state.cursor;
                self.state.cursor = self.state.cursor.wrapping_add(1);
                (0..n)
                    .map(|k| &pool.backends[(start + k) % n])
                    .find(|b| b.is_enabled())
                    .map_or(Choice::None, |backend| Choice::Backend {
                        backend,
                        set_cookie: false,
                    })
            }
            None => Choice::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::pool::Policy;
    use super::super::tests::{cfg, picks, pool};
    use super::*;
    use crate::config::Strategy;
    use crate::hash::{cookie_id, CookieKey};

    #[test]
    fn unavailable_backends_are_never_picked_by_any_strategy() {
        for strategy in Strategy::ALL {
            let p = pool(strategy, &[1, 1, 1]);
            p.backends()[1].set_healthy(false);
            p.backends()[2].set_enabled(false);
            assert!(picks(&p, 50).iter().all(|&port| port == 1), "{strategy}");
            p.backends()[0].set_healthy(false);
            assert_eq!(picks(&p, 3), vec![0, 0, 0], "{strategy}: none available");
        }
    }

    #[test]
    fn exclude_prefers_another_backend_but_falls_back() {
        for strategy in Strategy::ALL {
            let p = pool(strategy, &[1, 1]);
            let mut st = WorkerPick::new(0);
            let first = p.backends()[0].id;
            for k in 0..20 {
                let b = p.pick(&mut st, k, Some(first)).unwrap();
                assert_eq!(b.addr.port(), 2, "{strategy}");
            }
            p.backends()[1].set_enabled(false);
            assert_eq!(p.pick(&mut st, 0, Some(first)).unwrap().addr.port(), 1);
        }
    }

    #[test]
    fn a_stale_state_never_indexes_a_replaced_pool() {
        for strategy in Strategy::ALL {
            let big = pool(strategy, &[1, 1, 1, 1, 1]);
            let mut st = WorkerPick::new(3);
            for k in 0..10 {
                big.pick(&mut st, k, None);
            }
            let small = pool(strategy, &[1]);
            assert_ne!(small.generation, big.generation);
            assert_eq!(small.pick(&mut st, 99, None).unwrap().addr.port(), 1);
        }
    }

    #[test]
    fn pickers_take_up_a_published_pool_at_their_next_pick() {
        let balancer = Balancer::new(pool(Strategy::RoundRobin, &[1]));
        let mut picker = Picker::new(&balancer, 0);
        assert_eq!(picker.pick(&balancer, 0, None).unwrap().addr.port(), 1);
        let before = balancer.generation();
        let added = balancer.update(|pool| {
            let gone = pool.backends()[0].id;
            pool.remove(gone);
            pool.add(&cfg(2, 1), None).id
        });
        assert_ne!(balancer.generation(), before);
        let picked = picker.pick(&balancer, 0, None).unwrap();
        assert_eq!((picked.id, picked.addr.port()), (added, 2));
        assert_eq!(balancer.current().backends().len(), 1);
    }

    #[test]
    fn the_pool_values_each_backend_under_its_policys_key() {
        let pool = Pool::new(Strategy::RoundRobin, &[cfg(1, 1), cfg(2, 1)]);
        // no key: the fixed hash
        for b in pool.backends() {
            assert_eq!(b.cookie_id(), cookie_id(&b.key));
        }
        let policy = |secret: &str| Policy {
            sticky: Some(Sticky::Cookie),
            cookie_key: Some(Arc::new(CookieKey::new(secret))),
            ..Policy::default()
        };
        let balancer = Balancer::with_policy(pool, policy("0123456789abcdef-one"));
        let one = CookieKey::new("0123456789abcdef-one");
        let second = Arc::clone(&balancer.current().backends()[1]);
        assert_eq!(second.cookie_id(), one.id(&second.key));
        let mut picker = Picker::new(&balancer, 0);
        // (backend id, set_cookie) for a request with this cookie value
        let mut choose = |balancer: &Balancer, cookie: u64| {
            let ask = Ask {
                key: 0,
                client: 0,
                cookie: Some(cookie),
                exclude: None,
                now: std::time::Instant::now(),
            };
            match picker.choose(balancer, &ask) {
                Choice::Backend {
                    backend,
                    set_cookie,
                } => (backend.id, set_cookie),
                _ => (u64::MAX, false),
            }
        };
        // the keyed value routes, and is not set again; the plain one is replaced
        for _ in 0..4 {
            assert_eq!(choose(&balancer, one.id(&second.key)), (second.id, false));
        }
        let plain = cookie_id(&second.key);
        assert!(
            (0..4).all(|_| choose(&balancer, plain).1),
            "plain values are replaced"
        );
        // a new key (a reload) values every backend again
        balancer.update(|p| p.set_policy(Arc::new(policy("0123456789abcdef-two"))));
        let two = CookieKey::new("0123456789abcdef-two");
        assert_eq!(second.cookie_id(), two.id(&second.key));
        assert_eq!(choose(&balancer, two.id(&second.key)), (second.id, false));
        assert!(choose(&balancer, one.id(&second.key)).1);
    }
}
