//! DPO on the labelled pairs (whole documents held out for its implicit-reward accuracy), and
//! the check of what it is for: on held-out documents, the general agent's question before
//! and after DPO (same seeds), each scored with the MeSH rule against its document.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use kailin_core::{Document, DpoExample, Question};
use kailin_evaluator::{Corpus, Item};
use serde_json::json;

use super::Models;
use super::agents::{Agent, Prepared, generator};
use super::labels::{judge_all, rule_options};
use super::retrieval::Retrieval;
use crate::engine::{Lib, Run};
use crate::error::{Error, Result};
use crate::files::{fingerprint, need, read_records, write_records};
use crate::summary::{DpoCheckSummary, LabelSummary};

/// Evaluations over a DPO run with held-out pairs (each costs about half a training pass over
/// them).
const EVALUATIONS: u64 = 6;

/// Splits the preference pairs into training and held-out pairs by whole documents (the
/// prompt names the document), seeded: documents are drawn until `eval_pairs` pairs are held
/// out. `Err(note)` (everything trains) when fewer than twice as many pairs exist.
fn hold_out(
    pairs: Vec<DpoExample>,
    eval_pairs: usize,
    seed: u64,
) -> (Vec<DpoExample>, Result<Vec<DpoExample>, String>) {
    if eval_pairs == 0 {
        return (pairs, Err("no preference pairs held out (dpo.eval_pairs = 0)".into()));
    }
    if pairs.len() < 2 * eval_pairs {
        let note = format!(
            "too few pairs to hold out {eval_pairs} ({} labelled, {} needed): no held-out accuracy",
            pairs.len(),
            2 * eval_pairs
        );
        return (pairs, Err(note));
    }
    let mut prompts: Vec<&str> = pairs.iter().map(|p| p.prompt.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
    kailin_core::SplitMix64::new(seed ^ 0x6470_6f2d_6865_6c64).shuffle(&mut prompts);
    let mut held: BTreeSet<String> = BTreeSet::new();
    let mut count = 0;
    for prompt in prompts {
        if count >= eval_pairs {
            break;
        }
        count += pairs.iter().filter(|p| p.prompt == prompt).count();
        held.insert(prompt.to_owned());
    }
    let (eval, train): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|p| held.contains(&p.prompt));
    (train, Ok(eval))
}

/// The held-out documents of the check: retrieval-corpus documents outside the generation
/// corpus, with MeSH terms, seeded, at most `n` — those of the generation corpus's sources
/// first, then others. Returns them and how many were eligible.
fn check_documents<'a>(
    retrieval: &'a [Document],
    generation: &[Document],
    n: usize,
    seed: u64,
) -> (Vec<&'a Document>, usize) {
    let ids: BTreeSet<&str> = generation.iter().map(|d| d.id.as_str()).collect();
    let sources: BTreeSet<&str> = generation.iter().map(|d| d.source.as_str()).collect();
    let outside = retrieval.iter().filter(|d| !ids.contains(d.id.as_str()) && !d.mesh.is_empty());
    let (mut alike, mut other): (Vec<&Document>, Vec<&Document>) =
        outside.partition(|d| sources.contains(d.source.as_str()));
    let eligible = alike.len() + other.len();
    let mut rng = kailin_core::SplitMix64::new(seed ^ 0x6470_6f2d_6368_6563);
    rng.shuffle(&mut alike);
    rng.shuffle(&mut other);
    alike.extend(other);
    alike.truncate(n);
    (alike, eligible)
}

/// One row of `check.jsonl`.
#[derive(Debug, serde::Serialize)]
struct CheckRow<'a> {
    doc_id: &'a str,
    before: Option<&'a str>,
    after: Option<&'a str>,
    reward_before: Option<f64>,
    reward_after: Option<f64>,
    outcome: &'a str,
}

