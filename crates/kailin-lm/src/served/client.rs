//! The transport: one chat-completions request with retries, a cache and counters.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BlockingRetryable, ExponentialBuilder};
use serde::{Deserialize, Serialize};

use super::cache::ResponseCache;
use crate::chat::ChatMessage;
use crate::error::{Error, Result};

/// Where a message tells the user to look: the setting that names the API key's variable and
/// the one that bounds `Retry-After` (a command-line flag, a configuration key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hints {
    /// The setting that names the API key's variable.
    pub api_key: String,
    /// The setting that bounds `Retry-After`.
    pub max_retry_after: String,
}

impl Default for Hints {
    fn default() -> Self {
        Hints { api_key: "OPENAI_API_KEY".into(), max_retry_after: "the Retry-After limit".into() }
    }
}

/// Settings of a [`ServedModel`]; build one with [`ServedModel::builder`].
#[derive(Clone, PartialEq)]
pub struct ServedOptions {
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
    /// What messages name as the settings to fix.
    pub hints: Hints,
}

impl std::fmt::Debug for ServedOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedOptions")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl ServedOptions {
    /// Defaults for `base_url` and `model`: 120 s timeout, 6 retries from 0.5 s up to 30 s,
    /// `Retry-After` up to 30 s, 4 in flight.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        ServedOptions {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(120),
            max_retries: 6,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(30),
            concurrency: 4,
            hints: Hints::default(),
        }
    }
}

/// One chat request: the messages and the sampling settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatRequest {
    /// The turns.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature (0: greedy).
    pub temperature: f32,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Nucleus sampling, when set.
    pub top_p: Option<f32>,
    /// Seed sent to servers that honour one.
    pub seed: Option<u64>,
    /// Ask for the most likely first tokens with their log-probabilities (`logprobs`).
    pub top_logprobs: Option<usize>,
}

impl ChatRequest {
    /// A greedy request of `max_tokens` for `messages`.
    pub fn new(messages: Vec<ChatMessage>, max_tokens: usize) -> Self {
        ChatRequest { messages, temperature: 0.0, max_tokens, top_p: None, seed: None, top_logprobs: None }
    }
}

/// Tokens a request cost, as the server or the tokenizer counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
}

/// One reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The text.
    pub text: String,
    /// Why generation ended, as the backend said (`stop`, `length`; servers may leave it out).
    pub finish_reason: Option<String>,
    /// Tokens, when the backend reported them.
    pub usage: Option<Usage>,
    /// Whether it came from the response cache (no request was made).
    #[serde(default)]
    pub cached: bool,
    /// The first generated token's most likely alternatives with their log-probabilities,
    /// when asked for and given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_logprobs: Vec<(String, f64)>,
}

/// Builds a [`ServedModel`].
#[derive(Debug)]
pub struct ServedModelBuilder {
    options: ServedOptions,
    cache: Option<std::path::PathBuf>,
}

impl ServedModelBuilder {
    /// The bearer token.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.options.api_key = Some(key.into());
        self
    }

    /// All options at once (`base_url` and `model` included).
    pub fn options(mut self, options: ServedOptions) -> Self {
        self.options = options;
        self
    }

    /// Changes the options in place.
    pub fn configure(mut self, f: impl FnOnce(&mut ServedOptions)) -> Self {
        f(&mut self.options);
        self
    }

    /// Caches replies in `dir`: a request already answered is not sent again.
    pub fn cache(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.cache = Some(dir.into());
        self
    }

    /// Checks the options and opens the cache. The key is registered with
    /// [`kailin_core::register_secret`], so no message of this process shows it; an endpoint
    /// with credentials in it (`http://user:password@host/v1`) is refused.
    ///
    /// Errors: [`Error::Served`] naming the option; [`Error::Io`] for the cache.
    pub fn build(self) -> Result<ServedModel> {
        let o = &self.options;
        if let Some(key) = &o.api_key {
            kailin_core::register_secret(key);
        }
        let (shown, had_credentials) = kailin_core::strip_url_credentials(&o.base_url);
        if had_credentials {
            return Err(Error::Served(format!(
                "the endpoint {shown} carries credentials in its URL (user:password@), which would be sent and \
                 printed in every message; remove them and give the key through the API-key variable ({})",
                o.hints.api_key
            )));
        }
        if !(o.base_url.starts_with("http://") || o.base_url.starts_with("https://")) {
            return Err(Error::Served(format!(
                "the endpoint {:?} is not an http:// or https:// URL",
                kailin_core::redact(&o.base_url)
            )));
        }
        if o.model.trim().is_empty() {
            return Err(Error::Served("the endpoint needs a model name".into()));
        }
        if o.concurrency == 0 || o.timeout.is_zero() {
            return Err(Error::Served("concurrency and the timeout must be positive".into()));
        }
        let base = o.base_url.trim_end_matches('/');
        let base = base.strip_suffix("/chat/completions").unwrap_or(base).to_owned();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(o.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("kailin/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let cache = self.cache.map(ResponseCache::open).transpose()?;
        Ok(ServedModel {
            url: format!("{base}/chat/completions"),
            models_url: format!("{base}/models"),
            options: self.options,
            agent,
            cache,
            counters: Counters::default(),
        })
    }
}

/// Counts of a client's work since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientStats {
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Retries among them.
    pub retries: u64,
    /// Replies served from the cache.
    pub cached: u64,
    /// Replies received.
    pub answered: u64,
    /// Prompt tokens the server reported.
    pub prompt_tokens: u64,
    /// Completion tokens the server reported.
    pub completion_tokens: u64,
    /// Replies whose response carried no token counts.
    pub without_usage: u64,
}

