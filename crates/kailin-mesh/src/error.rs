//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading, caching or querying MeSH.
///
/// Every variant names *where* the problem is (file and line, or the descriptor involved), so
/// that a user can fix the input without reading this crate's source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A line or element of an input file is malformed.
    #[error("{origin}:{line}: {message}")]
    Parse {
        /// The file (or `<memory>`).
        origin: String,
        /// 1-based line number (0 when unknown, e.g. inside a compressed stream's end).
        line: u64,
        /// What was wrong.
        message: String,
    },
    /// The format of a file could not be recognised.
    #[error(
        "{}: not a MeSH file this crate reads (descriptor XML, ASCII tree file, TSV or kailin cache)",
        path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The input held no descriptor at all.
    #[error("{origin}: no descriptors")]
    Empty {
        /// The file (or `<memory>`).
        origin: String,
    },
    /// Two records carry the same descriptor UI.
    #[error("{origin}: duplicate descriptor UI {ui} (records {first} and {second})")]
    DuplicateUi {
        /// The file (or `<memory>`).
        origin: String,
        /// The repeated UI.
        ui: String,
        /// Location of the first record (line number, or record number for in-memory input).
        first: u64,
        /// Location of the second record.
        second: u64,
    },
    /// Two descriptors claim the same tree number.
    #[error("{origin}: tree number {tree} is owned by both {first} and {second}")]
    DuplicateTreeNumber {
        /// The file (or `<memory>`).
        origin: String,
        /// The contested tree number.
        tree: String,
        /// UI of the first owner.
        first: String,
        /// UI of the second owner.
        second: String,
    },
    /// A tree number is not of the form `X00.000.000`.
    #[error("{origin}:{line}: malformed tree number {tree:?} of descriptor {ui}")]
    BadTreeNumber {
        /// The file (or `<memory>`).
        origin: String,
        /// Line (or record number) of the descriptor.
        line: u64,
        /// The descriptor's UI.
        ui: String,
        /// The malformed tree number.
        tree: String,
    },
    /// A tree number's parent (the number with its last `.segment` removed) has no owner.
    #[error("{origin}: tree number {tree} of {ui} has parent {parent}, which no descriptor owns")]
    MissingParent {
        /// The file (or `<memory>`).
        origin: String,
        /// The descriptor's UI.
        ui: String,
        /// The orphaned tree number.
        tree: String,
        /// The missing parent tree number.
        parent: String,
    },
    /// A UI or term that names no descriptor.
    #[error("unknown MeSH descriptor {0:?}")]
    UnknownDescriptor(String),
    /// A binary cache file is corrupt, truncated or of another version.
    #[error("{}: invalid kailin MeSH cache: {message}", path.display())]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A corpus annotation count refers to a descriptor id outside this hierarchy.
    #[error("annotation refers to descriptor index {0}, but the hierarchy has fewer descriptors")]
    AnnotationOutOfRange(usize),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn parse(origin: &str, line: u64, message: impl Into<String>) -> Self {
        Error::Parse { origin: origin.to_owned(), line, message: message.into() }
    }
}

impl From<kailin_core::Error> for Error {
    fn from(e: kailin_core::Error) -> Self {
        let (path, source) = e.into_io();
        Error::Io { path, source }
    }
}
