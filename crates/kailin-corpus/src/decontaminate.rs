//! Decontamination: the distilled corpus must never contain the evaluation set.

use std::collections::{HashMap, HashSet};

use crate::ngram::{ngram_hashes, words};

/// Why a record was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contamination {
    /// Its id is an evaluation id (e.g. a PubMedQA test PMID).
    Id,
    /// It shares a word n-gram with an evaluation text.
    Overlap {
        /// The shared words, as they appear (lower-cased) in the record.
        ngram: String,
        /// Id of the evaluation text it overlaps.
        eval_id: String,
    },
}

impl std::fmt::Display for Contamination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Contamination::Id => f.write_str("evaluation id"),
            Contamination::Overlap { ngram, eval_id } => write!(f, "shares \"{ngram}\" with evaluation text {eval_id}"),
        }
    }
}

/// Excludes records by id and by word n-gram overlap (13-grams by default) with evaluation
/// questions and contexts. Text is compared as lower-cased alphanumeric words.
#[derive(Debug, Clone)]
pub struct Decontaminator {
    n: usize,
    ids: HashSet<String>,
    ngrams: HashMap<u64, u32>,
    eval_ids: Vec<String>,
}

impl Default for Decontaminator {
    fn default() -> Self {
        Self::new(13)
    }
}

impl Decontaminator {
    /// Overlap measured in word `n`-grams.
    pub fn new(n: usize) -> Self {
        Decontaminator { n: n.max(1), ids: HashSet::new(), ngrams: HashMap::new(), eval_ids: Vec::new() }
    }

    /// Excludes these record ids outright.
    pub fn exclude_ids<S: Into<String>>(&mut self, ids: impl IntoIterator<Item = S>) -> &mut Self {
        self.ids.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Adds an evaluation text (a question or a context) whose n-grams must not appear.
    pub fn add_eval_text(&mut self, eval_id: &str, text: &str) -> &mut Self {
        let index = self.eval_ids.len() as u32;
        self.eval_ids.push(eval_id.to_owned());
        let ws = words(text);
        for (_, h) in ngram_hashes(&ws, self.n) {
            self.ngrams.entry(h).or_insert(index);
        }
        self
    }

    /// Number of evaluation ids and n-grams held.
    pub fn size(&self) -> (usize, usize) {
        (self.ids.len(), self.ngrams.len())
    }

    /// Whether a record (its id and its texts) is contaminated, and why.
    pub fn check(&self, id: &str, texts: &[&str]) -> Option<Contamination> {
        if self.ids.contains(id) {
            return Some(Contamination::Id);
        }
        for text in texts {
            let ws = words(text);
            for (i, h) in ngram_hashes(&ws, self.n) {
                if let Some(&e) = self.ngrams.get(&h) {
                    return Some(Contamination::Overlap {
                        ngram: ws[i..i + self.n].join(" "),
                        eval_id: self.eval_ids[e as usize].clone(),
                    });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_and_overlap() {
        let mut d = Decontaminator::new(5);
        d.exclude_ids(["111"]);
        d.add_eval_text("q9", "Do statins reduce the risk of stroke in older adults with diabetes?");
        assert_eq!(d.check("111", &["anything"]), Some(Contamination::Id));
        let hit = d.check("222", &["We ask: do STATINS reduce the risk, of stroke? Yes."]).unwrap();
        assert_eq!(hit, Contamination::Overlap { ngram: "do statins reduce the risk".into(), eval_id: "q9".into() });
        assert_eq!(d.check("333", &["Statins reduce stroke risk in adults."]), None, "four shared words are not five");
        assert_eq!(d.check("444", &[]), None);
    }
}
