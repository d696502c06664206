//! The crate's error type.

use std::path::PathBuf;

/// Errors of record I/O; each names the file and, for content errors, the line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line is not a JSON record of the expected shape.
    #[error("{}:{line}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// A line is not UTF-8.
    #[error("{}:{line}: not UTF-8 text", path.display())]
    Utf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
    },
}

impl Error {
    /// The file at fault and the error as an [`std::io::Error`] (content errors as
    /// `InvalidData` with the line in the message), for crates whose own error type has one
    /// I/O variant and that use this crate's writers.
    pub fn into_io(self) -> (PathBuf, std::io::Error) {
        match self {
            Error::Io { path, source } => (path, source),
            Error::Json { path, line, source } => {
                (path, std::io::Error::new(std::io::ErrorKind::InvalidData, format!("line {line}: {source}")))
            }
            Error::Utf8 { path, line } => {
                (path, std::io::Error::new(std::io::ErrorKind::InvalidData, format!("line {line}: not UTF-8 text")))
            }
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
