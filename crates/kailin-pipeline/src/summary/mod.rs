//! What each stage reports, as types: `stage.json` holds them, the report and the plots read
//! them, and each says itself in words for the report's stage table.

use std::collections::BTreeMap;

use kailin_lm::ClientStats;
use serde::{Deserialize, Serialize};

mod train;

pub use self::train::{DpoCheckSummary, TrainSummary};

/// One served role's work in a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleStats {
    /// The role (`answer`, `judge`, `question-general`…).
    pub role: String,
    /// The server's API base.
    pub endpoint: String,
    /// The model the server was asked for.
    pub model: String,
    /// Requests, retries, cache hits, tokens.
    pub stats: ClientStats,
}

/// The corpus stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusSummary {
    /// Documents read from every source.
    pub read: usize,
    /// Left out: in the PubMedQA test split (by PMID).
    pub test_split: usize,
    /// Left out: sharing a word n-gram with the test split.
    pub overlapping_test_text: usize,
    /// Left out: an id already kept.
    pub duplicate_ids: usize,
    /// Left out: no text (a citation without an abstract).
    pub empty: usize,
    /// Kept.
    pub documents: usize,
    /// Kept documents with MeSH headings (the rule's terms; the others' are extracted).
    #[serde(default)]
    pub with_mesh: usize,
    /// The user corpus (`data.corpus` as a path): files, versions, deletions, files skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest: Option<kailin_corpus::IngestReport>,
}

/// The retrieval-corpus stage: what contexts are retrieved from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetrievalCorpusSummary {
    /// Documents read from every source.
    pub read: usize,
    /// Kept.
    pub documents: usize,
    /// Kept, by the `retrieval.corpus` entry they came from (a document two entries hold
    /// counts under the first).
    pub by_source: BTreeMap<String, usize>,
    /// Left out: in the PubMedQA test split (by PMID).
    pub test_split: usize,
    /// Left out: sharing a word n-gram with the test split.
    pub overlapping_test_text: usize,
    /// Left out: a document, snippet or text of the held-out BioASQ batches (the BioASQ
    /// benchmark's questions and contexts).
    pub held_out_bioasq: usize,
    /// Left out: an id already kept.
    pub duplicate_ids: usize,
    /// Left out: no text.
    pub empty: usize,
    /// Each path entry's ingest: files, versions, files skipped.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ingest: BTreeMap<String, kailin_corpus::IngestReport>,
}

/// The candidates stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidatesSummary {
    /// The general agent's counts.
    pub general: kailin_question::Tally,
    /// The domain agent's counts.
    pub domain: kailin_question::Tally,
    /// Documents whose first kept questions from the two agents are identical, of those
    /// where both kept one.
    pub identical_first: usize,
    /// Documents where both agents kept a question.
    pub both_kept: usize,
    /// Served agents' work.
    #[serde(default)]
    pub served: Vec<RoleStats>,
}

/// The store stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreSummary {
    /// Documents embedded.
    pub documents: u64,
    /// The embedding's dimension.
    pub dim: usize,
}

/// The labelling stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSummary {
    /// Pairs judged.
    pub items: usize,
    /// Judgements by outcome.
    pub outcomes: BTreeMap<String, usize>,
    /// Preference pairs made.
    pub pairs: usize,
    /// Score gap of every preference pair.
    pub margins: Vec<f64>,
    /// Pairs whose two questions retrieved the same contexts (in any order).
    #[serde(default)]
    pub same_contexts: usize,
    /// Which evaluator.
    pub evaluator: String,
    /// A served judge's work.
    #[serde(default)]
    pub served: Vec<RoleStats>,
}

/// The CPT-dataset stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CptSummary {
    /// The final generator's counts.
    pub questions: kailin_question::Tally,
    /// Records made.
    pub records: usize,
    /// A served generator's work.
    #[serde(default)]
    pub served: Vec<RoleStats>,
}

/// The SFT-dataset stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftSummary {
    /// Records answered.
    pub records: usize,
    /// A served answer agent's work.
    #[serde(default)]
    pub served: Vec<RoleStats>,
}

/// Any stage's summary, as the report and `metrics.json` hold it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StageSummary {
    /// `corpus`.
    Corpus(CorpusSummary),
    /// `retrieval-corpus`.
    RetrievalCorpus(RetrievalCorpusSummary),
    /// A model trained.
    Train(TrainSummary),
    /// `candidates`.
    Candidates(CandidatesSummary),
    /// `store`.
    Store(StoreSummary),
    /// `labels`.
    Labels(LabelSummary),
    /// `dpo-check`.
    DpoCheck(DpoCheckSummary),
    /// `cpt`.
    Cpt(CptSummary),
    /// `sft`.
    Sft(SftSummary),
    /// `eval-MODEL-SETTING`.
    Eval(Box<kailin_eval::Report>),
}

