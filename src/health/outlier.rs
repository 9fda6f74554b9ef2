//! Outlier ejection (`outlier_detection`): a backend that answers `consecutive_5xx` 5xx
//! responses in a row (responses: connect failures and resets are passive health's,
//! `passive.rs`) is ejected, taking no new request, for `base_ejection` times the number of its
//! ejections that still count (capped at 5 minutes, or `base_ejection` when that is longer), as
//! Envoy does. Each `base_ejection` it then spends without an ejection forgets one of them. At
//! most `max_ejected_percent` of the pool is out at once (one backend always may be), and
//! never the last backend available. It comes back under slow start, when the pool has one.
//!
//! The workers keep it: the count of 5xx in a row is the backend's own atomic, written when a
//! response head arrives ([`answered`]: a load, and a store only when a run of 5xx ends); an
//! ejection takes the pool's `ejecting` lock (rare); the end of one is found by the workers'
//! housekeeping once a second ([`sweep`]), a compare-and-swap deciding which worker brings it
//! back. Times are `timer::clock_ms`.
//!
//! Neighbours: the record is `balancer::backend::Outlier`, the keys `balancer::OutlierPolicy`;
//! the calls come from the stream (`stream/response.rs`) and the worker (`worker/timers.rs`); the
//! admin API shows the state `ejected`.

use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::balancer::{Backend, Balancer, OutlierPolicy};
use crate::timer::clock_ms;

/// The longest ejection, unless `base_ejection` itself is longer.
pub const MAX_EJECTION_MS: u64 = 5 * 60 * 1000;

/// A response head with `status` came from `backend`: true when it makes `consecutive_5xx` in a
/// row (the caller then tries [`eject`]).
#[inline]
pub fn answered(policy: &OutlierPolicy, backend: &Backend, status: u16) -> bool {
    let run = &backend.outlier.consecutive_5xx;
    if (500..600).contains(&status) {
        run.fetch_add(1, Ordering::Relaxed).saturating_add(1) >= policy.consecutive_5xx
    } else {
        if run.load(Ordering::Relaxed) != 0 {
            run.store(0, Ordering::Relaxed);
        }
        false
    }
}

/// How long the `ejections`-th ejection in a row lasts, in ms.
pub fn ejection_ms(policy: &OutlierPolicy, ejections: u32) -> u64 {
    let base = policy.base_ejection_ms;
    base.saturating_mul(u64::from(ejections.max(1)))
        .min(MAX_EJECTION_MS.max(base))
}

/// Ejects `backend` unless that would put more than `max_ejected_percent` of its pool out (one
/// may always be), or leave the pool without an available backend. True when it was ejected.
pub fn eject(balancer: &Balancer, backend: &Backend, policy: &OutlierPolicy, now: Instant) -> bool {
    let _one_at_a_time = balancer.ejecting.lock();
    backend.outlier.consecutive_5xx.store(0, Ordering::Relaxed);
    if backend.is_ejected() {
        return false;
    }
    let pool = balancer.current();
    let backends = pool.backends();
    if !backends.iter().any(|b| b.id == backend.id) {
        return false; // taken out of the pool meanwhile
    }
    let ejected = backends.iter().filter(|b| b.is_ejected()).count();
    let cap = (backends.len() * policy.max_ejected_percent as usize / 100).max(1);
    let others = backends
        .iter()
        .any(|b| b.id != backend.id && b.is_available());
    if ejected >= cap || !others {
        log::debug!(
            "{} answered {} 5xx in a row but stays: {ejected} of {} ejected already{}",
            backend.url,
            policy.consecutive_5xx,
            backends.len(),
            if others {
                ""
            } else {
                ", and no other backend is available"
            }
        );
        return false;
    }
    let count = backend.outlier.ejections.fetch_add(1, Ordering::Relaxed) + 1;
    let ms = ejection_ms(policy, count);
    let until = clock_ms(now).saturating_add(ms).max(1);
    backend
        .outlier
        .ejected_until
        .store(until, Ordering::Relaxed);
    backend.outlier.total.fetch_add(1, Ordering::Relaxed);
    log::warn!(
        "{} is ejected for {ms} ms: {} 5xx responses in a row (ejection {count})",
        backend.url,
        policy.consecutive_5xx
    );
    true
}

