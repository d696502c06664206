//! From judgements to training data: label lines, preference pairs and DPO examples.

use kailin_core::{Candidate, PreferencePair, Provenance};
use serde::{Deserialize, Serialize};

use crate::corpus::{Corpus, context_of};
use crate::error::Result;
use crate::judgement::{Judgement, Outcome};

/// One line of a labels file: the document, its two questions and the judgement, flat:
/// `{"doc_id", "questions", "preferred", "scores", "outcome", "contexts", "explanation"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// The source document's id.
    pub doc_id: String,
    /// The two candidate questions.
    pub questions: [String; 2],
    /// The verdict.
    #[serde(flatten)]
    pub judgement: Judgement,
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
