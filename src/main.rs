//! The `graphvcr` binary: parse the command line, set up logging and the rustls
//! provider, run the chosen command, map its outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use graphvcr::app::{self, AppError, CassetteCmd, Deps};
use graphvcr::cli::{CaCommand, CassetteCommand, Cli, Command};
use graphvcr::clock::SystemClock;
use std::sync::Arc;

/// mimalloc: replay allocates and frees many small buffers per request across two
/// workers; glibc's malloc spent about a fifth of the CPU on them (docs/NOTES.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns what start-up freed to the system: mimalloc (v3) purges freed memory a
/// second later and only when a thread next allocates, so a server idle after start
/// kept the ~50 MiB the store's open check and the cassette's preparation freed.
fn release_freed() {
    // SAFETY: mi_collect takes no pointers; it walks mimalloc's own heaps and arenas.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

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
        Err(AppError::Drift(report)) => {
            app::say(&report);
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("graphvcr: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, AppError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| AppError::Runtime(format!("cannot listen on {addr}: {e}")))
}

/// `replay` and `serve`: the replay engine on the Graph face (and the proxy face)
/// until stopped.
async fn serve(cfg: graphvcr::config::ReplayConfig, a: &graphvcr::cli::ServeArgs) -> Result<String, AppError> {
    // the cassette files are hashed (are they changed?) while the store opens: both
    // read every byte, on a core each
    let hashing = cfg
        .cassettes_dir
        .clone()
        .map(|dir| std::thread::spawn(move || graphvcr::cassette::json::hash_files(&dir)));
    let store = app::open_store(&a.store.store)?;
    let hashed = match hashing.map(std::thread::JoinHandle::join) {
        Some(Ok(files)) => Some(files?),
        Some(Err(_)) => return Err(AppError::Runtime("hashing the cassette files failed".into())),
        None => None,
    };
    let deps = Deps {
        store: store.store.clone(),
        clock: Arc::new(SystemClock::new()),
    };
    let replayer = app::replayer_with(&cfg, &deps, hashed)?;
    release_freed();
    let faces = app::Faces {
        graph: bind(a.listen).await?,
        callbacks: bind_opt(a.callback_listen).await?,
        proxy: bind_opt(a.faces.proxy_listen).await?,
    };
    let out = app::serve_replay_faces(cfg, deps, replayer, faces, app::stop_signal()).await?;
    Ok(out.summary())
}

async fn bind_opt(addr: Option<std::net::SocketAddr>) -> Result<Option<tokio::net::TcpListener>, AppError> {
    match addr {
        Some(a) => Ok(Some(bind(a).await?)),
        None => Ok(None),
    }
}

async fn run(cli: Cli) -> Result<String, AppError> {
    match cli.command {
        Command::Record(a) => {
            let cfg = a.config().map_err(AppError::Usage)?;
            let store = app::open_store(&a.store.store)?;
            let deps = Deps {
                store: store.store.clone(),
                clock: Arc::new(SystemClock::new()),
            };
            let faces = app::Faces {
                graph: bind(a.listen).await?,
                callbacks: bind_opt(a.callback_listen).await?,
                proxy: bind_opt(a.faces.proxy_listen).await?,
            };
            let out = app::run_record_faces(cfg, deps, faces, app::stop_signal()).await?;
            Ok(format!(
                "recorded {} events into `{}`{}",
                out.events,
                out.cassette,
                out.exported
                    .map(|p| format!(", exported to {}", p.display()))
                    .unwrap_or_default()
            ))
        }
        Command::Replay(a) => serve(a.config().map_err(AppError::Usage)?, &a.serve).await,
        Command::Serve(a) => serve(a.config().map_err(AppError::Usage)?, &a).await,
        Command::Passthrough(a) => {
            let cfg = a.config().map_err(AppError::Usage)?;
            let store = app::open_store(&a.store.store)?;
            let deps = Deps {
                store: store.store.clone(),
                clock: Arc::new(SystemClock::new()),
            };
            let graph = bind(a.listen).await?;
            app::run_passthrough(cfg, deps, graph, app::stop_signal()).await?;
            Ok("passthrough stopped".to_string())
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
        Command::Ca(a) => match a.command {
            CaCommand::Path => {
                let id = graphvcr::identity::Identity::load_or_create(&a.ca_dir, &SystemClock::new())
                    .map_err(|e| AppError::Usage(e.to_string()))?;
                Ok(id.ca_path().display().to_string())
            }
        },
        Command::Diff(a) => app::diff_command(&a.command()),
        Command::Demo(a) => graphvcr::demo::run(&a.cassette, &a.cassettes).await,
    }
}
