//! `graphvcr diff OLD NEW`: loads the two recordings (a JSON cassette file, or a
//! cassette by name from the store, else the bundled ones), compares them with
//! `drift`, writes the JUnit file when asked, and says what to print and how to exit.

use std::path::{Path, PathBuf};

use super::{reports, AppError, MEMORY_STORE};
use crate::cassette::{self, json as cjson, Cassette, CassetteError, SledStore, Store};
use crate::drift;

/// `graphvcr diff ...`
#[derive(Debug, Clone)]
pub struct DiffCmd {
    pub old: String,
    pub new: String,
    /// Where cassettes named (not given as files) are looked up.
    pub store: PathBuf,
    pub timing_tolerance_ms: u64,
    /// Print JSON instead of text.
    pub json: bool,
    /// Also write JUnit XML here.
    pub junit: Option<PathBuf>,
}

/// Runs `graphvcr diff`: the report to print, or `AppError::Drift` with it when anything
/// breaking was found (exit 1). Bad input (an unknown cassette, a file that cannot be
/// read or parsed, a `--junit` file that cannot be written) is a usage error (exit 2).
pub fn diff_command(cmd: &DiffCmd) -> Result<String, AppError> {
    let mut store = LazyStore::new(&cmd.store);
    let old = load(&cmd.old, &mut store)?;
    let new = load(&cmd.new, &mut store)?;
    let mut report = drift::diff(&old, &new, &drift::Options::new(cmd.timing_tolerance_ms));
    report.relabel(&cmd.old, &cmd.new);
    if let Some(path) = &cmd.junit {
        // exit 1 means drift: a file that cannot be written is bad input (exit 2)
        reports::write(path, &drift::report::junit(&report)).map_err(|e| AppError::Usage(e.to_string()))?;
    }
    let output = if cmd.json {
        drift::report::json(&report)
    } else {
        drift::report::text(&report)
    };
    if report.breaking() {
        return Err(AppError::Drift(output));
    }
    Ok(output)
}

/// The store, opened only when a cassette is named, and never created by `diff`.
struct LazyStore<'p> {
    path: &'p Path,
    opened: Option<Option<SledStore>>,
}

impl<'p> LazyStore<'p> {
    fn new(path: &'p Path) -> LazyStore<'p> {
        LazyStore { path, opened: None }
    }

    fn get(&mut self) -> Result<Option<&SledStore>, AppError> {
        if self.opened.is_none() {
            let absent = self.path.as_os_str() == MEMORY_STORE || !self.path.exists();
            let store = if absent {
                None
            } else {
                Some(SledStore::open(self.path)?)
            };
            self.opened = Some(store);
        }
        Ok(self.opened.as_ref().and_then(Option::as_ref))
    }
}

/// A path (it has a separator, ends in `.json` or names a file) rather than a name.
fn is_file_arg(arg: &str) -> bool {
    arg.contains('/') || arg.contains(std::path::MAIN_SEPARATOR) || arg.ends_with(".json") || Path::new(arg).is_file()
}

fn load(arg: &str, store: &mut LazyStore) -> Result<Cassette, AppError> {
    if is_file_arg(arg) {
        let bytes = std::fs::read(arg).map_err(|e| AppError::Usage(format!("cannot read {arg}: {e}")))?;
        return Ok(cjson::parse(&bytes, arg)?);
    }
    cassette::validate_name(arg)?;
    if let Some(s) = store.get()? {
        if let Some(c) = s.load(arg)? {
            return Ok(c);
        }
    }
    match crate::bundled::cassette(arg) {
        Some(c) => Ok(c?),
        None => Err(CassetteError::Unknown(arg.to_string()).into()),
    }
}
