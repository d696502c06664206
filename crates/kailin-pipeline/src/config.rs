//! The pipeline's configuration: a TOML file with three embedded presets, every value
//! overridable by `section.key=value`.

use std::path::{Path, PathBuf};

use kailin_eval::Setting;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The presets, by name: `tiny` (tiny random models and the repository's fixtures; seconds),
/// `cpu-small` (the default: SmolLM2-135M-Instruct and all-MiniLM-L6-v2 on a small real
/// slice; within 45 minutes on a 2-core CPU), `gpu-paper` (all data, CUDA, the paper's
/// settings).
pub const PRESETS: [(&str, &str); 3] = [
    ("tiny", include_str!("../presets/tiny.toml")),
    ("cpu-small", include_str!("../presets/cpu-small.toml")),
    ("gpu-paper", include_str!("../presets/gpu-paper.toml")),
];

/// The default preset.
pub const DEFAULT_PRESET: &str = "cpu-small";

/// The ablations a run can add (`run.ablations`), each a variant of the main configuration
/// written under `OUT/ablations/NAME/`, reusing the main run's stages before the one it
/// changes: `(name, overrides, what it measures)`. The same-budget control is part of every
/// main run (`target.control`).
pub const ABLATIONS: [(&str, &[&str], &str); 5] = [
    (
        "same-agents",
        &["agents.distinct=false"],
        "one question agent twice (no domain CPT) instead of two distinct agents",
    ),
    (
        "no-mesh",
        &["evaluator.kind=\"llm-judge\""],
        "the evaluator without MeSH: the base model picks the better question",
    ),
    ("bm25", &["retrieval.kind=\"bm25\""], "BM25 instead of the shared dense encoder (w/o domain embedding)"),
    ("top-k-1", &["retrieval.k=1"], "one context per question instead of the configured k"),
    ("top-k-8", &["retrieval.k=8"], "eight contexts per question"),
];

/// Where models and tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// burn's flex backend.
    Cpu,
    /// burn's CUDA backend.
    Cuda,
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Every seeded choice derives from it.
    pub seed: u64,
    /// The device.
    pub device: DeviceKind,
    /// Ablations to run after the main run ([`ABLATIONS`] by name), each a row of the report.
    pub ablations: Vec<String>,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The data directory (`pubmedqa/`, `bioasq/`, `mesh/`).
    pub dir: PathBuf,
    /// The corpus: `pubmedqa` (PQA-L records outside the test split) or `none`.
    pub corpus: String,
    /// More documents: kailin-core `Document` JSONL files.
    pub extra_corpus: Vec<PathBuf>,
    /// Documents used (0: all).
    pub corpus_limit: usize,
    /// Drop documents sharing a word n-gram of this length with the test split (0: off).
    pub decontaminate_ngram: usize,
    /// The BioASQ golden batches, under `dir`.
    pub bioasq: PathBuf,
    /// MeSH (a `.tsv`, descriptor XML or cache), under `dir`.
    pub mesh: PathBuf,
}

/// `[models]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    /// The starting model of the agents and the target: `smollm2`, `tiny` or a path.
    pub base: String,
    /// The retrieval encoder: `minilm`, `tiny` or a path.
    pub encoder: String,
    /// Longest prompt plus generation, in tokens.
    pub max_positions: usize,
}

/// `[agents]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsConfig {
    /// BioASQ batches (file names) kept out of the agents' SFT; their loss is logged.
    pub held_out: Vec<String>,
    /// Fine-tune the two agents (false: both are the base model).
    pub prepare: bool,
    /// The domain agent is continually pre-trained on the corpus first (false: the ablation
    /// with the same agent twice).
    pub distinct: bool,
    /// BioASQ training questions (0: all).
    pub bioasq_limit: usize,
    /// Corpus documents of the domain agent's CPT (0: all).
    pub domain_cpt_docs: usize,
    /// Epochs of each fine-tuning.
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// LoRA rank (0: every weight).
    pub lora_rank: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// Longest row in tokens.
    pub max_len: usize,
}

/// `[questions]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionsConfig {
    /// Candidates per document and agent.
    pub n: usize,
    /// Sampling temperature of the candidates (the optimised generator writes greedily).
    pub temperature: f32,
    /// Nucleus threshold (1: off).
    pub top_p: f32,
    /// Most new tokens per question.
    pub max_new: usize,
    /// Prompts per batch.
    pub batch_size: usize,
    /// Characters of the document in the prompt.
    pub max_document_chars: usize,
}

/// Which retriever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetrieverKind {
    /// The shared encoder's inner product (the method).
    Dense,
    /// BM25 (the ablation "w/o domain embedding").
    Bm25,
}

/// `[retrieval]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievalConfig {
    /// The retriever.
    pub kind: RetrieverKind,
    /// Contexts per question.
    pub k: usize,
    /// Leave a question's source document out of its contexts.
    pub exclude_source: bool,
    /// Texts per encoder batch.
    pub batch_size: usize,
}

/// Which evaluator labels the pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvaluatorKind {
    /// The MeSH rule (Eq. 4-5).
    Rule,
    /// The base model asked to pick, no hierarchy (the ablation "w/o MeSH").
    LlmJudge,
}

/// How the rule aggregates term pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggregateKind {
    /// Mean over all pairs.
    Mean,
    /// Best-match average.
    Bma,
}

/// `[evaluator]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluatorConfig {
    /// The evaluator.
    pub kind: EvaluatorKind,
    /// The rule's aggregation.
    pub aggregate: AggregateKind,
    /// Score gaps within this margin are ties.
    pub margin: f64,
}

