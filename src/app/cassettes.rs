//! Cassette files and the `cassette` subcommands: importing changed `*.json` files at
//! start, exporting (with the secret scan), and list/show/export/import/rm/scan.
//! Imports stream: each file's events go to a staged epoch one at a time, and the
//! cassettes are published together once every file parsed, validated and scanned.
//! Read-only commands (`list`, `show`, `export`, `scan`) work on a copy of the store.

use std::path::{Path, PathBuf};

use super::{say, AppError};
use crate::cassette::json::{self as cjson, Stop};
use crate::cassette::{
    self, Cassette, CassetteError, Event, Kind, Meta, Publish, SledStore, Source, Staging, Store, StoreError,
};
use crate::redact::Rules;

/// A file whose events are staged, not yet published.
struct StagedFile {
    path: PathBuf,
    /// Its canonical path, as a cassette's source remembers it.
    source_path: String,
    meta: Meta,
    hash: String,
    staging: Staging,
}

impl StagedFile {
    fn publish(self) -> Publish {
        Publish {
            staging: self.staging,
            meta: self.meta,
            source: Some(Source {
                path: self.source_path,
                hash: self.hash,
            }),
        }
    }
}

/// How a cassette file is remembered as a source: its canonical path when it has one.
fn source_path(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

fn first_finding(rules: &Rules, e: &Event) -> Result<(), Stop> {
    match rules.findings(e).into_iter().next() {
        Some(f) => Err(Stop::Secret(f)),
        None => Ok(()),
    }
}

/// Streams one file into a staged epoch (scanned for secrets unless `rules` is None).
fn stage_one(store: &dyn Store, path: &Path, rules: Option<&Rules>) -> Result<StagedFile, AppError> {
    let mut staging = store.stage()?;
    let streamed = {
        let mut on_event = |e: Event| {
            if let Some(r) = rules {
                first_finding(r, &e)?;
            }
            store.stage_event(&mut staging, &e).map_err(Stop::Store)
        };
        cjson::stream_file(path, &mut on_event)
    };
    let found = streamed.and_then(
        |(meta, _, hash)| match rules.and_then(|r| r.meta_findings(&meta).pop()) {
            Some(finding) => Err(CassetteError::SecretFound {
                name: meta.name,
                finding,
            }),
            None => Ok((meta, hash)),
        },
    );
    match found {
        Ok((meta, hash)) => Ok(StagedFile {
            path: path.to_path_buf(),
            source_path: source_path(path),
            meta,
            hash,
            staging,
        }),
        Err(e) => {
            let _ = store.discard(staging);
            Err(e.into())
        }
    }
}

fn discard_all(store: &dyn Store, staged: Vec<StagedFile>) {
    for s in staged {
        let _ = store.discard(s.staging);
    }
}

/// Stages every file; on any failure nothing stays staged.
fn stage_files(store: &dyn Store, files: &[PathBuf], rules: Option<&Rules>) -> Result<Vec<StagedFile>, AppError> {
    let mut out: Vec<StagedFile> = Vec::new();
    for f in files {
        let s = match stage_one(store, f, rules) {
            Ok(s) => s,
            Err(e) => {
                discard_all(store, out);
                return Err(e);
            }
        };
        if let Some(other) = out.iter().find(|o| o.meta.name == s.meta.name) {
            let msg = format!(
                "{} and {} both hold cassette `{}`",
                other.path.display(),
                f.display(),
                s.meta.name
            );
            out.push(s);
            discard_all(store, out);
            return Err(AppError::Usage(msg));
        }
        out.push(s);
    }
    Ok(out)
}

fn secret_hint(e: AppError) -> AppError {
    match e {
        AppError::Cassette(CassetteError::SecretFound { name, finding }) => {
            AppError::Cassette(CassetteError::SecretFound {
                name,
                finding: format!(
                    "{finding}; `graphvcr cassette scan` lists every one, `--allow-secrets` imports anyway"
                ),
            })
        }
        other => other,
    }
}

/// Imports every `*.json` in `dir` whose content changed since its last import/export
/// (and re-imports a damaged cassette from the file it came from). One bad file, or
/// one holding a secret, imports nothing.
pub fn import_changed(store: &dyn Store, dir: &Path) -> Result<usize, AppError> {
    import_hashed(store, &cjson::hash_files(dir)?)
}

/// [`import_changed`] of files already hashed (`cassette::json::hash_files`).
pub fn import_hashed(store: &dyn Store, files: &[(PathBuf, String)]) -> Result<usize, AppError> {
    let stored = store.list()?;
    let damaged: Vec<String> = store.damage().into_iter().map(|d| d.name).collect();
    let mut changed = Vec::new();
    for (f, hash) in files {
        let path = source_path(f);
        let same = stored
            .iter()
            .find(|s| s.source.as_ref().is_some_and(|x| x.path == path && x.hash == *hash));
        match same {
            Some(s) if !damaged.contains(&s.meta.name) => {}
            _ => changed.push(f.clone()),
        }
    }
    let staged = stage_files(store, &changed, Some(&Rules::default())).map_err(secret_hint)?;
    let mut publish = Vec::new();
    for s in staged {
        // the file wins over any copy imported from a file (a stale store in a cached
        // CI workspace); a cassette recorded here and never exported is kept
        let ours = match store.info(&s.meta.name)? {
            None => true,
            Some(old) => old.source.is_some(),
        };
        if ours {
            if damaged.contains(&s.meta.name) {
                tracing::warn!(cassette = %s.meta.name, file = %s.path.display(), "re-imported: its stored copy was damaged");
            }
            tracing::info!(cassette = %s.meta.name, file = %s.path.display(), "imported");
            publish.push(s.publish());
        } else {
            // recorded here and never exported: never overwritten silently
            tracing::warn!(
                cassette = %s.meta.name,
                file = %s.path.display(),
                "not imported: the store's cassette of that name was recorded here, not imported \
                 (`graphvcr cassette import --overwrite` it, or `graphvcr cassette rm` it first)"
            );
            let _ = store.discard(s.staging);
        }
    }
    let n = publish.len();
    if n > 0 {
        store.publish(publish)?;
        store.flush()?;
    }
    Ok(n)
}

fn load(store: &dyn Store, name: &str) -> Result<Cassette, AppError> {
    cassette::validate_name(name)?;
    Ok(store
        .load(name)?
        .ok_or_else(|| CassetteError::Unknown(name.to_string()))?)
}

fn refuse_secrets(c: &Cassette, rules: &Rules) -> Result<(), AppError> {
    let mut found = rules.meta_findings(&c.meta);
    found.extend(c.events.iter().flat_map(|e| rules.findings(e)));
    match found.into_iter().next() {
        Some(finding) => Err(CassetteError::SecretFound {
            name: c.meta.name.clone(),
            finding,
        }
        .into()),
        None => Ok(()),
    }
}

/// Exports a cassette as JSON (to a file, recorded as its source, or returned).
pub fn export(store: &dyn Store, name: &str, out: Option<&Path>) -> Result<String, AppError> {
    let (text, source) = export_to(store, name, out, &Rules::default())?;
    if let Some(src) = source {
        store.set_source(name, Some(src))?;
        store.flush()?;
    }
    Ok(text)
}

/// Writes the export; returns what to print and, for a file, the source to remember.
fn export_to(
    store: &dyn Store,
    name: &str,
    out: Option<&Path>,
    rules: &Rules,
) -> Result<(String, Option<Source>), AppError> {
    let c = load(store, name)?;
    refuse_secrets(&c, rules)?;
    match out {
        Some(path) => {
            let hash = cjson::write_file(&c, path)?;
            let msg = format!("exported `{name}` ({} events) to {}", c.events.len(), path.display());
            let src = Source {
                path: source_path(path),
                hash,
            };
            Ok((msg, Some(src)))
        }
        None => Ok((cjson::to_string(&c), None)),
    }
}

/// `graphvcr cassette ...`
#[derive(Debug, Clone)]
pub enum CassetteCmd {
    List,
    Show(String),
    Export {
        name: String,
        out: Option<PathBuf>,
    },
    Import {
        files: Vec<PathBuf>,
        overwrite: bool,
        allow_secrets: bool,
    },
    Rm(String),
    Scan(Vec<String>),
}

/// Runs a cassette subcommand on the store at `path`; returns what to print.
pub fn cassette_command(path: &Path, cmd: CassetteCmd, rules: &Rules) -> Result<String, AppError> {
    match cmd {
        CassetteCmd::List => list(&SledStore::open_read_only(path)?),
        CassetteCmd::Show(name) => show(&SledStore::open_read_only(path)?, &name),
        CassetteCmd::Export { name, out } => {
            let copy = SledStore::open_read_only(path)?;
            let (text, source) = export_to(&copy, &name, out.as_deref(), rules)?;
            let clean = copy.damage().is_empty();
            drop(copy);
            if let Some(src) = source {
                if clean {
                    let store = SledStore::open(path)?;
                    store.set_source(&name, Some(src))?;
                    store.flush()?;
                } else {
                    tracing::warn!("the store has damage: the export is not remembered as `{name}`'s source");
                }
            }
            Ok(text)
        }
        CassetteCmd::Import {
            files,
            overwrite,
            allow_secrets,
        } => import(
            &SledStore::open(path)?,
            &files,
            overwrite,
            (!allow_secrets).then_some(rules),
        ),
        CassetteCmd::Rm(name) => {
            cassette::validate_name(&name)?;
            let store = SledStore::open(path)?;
            if !store.remove(&name)? {
                return Err(CassetteError::Unknown(name).into());
            }
            store.flush()?;
            Ok(format!("removed `{name}`"))
        }
        CassetteCmd::Scan(targets) => scan(path, &targets, rules),
    }
}

fn list(store: &dyn Store) -> Result<String, AppError> {
    let mut list = store.list()?;
    list.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    let damage = store.damage();
    let mut lines: Vec<String> = list
        .iter()
        .map(|s| {
            let recorded = if s.meta.recorded_at.is_empty() {
                "-"
            } else {
                &s.meta.recorded_at
            };
            let source = s.source.as_ref().map_or("-", |x| x.path.as_str());
            let mark = if damage.iter().any(|d| d.name == s.meta.name) {
                "\tDAMAGED"
            } else {
                ""
            };
            format!(
                "{}\t{} events\trecorded {recorded}\t{source}{mark}",
                s.meta.name, s.events
            )
        })
        .collect();
    if !damage.is_empty() {
        lines.extend(
            damage
                .iter()
                .filter(|d| !list.iter().any(|s| s.meta.name == d.name))
                .map(|d| format!("{}\tmissing\t\t\tDAMAGED", d.name)),
        );
        say(&lines.join("\n"));
        return Err(StoreError::Damaged(damage).into());
    }
    if lines.is_empty() {
        return Ok("no cassettes in the store".to_string());
    }
    Ok(lines.join("\n"))
}

fn show(store: &dyn Store, name: &str) -> Result<String, AppError> {
    let c = load(store, name)?;
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
                "#{seq:<3} {at:>6} ms  notification {method} {uri}{} (follows {}) -> {answer}",
                about(e),
                e.follows.map_or("nothing".to_string(), |f| format!("#{f}")),
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out.trim_end().to_string())
}

