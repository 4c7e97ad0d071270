//! `graphvcr diff` flags: the two recordings, the output forms and the timing tolerance.

use std::path::PathBuf;

use clap::Args;

use super::StoreArg;
use crate::app::DiffCmd;
use crate::config::defaults;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The recording to compare against: a JSON cassette file, or a cassette name in the store.
    pub old: String,
    /// The fresh recording of the same scenario: a JSON cassette file, or a cassette name.
    pub new: String,
    /// Print the findings as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write the findings as JUnit XML: a testcase per exchange and notification,
    /// a failure per breaking finding.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Report latency and notification-delay differences beyond this many milliseconds (as info).
    #[arg(long, value_name = "MS", default_value_t = defaults::DIFF_TIMING_TOLERANCE_MS)]
    pub timing_tolerance: u64,
    #[command(flatten)]
    pub store: StoreArg,
}

impl DiffArgs {
    pub fn command(&self) -> DiffCmd {
        DiffCmd {
            old: self.old.clone(),
            new: self.new.clone(),
            store: self.store.store.clone(),
            timing_tolerance_ms: self.timing_tolerance,
            json: self.json,
            junit: self.junit.clone(),
        }
    }
}
