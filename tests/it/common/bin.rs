//! Running the real `graphvcr` binary: with a timeout (a hang is a failure), or in the
//! background, reading the `listening on` lines it prints.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary, with the environment cleared of graphvcr settings.
pub fn graphvcr_bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_graphvcr"));
    c.env_remove("GRAPHVCR_STORE").env("GRAPHVCR_LOG", "warn");
    c
}

/// `graphvcr record` against the fake Graph (its CA trusted) with both faces on
/// 127.0.0.1:0 and notifications forwarded to `bot_url`; `extra` appended.
pub fn record_args(
    store: &std::path::Path,
    cassette: &str,
    upstream: &str,
    ca: &std::path::Path,
    bot_url: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "record",
        "--cassette",
        cassette,
        "--store",
        &store.display().to_string(),
        "--upstream",
        upstream,
        "--upstream-ca",
        &ca.display().to_string(),
        "--listen",
        "127.0.0.1:0",
        "--callback-listen",
        "127.0.0.1:0",
        "--bot-url",
        bot_url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Sends SIGKILL to a process.
pub fn kill9(pid: u32) {
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
}

/// Runs to completion within `limit` (panics naming the command if it hangs):
/// exit code, stdout, stderr.
pub fn run_bin(args: &[&str], limit: Duration) -> (i32, String, String) {
    let child = graphvcr_bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn graphvcr");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => {
            let out = out.expect("output");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
        Err(_) => {
            kill9(pid);
            panic!("graphvcr {args:?} did not finish within {limit:?}");
        }
    }
}

/// A background graphvcr and the addresses it printed, by label (`graph`, `callbacks`).
pub struct Running {
    pub child: Child,
    pub addrs: Vec<(String, String)>,
}

impl Running {
    pub fn addr(&self, label: &str) -> String {
        self.addrs
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("no {label} listener in {:?}", self.addrs))
    }
}

/// Starts graphvcr and waits (up to `limit`; a hang is a failure) for `listeners`
/// `listening on` lines; when it exits first, its exit code and stderr.
pub fn start_bin(args: &[&str], listeners: usize, limit: Duration) -> Result<Running, (i32, String)> {
    let mut child = graphvcr_bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn graphvcr");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    // reads every line, so the child never blocks on a full pipe
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let deadline = std::time::Instant::now() + limit;
    let mut addrs = Vec::new();
    while addrs.len() < listeners {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let found = l
                    .trim()
                    .strip_prefix("listening on http://")
                    .and_then(|r| r.split_once(' '));
                if let Some((addr, label)) = found {
                    addrs.push((
                        label.trim_matches(|c| c == '(' || c == ')').to_string(),
                        addr.to_string(),
                    ));
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let out = child.wait_with_output().expect("output");
                return Err((
                    out.status.code().unwrap_or(-1),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                ));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                kill9(child.id());
                panic!("graphvcr {args:?} neither listened nor exited within {limit:?}");
            }
        }
    }
    Ok(Running { child, addrs })
}
