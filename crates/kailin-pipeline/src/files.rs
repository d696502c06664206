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

/// A file's or directory's files by their names under `path` and their contents
/// ([`kailin_core::digest_file`]), as a fingerprint: a file added, removed or changed reruns
/// the stage that read them, while a copy of the same bytes (new modification times, as a
/// fresh checkout or a re-mounted data directory has) keeps a run's finished stages.
pub(crate) fn listing(path: &Path) -> Result<String> {
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
        let name = f.strip_prefix(path).unwrap_or(f);
        h.bytes(name.to_string_lossy().as_bytes()).bytes(&[0]).bytes(fingerprint(f)?.as_bytes()).bytes(&[0]);
    }
    Ok(format!("{} files, {}", files.len(), h.hex()))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_listing_follows_the_bytes_not_the_place_or_the_times() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for root in [&a, &b] {
            std::fs::create_dir_all(root.join("sub")).unwrap();
            std::fs::write(root.join("x.json"), "one").unwrap();
            std::fs::write(root.join("sub/y.json"), "two").unwrap();
        }
        // The copy is written later (other modification times) at another path.
        assert_eq!(listing(&a).unwrap(), listing(&b).unwrap());
        assert!(listing(&a).unwrap().starts_with("2 files, "));
        std::fs::write(b.join("sub/y.json"), "twO").unwrap();
        assert_ne!(listing(&a).unwrap(), listing(&b).unwrap(), "a changed byte");
        std::fs::write(b.join("sub/y.json"), "two").unwrap();
        std::fs::remove_file(b.join("sub/y.json")).unwrap();
        std::fs::write(b.join("sub/z.json"), "two").unwrap();
        assert_ne!(listing(&a).unwrap(), listing(&b).unwrap(), "a renamed file");
        let file = a.join("x.json");
        assert_eq!(listing(&file).unwrap(), listing(&file).unwrap());
    }
}
