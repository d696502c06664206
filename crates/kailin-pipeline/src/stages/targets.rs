//! The target model (CPT on the CPT dataset, then SFT on the SFT dataset), the same-budget
//! control, and PubMedQA for every model and setting.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use kailin_core::{ChatExample, CptRecord, Document, SftRecord, TextExample};
use serde_json::json;

use super::Models;
use super::agents::Prepared;
use crate::engine::{Lib, Run, boxed, failed};
use crate::error::{Error, Result};
use crate::files::{fingerprint, write_records};
use crate::stage;

/// One evaluation of one model (`base`, `kailin`, `control`), in its stage directory.
#[derive(Debug, Clone)]
pub(crate) struct Evaluated {
    pub(crate) model: String,
    pub(crate) evaluation: kailin_eval::Evaluation,
    pub(crate) dir: PathBuf,
}

fn write_texts(texts: Vec<TextExample>) -> impl FnOnce(&Path) -> Result<Prepared> {
    move |tmp| {
        let p = tmp.join("cpt.jsonl");
        write_records(&p, &texts)?;
        Ok(Prepared::data(p, texts.len()))
    }
}

fn write_chats(chats: Vec<ChatExample>) -> impl FnOnce(&Path) -> Result<Prepared> {
    move |tmp| {
        let p = tmp.join("sft.jsonl");
        write_records(&p, &chats)?;
        Ok(Prepared::data(p, chats.len()))
    }
}

/// What kailin's CPT records were made from, each document once: the corpus documents
/// questions were written for, then the retrieval-corpus documents of the records' contexts
/// in record order.
fn raw_material<'a>(
    docs: &'a [Document],
    contexts: &'a [Document],
    cpt: &'a [CptRecord],
) -> impl Iterator<Item = &'a Document> {
    let mut seen: HashSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    let by_id: HashMap<&str, &Document> = contexts.iter().map(|d| (d.id.as_str(), d)).collect();
    let used = cpt
        .iter()
        .flat_map(|r| &r.context.doc_ids)
        .filter(move |id| seen.insert(id.as_str()))
        .filter_map(move |id| by_id.get(id.as_str()).copied());
    docs.iter().chain(used)
}

fn chat_text(c: &ChatExample) -> String {
    c.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join(" ")
}

