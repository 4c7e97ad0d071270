//! Seeded chaos: random faults from the fault lists, decided deterministically from
//! the chaos seed, the session's own seed and the event, so the same `--chaos SEED`
//! over the same live inputs gives the same faults and a failing CI run can be
//! reproduced exactly.

use std::time::Duration;

use super::{NotifyFault, ResponseFault};
use crate::ids::Seed;

/// `--chaos SEED --chaos-rate R`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chaos {
    pub seed: u64,
    /// The share of notifications and requests that get a fault, in (0, 1].
    pub rate: f64,
}

impl Chaos {
    /// 32 bytes for `label`/`data` in the session with seed `session`.
    fn roll(&self, session: &Seed, label: &[u8], data: &[u8]) -> [u8; 32] {
        Seed::derive([&self.seed.to_be_bytes()[..], &session.0[..], label]).bytes(label, data)
    }

    fn hit(&self, r: &[u8; 32]) -> bool {
        let x = u32::from_be_bytes([r[0], r[1], r[2], r[3]]);
        f64::from(x) / f64::from(u32::MAX) < self.rate
    }

    /// The fault chaos gives notification `seq` of batch `batch`, if any; `fail` only
    /// for an operation notification.
    pub fn notification(&self, session: &Seed, seq: u64, batch: u64, operation: bool) -> Option<NotifyFault> {
        let r = self.roll(
            session,
            b"notification",
            &[seq.to_be_bytes(), batch.to_be_bytes()].concat(),
        );
        if !self.hit(&r) {
            return None;
        }
        let kinds = if operation { 5 } else { 4 };
        Some(match r[4] % kinds {
            0 => NotifyFault::Drop,
            1 => NotifyFault::Delay(Duration::from_millis(100 + u64::from(r[5]) * 4)),
            2 => NotifyFault::Duplicate,
            3 => NotifyFault::Reorder,
            _ => NotifyFault::Fail {
                code: 500,
                subcode: 8510,
                message: "Operation failed (graphvcr chaos).".into(),
            },
        })
    }

    /// The fault chaos gives the `n`th request `key` (method and template) of a session.
    pub fn response(&self, session: &Seed, key: &str, n: u64) -> Option<ResponseFault> {
        let r = self.roll(session, b"response", &[key.as_bytes(), &n.to_be_bytes()].concat());
        if !self.hit(&r) {
            return None;
        }
        Some(match r[4] % 5 {
            0 => ResponseFault::Status {
                status: 429,
                retry_after: Some(1),
            },
            1 => ResponseFault::Status {
                status: 503,
                retry_after: Some(1),
            },
            2 => ResponseFault::Status {
                status: 500,
                retry_after: None,
            },
            3 => ResponseFault::Status {
                status: 404,
                retry_after: None,
            },
            _ => ResponseFault::Delay(Duration::from_millis(50 + u64::from(r[5]) * 2)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_faults_and_another_differs() {
        let session = Seed::derive([b"s".as_slice()]);
        let pick = |seed: u64| -> Vec<String> {
            let c = Chaos { seed, rate: 0.5 };
            (0..64)
                .map(|i| {
                    format!(
                        "{:?}|{:?}",
                        c.notification(&session, i, 0, true),
                        c.response(&session, "POST /x", i)
                    )
                })
                .collect()
        };
        assert_eq!(pick(7), pick(7));
        assert_ne!(pick(7), pick(8));
        let hits = pick(7).iter().filter(|s| !s.starts_with("None|None")).count();
        assert!(hits > 16 && hits < 64, "about the rate: {hits}");
    }
}
