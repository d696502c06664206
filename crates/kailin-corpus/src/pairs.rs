//! Retrieval training pairs from the QA datasets: a question and a passage that answers it
//! (`kailin-core`'s [`RetrievalPair`]), for fine-tuning a sentence encoder.

use std::collections::{BTreeSet, HashSet};

use kailin_core::RetrievalPair;

use crate::bioasq::BioasqQuestion;
use crate::error::{Error, Result};
use crate::ngram::words;
use crate::pubmedqa::PubmedqaRecord;

/// A held-out question and its gold passages: what a retrieval benchmark scores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldOutQuery {
    /// The question.
    pub query: String,
    /// Its gold snippets' texts, each once.
    pub gold: Vec<String>,
}

/// BioASQ split into training pairs and held-out questions (see [`bioasq_pairs`]).
#[derive(Debug, Clone, Default)]
pub struct BioasqPairs {
    /// A training question and each of its snippets, in file and snippet order.
    pub train: Vec<RetrievalPair>,
    /// The held-out batches' questions.
    pub held_out: Vec<HeldOutQuery>,
    /// The batches held out (file names).
    pub held_out_files: Vec<String>,
    /// Training questions dropped because their words repeat a held-out or earlier question.
    pub repeats: usize,
    /// Training pairs dropped because their snippet is a held-out question's gold.
    pub held_out_snippets: usize,
    /// Questions without a question body or snippet text.
    pub empty: usize,
}

