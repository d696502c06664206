//! The run's served roles (`[backends.ROLE]` with `kind = "openai"`): each one client of
//! `kailin-lm` ([`ServedModel`]) with its response cache under `OUT/cache/ROLE/`, checked by a
//! preflight request before any long stage, keyed by endpoint, model and prompt version.

use std::path::Path;
use std::time::Duration;

use kailin_lm::{Hints, ServedModel, ServedOptions};
use serde_json::json;

use crate::config::{BackendConfig, Config, EvaluatorKind};
use crate::error::{Error, Result};
use crate::summary::RoleStats;

/// The version of a role's prompt (part of its stages' keys).
pub(crate) fn prompt_version(role: &str) -> String {
    match role {
        "judge" => kailin_core::Fnv64::new().bytes(kailin_evaluator::JUDGE_INSTRUCTION.as_bytes()).hex(),
        "answer" => kailin_answer::default_template().version().to_owned(),
        _ => kailin_question::default_template().version().to_owned(),
    }
}

/// What a served role's stage key holds: the endpoint, the model and the prompt's version
/// (never the key or its variable).
pub(crate) fn identity(role: &str, b: &BackendConfig) -> serde_json::Value {
    json!({ "kind": b.kind, "endpoint": b.endpoint, "model": b.model, "prompt": prompt_version(role) })
}

/// The roles of `config` that run on a server and that the run uses.
pub(crate) fn served_roles(config: &Config) -> Vec<(&'static str, &BackendConfig)> {
    let judge_used =
        config.evaluator.kind == EvaluatorKind::LlmJudge || config.run.ablations.iter().any(|a| a == "no-mesh");
    crate::config::ROLES
        .into_iter()
        .filter_map(|role| config.backends.role(role).map(|b| (role, b)))
        .filter(|(role, b)| b.served() && (*role != "judge" || judge_used))
        .collect()
}

/// The client of a served role, caching under `out/cache/ROLE/`.
pub(crate) fn client(role: &str, b: &BackendConfig, out: &Path) -> Result<ServedModel> {
    let fail = |source: kailin_lm::Error, fix: &str| Error::Backend {
        role: role.to_owned(),
        endpoint: kailin_core::redact(&b.endpoint).into_owned(),
        model: b.model.clone(),
        source: Box::new(source),
        fix: fix.to_owned(),
    };
    let var = b.api_key_env.trim();
    let mut options = ServedOptions::new(&b.endpoint, &b.model);
    options.concurrency = b.concurrency;
    options.timeout = Duration::from_secs_f64(b.timeout_s);
    options.max_retries = b.max_retries;
    options.max_retry_after = Duration::from_secs_f64(b.max_retry_after_s);
    options.hints = Hints {
        api_key: if var.is_empty() {
            format!("a variable, and name it in backends.{role}.api_key_env")
        } else {
            format!("${var} (backends.{role}.api_key_env)")
        },
        max_retry_after: format!("backends.{role}.max_retry_after_s"),
    };
    if !var.is_empty() {
        match std::env::var(var) {
            Ok(key) if !key.trim().is_empty() => options.api_key = Some(key.trim().to_owned()),
            _ => tracing::warn!(role, variable = var, "the API-key variable is unset or empty: no key is sent"),
        }
    }
    ServedModel::builder(&b.endpoint, &b.model)
        .options(options)
        .cache(out.join("cache").join(role))
        .build()
        .map_err(|e| fail(e, &format!("correct [backends.{role}] (endpoint, model)")))
}

/// The stage a role works in.
fn stage_of(role: &str) -> &'static str {
    match role {
        "question-general" | "question-domain" => "candidates",
        "question-final" => "cpt",
        "judge" => "labels",
        _ => "sft",
    }
}

/// One request to `GET /models` of each served role whose stage `runs`: the server answers
/// and lists the model.
///
/// Errors: [`Error::Backend`] naming the role, the URL, what the server said and the fix.
pub(crate) fn preflight(config: &Config, out: &Path, runs: impl Fn(&str) -> bool) -> Result<()> {
    for (role, b) in served_roles(config).into_iter().filter(|(role, _)| runs(stage_of(role))) {
        let client = client(role, b, out)?;
        client.preflight().map_err(|source| {
            let fix = match &source {
                kailin_lm::Error::Unreachable { .. } => {
                    format!("start the server, or correct backends.{role}.endpoint")
                }
                kailin_lm::Error::NotServed { .. } => {
                    format!("set backends.{role}.model to one the server lists, or serve that model")
                }
                kailin_lm::Error::Unauthorized { .. } => {
                    format!("put the server's key in the variable backends.{role}.api_key_env names")
                }
                _ => format!("backends.{role}.endpoint should be an OpenAI-compatible API base (…/v1)"),
            };
            Error::Backend {
                role: role.to_owned(),
                endpoint: kailin_core::redact(&b.endpoint).into_owned(),
                model: b.model.clone(),
                source: Box::new(source),
                fix,
            }
        })?;
        tracing::info!(role, endpoint = %b.endpoint, model = %b.model, "served backend ready");
    }
    Ok(())
}

/// A served role's counters for a stage summary.
pub(crate) fn stats(role: &str, b: &BackendConfig, client: &ServedModel) -> RoleStats {
    RoleStats { role: role.to_owned(), endpoint: b.endpoint.clone(), model: b.model.clone(), stats: client.stats() }
}
