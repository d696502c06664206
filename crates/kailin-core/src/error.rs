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
    /// A line is not a JSON record of the expected shape (the message names the file's line,
    /// not serde's position inside the record).
    #[error("{}:{line}: {}", path.display(), json_message(source))]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// An output was refused before anything was written: it is an input, a directory another
    /// command or person made, in use by another process…
    #[error("{}: {reason}", path.display())]
    Refused {
        /// The path refused.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// A record's id repeats an earlier record's where ids must be unique.
    #[error("{}:{line}: id {id:?} repeats line {first} (ids must be unique)", path.display())]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// 1-based line of the repeat.
        line: u64,
        /// The id.
        id: String,
        /// The line that had it first.
        first: u64,
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
            Error::Json { path, line, source } => (
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("line {line}: {}", json_message(&source))),
            ),
            Error::Refused { path, reason } => (path, std::io::Error::other(reason)),
            Error::Duplicate { path, line, id, first } => (
                path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("line {line}: id {id:?} repeats line {first} (ids must be unique)"),
                ),
            ),
            Error::Utf8 { path, line } => {
                (path, std::io::Error::new(std::io::ErrorKind::InvalidData, format!("line {line}: not UTF-8 text")))
            }
        }
    }
}

/// serde's message without its " at line L column C" (a position inside the one-line record,
/// which the error's file line already locates).
pub fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) if text[at..].contains(" column ") => text[..at].to_owned(),
        _ => text,
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
