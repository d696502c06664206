//! Stages cached by the hash of their inputs and configuration: each stage fills a temporary
//! directory that is renamed into place with its `stage.json` (the key and the stage's summary)
//! only when the stage has finished, so a killed run leaves finished stages whole and nothing
//! half-written; a rerun skips every stage whose key is unchanged.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The marker a finished stage leaves in its directory.
pub const STAGE_FILE: &str = "stage.json";

/// What `stage.json` holds.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct Marker<T> {
    pub(crate) stage: String,
    pub(crate) key: String,
    pub(crate) seconds: f64,
    pub(crate) summary: T,
}

/// The key of a stage: a hash of its name and its inputs (configuration, upstream keys, data
/// fingerprints), as JSON.
pub(crate) fn key(stage: &str, inputs: &serde_json::Value) -> String {
    let mut h = kailin_core::Fnv64::new();
    h.bytes(stage.as_bytes()).bytes(&[0]).bytes(inputs.to_string().as_bytes());
    h.hex()
}

/// The summary of a finished stage at `dir` with `key`, if there is one.
pub(crate) fn finished<T: DeserializeOwned>(dir: &Path, key: &str) -> Option<Marker<T>> {
    let text = std::fs::read_to_string(dir.join(STAGE_FILE)).ok()?;
    let marker: Marker<T> = serde_json::from_str(&text).ok()?;
    (marker.key == key).then_some(marker)
}

/// Runs `body` into a temporary directory beside `dir` and renames it into place with its
/// marker; the temporaries of killed runs beside `dir` are removed first.
pub(crate) fn run<T: Serialize>(
    stage: &str,
    dir: &Path,
    key: &str,
    body: impl FnOnce(&Path) -> Result<T>,
) -> Result<Marker<T>> {
    let parent = dir.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&parent).map_err(|source| Error::Io { path: parent.clone(), source })?;
    kailin_core::remove_stale_temporaries(dir)
        .map_err(|e| Error::Io { path: dir.to_owned(), source: std::io::Error::other(e.to_string()) })?;
    let started = std::time::Instant::now();
    let tmp = kailin_core::AtomicDir::create(dir).map_err(core_io(dir))?;
    let summary = body(tmp.path())?;
    let marker =
        Marker { stage: stage.to_owned(), key: key.to_owned(), seconds: started.elapsed().as_secs_f64(), summary };
    let bytes = serde_json::to_vec_pretty(&marker)
        .map_err(|e| Error::Io { path: dir.join(STAGE_FILE), source: std::io::Error::other(e.to_string()) })?;
    kailin_core::write_atomic(tmp.path().join(STAGE_FILE), &bytes).map_err(core_io(dir))?;
    tmp.commit().map_err(core_io(dir))?;
    Ok(marker)
}

/// A `kailin-core` file error as ours.
pub(crate) fn core_io(path: &Path) -> impl Fn(kailin_core::Error) -> Error + '_ {
    move |e| match e {
        kailin_core::Error::Io { path, source } => Error::Io { path, source },
        other => Error::Io { path: path.to_owned(), source: std::io::Error::other(other.to_string()) },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_finished_stage_is_found_by_its_key_and_a_failed_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("stages/s");
        let k = key("s", &serde_json::json!({"n": 1}));
        assert_ne!(k, key("s", &serde_json::json!({"n": 2})));
        assert!(finished::<u32>(&at, &k).is_none());
        let failed = run::<u32>("s", &at, &k, |tmp| {
            std::fs::write(tmp.join("half.jsonl"), "x").unwrap();
            Err(Error::Config { key: "k".into(), message: "boom".into() })
        });
        assert!(failed.is_err());
        assert!(!at.exists(), "a failed stage leaves no directory");
        assert_eq!(std::fs::read_dir(dir.path().join("stages")).unwrap().count(), 0, "nor a temporary");
        let m = run("s", &at, &k, |tmp| {
            std::fs::write(tmp.join("out.jsonl"), "{}\n").unwrap();
            Ok(7u32)
        })
        .unwrap();
        assert_eq!(m.summary, 7);
        assert_eq!(finished::<u32>(&at, &k).unwrap().summary, 7);
        assert!(finished::<u32>(&at, &key("s", &serde_json::json!({"n": 2}))).is_none());
        assert!(at.join("out.jsonl").exists());
    }
}
