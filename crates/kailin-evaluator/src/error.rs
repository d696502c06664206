//! The crate's error type.

/// Errors of the evaluators: a corpus that cannot be indexed, a retriever or model that fails,
/// options out of range.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two corpus documents with one id: contexts would be ambiguous.
    #[error("corpus: document id {id:?} appears twice (records {first} and {second})")]
    DuplicateDocument {
        /// The id.
        id: String,
        /// 1-based position of its first record.
        first: usize,
        /// 1-based position of the repeat.
        second: usize,
    },
    /// A corpus document with an empty id.
    #[error("corpus: record {record} has an empty id")]
    EmptyId {
        /// 1-based position of the record.
        record: usize,
    },
    /// The retriever named a document the corpus does not hold: the store and the corpus
    /// disagree.
    #[error(
        "the retriever returned document {id:?}, which is not in the corpus (was the store built from another corpus?)"
    )]
    UnknownContext {
        /// The id.
        id: String,
    },
    /// A label (or a retrieval result) names a context document the corpus does not hold.
    #[error("context document {id:?} is not in the corpus (were the labels, or the store, made from another corpus?)")]
    MissingContext {
        /// The id.
        id: String,
    },
    /// A label or item names a document the corpus does not hold.
    #[error("document {id:?} is not in the corpus")]
    UnknownDocument {
        /// The id.
        id: String,
    },
    /// The retriever failed.
    #[error("retrieval: {0}")]
    Retrieval(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An option out of its range.
    #[error("invalid evaluator option: {0}")]
    Options(String),
    /// The MeSH hierarchy or its extractor failed.
    #[error(transparent)]
    Mesh(#[from] kailin_mesh::Error),
    /// The language model failed.
    #[error(transparent)]
    Lm(#[from] kailin_lm::Error),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] kailin_train::Error),
    /// Reading or writing records failed.
    #[error(transparent)]
    Record(#[from] kailin_core::Error),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
