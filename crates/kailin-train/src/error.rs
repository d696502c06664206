//! The crate's error type.

use std::path::PathBuf;

/// Errors of training: bad datasets and options, numerical failure, checkpoints that do not
/// fit, and the model runtime's own errors. Each names what and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A dataset line is not a record of the expected shape (names file and line).
    #[error(transparent)]
    Record(#[from] kailin_core::Error),
    /// A dataset with no records.
    #[error("{}: the dataset has no records", path.display())]
    EmptyDataset {
        /// The file.
        path: PathBuf,
    },
    /// A record that cannot be trained on (an empty completion, a chosen equal to its rejected…).
    #[error("{}:{line}: {reason}", path.display())]
    BadRecord {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A record longer than the context window, when truncation was turned off.
    #[error("{}:{line}: {tokens} tokens, longer than the context window of {window} (allow truncation to train on its first part)", path.display())]
    TooLong {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Its length in tokens.
        tokens: usize,
        /// The longest sequence trained on.
        window: usize,
    },
    /// Options that cannot work together or make no sense.
    #[error("invalid training options: {0}")]
    Options(String),
    /// The loss or the gradients stopped being finite; the last checkpoint written is kept.
    #[error("step {step}: the {what} is {value} (not finite); training stopped, the last good checkpoint is kept")]
    NonFinite {
        /// Optimiser step (1-based).
        step: u64,
        /// `loss` or `gradient norm`.
        what: &'static str,
        /// The value.
        value: f64,
    },
    /// A checkpoint that is incomplete, corrupt, or from another model or run.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// The model runtime failed (loading, tokenising, a forward pass).
    #[error(transparent)]
    Lm(#[from] kailin_lm::Error),
    /// A retrieval pair the encoder cannot take (a text with no token, say).
    #[error("pair {index} (0-based): {reason}")]
    Pair {
        /// Its position in the pairs given.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The sentence encoder failed (tokenising a pair's text, a forward pass, its weights).
    #[error(transparent)]
    Retrieval(#[from] kailin_retrieval::Error),
    /// The tensor backend failed (e.g. returning data to the host).
    #[error("backend: {0}")]
    Backend(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
