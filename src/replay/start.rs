//! Starting sessions explicitly (admin API, start-up) and "ringing" them: delivering
//! the cassette's notifications that need no trigger (`follows: null`, an incoming
//! call), with ids minted for the session that the bot's later requests use.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use super::callbacks::{self, Batch};
use super::prepared::Prepared;
use super::session::Session;
use super::sessions::{ClaimError, Route};
use super::settings::SessionSettings;
use super::Replayer;
use crate::error::ProxyError;
use crate::graph;
use crate::ids::IdTable;
use crate::sync::lock;

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct Start<'a> {
    /// The cassette (default: the replayer's).
    pub cassette: Option<&'a str>,
    /// The session's name; without one a new session with a generated name.
    pub session: Option<&'a str>,
    /// For an existing session: deliver its untriggered notifications not yet
    /// delivered (without it, an existing session is a conflict).
    pub ring_again: bool,
    /// A new session's settings (default: the replayer's).
    pub settings: Option<SessionSettings>,
}

/// What starting did.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    pub session: String,
    pub cassette: String,
    /// A new session (else an existing one rang again).
    pub created: bool,
    /// Live ids of the calls its notifications announce.
    pub calls: Vec<String>,
    /// Notifications queued.
    pub notifications: usize,
}

impl Replayer {
    /// Starts (or rings again) a session; see `Start`.
    pub fn start(&self, req: &Start<'_>) -> Result<Started, ProxyError> {
        let cassette = self.cassette_for(req.cassette)?;
        let name = match req.session {
            Some(n) => n.to_string(),
            None => self.fresh_name(&cassette),
        };
        let settings = req.settings.clone().map(Arc::new);
        let route = Route {
            settings: settings.as_ref().unwrap_or(&self.defaults),
            header: Some(&name),
            path_ids: &[],
            body_ids: &[],
            seed_material: &Vec::new,
        };
        let shared = self.sessions.find_or_create(&cassette, &route, self.clock.mono_ms())?;
        let mut s = lock(&shared);
        if let Err(ClaimError::Ended) = self.sessions.claim(&shared, &mut s, &[]) {
            return Err(ProxyError::Conflict(format!(
                "replay session {} ended while starting",
                s.id()
            )));
        }
        if s.cassette().name() != cassette.name() {
            return Err(ProxyError::Conflict(format!(
                "replay session {name} exists and replays cassette `{}`, not `{}`",
                s.cassette().name(),
                cassette.name()
            )));
        }
        let created = !s.announced() && s.is_untouched();
        if !created && !req.ring_again {
            return Err(ProxyError::Conflict(format!(
                "replay session {name} already exists; send {{\"ring\": true}} to deliver its untriggered notifications again"
            )));
        }
        s.announce();
        let (notifications, calls) = self.ring(&mut s, &cassette)?;
        Ok(Started {
            session: name,
            cassette: cassette.name().to_string(),
            created,
            calls,
            notifications,
        })
    }

    /// A session name no live session has: `{cassette}-{n}`.
    fn fresh_name(&self, cassette: &Prepared) -> String {
        loop {
            let n = self.unnamed.fetch_add(1, Ordering::Relaxed) + 1;
            let name = format!("{}-{n}", cassette.name());
            if self.sessions.report(&name).is_none() {
                return name;
            }
        }
    }

    /// Queues the session's untriggered notifications not yet delivered (or queued);
    /// returns how many, and the live ids of the calls they announce.
    fn ring(&self, s: &mut Session, cassette: &Prepared) -> Result<(usize, Vec<String>), ProxyError> {
        let done: HashSet<u64> = s.delivered_or_queued();
        let events: Vec<usize> = cassette
            .unattached()
            .iter()
            .copied()
            .filter(|&i| !done.contains(&cassette.head(i).seq))
            .collect();
        if events.is_empty() {
            return Ok((0, Vec::new()));
        }
        let loaded = cassette.load_all(&events)?;
        let scoped = IdTable::default();
        let (jobs, minted, number) = {
            let w = s.writing(&scoped);
            let mut rw = w.rw;
            let batch = Batch {
                events: &loaded,
                after_ms: cassette.head(events[0]).at_ms,
                callback_uri: w.callback_uri,
                number: w.number,
                patience: Some(self.ring_timeout),
                settings: w.settings,
            };
            let jobs = callbacks::jobs(&batch, &mut rw);
            (jobs, rw.into_minted(), w.number)
        };
        let mut jobs = jobs;
        s.fault_batch(&mut jobs, &events, number);
        let mut calls: Vec<String> = Vec::new();
        for j in &jobs {
            if let Ok(v) = serde_json::from_slice::<Value>(&j.body) {
                for c in graph::notification_call_ids(&v) {
                    if !calls.contains(&c) {
                        calls.push(c);
                    }
                }
            }
        }
        s.note_batch();
        let n = jobs.len();
        // no response triggers these: their batch starts now
        let (now, after) = oneshot::channel();
        let _ = now.send(());
        let pending = self.dispatch(s, after, jobs);
        self.sessions.served(s.id(), &minted, pending);
        Ok((n, calls))
    }
}