impl Run<'_> {
    /// DPO of the general agent on the labelled pairs, less the held-out ones: the trained
    /// model's directory, or why DPO did not run.
    pub(crate) fn dpo<A: AutodiffBackend>(
        &mut self,
        labels: &LabelSummary,
        labels_dir: &Path,
        general: &Agent,
        device: &A::Device,
    ) -> Result<Result<PathBuf, String>> {
        let d = self.config.dpo.clone();
        let general = match (d.enabled, labels.pairs, general.local()) {
            (false, ..) => return Ok(Err("disabled (dpo.enabled = false)".to_owned())),
            (_, _, None) => return Ok(Err("the general agent is served: DPO needs its local weights".to_owned())),
            (_, 0, _) => return Ok(Err("no preference pair was labelled".to_owned())),
            (true, _, Some(general)) => general.to_owned(),
        };
        let preference = labels_dir.join("preference.jsonl");
        let seed = self.config.run.seed;
        let dir = self.train::<A>(
            "dpo",
            &["labels", "agent-general"],
            // The evaluation schedule is not part of the key: evaluating never changes the trained
            // model (no gradient, no draw from the seeded generator), only the held-out curve.
            json!({ "beta": d.beta, "eval_pairs": d.eval_pairs }),
            kailin_train::Objective::Dpo { beta: d.beta, nll: d.nll },
            &general,
            d.settings(),
            |tmp| {
                let (train, eval) = hold_out(read_records(&preference)?, d.eval_pairs, seed);
                let data = tmp.join("data/train.jsonl");
                std::fs::create_dir_all(tmp.join("data"))
                    .map_err(|source| Error::Io { path: tmp.join("data"), source })?;
                write_records(&data, &train)?;
                let prepared = Prepared::data(data, train.len());
                Ok(match eval {
                    Err(note) => Prepared { note: Some(note), ..prepared },
                    Ok(eval) => {
                        let path = tmp.join("data/eval.jsonl");
                        write_records(&path, &eval)?;
                        Prepared { eval: Some(path), eval_records: eval.len(), evaluations: EVALUATIONS, ..prepared }
                    }
                })
            },
            device,
        )?;
        Ok(Ok(dir))
    }

    /// The check of DPO on `dpo.check_docs` held-out documents: the general agent `before`
    /// and the DPO-trained one `after` each write one question (greedy, the same seeds, as the
    /// final questions are written), and the MeSH rule scores each question's retrieved
    /// contexts against its document (Eq. 4) — whatever `evaluator.kind` is, since this is the
    /// reward DPO is meant to raise. `None` when `dpo.check_docs` is 0.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dpo_check<B: burn::prelude::Backend>(
        &mut self,
        models: &Models,
        retrieval: &Retrieval,
        docs: &[Document],
        before: &Path,
        after: &Path,
        device: &B::Device,
    ) -> Result<Option<DpoCheckSummary>> {
        let config = self.config.clone();
        let n = config.dpo.check_docs;
        if n == 0 {
            return Ok(None);
        }
        let mesh_path = config.data.dir.join(&config.data.mesh);
        need(&mesh_path, "the MeSH file", "set data.mesh (under data.dir)")?;
        let (check, eligible) = check_documents(&retrieval.docs, docs, n, config.run.seed);
        let ids: Vec<&str> = check.iter().map(|d| d.id.as_str()).collect();
        let inputs = json!({
            "documents": ids,
            "questions": config.questions,
            "retrieval": config.retrieval,
            "aggregate": config.evaluator.aggregate,
            "margin": config.evaluator.margin,
            "mesh": fingerprint(&mesh_path)?,
            "seed": config.run.seed,
        });
        let dir = self.out.join("stages/dpo-check");
        let retriever = self.retriever::<B>(models, retrieval, device)?;
        let out_dir = self.out.clone();
        let after_stages = ["retrieval-corpus", "store", "agent-general", "dpo"];
        let (summary, _) = self.stage("dpo-check", dir, &after_stages, inputs, |tmp, progress| {
            let owned: Vec<Document> = check.iter().map(|d| (*d).clone()).collect();
            let mut written: Vec<Vec<Question>> = Vec::new();
            let mut tallies = Vec::new();
            for (i, model) in [before, after].into_iter().enumerate() {
                let agent = Agent::Local(model.to_owned());
                let g = generator::<B>(&config, &out_dir, &agent, "question-generator/general", 0, true, device)?;
                let mut questions = Vec::new();
                let mut tally = kailin_question::Tally::default();
                for chunk in owned.chunks(super::WINDOW * config.questions.batch_size.max(1)) {
                    let out = g.generate(chunk, 1).lib()?;
                    questions.extend(out.questions);
                    tally.add(&out.tally);
                    progress(tally.documents + (i * owned.len()) as u64, 2 * owned.len() as u64, "documents");
                }
                write_records(&tmp.join(if i == 0 { "before.jsonl" } else { "after.jsonl" }), &questions)?;
                written.push(questions);
                tallies.push(tally);
            }
            let first = |qs: &[Question]| -> BTreeMap<String, String> {
                let mut m = BTreeMap::new();
                for q in qs {
                    if let Some(d) = &q.doc_id {
                        m.entry(d.clone()).or_insert_with(|| q.text.clone());
                    }
                }
                m
            };
            let (b, a) = (first(&written[0]), first(&written[1]));
            let both: Vec<(&Document, [&str; 2])> =
                owned.iter().filter_map(|d| Some((d, [b.get(&d.id)?.as_str(), a.get(&d.id)?.as_str()]))).collect();
            let items: Vec<Item<'_>> = both.iter().map(|(doc, q)| Item { doc, questions: *q }).collect();
            let mesh = kailin_mesh::Mesh::load(&mesh_path).lib()?;
            let corpus = Corpus::new(retrieval.docs.iter().cloned()).lib()?;
            let rule = kailin_evaluator::RuleEvaluator::new(&mesh, &corpus, &retriever, rule_options(&config)).lib()?;
            let judgements = judge_all(&rule, &items, progress)?;
            let (mut rewards, mut unscored) = ([Vec::new(), Vec::new()], BTreeMap::<String, usize>::new());
            let mut rows = Vec::with_capacity(owned.len());
            let mut scored = judgements.iter();
            for d in &owned {
                let (qb, qa) = (b.get(&d.id).map(String::as_str), a.get(&d.id).map(String::as_str));
                let j = if qb.is_some() && qa.is_some() { scored.next() } else { None };
                let scores = j.map_or([None, None], |j| j.scores);
                let outcome = match (j, scores) {
                    (Some(_), [Some(x), Some(y)]) => {
                        rewards[0].push(x);
                        rewards[1].push(y);
                        "scored"
                    }
                    (Some(j), _) => j.outcome.as_str(),
                    (None, _) => match (qb, qa) {
                        (Some(_), None) => "no question after DPO",
                        (None, Some(_)) => "no question before DPO",
                        _ => "no question either time",
                    },
                };
                if outcome != "scored" {
                    *unscored.entry(outcome.to_owned()).or_default() += 1;
                }
                rows.push(CheckRow {
                    doc_id: &d.id,
                    before: qb,
                    after: qa,
                    reward_before: scores[0],
                    reward_after: scores[1],
                    outcome,
                });
            }
            write_records(&tmp.join("check.jsonl"), &rows)?;
            Ok(DpoCheckSummary {
                documents: owned.len(),
                eligible,
                before: tallies[0],
                after: tallies[1],
                scored: rewards[0].len(),
                unscored,
                reward: kailin_eval::PairedMeans::of(&rewards[0], &rewards[1]),
            })
        })?;
        Ok(Some(summary))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pair(doc: usize, k: usize) -> DpoExample {
        DpoExample { prompt: format!("document {doc}"), chosen: format!("q{k}?"), rejected: format!("r{k}?") }
    }

    #[test]
    fn pairs_are_held_out_by_whole_documents_and_only_when_enough_remain() {
        // Documents 0..6, two pairs each.
        let pairs: Vec<DpoExample> = (0..6).flat_map(|d| [pair(d, 2 * d), pair(d, 2 * d + 1)]).collect();
        let (train, eval) = hold_out(pairs.clone(), 3, 7);
        let eval = eval.unwrap();
        assert_eq!((train.len(), eval.len()), (8, 4), "two whole documents held out for 3 pairs");
        let held: BTreeSet<&str> = eval.iter().map(|p| p.prompt.as_str()).collect();
        assert!(train.iter().all(|p| !held.contains(p.prompt.as_str())), "no document on both sides");
        assert_eq!(hold_out(pairs.clone(), 3, 7).1.unwrap(), eval, "seeded");
        let (all, why) = hold_out(pairs.clone(), 7, 7);
        assert_eq!(all.len(), 12);
        assert!(why.unwrap_err().contains("too few pairs to hold out 7 (12 labelled, 14 needed)"));
        assert!(hold_out(pairs, 0, 7).1.is_err());
    }

    #[test]
    fn check_documents_are_outside_the_generation_corpus_and_have_mesh_terms() {
        let doc = |id: &str, source: &str, mesh: bool| Document {
            id: id.into(),
            text: "t".into(),
            mesh: if mesh { vec!["D001".into()] } else { vec![] },
            source: source.into(),
            ..Default::default()
        };
        let generation = vec![doc("g1", "pubmedqa", true)];
        let retrieval = vec![
            doc("g1", "pubmedqa", true),
            doc("p1", "pubmedqa", true),
            doc("p2", "pubmedqa", false),
            doc("b1", "bc5cdr", true),
        ];
        let (picked, eligible) = check_documents(&retrieval, &generation, 1, 3);
        assert_eq!((picked.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), eligible), (vec!["p1"], 2));
        // The generation corpus's source first, then the others.
        let (picked, eligible) = check_documents(&retrieval, &generation, 5, 3);
        let ids: Vec<&str> = picked.iter().map(|d| d.id.as_str()).collect();
        assert_eq!((ids, eligible), (vec!["p1", "b1"], 2));
    }
}