/// Splits BioASQ golden batches (`(file name, questions)`, as read) into training pairs —
/// each training question with each of its distinct snippets — and held-out questions: the
/// batches whose file name matches one of `held_out` (glob patterns: `10B5_golden.json`,
/// `10B*`). No held-out question is ever trained on: a training question whose words repeat
/// one is dropped, and so is a training pair whose snippet is a held-out question's gold
/// passage (the benchmark's answer). Repeated training questions are kept once.
///
/// Errors: a pattern that is not a glob, or one that matches no batch.
pub fn bioasq_pairs(batches: &[(String, Vec<BioasqQuestion>)], held_out: &[&str]) -> Result<BioasqPairs> {
    let mut patterns = Vec::with_capacity(held_out.len());
    for p in held_out {
        let pattern =
            glob::Pattern::new(p).map_err(|e| Error::Pattern { pattern: (*p).to_owned(), message: e.to_string() })?;
        if !batches.iter().any(|(file, _)| pattern.matches(file)) {
            let known: Vec<&str> = batches.iter().map(|(f, _)| f.as_str()).collect();
            return Err(Error::Pattern {
                pattern: (*p).to_owned(),
                message: format!("matches none of the batches read: {known:?}"),
            });
        }
        patterns.push(pattern);
    }
    let held = |file: &str| patterns.iter().any(|p| p.matches(file));
    let mut out = BioasqPairs::default();
    let (mut seen, mut gold) = (HashSet::new(), HashSet::new());
    for (file, questions) in batches.iter().filter(|(file, _)| held(file)) {
        out.held_out_files.push(file.clone());
        for q in questions {
            let snippets = distinct_snippets(q);
            if q.body.trim().is_empty() || snippets.is_empty() {
                out.empty += 1;
                continue;
            }
            seen.insert(words(&q.body));
            gold.extend(snippets.iter().map(|s| s.to_owned()));
            out.held_out.push(HeldOutQuery {
                query: q.body.trim().to_owned(),
                gold: snippets.iter().map(|s| (*s).to_owned()).collect(),
            });
        }
    }
    for (_, questions) in batches.iter().filter(|(file, _)| !held(file)) {
        for q in questions {
            let snippets = distinct_snippets(q);
            if q.body.trim().is_empty() || snippets.is_empty() {
                out.empty += 1;
                continue;
            }
            if !seen.insert(words(&q.body)) {
                out.repeats += 1;
                continue;
            }
            for s in snippets {
                if gold.contains(s) {
                    out.held_out_snippets += 1;
                } else {
                    out.train.push(RetrievalPair {
                        query: q.body.trim().to_owned(),
                        positive: s.to_owned(),
                        negatives: Vec::new(),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// A question's snippet texts, trimmed, each once, in order.
fn distinct_snippets(q: &BioasqQuestion) -> Vec<&str> {
    let mut seen = HashSet::new();
    q.snippets.iter().map(|s| s.text.trim()).filter(|t| !t.is_empty() && seen.insert(*t)).collect()
}

/// PubMedQA records as pairs: the question and its abstract (the contexts joined by spaces),
/// leaving out every record whose PMID is in `excluded` (the test split); with the number
/// left out. Records without a question or context are left out too (counted).
pub fn pubmedqa_pairs(records: &[PubmedqaRecord], excluded: &BTreeSet<String>) -> (Vec<RetrievalPair>, usize) {
    let mut left_out = 0;
    let mut pairs = Vec::with_capacity(records.len());
    for r in records {
        let positive = r.contexts.iter().map(|c| c.trim()).filter(|c| !c.is_empty()).collect::<Vec<_>>().join(" ");
        if excluded.contains(&r.pmid) || r.question.trim().is_empty() || positive.is_empty() {
            left_out += 1;
            continue;
        }
        pairs.push(RetrievalPair { query: r.question.trim().to_owned(), positive, negatives: Vec::new() });
    }
    (pairs, left_out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::bioasq::Snippet;

    fn q(body: &str, snippets: &[&str]) -> BioasqQuestion {
        BioasqQuestion {
            id: body.into(),
            body: body.into(),
            kind: "factoid".into(),
            documents: vec![],
            snippets: snippets.iter().map(|t| Snippet { text: (*t).into(), pmid: "1".into() }).collect(),
            ideal_answer: vec![],
            exact_answer: serde_json::Value::Null,
        }
    }

    #[test]
    fn held_out_questions_and_their_snippets_are_never_trained_on() {
        let batches = vec![
            (
                "8B1_golden.json".to_owned(),
                vec![
                    q(
                        "What does BRCA1 do?",
                        &["BRCA1 repairs DNA.", "BRCA1 repairs DNA.", "It is a tumour suppressor."],
                    ),
                    q("what does brca1 do", &["Another snippet."]),
                    q("Which drug treats gout?", &["Allopurinol treats gout.", "Colchicine too."]),
                    q("", &["No question."]),
                ],
            ),
            (
                "10B5_golden.json".to_owned(),
                vec![q("Which drug treats gout?", &["Colchicine too."]), q("Is TP53 mutated?", &[])],
            ),
        ];
        let split = bioasq_pairs(&batches, &["10B*"]).unwrap();
        assert_eq!(split.held_out_files, ["10B5_golden.json"]);
        assert_eq!(
            split.held_out,
            vec![HeldOutQuery { query: "Which drug treats gout?".into(), gold: vec!["Colchicine too.".into()] }]
        );
        let trained: Vec<(&str, &str)> = split.train.iter().map(|p| (p.query.as_str(), p.positive.as_str())).collect();
        assert_eq!(
            trained,
            [("What does BRCA1 do?", "BRCA1 repairs DNA."), ("What does BRCA1 do?", "It is a tumour suppressor.")]
        );
        // The repeated BRCA1 question, and the gout question that repeats a held-out one.
        assert_eq!(split.repeats, 2);
        assert_eq!((split.held_out_snippets, split.empty), (0, 2));
        // A pattern matching nothing, or not a pattern: errors naming it.
        let err = bioasq_pairs(&batches, &["11B*"]).unwrap_err();
        assert!(err.to_string().contains("11B*") && err.to_string().contains("8B1_golden.json"), "{err}");
        assert!(bioasq_pairs(&batches, &["[10B"]).is_err());
    }

    #[test]
    fn a_training_pair_whose_snippet_is_held_out_gold_is_dropped() {
        let batches = vec![
            ("a.json".to_owned(), vec![q("Q one?", &["Shared snippet.", "Own snippet."])]),
            ("b.json".to_owned(), vec![q("Q two?", &["Shared snippet."])]),
        ];
        let split = bioasq_pairs(&batches, &["b.json"]).unwrap();
        assert_eq!(split.train.len(), 1);
        assert_eq!(split.held_out_snippets, 1);
    }

    #[test]
    fn pubmedqa_pairs_leave_out_the_test_split() {
        let record = |pmid: &str| PubmedqaRecord {
            pmid: pmid.into(),
            question: "Does it work?".into(),
            contexts: vec!["First part.".into(), " Second part.".into()],
            labels: vec![],
            meshes: vec![],
            year: None,
            long_answer: String::new(),
            final_decision: "yes".into(),
        };
        let excluded: BTreeSet<String> = ["2".to_owned()].into();
        let (pairs, left_out) = pubmedqa_pairs(&[record("1"), record("2")], &excluded);
        assert_eq!(left_out, 1);
        assert_eq!(pairs[0].positive, "First part. Second part.");
    }
}
