//! The crate's error type.

use std::path::PathBuf;

/// Errors of the pipeline. A stage's failure names the stage, what it was reading and what to
/// do; the stages before it stay finished.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is unknown, of the wrong type or out of range.
    #[error("{key}: {message}")]
    Config {
        /// The key (`section.key`), the preset or the file.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A file or directory the pipeline needs is missing.
    #[error("{what} {}: not found. {fix}", path.display())]
    Missing {
        /// What it is (`the MeSH file`, `the model`…).
        what: String,
        /// Where it was looked for.
        path: PathBuf,
        /// What to do.
        fix: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The run stopped where it was asked to (`--until`), or a shard process finished its
    /// part: not a failure.
    #[error("{message}")]
    Stopped {
        /// The stage it stopped before (or the sharded stage).
        stage: String,
        /// What happened and what to run next.
        message: String,
    },
    /// A library crate's error (inside a stage, wrapped in [`Error::Stage`]).
    #[error(transparent)]
    Lib(Box<dyn std::error::Error + Send + Sync>),
    /// A stage failed.
    #[error("stage {stage} failed on {input}: {source}. {fix}")]
    Stage {
        /// The stage.
        stage: String,
        /// What it was reading.
        input: String,
        /// What to do (finished stages are kept: rerun the same command after the fix).
        fix: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
