//! Delivery of replayed notifications: each session's outbox delivers its rewritten
//! notifications in order, paced, with retries, logging every attempt; a target that
//! refuses every attempt is skipped for a while (`breaker`). Knows nothing of
//! recording (the record-mode callback face lives in `record`).

mod breaker;

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::Method;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::config::Retry;
use crate::http::client::{ClientError, HttpClient};
use crate::ring::Ring;
use crate::ring::REPORT_TAIL;
use crate::sync::lock;

/// One attempt to deliver a notification.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attempt {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The fate of one notification in a session.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Delivery {
    /// The recorded notification's seq.
    pub seq: u64,
    pub url: Option<String>,
    pub attempts: Vec<Attempt>,
    pub delivered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Cow<'static, str>>,
}

/// What a session's outbox reports.
#[derive(Debug, Clone, Default)]
pub struct DeliveryLog {
    pub recent: Vec<Delivery>,
    pub delivered: u64,
    pub failed: u64,
    pub retrying: Option<Delivery>,
}

/// A notification ready to go: rewritten, addressed, paced.
pub struct Job {
    pub seq: u64,
    /// The recorded notification's method (Graph uses POST).
    pub method: Method,
    /// Where it goes, or why it cannot go anywhere.
    pub url: Result<String, Cow<'static, str>>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Wait from the start of its batch (the triggering response).
    pub wait: Duration,
    /// Set on the first job of a batch: resolves when the triggering response is out.
    pub batch_start: Option<oneshot::Receiver<()>>,
    /// Keep retrying a refused connection for this long, past the attempt limit
    /// (a ringing call waits for a bot that is still starting).
    pub patience: Option<Duration>,
}

/// The most attempts a delivery's log keeps (the latest ones).
const ATTEMPTS_KEPT: usize = 50;

/// Delivery counts over every session, ever.
#[derive(Debug, Default)]
pub struct Totals {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    /// Queued or in progress.
    pub pending: AtomicUsize,
}

/// Sets a notification's credentials once, just before its first delivery attempt
/// (e.g. signs a fresh callback token from claims the job's headers carry).
pub trait Authorizer: Send + Sync + 'static {
    fn authorize(&self, headers: &mut HeaderMap);
}

/// Replay-side delivery settings shared by every session.
pub struct Notifier {
    client: HttpClient,
    auth: Option<HeaderValue>,
    authorizer: Option<Arc<dyn Authorizer>>,
    retry: Retry,
    totals: Totals,
    /// Deliveries in flight at once, over every session (one pooled client).
    in_flight: tokio::sync::Semaphore,
    breakers: breaker::Breakers,
}

/// The most notification deliveries in flight at once, over every session.
pub const MAX_IN_FLIGHT: usize = 256;

impl Notifier {
    pub fn new(client: HttpClient, auth: Option<HeaderValue>, retry: Retry) -> Notifier {
        Notifier {
            client,
            auth,
            authorizer: None,
            retry,
            totals: Totals::default(),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            breakers: breaker::Breakers::new(retry.max_backoff),
        }
    }

    /// Runs `a` on every notification before it goes out; a fixed `auth` still wins.
    pub fn with_authorizer(mut self, a: Arc<dyn Authorizer>) -> Notifier {
        self.authorizer = Some(a);
        self
    }
}

impl Notifier {
    /// Delivery counts over every session, ever.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// The log entry of a job that has nowhere to go (its `url` is the reason).
    fn undeliverable(job: Job) -> Delivery {
        let reason = job.url.err();
        if let Some(why) = &reason {
            tracing::warn!(seq = job.seq, "notification undeliverable: {why}");
        }
        Delivery {
            seq: job.seq,
            url: None,
            attempts: Vec::new(),
            delivered: false,
            reason,
        }
    }

    /// How a job goes (or why it does not): a probe and a ringing call's jobs (its bot
    /// may still be starting) are tried in full; the others give up their retries once
    /// another delivery finds the target down.
    fn gate(&self, job: &Job, target: &str) -> Result<Tries, String> {
        if job.patience.is_some() {
            return Ok(Tries::All);
        }
        match self.breakers.check(target, tokio::time::Instant::now()) {
            breaker::Verdict::Try => Ok(Tries::WhileUp),
            breaker::Verdict::Probe => Ok(Tries::All),
            breaker::Verdict::Skip { trips } => Err(format!(
                "not tried: {}; it is tried again after {:?}",
                refusing(target, trips),
                self.retry.max_backoff
            )),
        }
    }

