//! Faults in a replay session: which faults a cassette can take (a spec must name a
//! recorded notification or request), the response fault a request gets instead of
//! its recording, and what the notification faults do to a batch before it is queued.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};

use super::prepared::Prepared;
use super::settings::SessionSettings;
use crate::cassette::Kind;
use crate::faults::{Fault, FaultError, NotifyFault, NotifyTarget, ResponseFault};
use crate::ids::Seed;
use crate::notify::Job;

/// A fault that was applied, for the session's report.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// The fault, as written (or as chaos chose it).
    pub fault: String,
    /// What it hit: `notification #2`, `POST /communications/calls/{id} (#1)`.
    pub target: String,
}

fn is_operation(cassette: &Prepared, i: usize) -> bool {
    cassette.reports_operation(i)
}

fn targets(cassette: &Prepared, i: usize, target: &NotifyTarget) -> bool {
    match target {
        NotifyTarget::Seq(seq) => cassette.head(i).seq == *seq,
        NotifyTarget::Kind { change, template } => cassette
            .notification_kinds(i)
            .iter()
            .any(|(c, t)| c == change && t == template),
    }
}

/// Refuses a fault that names no recorded notification or request of `cassette`.
pub fn validate(f: &Fault, cassette: &Prepared) -> Result<(), FaultError> {
    let refuse = |why: String| FaultError {
        spec: f.spec().to_string(),
        why,
    };
    let notes = || (0..cassette.heads().len()).filter(|&i| cassette.head(i).kind == Kind::Notification);
    match f {
        Fault::Notification { target, fault, .. } => {
            let hit: Vec<usize> = notes().filter(|&i| targets(cassette, i, target)).collect();
            if hit.is_empty() {
                return Err(refuse(format!(
                    "cassette `{}` has no such notification",
                    cassette.name()
                )));
            }
            if matches!(fault, NotifyFault::Fail { .. }) && !hit.iter().any(|&i| is_operation(cassette, i)) {
                return Err(refuse("`fail` needs an operation notification".into()));
            }
            Ok(())
        }
        Fault::Response { target, .. } => {
            let found = cassette.exchanges().iter().any(|x| {
                x.method.eq_ignore_ascii_case(&target.method)
                    && x.path.as_ref().is_some_and(|p| p.template() == target.template)
            });
            if found {
                Ok(())
            } else {
                Err(refuse(format!("cassette `{}` has no such request", cassette.name())))
            }
        }
    }
}

/// The response fault the `n`th request `method template` of a session gets.
pub fn response_fault(
    settings: &SessionSettings,
    seed: &Seed,
    occurrences: &mut crate::hash::Map<String, u64>,
    method: &str,
    template: &str,
) -> Option<(ResponseFault, Applied)> {
    if settings.faults.is_empty() && settings.chaos.is_none() {
        return None;
    }
    let key = format!("{method} {template}");
    let n = occurrences.entry(key.clone()).or_insert(0);
    *n += 1;
    let n = *n;
    let target = format!("{key} (#{n})");
    for f in settings.faults.iter() {
        if let Fault::Response { target: t, fault, spec } = f {
            if t.method == method && t.template == template && t.occurrence.hits(n) {
                let applied = Applied {
                    fault: spec.clone(),
                    target,
                };
                return Some((fault.clone(), applied));
            }
        }
    }
    let chaos = settings.chaos?;
    let fault = chaos.response(seed, &key, n)?;
    let applied = Applied {
        fault: format!("chaos {}: {fault:?}", chaos.seed),
        target,
    };
    Some((fault, applied))
}

