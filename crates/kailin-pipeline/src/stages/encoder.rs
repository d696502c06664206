//! The domain encoder (`models.encoder = "domain"`): `[encoder]`'s base fine-tuned on
//! biomedical question–passage pairs (`kailin-train`'s `train_encoder`) before the store is
//! built, as the paper's retrieval is domain-tuned; checkpointed, so a killed run resumes
//! within the stage.

use std::collections::BTreeSet;

use burn::tensor::backend::AutodiffBackend;
use kailin_train::{CheckpointOptions, EncoderTrainOptions, RetrievalPair};
use serde_json::json;

use super::Models;
use crate::config::RetrieverKind;
use crate::engine::{Lib, Run};
use crate::error::{Error, Result};
use crate::files::{fingerprint, listing, need};
use crate::summary::TrainSummary;

/// Steps between checkpoints of the encoder's training.
const CHECKPOINT_EVERY: u64 = 50;

impl Run<'_> {
    /// The run's models with the encoder the retrieval uses: with `models.encoder = "domain"`
    /// (and a retriever that embeds), the `encoder` stage's fine-tuned one; else unchanged.
    pub(crate) fn domain_encoder<A: AutodiffBackend>(&mut self, models: &Models, device: &A::Device) -> Result<Models> {
        if self.config.models.encoder != "domain" || self.config.retrieval.kind == RetrieverKind::Bm25 {
            return Ok(models.clone());
        }
        let e = self.config.encoder.clone();
        let data = self.config.data.clone();
        let held = self.config.agents.held_out.clone();
        let seed = self.config.run.seed;
        let bioasq = data.dir.join(&data.bioasq);
        let pqal = data.dir.join("pubmedqa/ori_pqal.json");
        let test = data.dir.join("pubmedqa/test_ground_truth.json");
        let mut files = Vec::new();
        if e.bioasq {
            need(&bioasq, "the BioASQ golden batches (encoder.bioasq)", "set data.bioasq, or encoder.bioasq = false")?;
            files.push(listing(&bioasq)?);
        }
        if e.pubmedqa {
            let fix = "point data.dir at the data directory, or set encoder.pubmedqa = false";
            need(&pqal, "PubMedQA PQA-L (encoder.pubmedqa)", fix)?;
            need(&test, "PubMedQA's test split, never trained on (encoder.pubmedqa)", fix)?;
            files.extend([fingerprint(&pqal)?, fingerprint(&test)?]);
        }
        let pair_files: Vec<_> = e.pairs.iter().map(|p| data.dir.join(p)).collect();
        for p in &pair_files {
            need(p, "a pairs file (encoder.pairs)", "give JSON Lines files relative to data.dir, or absolute")?;
            files.push(fingerprint(p)?);
        }
        let inputs = json!({
            "base": self.key_path(&models.encoder), "encoder": e, "held_out": held, "files": files, "seed": seed,
        });
        let checkpoints = self.out.join("stages/encoder.checkpoints");
        let resume_dir = checkpoints.join(crate::stage::key("encoder", &inputs));
        let base = models.encoder.clone();
        let dir = self.out.join("stages/encoder");
        let planned = self.stage("encoder", dir.clone(), &[], inputs, |tmp, progress| {
            let mut note = Vec::new();
            let mut pairs: Vec<RetrievalPair> = Vec::new();
            if e.bioasq {
                let batches = kailin_question::read_bioasq_batches(&bioasq).map_err(|err| Error::Config {
                    key: "data.bioasq".into(),
                    message: format!("{}: {err}", bioasq.display()),
                })?;
                let held: Vec<&str> = held.iter().map(String::as_str).collect();
                let split = kailin_corpus::bioasq_pairs(&batches, &held).lib()?;
                note.push(format!(
                    "BioASQ {} pairs ({} questions of {} held out, never trained on)",
                    split.train.len(),
                    split.held_out.len(),
                    split.held_out_files.join(", ")
                ));
                pairs.extend(split.train);
            }
            if e.pubmedqa {
                let excluded: BTreeSet<String> = kailin_corpus::read_pubmedqa_test_ids(&test).lib()?;
                let (records, _) = kailin_corpus::read_pubmedqa(&pqal, false).lib()?;
                let (found, _) = kailin_corpus::pubmedqa_pairs(&records, &excluded);
                note.push(format!("PubMedQA {} pairs (outside the test split)", found.len()));
                pairs.extend(found);
            }
            for p in &pair_files {
                let data = kailin_train::read_pairs_dataset(p).lib()?;
                note.push(format!("{} {} pairs", p.display(), data.records.len()));
                pairs.extend(data.records.into_iter().map(|r| r.record));
            }
            let limit = (e.limit > 0).then_some(e.limit);
            let prepared = kailin_train::prepare_pairs(pairs, limit, e.hard_negatives, seed).lib()?;
            let encoder = kailin_retrieval::EncoderBuilder::new(&base).build::<A>(device).lib()?;
            let opts = EncoderTrainOptions {
                epochs: e.epochs,
                batch_size: e.batch_size,
                hard_negatives: e.hard_negatives,
                lr: e.lr,
                warmup_ratio: e.warmup,
                temperature: e.temperature,
                max_tokens: e.max_tokens,
                seed,
                checkpoint: Some(CheckpointOptions::new(&resume_dir, CHECKPOINT_EVERY)),
                base_model: Some(encoder.identity().to_owned()),
                ..Default::default()
            };
            let (encoder, report) = kailin_train::train_encoder(encoder, &prepared.pairs, &opts, |p| {
                progress(p.step, p.total, "steps");
            })
            .lib()?;
            encoder.save_dir(&tmp.join("model")).lib()?;
            note.push(format!(
                "{} duplicates dropped, {} over encoder.limit, {} hard negatives mined; {} pairs left out, {} texts \
                 cut to {} tokens; {:.1} pairs/s",
                prepared.duplicates,
                prepared.over_budget,
                prepared.mined,
                report.left_out,
                report.truncated,
                e.max_tokens,
                report.pairs_per_second()
            ));
            Ok(TrainSummary {
                records: report.pairs,
                steps: report.steps.len(),
                loss_first: report.steps.first().map(|s| s.loss),
                loss_last: report.steps.last().map(|s| s.loss),
                eval_loss: None,
                tokens: 0,
                seconds: report.seconds,
                curve: report.steps.iter().map(|s| (s.step, s.loss, None)).collect(),
                eval_records: 0,
                eval_curve: Vec::new(),
                note: Some(note.join("; ")),
            })
        });
        // The stage's directory: this run's, or a reused run's (an ablation reuses the main's).
        let dir = match planned {
            Ok((_, found)) => found,
            // A plan goes on past a stage that never ran, the base encoder standing in for the
            // one it would make: the store's key holds this stage's, the agents' do not.
            Err(Error::Planned { .. }) if self.plan.is_some() => return Ok(models.clone()),
            Err(e) => return Err(e),
        };
        // The finished stage holds the encoder; its checkpoints are spent (a plan writes nothing).
        if self.plan.is_none() && checkpoints.exists() {
            std::fs::remove_dir_all(&checkpoints).map_err(|source| Error::Io { path: checkpoints.clone(), source })?;
        }
        Ok(Models { encoder: dir.join("model"), ..models.clone() })
    }
}
