//! Loading a configuration: a preset, a file over it, `KEY=VALUE` overrides over both;
//! checking every value's range.

use std::path::Path;

use super::{ABLATIONS, Config, DEFAULT_PRESET, PRESETS, ROLES};
use crate::error::{Error, Result};

impl Config {
    /// A preset by name.
    pub fn preset(name: &str) -> Result<Config> {
        Self::load(Some(name), None, &[])
    }

    /// The configuration: `preset` (default [`DEFAULT_PRESET`]), then the keys of `file` over
    /// it, then each `section.key=value` of `overrides` (the value in TOML syntax; a bare word
    /// is a string), checked.
    ///
    /// Errors: an unknown preset; a file that cannot be read or parsed; an unknown key or a
    /// value of the wrong type or out of range ([`Error::Config`] names the key and what is
    /// allowed).
    pub fn load(preset: Option<&str>, file: Option<&Path>, overrides: &[String]) -> Result<Config> {
        let name = preset.unwrap_or(DEFAULT_PRESET);
        let text = PRESETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).ok_or_else(|| Error::Config {
            key: "--preset".into(),
            message: format!(
                "no preset {name:?}; the presets are {}",
                PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        })?;
        let mut table: toml::Table = toml::from_str(text)
            .map_err(|e| Error::Config { key: format!("preset {name}"), message: e.to_string() })?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
            let user: toml::Table = toml::from_str(&text)
                .map_err(|e| Error::Config { key: path.display().to_string(), message: e.to_string() })?;
            merge(&mut table, user, "")?;
        }
        apply(&mut table, overrides)?;
        typed(table)
    }

    /// This configuration with `section.key=value` overrides applied, checked.
    pub fn with_overrides(&self, overrides: &[String]) -> Result<Config> {
        let mut table = toml::Table::try_from(self)
            .map_err(|e| Error::Config { key: "configuration".into(), message: e.to_string() })?;
        apply(&mut table, overrides)?;
        typed(table)
    }

    /// The configuration as TOML (what a run records beside its outputs).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks every value's range; [`Error::Config`] names the key.
    pub fn check(&self) -> Result<()> {
        let bad = |key: &str, message: &str| Err(Error::Config { key: key.into(), message: message.into() });
        let positive = [
            ("models.max_positions", self.models.max_positions),
            ("agents.epochs", self.agents.epochs),
            ("agents.batch_size", self.agents.batch_size),
            ("agents.max_len", self.agents.max_len),
            ("questions.n", self.questions.n),
            ("questions.max_new", self.questions.max_new),
            ("questions.batch_size", self.questions.batch_size),
            ("questions.max_document_chars", self.questions.max_document_chars),
            ("retrieval.k", self.retrieval.k),
            ("retrieval.batch_size", self.retrieval.batch_size),
            ("dpo.epochs", self.dpo.epochs),
            ("dpo.batch_size", self.dpo.batch_size),
            ("dpo.max_len", self.dpo.max_len),
            ("answers.max_new", self.answers.max_new),
            ("answers.batch_size", self.answers.batch_size),
            ("answers.context_chars", self.answers.context_chars),
            ("target.cpt_epochs", self.target.cpt_epochs),
            ("target.sft_epochs", self.target.sft_epochs),
            ("target.batch_size", self.target.batch_size),
            ("target.max_len", self.target.max_len),
            ("target.context_chars", self.target.context_chars),
            ("eval.batch_size", self.eval.batch_size),
            ("encoder.epochs", self.encoder.epochs),
        ];
        for (key, v) in positive {
            if v == 0 {
                return bad(key, "must be at least 1");
            }
        }
        for (key, v) in [
            ("agents.lr", self.agents.lr),
            ("dpo.lr", self.dpo.lr),
            ("target.lr", self.target.lr),
            ("encoder.lr", self.encoder.lr),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(key, &format!("{v} is not a learning rate above 0"));
            }
        }
        self.check_encoder()?;
        if !(self.dpo.beta.is_finite() && self.dpo.beta > 0.0) {
            return bad("dpo.beta", "must be above 0 (the paper's is 0.1)");
        }
        if !(self.dpo.nll.is_finite() && self.dpo.nll >= 0.0) {
            return bad("dpo.nll", "must be 0 (the paper's DPO) or a positive weight");
        }
        if !(self.evaluator.margin.is_finite() && (0.0..=1.0).contains(&self.evaluator.margin)) {
            return bad("evaluator.margin", "must be within [0, 1]");
        }
        if !(self.questions.temperature.is_finite() && self.questions.temperature >= 0.0) {
            return bad("questions.temperature", "must be 0 (greedy) or more");
        }
        if !(self.questions.top_p > 0.0 && self.questions.top_p <= 1.0) {
            return bad("questions.top_p", "must be within (0, 1]");
        }
        if self.data.corpus.trim().is_empty() {
            return bad(
                "data.corpus",
                "allowed: \"pubmedqa\" (PQA-L outside the test split), \"none\", or a file or directory of PubMed XML, \
                 PubTator, PubMedQA or Document JSONL (relative to data.dir, or absolute)",
            );
        }
        if self.data.corpus == "none" && self.data.extra_corpus.is_empty() {
            return bad("data.extra_corpus", "with data.corpus = \"none\", name at least one Document JSONL file");
        }
        if self.questions.resample > 100 {
            return bad("questions.resample", "must be from 0 (never) to 100");
        }
        if self.retrieval.corpus.is_empty() || self.retrieval.corpus.iter().any(|e| e.trim().is_empty()) {
            return bad(
                "retrieval.corpus",
                "name at least one source of contexts, none empty: \"generation\" (the documents questions are \
                 written for), \"pubmedqa\" (PQA-L outside the test split), \"bioasq\" (the golden batches' \
                 snippets, less agents.held_out), or a file or directory (relative to data.dir, or absolute)",
            );
        }
        if let Some(a) = self.run.ablations.iter().find(|a| !ABLATIONS.iter().any(|(n, ..)| n == a)) {
            return bad(
                "run.ablations",
                &format!(
                    "no ablation {a:?}; allowed: {}",
                    ABLATIONS.iter().map(|(n, ..)| *n).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        for role in ROLES {
            self.check_backend(role)?;
        }
        if self.eval.settings.is_empty() {
            return bad("eval.settings", "name at least one of \"reasoning-required\", \"question-only\"");
        }
        Ok(())
    }
}

impl Config {
    /// Checks `[backends.ROLE]`.
    fn check_backend(&self, role: &str) -> Result<()> {
        let Some(b) = self.backends.role(role) else { return Ok(()) };
        let bad = |key: &str, message: String| Err(Error::Config { key: format!("backends.{role}.{key}"), message });
        match b.kind.as_str() {
            "local" => return Ok(()),
            "openai" => {}
            other => {
                return bad(
                    "kind",
                    format!(
                        "{other:?} is not a backend; allowed: \"local\" (the run's own model) or \"openai\" (any \
                         OpenAI-compatible server: vLLM, SGLang, llama.cpp's server, Ollama, a hosted API)"
                    ),
                );
            }
        }
        if !(b.endpoint.starts_with("http://") || b.endpoint.starts_with("https://")) {
            return bad(
                "endpoint",
                format!(
                    "{:?} is not the server's http:// or https:// API base; set it, e.g. --set backends.{role}.endpoint=http://127.0.0.1:8080/v1",
                    kailin_core::redact(&b.endpoint)
                ),
            );
        }
        if let (shown, true) = kailin_core::strip_url_credentials(&b.endpoint) {
            return bad(
                "endpoint",
                format!(
                    "{shown} carries credentials (user:password@), which would be written into the run's files; \
                     remove them and name the key's variable in backends.{role}.api_key_env"
                ),
            );
        }
        if b.model.trim().is_empty() {
            return bad("model", format!("name the model the server serves: --set backends.{role}.model=NAME"));
        }
        if b.concurrency == 0 {
            return bad("concurrency", "must be at least 1".into());
        }
        if !(b.timeout_s.is_finite() && b.timeout_s > 0.0) {
            return bad("timeout_s", "must be a number of seconds above 0".into());
        }
        if !(b.max_retry_after_s.is_finite() && b.max_retry_after_s >= 0.0) {
            return bad("max_retry_after_s", "must be a number of seconds, 0 or more".into());
        }
        Ok(())
    }
}

/// The configuration a merged table holds, checked.
fn typed(table: toml::Table) -> Result<Config> {
    let config: Config = table
        .try_into()
        .map_err(|e: toml::de::Error| Error::Config { key: "configuration".into(), message: e.to_string() })?;
    config.check()?;
    Ok(config)
}

/// Applies `section.key=value` overrides (the value in TOML syntax; a bare word is a string).
fn apply(table: &mut toml::Table, overrides: &[String]) -> Result<()> {
    for o in overrides {
        let (key, value) = o.split_once('=').ok_or_else(|| Error::Config {
            key: o.clone(),
            message: "an override is section.key=value, e.g. retrieval.k=8".into(),
        })?;
        let (key, value) = (key.trim(), value.trim());
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_owned()));
        set(table, key, value)?;
    }
    Ok(())
}