/// A notification's body with its operation failed: `status: failed` and a `resultInfo`.
fn failed(body: &Bytes, code: i64, subcode: i64, message: &str) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return body.clone();
    };
    let info =
        json!({"@odata.type": "#microsoft.graph.resultInfo", "code": code, "subcode": subcode, "message": message});
    let items: Vec<&mut Value> = match v.get_mut("value") {
        Some(Value::Array(a)) => a.iter_mut().collect(),
        _ => vec![&mut v],
    };
    for item in items {
        if let Some(Value::Object(data)) = item.get_mut("resourceData") {
            data.insert("status".into(), Value::from("failed"));
            data.insert("resultInfo".into(), info.clone());
        }
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// A job's copy (the duplicate of a delivery: same body, same message id).
fn copy(j: &Job) -> Job {
    Job {
        seq: j.seq,
        method: j.method.clone(),
        url: j.url.clone(),
        headers: j.headers.clone(),
        body: j.body.clone(),
        wait: j.wait,
        batch_start: None,
        patience: j.patience,
    }
}

/// The notification fault for job `k` of a batch (event `i`), if any.
fn fault_for(
    cassette: &Prepared,
    i: usize,
    settings: &SessionSettings,
    seed: &Seed,
    batch: u64,
) -> Option<(NotifyFault, String)> {
    for f in settings.faults.iter() {
        if let Fault::Notification { target, fault, spec } = f {
            if targets(cassette, i, target) {
                let applies = !matches!(fault, NotifyFault::Fail { .. }) || is_operation(cassette, i);
                if applies {
                    return Some((fault.clone(), spec.clone()));
                }
            }
        }
    }
    let chaos = settings.chaos?;
    let seq = cassette.head(i).seq;
    let fault = chaos.notification(seed, seq, batch, is_operation(cassette, i))?;
    let spec = format!("chaos {}: {fault:?}", chaos.seed);
    Some((fault, spec))
}

/// Applies the session's notification faults to a batch (jobs in the order of
/// `events`); returns what was applied.
pub fn apply(
    jobs: &mut Vec<Job>,
    events: &[usize],
    cassette: &Prepared,
    settings: &SessionSettings,
    seed: &Seed,
    batch: u64,
) -> Vec<Applied> {
    if settings.faults.is_empty() && settings.chaos.is_none() {
        return Vec::new();
    }
    let planned: Vec<Option<(NotifyFault, String)>> = events
        .iter()
        .map(|&i| fault_for(cassette, i, settings, seed, batch))
        .collect();
    let mut applied = Vec::new();
    let mut out: Vec<Job> = Vec::with_capacity(jobs.len() + 1);
    let mut extra = std::time::Duration::ZERO;
    let mut held: Option<Job> = None;
    for (mut job, plan) in std::mem::take(jobs).into_iter().zip(planned) {
        job.wait += extra;
        let mut hold = None;
        match plan {
            None => out.push(job),
            Some((fault, spec)) => {
                applied.push(Applied {
                    fault: spec,
                    target: format!("notification #{}", job.seq),
                });
                match fault {
                    NotifyFault::Drop => {}
                    NotifyFault::Delay(d) => {
                        extra += d;
                        job.wait += d;
                        out.push(job);
                    }
                    NotifyFault::Duplicate => {
                        let twin = copy(&job);
                        out.push(job);
                        out.push(twin);
                    }
                    NotifyFault::Reorder => hold = Some(job),
                    NotifyFault::Fail { code, subcode, message } => {
                        job.body = failed(&job.body, code, subcode, &message);
                        out.push(job);
                    }
                }
            }
        }
        // one held back goes right after the next one
        out.extend(held.take());
        held = hold;
    }
    out.extend(held);
    keep_start_and_schedule(&mut out);
    *jobs = out;
    applied
}

/// After reordering: the batch's start signal stays on the first job, and waits
/// never go backwards.
fn keep_start_and_schedule(jobs: &mut [Job]) {
    if let Some(pos) = jobs.iter().position(|j| j.batch_start.is_some()) {
        if pos != 0 {
            let start = jobs[pos].batch_start.take();
            jobs[0].batch_start = start;
        }
    }
    let mut floor = std::time::Duration::ZERO;
    for j in jobs.iter_mut() {
        j.wait = j.wait.max(floor);
        floor = j.wait;
    }
}
