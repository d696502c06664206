//! The embedding store: a directory of append-only shards of vectors (raw little-endian f32
//! or f16 rows, memory-mapped) with their ids (one per line), listed by a manifest
//! (`store.json`) that records the dimension, the element type and the encoder's identity.
//!
//! A shard becomes part of the store only once its files are complete on disk and the manifest
//! has been replaced to list it (write to a temporary name, then rename). A writer commits a
//! shard when it has `shard_rows` rows or when `commit_every` (a minute by default) has passed,
//! so an interrupted build loses at most about a minute of work, and resuming re-encodes
//! nothing else. The manifest says whether the build finished: an unfinished store is searched
//! only when asked for explicitly ([`Store::open_partial`]). Built stores also keep a digest
//! of each row's text, so a resumed build notices edited documents. One writer at a time: a
//! second is refused while the first holds `store.lock`.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use half::f16;
use memmap2::Mmap;
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::exact::{ExactSearch, Vectors};
use crate::topk::Hit;

/// The manifest's file name inside a store directory.
pub const MANIFEST: &str = "store.json";
/// The lock file a writer holds (an advisory lock, released by the system when it exits).
const LOCK: &str = "store.lock";
const FORMAT: u32 = 1;

/// Element type of stored vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// 4 bytes per value.
    #[default]
    F32,
    /// 2 bytes per value (half the disk and memory; scores differ from f32 by the rounding).
    F16,
}

impl Dtype {
    fn bytes(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    dim: usize,
    dtype: Dtype,
    /// Identity of the encoder that made the vectors (`None`: imported, unknown).
    encoder: Option<String>,
    shards: Vec<ShardEntry>,
    /// Whether the build finished (stores written before this field are taken as finished).
    #[serde(default = "finished")]
    complete: bool,
}

fn finished() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShardEntry {
    vectors: String,
    ids: String,
    rows: u64,
    /// One 16-hex-digit FNV-1a digest of each row's text, for built (not imported) stores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    texts: Option<String>,
}

fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Io { path, error: e }),
    };
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| Error::store(&path, format!("unreadable manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(Error::store(&path, format!("format {} (this version reads {FORMAT})", manifest.format)));
    }
    if manifest.dim == 0 {
        return Err(Error::store(&path, "dimension 0"));
    }
    Ok(Some(manifest))
}

/// Configures a store to create, or to resume appending to.
#[derive(Debug, Clone)]
pub struct StoreBuilder {
    dir: PathBuf,
    dim: usize,
    dtype: Dtype,
    encoder: Option<String>,
    shard_rows: usize,
    commit_every: Duration,
}

