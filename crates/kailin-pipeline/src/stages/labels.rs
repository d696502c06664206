//! Candidates from both agents, and the evaluator's labels with the preference dataset.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kailin_core::{Document, DpoExample, Provenance, Question};
use kailin_evaluator::{Corpus, Evaluator, Item, Label};
use serde_json::json;

use super::Models;
use super::agents::{Agent, generator};
use super::retrieval::Retrieval;
use crate::config::{AggregateKind, Config, EvaluatorKind};
use crate::engine::{Lib, Progress, Run};
use crate::error::{Error, Result};
use crate::files::{fingerprint, need, read_records, write_records};
use crate::summary::{CandidatesSummary, LabelSummary};

/// Each document's questions, by document id.
fn by_doc(qs: &[Question]) -> BTreeMap<&str, Vec<&str>> {
    let mut m: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for q in qs {
        if let Some(d) = q.doc_id.as_deref() {
            m.entry(d).or_default().push(q.text.as_str());
        }
    }
    m
}

impl Run<'_> {
    /// Candidate questions from both agents, `(general, domain)`.
    pub(crate) fn candidates<B: burn::prelude::Backend>(
        &mut self,
        agents: &(Agent, Agent),
        docs: &[Document],
        device: &B::Device,
    ) -> Result<(Vec<Question>, Vec<Question>)> {
        let config = self.config.clone();
        let q = config.questions.clone();
        let ids = [agents.0.identity(self, &config), agents.1.identity(self, &config)];
        let inputs = json!({ "questions": q, "agents": ids, "seed": config.run.seed });
        let after = ["corpus", "agent-general", "agent-domain"];
        let dir = self.out.join("stages/candidates");
        let out_dir = self.out.clone();
        let (_, dir) = self.per_document("candidates", dir, &after, inputs, docs.len(), |tmp, range, progress| {
            let docs = &docs[range];
            let total = docs.len() as u64 * 2;
            let mut out = Vec::new();
            let mut tallies = Vec::new();
            let mut served = Vec::new();
            for (i, (agent, name)) in
                [(&agents.0, "question-generator/general"), (&agents.1, "question-generator/domain")]
                    .into_iter()
                    .enumerate()
            {
                let generator = generator::<B>(&config, &out_dir, agent, name, i as u64, false, device)?;
                let mut questions = Vec::new();
                let mut tally = kailin_question::Tally::default();
                let per_call = (super::WINDOW * q.batch_size / q.n).max(1);
                for chunk in docs.chunks(per_call) {
                    let g = generator.generate(chunk, q.n).lib()?;
                    questions.extend(g.questions);
                    tally.add(&g.tally);
                    progress(tally.documents + i as u64 * docs.len() as u64, total, "documents");
                }
                served.extend(generator.served_stats());
                write_records(&tmp.join(if i == 0 { "general.jsonl" } else { "domain.jsonl" }), &questions)?;
                out.push(questions);
                tallies.push(tally);
            }
            let (g, d) = (by_doc(&out[0]), by_doc(&out[1]));
            let both: Vec<(&str, &str)> =
                g.iter().filter_map(|(doc, q)| Some((*q.first()?, *d.get(doc)?.first()?))).collect();
            Ok(CandidatesSummary {
                general: tallies[0],
                domain: tallies[1],
                identical_first: both.iter().filter(|(a, b)| a.trim().eq_ignore_ascii_case(b.trim())).count(),
                both_kept: both.len(),
                served,
            })
        })?;
        Ok((read_records(&dir.join("general.jsonl"))?, read_records(&dir.join("domain.jsonl"))?))
    }

    /// Pairs the agents' candidates per document (i-th with i-th), labels them, and makes the
    /// preference dataset; returns the stage's summary and directory.
    pub(crate) fn labels<B: burn::prelude::Backend>(
        &mut self,
        models: &Models,
        retrieval: &Retrieval,
        docs: &[Document],
        candidates: &(Vec<Question>, Vec<Question>),
        device: &B::Device,
    ) -> Result<(LabelSummary, PathBuf)> {
        let e = self.config.evaluator.clone();
        let r = self.config.retrieval.clone();
        let mesh_path = self.config.data.dir.join(&self.config.data.mesh);
        need(&mesh_path, "the MeSH file", "set data.mesh (under data.dir)")?;
        let judge_backend = self.config.backends.judge.clone();
        let judge = match (e.kind, judge_backend.served()) {
            (EvaluatorKind::LlmJudge, true) => crate::backends::identity("judge", &judge_backend),
            (EvaluatorKind::LlmJudge, false) => json!(models.base),
            (EvaluatorKind::Rule, _) => serde_json::Value::Null,
        };
        let inputs = json!({ "evaluator": e, "retrieval": r, "mesh": fingerprint(&mesh_path)?, "judge": judge });
        let dir = self.out.join("stages/labels");
        let after = ["corpus", "candidates", "retrieval-corpus", "store"];
        let retriever = self.retriever::<B>(models, retrieval, device)?;
        let base = models.base.clone();
        let max_positions = self.config.models.max_positions;
        let out_dir = self.out.clone();
        let config = self.config.clone();
        self.per_document("labels", dir, &after, inputs, docs.len(), |tmp, range, progress| {
            let corpus = Corpus::new(retrieval.docs.iter().cloned()).lib()?;
            let (g, d) = (by_doc(&candidates.0), by_doc(&candidates.1));
            let mut pairs: Vec<(&Document, [String; 2])> = Vec::new();
            for doc in &docs[range] {
                if let (Some(a), Some(b)) = (g.get(doc.id.as_str()), d.get(doc.id.as_str())) {
                    pairs.extend(a.iter().zip(b).map(|(x, y)| (doc, [(*x).to_owned(), (*y).to_owned()])));
                }
            }
            let items: Vec<Item<'_>> =
                pairs.iter().map(|(doc, q)| Item { doc, questions: [q[0].as_str(), q[1].as_str()] }).collect();
            let judge_options = kailin_evaluator::JudgeOptions {
                k: r.k,
                exclude_source: r.exclude_source,
                margin: e.margin,
                ..Default::default()
            };
            let mut served = Vec::new();
            let (judgements, evaluator) = match e.kind {
                EvaluatorKind::Rule => {
                    let mesh = kailin_mesh::Mesh::load(&mesh_path).lib()?;
                    let rule = kailin_evaluator::RuleEvaluator::new(&mesh, &corpus, &retriever, rule_options(&config))
                        .lib()?;
                    (judge_all(&rule, &items, progress)?, "rule (MeSH)".to_owned())
                }
                EvaluatorKind::LlmJudge if judge_backend.served() => {
                    let client = crate::backends::client("judge", &judge_backend, &out_dir)?;
                    let name = format!("llm-judge/{}", judge_backend.model);
                    let judge =
                        kailin_evaluator::ServedJudge::new(client, &corpus, &retriever, judge_options, name).lib()?;
                    let out = judge_all(&judge, &items, progress)?;
                    served.push(crate::backends::stats("judge", &judge_backend, judge.served()));
                    (out, "llm-judge (no MeSH, served)".to_owned())
                }
                EvaluatorKind::LlmJudge => {
                    let (llama, _, tok) = kailin_lm::load::<B>(&base, max_positions, device).lib()?;
                    let name = format!("llm-judge/{}", base.display());
                    let judge =
                        kailin_evaluator::PairwiseJudge::new(llama, tok, &corpus, &retriever, judge_options, name)
                            .lib()?;
                    (judge_all(&judge, &items, progress)?, "llm-judge (no MeSH)".to_owned())
                }
            };
            let provenance = Provenance { agent: format!("evaluator/{evaluator}"), ..Default::default() };
            let mut labels = Vec::with_capacity(pairs.len());
            let mut dpo = Vec::new();
            let mut prefs = Vec::new();
            let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
            let mut same_contexts = 0;
            for ((doc, q), j) in pairs.iter().zip(judgements) {
                same_contexts += usize::from(j.same_contexts());
                *outcomes.entry(j.outcome.as_str().to_owned()).or_default() += 1;
                let label = Label { doc_id: doc.id.clone(), questions: q.clone(), judgement: j };
                if let Some(pair) = kailin_evaluator::preference_pair(&label, &corpus, &provenance).lib()? {
                    dpo.push(DpoExample::new(&pair, doc));
                    prefs.push(pair);
                }
                labels.push(label);
            }
            write_records(&tmp.join("labels.jsonl"), &labels)?;
            write_records(&tmp.join("preference_pairs.jsonl"), &prefs)?;
            write_records(&tmp.join("preference.jsonl"), &dpo)?;
            Ok(LabelSummary {
                items: labels.len(),
                outcomes,
                pairs: prefs.len(),
                margins: prefs.iter().map(|p| p.score_chosen - p.score_rejected).collect(),
                same_contexts,
                evaluator,
                served,
            })
        })
    }
}

/// The MeSH rule's options as the configuration sets them.
pub(super) fn rule_options(config: &Config) -> kailin_evaluator::RuleOptions {
    let (r, e) = (&config.retrieval, &config.evaluator);
    kailin_evaluator::RuleOptions {
        k: r.k,
        exclude_source: r.exclude_source,
        aggregate: match e.aggregate {
            AggregateKind::Mean => kailin_mesh::Aggregate::Mean,
            AggregateKind::Bma => kailin_mesh::Aggregate::BestMatch,
        },
        margin: e.margin,
        ..Default::default()
    }
}

/// Judges `items` in chunks of 64, reporting progress.
pub(super) fn judge_all<E: Evaluator>(
    evaluator: &E,
    items: &[Item<'_>],
    progress: Progress<'_>,
) -> Result<Vec<kailin_evaluator::Judgement>>
where
    E::Error: std::error::Error + Send + Sync + 'static,
{
    let total = items.len() as u64;
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(64) {
        out.extend(evaluator.evaluate(chunk).map_err(|e| Error::Lib(Box::new(e)))?);
        progress(out.len() as u64, total, "pairs");
    }
    Ok(out)
}
