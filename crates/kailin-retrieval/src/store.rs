//! The embedding store: a directory of append-only shards of vectors (raw little-endian f32
//! or f16 rows, memory-mapped) with their ids (one per line), listed by a manifest
//! (`store.json`) that records the dimension, the element type and the encoder's identity.
//!
//! A shard becomes part of the store only once its files are complete on disk and the manifest
//! has been replaced to list it (write to a temporary name, then rename), so an interrupted
//! build loses at most the shard in progress, and resuming re-encodes nothing else.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use half::f16;
use memmap2::Mmap;
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::exact::{ExactSearch, Vectors};
use crate::topk::Hit;

/// The manifest's file name inside a store directory.
pub const MANIFEST: &str = "store.json";
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShardEntry {
    vectors: String,
    ids: String,
    rows: u64,
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
}

impl StoreBuilder {
    /// A store of `dim`-dimensional vectors in directory `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>, dim: usize) -> Self {
        StoreBuilder { dir: dir.into(), dim, dtype: Dtype::F32, encoder: None, shard_rows: 1 << 20 }
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
    /// Errors: a zero dimension or shard size; an existing store that disagrees; I/O.
    pub fn build(self) -> Result<StoreWriter> {
        if self.dim == 0 || self.shard_rows == 0 {
            return Err(Error::Invalid(format!("store dimension {} and shard rows {}", self.dim, self.shard_rows)));
        }
        fs::create_dir_all(&self.dir).map_err(Error::io(&self.dir))?;
        let manifest = match read_manifest(&self.dir)? {
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
                m
            }
            None => {
                let m = Manifest {
                    format: FORMAT,
                    dim: self.dim,
                    dtype: self.dtype,
                    encoder: self.encoder.clone(),
                    shards: Vec::new(),
                };
                let writer = StoreWriter::empty(self.dir.clone(), m.clone(), self.shard_rows);
                writer.write_manifest()?;
                return Ok(writer);
            }
        };
        Ok(StoreWriter::empty(self.dir, manifest, self.shard_rows))
    }
}

/// Appends vectors to a store, one shard at a time.
#[derive(Debug)]
pub struct StoreWriter {
    dir: PathBuf,
    manifest: Manifest,
    shard_rows: usize,
    vectors: Vec<f32>,
    ids: Vec<String>,
}

impl StoreWriter {
    fn empty(dir: PathBuf, manifest: Manifest, shard_rows: usize) -> Self {
        StoreWriter { dir, manifest, shard_rows, vectors: Vec::new(), ids: Vec::new() }
    }

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
        let row = self.committed() + self.ids.len() as u64;
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
        if self.ids.len() >= self.shard_rows {
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
        self.manifest.shards.push(ShardEntry { vectors: vec_name, ids: ids_name, rows: self.ids.len() as u64 });
        self.write_manifest()?;
        tracing::debug!(shard = n, rows = self.ids.len(), "shard written");
        self.vectors.clear();
        self.ids.clear();
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
    /// Errors: a missing or unreadable manifest; files that disagree with it; I/O.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = read_manifest(&dir)?
            .ok_or_else(|| Error::store(&dir, format!("no {MANIFEST}: not a store (or never written)")))?;
        if cfg!(target_endian = "big") {
            return Err(Error::store(&dir, "stores are little-endian; this machine is big-endian"));
        }
        let width = manifest.dim * manifest.dtype.bytes();
        let mut shards = Vec::with_capacity(manifest.shards.len());
        let mut offsets = vec![0u64];
        for entry in &manifest.shards {
            for name in [&entry.vectors, &entry.ids] {
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
