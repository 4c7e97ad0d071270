//! Face routing: each listener's handler (the Graph face, with the admin API under
//! `/_graphvcr/`, and the record-mode callback face), the body-limit adapter that
//! reads a whole request within `--max-body`, and spawning a face on its listener.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{say, AppError};
use crate::admin::{self, Admin};
use crate::clock::Clock;
use crate::config::Limits;
use crate::error::ProxyError;
use crate::http::server::{self, Handler, HandlerFuture};
use crate::http::wire::{self, BodyError};
use crate::record::{CallbackFace, RecordFace};
use crate::replay::Replayer;

/// A face that wants the whole request body: reads it within the limit first.
pub trait Endpoint: Send + Sync + 'static {
    fn call(self: Arc<Self>, parts: http::request::Parts, body: Bytes) -> HandlerFuture;
}

struct BodyReader<E> {
    inner: Arc<E>,
    max_body: usize,
    clock: Arc<dyn Clock>,
}

impl<E: Endpoint> Handler for BodyReader<E> {
    fn refuse(&self, status: u16, message: &str, req: &http::request::Parts) -> wire::Resp {
        ProxyError::Framing(status, message.to_string()).respond(&*self.clock, &req.method, &req.uri, b"")
    }

    fn handle(&self, req: http::Request<server::Body>, _peer: SocketAddr) -> HandlerFuture {
        let inner = self.inner.clone();
        let max = self.max_body;
        let clock = self.clock.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            match wire::read_body(&parts.headers, body, max).await {
                Ok(b) => inner.call(parts, b).await,
                Err(e) => {
                    let err = match e {
                        BodyError::TooLarge { limit } => ProxyError::TooLarge(limit),
                        BodyError::TimedOut(after) => ProxyError::Framing(
                            408,
                            format!("the request body did not arrive within {after:?} (--body-timeout)"),
                        ),
                        BodyError::Read(m) => ProxyError::BadRequest(m),
                    };
                    err.respond(&*clock, &parts.method, &parts.uri, b"")
                }
            }
        })
    }
}

/// What the Graph face does with a Graph request.
pub enum Mode {
    Record(Arc<RecordFace>),
    Replay(Arc<Replayer>),
}

/// The Graph face: the admin API under `/_graphvcr/`, everything else by mode.
pub struct GraphFace {
    admin: Admin,
    mode: Mode,
}

impl GraphFace {
    pub fn new(admin: Admin, mode: Mode) -> GraphFace {
        GraphFace { admin, mode }
    }
}

impl Endpoint for GraphFace {
    fn call(self: Arc<Self>, parts: http::request::Parts, body: Bytes) -> HandlerFuture {
        Box::pin(async move {
            if admin::owns(parts.uri.path()) {
                return self.admin.handle(&parts, &body);
            }
            match &self.mode {
                Mode::Record(r) => r.clone().handle(parts, body).await,
                Mode::Replay(r) => r.handle(&parts, body),
            }
        })
    }
}

impl Endpoint for CallbackFace {
    fn call(self: Arc<Self>, parts: http::request::Parts, body: Bytes) -> HandlerFuture {
        Box::pin(self.handle(parts, body))
    }
}

/// Starts serving `listener` in the background; prints the `listening on` line.
pub fn spawn_face<E: Endpoint>(
    listener: TcpListener,
    face: E,
    limits: &Limits,
    clock: &Arc<dyn Clock>,
    label: &str,
    stop: &watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, AppError> {
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::Runtime(format!("listener has no address: {e}")))?;
    let handler: Arc<dyn Handler> = Arc::new(BodyReader {
        inner: Arc::new(face),
        max_body: limits.max_body,
        clock: clock.clone(),
    });
    let mut stop = stop.clone();
    let task = tokio::spawn(server::serve(listener, handler, limits.server_options(), async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    say(&format!("listening on http://{addr} ({label})"));
    Ok(task)
}
