//! The pipeline's configuration: a TOML file with four embedded presets, every value
//! overridable by `section.key=value`.

use std::path::PathBuf;

use kailin_eval::Setting;
use serde::{Deserialize, Serialize};

/// The presets, by name: `tiny` (tiny random models and the repository's fixtures; seconds),
/// `cpu-small` (the default: SmolLM2-135M-Instruct and all-MiniLM-L6-v2 fine-tuned into the
/// domain encoder, on a small real slice; about 90 minutes on a 2-core CPU), `cpu-medium` (the same models on 330 documents, a
/// run large enough to decide; about 2.3 hours, in parts if need be), `gpu-paper` (all data,
/// CUDA, the paper's settings).
pub const PRESETS: [(&str, &str); 4] = [
    ("tiny", include_str!("../../presets/tiny.toml")),
    ("cpu-small", include_str!("../../presets/cpu-small.toml")),
    ("cpu-medium", include_str!("../../presets/cpu-medium.toml")),
    ("gpu-paper", include_str!("../../presets/gpu-paper.toml")),
];

/// The default preset.
pub const DEFAULT_PRESET: &str = "cpu-small";

/// The ablations a run can add (`run.ablations`), each a variant of the main configuration
/// written under `OUT/ablations/NAME/`, reusing the main run's stages before the one it
/// changes: `(name, overrides, what it measures)`. The same-budget control is part of every
/// main run (`target.control`). `{encoder.base}` in an override stands for the run's
/// `encoder.base`.
pub const ABLATIONS: [(&str, &[&str], &str); 6] = [
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
    (
        "general-embedding",
        &["models.encoder={encoder.base}"],
        "the general encoder as it ships (encoder.base) instead of the domain one (w/o domain embedding)",
    ),
    ("bm25", &["retrieval.kind=\"bm25\""], "BM25 instead of the shared dense encoder"),
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
    /// The corpus: `pubmedqa` (PQA-L records outside the test split), `none`, or a file or
    /// directory (relative to `dir`, or absolute) of PubMed XML (`.xml`, `.xml.gz`, baseline
    /// and update files), PubTator, PubMedQA JSON or Document JSONL.
    pub corpus: String,
    /// Refuse a corpus directory with an unreadable or corrupt file (otherwise such files are
    /// listed in the report and skipped).
    pub strict: bool,
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
    /// The retrieval encoder: `domain` (`[encoder]`'s base fine-tuned on biomedical
    /// question–passage pairs by the run's `encoder` stage: the paper's domain embedding),
    /// `minilm` (all-MiniLM-L6-v2 as it ships: the ablation "w/o domain embedding"), `tiny`
    /// or a path.
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
    /// A filtered question (a candidate, or a final greedy one) is sampled again at
    /// `temperature` with the next derived seed up to this many times, so that every
    /// document yields its questions (0: never).
    pub resample: usize,
}

/// Which retriever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetrieverKind {
    /// The shared encoder's inner product (the method).
    Dense,
    /// BM25 (a lexical baseline; the ablation "w/o domain embedding" is `models.encoder = "minilm"`).
    Bm25,
    /// The shared encoder and BM25 fused by reciprocal rank (`kailin-retrieval`'s
    /// `HybridRetriever`).
    Hybrid,
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
    /// What contexts are retrieved from, apart from the documents questions are written for:
    /// `generation` (those documents), `pubmedqa` (every PQA-L abstract outside the test
    /// split), `bioasq` (the distinct snippets of the golden batches, less
    /// `agents.held_out`), or a file or directory as `data.corpus` takes (relative to
    /// `data.dir`, or absolute); decontaminated against the test split and the held-out
    /// batches, each id once.
    pub corpus: Vec<String>,
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
    /// Weight of the chosen questions' per-token negative log-likelihood added to the DPO
    /// loss (`kailin_train::DpoOptions::nll`; 0: the paper's DPO).
    #[serde(default)]
    pub nll: f64,
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
    /// Preference pairs held out of DPO's training (whole documents, seeded): its implicit-
    /// reward accuracy on them is measured over the steps (0: none held out).
    #[serde(default)]
    pub eval_pairs: usize,
    /// Held-out documents (from the retrieval corpus, outside the generation corpus, with
    /// MeSH terms) on which the general agent writes a question before and after DPO, each
    /// scored with the MeSH rule (Eq. 4) against its document (0: no check).
    #[serde(default)]
    pub check_docs: usize,
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
    /// Add PQA-L's training half to the SFT data of both arms (the fair control: the arms
    /// then differ only in kailin's data against as many tokens of raw abstracts).
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
    /// Also evaluate every model on BioASQ yes/no: the agents' held-out batches
    /// (`agents.held_out`), never trained on.
    pub bioasq: bool,
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
    /// `[encoder]` (absent: its defaults).
    #[serde(default)]
    pub encoder: EncoderConfig,
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
    /// `[backends.ROLE]`: where each language-model role runs.
    pub backends: BackendsConfig,
}

/// The settings of one training stage, as every trainer of the run takes them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrainSettings {
    /// Epochs.
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

impl AgentsConfig {
    /// The agents' fine-tuning settings.
    pub fn settings(&self) -> TrainSettings {
        TrainSettings {
            epochs: self.epochs,
            lr: self.lr,
            lora_rank: self.lora_rank,
            batch_size: self.batch_size,
            max_len: self.max_len,
        }
    }
}

impl DpoConfig {
    /// DPO's settings.
    pub fn settings(&self) -> TrainSettings {
        TrainSettings {
            epochs: self.epochs,
            lr: self.lr,
            lora_rank: self.lora_rank,
            batch_size: self.batch_size,
            max_len: self.max_len,
        }
    }
}

impl TargetConfig {
    /// The target's settings for continued pre-training (`cpt`) or fine-tuning.
    pub fn settings(&self, cpt: bool) -> TrainSettings {
        TrainSettings {
            epochs: if cpt { self.cpt_epochs } else { self.sft_epochs },
            lr: self.lr,
            lora_rank: self.lora_rank,
            batch_size: self.batch_size,
            max_len: self.max_len,
        }
    }
}

mod backends;
mod encoder;
mod load;

pub use backends::{BackendConfig, BackendsConfig, ROLES};
pub use encoder::EncoderConfig;
