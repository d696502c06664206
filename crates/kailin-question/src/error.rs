//! The crate's error type.

/// Errors of the question agents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option out of its range.
    #[error("invalid question-generation option: {0}")]
    Options(String),
    /// The language model, its tokenizer or a prompt template failed.
    #[error(transparent)]
    Lm(#[from] kailin_lm::Error),
    /// Reading or writing records failed.
    #[error(transparent)]
    Record(#[from] kailin_core::Error),
    /// A BioASQ file could not be read.
    #[error(transparent)]
    Corpus(#[from] kailin_corpus::Error),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
