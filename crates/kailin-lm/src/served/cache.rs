//! The response cache: one file per request, keyed by a hash of the request body, holding
//! the request itself (checked on every hit, so a hash collision is a miss, never a wrong
//! answer) and the answer. Written atomically: a process killed while writing leaves no
//! entry, never half of one.

use std::path::{Path, PathBuf};

use kailin_core::Fnv64;
use serde::{Deserialize, Serialize};

use super::client::Reply as Answer;
use crate::error::{Error, Result};

/// A directory of cached responses.
#[derive(Debug, Clone)]
pub struct ResponseCache {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    request: serde_json::Value,
    answer: Answer,
}

impl ResponseCache {
    /// Opens (creating) the cache in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), error: source })?;
        kailin_core::remove_stale_temporaries_in(&dir)?;
        Ok(ResponseCache { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, request: &serde_json::Value) -> PathBuf {
        let key = Fnv64::new().bytes(request.to_string().as_bytes()).hex();
        self.dir.join(format!("{key}.json"))
    }

    /// The cached answer to exactly `request`, if any (marked `cached`). An unreadable entry
    /// is a miss, logged.
    pub fn get(&self, request: &serde_json::Value) -> Option<Answer> {
        let path = self.path(request);
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice::<Entry>(&bytes) {
            Ok(entry) if &entry.request == request => Some(Answer { cached: true, ..entry.answer }),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(entry = %path.display(), error = %e, "unreadable cache entry ignored");
                None
            }
        }
    }

    /// Stores the answer to `request`.
    pub fn put(&self, request: &serde_json::Value, answer: &Answer) -> Result<()> {
        let entry = Entry { request: request.clone(), answer: Answer { cached: false, ..answer.clone() } };
        let bytes = serde_json::to_vec(&entry).map_err(|e| Error::Io { path: self.dir.clone(), error: e.into() })?;
        Ok(kailin_core::write_atomic(self.path(request), &bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_only_the_same_request() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResponseCache::open(dir.path().join("c")).unwrap();
        let (a, b) = (serde_json::json!({"q": 1}), serde_json::json!({"q": 2}));
        let answer = Answer { text: "yes".into(), ..Default::default() };
        assert!(cache.get(&a).is_none());
        cache.put(&a, &answer).unwrap();
        assert_eq!(cache.get(&a), Some(Answer { cached: true, ..answer.clone() }));
        assert!(cache.get(&b).is_none());
        // A corrupt entry is a miss.
        std::fs::write(cache.path(&a), b"{").unwrap();
        assert!(cache.get(&a).is_none());
    }
}