impl Run<'_> {
    /// The kailin model and, with `target.control`, the control: `(name, model dir)` each.
    pub(crate) fn targets<A: AutodiffBackend>(
        &mut self,
        models: &Models,
        docs: &[Document],
        contexts: &[Document],
        cpt: &[CptRecord],
        sft: &[SftRecord],
        device: &A::Device,
    ) -> Result<Vec<(String, PathBuf)>> {
        let t = self.config.target.clone();
        let data = self.config.data.dir.clone();
        // The contexts cut to target.context_chars, so that a long context cannot push the
        // question out of the training window.
        let cut = |c: &kailin_core::Context| kailin_core::cut_chars(&c.text, t.context_chars).to_owned();
        let texts: Vec<TextExample> = cpt
            .iter()
            .map(|r| {
                TextExample::new(&CptRecord {
                    context: kailin_core::Context { text: cut(&r.context), ..r.context.clone() },
                    ..r.clone()
                })
            })
            .collect();
        let mut chats: Vec<ChatExample> = sft
            .iter()
            .map(|r| {
                ChatExample::new(&SftRecord {
                    context: kailin_core::Context { text: cut(&r.context), ..r.context.clone() },
                    ..r.clone()
                })
            })
            .collect();
        let pqa_chats = || {
            kailin_eval::pubmedqa_train_chats(&data)
                .map_err(|e| failed("target", data.display(), "point data.dir at the data directory")(boxed(e)))
        };
        // kailin's own SFT records, before PQA-L's training half joins them.
        let own_chats = chats.len();
        if t.pubmedqa_train {
            chats.extend(pqa_chats()?);
        }
        if texts.is_empty() || chats.is_empty() {
            return Err(Error::Stage {
                stage: "target-cpt".into(),
                input: format!("{} CPT and {} SFT records", texts.len(), chats.len()),
                fix: "the generator kept no question: look at stages/candidates and stages/cpt (questions.n, \
                      questions.max_new, agents.*)"
                    .into(),
                source: "nothing to train the target model on".into(),
            });
        }
        let inputs = json!({ "pubmedqa_train": t.pubmedqa_train, "context_chars": t.context_chars });
        let target_cpt = self.train::<A>(
            "target-cpt",
            &["cpt"],
            inputs.clone(),
            kailin_train::Objective::Cpt,
            &models.base,
            t.settings(true),
            write_texts(texts.clone()),
            device,
        )?;
        let target = self.train::<A>(
            "target",
            &["target-cpt", "sft"],
            inputs,
            kailin_train::Objective::Sft,
            &target_cpt,
            t.settings(false),
            write_chats(chats.clone()),
            device,
        )?;
        let mut trained = vec![("kailin".to_owned(), target)];
        if t.control {
            // The same token budget without kailin's data. With target.pubmedqa_train (the
            // fair default) both arms' SFT holds PQA-L's training half, and the control's CPT
            // holds as many tokens of raw abstracts as kailin's CPT and own SFT records hold:
            // the only difference is kailin's data against the raw material it was made from
            // (the corpus documents, then the documents its contexts came from).
            // Without it, the control's SFT is PQA-L's training half up to kailin's SFT tokens
            // (the arms then differ in format as well).
            let (_, _, tok) =
                kailin_lm::load::<A::InnerBackend>(&models.base, self.config.models.max_positions, device).lib()?;
            let count = |s: &str| kailin_train::count_tokens(&tok, s);
            let sum_chats =
                |cs: &[ChatExample]| cs.iter().map(|c| count(&chat_text(c))).sum::<kailin_train::Result<usize>>().lib();
            let kailin_cpt = texts.iter().map(|x| count(&x.text)).sum::<kailin_train::Result<usize>>().lib()?;
            let kailin_sft = sum_chats(&chats[..own_chats])?;
            let raw: Vec<TextExample> = raw_material(docs, contexts, cpt).map(TextExample::from_document).collect();
            let (cpt_budget, control_chats) = if t.pubmedqa_train {
                (kailin_cpt + kailin_sft, chats[own_chats..].to_vec())
            } else {
                let pool = pqa_chats()?;
                (kailin_cpt, kailin_train::to_token_budget(&pool, sum_chats(&chats)?, |c| count(&chat_text(c))).lib()?)
            };
            let control_texts = kailin_train::to_token_budget(&raw, cpt_budget, |x| count(&x.text)).lib()?;
            let budget = json!({
                "cpt_tokens": cpt_budget, "kailin_cpt_tokens": kailin_cpt, "kailin_sft_tokens": kailin_sft,
                "pubmedqa_train": t.pubmedqa_train, "sft_records": control_chats.len(),
            });
            let control_cpt = self.train::<A>(
                "control-cpt",
                &["corpus", "target-cpt"],
                budget.clone(),
                kailin_train::Objective::Cpt,
                &models.base,
                t.settings(true),
                write_texts(control_texts),
                device,
            )?;
            let control = self.train::<A>(
                "control",
                &["control-cpt"],
                budget,
                kailin_train::Objective::Sft,
                &control_cpt,
                t.settings(false),
                write_chats(control_chats),
                device,
            )?;
            trained.push(("control".into(), control));
        }
        Ok(trained)
    }

    /// PubMedQA for every model and setting, and BioASQ yes/no on the agents' held-out
    /// batches (`eval.bioasq`).
    pub(crate) fn evaluate<B: burn::prelude::Backend>(
        &mut self,
        models: &[(String, PathBuf)],
        device: &B::Device,
    ) -> Result<Vec<Evaluated>> {
        let e = self.config.eval.clone();
        let data = self.config.data.dir.clone();
        let bad_data = |err| failed("eval", data.display(), "point data.dir at the data directory")(boxed(err));
        let all = kailin_eval::load_test_set(&data).map_err(bad_data)?;
        let mut items = all.clone();
        if e.limit > 0 {
            items.truncate(e.limit);
        }
        let pubmedqa = kailin_eval::Benchmark {
            name: "pubmedqa".into(),
            split: "PQA-L official test".into(),
            items_in_split: all.len(),
        };
        let test = fingerprint(&data.join("pubmedqa/test_ground_truth.json"))?;
        // (stage suffix, benchmark, items, options, key of the items)
        let mut benches = Vec::new();
        for &setting in &e.settings {
            let options = kailin_eval::PredictOptions { setting, batch_size: e.batch_size, ..Default::default() };
            benches.push((setting.as_str().to_owned(), pubmedqa.clone(), items.clone(), options, json!(test)));
        }
        if e.bioasq {
            let dir = data.join(&self.config.data.bioasq);
            let set = kailin_eval::load_bioasq_yesno(&dir, &self.config.agents.held_out).map_err(|err| {
                failed(
                    "eval",
                    dir.display(),
                    "set eval.bioasq = false, or agents.held_out to batches with yes/no questions",
                )(boxed(err))
            })?;
            let names: Vec<String> = set.files.iter().map(|f| f.display().to_string()).collect();
            let key = set.files.iter().map(|f| fingerprint(f)).collect::<Result<Vec<_>>>()?;
            let bench = kailin_eval::Benchmark {
                name: "bioasq".into(),
                split: format!("BioASQ yes/no: {}", self.config.agents.held_out.join(", ")),
                items_in_split: set.items.len(),
            };
            let options = kailin_eval::PredictOptions {
                batch_size: e.batch_size,
                answers: kailin_eval::Answers::YesNo,
                ..Default::default()
            };
            benches.push(("bioasq".to_owned(), bench, set.items, options, json!({ "files": names, "digests": key })));
        }
        let mut out = Vec::new();
        for (name, model) in models {
            let after = match name.as_str() {
                "kailin" => vec!["target"],
                "control" => vec!["control"],
                _ => vec![],
            };
            for (suffix, bench, items, options, key) in &benches {
                let stage = format!("eval-{name}-{suffix}");
                let inputs = json!({
                    "model": self.key_path(model), "benchmark": bench.name, "setting": options.setting, "answers": options.answers,
                    "limit": e.limit, "batch": e.batch_size, "test": key, "scores": 2,
                });
                let dir = self.out.join("stages").join(&stage);
                let max_positions = self.config.models.max_positions;
                let (_, dir) = self.stage(&stage, dir, &after, inputs, |tmp, progress| {
                    let (llama, _, tok) = kailin_lm::load::<B>(model, max_positions, device).lib()?;
                    let total = items.len() as u64;
                    let evaluation = kailin_eval::evaluate(&llama, &tok, model, bench, items, options, |d, _| {
                        progress(d as u64, total, "items")
                    })
                    .lib()?;
                    let official =
                        serde_json::to_vec_pretty(&kailin_eval::official_predictions(&evaluation.predictions)).lib()?;
                    let file = tmp.join(format!("{}.json", bench.name));
                    kailin_core::write_atomic(&file, &official).map_err(stage::core_io(tmp))?;
                    evaluation.write(tmp).lib()?;
                    Ok(evaluation.report)
                })?;
                if self.plan.is_some() {
                    // A plan reads no outputs: the stage stood in for itself (its key is known).
                    continue;
                }
                let evaluation = kailin_eval::Evaluation::read(&dir).lib()?;
                out.push(Evaluated { model: name.clone(), evaluation, dir });
            }
        }
        Ok(out)
    }
}
