//! The crate's error type.

use std::path::PathBuf;

/// Errors of the answer agents. The client's messages never contain the API key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the credentials (401 or 403): not retried.
    #[error(
        "{url}: the server refused {} (HTTP {status}): {message}. {}",
        if *key_sent { "the API key" } else { "the request without an API key" },
        if *key_sent { "Check the key in OPENAI_API_KEY (or the variable --api-key-env names)" }
        else { "Set OPENAI_API_KEY (or the variable --api-key-env names) to the server's key" }
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
    },
    /// The server asked for a wait (`Retry-After`) longer than the client accepts.
    #[error(
        "{url}: the server asked to wait {} s before retrying (HTTP {status}, Retry-After), more than the {} s accepted \
         (--max-retry-after); try later, or raise the limit",
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
    },
    /// The endpoint does not speak the OpenAI chat-completions protocol.
    #[error("{url} is not an OpenAI-compatible chat-completions endpoint: {detail}")]
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
    /// The response cache could not be read or written.
    #[error("response cache {}: {source}", path.display())]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Another record of the same local batch failed, so this one has no answer either.
    #[error("another record of the same batch failed: {0}")]
    Batch(String),
    /// An option out of its range.
    #[error("invalid answer-agent option: {0}")]
    Options(String),
    /// The local model, its tokenizer or the prompt template failed.
    #[error(transparent)]
    Lm(#[from] kailin_lm::Error),
    /// Reading or writing records failed.
    #[error(transparent)]
    Records(#[from] kailin_core::Error),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
