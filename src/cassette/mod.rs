//! Cassettes: the model (`model`), the JSON interchange (`json`) and the sled store
//! (`store`). Names are validated here, once, for every entry point.

pub mod json;
pub mod model;
pub mod store;
pub mod tree;

pub use model::{Body, Cassette, Event, Headers, Kind, Meta, Request, Response, FORMAT_VERSION};
pub use store::{
    Committer, Damage, EventReader, Publish, SledStore, Source, Staging, Store, StoreError, Stored, Streamed,
};
pub use tree::{BodyRef, Json, LiveBody, Node, Tree};

/// Why a cassette could not be read, written or found.
#[derive(Debug, thiserror::Error)]
pub enum CassetteError {
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("cassette name `{0}` is not allowed: use letters, digits, `.`, `_` and `-` (at most 128, no `..`, no leading `.`)")]
    BadName(String),
    #[error("no cassette named `{0}` (see `graphvcr cassette list`)")]
    Unknown(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cassette `{name}` holds a secret ({finding}); redact or re-record it")]
    SecretFound { name: String, finding: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a cassette name: it becomes a store key and a file name, so no path tricks.
pub fn validate_name(name: &str) -> Result<(), CassetteError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CassetteError::BadName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["invite-one-participant", "a", "x_1.v2"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["../x", "", ".hidden", "a/b", "a\\b", "a..b", "a b", "é"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
