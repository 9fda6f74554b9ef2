//! Passive health: the workers count the requests that fail on a backend (connect error, reset,
//! timeout), and `max_fails` of them within `fail_timeout` take it down at once ([`failed`]).
//! Active checks (the rest of `health/`) bring it back; without them, the workers' housekeeping
//! tries it again `fail_timeout` after it went down ([`revive`]). `max_fails: 0` turns it off.
//!
//! This runs on the workers, on the request path of a failure: no lock, only the backend's
//! atomics. Neighbours: the keys come with the pool's policy (`balancer::Policy`: `max_fails`,
//! `fail_timeout_ms`, `active_checks`); the failure window is kept on the backend
//! (`Backend::passive`, in `balancer/backend.rs`, which forgets it when a probe finds the
//! backend healthy); the calls come from the stream (`stream/backend.rs`, `stream/response.rs`)
//! and the worker's housekeeping (`worker/timers.rs`). Times are `timer::clock_ms`.

use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::balancer::{Backend, Balancer};
use crate::timer::clock_ms;

/// A request failed on `backend` (connect error, reset, timeout): passive health counts it,
/// and `max_fails` of them within `fail_timeout` take the backend down at once. Returns true
/// when this failure took it down.
pub fn failed(balancer: &Balancer, backend: &Backend, now: Instant) -> bool {
    backend.record_failure();
    let p = balancer.policy();
    if p.max_fails == 0 || !backend.is_healthy() {
        return false;
    }
    let now_ms = clock_ms(now).max(1);
    let window = &backend.passive;
    let start = window.window_start.load(Ordering::Relaxed);
    let count = if start == 0 || now_ms.saturating_sub(start) > p.fail_timeout_ms {
        window.window_start.store(now_ms, Ordering::Relaxed);
        window.fails.store(1, Ordering::Relaxed);
        1
    } else {
        window.fails.fetch_add(1, Ordering::Relaxed) + 1
    };
    if count < p.max_fails || !backend.swap_healthy(false) {
        return false;
    }
    window.down_since.store(now_ms, Ordering::Relaxed);
    log::warn!(
        "{} is down: {count} failed requests within {} ms{}",
        backend.url,
        p.fail_timeout_ms,
        if p.active_checks {
            " (health checks bring it back)"
        } else {
            ""
        }
    );
    true
}

/// Without active checks, backends taken down by failures are tried again `fail_timeout`
/// after: called by the workers' housekeeping, once a second.
pub fn revive(balancer: &Balancer, now: Instant) {
    let p = balancer.policy();
    if p.active_checks || p.max_fails == 0 {
        return;
    }
    let now_ms = clock_ms(now);
    for b in balancer.current().backends() {
        let since = b.passive.down_since.load(Ordering::Relaxed);
        if !b.is_healthy() && since != 0 && now_ms.saturating_sub(since) >= p.fail_timeout_ms {
            b.passive.reset();
            if !b.swap_healthy(true) {
                log::info!(
                    "{} is tried again ({} ms after it went down)",
                    b.url,
                    p.fail_timeout_ms
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::{Policy, Pool, State};
    use crate::config::Strategy;
    use std::time::Duration;

    fn balancer(active_checks: bool) -> Balancer {
        let cfgs = [crate::balancer::tests::cfg(1, 1)];
        let policy = Policy {
            max_fails: 3,
            fail_timeout_ms: 1_000,
            active_checks,
            ..Policy::default()
        };
        Balancer::with_policy(Pool::new(Strategy::RoundRobin, &cfgs), policy)
    }

    #[test]
    fn max_fails_within_the_window_take_a_backend_down_and_revive_brings_it_back() {
        let balancer = balancer(false);
        let b = std::sync::Arc::clone(&balancer.current().backends()[0]);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        // two failures, then the window ends: the count starts again
        assert!(!failed(&balancer, &b, at(0)));
        assert!(!failed(&balancer, &b, at(500)));
        assert!(!failed(&balancer, &b, at(1_600)));
        assert!(!failed(&balancer, &b, at(1_700)));
        assert_eq!(b.state(), State::Up);
        assert!(failed(&balancer, &b, at(1_800)), "the third within 1 s");
        assert_eq!(b.state(), State::Down);
        assert!(!failed(&balancer, &b, at(1_900)), "already down");
        assert_eq!(b.failures.load(Ordering::Relaxed), 6);
        revive(&balancer, at(2_700));
        assert_eq!(b.state(), State::Down, "not yet fail_timeout after");
        revive(&balancer, at(2_800));
        assert_eq!(b.state(), State::Up);
        // a fresh window after the revival
        assert!(!failed(&balancer, &b, at(2_900)));
    }

    #[test]
    fn with_active_checks_only_the_probes_bring_a_backend_back() {
        let balancer = balancer(true);
        let b = std::sync::Arc::clone(&balancer.current().backends()[0]);
        let t0 = Instant::now();
        for ms in 0..3 {
            failed(&balancer, &b, t0 + Duration::from_millis(ms));
        }
        assert_eq!(b.state(), State::Down);
        revive(&balancer, t0 + Duration::from_secs(60));
        assert_eq!(b.state(), State::Down);
        assert!(!b.set_healthy(true));
        assert_eq!(b.passive.down_since.load(Ordering::Relaxed), 0);
    }
}