impl StoreBuilder {
    /// A store of `dim`-dimensional vectors in directory `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>, dim: usize) -> Self {
        StoreBuilder {
            dir: dir.into(),
            dim,
            dtype: Dtype::F32,
            encoder: None,
            shard_rows: 1 << 20,
            commit_every: Duration::from_secs(60),
        }
    }

    /// Commit the pending rows as a shard at least this often (default a minute): what an
    /// interrupted build can lose.
    pub fn commit_every(mut self, every: Duration) -> Self {
        self.commit_every = every;
        self
    }

    /// Element type on disk (default f32).
    pub fn dtype(mut self, dtype: Dtype) -> Self {
        self.dtype = dtype;
        self
    }

    /// Records the identity of the encoder that makes the vectors (see
    /// [`Store::check_encoder`]).
    pub fn encoder(mut self, identity: impl Into<String>) -> Self {
        self.encoder = Some(identity.into());
        self
    }

    /// Rows per shard (default 2^20): the unit of resumption and of distribution.
    pub fn shard_rows(mut self, rows: usize) -> Self {
        self.shard_rows = rows;
        self
    }

    /// Opens the writer: a new store, or the existing one in `dir` to append to, provided it
    /// has the same dimension, element type and encoder.
    ///
    /// Errors: a zero dimension or shard size; an existing store that disagrees; another
    /// writer holding the store; I/O.
    pub fn build(self) -> Result<StoreWriter> {
        if self.dim == 0 || self.shard_rows == 0 {
            return Err(Error::Invalid(format!("store dimension {} and shard rows {}", self.dim, self.shard_rows)));
        }
        if std::fs::symlink_metadata(&self.dir).is_ok() && !self.dir.is_dir() {
            return Err(Error::store(
                &self.dir,
                format!("{}, not a directory; a store is a directory", kailin_core::describe_path(&self.dir)),
            ));
        }
        // A stranger's directory is not written into: a new store goes into a new or empty one.
        if !self.dir.join(MANIFEST).exists()
            && fs::read_dir(&self.dir).is_ok_and(|mut entries| {
                entries.any(|e| {
                    e.is_ok_and(|e| e.file_name() != LOCK && !e.file_name().to_string_lossy().starts_with('.'))
                })
            })
        {
            return Err(Error::store(
                &self.dir,
                format!("is not empty and holds no store (no {MANIFEST}): give a new or empty directory for the store"),
            ));
        }
        fs::create_dir_all(&self.dir).map_err(Error::io(&self.dir))?;
        let lock_path = self.dir.join(LOCK);
        let lock =
            File::options().create(true).truncate(false).write(true).open(&lock_path).map_err(Error::io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::store(&self.dir, "another process is writing this store (it holds store.lock)"));
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path)(e)),
        }
        // Holding the lock, nobody else writes here: temporaries are what killed writers left.
        kailin_core::remove_stale_temporaries_in(&self.dir)?;
        let existing = read_manifest(&self.dir)?;
        let fresh = existing.is_none();
        let manifest = match existing {
            Some(m) => {
                let path = self.dir.join(MANIFEST);
                if m.dim != self.dim {
                    return Err(Error::Dimension {
                        what: format!("existing store {}", self.dir.display()),
                        expected: self.dim,
                        got: m.dim,
                    });
                }
                if m.dtype != self.dtype {
                    return Err(Error::store(path, format!("holds {:?} vectors, not {:?}", m.dtype, self.dtype)));
                }
                if m.encoder != self.encoder {
                    return Err(Error::EncoderMismatch {
                        path: self.dir.clone(),
                        stored: m.encoder.unwrap_or_else(|| "<none>".into()),
                        given: self.encoder.unwrap_or_else(|| "<none>".into()),
                    });
                }
                Manifest { complete: false, ..m }
            }
            None => Manifest {
                format: FORMAT,
                dim: self.dim,
                dtype: self.dtype,
                encoder: self.encoder.clone(),
                shards: Vec::new(),
                complete: false,
            },
        };
        let writer = StoreWriter {
            dir: self.dir,
            manifest,
            shard_rows: self.shard_rows,
            commit_every: self.commit_every,
            last_commit: Instant::now(),
            vectors: Vec::new(),
            ids: Vec::new(),
            digests: Vec::new(),
            _lock: lock,
        };
        // A new store is marked unfinished at once; an existing one when its first new shard
        // is committed (a run that adds nothing leaves it as it was).
        if fresh {
            writer.write_manifest()?;
        }
        Ok(writer)
    }
}

/// Appends vectors to a store, one shard at a time.
#[derive(Debug)]
pub struct StoreWriter {
    dir: PathBuf,
    manifest: Manifest,
    shard_rows: usize,
    commit_every: Duration,
    last_commit: Instant,
    vectors: Vec<f32>,
    ids: Vec<String>,
    /// Text digests of the pending rows (all of them, or none).
    digests: Vec<u64>,
    /// Held while the writer lives.
    _lock: File,
}

impl StoreWriter {
    /// Rows safely stored (in complete shards): when resuming, the input's first rows that
    /// need no encoding.
    pub fn committed(&self) -> u64 {
        self.manifest.shards.iter().map(|s| s.rows).sum()
    }

    /// The ids of the committed rows, in order (to check that a resumed input is the same).
    ///
    /// Errors: an id file that cannot be read.
    pub fn committed_ids(&self) -> Result<Vec<String>> {
        let mut all = Vec::new();
        for shard in &self.manifest.shards {
            let path = self.dir.join(&shard.ids);
            let text = fs::read_to_string(&path).map_err(Error::io(&path))?;
            all.extend(text.lines().map(str::to_owned));
        }
        Ok(all)
    }

