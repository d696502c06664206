//! The crate's error type, and the summary of records skipped with `skip_bad`.

use std::path::PathBuf;

/// Errors of the corpus readers; each names the file and the line (or record) at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened or read (a truncated `.gz` shows up here or as `Parse`).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Malformed content, or a record missing what it must have (an id, a text).
    #[error("{}{}: {message}", path.display(), at_line(*line))]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem (for JSON documents, the line serde_json reports); 0
        /// when the problem has no line (the message then names the record).
        line: u64,
        /// What was wrong.
        message: String,
    },
    /// Malformed XML, located by byte offset (XML has no lines worth counting).
    #[error("{}: byte {byte}: {message}", path.display())]
    Xml {
        /// The file.
        path: PathBuf,
        /// 0-based byte offset in the (decompressed) XML.
        byte: u64,
        /// What was wrong.
        message: String,
    },
    /// An input path that holds nothing to read: an empty directory, a directory with no file
    /// of a recognised format, or one mixing formats without one being named.
    #[error("{}: {message}", path.display())]
    Input {
        /// The path given.
        path: PathBuf,
        /// What was wrong, and what to do.
        message: String,
    },
    /// A file-name pattern that is not a glob, or that matches none of the files it selects
    /// from.
    #[error("pattern {pattern:?}: {message}")]
    Pattern {
        /// The pattern given.
        pattern: String,
        /// What is wrong.
        message: String,
    },
    /// A record file of our own (JSONL) failed.
    #[error(transparent)]
    Core(#[from] kailin_core::Error),
}

/// `:LINE` for a line number, nothing for 0 (no line).
fn at_line(line: u64) -> String {
    if line == 0 { String::new() } else { format!(":{line}") }
}

impl Error {
    pub(crate) fn parse(path: &std::path::Path, line: u64, message: impl Into<String>) -> Self {
        Error::Parse { path: path.to_owned(), line, message: message.into() }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Records a reader skipped under `skip_bad`, with where and why: nothing is dropped silently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    /// `(line, reason)` of each skipped record, in file order.
    pub records: Vec<(u64, String)>,
}

impl Skipped {
    /// Number of skipped records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing was skipped.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Handles a bad record: with `skip_bad`, notes it and returns `Ok`; otherwise the error.
    pub(crate) fn handle(&mut self, skip_bad: bool, err: Error) -> Result<()> {
        if !skip_bad {
            return Err(err);
        }
        let line = match &err {
            Error::Parse { line, .. } => *line,
            _ => 0,
        };
        tracing::warn!("skipping bad record: {err}");
        self.records.push((line, err.to_string()));
        Ok(())
    }
}
