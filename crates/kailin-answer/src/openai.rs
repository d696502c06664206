//! The client of any OpenAI-compatible chat-completions server (vLLM, llama.cpp's server,
//! Ollama, hosted APIs): timeouts, retries with exponential backoff and jitter on 5xx, 429,
//! timeouts and network errors (honouring `Retry-After`), bounded concurrency, lenient
//! response parsing, token accounting, and a response cache keyed by the request.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BlockingRetryable, ExponentialBuilder};
use kailin_core::{CptRecord, Provenance};
use kailin_lm::PromptTemplate;
use serde::Serialize;

use crate::answer::{Answer, AnswerGenerator, Usage, default_template, render_prompt};
use crate::cache::ResponseCache;
use crate::error::{Error, Result};

/// Settings of [`OpenAiClient`]; build one with [`OpenAiClient::builder`].
#[derive(Clone, PartialEq)]
pub struct OpenAiOptions {
    /// The API base (`http://127.0.0.1:8080/v1`); `/chat/completions` is appended unless the
    /// URL already ends with it.
    pub base_url: String,
    /// The model name the server knows.
    pub model: String,
    /// The bearer token; never printed or logged.
    pub api_key: Option<String>,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Retries after the first attempt (transient failures only).
    pub max_retries: usize,
    /// First backoff delay (doubled each retry, with jitter).
    pub min_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured: a server that asks for a longer wait ends the request
    /// with [`Error::WaitTooLong`] instead of stalling the run.
    pub max_retry_after: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// Most tokens per answer.
    pub max_tokens: usize,
    /// Seed sent to servers that honour one.
    pub seed: Option<u64>,
    /// A system turn before the prompt.
    pub system: Option<String>,
}

