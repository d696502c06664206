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
    /// What the key hashed (a plan compares it with a new run's to say what changed).
    #[serde(default)]
    pub(crate) inputs: serde_json::Value,
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
    read_marker(dir).filter(|m: &Marker<T>| m.key == key)
}

/// The marker of the stage finished at `dir`, whatever its key.
pub(crate) fn read_marker<T: DeserializeOwned>(dir: &Path) -> Option<Marker<T>> {
    let text = std::fs::read_to_string(dir.join(STAGE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Runs `body` into a temporary directory beside `dir` and renames it into place with its
/// marker; the temporaries of killed runs beside `dir` are removed first.
pub(crate) fn run<T: Serialize>(
    stage: &str,
    dir: &Path,
    key: &str,
    inputs: &serde_json::Value,
    body: impl FnOnce(&Path) -> Result<T>,
) -> Result<Marker<T>> {
    let parent = dir.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&parent).map_err(|source| Error::Io { path: parent.clone(), source })?;
    kailin_core::remove_stale_temporaries(dir)
        .map_err(|e| Error::Io { path: dir.to_owned(), source: std::io::Error::other(e.to_string()) })?;
    let started = std::time::Instant::now();
    let tmp = kailin_core::AtomicDir::create(dir).map_err(core_io(dir))?;
    let summary = body(tmp.path())?;
    let marker = Marker {
        stage: stage.to_owned(),
        key: key.to_owned(),
        seconds: started.elapsed().as_secs_f64(),
        summary,
        inputs: inputs.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&marker)
        .map_err(|e| Error::Io { path: dir.join(STAGE_FILE), source: std::io::Error::other(e.to_string()) })?;
    kailin_core::write_atomic(tmp.path().join(STAGE_FILE), &bytes).map_err(core_io(dir))?;
    tmp.commit().map_err(core_io(dir))?;
    Ok(marker)
}

/// The parts of a complete sharding under `root` (`I-of-N/` directories, each finished with
/// `key`), in shard order; `None` when no sharding is complete.
pub(crate) fn complete_sharding(root: &Path, key: &str) -> Option<Vec<PathBuf>> {
    let mut by_count: std::collections::BTreeMap<usize, Vec<(usize, PathBuf)>> = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((i, n)) = name.split_once("-of-") else { continue };
        let (Ok(i), Ok(n)) = (i.parse::<usize>(), n.parse::<usize>()) else { continue };
        if i < n && finished::<serde_json::Value>(&entry.path(), key).is_some() {
            by_count.entry(n).or_default().push((i, entry.path()));
        }
    }
    by_count.into_iter().find(|(n, parts)| parts.len() == *n).map(|(_, mut parts)| {
        parts.sort();
        parts.into_iter().map(|(_, p)| p).collect()
    })
}

/// Merges the parts of a sharded stage into `into`: each file concatenated in shard order, the
/// summaries added ([`add`]).
pub(crate) fn merge_parts<T: DeserializeOwned>(parts: &[PathBuf], into: &Path) -> Result<T> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let first = parts
        .first()
        .ok_or_else(|| Error::Io { path: into.to_owned(), source: std::io::Error::other("no shard to merge") })?;
    let mut files: Vec<String> = std::fs::read_dir(first)
        .map_err(io(first))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != STAGE_FILE && !n.starts_with('.'))
        .collect();
    files.sort();
    for name in &files {
        let mut bytes = Vec::new();
        for part in parts {
            let p = part.join(name);
            bytes.extend(std::fs::read(&p).map_err(io(&p))?);
        }
        kailin_core::write_atomic(into.join(name), &bytes).map_err(core_io(into))?;
    }
    let mut summary = serde_json::Value::Null;
    for part in parts {
        let text = std::fs::read_to_string(part.join(STAGE_FILE)).map_err(io(part))?;
        let marker: Marker<serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| Error::Io { path: part.join(STAGE_FILE), source: std::io::Error::other(e) })?;
        summary = add(summary, marker.summary);
    }
    serde_json::from_value(summary).map_err(|e| Error::Io { path: into.to_owned(), source: std::io::Error::other(e) })
}

/// Two shards' summaries added: numbers summed, arrays concatenated, objects key by key,
/// anything else (a name) kept from the first.
pub(crate) fn add(a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (a, b) {
        (Value::Null, b) => b,
        (a, Value::Null) => a,
        (Value::Number(x), Value::Number(y)) => match (x.as_u64(), y.as_u64()) {
            (Some(x), Some(y)) => Value::from(x + y),
            _ => Value::from(x.as_f64().unwrap_or(0.0) + y.as_f64().unwrap_or(0.0)),
        },
        (Value::Array(mut x), Value::Array(y)) => {
            x.extend(y);
            Value::Array(x)
        }
        (Value::Object(mut x), Value::Object(y)) => {
            for (k, v) in y {
                let merged = add(x.remove(&k).unwrap_or(Value::Null), v);
                x.insert(k, merged);
            }
            Value::Object(x)
        }
        (a, _) => a,
    }
}

