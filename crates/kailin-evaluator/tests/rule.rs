//! The rule on a hand-made hierarchy (`fixtures/mesh/mini.tsv`) and corpus, where the right
//! answer is known by construction.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use kailin_core::{Document, Provenance};
use kailin_evaluator::{
    Corpus, Error, Evaluator, Explanation, IcSource, Item, JudgeOptions, Judgement, Label, Outcome, RuleEvaluator,
    RuleOptions, TermSource, judge_examples, preference_pair,
};
use kailin_mesh::{Aggregate, Mesh, Similarity};
use kailin_retrieval::{Retrieved, Retriever};

fn mesh() -> Mesh {
    Mesh::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/mesh/mini.tsv")).unwrap()
}

fn doc(id: &str, text: &str, mesh: &[&str]) -> Document {
    Document {
        id: id.into(),
        text: text.into(),
        mesh: mesh.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// The source document d and its possible contexts.
fn corpus() -> Corpus {
    Corpus::new([
        doc("d", "Levodopa in Parkinson disease.", &["Parkinson Disease", "Levodopa", "Humans"]),
        doc("near", "Dopamine in Alzheimer disease.", &["Alzheimer Disease", "Dopamine"]),
        doc("same", "Dopamine and Alzheimer disease again.", &["Dopamine", "Alzheimer Disease"]),
        doc("far", "Asthma in winter.", &["Asthma"]),
        doc("none", "The committee's quarterly report.", &[]),
        doc("bare", "No headings, but asthma and bronchial diseases in the text.", &[]),
    ])
    .unwrap()
}

/// An in-memory retriever: each question's context ids are given.
#[derive(Debug)]
struct Fixed(HashMap<&'static str, Vec<&'static str>>);

impl Retriever for Fixed {
    type Error = std::io::Error;

    fn retrieve(&self, queries: &[&str], k: usize) -> Result<Vec<Vec<Retrieved>>, std::io::Error> {
        queries
            .iter()
            .map(|q| {
                let ids = self.0.get(q).ok_or_else(|| std::io::Error::other(format!("unexpected query {q:?}")))?;
                Ok(ids
                    .iter()
                    .take(k)
                    .enumerate()
                    .map(|(i, id)| Retrieved { id: (*id).into(), score: 1.0 - i as f32 / 10.0 })
                    .collect())
            })
            .collect()
    }
}

fn fixed() -> Fixed {
    Fixed(HashMap::from([
        ("near?", vec!["near"]),
        ("same?", vec!["same"]),
        ("far?", vec!["far"]),
        ("none?", vec!["none"]),
        ("self first?", vec!["d", "far", "near"]),
        ("ghost?", vec!["ghost"]),
        ("two?", vec!["near", "far"]),
    ]))
}

fn judge(options: RuleOptions, doc_id: &str, questions: [&str; 2]) -> Judgement {
    let (mesh, corpus) = (mesh(), corpus());
    let rule = RuleEvaluator::new(&mesh, &corpus, fixed(), options).unwrap();
    let d = corpus.get(doc_id).unwrap();
    rule.evaluate(&[Item { doc: d, questions }]).unwrap().remove(0)
}

/// One context per question, under the paper's literal Eq. 4 (mean of all pairs, intrinsic
/// IC): scores a person can check by hand.
fn one() -> RuleOptions {
    RuleOptions { k: 1, aggregate: Aggregate::Mean, ic: IcSource::Intrinsic, ..Default::default() }
}

#[test]
fn the_defaults_pick_the_known_answer_too() {
    let options = RuleOptions { k: 1, ..Default::default() };
    assert_eq!((options.aggregate, options.ic), (Aggregate::BestMatch, IcSource::Corpus));
    assert_eq!(judge(options.clone(), "d", ["far?", "near?"]).preferred, Some(1));
    assert_eq!(judge(options.clone(), "d", ["near?", "far?"]).preferred, Some(0));
    assert_eq!(judge(options, "d", ["near?", "same?"]).outcome, Outcome::Tie);
}

#[test]
fn the_closer_context_wins_in_either_order() {
    let j = judge(one(), "d", ["far?", "near?"]);
    assert_eq!((j.preferred, j.outcome), (Some(1), Outcome::Preferred));
    let [a, b] = j.scores.map(Option::unwrap);
    assert!(b > a && a >= 0.0, "{a} {b}");
    let j = judge(one(), "d", ["near?", "far?"]);
    assert_eq!(j.preferred, Some(0));
    assert_eq!(j.contexts[0][0].doc_id, "near");
}

#[test]
fn equal_scores_are_a_tie_and_so_are_those_within_the_margin() {
    let j = judge(one(), "d", ["near?", "same?"]);
    assert_eq!((j.preferred, j.outcome), (None, Outcome::Tie));
    assert_eq!(j.scores[0], j.scores[1]);
    let open = judge(one(), "d", ["far?", "near?"]);
    let gap = open.margin().unwrap();
    let j = judge(RuleOptions { margin: gap, ..one() }, "d", ["far?", "near?"]);
    assert_eq!((j.preferred, j.outcome), (None, Outcome::Tie));
    let j = judge(RuleOptions { margin: gap * 0.99, ..one() }, "d", ["far?", "near?"]);
    assert_eq!(j.preferred, Some(1));
}

#[test]
fn no_terms_is_no_label_never_a_zero_that_loses() {
    // A context without terms: no score for that side, no label.
    let j = judge(RuleOptions { terms: TermSource::Headings, ..one() }, "d", ["none?", "far?"]);
    assert_eq!((j.preferred, j.outcome), (None, Outcome::NoTerms));
    assert_eq!(j.scores[0], None);
    assert!(j.scores[1].is_some());
    // A document without terms: nothing to compare with.
    let j = judge(one(), "none", ["near?", "far?"]);
    assert_eq!((j.preferred, j.outcome, j.scores), (None, Outcome::NoTerms, [None, None]));
}

#[test]
fn documents_without_headings_get_extracted_terms() {
    let (mesh, corpus) = (mesh(), corpus());
    let rule = RuleEvaluator::new(&mesh, &corpus, fixed(), one()).unwrap();
    let bare = corpus.get("bare").unwrap();
    let j = rule.evaluate(&[Item { doc: bare, questions: ["far?", "near?"] }]).unwrap().remove(0);
    let Explanation::Rule(why) = &j.explanation else { panic!("{:?}", j.explanation) };
    let names: Vec<&str> = why.document_terms.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["Asthma", "Bronchial Diseases"]);
    assert_eq!(j.preferred, Some(0)); // asthma context is closer to an asthma text
    // Headings only: the same document has no terms.
    let rule =
        RuleEvaluator::new(&mesh, &corpus, fixed(), RuleOptions { terms: TermSource::Headings, ..one() }).unwrap();
    let j = rule.evaluate(&[Item { doc: bare, questions: ["far?", "near?"] }]).unwrap().remove(0);
    assert_eq!(j.outcome, Outcome::NoTerms);
}

#[test]
fn the_explanation_names_the_true_mica_and_leaves_check_tags_out() {
    let (mesh, corpus) = (mesh(), corpus());
    let rule = RuleEvaluator::new(&mesh, &corpus, fixed(), RuleOptions { k: 2, ..one() }).unwrap();
    let j = rule.evaluate(&[Item { doc: corpus.get("d").unwrap(), questions: ["two?", "far?"] }]).unwrap().remove(0);
    let Explanation::Rule(why) = &j.explanation else { panic!() };
    // "Humans" is not in the fixture hierarchy; in any case check tags are never terms.
    assert!(why.document_terms.iter().all(|t| t.name != "Humans"));
    assert_eq!(why.unresolved, ["Humans"]);
    // Brute force over every document term × context term.
    let sim = Similarity::new(&mesh);
    let doc_terms: Vec<_> = why.document_terms.iter().map(|t| mesh.by_ui(&t.ui).unwrap()).collect();
    let mut best = (f64::NEG_INFINITY, None);
    for c in &why.candidates[0].contexts {
        for t in &c.terms {
            for &a in &doc_terms {
                let e = sim.explain(a, mesh.by_ui(&t.ui).unwrap());
                if e.score > best.0 {
                    best = (e.score, e.lca);
                }
            }
        }
    }
    let top = &why.candidates[0].top_pairs[0];
    assert_eq!(top.score, best.0);
    assert_eq!(top.mica.as_ref().map(|t| t.ui.as_str()), best.1.map(|d| mesh.descriptor(d).ui()));
    assert_eq!(top.mica.as_ref().unwrap().name, "Neurodegenerative Diseases");
    // The pairs are ranked, and the score is the mean of the contexts' similarities.
    let pairs = &why.candidates[0].top_pairs;
    assert!(pairs.windows(2).all(|w| w[0].score >= w[1].score));
    let sims: Vec<f64> = why.candidates[0].contexts.iter().map(|c| c.similarity.unwrap()).collect();
    assert!((j.scores[0].unwrap() - sims.iter().sum::<f64>() / sims.len() as f64).abs() < 1e-12);
}

#[test]
fn best_match_average_is_an_option() {
    let j = judge(RuleOptions { aggregate: Aggregate::BestMatch, ..one() }, "d", ["far?", "near?"]);
    assert_eq!(j.preferred, Some(1));
    let mean = judge(one(), "d", ["far?", "near?"]);
    assert_ne!(j.scores, mean.scores);
}

#[test]
fn the_source_can_be_left_out_of_its_own_contexts() {
    let j = judge(one(), "d", ["self first?", "far?"]);
    assert_eq!(j.contexts[0][0].doc_id, "d");
    let j = judge(RuleOptions { exclude_source: true, ..one() }, "d", ["self first?", "far?"]);
    assert_eq!(j.contexts[0][0].doc_id, "far");
    assert_eq!(j.contexts[0].len(), 1);
    assert_eq!(j.outcome, Outcome::Tie);
}

#[test]
fn empty_questions_are_skipped_not_dropped() {
    let (mesh, corpus) = (mesh(), corpus());
    let rule = RuleEvaluator::new(&mesh, &corpus, fixed(), one()).unwrap();
    let d = corpus.get("d").unwrap();
    let out = rule
        .evaluate(&[
            Item { doc: d, questions: ["  ", "near?"] },
            Item { doc: d, questions: ["far?", "near?"] },
            Item { doc: d, questions: ["near?", ""] },
        ])
        .unwrap();
    let outcomes: Vec<Outcome> = out.iter().map(|j| j.outcome).collect();
    assert_eq!(outcomes, [Outcome::EmptyQuestion, Outcome::Preferred, Outcome::EmptyQuestion]);
    assert_eq!(out[1].preferred, Some(1));
}

#[test]
fn bad_corpora_and_contexts_are_typed_errors() {
    let (mesh, corpus) = (mesh(), corpus());
    let rule = RuleEvaluator::new(&mesh, &corpus, fixed(), one()).unwrap();
    let err = rule.evaluate(&[Item { doc: corpus.get("d").unwrap(), questions: ["ghost?", "near?"] }]).unwrap_err();
    assert!(matches!(&err, Error::UnknownContext { id } if id == "ghost"), "{err}");
    let err = Corpus::new([doc("a", "x", &[]), doc("b", "y", &[]), doc("a", "z", &[])]).unwrap_err();
    assert!(matches!(err, Error::DuplicateDocument { first: 1, second: 3, .. }), "{err}");
    assert!(matches!(Corpus::new([doc("", "x", &[])]).unwrap_err(), Error::EmptyId { record: 1 }));
    let err = RuleEvaluator::new(&mesh, &corpus, fixed(), RuleOptions { k: 0, ..one() }).unwrap_err();
    assert!(matches!(err, Error::Options(_)));
    let err = RuleEvaluator::new(&mesh, &corpus, fixed(), RuleOptions { margin: f64::NAN, ..one() }).unwrap_err();
    assert!(matches!(err, Error::Options(_)));
    // A failing retriever is an error naming retrieval.
    let err = rule.evaluate(&[Item { doc: corpus.get("d").unwrap(), questions: ["unknown", "near?"] }]).unwrap_err();
    assert!(err.to_string().starts_with("retrieval: unexpected query"), "{err}");
}

#[test]
fn labels_are_flat_json_lines_that_read_back() {
    let j = judge(one(), "d", ["far?", "near?"]);
    let label = Label { doc_id: "d".into(), questions: ["far?".into(), "near?".into()], judgement: j };
    let v = serde_json::to_value(&label).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    for key in ["doc_id", "questions", "preferred", "scores", "outcome", "contexts", "explanation"] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert_eq!(v["preferred"], 1);
    assert_eq!(v["outcome"], "preferred");
    assert_eq!(v["explanation"]["kind"], "rule");
    let back: Label = serde_json::from_str(&serde_json::to_string(&label).unwrap()).unwrap();
    assert_eq!(back, label);
    let tie = Label { judgement: judge(one(), "d", ["near?", "same?"]), ..label.clone() };
    let v = serde_json::to_value(&tie).unwrap();
    assert!(v["preferred"].is_null());
}

#[test]
fn labels_become_preference_pairs_and_judge_examples() {
    let corpus = corpus();
    let label = Label {
        doc_id: "d".into(),
        questions: ["far?".into(), "near?".into()],
        judgement: judge(one(), "d", ["far?", "near?"]),
    };
    let provenance = Provenance { agent: "evaluator".into(), ..Default::default() };
    let pair = preference_pair(&label, &corpus, &provenance).unwrap().unwrap();
    assert_eq!(pair.chosen.question, "near?");
    assert_eq!(pair.rejected.question, "far?");
    assert_eq!(pair.chosen.context.doc_ids, ["near"]);
    assert_eq!(pair.chosen.context.text, "Dopamine in Alzheimer disease.");
    assert!(pair.score_chosen > pair.score_rejected);
    let tie = Label { judgement: judge(one(), "d", ["near?", "same?"]), ..label.clone() };
    assert_eq!(preference_pair(&tie, &corpus, &provenance).unwrap(), None);

    let (examples, dropped) = judge_examples(&[label, tie], &corpus, &JudgeOptions::default()).unwrap();
    assert_eq!(dropped, 1);
    assert_eq!(examples.len(), 2);
    // Shown in the label's order, the preferred (second) is "B"; swapped, it is "A".
    assert_eq!(examples[0].completion, "B");
    assert_eq!(examples[1].completion, "A");
    let a_first = examples[0].prompt.find("A. Question: far?").unwrap();
    assert!(examples[0].prompt[a_first..].contains("B. Question: near?"));
    assert!(examples[1].prompt.contains("A. Question: near?"));
    assert!(examples[0].prompt.starts_with("Document: Levodopa in Parkinson disease."));
}