impl std::fmt::Debug for OpenAiOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiOptions")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl OpenAiOptions {
    /// Defaults for `base_url` and `model`: 120 s timeout, 6 retries from 0.5 s up to 30 s,
    /// `Retry-After` up to 30 s, 4 in flight, temperature 0, 512 tokens.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiOptions {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(120),
            max_retries: 6,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(30),
            concurrency: 4,
            temperature: 0.0,
            max_tokens: 512,
            seed: None,
            system: None,
        }
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
        self.options.api_key = Some(key.into());
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

    /// Checks the options and opens the cache. The key is registered with
    /// [`kailin_core::register_secret`], so no message of this process shows it; an endpoint
    /// with credentials in it (`http://user:password@host/v1`) is refused.
    pub fn build(self) -> Result<OpenAiClient> {
        let o = &self.options;
        if let Some(key) = &o.api_key {
            kailin_core::register_secret(key);
        }
        let (shown, had_credentials) = kailin_core::strip_url_credentials(&o.base_url);
        if had_credentials {
            return Err(Error::Options(format!(
                "the endpoint {shown} carries credentials in its URL (user:password@), which would be sent and \
                 printed in every message; remove them and give the key through the API-key variable (--api-key-env)"
            )));
        }
        if !(o.base_url.starts_with("http://") || o.base_url.starts_with("https://")) {
            return Err(Error::Options(format!(
                "the endpoint {:?} is not an http:// or https:// URL",
                kailin_core::redact(&o.base_url)
            )));
        }
        if o.model.trim().is_empty() {
            return Err(Error::Options("the endpoint needs a model name".into()));
        }
        if o.concurrency == 0 || o.max_tokens == 0 || o.timeout.is_zero() {
            return Err(Error::Options("concurrency, max_tokens and the timeout must be positive".into()));
        }
        if !(o.temperature.is_finite() && o.temperature >= 0.0) {
            return Err(Error::Options("temperature must be a finite number ≥ 0".into()));
        }
        let url = if o.base_url.trim_end_matches('/').ends_with("/chat/completions") {
            o.base_url.trim_end_matches('/').to_owned()
        } else {
            format!("{}/chat/completions", o.base_url.trim_end_matches('/'))
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(o.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("kailin/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let cache = self.cache.map(ResponseCache::open).transpose()?;
        Ok(OpenAiClient {
            options: self.options,
            template: self.template,
            url,
            agent,
            cache,
            counters: Counters::default(),
        })
    }
}

/// Counts of a client's work since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClientStats {
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Retries among them.
    pub retries: u64,
    /// Answers served from the cache.
    pub cached: u64,
    /// Answers received.
    pub answered: u64,
    /// Prompt tokens the server reported.
    pub prompt_tokens: u64,
    /// Completion tokens the server reported.
    pub completion_tokens: u64,
    /// Answers whose response carried no token counts.
    pub without_usage: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    cached: AtomicU64,
    answered: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    without_usage: AtomicU64,
}

/// A client of an OpenAI-compatible chat-completions endpoint, as an [`AnswerGenerator`].
#[derive(Debug)]
pub struct OpenAiClient {
    options: OpenAiOptions,
    template: PromptTemplate,
    url: String,
    agent: ureq::Agent,
    cache: Option<ResponseCache>,
    counters: Counters,
}

/// How one attempt failed.
#[derive(Debug)]
enum Failure {
    /// Worth retrying, after at least `retry_after` if the server said so.
    Transient { why: String, retry_after: Option<Duration> },
    /// Not worth retrying.
    Fatal(Error),
}

impl OpenAiClient {
    /// A client of `base_url` serving `model`, with the default prompt and options.
    pub fn builder(base_url: impl Into<String>, model: impl Into<String>) -> OpenAiClientBuilder {
        OpenAiClientBuilder { options: OpenAiOptions::new(base_url, model), template: default_template(), cache: None }
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
        &self.url
    }

    /// What the client has done so far.
    pub fn stats(&self) -> ClientStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClientStats {
            requests: get(&c.requests),
            retries: get(&c.retries),
            cached: get(&c.cached),
            answered: get(&c.answered),
            prompt_tokens: get(&c.prompt_tokens),
            completion_tokens: get(&c.completion_tokens),
            without_usage: get(&c.without_usage),
        }
    }

    /// The request body for `record`.
    pub fn request(&self, record: &CptRecord) -> Result<serde_json::Value> {
        let o = &self.options;
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &o.system {
            messages.push(serde_json::json!({"role": "system", "content": system}));
        }
        messages.push(serde_json::json!({"role": "user", "content": render_prompt(&self.template, record)?}));
        let mut body = serde_json::json!({
            "model": o.model,
            "messages": messages,
            "temperature": o.temperature,
            "max_tokens": o.max_tokens,
        });
        if let Some(seed) = o.seed {
            body["seed"] = seed.into();
        }
        Ok(body)
    }

    /// Answers one record: from the cache, or by request with retries.
    fn answer_one(&self, record: &CptRecord) -> Result<Answer> {
        let body = self.request(record)?;
        if let Some(answer) = self.cache.as_ref().and_then(|c| c.get(&body)) {
            self.counters.cached.fetch_add(1, Ordering::Relaxed);
            return Ok(answer);
        }
        let o = &self.options;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(o.min_delay)
            .with_max_delay(o.max_delay)
            .with_max_times(o.max_retries)
            .with_jitter();
        // The server's Retry-After, in milliseconds, for the sleep that follows the failure.
        let hint = Arc::new(AtomicU64::new(0));
        let sleeper_hint = Arc::clone(&hint);
        let attempts = AtomicUsize::new(0);
        let text = serde_json::to_vec(&body).map_err(|e| Error::Options(format!("request body: {e}")))?;
        let result = (|| {
            attempts.fetch_add(1, Ordering::Relaxed);
            self.attempt(&text)
        })
        .retry(backoff)
        .sleep(move |delay: Duration| {
            let asked = Duration::from_millis(sleeper_hint.swap(0, Ordering::Relaxed));
            std::thread::sleep(delay.max(asked));
        })
        .when(|f: &Failure| match f {
            Failure::Transient { retry_after, .. } => {
                hint.store(retry_after.map_or(0, |d| d.as_millis() as u64), Ordering::Relaxed);
                true
            }
            Failure::Fatal(_) => false,
        })
        .notify(|f: &Failure, delay: Duration| {
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            if let Failure::Transient { why, retry_after } = f {
                // The wait the sleeper will really take: the backoff or the server's ask.
                let wait = retry_after.map_or(delay, |asked| delay.max(asked));
                tracing::warn!(record = %record.id, url = %self.url, retry_in = ?wait, "{why}; retrying");
            }
        })
        .call();
        match result {
            Ok(answer) => {
                let c = &self.counters;
                c.answered.fetch_add(1, Ordering::Relaxed);
                match answer.usage {
                    Some(u) => {
                        c.prompt_tokens.fetch_add(u.prompt_tokens, Ordering::Relaxed);
                        c.completion_tokens.fetch_add(u.completion_tokens, Ordering::Relaxed);
                    }
                    None => {
                        c.without_usage.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Some(cache) = &self.cache {
                    cache.put(&body, &answer)?;
                }
                Ok(answer)
            }
            Err(Failure::Fatal(e)) => Err(e),
            Err(Failure::Transient { why, .. }) => {
                Err(Error::GaveUp { url: self.url.clone(), attempts: attempts.load(Ordering::Relaxed), last: why })
            }
        }
    }

    /// One HTTP request.
    fn attempt(&self, body: &[u8]) -> std::result::Result<Answer, Failure> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let mut request = self.agent.post(&self.url).header("Content-Type", "application/json");
        if let Some(key) = &self.options.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut response = match request.send(body) {
            Ok(r) => r,
            Err(e) => return Err(Failure::Transient { why: format!("request failed: {e}"), retry_after: None }),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(1e9)));
        let text = match response.body_mut().read_to_string() {
            Ok(t) => t,
            Err(e) => return Err(Failure::Transient { why: format!("reading the response: {e}"), retry_after: None }),
        };
        let message = || server_message(&text, self.options.api_key.as_deref());
        let url = self.url.clone();
        match status {
            200..=299 => parse_response(&text).map_err(|detail| Failure::Transient {
                why: format!("HTTP {status} with a body that is not a chat completion: {detail}"),
                retry_after: None,
            }),
            401 | 403 => Err(Failure::Fatal(Error::Unauthorized {
                url,
                status,
                message: message(),
                key_sent: self.options.api_key.is_some(),
            })),
            404 | 405 => Err(Failure::Fatal(Error::NotCompatible {
                url,
                detail: format!(
                    "HTTP {status} ({}); the endpoint should be an OpenAI-compatible API base such as http://host:port/v1",
                    message()
                ),
            })),
            408 | 429 | 500..=599 => match retry_after {
                Some(asked) if asked > self.options.max_retry_after => {
                    Err(Failure::Fatal(Error::WaitTooLong { url, status, asked, cap: self.options.max_retry_after }))
                }
                _ => Err(Failure::Transient { why: format!("HTTP {status}: {}", message()), retry_after }),
            },
            _ => Err(Failure::Fatal(Error::Rejected { url, status, message: message() })),
        }
    }
}

