//! The crate's error type.

use std::path::PathBuf;

/// Errors of model files. A model file is untrusted input: every claim it makes (counts,
/// lengths, offsets, shapes) is checked against the bytes actually present before use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened or mapped.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (in the message, so not repeated as a source).
        error: std::io::Error,
    },
    /// The GGUF data is malformed: truncated, lying about a size, or inconsistent.
    #[error("{origin}: invalid GGUF at byte {offset}: {message}")]
    Gguf {
        /// The file (or `<memory>`).
        origin: String,
        /// Where the problem was found.
        offset: u64,
        /// What was wrong.
        message: String,
    },
    /// A tensor type this crate cannot dequantise.
    #[error("tensor {tensor:?}: unsupported GGML type {kind}")]
    UnsupportedType {
        /// The tensor.
        tensor: String,
        /// The GGML type id.
        kind: u32,
    },
    /// A weight has another number of values than the architecture needs.
    #[error("weight {tensor:?}: expected shape {expected:?}, got {got} values")]
    Shape {
        /// The weight.
        tensor: String,
        /// The shape the architecture needs.
        expected: Vec<usize>,
        /// Number of values supplied.
        got: usize,
    },
    /// A sequence longer than the model was built for.
    #[error("sequence of {len} tokens exceeds the model's {max} positions")]
    TooLong {
        /// Tokens given.
        len: usize,
        /// Positions supported.
        max: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token id {token} is outside the vocabulary of {vocab}")]
    TokenOutOfRange {
        /// The offending id.
        token: i64,
        /// Vocabulary size.
        vocab: usize,
    },
    /// A KV cache made for a model of another depth.
    #[error("KV cache holds {cache} layers, the model has {model}")]
    CacheMismatch {
        /// Layers of the cache.
        cache: usize,
        /// Layers of the model.
        model: usize,
    },
    /// A pair to score has an empty prompt or continuation.
    #[error("pair {pair} to score has an empty prompt or continuation")]
    EmptyScore {
        /// Index of the pair.
        pair: usize,
    },
    /// A model could not be written out.
    #[error("export: {0}")]
    Export(String),
    /// LoRA hyper-parameters that cannot be used, or adapters attached twice.
    #[error("LoRA: {0}")]
    Lora(String),
    /// A compute device cannot be used (no driver, no GPU).
    #[error("{0}")]
    Device(String),
    /// A model configuration (`config.json`, an index file) is malformed or unsupported.
    #[error("{origin}: {message}")]
    Config {
        /// The file.
        origin: String,
        /// What was wrong.
        message: String,
    },
    /// A safetensors file is malformed, or its tensors do not fit the model.
    #[error("{origin}: invalid safetensors: {message}")]
    Safetensors {
        /// The file.
        origin: String,
        /// What was wrong.
        message: String,
    },
    /// The tokenizer could not be built or failed on an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A chat template failed to compile or render.
    #[error("chat template: {0}")]
    Template(String),
    /// Per-sequence state (a KV cache's padding, samplers) for another number of sequences
    /// than the batch has.
    #[error("{what} is for {expected} sequences, the batch has {batch}")]
    BatchMismatch {
        /// What holds the per-sequence state.
        what: &'static str,
        /// Sequences it is for.
        expected: usize,
        /// Sequences in the batch.
        batch: usize,
    },
    /// Segment ids of packed sequences ([`Llama::forward_segments`](crate::Llama::forward_segments))
    /// whose number is not one per token.
    #[error("{got} segment ids for a batch of {expected} tokens")]
    Segments {
        /// Tokens in the batch (`batch · seq`).
        expected: usize,
        /// Segment ids given.
        got: usize,
    },
    /// The tensor backend failed (e.g. returning data to the host).
    #[error("backend: {0}")]
    Backend(String),
    /// No tensor of that name.
    #[error("no tensor named {0:?}")]
    MissingTensor(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<kailin_core::Error> for Error {
    fn from(e: kailin_core::Error) -> Self {
        let (path, error) = e.into_io();
        Error::Io { path, error }
    }
}
