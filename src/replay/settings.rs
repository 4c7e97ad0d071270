//! What each replay session may set for itself (through `POST /_graphvcr/sessions`),
//! with the command line's values as defaults: where its notifications go, their
//! pacing, how strictly it matches, what a miss does, and the misses it expects.

pub use crate::config::OnMiss;
use crate::config::{BotUrl, Pacing};
use std::sync::Arc;

use crate::error::ProxyError;
use crate::faults::chaos::Chaos;
use crate::faults::Fault;
use crate::matching::{clip, MatchMode};

/// A session name (`x-graphvcr-session`, the admin API): 1 to 128 printable ASCII
/// characters.
pub fn validate_session_name(name: &str) -> Result<(), ProxyError> {
    let ok = !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ProxyError::BadRequest(format!(
            "session name `{}` is not allowed: use 1 to 128 printable ASCII characters",
            clip(name, 64)
        )))
    }
}

/// One session's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSettings {
    /// Where notifications go: scheme, host, port and optional path prefix.
    pub bot_url: Option<BotUrl>,
    pub pacing: Pacing,
    pub match_mode: MatchMode,
    pub on_miss: OnMiss,
    /// Misses that keep the verdict ok (besides requests that declare them).
    pub expect_misses: u64,
    /// Faults injected into this session's notifications and responses.
    pub faults: Arc<[Fault]>,
    /// Random faults, from a seed.
    pub chaos: Option<Chaos>,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            bot_url: None,
            pacing: Pacing::default(),
            match_mode: MatchMode::Default,
            on_miss: OnMiss::Error,
            expect_misses: 0,
            faults: Arc::from(Vec::new()),
            chaos: None,
        }
    }
}