    /// The text digests of the committed rows, in order (`None` for rows stored without one,
    /// such as imported vectors).
    ///
    /// Errors: a digest file that cannot be read or parsed.
    pub fn committed_digests(&self) -> Result<Vec<Option<u64>>> {
        let mut all = Vec::new();
        for shard in &self.manifest.shards {
            let Some(name) = &shard.texts else {
                all.extend(std::iter::repeat_n(None, shard.rows as usize));
                continue;
            };
            let path = self.dir.join(name);
            let text = fs::read_to_string(&path).map_err(Error::io(&path))?;
            for (i, line) in text.lines().enumerate() {
                let d = u64::from_str_radix(line, 16)
                    .map_err(|_| Error::store(&path, format!("line {}: not a digest", i + 1)))?;
                all.push(Some(d));
            }
        }
        Ok(all)
    }

    /// The vectors' dimension.
    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one row; a shard is written whenever enough rows are pending.
    ///
    /// Errors: a vector of another dimension or with a non-finite value; an id that is empty
    /// or spans lines; I/O.
    pub fn push(&mut self, id: &str, vector: &[f32]) -> Result<()> {
        self.push_row(id, vector, None)
    }

    /// [`push`](Self::push) with the digest of the row's text (see
    /// [`committed_digests`](Self::committed_digests)).
    ///
    /// Errors: as `push`; mixing rows with and without digests in one shard.
    pub fn push_digested(&mut self, id: &str, vector: &[f32], text_digest: u64) -> Result<()> {
        self.push_row(id, vector, Some(text_digest))
    }

    fn push_row(&mut self, id: &str, vector: &[f32], digest: Option<u64>) -> Result<()> {
        let row = self.committed() + self.ids.len() as u64;
        let pending_digested = !self.digests.is_empty();
        if !self.ids.is_empty() && digest.is_some() != pending_digested {
            return Err(Error::Invalid(format!("row {row}: rows with and without text digests in one shard")));
        }
        if vector.len() != self.manifest.dim {
            return Err(Error::Dimension {
                what: format!("vector of row {row}"),
                expected: self.manifest.dim,
                got: vector.len(),
            });
        }
        if let Some(i) = vector.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!("vector of row {row} ({id:?}) has a non-finite value at {i}")));
        }
        if id.is_empty() || id.contains(['\n', '\r']) {
            return Err(Error::BadId { id: id.to_owned(), row });
        }
        self.vectors.extend_from_slice(vector);
        self.ids.push(id.to_owned());
        self.digests.extend(digest);
        if self.ids.len() >= self.shard_rows || self.last_commit.elapsed() >= self.commit_every {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the pending rows as a shard (nothing if none are pending).
    ///
    /// Errors: I/O.
    pub fn flush(&mut self) -> Result<()> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let n = self.manifest.shards.len();
        let (vec_name, ids_name) = (format!("shard-{n:05}.vec"), format!("shard-{n:05}.ids"));
        let dtype = self.manifest.dtype;
        kailin_core::write_atomic_with(self.dir.join(&vec_name), |out| {
            for v in &self.vectors {
                match dtype {
                    Dtype::F32 => out.write_all(&v.to_le_bytes())?,
                    Dtype::F16 => out.write_all(&f16::from_f32(*v).to_le_bytes())?,
                }
            }
            Ok(())
        })?;
        kailin_core::write_atomic_with(self.dir.join(&ids_name), |out| {
            for id in &self.ids {
                writeln!(out, "{id}")?;
            }
            Ok(())
        })?;
        let texts = if self.digests.is_empty() {
            None
        } else {
            let name = format!("shard-{n:05}.txt");
            kailin_core::write_atomic_with(self.dir.join(&name), |out| {
                for d in &self.digests {
                    writeln!(out, "{d:016x}")?;
                }
                Ok(())
            })?;
            Some(name)
        };
        let rows = self.ids.len() as u64;
        self.manifest.shards.push(ShardEntry { vectors: vec_name, ids: ids_name, rows, texts });
        self.write_manifest()?;
        tracing::debug!(shard = n, rows, "shard written");
        self.vectors.clear();
        self.ids.clear();
        self.digests.clear();
        self.last_commit = Instant::now();
        Ok(())
    }

    fn write_manifest(&self) -> Result<()> {
        let json = serde_json::to_string_pretty(&self.manifest).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(kailin_core::write_atomic_with(self.dir.join(MANIFEST), |out| out.write_all(json.as_bytes()))?)
    }

    /// Writes the last, partial shard and opens the store for searching.
    ///
    /// Errors: I/O, or the files failing [`Store::open`]'s checks.
    pub fn finish(mut self) -> Result<Store> {
        self.flush()?;
        self.manifest.complete = true;
        self.write_manifest()?;
        Store::open(&self.dir)
    }
}