    /// Why a delivery stops retrying: its target's breaker opened meanwhile (another
    /// delivery exhausted its attempts on refusals), so the rest of its back-off would
    /// only keep its session busy.
    fn given_up(&self, target: &str) -> Option<Cow<'static, str>> {
        let trips = self.breakers.down(target, tokio::time::Instant::now())?;
        Some(Cow::Owned(format!("not tried again: {}", refusing(target, trips))))
    }

    /// Delivers one job with retries on a refused connection or a 5xx, unless its
    /// target is known to be down. `progress` sees the delivery after every failed
    /// attempt (for the report).
    async fn deliver(&self, job: Job, progress: impl Fn(&Delivery)) -> Delivery {
        let Ok(url) = job.url.clone() else {
            return Notifier::undeliverable(job);
        };
        let mut d = Delivery {
            seq: job.seq,
            url: Some(url.clone()),
            attempts: Vec::new(),
            delivered: false,
            reason: None,
        };
        let target = breaker::target(&url);
        let tries = match self.gate(&job, target) {
            Ok(g) => g,
            Err(why) => {
                d.reason = Some(Cow::Owned(why));
                return d;
            }
        };
        let mut headers = job.headers;
        if let Some(z) = &self.authorizer {
            z.authorize(&mut headers);
        }
        if let Some(a) = &self.auth {
            headers.insert(header::AUTHORIZATION, a.clone());
        }
        let started = tokio::time::Instant::now();
        let mut n: u32 = 0;
        let mut refused = true;
        loop {
            n += 1;
            let r = {
                // a closed semaphore never happens (it lives as long as the notifier)
                let _permit = self.in_flight.acquire().await.ok();
                self.client
                    .send(job.method.clone(), &url, headers.clone(), job.body.clone())
                    .await
            };
            if d.attempts.len() >= ATTEMPTS_KEPT {
                d.attempts.remove(0);
            }
            let retry = match &r {
                Ok(reply) => {
                    d.attempts.push(Attempt {
                        status: Some(reply.status),
                        error: None,
                    });
                    // a 4xx is the bot refusing it: not delivered, and not worth retrying
                    d.delivered = reply.status < 400;
                    reply.status >= 500
                }
                Err(e) => {
                    d.attempts.push(Attempt {
                        status: None,
                        error: Some(e.to_string()),
                    });
                    matches!(e, ClientError::Connect { .. })
                }
            };
            // only a connection refused every time says the target is down
            refused &= retry && r.is_err();
            let wait = self.retry.backoff(n);
            let patient = job.patience.is_some_and(|p| started.elapsed() + wait < p);
            if !retry || (n >= self.retry.attempts.max(1) && !patient) {
                break;
            }
            progress(&d);
            tokio::time::sleep(wait).await;
            if let Some(why) = (tries == Tries::WhileUp).then(|| self.given_up(target)).flatten() {
                // the breaker already counts this target down: not recorded again
                d.reason = Some(why);
                return d;
            }
        }
        self.finish(target, refused, d)
    }

    /// A delivery that ran its course: told to its target's breaker, and logged.
    fn finish(&self, target: &str, refused: bool, d: Delivery) -> Delivery {
        self.breakers.record(target, refused, tokio::time::Instant::now());
        let url = d.url.as_deref().unwrap_or_default();
        if d.delivered {
            tracing::debug!(seq = d.seq, %url, attempts = d.attempts.len(), "notification delivered");
        } else {
            tracing::warn!(seq = d.seq, %url, attempts = d.attempts.len(), "notification not delivered");
        }
        d
    }
}

/// How many of its attempts a delivery may use.
#[derive(Clone, Copy, PartialEq)]
enum Tries {
    /// All of them.
    All,
    /// Until another delivery finds the target down.
    WhileUp,
}

/// What a target that is down did, as a delivery's reason says it.
fn refusing(target: &str, trips: u32) -> String {
    format!("{target} refused every connection of the last {trips} delivery(ies)")
}

/// Deliveries of one session: the latest ones, how many failed in all, and the one
/// being retried now.
struct Log {
    recent: Ring<Delivery>,
    failed: u64,
    current: Option<Delivery>,
    /// Seqs of the recorded notifications delivered (bounded by the cassette).
    delivered: HashSet<u64>,
}

struct Queue {
    jobs: VecDeque<Job>,
    /// A delivery task is draining `jobs`.
    running: bool,
    /// The seq of the job being delivered now (popped, not yet logged).
    sending: Option<u64>,
}

