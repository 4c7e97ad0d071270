//! The replayer's run-level API, for the app and the admin API: reports and verdicts,
//! totals, when a run is done, idle sweeps, and what a forwarded miss left behind
//! (capture-on-miss adoption, forwarded-miss notes).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::prepared::Prepared;
use super::session::{Forwarded, Outcome, Report};
use super::{ReplayTotals, Replayer};
use crate::error::ProxyError;
use crate::sync::lock;

impl Replayer {
    /// A request as reports and logs show it.
    pub fn shown(&self, parts: &http::request::Parts) -> String {
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        crate::matching::clip(&format!("{} {}", parts.method, crate::redact::shown_uri(pq)), 300)
    }

    /// A miss of `session` was recorded into `cassette` as exchange `seq`: the
    /// cassette is reloaded (new sessions see it) and the session serves from the new
    /// version, the recorded exchange counted as served.
    pub fn adopt_recorded(&self, session: &str, cassette: &str, seq: u64) -> Result<(), ProxyError> {
        let fresh = Prepared::stream(&*self.store, cassette, self.hold_events)?
            .ok_or_else(|| ProxyError::NotFound(format!("no cassette named `{cassette}` in the store")))?;
        let fresh = Arc::new(fresh);
        if let Ok(mut m) = self.cassettes.write() {
            m.insert(cassette.to_string(), fresh.clone());
        }
        if let Some(shared) = self.sessions.get(session) {
            lock(&shared).adopt(fresh, seq);
        }
        Ok(())
    }

    /// What happened to a forwarded miss, for its session's report.
    pub fn note_forwarded(&self, session: &str, f: Forwarded) {
        if let Some(shared) = self.sessions.get(session) {
            lock(&shared).note_forwarded(f);
        }
    }

    /// Totals over every session ever (they outlive the ring of ended reports).
    pub fn totals(&self) -> ReplayTotals {
        let n = self.notifier.totals();
        ReplayTotals {
            misses: self.misses.load(Ordering::Relaxed),
            delivered: n.delivered.load(Ordering::Relaxed),
            failed: n.failed.load(Ordering::Relaxed),
            pending: n.pending.load(Ordering::SeqCst),
        }
    }

    /// Resolves once every exchange of the default cassette was served and every
    /// notification delivered, or once no request came for `idle`.
    pub async fn done(&self, idle: Duration) {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            let all_served = self
                .default_cassette
                .as_deref()
                .and_then(|n| self.cassette(n).ok())
                .is_some_and(|c| c.unused().is_empty());
            if all_served && self.totals().pending == 0 {
                return;
            }
            let quiet = self
                .clock
                .mono_ms()
                .saturating_sub(self.last_request_ms.load(Ordering::Relaxed));
            if Duration::from_millis(quiet) >= idle {
                return;
            }
        }
    }

    /// Exchanges of the default cassette that no session used.
    pub fn unused_everywhere(&self) -> Vec<u64> {
        self.default_cassette
            .as_deref()
            .and_then(|n| self.cassette(n).ok())
            .map(|c| c.unused())
            .unwrap_or_default()
    }

    /// Every session of the run with its verdict (see `Sessions::outcomes`).
    pub fn outcomes(&self) -> (Vec<Outcome>, u64) {
        self.sessions.outcomes()
    }

    /// Reports of live and ended sessions, by session id.
    pub fn reports(&self) -> Vec<Report> {
        self.sessions.reports()
    }

    /// One session's report, live or ended.
    pub fn report(&self, id: &str) -> Option<Report> {
        self.sessions.report(id)
    }

    /// Ends a live session now and returns its final report.
    pub fn end(&self, id: &str) -> Option<Report> {
        self.sessions.end(id)
    }

    /// Ends the sessions idle for too long.
    pub fn sweep(&self) {
        self.sessions.sweep(self.clock.mono_ms());
    }
}
