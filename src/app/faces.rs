//! Face routing: each listener's handler (the Graph face, with the admin API under
//! `/_graphvcr/` and, in replay, the callback-token metadata under
//! `/_graphvcr/.well-known/`, and the record-mode callback face), the body-limit
//! adapter that reads a whole request within `--max-body`, and spawning a face on its
//! listener.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::misses::Misses;
use super::{say, AppError};
use crate::admin::{self, Admin};
use crate::clock::Clock;
use crate::config::Limits;
use crate::error::ProxyError;
use crate::http::server::{self, Handler, HandlerFuture, ServerOptions};
use crate::http::wire::{self, BodyError};
use crate::identity::IdentityFace;
use crate::record::{CallbackFace, RecordFace};
use crate::replay::{Handled, Replayer};

/// A face that wants the whole request body: reads it within the limit first.
pub trait Endpoint: Send + Sync + 'static {
    fn call(self: Arc<Self>, parts: http::request::Parts, body: Bytes) -> HandlerFuture;

    /// The largest body this face reads for a request (default: `--max-body`).
    fn body_limit(&self, _parts: &http::request::Parts, max_body: usize) -> usize {
        max_body
    }
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

    fn now_ms(&self) -> u64 {
        self.clock.unix_ms()
    }

    fn handle(&self, req: http::Request<server::Body>, _peer: SocketAddr) -> HandlerFuture {
        let inner = self.inner.clone();
        let max = self.max_body;
        let clock = self.clock.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let max = inner.body_limit(&parts, max);
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
    /// Replay; misses a session forwards go to `Misses` (when an upstream is set).
    Replay(Arc<Replayer>, Option<Arc<Misses>>),
    /// Forward everything, store nothing.
    Passthrough(Arc<Misses>),
}

/// The Graph face: the admin API under `/_graphvcr/`, everything else by mode.
pub struct GraphFace {
    admin: Admin,
    mode: Mode,
    identity: Option<Arc<IdentityFace>>,
    clock: Arc<dyn Clock>,
}

impl GraphFace {
    pub fn new(admin: Admin, mode: Mode, clock: Arc<dyn Clock>) -> GraphFace {
        GraphFace {
            admin,
            mode,
            identity: None,
            clock,
        }
    }

    /// Also serves the callback-token metadata at `/_graphvcr/.well-known/`.
    pub fn with_identity(mut self, identity: Option<Arc<IdentityFace>>) -> GraphFace {
        self.identity = identity;
        self
    }
}

impl Endpoint for GraphFace {
    fn body_limit(&self, parts: &http::request::Parts, max_body: usize) -> usize {
        if admin::owns(parts.uri.path()) {
            max_body.min(admin::MAX_BODY)
        } else {
            max_body
        }
    }

    fn call(self: Arc<Self>, parts: http::request::Parts, body: Bytes) -> HandlerFuture {
        Box::pin(async move {
            if let Some(r) = self.identity.as_ref().and_then(|i| i.local_metadata(&parts)) {
                return r;
            }
            if admin::owns(parts.uri.path()) {
                return self.admin.handle(&parts, &body);
            }
            match &self.mode {
                Mode::Record(r) => r.clone().handle(parts, body).await,
                Mode::Replay(r, misses) => match (r.handle(&parts, &body).await, misses) {
                    (Handled::Answer(resp), _) => resp,
                    (Handled::Delayed(d, resp), _) => {
                        tokio::time::sleep(d).await;
                        resp
                    }
                    (Handled::Forward(f), Some(m)) => m.forward(r, f, parts, body).await,
                    (Handled::Forward(_), None) => {
                        ProxyError::BadRequest("this session forwards misses, but graphvcr has no --upstream".into())
                            .respond(&*self.clock, &parts.method, &parts.uri, &body)
                    }
                },
                Mode::Passthrough(m) => m.pass_through(parts, body).await,
            }
        })
    }
}

impl Endpoint for CallbackFace {
    fn call(self: Arc<Self>, parts: http::request::Parts, body: Bytes) -> HandlerFuture {
        Box::pin(self.handle(parts, body))
    }
}

/// A face as a listener's handler: its requests read within `--max-body` first.
pub fn handler<E: Endpoint>(face: Arc<E>, limits: &Limits, clock: &Arc<dyn Clock>) -> Arc<dyn Handler> {
    Arc::new(BodyReader {
        inner: face,
        max_body: limits.max_body,
        clock: clock.clone(),
    })
}

/// Starts serving `handler` on `listener` (TLS when `opts` has it); prints the
/// `listening on http(s)://ADDR (label)` line.
pub fn spawn_handler(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    opts: ServerOptions,
    label: &str,
    stop: &watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, AppError> {
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::Runtime(format!("listener has no address: {e}")))?;
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    let mut stop = stop.clone();
    let task = tokio::spawn(server::serve(listener, handler, opts, async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the {label} face listens beyond loopback: anyone who can reach {addr} can use it");
    }
    say(&format!("listening on {scheme}://{addr} ({label})"));
    Ok(task)
}
