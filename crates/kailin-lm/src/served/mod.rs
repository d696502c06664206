//! Served language models: any OpenAI-compatible chat-completions server (vLLM, SGLang,
//! llama.cpp's server, Ollama, hosted APIs) as one client that every agent can use.
//!
//! - [`ServedModel`]: timeouts; retries with exponential backoff and jitter on 5xx, 408,
//!   429, timeouts, network errors and malformed bodies, honouring `Retry-After` up to a
//!   bound; 401/403 fail at once and 404/405 say the endpoint is not OpenAI-compatible;
//!   bounded concurrency with replies in request order; lenient parsing (missing `usage`,
//!   empty `finish_reason`, legacy `text`); token accounting ([`ClientStats`]); a
//!   [`ResponseCache`] keyed by the request, so a rerun sends no request already answered.
//! - [`ServedModel::preflight`]: `GET /models` before a long job, failing fast when the
//!   server is down or does not list the model.
//! - The key is registered with [`kailin_core::register_secret`] at build: no message of the
//!   process shows it.

mod cache;
mod client;

pub use cache::ResponseCache;
pub use client::{ChatRequest, ClientStats, Hints, Reply, ServedModel, ServedModelBuilder, ServedOptions, Usage};