/// One memory-mapped shard.
#[derive(Debug)]
struct Shard {
    map: Option<Mmap>,
    ids: String,
    /// Byte offset of each id in `ids`, plus the end.
    starts: Vec<usize>,
    rows: usize,
}

/// A store opened for searching: its shards memory-mapped, its ids in memory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    manifest: Manifest,
    shards: Vec<Shard>,
    /// Global row of each shard's first row, plus the total.
    offsets: Vec<u64>,
}

impl Store {
    /// Opens the store in `dir`, checking that every shard's vector file holds exactly its
    /// rows × dimension values and its id file exactly its rows.
    ///
    /// Errors: a missing or unreadable manifest; a store whose build has not finished (see
    /// [`open_partial`](Self::open_partial)); files that disagree with the manifest; I/O.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Self::open_checked(dir.as_ref(), false)
    }

    /// [`open`](Self::open) for a store whose build has not finished (interrupted, or still
    /// running): the rows committed so far.
    pub fn open_partial(dir: impl AsRef<Path>) -> Result<Store> {
        Self::open_checked(dir.as_ref(), true)
    }

    fn open_checked(dir: &Path, partial: bool) -> Result<Store> {
        let dir = dir.to_path_buf();
        if dir.exists() && !dir.is_dir() {
            return Err(Error::store(&dir, "is not a directory; a store is a directory"));
        }
        let manifest = read_manifest(&dir)?
            .ok_or_else(|| Error::store(&dir, format!("no {MANIFEST}: not a store (or never written)")))?;
        if !manifest.complete && !partial {
            return Err(Error::store(
                &dir,
                "its build has not finished: run the build again to complete it (it resumes)",
            ));
        }
        if cfg!(target_endian = "big") {
            return Err(Error::store(&dir, "stores are little-endian; this machine is big-endian"));
        }
        let width = manifest.dim * manifest.dtype.bytes();
        let mut shards = Vec::with_capacity(manifest.shards.len());
        let mut offsets = vec![0u64];
        for entry in &manifest.shards {
            for name in [&entry.vectors, &entry.ids].into_iter().chain(&entry.texts) {
                if name.contains(['/', '\\']) || name.starts_with('.') {
                    return Err(Error::store(&dir, format!("shard file name {name:?} leaves the store")));
                }
            }
            let vec_path = dir.join(&entry.vectors);
            let file = File::open(&vec_path).map_err(Error::io(&vec_path))?;
            let size = file.metadata().map_err(Error::io(&vec_path))?.len();
            let expected = entry.rows.checked_mul(width as u64);
            if expected != Some(size) {
                return Err(Error::store(
                    &vec_path,
                    format!(
                        "{size} bytes, but {} rows of {} {:?} values need {}",
                        entry.rows,
                        manifest.dim,
                        manifest.dtype,
                        expected.map_or_else(|| "too many".into(), |e| e.to_string())
                    ),
                ));
            }
            // An empty file cannot be mapped on every platform, and needs no mapping.
            // SAFETY: the store's files are append-only: a shard is never rewritten once the
            // manifest lists it, so the mapping does not change under us (modifying a store's
            // files by other means while it is open is not supported).
            let map = if size == 0 { None } else { Some(unsafe { Mmap::map(&file) }.map_err(Error::io(&vec_path))?) };
            let ids_path = dir.join(&entry.ids);
            let ids = fs::read_to_string(&ids_path).map_err(Error::io(&ids_path))?;
            let mut starts = Vec::with_capacity(entry.rows as usize + 1);
            let mut at = 0;
            for line in ids.split_inclusive('\n') {
                starts.push(at);
                at += line.len();
            }
            starts.push(at);
            let got = starts.len() as u64 - 1;
            if got != entry.rows {
                return Err(Error::IdCount { path: ids_path, expected: entry.rows, got });
            }
            shards.push(Shard { map, ids, starts, rows: entry.rows as usize });
            offsets.push(offsets.last().copied().unwrap_or(0) + entry.rows);
        }
        Ok(Store { dir, manifest, shards, offsets })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The vectors' dimension.
    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// The element type on disk.
    pub fn dtype(&self) -> Dtype {
        self.manifest.dtype
    }

    /// The identity of the encoder that made the vectors, if recorded.
    pub fn encoder(&self) -> Option<&str> {
        self.manifest.encoder.as_deref()
    }

    /// Number of vectors.
    pub fn len(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// Whether the store holds no vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Refuses queries from another encoder than the store's.
    ///
    /// Errors: [`Error::EncoderMismatch`] when the store records a different encoder (a store
    /// of imported vectors records none and accepts any).
    pub fn check_encoder(&self, identity: &str) -> Result<()> {
        match self.encoder() {
            Some(stored) if stored != identity => Err(Error::EncoderMismatch {
                path: self.dir.clone(),
                stored: stored.to_owned(),
                given: identity.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// The id of global row `row`.
    pub fn id(&self, row: u64) -> Option<&str> {
        let shard = self.offsets.partition_point(|&o| o <= row).checked_sub(1)?;
        let s = self.shards.get(shard)?;
        let r = (row - self.offsets[shard]) as usize;
        let (a, b) = (*s.starts.get(r)?, *s.starts.get(r + 1)?);
        Some(s.ids[a..b].trim_end_matches(['\n', '\r']))
    }

    /// Every shard's vectors, in row order (zero-copy views of the mapped files).
    ///
    /// Errors: a mapping that cannot be viewed as rows (not expected after [`Store::open`]'s
    /// checks; reported rather than assumed).
    pub fn parts(&self) -> Result<Vec<Vectors<'_>>> {
        let dim = self.manifest.dim;
        self.shards
            .iter()
            .zip(&self.manifest.shards)
            .map(|(s, entry)| {
                let bytes: &[u8] = s.map.as_deref().unwrap_or(&[]);
                let bad = |e: String| Error::store(self.dir.join(&entry.vectors), e);
                Ok(match self.manifest.dtype {
                    Dtype::F32 => Vectors::F32(
                        ArrayView2::from_shape(
                            (s.rows, dim),
                            bytemuck::try_cast_slice(bytes).map_err(|e| bad(e.to_string()))?,
                        )
                        .map_err(|e| bad(e.to_string()))?,
                    ),
                    Dtype::F16 => Vectors::F16(
                        ArrayView2::from_shape(
                            (s.rows, dim),
                            bytemuck::try_cast_slice(bytes).map_err(|e| bad(e.to_string()))?,
                        )
                        .map_err(|e| bad(e.to_string()))?,
                    ),
                })
            })
            .collect()
    }

    /// Exact top-`k` rows by inner product for each query row.
    ///
    /// Shapes: `queries` `[n, dim]` → `n` lists of at most `k` hits, best first.
    ///
    /// Errors: queries of another dimension.
    pub fn search(&self, engine: &ExactSearch, queries: ArrayView2<'_, f32>, k: usize) -> Result<Vec<Vec<Hit>>> {
        if queries.ncols() != self.dim() {
            return Err(Error::Dimension { what: "query vectors".into(), expected: self.dim(), got: queries.ncols() });
        }
        engine.search(queries, &self.parts()?, k)
    }
}
