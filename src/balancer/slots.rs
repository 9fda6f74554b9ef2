//! The `max_conns` queue's wake-ups: when every candidate backend is at its `max_conns`, a request
//! waits in its worker's queue (`stream/`, `worker/conns.rs`), and [`Slots`] wakes the workers with
//! requests waiting when a slot frees or a backend becomes a candidate again.
//!
//! Neighbours: every backend of a pool holds the pool's `Arc<Slots>` (`backend.rs` calls
//! [`Slots::freed`] when a request on a limited backend ends, or when it is enabled or healthy
//! again); the balancer (`mod.rs`) calls it when it publishes a pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use parking_lot::RwLock;

/// Wakes the workers whose queues wait for a backend slot (`max_conns`) when one frees up. A
/// worker registers its waker and its count of queued requests; a backend with a limit calls
/// [`Slots::freed`] when a request on it ends, which costs one relaxed load while nobody waits.
#[derive(Debug, Default)]
pub struct Slots {
    /// Requests waiting in all the queues.
    waiting: CachePadded<AtomicUsize>,
    workers: RwLock<Vec<(Arc<mio::Waker>, Arc<AtomicUsize>)>>,
}

impl Slots {
    /// Worker registration: its waker, and the count of requests in its queue.
    pub fn register(&self, waker: Arc<mio::Waker>, queued: Arc<AtomicUsize>) {
        self.workers.write().push((waker, queued));
    }

    /// One request more (or less) waits in `queued`'s queue. `SeqCst`, with the `SeqCst` end of a
    /// request and load in [`Slots::freed`]: either the worker queueing sees the slot the other
    /// freed (it tries once more right after queueing), or the other sees it waiting and wakes it.
    pub fn enqueued(&self, queued: &AtomicUsize) {
        queued.fetch_add(1, Ordering::SeqCst);
        self.waiting.fetch_add(1, Ordering::SeqCst);
    }

    pub fn dequeued(&self, queued: &AtomicUsize) {
        queued.fetch_sub(1, Ordering::SeqCst);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// A slot freed on a backend with a limit, or a backend became a candidate (added, enabled,
    /// healthy again): wake every worker with requests waiting. One load while nobody waits.
    #[inline]
    pub fn freed(&self) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        for (waker, queued) in self.workers.read().iter() {
            if queued.load(Ordering::Relaxed) > 0 {
                let _ = waker.wake();
            }
        }
    }
}
