//! `[backends.ROLE]`: where each language-model role runs.

use serde::{Deserialize, Serialize};

/// The language-model roles a backend can serve, as `[backends.ROLE]` names them.
pub const ROLES: [&str; 5] = ["question-general", "question-domain", "question-final", "judge", "answer"];

/// `[backends]`: one table per role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendsConfig {
    /// The general question agent (DPO needs it local).
    #[serde(rename = "question-general")]
    pub question_general: BackendConfig,
    /// The domain question agent.
    #[serde(rename = "question-domain")]
    pub question_domain: BackendConfig,
    /// What writes the final questions: `local` is the DPO-optimised general agent; a served
    /// one is, typically, that agent exported and served (docs/serving.md).
    #[serde(rename = "question-final")]
    pub question_final: BackendConfig,
    /// The LLM judge (the evaluator without MeSH).
    pub judge: BackendConfig,
    /// The answer agent.
    pub answer: BackendConfig,
}

impl BackendsConfig {
    /// The role's backend, by its name in [`ROLES`].
    pub fn role(&self, role: &str) -> Option<&BackendConfig> {
        Some(match role {
            "question-general" => &self.question_general,
            "question-domain" => &self.question_domain,
            "question-final" => &self.question_final,
            "judge" => &self.judge,
            "answer" => &self.answer,
            _ => return None,
        })
    }
}

/// `[backends.ROLE]`: the run's own local model, or an OpenAI-compatible server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// `local` (the run's own burn model) or `openai` (any OpenAI-compatible server).
    pub kind: String,
    /// The server's API base (`http://127.0.0.1:8080/v1`).
    pub endpoint: String,
    /// The model name the server knows.
    pub model: String,
    /// The environment variable that holds the key (empty: no key is sent); the key itself is
    /// never in a file, a log or the report.
    pub api_key_env: String,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Whole-request timeout, in seconds.
    pub timeout_s: f64,
    /// Retries of a transient failure.
    pub max_retries: usize,
    /// The longest `Retry-After` waited for, in seconds.
    pub max_retry_after_s: f64,
}

impl BackendConfig {
    /// Whether the role runs on a server.
    pub fn served(&self) -> bool {
        self.kind == "openai"
    }
}
