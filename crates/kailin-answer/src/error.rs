//! The crate's error type.

/// Errors of the answer agents. The client's messages never contain the API key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// One record could not be answered.
    #[error("record {record:?} (input line {line}): {source}")]
    Record {
        /// The record's id.
        record: String,
        /// Its 1-based position in the input.
        line: usize,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// Another record of the same local batch failed, so this one has no answer either.
    #[error("another record of the same batch failed: {0}")]
    Batch(String),
    /// An option out of its range.
    #[error("invalid answer-agent option: {0}")]
    Options(String),
    /// The local model, its tokenizer, the prompt template or the served model failed.
    #[error(transparent)]
    Lm(#[from] kailin_lm::Error),
    /// Reading or writing records failed.
    #[error(transparent)]
    Records(#[from] kailin_core::Error),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
