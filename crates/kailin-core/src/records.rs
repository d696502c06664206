//! The records that flow through the pipeline. Field names are stable: they are the JSONL
//! format other tools and later runs read.

use serde::{Deserialize, Serialize};

/// Who produced a generated record: enough to reproduce or filter it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The agent or stage (`question-generator/general`, `retriever/dense`, `answer-agent`…).
    pub agent: String,
    /// The model (path, name or hash), when a model was involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The random seed, when sampling was involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Free-form detail (prompt template version, retrieval k…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A source document: a PubMed abstract or anything with an id and text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// PMID or another stable id.
    pub id: String,
    /// Title (may be empty).
    #[serde(default)]
    pub title: String,
    /// Body text: the abstract, sections joined.
    pub text: String,
    /// MeSH descriptors as the source gives them: UIs (`D009369`) or names.
    #[serde(default)]
    pub mesh: Vec<String>,
    /// Publication year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<u16>,
    /// Where the record came from (`pubmed`, `pubmedqa`, `bc5cdr`, a file name…).
    #[serde(default)]
    pub source: String,
}

impl Document {
    /// What a retriever reads of the document (what the encoder embeds and BM25 indexes):
    /// the title, a space, the text, trimmed.
    pub fn retrieval_text(&self) -> String {
        format!("{} {}", self.title, self.text).trim().to_owned()
    }
}

/// A question, generated or gold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// A stable id.
    pub id: String,
    /// The question text.
    pub text: String,
    /// The document it was written from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_id: Option<String>,
    /// Kind (`yesno`, `factoid`, `list`, `summary`…), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Who generated it; `None` for gold questions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// A question's context: retrieved passages and the documents they come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Ids of the documents the text was taken from, in rank order.
    pub doc_ids: Vec<String>,
    /// The context text.
    pub text: String,
}

/// One side of a preference pair: a question with its context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The question.
    pub question: String,
    /// Its context.
    pub context: Context,
}

/// Two question–context pairs from the same document, one preferred (the evaluator's label);
/// the training data of DPO.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    /// The source document.
    pub doc_id: String,
    /// The preferred pair.
    pub chosen: Candidate,
    /// The other pair.
    pub rejected: Candidate,
    /// The evaluator's score of the chosen pair.
    pub score_chosen: f64,
    /// The evaluator's score of the rejected pair.
    pub score_rejected: f64,
    /// Who labelled it.
    pub provenance: Provenance,
}

/// A continued-pre-training record: a question and its context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CptRecord {
    /// A stable id.
    pub id: String,
    /// The question.
    pub question: String,
    /// Its context.
    pub context: Context,
    /// Who produced it.
    pub provenance: Provenance,
}

/// A supervised fine-tuning record: question, context and answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SftRecord {
    /// A stable id.
    pub id: String,
    /// The question.
    pub question: String,
    /// Its context.
    pub context: Context,
    /// The answer.
    pub answer: String,
    /// Who produced it.
    pub provenance: Provenance,
}
