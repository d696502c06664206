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
    /// The server refused the credentials (401 or 403): not retried.
    #[error(
        "{url}: the server refused {} (HTTP {status}): {message}. {} {hint}",
        if *key_sent { "the API key" } else { "the request without an API key" },
        if *key_sent { "Check the key in" } else { "Set the server's key in" }
    )]
    Unauthorized {
        /// The endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What the server said (redacted).
        message: String,
        /// Whether a key was sent.
        key_sent: bool,
        /// The setting that names the key's variable.
        hint: String,
    },
    /// The server asked for a wait (`Retry-After`) longer than the client accepts.
    #[error(
        "{url}: the server asked to wait {} s before retrying (HTTP {status}, Retry-After), more than the {} s accepted \
         ({hint}); try later, or raise the limit",
        asked.as_secs_f64(), cap.as_secs_f64()
    )]
    WaitTooLong {
        /// The endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The wait asked for.
        asked: std::time::Duration,
        /// The longest wait accepted.
        cap: std::time::Duration,
        /// The setting that bounds the wait.
        hint: String,
    },
    /// The endpoint does not speak the OpenAI chat-completions protocol.
    #[error("{url} is not an OpenAI-compatible endpoint: {detail}")]
    NotCompatible {
        /// The endpoint.
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// The server rejected the request (a 4xx other than 401, 403, 404, 408 and 429): not
    /// retried.
    #[error("{url}: the server rejected the request (HTTP {status}): {message}")]
    Rejected {
        /// The endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What the server said.
        message: String,
    },
    /// Every attempt failed with a transient error (5xx, 429, timeout, network).
    #[error("{url}: gave up after {attempts} attempts; the last: {last}")]
    GaveUp {
        /// The endpoint.
        url: String,
        /// Attempts made.
        attempts: usize,
        /// The last failure.
        last: String,
    },
    /// The server could not be reached.
    #[error("{url}: no server answers ({detail}); start it, or fix the endpoint")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// Why.
        detail: String,
    },
    /// The server does not list the model.
    #[error("{url} does not serve the model {model:?}; it lists {listed:?}")]
    NotServed {
        /// The model list's URL.
        url: String,
        /// The model asked for.
        model: String,
        /// The models the server lists.
        listed: Vec<String>,
    },
    /// A served model's option out of its range.
    #[error("served model: {0}")]
    Served(String),
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