/// `[dpo]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpoConfig {
    /// Optimise the general agent (false: it writes the final questions as it is).
    pub enabled: bool,
    /// β.
    pub beta: f64,
    /// Epochs.
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// LoRA rank (0: every weight).
    pub lora_rank: usize,
    /// Pairs per step.
    pub batch_size: usize,
    /// Longest prompt plus answer in tokens.
    pub max_len: usize,
}

/// `[answers]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswersConfig {
    /// Most new tokens per answer.
    pub max_new: usize,
    /// Prompts per batch.
    pub batch_size: usize,
    /// Characters of context the answer agent sees.
    pub context_chars: usize,
}

/// `[target]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Epochs of continued pre-training on the CPT dataset.
    pub cpt_epochs: usize,
    /// Epochs of fine-tuning on the SFT dataset.
    pub sft_epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// LoRA rank (0: every weight).
    pub lora_rank: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// Longest row in tokens.
    pub max_len: usize,
    /// Characters of each record's context in the training texts (the question comes after
    /// the context, so a long context must not push it out of the window).
    pub context_chars: usize,
    /// Add PQA-L's training half to the SFT data.
    pub pubmedqa_train: bool,
    /// Also train the same-budget control (raw abstracts, PQA-L's training half).
    pub control: bool,
}

/// `[eval]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// PubMedQA settings measured.
    pub settings: Vec<Setting>,
    /// Test items (0: all).
    pub limit: usize,
    /// Prompts per forward pass.
    pub batch_size: usize,
    /// Also evaluate the base model.
    pub base: bool,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[run]`.
    pub run: RunConfig,
    /// `[data]`.
    pub data: DataConfig,
    /// `[models]`.
    pub models: ModelsConfig,
    /// `[agents]`.
    pub agents: AgentsConfig,
    /// `[questions]`.
    pub questions: QuestionsConfig,
    /// `[retrieval]`.
    pub retrieval: RetrievalConfig,
    /// `[evaluator]`.
    pub evaluator: EvaluatorConfig,
    /// `[dpo]`.
    pub dpo: DpoConfig,
    /// `[answers]`.
    pub answers: AnswersConfig,
    /// `[target]`.
    pub target: TargetConfig,
    /// `[eval]`.
    pub eval: EvalConfig,
}

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
        let config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config { key: "configuration".into(), message: e.to_string() })?;
        config.check()?;
        Ok(config)
    }

    /// This configuration with `section.key=value` overrides applied, checked.
    pub fn with_overrides(&self, overrides: &[String]) -> Result<Config> {
        let mut table = toml::Table::try_from(self)
            .map_err(|e| Error::Config { key: "configuration".into(), message: e.to_string() })?;
        apply(&mut table, overrides)?;
        let config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config { key: "configuration".into(), message: e.to_string() })?;
        config.check()?;
        Ok(config)
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
        ];
        for (key, v) in positive {
            if v == 0 {
                return bad(key, "must be at least 1");
            }
        }
        for (key, v) in [("agents.lr", self.agents.lr), ("dpo.lr", self.dpo.lr), ("target.lr", self.target.lr)] {
            if !(v.is_finite() && v > 0.0) {
                return bad(key, &format!("{v} is not a learning rate above 0"));
            }
        }
        if !(self.dpo.beta.is_finite() && self.dpo.beta > 0.0) {
            return bad("dpo.beta", "must be above 0 (the paper's is 0.1)");
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
        if !matches!(self.data.corpus.as_str(), "pubmedqa" | "none") {
            return bad("data.corpus", "allowed: \"pubmedqa\" (PQA-L outside the test split) or \"none\"");
        }
        if self.data.corpus == "none" && self.data.extra_corpus.is_empty() {
            return bad("data.extra_corpus", "with data.corpus = \"none\", name at least one Document JSONL file");
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
        if self.eval.settings.is_empty() {
            return bad("eval.settings", "name at least one of \"reasoning-required\", \"question-only\"");
        }
        Ok(())
    }
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

/// Sets `section.key` to `value`.
fn set(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let Some((section, name)) = key.split_once('.') else {
        return Err(Error::Config { key: key.into(), message: "an override names section.key".into() });
    };
    match table.get_mut(section) {
        Some(toml::Value::Table(t)) if t.contains_key(name) => {
            t.insert(name.to_owned(), value);
            Ok(())
        }
        Some(toml::Value::Table(t)) => Err(Error::Config {
            key: key.into(),
            message: format!("no such key; [{section}] has {}", t.keys().cloned().collect::<Vec<_>>().join(", ")),
        }),
        _ => Err(Error::Config {
            key: key.into(),
            message: format!(
                "no section [{section}]; the sections are {}",
                table.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
        assert!(err("eval.settings=[\"reasoning-free\"]").contains("reasoning-free"));
        assert!(Config::load(Some("huge"), None, &[]).unwrap_err().to_string().contains("tiny, cpu-small, gpu-paper"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.toml");
        std::fs::write(&file, "[questions]\nn = 5\n").unwrap();
        assert_eq!(Config::load(Some("tiny"), Some(&file), &[]).unwrap().questions.n, 5);
        std::fs::write(&file, "[questions]\nm = 5\n").unwrap();
        let e = Config::load(Some("tiny"), Some(&file), &[]).unwrap_err().to_string();
        assert!(e.contains("unknown field `m`"), "{e}");
    }
}
