//! Active health checks: one plain OS thread (`ferrule-health`) with its own `mio::Poll` probes
//! every backend of the published pool each `health_check_frequency`, and flips a backend's
//! health after `health_check_rise` consecutive successes or `health_check_fall` consecutive
//! failures. No probe ever runs on a worker; workers only see the flag
//! (`Backend::is_available`), never a lock.
//!
//! What this module owns: the thread and its stop ([`start`], [`HealthHandle`]) and the rise/fall
//! rule ([`judge`]) in this file; the schedule of the probes, their deadlines, and what an outcome
//! does to a backend (record, flag, log lines) in `schedule.rs`; one probe (connect, request,
//! status line) in `probe.rs`. Neighbours: the backend's record (`Backend::health`,
//! `HealthInfo::record`) and flag live in `balancer/`, which the admin API reads; the keys come
//! from `config/` ([`HealthSettings::from_pool`]); `lib.rs` starts the thread when the pool's
//! `Health::active` and stops it with the proxy.
//!
//! Schedule: time is cut into rounds of one interval. Whenever the pool's generation moves, the
//! thread takes it up: removed backends are forgotten (a probe in flight is dropped), new ones
//! are checked from the next round. A round lists the pool's backends in order and backend `i`
//! of `n` is due at `i/n` of the interval plus a small jitter (under a quarter of its slot, at
//! most 50 ms): probes are spread over the interval, never a burst. A probe that starts gets a
//! deadline of `health_check_timeout`; every probe has the same timeout and they start in time
//! order, so the deadlines are a FIFO queue. Probes run concurrently on non-blocking sockets, so
//! a backend that hangs costs its own probe only.
//!
//! Bounds: at most one probe in flight per backend (a backend whose last probe still runs when it
//! is due again is skipped that round); a probe still running at its deadline fails with
//! `timed out`; a probe reads at most `probe::READ_LIMIT` bytes; every loop runs over the pool,
//! the poll's events or the deadline queue, each bounded.

pub mod outlier;
pub mod passive;
mod probe;
mod schedule;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Poll, Token, Waker};

use crate::balancer::Balancer;
use crate::config::{Health, PoolConfig};

use self::schedule::Checker;

/// The token of the thread's waker (probes use slab keys, far below it).
const WAKER: Token = Token(usize::MAX);

/// How the health thread checks a pool's backends: its `health_check_*` keys, and how long one
/// probe may take ([`PoolConfig::health_timeout`], which the backend timeout enters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    pub check: Health,
    pub timeout: Duration,
}

impl HealthSettings {
    pub fn from_pool(pool: &PoolConfig) -> HealthSettings {
        HealthSettings {
            check: pool.health.clone(),
            timeout: pool.health_timeout(),
        }
    }

    /// Checks run at all: a method other than `none` and a non-zero interval.
    pub fn active(&self) -> bool {
        self.check.active()
    }
}

/// The running health thread; stopping it (or dropping the handle) ends it promptly: the thread
/// is woken through its poll, drops its probes and exits.
pub struct HealthHandle {
    running: Option<Running>,
}

struct Running {
    stop: Arc<AtomicBool>,
    waker: Waker,
    thread: JoinHandle<()>,
}

impl HealthHandle {
    /// The thread runs (false after [`HealthHandle::stop`], or when checks are off).
    pub fn is_running(&self) -> bool {
        self.running
            .as_ref()
            .is_some_and(|r| !r.thread.is_finished())
    }

    /// Stops the thread and waits for it (a probe in flight is dropped, not waited for).
    pub fn stop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        running.stop.store(true, Ordering::Release);
        if let Err(e) = running.waker.wake() {
            log::error!("cannot wake the health-check thread to stop it: {e}");
        }
        if running.thread.join().is_err() {
            log::error!("the health-check thread panicked");
        }
    }
}

impl Drop for HealthHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the health thread over `balancer`'s pool. With checks off (`settings.active()` false)
/// no thread starts and the handle does nothing.
pub fn start(balancer: Arc<Balancer>, settings: HealthSettings) -> io::Result<HealthHandle> {
    if !settings.active() {
        return Ok(HealthHandle { running: None });
    }
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut checker = Checker::new(poll, balancer, settings, Arc::clone(&stop));
    let thread = std::thread::Builder::new()
        .name("ferrule-health".into())
        .spawn(move || checker.run())?;
    Ok(HealthHandle {
        running: Some(Running {
            stop,
            waker,
            thread,
        }),
    })
}

/// The rise/fall rule. `healthy`: the backend's state before this probe; `ok` its result and
/// `consecutive` how many results of that kind in a row it makes (`HealthInfo::record`).
/// Returns the new state when it changes.
pub fn judge(healthy: bool, ok: bool, consecutive: u32, rise: u32, fall: u32) -> Option<bool> {
    match (healthy, ok) {
        (true, false) if consecutive >= fall.max(1) => Some(false),
        (false, true) if consecutive >= rise.max(1) => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::HealthInfo;

    /// Runs `results` through a backend record and the rule from `healthy`; returns the state
    /// after each probe.
    fn states(healthy: bool, results: &[bool], rise: u32, fall: u32) -> Vec<bool> {
        let mut info = HealthInfo::default();
        let mut state = healthy;
        results
            .iter()
            .enumerate()
            .map(|(at, &ok)| {
                let n = info.record(at as u64, ok, (!ok).then(|| "timed out".to_owned()));
                if let Some(new) = judge(state, ok, n, rise, fall) {
                    state = new;
                }
                state
            })
            .collect()
    }

    #[test]
    fn an_up_backend_goes_down_after_fall_failures_in_a_row() {
        let (t, f) = (true, false);
        assert_eq!(states(t, &[f, f, f], 2, 3), [t, t, f]);
        // a success in between starts the count again
        assert_eq!(states(t, &[f, f, t, f, f, f], 2, 3), [t, t, t, t, t, f]);
        assert_eq!(states(t, &[f], 2, 1), [f]);
    }

    #[test]
    fn a_down_backend_comes_up_after_rise_successes_in_a_row() {
        let (t, f) = (true, false);
        assert_eq!(states(f, &[t, t], 2, 3), [f, t]);
        assert_eq!(states(f, &[t, f, t, t], 2, 3), [f, f, f, t]);
        assert_eq!(states(f, &[t], 1, 3), [t]);
    }

    #[test]
    fn a_full_cycle_down_and_up_again() {
        let (t, f) = (true, false);
        let got = states(t, &[t, f, f, f, f, t, t, t, f], 2, 3);
        assert_eq!(got, [t, t, t, f, f, f, t, t, t]);
    }

    #[test]
    fn more_of_the_same_changes_nothing() {
        assert_eq!(judge(true, true, 50, 2, 3), None);
        assert_eq!(judge(false, false, 50, 2, 3), None);
        // a backend set up by hand while failing goes down at its next failure
        assert_eq!(judge(true, false, 7, 2, 3), Some(false));
        // zero is read as one
        assert_eq!(judge(true, false, 1, 0, 0), Some(false));
    }

    #[test]
    fn no_thread_when_checks_are_off() {
        let cfg =
            crate::Config::from_json_str(r#"{"health_check_method": "none"}"#).expect("valid");
        let balancer = Arc::new(Balancer::new(crate::Pool::new(
            cfg.pool.balance.strategy,
            &[],
        )));
        let mut handle = start(balancer, HealthSettings::from_pool(&cfg.pool)).expect("starts");
        assert!(!handle.is_running());
        handle.stop();
    }
}
