//! The target model (CPT on the CPT dataset, then SFT on the SFT dataset), the same-budget
//! control, and PubMedQA for every model and setting.

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

/// One PubMedQA measurement: `(model, setting, report, official predictions file)`.
pub(crate) type Evaluated = (String, kailin_eval::Setting, kailin_eval::Report, PathBuf);

fn write_texts(texts: Vec<TextExample>) -> impl FnOnce(&Path) -> Result<Prepared> {
    move |tmp| {
        let p = tmp.join("cpt.jsonl");
        write_records(&p, &texts)?;
        Ok((p, None, texts.len()))
    }
}

fn write_chats(chats: Vec<ChatExample>) -> impl FnOnce(&Path) -> Result<Prepared> {
    move |tmp| {
        let p = tmp.join("sft.jsonl");
        write_records(&p, &chats)?;
        Ok((p, None, chats.len()))
    }
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
            // The same token budget without kailin's data: raw abstracts for CPT, PQA-L's
            // training half for SFT.
            let (_, _, tok) =
                kailin_lm::load::<A::InnerBackend>(&models.base, self.config.models.max_positions, device).lib()?;
            let count = |s: &str| kailin_train::count_tokens(&tok, s);
            let cpt_budget = texts.iter().map(|x| count(&x.text)).sum::<kailin_train::Result<usize>>().lib()?;
            let sft_budget = chats.iter().map(|c| count(&chat_text(c))).sum::<kailin_train::Result<usize>>().lib()?;
            let raw: Vec<TextExample> = docs.iter().map(TextExample::from_document).collect();
            let control_texts = kailin_train::to_token_budget(&raw, cpt_budget, |x| count(&x.text)).lib()?;
            let pool = pqa_chats()?;
            let control_chats = kailin_train::to_token_budget(&pool, sft_budget, |c| count(&chat_text(c))).lib()?;
            let budget = json!({ "cpt_tokens": cpt_budget, "sft_tokens": sft_budget });
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

    /// PubMedQA for every model and setting.
    pub(crate) fn evaluate<B: burn::prelude::Backend>(
        &mut self,
        models: &[(String, PathBuf)],
        device: &B::Device,
    ) -> Result<Vec<Evaluated>> {
        let e = self.config.eval.clone();
        let data = self.config.data.dir.clone();
        let mut items = kailin_eval::load_test_set(&data)
            .map_err(|err| failed("eval", data.display(), "point data.dir at the data directory")(boxed(err)))?;
        if e.limit > 0 {
            items.truncate(e.limit);
        }
        let test = fingerprint(&data.join("pubmedqa/test_ground_truth.json"))?;
        let mut out = Vec::new();
        for (name, model) in models {
            let after = match name.as_str() {
                "kailin" => vec!["target"],
                "control" => vec!["control"],
                _ => vec![],
            };
            for &setting in &e.settings {
                let stage = format!("eval-{name}-{}", setting.as_str());
                let inputs = json!({ "model": model, "setting": setting, "limit": e.limit, "batch": e.batch_size, "test": test });
                let dir = self.out.join("stages").join(&stage);
                let max_positions = self.config.models.max_positions;
                let (report, dir) = self.stage(&stage, dir, &after, inputs, |tmp, progress| {
                    let (llama, _, tok) = kailin_lm::load::<B>(model, max_positions, device).lib()?;
                    let options =
                        kailin_eval::PredictOptions { setting, batch_size: e.batch_size, ..Default::default() };
                    let total = items.len() as u64;
                    let predictions =
                        kailin_eval::predict(&llama, &tok, &items, &options, |d, _| progress(d as u64, total, "items"))
                            .lib()?;
                    let report = kailin_eval::report(&items, &predictions, setting).lib()?;
                    let official = serde_json::to_vec_pretty(&kailin_eval::official_predictions(&predictions)).lib()?;
                    kailin_core::write_atomic(tmp.join("pubmedqa.json"), &official).map_err(stage::core_io(tmp))?;
                    write_records(&tmp.join("predictions.jsonl"), &predictions)?;
                    Ok(report)
                })?;
                out.push((name.clone(), setting, report, dir.join("pubmedqa.json")));
            }
        }
        Ok(out)
    }
}