impl ClientStats {
    /// Adds another client's (or stage's) counts.
    pub fn add(&mut self, o: &ClientStats) {
        self.requests += o.requests;
        self.retries += o.retries;
        self.cached += o.cached;
        self.answered += o.answered;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.without_usage += o.without_usage;
    }
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

/// A model behind an OpenAI-compatible chat-completions endpoint.
#[derive(Debug)]
pub struct ServedModel {
    options: ServedOptions,
    url: String,
    models_url: String,
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

impl ServedModel {
    /// A client of `base_url` serving `model`, with the default options.
    pub fn builder(base_url: impl Into<String>, model: impl Into<String>) -> ServedModelBuilder {
        ServedModelBuilder { options: ServedOptions::new(base_url, model), cache: None }
    }

    /// The chat-completions URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The options it was built with.
    pub fn options(&self) -> &ServedOptions {
        &self.options
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

    /// The request body for `request`.
    pub fn body(&self, request: &ChatRequest) -> serde_json::Value {
        let mut body = serde_json::json!({
            "model": self.options.model,
            "messages": request.messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        });
        if let Some(seed) = request.seed {
            body["seed"] = seed.into();
        }
        if let Some(p) = request.top_p {
            body["top_p"] = p.into();
        }
        if let Some(n) = request.top_logprobs {
            body["logprobs"] = true.into();
            body["top_logprobs"] = n.into();
        }
        body
    }

    /// The models the server lists (`GET /models`), with one attempt.
    ///
    /// Errors: the server is unreachable or answers with an error ([`Error::Unreachable`],
    /// [`Error::Unauthorized`]), or its answer is not a model list ([`Error::NotCompatible`]).
    pub fn models(&self) -> Result<Vec<String>> {
        let mut request = self.agent.get(&self.models_url);
        if let Some(key) = &self.options.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let url = self.models_url.clone();
        let mut response = request.call().map_err(|e| Error::Unreachable {
            url: url.clone(),
            detail: kailin_core::redact(&e.to_string()).into_owned(),
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| Error::Unreachable { url: url.clone(), detail: e.to_string() })?;
        let message = || server_message(&text, self.options.api_key.as_deref());
        match status {
            200..=299 => {}
            401 | 403 => {
                return Err(Error::Unauthorized {
                    url,
                    status,
                    message: message(),
                    key_sent: self.options.api_key.is_some(),
                    hint: self.options.hints.api_key.clone(),
                });
            }
            _ => return Err(Error::NotCompatible { url, detail: format!("HTTP {status} ({})", message()) }),
        }
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::NotCompatible {
            url: url.clone(),
            detail: format!("the model list is not JSON ({e})"),
        })?;
        let list = v.get("data").or_else(|| v.get("models")).and_then(|d| d.as_array()).ok_or_else(|| {
            Error::NotCompatible { url: url.clone(), detail: "the answer has no `data` list of models".into() }
        })?;
        Ok(list
            .iter()
            .filter_map(|m| m.get("id").or_else(|| m.get("name")).or_else(|| m.get("model")).and_then(|s| s.as_str()))
            .map(str::to_owned)
            .collect())
    }

    /// Checks, with one request, that the server answers and lists the model; a server that
    /// lists no model at all (some do not implement the list) is accepted.
    ///
    /// Errors: those of [`models`](Self::models); [`Error::NotServed`] with the list.
    pub fn preflight(&self) -> Result<()> {
        let listed = self.models()?;
        let model = &self.options.model;
        let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_owned();
        if listed.is_empty() || listed.iter().any(|m| m == model || base(m) == base(model)) {
            return Ok(());
        }
        Err(Error::NotServed { url: self.models_url.clone(), model: model.clone(), listed })
    }

    /// Sends every request (up to `concurrency` at once); one result per request, in order.
    /// A request that fails fails alone.
    pub fn chat_all(&self, requests: &[ChatRequest]) -> Vec<Result<Reply>> {
        let slots: Vec<Mutex<Option<Result<Reply>>>> = requests.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let workers = self.options.concurrency.min(requests.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(request) = requests.get(i) else { break };
                        let result = self.chat(request);
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
                    .unwrap_or_else(|| Err(Error::Served("a worker thread panicked".into())))
            })
            .collect()
    }

