//! `graphvcr demo`: replays a bundled invite cassette to a tiny built-in bot and prints
//! the timeline.

use std::path::Path;

use crate::app::AppError;

/// Runs the demo; returns the timeline to print.
pub async fn run(cassette: &str, _dir: &Path) -> Result<String, AppError> {
    Err(AppError::Runtime(format!("demo of `{cassette}` is not built yet")))
}