/// The server's error message: `error.message` of a JSON body, or the body's start; cut to
/// 200 characters and redacted (a server may echo the request's headers, the key with them).
fn server_message(body: &str, key: Option<&str>) -> String {
    let parsed = serde_json::from_str::<serde_json::Value>(body).ok();
    let message =
        parsed.as_ref().and_then(|v| v.pointer("/error/message").or_else(|| v.get("error"))).map(|m| match m {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    let mut text = message.unwrap_or_else(|| body.to_owned());
    if let Some(key) = key.filter(|k| !k.is_empty()) {
        text = text.replace(key, kailin_core::REDACTED);
    }
    let text = kailin_core::redact(&text);
    let mut cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// The answer in a chat-completions response: `choices[0].message.content` (or a legacy
/// `choices[0].text`); `finish_reason` and `usage` when present and well-formed.
fn parse_response(body: &str) -> std::result::Result<Answer, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("not JSON ({e})"))?;
    let choice = v.pointer("/choices/0").ok_or("no choices[0]")?;
    let text = choice
        .pointer("/message/content")
        .and_then(|c| c.as_str())
        .or_else(|| choice.get("text").and_then(|t| t.as_str()))
        .ok_or("choices[0] has no message.content")?;
    let finish_reason =
        choice.get("finish_reason").and_then(|f| f.as_str()).filter(|f| !f.is_empty()).map(str::to_owned);
    let usage = v.get("usage").and_then(|u| {
        Some(Usage {
            prompt_tokens: u.get("prompt_tokens")?.as_u64()?,
            completion_tokens: u.get("completion_tokens")?.as_u64()?,
        })
    });
    Ok(Answer { text: text.to_owned(), finish_reason, usage, cached: false })
}

impl AnswerGenerator for OpenAiClient {
    fn provenance(&self) -> Provenance {
        Provenance {
            agent: "answer-agent".into(),
            model: Some(self.options.model.clone()),
            seed: self.options.seed,
            detail: Some(format!("prompt={} backend=openai-compatible", self.template.version())),
        }
    }

    fn answer(&self, records: &[CptRecord]) -> Vec<Result<Answer>> {
        let slots: Vec<Mutex<Option<Result<Answer>>>> = records.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let workers = self.options.concurrency.min(records.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(record) = records.get(i) else { break };
                        let result = self.answer_one(record);
                        if let Ok(mut slot) = slots[i].lock() {
                            *slot = Some(result);
                        }
                    }
                });
            }
        });
        slots
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| Err(Error::Options("a worker thread panicked".into())))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read_leniently() {
        let a = parse_response(r#"{"choices":[{"message":{"content":"Yes."},"finish_reason":""}]}"#).unwrap();
        assert_eq!((a.text.as_str(), a.finish_reason, a.usage), ("Yes.", None, None));
        let a = parse_response(
            r#"{"choices":[{"text":"No.","finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
        )
        .unwrap();
        assert_eq!(a.usage, Some(Usage { prompt_tokens: 3, completion_tokens: 2 }));
        assert_eq!(a.finish_reason.as_deref(), Some("length"));
        assert!(parse_response("<html>").is_err());
        assert!(parse_response(r#"{"choices":[]}"#).is_err());
        assert!(parse_response(r#"{"choices":[{"message":{"content":null}}]}"#).is_err());
    }

    #[test]
    fn the_key_is_never_in_debug_output() {
        let client = OpenAiClient::builder("http://127.0.0.1:9/v1", "m").api_key("sk-secret-123").build().unwrap();
        assert!(!format!("{client:?}").contains("sk-secret"));
        assert_eq!(client.url(), "http://127.0.0.1:9/v1/chat/completions");
        assert!(OpenAiClient::builder("ftp://x", "m").build().is_err());
        assert!(OpenAiClient::builder("http://x/v1", " ").build().is_err());
    }

    #[test]
    fn server_messages_are_extracted_redacted_and_cut() {
        assert_eq!(server_message(r#"{"error":{"message":"bad key"}}"#, None), "bad key");
        assert_eq!(server_message(r#"{"error":"nope"}"#, None), "nope");
        assert_eq!(server_message("plain", None), "plain");
        let echoed = server_message(
            r#"{"error":{"message":"bad key: Bearer sk-zz-echo-1 and sk-zz-echo-1"}}"#,
            Some("sk-zz-echo-1"),
        );
        assert!(!echoed.contains("sk-zz-echo-1"), "{echoed}");
        let long = server_message(&"x".repeat(5000), None);
        assert!(long.chars().count() == 201 && long.ends_with('…'));
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_showing_them() {
        let err = OpenAiClient::builder("http://user:hunter22@127.0.0.1:9/v1", "m").build().unwrap_err().to_string();
        assert!(err.contains("credentials") && !err.contains("hunter22") && err.contains("--api-key-env"), "{err}");
    }
}
