//! The stages' file helpers: their JSON Lines outputs, input fingerprints, and inputs that
//! must exist.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::stage;

/// Reads a finished stage's file (a JSON Lines dataset).
pub(crate) fn read_records<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    kailin_core::read_jsonl(path).map_err(stage::core_io(path))
}

/// Writes a stage's JSON Lines file; returns the records written.
pub(crate) fn write_records<'a, T: Serialize + 'a>(
    path: &Path,
    records: impl IntoIterator<Item = &'a T>,
) -> Result<u64> {
    kailin_core::write_jsonl(path, records).map_err(stage::core_io(path))
}

/// A file's fingerprint for a stage key: its length and a hash of its bytes.
pub(crate) fn fingerprint(path: &Path) -> Result<String> {
    kailin_core::digest_file(path).map_err(Error::from_core)
}

/// `path` exists, or [`Error::Missing`] with what it is and the fix.
pub(crate) fn need(path: &Path, what: &str, fix: &str) -> Result<()> {
    if path.exists() {
        Ok(())
    } else {
        Err(Error::Missing { what: what.into(), path: path.to_owned(), fix: fix.into() })
    }
}
