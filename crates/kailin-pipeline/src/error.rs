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
    /// A plan reached a stage that never ran: the stages after it cannot be keyed (they all
    /// run). Not a failure.
    #[error("stage {stage} has not run: it and the stages after it will run")]
    Planned {
        /// The stage.
        stage: String,
    },
    /// A served role cannot be used: its server is down, does not list the model, refuses
    /// the key; found before any long stage runs.
    #[error("backend {role} ({endpoint}, model {model:?}): {source}. Fix: {fix}")]
    Backend {
        /// The role (`answer`, `judge`…).
        role: String,
        /// Its endpoint.
        endpoint: String,
        /// Its model.
        model: String,
        /// What went wrong.
        source: Box<kailin_lm::Error>,
        /// What to do.
        fix: String,
    },
    /// A shard process cannot run its stage yet (it is not per-document, or the stages before
    /// it are unfinished): a refusal, not a success.
    #[error("{message}")]
    NotReady {
        /// The stage.
        stage: String,
        /// Why, and what to run first.
        message: String,
    },
    /// The run directory was refused (not made by a run, in use by another run, the home
    /// directory…), before anything was written.
    #[error(transparent)]
    Refused(kailin_core::Error),
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

impl Error {
    /// A `kailin-core` error: a refusal as [`Error::Refused`], a file error as [`Error::Io`].
    pub(crate) fn from_core(e: kailin_core::Error) -> Error {
        match e {
            e @ kailin_core::Error::Refused { .. } => Error::Refused(e),
            kailin_core::Error::Io { path, source } => Error::Io { path, source },
            other => Error::Lib(Box::new(other)),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