/// What a notification says, for `show`: each item's `changeType` and resource.
fn about(e: &Event) -> String {
    let Some(v) = e.request.body.json() else {
        return String::new();
    };
    let text = |item: &serde_json::Value, keys: &[&str]| {
        keys.iter()
            .find_map(|k| item.get(*k).and_then(serde_json::Value::as_str))
            .unwrap_or("-")
            .to_string()
    };
    let items: Vec<String> = crate::graph::notification_items(v)
        .into_iter()
        .map(|item| {
            format!(
                "{} {}",
                text(item, &["changeType"]),
                text(item, &["resourceUrl", "resource"])
            )
        })
        .collect();
    if items.is_empty() {
        String::new()
    } else {
        format!(": {}", items.join(", "))
    }
}

/// `cassette import`: every file streamed and staged first, then all published (all
/// or nothing). A cassette recorded here, or imported from another file, is only
/// replaced with `--overwrite`.
fn import(store: &dyn Store, files: &[PathBuf], overwrite: bool, rules: Option<&Rules>) -> Result<String, AppError> {
    let staged = stage_files(store, files, rules).map_err(secret_hint)?;
    let mut conflicts = Vec::new();
    for s in &staged {
        if let Some(old) = store.info(&s.meta.name)? {
            let same_file = old.source.as_ref().is_some_and(|x| x.path == s.source_path);
            if !same_file && !overwrite {
                let what = if old.source.is_some() {
                    "imported from another file"
                } else {
                    "recorded"
                };
                conflicts.push(format!("`{}` ({what}, {} events)", s.meta.name, old.events));
            }
        }
    }
    if !conflicts.is_empty() {
        discard_all(store, staged);
        return Err(AppError::Usage(format!(
            "the store already holds cassette {}; pass --overwrite to replace it",
            conflicts.join(", ")
        )));
    }
    let lines: Vec<String> = staged
        .iter()
        .map(|s| {
            format!(
                "imported `{}` ({} events) from {}",
                s.meta.name,
                s.staging.count(),
                s.path.display()
            )
        })
        .collect();
    store.publish(staged.into_iter().map(StagedFile::publish).collect())?;
    store.flush()?;
    Ok(lines.join("\n"))
}

