//! The `graphvcr` binary: parse the command line, set up logging and the rustls
//! provider, run the chosen command, map its outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use graphvcr::app::{self, AppError, CassetteCmd, Deps};
use graphvcr::cassette::{SledStore, Store};
use graphvcr::cli::{CassetteCommand, Cli, Command};
use graphvcr::clock::SystemClock;
use std::sync::Arc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // sled reports the damage it finds on its own; graphvcr says it once, with how to recover
    let log = if cli.log.contains("sled") {
        cli.log.clone()
    } else {
        format!("{},sled=off", cli.log)
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sled=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    graphvcr::http::client::install_crypto_provider();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("graphvcr: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(out) => {
            if !out.is_empty() {
                app::say(&out);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("graphvcr: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Opens the store for a mode; damaged cassettes it holds are named (the mode fails
/// with exit code 3 if it needs one of them).
fn open_store(path: &std::path::Path) -> Result<Arc<dyn Store>, AppError> {
    let store = SledStore::open(path)?;
    for d in store.damage() {
        tracing::warn!("{d}");
    }
    Ok(Arc::new(store))
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, AppError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| AppError::Runtime(format!("cannot listen on {addr}: {e}")))
}

async fn run(cli: Cli) -> Result<String, AppError> {
    match cli.command {
        Command::Record(a) => {
            let cfg = a.config().map_err(AppError::Usage)?;
            let deps = Deps {
                store: open_store(&a.store.store)?,
                clock: Arc::new(SystemClock::new()),
            };
            let graph = bind(a.listen).await?;
            let callbacks = match a.callback_listen {
                Some(addr) => Some(bind(addr).await?),
                None => None,
            };
            let out = app::run_record(cfg, deps, graph, callbacks, app::stop_signal()).await?;
            Ok(format!(
                "recorded {} events into `{}`{}",
                out.events,
                out.cassette,
                out.exported
                    .map(|p| format!(", exported to {}", p.display()))
                    .unwrap_or_default()
            ))
        }
        Command::Replay(a) => {
            let cfg = a.config().map_err(AppError::Usage)?;
            let deps = Deps {
                store: open_store(&a.store.store)?,
                clock: Arc::new(SystemClock::new()),
            };
            let replayer = app::replayer(&cfg, &deps)?;
            let graph = bind(a.listen).await?;
            let out = app::serve_replay(cfg, deps, replayer, graph, app::stop_signal()).await?;
            let served: usize = out.reports.iter().map(|r| r.served.len()).sum();
            let missed: usize = out.reports.iter().map(|r| r.missed.len()).sum();
            Ok(format!(
                "replay stopped: {} sessions, {served} served, {missed} missed",
                out.reports.len()
            ))
        }
        Command::Cassette(a) => {
            let rules = a.redact.rules().map_err(AppError::Usage)?;
            let cmd = match a.command {
                CassetteCommand::List => CassetteCmd::List,
                CassetteCommand::Show { name } => CassetteCmd::Show(name),
                CassetteCommand::Export { name, output } => CassetteCmd::Export { name, out: output },
                CassetteCommand::Import {
                    files,
                    overwrite,
                    allow_secrets,
                } => CassetteCmd::Import {
                    files,
                    overwrite,
                    allow_secrets,
                },
                CassetteCommand::Rm { name } => CassetteCmd::Rm(name),
                CassetteCommand::Scan { targets } => CassetteCmd::Scan(targets),
            };
            app::cassette_command(&a.store.store, cmd, &rules)
        }
        Command::Demo(a) => graphvcr::demo::run(&a.cassette, &a.cassettes).await,
    }
}
