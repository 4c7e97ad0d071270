//! Group commit: callers ask for durability; one flusher thread serves every request
//! that queued while the previous flush ran with a single flush. Waiters are answered
//! as soon as sled's flush returns; the seal is brought up to date after that, off
//! their path.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{Store, StoreError};

type Waiter = oneshot::Sender<Result<(), StoreError>>;

/// A handle onto the flusher thread of one store.
#[derive(Clone)]
pub struct Committer {
    tx: std::sync::mpsc::Sender<Waiter>,
}

impl Committer {
    pub fn new(store: Arc<dyn Store>) -> Committer {
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
        Committer { tx }
    }

    /// Resolves once everything written before the call is durable.
    pub async fn commit(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(tx)
            .map_err(|_| StoreError::Io("the flush thread is gone".into()))?;
        rx.await
            .map_err(|_| StoreError::Io("the flush thread is gone".into()))?
    }
}