macro_rules! into_summary {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl From<$t> for StageSummary {
            fn from(s: $t) -> Self {
                StageSummary::$v(s.into())
            }
        }
    )*};
}

into_summary!(
    CorpusSummary => Corpus,
    RetrievalCorpusSummary => RetrievalCorpus,
    TrainSummary => Train,
    CandidatesSummary => Candidates,
    StoreSummary => Store,
    LabelSummary => Labels,
    DpoCheckSummary => DpoCheck,
    CptSummary => Cpt,
    SftSummary => Sft,
    kailin_eval::Report => Eval,
);

fn loss(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |v| format!("{v:.3}"))
}

impl StageSummary {
    /// The summary in words, for the report's stage table.
    pub fn describe(&self) -> String {
        match self {
            StageSummary::Corpus(c) => {
                let mut s = format!(
                    "{} documents kept ({} with MeSH headings) of {} read; left out: {} in the test split, {} sharing test \
                     text, {} duplicate ids, {} without text",
                    c.documents, c.with_mesh, c.read, c.test_split, c.overlapping_test_text, c.duplicate_ids, c.empty
                );
                if let Some(i) = &c.ingest {
                    s.push_str(&format!(
                        "; corpus: {} {} files ({} records, {} later versions, {} deleted; {} files skipped, {} not read)",
                        i.files,
                        i.format,
                        i.records,
                        i.replaced,
                        i.deleted,
                        i.failed.len(),
                        i.unread.len()
                    ));
                }
                s
            }
            StageSummary::RetrievalCorpus(r) => {
                let sources: Vec<String> = r.by_source.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let skipped: usize = r.ingest.values().map(|i| i.failed.len() + i.unread.len()).sum();
                format!(
                    "{} documents to retrieve from ({}) of {} read; left out: {} in the test split, {} sharing test \
                     text, {} of the held-out BioASQ batches, {} duplicate ids, {} without text{}",
                    r.documents,
                    sources.join(", "),
                    r.read,
                    r.test_split,
                    r.overlapping_test_text,
                    r.held_out_bioasq,
                    r.duplicate_ids,
                    r.empty,
                    if skipped > 0 { format!("; {skipped} files skipped or not read") } else { String::new() }
                )
            }
            StageSummary::Train(t) => {
                let mut s = format!(
                    "{} records, {} steps, loss {} → {}{}",
                    t.records,
                    t.steps,
                    loss(t.loss_first),
                    loss(t.loss_last),
                    t.eval_loss.map_or_else(String::new, |e| format!(", held-out loss {e:.3}"))
                );
                for extra in [t.held_out_accuracy(), t.note.clone()].into_iter().flatten() {
                    s.push_str("; ");
                    s.push_str(&extra);
                }
                s
            }
            StageSummary::Candidates(c) => {
                let agent = |t: &kailin_question::Tally| {
                    format!(
                        "kept {} of {} ({} resampled; {} documents without a question)",
                        t.kept, t.generated, t.resampled, t.without_question
                    )
                };
                format!(
                    "general {}, domain {}; first questions identical on {} of {} documents",
                    agent(&c.general),
                    agent(&c.domain),
                    c.identical_first,
                    c.both_kept
                )
            }
            StageSummary::Store(s) => format!("{} documents embedded ({} dimensions)", s.documents, s.dim),
            StageSummary::Labels(l) => {
                let outcomes: Vec<String> = l.outcomes.iter().map(|(k, v)| format!("{v} {k}")).collect();
                let mean = match l.margins.len() {
                    0 => "–".to_owned(),
                    n => format!("{:.3}", l.margins.iter().sum::<f64>() / n as f64),
                };
                format!(
                    "{}: {} pairs judged ({}; {} with the same contexts), {} preference pairs (mean margin {})",
                    l.evaluator,
                    l.items,
                    outcomes.join(", "),
                    l.same_contexts,
                    l.pairs,
                    mean
                )
            }
            StageSummary::DpoCheck(c) => c.words(),
            StageSummary::Cpt(c) => {
                format!(
                    "{} records; generator kept {} of {} questions",
                    c.records, c.questions.kept, c.questions.generated
                )
            }
            StageSummary::Sft(s) => format!("{} records answered", s.records),
            StageSummary::Eval(r) => format!(
                "accuracy {:.1}%, macro-F1 {:.3} on {} items",
                100.0 * r.overall.accuracy,
                r.overall.macro_f1,
                r.overall.n
            ),
        }
    }

    /// The served roles' work in the stage.
    pub fn served(&self) -> &[RoleStats] {
        match self {
            StageSummary::Candidates(c) => &c.served,
            StageSummary::Labels(l) => &l.served,
            StageSummary::Cpt(c) => &c.served,
            StageSummary::Sft(s) => &s.served,
            _ => &[],
        }
    }
}
