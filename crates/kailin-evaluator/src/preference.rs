//! From judgements to training data: label lines, preference pairs and DPO examples.

use kailin_core::{Candidate, PreferencePair, Provenance};
use serde::{Deserialize, Serialize};

use crate::corpus::{Corpus, context_of};
use crate::error::Result;
use crate::judgement::{Judgement, Outcome};

/// One line of a labels file: the document, its two questions and the judgement, flat:
/// `{"doc_id", "questions", "preferred", "scores", "outcome", "contexts", "explanation"}`.
///
/// Read labels are validated, so that none is silently dropped or miscounted: `preferred` is
/// 0, 1 or null; the outcome is `preferred` exactly when `preferred` is set, and then both
/// scores are present. A label that breaks this is an error (with its file and line, through
/// [`kailin_core::JsonlReader`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLabel")]
pub struct Label {
    /// The source document's id.
    pub doc_id: String,
    /// The two candidate questions.
    pub questions: [String; 2],
    /// The verdict.
    #[serde(flatten)]
    pub judgement: Judgement,
}

/// A label as read, before [`Label::check`].
#[derive(Deserialize)]
struct RawLabel {
    doc_id: String,
    questions: [String; 2],
    #[serde(flatten)]
    judgement: Judgement,
}

impl TryFrom<RawLabel> for Label {
    type Error = String;

    fn try_from(raw: RawLabel) -> std::result::Result<Label, String> {
        let label = Label { doc_id: raw.doc_id, questions: raw.questions, judgement: raw.judgement };
        label.check()?;
        Ok(label)
    }
}

impl Label {
    /// Checks that the label's fields agree (see the type's docs); the message says how not.
    pub fn check(&self) -> std::result::Result<(), String> {
        let j = &self.judgement;
        match (j.preferred, j.outcome) {
            (Some(p), _) if p > 1 => {
                Err(format!("label of document {:?}: preferred is {p}; it must be 0, 1 or null", self.doc_id))
            }
            (Some(p), Outcome::Preferred) => {
                if j.scores.iter().any(Option::is_none) {
                    Err(format!(
                        "label of document {:?}: outcome \"preferred\" (question {p}) needs both scores, found {:?}",
                        self.doc_id, j.scores
                    ))
                } else {
                    Ok(())
                }
            }
            (Some(p), other) => Err(format!(
                "label of document {:?}: outcome {:?} contradicts preferred {p} (a label with a preference has outcome \"preferred\")",
                self.doc_id,
                other.as_str()
            )),
            (None, Outcome::Preferred) => Err(format!(
                "label of document {:?}: outcome \"preferred\" without a preferred question (0 or 1)",
                self.doc_id
            )),
            (None, _) => Ok(()),
        }
    }
}

/// How many items ended in each [`Outcome`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    counts: [usize; Outcome::ALL.len()],
}

impl Tally {
    /// Counts one outcome.
    pub fn add(&mut self, outcome: Outcome) {
        self.counts[Self::slot(outcome)] += 1;
    }

    /// Items that ended in `outcome`.
    pub fn get(&self, outcome: Outcome) -> usize {
        self.counts[Self::slot(outcome)]
    }

    /// Items counted.
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    fn slot(outcome: Outcome) -> usize {
        Outcome::ALL.iter().position(|&o| o == outcome).unwrap_or(0)
    }
}

impl std::fmt::Display for Tally {
    /// `1000 items: 870 preferred, 12 tie, …` (outcomes with a zero count left out).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} items", self.total())?;
        let mut sep = ": ";
        for o in Outcome::ALL {
            if self.get(o) > 0 {
                write!(f, "{sep}{} {}", self.get(o), o.as_str())?;
                sep = ", ";
            }
        }
        Ok(())
    }
}

/// The preference pair of a label (chosen = the preferred candidate with its context), or
/// `None` for a label without preference (tie, no terms, skipped; or a hand-edited one whose
/// scores are missing): dropped, for the caller to count.
///
/// Errors: a context document the corpus lacks.
pub fn preference_pair(label: &Label, corpus: &Corpus, provenance: &Provenance) -> Result<Option<PreferencePair>> {
    let j = &label.judgement;
    let Some(win) = j.preferred.filter(|&w| w < 2) else { return Ok(None) };
    let lose = 1 - win;
    let (Some(score_chosen), Some(score_rejected)) = (j.scores[win], j.scores[lose]) else { return Ok(None) };
    let candidate = |side: usize| -> Result<Candidate> {
        Ok(Candidate {
            question: label.questions[side].clone(),
            context: context_of(corpus, j.contexts[side].iter().map(|c| c.doc_id.as_str()))?,
        })
    };
    Ok(Some(PreferencePair {
        doc_id: label.doc_id.clone(),
        chosen: candidate(win)?,
        rejected: candidate(lose)?,
        score_chosen,
        score_rejected,
        provenance: provenance.clone(),
    }))
}
