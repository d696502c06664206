//! The crate's error type.

use std::path::PathBuf;

/// Errors of retrieval: files that cannot be read or disagree with each other, inputs of the
/// wrong shape, and stores built by another encoder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read, written or mapped.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (in the message, so not repeated as a source).
        error: std::io::Error,
    },
    /// A store's files disagree with its manifest or with each other.
    #[error("store {}: {message}", path.display())]
    Store {
        /// The store directory or the file at fault.
        path: PathBuf,
        /// What disagrees.
        message: String,
    },
    /// Vectors of another dimension than expected.
    #[error("{what}: dimension {got}, expected {expected}")]
    Dimension {
        /// Which vectors.
        what: String,
        /// The dimension required.
        expected: usize,
        /// The dimension given.
        got: usize,
    },
    /// A flat buffer whose length is not a whole number of rows.
    #[error("{what}: {len} values is not a whole number of rows of {dim}")]
    Ragged {
        /// Which buffer.
        what: String,
        /// Its length.
        len: usize,
        /// The row width.
        dim: usize,
    },
    /// A document id that cannot be stored (empty, or containing a line break).
    #[error("document id {id:?} at row {row}: ids must be non-empty and on one line")]
    BadId {
        /// The id.
        id: String,
        /// Its row in the input.
        row: u64,
    },
    /// Resuming a build with a document stream that differs from the one already stored.
    #[error("store {}: row {row} holds id {stored:?}, but the input now has {given:?} there", path.display())]
    ResumeMismatch {
        /// The store.
        path: PathBuf,
        /// The row.
        row: u64,
        /// The id in the store.
        stored: String,
        /// The id in the input.
        given: String,
    },
    /// The query encoder is not the one that built the store.
    #[error("store {} was built with encoder {stored:?}, not {given:?}", path.display())]
    EncoderMismatch {
        /// The store.
        path: PathBuf,
        /// The encoder recorded in the store.
        stored: String,
        /// The encoder of the queries.
        given: String,
    },
    /// A `.npy` file that is not a 2-D little-endian f32 C-order array.
    #[error("{}: {message}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// An id file whose line count differs from the vectors' row count.
    #[error("{}: {got} ids for {expected} vectors", path.display())]
    IdCount {
        /// The id file.
        path: PathBuf,
        /// The number of vectors.
        expected: u64,
        /// The number of ids.
        got: u64,
    },
    /// A search parameter out of range.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A model configuration that is missing a field or holds an impossible value.
    #[error("{}: {message}", path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A weight missing from the checkpoint or of the wrong shape.
    #[error("weight {tensor:?}: {message}")]
    Weight {
        /// The weight's name in the checkpoint.
        tensor: String,
        /// What is wrong.
        message: String,
    },
    /// The tokenizer could not be loaded or failed on a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A text that cannot be encoded (empty after tokenisation, say).
    #[error("text {index}: {message}")]
    Text {
        /// Its position in the batch.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// The sparse (BM25) index failed.
    #[error("BM25 index: {0}")]
    Bm25(String),
    /// The input stream (of documents, say) failed.
    #[error("reading the input: {0}")]
    Input(Box<dyn std::error::Error + Send + Sync>),
    /// The backend failed (reading a tensor back, say).
    #[error("backend: {0}")]
    Backend(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |error| Error::Io { path, error }
    }

    /// An [`Error::Store`] for `path`.
    pub(crate) fn store(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
        Error::Store { path: path.into(), message: message.into() }
    }
}

impl From<kailin_core::Error> for Error {
    fn from(e: kailin_core::Error) -> Self {
        let (path, error) = e.into_io();
        Error::Io { path, error }
    }
}
