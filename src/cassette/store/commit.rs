//! Group commit: callers ask for durability; one flusher thread serves every request
//! that queued while the previous flush ran with a single flush. Waiters are answered
//! as soon as sled's flush returns; the seal is brought up to date after that, off
//! their path. A store with nothing to make durable (`Store::flushes`) gets no thread:
//! its commits are answered at once, without a round trip through one.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{Store, StoreError};

type Waiter = oneshot::Sender<Result<(), StoreError>>;

/// A handle onto the flusher thread of one store (none when the store never flushes).
#[derive(Clone)]
pub struct Committer {
    tx: Option<std::sync::mpsc::Sender<Waiter>>,
}

impl Committer {
    pub fn new(store: Arc<dyn Store>) -> Committer {
        if !store.flushes() {
            return Committer { tx: None };
        }
        let (tx, rx) = std::sync::mpsc::channel::<Waiter>();
        std::thread::Builder::new()
            .name("graphvcr-flush".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut waiters = vec![first];
                    waiters.extend(rx.try_iter());
                    let sealed = store.flush_then(&mut |r| {
                        for w in waiters.drain(..) {
                            let _ = w.send(r.clone());
                        }
                    });
                    if let Err(e) = sealed {
                        tracing::warn!("store flush: {e}");
                    }
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start the flush thread: {e}"));
        Committer { tx: Some(tx) }
    }

    /// Resolves once everything written before the call is durable.
    pub async fn commit(&self) -> Result<(), StoreError> {
        let Some(flusher) = &self.tx else {
            return Ok(());
        };
        let (tx, rx) = oneshot::channel();
        flusher
            .send(tx)
            .map_err(|_| StoreError::Io("the flush thread is gone".into()))?;
        rx.await
            .map_err(|_| StoreError::Io("the flush thread is gone".into()))?
    }
}