struct OutboxState {
    queue: Mutex<Queue>,
    log: Mutex<Log>,
    pending: Arc<AtomicUsize>,
    notifier: Arc<Notifier>,
}

/// A session's delivery queue. A task delivers its jobs in order while there are
/// any, then ends (an idle session costs no task).
#[derive(Clone)]
pub struct Outbox(Arc<OutboxState>);

impl Outbox {
    pub fn new(notifier: Arc<Notifier>) -> Outbox {
        Outbox(Arc::new(OutboxState {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                running: false,
                sending: None,
            }),
            log: Mutex::new(Log {
                recent: Ring::new(REPORT_TAIL),
                failed: 0,
                current: None,
                delivered: HashSet::new(),
            }),
            pending: Arc::new(AtomicUsize::new(0)),
            notifier,
        }))
    }

    /// Queues a batch (the notifications one response triggers), in order.
    pub fn push_batch(&self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let n = jobs.len();
        self.0.pending.fetch_add(n, Ordering::SeqCst);
        self.0.notifier.totals.pending.fetch_add(n, Ordering::SeqCst);
        let start = {
            let mut q = lock(&self.0.queue);
            if !q.running && jobs.iter().all(|j| j.url.is_err()) {
                // nowhere to send them and nothing queued before them: settled now,
                // in order, without a task or a wait
                drop(q);
                for job in jobs {
                    Self::settle(&self.0, Notifier::undeliverable(job));
                }
                return;
            }
            q.jobs.extend(jobs);
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            tokio::spawn(Self::drain(self.0.clone()));
        }
    }

    async fn drain(state: Arc<OutboxState>) {
        let mut t0 = tokio::time::Instant::now();
        loop {
            let next = {
                let mut q = lock(&state.queue);
                let next = q.jobs.pop_front();
                q.running = next.is_some();
                q.sending = next.as_ref().map(|j| j.seq);
                next
            };
            let Some(mut job) = next else { return };
            if let Some(start) = job.batch_start.take() {
                let _ = start.await;
                t0 = tokio::time::Instant::now();
            }
            let due = t0 + job.wait;
            if due > tokio::time::Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            let n = &state.notifier;
            let d = n.deliver(job, |d| lock(&state.log).current = Some(d.clone())).await;
            Self::settle(&state, d);
        }
    }

    /// Logs a finished delivery (delivered or not) and counts it out of the pending.
    fn settle(state: &OutboxState, d: Delivery) {
        let n = &state.notifier;
        let total = if d.delivered {
            &n.totals.delivered
        } else {
            &n.totals.failed
        };
        total.fetch_add(1, Ordering::Relaxed);
        {
            let mut l = lock(&state.log);
            l.current = None;
            if d.delivered {
                l.delivered.insert(d.seq);
            } else {
                l.failed += 1;
            }
            l.recent.push(d);
        }
        lock(&state.queue).sending = None;
        state.pending.fetch_sub(1, Ordering::SeqCst);
        n.totals.pending.fetch_sub(1, Ordering::SeqCst);
    }

    /// How many were delivered and failed in all (cheap: no log copy).
    pub fn counts(&self) -> (u64, u64) {
        let l = lock(&self.0.log);
        (l.recent.total() - l.failed, l.failed)
    }

    /// Seqs delivered, being delivered or queued.
    pub fn delivered_or_queued(&self) -> HashSet<u64> {
        let mut out: HashSet<u64> = {
            let q = lock(&self.0.queue);
            q.jobs.iter().map(|j| j.seq).chain(q.sending).collect()
        };
        let l = lock(&self.0.log);
        out.extend(l.delivered.iter().copied());
        out.extend(l.current.as_ref().map(|d| d.seq));
        out
    }

    /// Jobs queued or in progress.
    pub fn pending(&self) -> usize {
        self.0.pending.load(Ordering::SeqCst)
    }

    pub fn pending_counter(&self) -> Arc<AtomicUsize> {
        self.0.pending.clone()
    }

    /// `f` of the latest deliveries, read in place (an ended session's outcome keeps
    /// only what `f` makes of them).
    pub fn with_recent<R>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &Delivery>) -> R) -> R {
        f(&mut lock(&self.0.log).recent.iter())
    }

    /// The latest deliveries, how many were delivered and failed in all, and the
    /// delivery being retried now (its attempts so far).
    pub fn log(&self) -> DeliveryLog {
        let l = lock(&self.0.log);
        DeliveryLog {
            recent: l.recent.to_vec(),
            delivered: l.recent.total() - l.failed,
            failed: l.failed,
            retrying: l.current.clone(),
        }
    }
}
