//! The answer agent on any OpenAI-compatible chat-completions server: the prompt template
//! over `kailin-lm`'s [`ServedModel`] (retries, cache, accounting live there, shared by every
//! served role).

use kailin_core::{CptRecord, Provenance};
use kailin_lm::{ChatMessage, ChatRequest, ClientStats, Hints, PromptTemplate, ServedModel, ServedOptions};

use crate::answer::{Answer, AnswerGenerator, default_template, render_prompt};
use crate::error::{Error, Result};

/// Settings of [`OpenAiClient`]; build one with [`OpenAiClient::builder`].
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiOptions {
    /// The server, the model, the key, timeouts, retries and concurrency.
    pub served: ServedOptions,
    /// Sampling temperature.
    pub temperature: f32,
    /// Most tokens per answer.
    pub max_tokens: usize,
    /// Seed sent to servers that honour one.
    pub seed: Option<u64>,
    /// A system turn before the prompt.
    pub system: Option<String>,
}

impl OpenAiOptions {
    /// Defaults for `base_url` and `model` ([`ServedOptions::new`]): temperature 0, 512 tokens.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        let mut served = ServedOptions::new(base_url, model);
        served.hints = Hints {
            api_key: "OPENAI_API_KEY (or the variable --api-key-env names)".into(),
            max_retry_after: "--max-retry-after".into(),
        };
        OpenAiOptions { served, temperature: 0.0, max_tokens: 512, seed: None, system: None }
    }
}

/// Builds an [`OpenAiClient`].
#[derive(Debug)]
pub struct OpenAiClientBuilder {
    options: OpenAiOptions,
    template: PromptTemplate,
    cache: Option<std::path::PathBuf>,
}

impl OpenAiClientBuilder {
    /// The bearer token.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.options.served.api_key = Some(key.into());
        self
    }

    /// All options at once (`base_url` and `model` included).
    pub fn options(mut self, options: OpenAiOptions) -> Self {
        self.options = options;
        self
    }

    /// Changes the options in place.
    pub fn configure(mut self, f: impl FnOnce(&mut OpenAiOptions)) -> Self {
        f(&mut self.options);
        self
    }

    /// The prompt template.
    pub fn template(mut self, template: PromptTemplate) -> Self {
        self.template = template;
        self
    }

    /// Caches responses in `dir`: a request already answered is not sent again.
    pub fn cache(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.cache = Some(dir.into());
        self
    }

    /// Checks the options and opens the cache ([`kailin_lm::ServedModelBuilder::build`]: the
    /// key is registered as a secret; credentials in the URL are refused).
    pub fn build(self) -> Result<OpenAiClient> {
        let o = &self.options;
        if o.max_tokens == 0 {
            return Err(Error::Options("max_tokens must be positive".into()));
        }
        if !(o.temperature.is_finite() && o.temperature >= 0.0) {
            return Err(Error::Options("temperature must be a finite number ≥ 0".into()));
        }
        let mut builder = ServedModel::builder("", "").options(o.served.clone());
        if let Some(dir) = self.cache {
            builder = builder.cache(dir);
        }
        Ok(OpenAiClient { served: builder.build()?, options: self.options, template: self.template })
    }
}

/// A client of an OpenAI-compatible chat-completions endpoint, as an [`AnswerGenerator`].
#[derive(Debug)]
pub struct OpenAiClient {
    served: ServedModel,
    options: OpenAiOptions,
    template: PromptTemplate,
}

impl OpenAiClient {
    /// A client of `base_url` serving `model`, with the default prompt and options.
    pub fn builder(base_url: impl Into<String>, model: impl Into<String>) -> OpenAiClientBuilder {
        OpenAiClientBuilder { options: OpenAiOptions::new(base_url, model), template: default_template(), cache: None }
    }

    /// An answer agent on an already built served model (shared settings, cache and
    /// counters), with `options`' sampling settings (its `served` part is not used).
    pub fn on(served: ServedModel, options: OpenAiOptions, template: PromptTemplate) -> Self {
        OpenAiClient { served, options, template }
    }

    /// A builder for `model` at `$OPENAI_BASE_URL`, with `$OPENAI_API_KEY` when it is set.
    pub fn from_env(model: impl Into<String>) -> Result<OpenAiClientBuilder> {
        let base = std::env::var("OPENAI_BASE_URL")
            .map_err(|_| Error::Options("OPENAI_BASE_URL is not set (e.g. http://127.0.0.1:8080/v1)".into()))?;
        let builder = Self::builder(base, model);
        Ok(match std::env::var("OPENAI_API_KEY") {
            Ok(key) if !key.is_empty() => builder.api_key(key),
            _ => builder,
        })
    }

    /// The chat-completions URL requests go to.
    pub fn url(&self) -> &str {
        self.served.url()
    }

    /// The served model underneath (its preflight, its model list).
    pub fn served(&self) -> &ServedModel {
        &self.served
    }

    /// What the client has done so far.
    pub fn stats(&self) -> ClientStats {
        self.served.stats()
    }

    /// The chat request for `record`.
    pub fn chat_request(&self, record: &CptRecord) -> Result<ChatRequest> {
        let o = &self.options;
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &o.system {
            messages.push(ChatMessage::system(system));
        }
        messages.push(ChatMessage::user(render_prompt(&self.template, record)?));
        let mut request = ChatRequest::new(messages, o.max_tokens);
        request.temperature = o.temperature;
        request.seed = o.seed;
        Ok(request)
    }

    /// The request body for `record` (what the cache keys).
    pub fn request(&self, record: &CptRecord) -> Result<serde_json::Value> {
        Ok(self.served.body(&self.chat_request(record)?))
    }
}

impl AnswerGenerator for OpenAiClient {
    fn provenance(&self) -> Provenance {
        Provenance {
            agent: "answer-agent".into(),
            model: Some(self.options.served.model.clone()),
            seed: self.options.seed,
            detail: Some(format!("prompt={} backend=openai-compatible", self.template.version())),
        }
    }

    fn answer(&self, records: &[CptRecord]) -> Vec<Result<Answer>> {
        let requests: Vec<Result<ChatRequest>> = records.iter().map(|r| self.chat_request(r)).collect();
        let ok: Vec<ChatRequest> = requests.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
        let mut replies = self.served.chat_all(&ok).into_iter();
        requests
            .into_iter()
            .map(|r| match r {
                Ok(_) => replies
                    .next()
                    .unwrap_or_else(|| Err(kailin_lm::Error::Served("missing reply".into())))
                    .map_err(Error::from),
                Err(e) => Err(e),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_never_in_debug_output() {
        let client = OpenAiClient::builder("http://127.0.0.1:9/v1", "m").api_key("sk-secret-123").build().unwrap();
        assert!(!format!("{client:?}").contains("sk-secret"));
        assert_eq!(client.url(), "http://127.0.0.1:9/v1/chat/completions");
        assert!(OpenAiClient::builder("ftp://x", "m").build().is_err());
        assert!(OpenAiClient::builder("http://x/v1", " ").build().is_err());
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_showing_them() {
        let err = OpenAiClient::builder("http://user:hunter22@127.0.0.1:9/v1", "m").build().unwrap_err().to_string();
        assert!(err.contains("credentials") && !err.contains("hunter22") && err.contains("--api-key-env"), "{err}");
    }
}
