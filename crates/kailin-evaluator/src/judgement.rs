//! The evaluator seam and what it returns: which of two question–context pairs of one document
//! is preferred, both scores, and why.

use kailin_core::Document;
use serde::{Deserialize, Serialize};

/// Two candidate questions written from one document: the evaluator's input.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    /// The source document.
    pub doc: &'a Document,
    /// The two candidate questions.
    pub questions: [&'a str; 2],
}

/// Compares the two candidates of each item (Eq. 5 of m-KAILIN: the pair whose context is
/// closer to the document wins). Implemented by the MeSH rule ([`RuleEvaluator`]) and by
/// language-model judges ([`PairwiseJudge`]); anything else can plug in.
///
/// [`RuleEvaluator`]: crate::RuleEvaluator
/// [`PairwiseJudge`]: crate::PairwiseJudge
pub trait Evaluator {
    /// The evaluator's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// One judgement per item, in order. A candidate that cannot be judged (an empty question,
    /// no MeSH terms) gives a judgement without preference whose [`Outcome`] says why; only a
    /// failure of the machinery (retrieval, model) is an error.
    ///
    /// Errors: the evaluator's.
    fn evaluate(&self, items: &[Item<'_>]) -> Result<Vec<Judgement>, Self::Error>;

    /// A short name for provenance (`rule/mean`, `learned`, `llm-judge`…).
    fn name(&self) -> String;
}

/// What became of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// One candidate is preferred.
    Preferred,
    /// The scores are within the margin: no label.
    Tie,
    /// The document, or every context of a candidate, has no MeSH term in the hierarchy: no
    /// label (never a 0.0 that the other side beats).
    NoTerms,
    /// A question is empty (or only white space): no label.
    EmptyQuestion,
    /// The document is not in the corpus (set by callers that look documents up by id).
    UnknownDocument,
}

impl Outcome {
    /// Every outcome, in the order reports list them.
    pub const ALL: [Outcome; 5] =
        [Outcome::Preferred, Outcome::Tie, Outcome::NoTerms, Outcome::EmptyQuestion, Outcome::UnknownDocument];

    /// The outcome's name in files (`preferred`, `tie`, `no_terms`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Preferred => "preferred",
            Outcome::Tie => "tie",
            Outcome::NoTerms => "no_terms",
            Outcome::EmptyQuestion => "empty_question",
            Outcome::UnknownDocument => "unknown_document",
        }
    }
}

/// One retrieved context document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextDoc {
    /// The document's id.
    pub doc_id: String,
    /// The retriever's score.
    pub retrieval_score: f32,
}

/// An evaluator's verdict on one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// The preferred candidate (0 or 1); `None` for a tie or an item that could not be judged.
    pub preferred: Option<usize>,
    /// Each candidate's score (`None` where there is none: no terms, empty question).
    pub scores: [Option<f64>; 2],
    /// What became of the item.
    pub outcome: Outcome,
    /// Each candidate's retrieved context, best first.
    pub contexts: [Vec<ContextDoc>; 2],
    /// Why.
    pub explanation: Explanation,
}

impl Judgement {
    /// A judgement without preference, scores or contexts.
    pub fn skipped(outcome: Outcome) -> Self {
        Judgement {
            preferred: None,
            scores: [None, None],
            outcome,
            contexts: [Vec::new(), Vec::new()],
            explanation: Explanation::None,
        }
    }

    /// Whether both candidates retrieved the same set of contexts (in any order): then no
    /// evaluator can tell their contexts apart, and a preference says little.
    pub fn same_contexts(&self) -> bool {
        fn ids(c: &[ContextDoc]) -> Vec<&str> {
            let mut v: Vec<&str> = c.iter().map(|d| d.doc_id.as_str()).collect();
            v.sort_unstable();
            v
        }
        !self.contexts[0].is_empty() && ids(&self.contexts[0]) == ids(&self.contexts[1])
    }

    /// The score margin `|s0 − s1|`, when both scores exist.
    pub fn margin(&self) -> Option<f64> {
        match self.scores {
            [Some(a), Some(b)] => Some((a - b).abs()),
            _ => None,
        }
    }
}

/// Why a judgement was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Explanation {
    /// Nothing to explain (a skipped item).
    None,
    /// The MeSH rule's reasons.
    Rule(RuleExplanation),
    /// A language model's probabilities.
    Model(ModelExplanation),
}

/// A MeSH descriptor, as people read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    /// Descriptor UI (`D008175`).
    pub ui: String,
    /// Preferred name.
    pub name: String,
}

/// A document-term × context-term pair and what it contributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TermPair {
    /// The document's term.
    pub document: Term,
    /// The context's term.
    pub context: Term,
    /// Their most informative common ancestor (`None`: different trees).
    pub mica: Option<Term>,
    /// The pair's score (the MICA's information content under Resnik).
    pub score: f64,
}

/// One context document of a candidate, with its MeSH terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextTerms {
    /// The document's id.
    pub doc_id: String,
    /// Its terms in the hierarchy (after the ignored ones are left out).
    pub terms: Vec<Term>,
    /// Its set similarity with the document (`None`: no terms).
    pub similarity: Option<f64>,
}

/// How the rule scored one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateExplanation {
    /// Its contexts with their terms and similarities.
    pub contexts: Vec<ContextTerms>,
    /// The pairs that contributed most, best first.
    pub top_pairs: Vec<TermPair>,
}

/// The MeSH rule's reasons for a judgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleExplanation {
    /// The document's terms in the hierarchy (after the ignored ones are left out).
    pub document_terms: Vec<Term>,
    /// Headings of the document that name no descriptor of the hierarchy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unresolved: Vec<String>,
    /// Each candidate's reasons.
    pub candidates: [CandidateExplanation; 2],
}

/// A language-model judge's reasons: the probability that each candidate is the better one,
/// in each presentation order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelExplanation {
    /// P(candidate 0 preferred) when shown first (as "A").
    pub p_first_shown_first: f64,
    /// P(candidate 0 preferred) when shown second (as "B").
    pub p_first_shown_second: f64,
}
