//! A circuit breaker per notification target: once a bot's connections were refused
//! through a whole delivery (every attempt), deliveries to it fail at once, reported
//! as not tried, for a cool-down (those still retrying it give up at their next
//! attempt); then one delivery probes it with the usual attempts while the others
//! still fail at once, and an answer closes the breaker. A bot that is down then costs
//! a notification no connection attempts, and its sessions soon idle; one that starts
//! late (before any delivery used all its retries) still gets everything.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::sync::lock;

/// How long a probe may take before another delivery may probe instead (a probe
/// whose task ended without a result must not keep the breaker open for ever).
const PROBE_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Open {
    /// Deliveries fail at once until then; after it, the next one probes.
    until: Instant,
    /// Deliveries that exhausted their attempts on refusals, in a row.
    trips: u32,
}

/// The breakers of every target (scheme, host and port) deliveries go to.
#[derive(Debug)]
pub struct Breakers {
    open: Mutex<HashMap<String, Open>>,
    cool_down: Duration,
}

/// What a delivery may do.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Deliver: the breaker is closed.
    Try,
    /// Deliver: the breaker is open and this delivery probes the target.
    Probe,
    /// Do not: the target is down (refused every attempt of this many deliveries).
    Skip { trips: u32 },
}

impl Breakers {
    pub fn new(cool_down: Duration) -> Breakers {
        Breakers {
            open: Mutex::new(HashMap::new()),
            cool_down,
        }
    }

    /// Whether a delivery to `target` may go now.
    pub fn check(&self, target: &str, now: Instant) -> Verdict {
        let mut open = lock(&self.open);
        let Some(o) = open.get_mut(target) else {
            return Verdict::Try;
        };
        if now < o.until {
            return Verdict::Skip { trips: o.trips };
        }
        o.until = now + PROBE_GRACE;
        Verdict::Probe
    }

    /// Whether `target` is down now (another delivery tripped its breaker, or probes
    /// it): how many deliveries it refused in a row. A delivery still retrying it then
    /// gives up instead of waiting out its back-off.
    pub fn down(&self, target: &str, now: Instant) -> Option<u32> {
        let open = lock(&self.open);
        open.get(target).filter(|o| now < o.until).map(|o| o.trips)
    }

    /// A delivery to `target` ended: `refused` when every attempt was refused.
    pub fn record(&self, target: &str, refused: bool, now: Instant) {
        let mut open = lock(&self.open);
        if !refused {
            open.remove(target);
            return;
        }
        let o = open.entry(target.to_string()).or_insert(Open { until: now, trips: 0 });
        o.trips += 1;
        o.until = now + self.cool_down;
        tracing::warn!(
            target,
            trips = o.trips,
            "notification target refuses connections: not tried for {:?}",
            self.cool_down
        );
    }
}

/// The target of a URL: scheme, host and port (`https://bot:443`), the URL itself
/// when it has no path.
pub fn target(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find(['/', '?']) {
        Some(i) => &url[..after + i],
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_down_is_skipped_for_its_cool_down_then_probed_once() {
        let b = Breakers::new(Duration::from_secs(2));
        let t0 = Instant::now();
        let bot = target("http://127.0.0.1:9/api/calls?x=1");
        assert_eq!(bot, "http://127.0.0.1:9");
        assert_eq!(b.check(bot, t0), Verdict::Try);
        b.record(bot, true, t0);
        assert_eq!(b.check(bot, t0 + Duration::from_secs(1)), Verdict::Skip { trips: 1 });
        assert_eq!(b.check("http://127.0.0.1:10", t0), Verdict::Try, "per target");
        let later = t0 + Duration::from_secs(2);
        assert_eq!(b.down(bot, later), None, "cooled down");
        assert_eq!(b.check(bot, later), Verdict::Probe, "the probe");
        assert_eq!(b.down(bot, later), Some(1), "down while it probes");
        assert_eq!(b.check(bot, later), Verdict::Skip { trips: 1 }, "one probe at a time");
        b.record(bot, true, later);
        assert_eq!(b.check(bot, later), Verdict::Skip { trips: 2 });
        b.record(bot, false, later + Duration::from_secs(3));
        assert_eq!(b.check(bot, later), Verdict::Try, "an answer closes it");
        assert_eq!(b.down(bot, later), None);
    }
}
