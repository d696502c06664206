//! Precomputed embeddings as NumPy `.npy` files (2-D little-endian f32), memory-mapped and
//! viewed in place with `ndarray-npy`; imported into a store with their ids.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use ndarray::ArrayView2;
use ndarray_npy::ViewNpyExt;

use crate::error::{Error, Result};
use crate::store::{Store, StoreBuilder};

/// A memory-mapped `.npy` matrix of f32.
#[derive(Debug)]
pub struct NpyMatrix {
    path: PathBuf,
    map: Mmap,
}

impl NpyMatrix {
    /// Maps `path`; [`view`](Self::view) checks its header.
    ///
    /// Errors: I/O.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(Error::io(&path))?;
        // SAFETY: the file is only read; changing it while it is mapped is not supported.
        let map = unsafe { Mmap::map(&file) }.map_err(Error::io(&path))?;
        Ok(NpyMatrix { path, map })
    }

    /// The matrix, without copying.
    ///
    /// Errors: [`Error::Npy`] for anything but a 2-D little-endian f32 array (other element
    /// types, other ranks, a truncated or malformed header or body).
    pub fn view(&self) -> Result<ArrayView2<'_, f32>> {
        ArrayView2::<f32>::view_npy(&self.map).map_err(|e| Error::Npy {
            path: self.path.clone(),
            message: format!("not a 2-D little-endian f32 .npy array: {e}"),
        })
    }
}

/// Imports the rows of `vectors` (a 2-D f32 `.npy`) into the store `builder` opens, with ids
/// from `ids` (one per line, as many as rows) or, without it, the row numbers. Resumable: rows
/// already in the store (from an interrupted import of the same input) are checked and
/// skipped. `on_progress` sees the number of rows done after each row.
///
/// Errors: a malformed `.npy`; an id file with another number of lines; a store of another
/// dimension; an existing store holding other ids; vectors with non-finite values; I/O.
pub fn import_npy(
    vectors: &Path,
    ids: Option<&Path>,
    builder: StoreBuilder,
    mut on_progress: impl FnMut(u64),
) -> Result<Store> {
    let npy = NpyMatrix::open(vectors)?;
    let matrix = npy.view()?;
    let rows = matrix.nrows() as u64;
    let id_text = match ids {
        Some(path) => Some(fs::read_to_string(path).map_err(Error::io(path))?),
        None => None,
    };
    let id_lines: Option<Vec<&str>> = id_text.as_deref().map(|t| t.lines().collect());
    if let (Some(lines), Some(path)) = (&id_lines, ids)
        && lines.len() as u64 != rows
    {
        return Err(Error::IdCount { path: path.to_path_buf(), expected: rows, got: lines.len() as u64 });
    }
    let id_of = |row: usize| -> String {
        match &id_lines {
            Some(lines) => lines[row].to_owned(),
            None => row.to_string(),
        }
    };
    let mut writer = builder.build()?;
    if writer.dim() != matrix.ncols() {
        return Err(Error::Dimension {
            what: vectors.display().to_string(),
            expected: writer.dim(),
            got: matrix.ncols(),
        });
    }
    let committed = writer.committed();
    if committed > rows {
        return Err(Error::store(vectors, format!("the store already holds {committed} rows, the input only {rows}")));
    }
    for (row, stored) in writer.committed_ids()?.into_iter().enumerate() {
        let given = id_of(row);
        if stored != given {
            return Err(Error::ResumeMismatch { path: vectors.to_path_buf(), row: row as u64, stored, given });
        }
    }
    let mut buffer = Vec::with_capacity(matrix.ncols());
    for (row, vector) in matrix.rows().into_iter().enumerate().skip(committed as usize) {
        buffer.clear();
        buffer.extend(vector.iter().copied());
        writer.push(&id_of(row), &buffer)?;
        on_progress(row as u64 + 1);
    }
    writer.finish()
}
