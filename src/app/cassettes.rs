//! Cassette files and the `cassette` subcommands: importing changed `*.json` files
//! at start, exporting (with the secret scan), and list/show/export/import/rm.

use std::path::{Path, PathBuf};

use super::AppError;
use crate::cassette::{self, json as cjson, Cassette, CassetteError, Kind, Source, Store};
use crate::redact;

/// Imports every `*.json` in `dir` whose content changed since its last import/export.
/// Everything is parsed before anything is written: one bad file imports nothing.
pub fn import_changed(store: &dyn Store, dir: &Path) -> Result<usize, AppError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(CassetteError::Io {
                path: dir.display().to_string(),
                source,
            }
            .into())
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let parsed = parse_all(&files)?;
    let mut n = 0;
    for (path, c, hash) in parsed {
        let shown = source_path(&path);
        if let Some(stored) = store.info(&c.meta.name)? {
            match &stored.source {
                Some(src) if src.hash == hash => continue,
                Some(src) if src.path == shown => {}
                // recorded here, or imported from another file: never overwritten silently
                _ => {
                    tracing::warn!(
                        cassette = %c.meta.name,
                        file = %path.display(),
                        "not imported: the store's cassette of that name did not come from this file \
                         (`graphvcr cassette rm` it to import the file)"
                    );
                    continue;
                }
            }
        }
        store.replace(&c, Some(Source { path: shown, hash }))?;
        tracing::info!(cassette = %c.meta.name, file = %path.display(), "imported");
        n += 1;
    }
    if n > 0 {
        store.flush()?;
    }
    Ok(n)
}

/// How a cassette file is remembered as a source: its canonical path when it has one.
fn source_path(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

fn parse_all(files: &[PathBuf]) -> Result<Vec<(PathBuf, Cassette, String)>, AppError> {
    let mut out: Vec<(PathBuf, Cassette, String)> = Vec::new();
    for f in files {
        let (c, hash) = cjson::read_file(f)?;
        if let Some((other, _, _)) = out.iter().find(|(_, o, _)| o.meta.name == c.meta.name) {
            return Err(AppError::Usage(format!(
                "{} and {} both hold cassette `{}`",
                other.display(),
                f.display(),
                c.meta.name
            )));
        }
        out.push((f.clone(), c, hash));
    }
    Ok(out)
}

/// Exports a cassette as JSON (to a file, recorded as its source, or returned).
pub fn export(store: &dyn Store, name: &str, out: Option<&Path>) -> Result<String, AppError> {
    cassette::validate_name(name)?;
    let c = store
        .load(name)?
        .ok_or_else(|| CassetteError::Unknown(name.to_string()))?;
    if let Some(f) = redact::find_secret(&c) {
        return Err(CassetteError::SecretFound {
            name: name.to_string(),
            finding: f,
        }
        .into());
    }
    match out {
        Some(path) => {
            let hash = cjson::write_file(&c, path)?;
            store.set_source(
                name,
                Some(Source {
                    path: source_path(path),
                    hash,
                }),
            )?;
            store.flush()?;
            Ok(format!(
                "exported `{name}` ({} events) to {}",
                c.events.len(),
                path.display()
            ))
        }
        None => Ok(cjson::to_string(&c)),
    }
}

/// `graphvcr cassette ...`
#[derive(Debug, Clone)]
pub enum CassetteCmd {
    List,
    Show(String),
    Export { name: String, out: Option<PathBuf> },
    Import(Vec<PathBuf>),
    Rm(String),
}

/// Runs a cassette subcommand; returns what to print.
pub fn cassette_command(store: &dyn Store, cmd: CassetteCmd) -> Result<String, AppError> {
    match cmd {
        CassetteCmd::List => list(store),
        CassetteCmd::Show(name) => show(store, &name),
        CassetteCmd::Export { name, out } => export(store, &name, out.as_deref()),
        CassetteCmd::Import(files) => import(store, &files),
        CassetteCmd::Rm(name) => {
            cassette::validate_name(&name)?;
            if !store.remove(&name)? {
                return Err(CassetteError::Unknown(name).into());
            }
            store.flush()?;
            Ok(format!("removed `{name}`"))
        }
    }
}

fn list(store: &dyn Store) -> Result<String, AppError> {
    let mut list = store.list()?;
    list.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    if list.is_empty() {
        return Ok("no cassettes in the store".to_string());
    }
    let lines: Vec<String> = list
        .iter()
        .map(|s| {
            let recorded = if s.meta.recorded_at.is_empty() {
                "-"
            } else {
                &s.meta.recorded_at
            };
            let source = s.source.as_ref().map_or("-", |x| x.path.as_str());
            format!("{}\t{} events\trecorded {recorded}\t{source}", s.meta.name, s.events)
        })
        .collect();
    Ok(lines.join("\n"))
}

fn show(store: &dyn Store, name: &str) -> Result<String, AppError> {
    cassette::validate_name(name)?;
    let c = store
        .load(name)?
        .ok_or_else(|| CassetteError::Unknown(name.to_string()))?;
    let mut out = format!(
        "{} (recorded {}, upstream {}, {} events)\n",
        c.meta.name,
        c.meta.recorded_at,
        c.meta.upstream,
        c.events.len()
    );
    for e in &c.events {
        let answer = match (e.response.status, &e.response.error) {
            (Some(s), _) => s.to_string(),
            (None, Some(err)) => format!("failed: {err}"),
            (None, None) => "-".to_string(),
        };
        let (seq, at, method, uri) = (e.seq, e.at_ms, &e.request.method, &e.request.uri);
        let line = match e.kind {
            Kind::Exchange => format!(
                "#{seq:<3} {at:>6} ms  {method} {uri} -> {answer} ({} ms)",
                e.duration_ms.unwrap_or(0)
            ),
            Kind::Notification => format!(
                "#{seq:<3} {at:>6} ms  notification {method} {uri} (follows {}) -> {answer}",
                e.follows.map_or("nothing".to_string(), |f| format!("#{f}")),
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out.trim_end().to_string())
}

/// `cassette import`: every file parsed first, then all written (all or nothing).
fn import(store: &dyn Store, files: &[PathBuf]) -> Result<String, AppError> {
    let parsed = parse_all(files)?;
    let mut lines = Vec::new();
    for (path, c, hash) in &parsed {
        store.replace(
            c,
            Some(Source {
                path: source_path(path),
                hash: hash.clone(),
            }),
        )?;
        lines.push(format!(
            "imported `{}` ({} events) from {}",
            c.meta.name,
            c.events.len(),
            path.display()
        ));
    }
    store.flush()?;
    Ok(lines.join("\n"))
}
