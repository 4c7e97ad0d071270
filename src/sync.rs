//! Poison-tolerant locking: the one way graphvcr takes a `std::sync::Mutex`; the
//! turns requests of one session take (an async gate in front of its mutex, spun for
//! briefly before it is waited for); driving such a future to its end from
//! synchronous code; and futures that finish even when their caller stops waiting.
//!
//! Every mutex guards plain data whose invariants hold between statements, so a
//! panic elsewhere never leaves it half-updated; a poisoned lock is used as is.

use std::future::Future;
use std::hash::{BuildHasher as _, Hash};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Locks `m`, recovering the guard if another thread panicked while holding it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long a turn is spun for before it is waited for, in pause hints (a few
/// microseconds: about one request's turn).
const SPINS: u32 = 256;

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

    /// Waits for `key`'s turn; the turn lasts as long as the guard. A turn that comes
    /// free within a short spin is taken on this thread, without parking the task (a
    /// parked task's worker may sleep, and waking it costs more than the wait).
    /// Turns stay in order: while tasks are queued for one, a spin never takes it
    /// ahead of them.
    pub async fn take(&self, key: impl Hash) -> tokio::sync::MutexGuard<'_, ()> {
        let gate = &self.gates[self.hasher.hash_one(key) as usize % self.gates.len()];
        for _ in 0..SPINS {
            if let Ok(turn) = gate.try_lock() {
                return turn;
            }
            std::hint::spin_loop();
        }
        gate.lock().await
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

/// Work that runs to its end even when its caller stops waiting (a client that hangs
/// up must not cancel what an upstream already acted on): see [`to_the_end`].
pub struct ToTheEnd<F: Future<Output: Send> + Send + 'static> {
    fut: Option<Pin<Box<F>>>,
}

/// The work panicked; what it said is in the log.
#[derive(Debug)]
pub struct Panicked;

/// Runs `fut` in the caller's task while the caller waits, and hands what is left of it
/// to the runtime when the caller is dropped first. Spawning it at once would do the
/// same at the cost of a second task, and of a wake between workers, for every call.
/// A panic in `fut` is caught and answered as [`Panicked`], as a spawned task's would.
pub fn to_the_end<F: Future<Output: Send> + Send + 'static>(fut: F) -> ToTheEnd<F> {
    ToTheEnd {
        fut: Some(Box::pin(fut)),
    }
}

impl<F: Future<Output: Send> + Send + 'static> Future for ToTheEnd<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Ready(Err(Panicked));
        };
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx)));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => {
                self.fut = None;
                Poll::Ready(Ok(out))
            }
            Err(_) => {
                self.fut = None;
                Poll::Ready(Err(Panicked))
            }
        }
    }
}

impl<F: Future<Output: Send> + Send + 'static> Drop for ToTheEnd<F> {
    fn drop(&mut self) {
        if let (Some(fut), Ok(rt)) = (self.fut.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn(async move {
                fut.await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_spin_never_takes_a_turn_ahead_of_a_task_queued_for_it() {
        let turns = Turns::new(1);
        let mut cx = Context::from_waker(Waker::noop());
        let first = now(turns.take("one session"));
        let mut second = std::pin::pin!(turns.take("one session"));
        assert!(second.as_mut().poll(&mut cx).is_pending(), "busy past the spin: queued");
        drop(first);
        let mut third = std::pin::pin!(turns.take("one session"));
        assert!(
            third.as_mut().poll(&mut cx).is_pending(),
            "the freed turn is the queued task's"
        );
        let Poll::Ready(turn) = second.as_mut().poll(&mut cx) else {
            panic!("the queued task has its turn");
        };
        drop(turn);
        assert!(third.as_mut().poll(&mut cx).is_ready());
    }

    #[tokio::test]
    async fn work_its_caller_left_runs_to_its_end_and_a_panic_is_an_answer() {
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let (done, finished) = tokio::sync::oneshot::channel();
        let mut work = Box::pin(to_the_end(async move {
            let _ = wait.await;
            let _ = done.send("finished");
        }));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(work.as_mut().poll(&mut cx).is_pending(), "waiting for go");
        drop(work);
        go.send(()).expect("the work is still there");
        assert_eq!(finished.await.ok(), Some("finished"));

        let answered = to_the_end(async { panic!("a bug in the work") }).await;
        assert!(matches!(answered, Err(Panicked)));
        assert_eq!(to_the_end(async { 7 }).await.ok(), Some(7));
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