/// `cassette scan NAME|FILE...`: every secret the rules find, one line each.
fn scan(path: &Path, targets: &[String], rules: &Rules) -> Result<String, AppError> {
    let mut found = Vec::new();
    let mut store = None;
    for t in targets {
        let file = Path::new(t);
        if file.is_file() || t.ends_with(".json") {
            let mut on_event = |e: Event| {
                found.extend(rules.findings(&e).into_iter().map(|f| format!("{t}: {f}")));
                Ok(())
            };
            let (meta, _, _) = cjson::stream_file(file, &mut on_event)?;
            found.extend(rules.meta_findings(&meta).into_iter().map(|f| format!("{t}: {f}")));
        } else {
            if store.is_none() {
                store = Some(SledStore::open_read_only(path)?);
            }
            let c = load(store.as_ref().map(|s| s as &dyn Store).ok_or(StoreError::ReadOnly)?, t)?;
            found.extend(rules.meta_findings(&c.meta).into_iter().map(|f| format!("{t}: {f}")));
            found.extend(
                c.events
                    .iter()
                    .flat_map(|e| rules.findings(e))
                    .map(|f| format!("{t}: {f}")),
            );
        }
    }
    if found.is_empty() {
        return Ok(format!("no secret found in {}", targets.join(", ")));
    }
    say(&found.join("\n"));
    Err(CassetteError::SecretFound {
        name: targets.join(", "),
        finding: format!("{} finding(s), listed above", found.len()),
    }
    .into())
}