    /// One reply: from the cache, or by request with retries.
    ///
    /// Errors: [`Error::Unauthorized`], [`Error::NotCompatible`], [`Error::Rejected`],
    /// [`Error::WaitTooLong`], [`Error::GaveUp`]; [`Error::Io`] writing the cache.
    pub fn chat(&self, request: &ChatRequest) -> Result<Reply> {
        let body = self.body(request);
        if let Some(reply) = self.cache.as_ref().and_then(|c| c.get(&body)) {
            self.counters.cached.fetch_add(1, Ordering::Relaxed);
            return Ok(reply);
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
        let text = serde_json::to_vec(&body).map_err(|e| Error::Served(format!("request body: {e}")))?;
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
                tracing::warn!(url = %self.url, retry_in = ?wait, "{why}; retrying");
            }
        })
        .call();
        match result {
            Ok(reply) => {
                let c = &self.counters;
                c.answered.fetch_add(1, Ordering::Relaxed);
                match reply.usage {
                    Some(u) => {
                        c.prompt_tokens.fetch_add(u.prompt_tokens, Ordering::Relaxed);
                        c.completion_tokens.fetch_add(u.completion_tokens, Ordering::Relaxed);
                    }
                    None => {
                        c.without_usage.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Some(cache) = &self.cache {
                    cache.put(&body, &reply)?;
                }
                Ok(reply)
            }
            Err(Failure::Fatal(e)) => Err(e),
            Err(Failure::Transient { why, .. }) => {
                Err(Error::GaveUp { url: self.url.clone(), attempts: attempts.load(Ordering::Relaxed), last: why })
            }
        }
    }

    /// One HTTP request.
    fn attempt(&self, body: &[u8]) -> std::result::Result<Reply, Failure> {
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
                hint: self.options.hints.api_key.clone(),
            })),
            404 | 405 => Err(Failure::Fatal(Error::NotCompatible {
                url,
                detail: format!(
                    "HTTP {status} ({}); the endpoint should be an OpenAI-compatible API base such as http://host:port/v1",
                    message()
                ),
            })),
            408 | 429 | 500..=599 => match retry_after {
                Some(asked) if asked > self.options.max_retry_after => Err(Failure::Fatal(Error::WaitTooLong {
                    url,
                    status,
                    asked,
                    cap: self.options.max_retry_after,
                    hint: self.options.hints.max_retry_after.clone(),
                })),
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
    kailin_core::cut_chars_marked(&kailin_core::redact(&text), 200)
}

/// The reply in a chat-completions response: `choices[0].message.content` (or a legacy
/// `choices[0].text`); `finish_reason`, `usage` and the first token's `top_logprobs` when
/// present and well-formed.
fn parse_response(body: &str) -> std::result::Result<Reply, String> {
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
    let top_logprobs = choice
        .pointer("/logprobs/content/0/top_logprobs")
        .and_then(|t| t.as_array())
        .map(|alts| {
            alts.iter()
                .filter_map(|a| Some((a.get("token")?.as_str()?.to_owned(), a.get("logprob")?.as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Reply { text: text.to_owned(), finish_reason, usage, cached: false, top_logprobs })
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
        let a = parse_response(
            r#"{"choices":[{"message":{"content":"A"},"logprobs":{"content":[{"token":"A","logprob":-0.1,"top_logprobs":[{"token":"A","logprob":-0.1},{"token":"B","logprob":-2.5}]}]}}]}"#,
        )
        .unwrap();
        assert_eq!(a.top_logprobs, vec![("A".to_owned(), -0.1), ("B".to_owned(), -2.5)]);
        assert!(parse_response("<html>").is_err());
        assert!(parse_response(r#"{"choices":[]}"#).is_err());
        assert!(parse_response(r#"{"choices":[{"message":{"content":null}}]}"#).is_err());
    }

    #[test]
    fn the_key_is_never_in_debug_output_and_urls_are_derived() {
        let client = ServedModel::builder("http://127.0.0.1:9/v1/", "m").api_key("sk-secret-123").build().unwrap();
        assert!(!format!("{client:?}").contains("sk-secret"));
        assert_eq!(client.url(), "http://127.0.0.1:9/v1/chat/completions");
        assert_eq!(client.models_url, "http://127.0.0.1:9/v1/models");
        let c = ServedModel::builder("http://127.0.0.1:9/v1/chat/completions", "m").build().unwrap();
        assert_eq!(c.models_url, "http://127.0.0.1:9/v1/models");
        assert!(ServedModel::builder("ftp://x", "m").build().is_err());
        assert!(ServedModel::builder("http://x/v1", " ").build().is_err());
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
        let err = ServedModel::builder("http://user:hunter22@127.0.0.1:9/v1", "m").build().unwrap_err().to_string();
        assert!(err.contains("credentials") && !err.contains("hunter22"), "{err}");
    }
}
