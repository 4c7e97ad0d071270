//! Time, injected: wall-clock milliseconds for dates and a monotonic millisecond
//! counter for offsets. Tests pass a fixed clock; nothing else reads the system time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The clock every component is given.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch (dates in headers and error bodies).
    fn unix_ms(&self) -> u64;
    /// Monotonic milliseconds (offsets between events).
    fn mono_ms(&self) -> u64;
}

/// The real clock.
#[derive(Debug)]
pub struct SystemClock {
    base: Instant,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock { base: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn mono_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }
}

/// A clock whose wall time is fixed; monotonic time is real so
/// that offsets stay meaningful.
#[derive(Debug)]
pub struct FixedClock {
    unix: AtomicU64,
    base: Instant,
}

impl FixedClock {
    pub fn new(unix_ms: u64) -> FixedClock {
        FixedClock {
            unix: AtomicU64::new(unix_ms),
            base: Instant::now(),
        }
    }

    /// Moves its wall time on by `ms`.
    pub fn advance(&self, ms: u64) {
        self.unix.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Clock for FixedClock {
    fn unix_ms(&self) -> u64 {
        self.unix.load(Ordering::Relaxed)
    }

    fn mono_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }
}

/// Days since the epoch -> (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The calendar date `days` days after the day of `unix_ms`: (year, month, day).
pub fn civil_date(unix_ms: u64, days: i64) -> (i64, u32, u32) {
    civil((unix_ms / 1000) as i64 / 86_400 + days)
}

/// `2026-11-27T10:00:00Z`
pub fn rfc3339(unix_ms: u64) -> String {
    let mut s = graph_date(unix_ms);
    s.push('Z');
    s
}

/// Graph's `innerError.date` form: `2026-11-27T10:00:00` (UTC, no zone).
pub fn graph_date(unix_ms: u64) -> String {
    let secs = (unix_ms / 1000) as i64;
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let (h, min, sec) = ((s / 3600) as u32, (s / 60 % 60) as u32, (s % 60) as u32);
    let year = match u32::try_from(y) {
        Ok(year) if year <= 9999 => year,
        _ => return format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{sec:02}"),
    };
    // digits written by hand: every error answer writes one (the formatter costs more)
    let mut out = String::with_capacity(20);
    for (n, sep) in [
        (year / 100, ""),
        (year % 100, "-"),
        (m, "-"),
        (d, "T"),
        (h, ":"),
        (min, ":"),
        (sec, ""),
    ] {
        out.push(char::from(b'0' + (n / 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
        out.push_str(sep);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_581_615_024_000), "2020-02-13T17:30:24Z");
        assert_eq!(graph_date(1_795_773_600_000), "2026-11-27T10:00:00");
        assert_eq!(rfc3339(253_402_300_799_000), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(253_402_300_800_000), "10000-01-01T00:00:00Z");
    }
}