/// The workers' housekeeping, once a second: ejections that are over end (the backend comes
/// back, under slow start), and a backend that spent `base_ejection` since its last return
/// without an ejection has one fewer counted against it. A pool whose policy no longer ejects
/// (a reload) lets its ejected backends back at once.
pub fn sweep(balancer: &Balancer, now: Instant) {
    let pool = balancer.current();
    let policy = pool.policy().outlier;
    let now_ms = clock_ms(now);
    // bounded: the pool's backends
    for b in pool.backends() {
        let o = &b.outlier;
        let until = o.ejected_until.load(Ordering::Relaxed);
        if until != 0 {
            if (policy.is_none() || now_ms >= until) && b.end_ejection(until) {
                o.calm_since.store(now_ms, Ordering::Relaxed);
                log::info!("{} is back from its ejection", b.url);
            }
            continue;
        }
        let Some(policy) = policy else { continue };
        let calm = o.calm_since.load(Ordering::Relaxed);
        if o.ejections.load(Ordering::Relaxed) > 0
            && now_ms.saturating_sub(calm) >= policy.base_ejection_ms
            && o.calm_since
                .compare_exchange(calm, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            o.ejections.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::tests::pool;
    use crate::balancer::{Policy, Pool};
    use crate::config::Strategy;
    use std::sync::Arc;
    use std::time::Duration;

    fn policy(percent: u32) -> OutlierPolicy {
        OutlierPolicy {
            consecutive_5xx: 3,
            base_ejection_ms: 1_000,
            max_ejected_percent: percent,
        }
    }

    fn balancer(n: usize, percent: u32) -> Balancer {
        let p = Policy {
            outlier: Some(policy(percent)),
            ..Policy::default()
        };
        Balancer::with_policy(pool(Strategy::RoundRobin, &vec![1; n]), p)
    }

    #[test]
    fn only_a_run_of_5xx_counts() {
        let b = balancer(2, 50);
        let pool = b.current();
        let backend = &pool.backends()[0];
        let p = policy(50);
        assert!(!answered(&p, backend, 500));
        assert!(!answered(&p, backend, 503));
        assert!(!answered(&p, backend, 200), "a 200 ends the run");
        assert!(!answered(&p, backend, 502));
        assert!(!answered(&p, backend, 404));
        assert!(!answered(&p, backend, 500));
        assert!(!answered(&p, backend, 500));
        assert!(answered(&p, backend, 599), "the third in a row");
    }

    /// Two backends at 50 %, the first ejected at `t0`: the balancer, its policy and its pool.
    fn first_ejected(t0: Instant) -> (Balancer, OutlierPolicy, Arc<Pool>) {
        let b = balancer(2, 50);
        let p = policy(50);
        let pool = b.current();
        assert!(eject(&b, &pool.backends()[0], &p, t0));
        (b, p, pool)
    }

    #[test]
    fn an_ejection_lasts_longer_each_time_and_comes_back() {
        let t0 = Instant::now();
        let (b, p, pool) = first_ejected(t0);
        let backend = &pool.backends()[0];
        assert_eq!(backend.state(), crate::balancer::State::Ejected);
        assert!(!backend.is_available());
        sweep(&b, t0 + Duration::from_millis(500));
        assert!(backend.is_ejected(), "not over yet");
        sweep(&b, t0 + Duration::from_millis(1_001));
        assert!(backend.is_available(), "back after base_ejection");
        assert!(backend.back_since().is_some(), "under slow start");
        let t1 = t0 + Duration::from_millis(1_100);
        assert!(eject(&b, backend, &p, t1));
        let until = backend.ejected_until().unwrap_or(0);
        assert_eq!(
            until,
            clock_ms(t1) + 2_000,
            "the second lasts twice as long"
        );
        assert_eq!(ejection_ms(&p, 1_000), MAX_EJECTION_MS);
    }

    #[test]
    fn a_calm_backend_forgets_its_ejections() {
        let t0 = Instant::now();
        let (b, p, pool) = first_ejected(t0);
        let backend = &pool.backends()[0];
        sweep(&b, t0 + Duration::from_millis(1_000));
        assert_eq!(backend.outlier.ejections.load(Ordering::Relaxed), 1);
        sweep(&b, t0 + Duration::from_millis(2_000));
        assert_eq!(backend.outlier.ejections.load(Ordering::Relaxed), 0);
        assert!(eject(&b, backend, &p, t0 + Duration::from_millis(2_100)));
        assert_eq!(
            backend.ejected_until(),
            Some(clock_ms(t0 + Duration::from_millis(2_100)) + 1_000),
            "a first ejection again"
        );
    }

    #[test]
    fn max_ejected_percent_and_the_last_available_backend_are_kept() {
        // 4 backends at 50 %: two may be out, not three
        let b = balancer(4, 50);
        let p = policy(50);
        let pool = b.current();
        let t = Instant::now();
        assert!(eject(&b, &pool.backends()[0], &p, t));
        assert!(eject(&b, &pool.backends()[1], &p, t));
        assert!(!eject(&b, &pool.backends()[2], &p, t));
        // 10 % of 2 is 0, but one may always be out; the other is then the last one available
        let b = balancer(2, 10);
        let pool = b.current();
        assert!(eject(&b, &pool.backends()[0], &policy(10), t));
        let b = balancer(2, 100);
        let pool = b.current();
        pool.backends()[1].set_enabled(false);
        assert!(
            !eject(&b, &pool.backends()[0], &policy(100), t),
            "the last one stays"
        );
    }

    #[test]
    fn a_policy_turned_off_lets_ejected_backends_back() {
        let b = balancer(2, 50);
        let pool = b.current();
        assert!(eject(&b, &pool.backends()[0], &policy(50), Instant::now()));
        b.update(|p| p.set_policy(std::sync::Arc::new(Policy::default())));
        sweep(&b, Instant::now());
        assert!(pool.backends()[0].is_available());
    }
}
