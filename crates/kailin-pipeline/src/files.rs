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

/// A file's or directory's files with their sizes and modification times, as a fingerprint
/// (a file added, removed or rewritten reruns the stage that read them).
pub(crate) fn listing(path: &Path) -> String {
    let mut h = kailin_core::Fnv64::new();
    let mut stack = vec![path.to_owned()];
    let mut files = Vec::new();
    while let Some(p) = stack.pop() {
        match std::fs::read_dir(&p) {
            Ok(entries) => stack.extend(entries.flatten().map(|e| e.path())),
            Err(_) => files.push(p),
        }
    }
    files.sort();
    for f in &files {
        let meta = std::fs::metadata(f).ok();
        let modified =
            meta.as_ref().and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        h.bytes(f.to_string_lossy().as_bytes())
            .bytes(&meta.map_or(0, |m| m.len()).to_le_bytes())
            .bytes(&modified.map_or(0, |d| d.as_nanos() as u64).to_le_bytes());
    }
    format!("{} files, {}", files.len(), h.hex())
}

/// Reads the corpus at `path` through `kailin_corpus::ingest`, handing each document to `emit`
/// (which returns whether to go on); an error of `emit` is returned as it is, one of the
/// corpus as [`Error::Config`] on `key`, naming `what`.
pub(crate) fn ingest_with(
    path: &Path,
    strict: bool,
    key: &str,
    what: &str,
    mut emit: impl FnMut(kailin_core::Document) -> Result<bool>,
) -> Result<kailin_corpus::IngestReport> {
    let mut inner = Ok(());
    let result = kailin_corpus::ingest(path, &kailin_corpus::IngestOptions { strict }, |d| match emit(d) {
        Ok(go) => Ok(go),
        Err(e) => {
            inner = Err(e);
            Ok(false)
        }
    });
    inner?;
    result.map_err(|e| Error::Config { key: key.into(), message: format!("{what}: {e}") })
}