/// A `kailin-core` file error as ours.
pub(crate) fn core_io(path: &Path) -> impl Fn(kailin_core::Error) -> Error + '_ {
    move |e| match e {
        kailin_core::Error::Io { path, source } => Error::Io { path, source },
        other => Error::Io { path: path.to_owned(), source: std::io::Error::other(other.to_string()) },
    }
}

/// The paths where two key inputs differ, with the values (at most `limit`).
pub(crate) fn differences(old: &serde_json::Value, new: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let here = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                differences(a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null), &here, out);
            }
        }
        (a, b) if a != b => {
            // A setting read as f32 (a temperature) shows as it was written, not as its f64.
            let show = |v: &Value| match v.as_f64() {
                Some(x) if !v.is_i64() && !v.is_u64() && f64::from(x as f32) == x => format!("{}", x as f32),
                _ => kailin_core::cut_chars_marked(&v.to_string(), 60),
            };
            out.push(match at.strip_prefix("after.") {
                Some(stage) => format!("{stage} reruns"),
                None => format!("{} {} → {}", at.strip_prefix("inputs.").unwrap_or(at), show(a), show(b)),
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn differences_name_settings_and_upstream_stages() {
        let old =
            serde_json::json!({"inputs": {"questions": {"n": 2, "t": 0.7}}, "after": {"corpus": "a", "agents": "b"}});
        let new =
            serde_json::json!({"inputs": {"questions": {"n": 2, "t": 0.9}}, "after": {"corpus": "a", "agents": "c"}});
        let mut out = Vec::new();
        differences(&old, &new, "", &mut out);
        assert_eq!(out, ["agents reruns", "questions.t 0.7 → 0.9"]);
    }

    #[test]
    fn summaries_add_and_shardings_are_found_only_when_complete() {
        let a = serde_json::json!({"n": 2, "m": [1.5], "name": "rule", "t": {"kept": 1}});
        let b = serde_json::json!({"n": 3, "m": [2.5], "name": "rule", "t": {"kept": 4, "empty": 1}});
        assert_eq!(
            add(a, b),
            serde_json::json!({"n": 5, "m": [1.5, 2.5], "name": "rule", "t": {"kept": 5, "empty": 1}})
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s.shards/k");
        for i in [0, 2] {
            run("s", &root.join(format!("{i}-of-3")), "k", &serde_json::Value::Null, |tmp| {
                std::fs::write(tmp.join("out.jsonl"), format!("{i}\n")).unwrap();
                Ok(serde_json::json!({"records": 1}))
            })
            .unwrap();
        }
        assert!(complete_sharding(&root, "k").is_none(), "shard 1 of 3 missing");
        run("s", &root.join("1-of-3"), "k", &serde_json::Value::Null, |tmp| {
            std::fs::write(tmp.join("out.jsonl"), "1\n").unwrap();
            Ok(serde_json::json!({"records": 1}))
        })
        .unwrap();
        let parts = complete_sharding(&root, "k").unwrap();
        let into = dir.path().join("merged");
        std::fs::create_dir_all(&into).unwrap();
        let summary: serde_json::Value = merge_parts(&parts, &into).unwrap();
        assert_eq!(summary, serde_json::json!({"records": 3}));
        assert_eq!(std::fs::read_to_string(into.join("out.jsonl")).unwrap(), "0\n1\n2\n");
        assert!(complete_sharding(&root, "other key").is_none());
    }

    #[test]
    fn a_finished_stage_is_found_by_its_key_and_a_failed_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("stages/s");
        let k = key("s", &serde_json::json!({"n": 1}));
        assert_ne!(k, key("s", &serde_json::json!({"n": 2})));
        assert!(finished::<u32>(&at, &k).is_none());
        let failed = run::<u32>("s", &at, &k, &serde_json::Value::Null, |tmp| {
            std::fs::write(tmp.join("half.jsonl"), "x").unwrap();
            Err(Error::Config { key: "k".into(), message: "boom".into() })
        });
        assert!(failed.is_err());
        assert!(!at.exists(), "a failed stage leaves no directory");
        assert_eq!(std::fs::read_dir(dir.path().join("stages")).unwrap().count(), 0, "nor a temporary");
        let m = run("s", &at, &k, &serde_json::Value::Null, |tmp| {
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
