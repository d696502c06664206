//! The crate's error type.

use std::path::PathBuf;

/// Errors of the evaluation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The data could not be read (the reader's error names the file and the record).
    #[error(transparent)]
    Corpus(#[from] kailin_corpus::Error),
    /// The model failed.
    #[error(transparent)]
    Lm(#[from] kailin_lm::Error),
    /// A file of ours could not be written or read.
    #[error(transparent)]
    Core(#[from] kailin_core::Error),
    /// The data are inconsistent (a test PMID missing from the records, a label that is not
    /// yes/no/maybe, an empty test set).
    #[error("{}: {message}", path.display())]
    Data {
        /// The file at fault.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The model cannot tell the answers apart (two answers start with the same token).
    #[error("the model's tokenizer cannot tell the answers apart: {0}")]
    Answers(String),
    /// A prompt does not fit the model even with its context cut away.
    #[error("PubMedQA item {pmid}: the question alone is {tokens} tokens, over the model's {limit}")]
    TooLong {
        /// The item.
        pmid: String,
        /// Tokens of the shortest prompt.
        tokens: usize,
        /// The model's limit.
        limit: usize,
    },
    /// Two evaluations cannot be compared item by item.
    #[error("the evaluations cannot be compared: {0}")]
    Incomparable(String),
    /// Predictions do not cover the ground truth (the official script's assertion).
    #[error("{}: no prediction for PMID {pmid} (the official evaluation needs one for every test item)", path.display())]
    MissingPrediction {
        /// The predictions file.
        path: PathBuf,
        /// The first PMID without a prediction.
        pmid: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