/// Merges `from` into `into`, key by key (tables recursively); unknown sections are left for
/// the typed parse to name.
fn merge(into: &mut toml::Table, from: toml::Table, at: &str) -> Result<()> {
    for (k, v) in from {
        let key = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b, &key)?,
            (Some(toml::Value::Table(_)), _) => {
                return Err(Error::Config { key, message: "is a section; give its keys".into() });
            }
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
    Ok(())
}

/// Sets `section.key` (or `section.table.key`) to `value`; the key must exist.
fn set(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.len() < 2 {
        return Err(Error::Config { key: key.into(), message: "an override names section.key".into() });
    }
    let (last, path) = parts.split_last().unwrap_or((&"", &[]));
    let mut at = table;
    for (depth, part) in path.iter().enumerate() {
        let here = parts[..depth].join(".");
        let keys = at.keys().cloned().collect::<Vec<_>>().join(", ");
        at = match at.get_mut(*part) {
            Some(toml::Value::Table(t)) => t,
            _ if depth == 0 => {
                return Err(Error::Config {
                    key: key.into(),
                    message: format!("no section [{part}]; the sections are {keys}"),
                });
            }
            _ => {
                return Err(Error::Config {
                    key: key.into(),
                    message: format!("no table {part:?} in [{here}]; it has {keys}"),
                });
            }
        };
    }
    if at.contains_key(*last) && !at.get(*last).is_some_and(toml::Value::is_table) {
        at.insert((*last).to_owned(), value);
        return Ok(());
    }
    Err(Error::Config {
        key: key.into(),
        message: format!("no such key; [{}] has {}", path.join("."), at.keys().cloned().collect::<Vec<_>>().join(", ")),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::{DeviceKind, RetrieverKind};

    #[test]
    fn every_preset_parses_and_checks() {
        for (name, _) in PRESETS {
            let c = Config::preset(name).unwrap();
            // The paper's settings where the issue names them.
            if name != "tiny" {
                assert_eq!((c.retrieval.k, c.dpo.beta), (4, 0.1), "{name}");
            }
        }
        assert_eq!(Config::preset("gpu-paper").unwrap().run.device, DeviceKind::Cuda);
    }

    #[test]
    fn overrides_and_files_apply_and_bad_keys_are_named() {
        let c = Config::load(Some("tiny"), None, &["retrieval.k=8".into(), "retrieval.kind=bm25".into()]).unwrap();
        assert_eq!((c.retrieval.k, c.retrieval.kind), (8, RetrieverKind::Bm25));
        let err = |o: &str| Config::load(Some("tiny"), None, &[o.into()]).unwrap_err().to_string();
        assert!(
            err("retrieval.kk=1").contains("retrieval.kk: no such key; [retrieval] has"),
            "{}",
            err("retrieval.kk=1")
        );
        assert!(err("nope.k=1").contains("no section [nope]"));
        let e = err("retrieval.kind=sparse");
        assert!(e.contains("sparse") && e.contains("dense") && e.contains("bm25"), "{e}");
        assert!(err("retrieval.k=0").contains("retrieval.k: must be at least 1"));
        assert!(err("dpo.beta=-1").contains("dpo.beta"));
        assert!(err("dpo.nll=-0.5").contains("dpo.nll"));
        assert!(err("eval.settings=[\"reasoning-free\"]").contains("reasoning-free"));
        assert!(err("questions.resample=1000").contains("questions.resample: must be from 0"));
        assert!(err("retrieval.corpus=[]").contains("retrieval.corpus: name at least one source"));
        assert!(err("retrieval.corpus=[\"pubmedqa\", \" \"]").contains("none empty"));
        assert!(err("encoder.batch_size=1").contains("encoder.batch_size: must be at least 2"));
        assert!(err("encoder.base=domain").contains("encoder.base"));
        assert!(err("encoder.temperature=0").contains("encoder.temperature"));
        assert!(err("encoder.lr=0").contains("encoder.lr"));
        assert!(err("encoder.warmup=1.0").contains("encoder.warmup: must be within [0, 1)"));
        assert!(err("encoder.max_tokens=2").contains("encoder.max_tokens: must be at least 3"));
        let no_pairs = ["encoder.bioasq=false".to_owned(), "encoder.pubmedqa=false".to_owned()];
        let e = Config::load(Some("tiny"), None, &no_pairs).unwrap_err().to_string();
        assert!(e.contains("encoder.pairs") && e.contains("needs pairs"), "{e}");
        // Without a domain encoder the pair sources do not matter.
        let general = [no_pairs.to_vec(), vec!["models.encoder=minilm".to_owned()]].concat();
        assert!(Config::load(Some("tiny"), None, &general).is_ok());
        assert!(
            Config::load(Some("huge"), None, &[])
                .unwrap_err()
                .to_string()
                .contains("tiny, cpu-small, cpu-medium, gpu-paper")
        );

        let served = Config::load(
            Some("tiny"),
            None,
            &[
                "backends.answer.kind=openai".into(),
                "backends.answer.endpoint=http://127.0.0.1:8080/v1".into(),
                "backends.answer.model=smollm2".into(),
            ],
        )
        .unwrap();
        assert!(served.backends.answer.served() && !served.backends.judge.served());
        let e = err("backends.answer.kind=opnai");
        assert!(e.contains("backends.answer.kind") && e.contains("\"opnai\" is not a backend"), "{e}");
        let e = err("backends.answer.kind=openai");
        assert!(e.contains("backends.answer.endpoint") && e.contains("--set backends.answer.endpoint="), "{e}");
        assert!(err("backends.answr.kind=openai").contains("no table \"answr\" in [backends]"));
        let e = Config::load(
            Some("tiny"),
            None,
            &[
                "backends.judge.kind=openai".into(),
                "backends.judge.endpoint=http://me:hunter2@127.0.0.1:9/v1".into(),
                "backends.judge.model=m".into(),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("backends.judge.endpoint") && e.contains("credentials") && !e.contains("hunter2"), "{e}");
        assert!(err("backends.answer.knd=openai").contains("no such key; [backends.answer] has"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.toml");
        std::fs::write(&file, "[questions]\nn = 5\n").unwrap();
        assert_eq!(Config::load(Some("tiny"), Some(&file), &[]).unwrap().questions.n, 5);
        std::fs::write(&file, "[questions]\nm = 5\n").unwrap();
        let e = Config::load(Some("tiny"), Some(&file), &[]).unwrap_err().to_string();
        assert!(e.contains("unknown field `m`"), "{e}");
    }
}
