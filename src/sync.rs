//! Poison-tolerant locking: the one way graphvcr takes a `std::sync::Mutex`; the
//! turns requests of one session take (an async gate in front of its mutex); and
//! driving such a future to its end from synchronous code.
//!
//! Every mutex guards plain data whose invariants hold between statements, so a
//! panic elsewhere never leaves it half-updated; a poisoned lock is used as is.

use std::future::Future;
use std::hash::{BuildHasher as _, Hash};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Locks `m`, recovering the guard if another thread panicked while holding it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long [`free_soon`] spins, in pause hints.
const SPINS: u32 = 256;

/// Whether `m` is free now or within a short spin (a few microseconds: a session's
/// turn is usually shorter). A lock held longer is left to waiting without the thread.
pub fn free_soon<T>(m: &Mutex<T>) -> bool {
    for _ in 0..SPINS {
        if !matches!(m.try_lock(), Err(std::sync::TryLockError::WouldBlock)) {
            return true;
        }
        std::hint::spin_loop();
    }
    false
}

/// Async gates, striped by key: a task waiting for its turn parks (its worker thread
/// goes on with other connections) instead of blocking the thread on a mutex. Two
/// keys that share a stripe only take turns with each other.
pub struct Turns {
    gates: Box<[tokio::sync::Mutex<()>]>,
    hasher: foldhash::fast::RandomState,
}

impl Turns {
    pub fn new(stripes: usize) -> Turns {
        Turns {
            gates: (0..stripes.max(1)).map(|_| tokio::sync::Mutex::new(())).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// Waits for `key`'s turn; the turn lasts as long as the guard.
    pub async fn take(&self, key: impl Hash) -> tokio::sync::MutexGuard<'_, ()> {
        let i = self.hasher.hash_one(key) as usize % self.gates.len();
        self.gates[i].lock().await
    }
}

/// Runs `fut` to its end on this thread (for synchronous callers of code whose only
/// waits are [`Turns`]: polled again, after yielding the thread, until it is ready).
pub fn now<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_lock_is_free_soon_unless_held_all_along() {
        let m = std::sync::Mutex::new(());
        assert!(free_soon(&m));
        let held = lock(&m);
        assert!(!free_soon(&m), "held by this very thread for the whole spin");
        drop(held);
        assert!(free_soon(&m));
    }

    #[test]
    fn a_key_takes_one_turn_at_a_time_and_now_drives_it() {
        let turns = Arc::new(Turns::new(4));
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (turns, inside) = (turns.clone(), inside.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        now(async {
                            let _turn = turns.take("one session").await;
                            let was = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            assert_eq!(was, 0, "two turns at once");
                            std::thread::yield_now();
                            inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no overlap");
        }
    }
}
