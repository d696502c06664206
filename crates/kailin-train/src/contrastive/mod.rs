//! Contrastive fine-tuning of a sentence encoder (`kailin-retrieval`'s BERT) on
//! (query, passage) pairs: the paper's domain embedding.
//!
//! Each step embeds a batch's queries and passages through burn's differentiable path
//! ([`Encoder::embed_ids`]: mean or CLS pooling and L2 normalisation, as at inference), scores
//! every query against every passage of the batch (and the pairs' hard negatives) and takes
//! AdamW's step on the symmetric InfoNCE loss ([`info_nce`]). Batches never hold two pairs
//! with the same query or positive; the order is seeded; checkpoints resume exactly.

mod batches;
mod loss;
mod mine;
mod prepare;

use std::time::Instant;

use burn::module::{ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use kailin_core::{Fnv64, RetrievalPair};
use kailin_retrieval::Encoder;
use serde::{Deserialize, Serialize};

pub use self::loss::{InfoNce, info_nce};
pub use self::mine::mine_bm25_negatives;
pub use self::prepare::{PreparedPairs, dedup_pairs, prepare_pairs, sample_pairs};
use crate::checkpoint::{self, CheckpointOptions, RunState};
use crate::error::{Error, Result};
use crate::optim::{AdamW, AdamWConfig, clip_scale, grad_norm, learning_rate};
use crate::trainer::{StepLog, permutation};

/// Options of [`train_encoder`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderTrainOptions {
    /// Passes over the pairs.
    pub epochs: usize,
    /// Pairs per step (the in-batch negatives of each query are the others' passages).
    pub batch_size: usize,
    /// Hard negatives per pair taken from its `negatives` (0: in-batch negatives only).
    pub hard_negatives: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Share of the steps spent warming up linearly.
    pub warmup_ratio: f64,
    /// The learning rate at the last step, as a fraction of the peak.
    pub min_lr_ratio: f64,
    /// Clip the global gradient norm to this.
    pub max_grad_norm: Option<f64>,
    /// AdamW's other hyper-parameters.
    pub adamw: AdamWConfig,
    /// Scores are cosine similarities divided by this.
    pub temperature: f64,
    /// Texts are cut to this many tokens (`[CLS]` and `[SEP]` included) for training; the
    /// encoder's own window stays what it is for inference.
    pub max_tokens: usize,
    /// Seed of the order of the pairs.
    pub seed: u64,
    /// Write checkpoints (and resume from them).
    pub checkpoint: Option<CheckpointOptions>,
    /// End the run after this many steps in all (the schedule still spans every epoch).
    pub stop_after: Option<u64>,
    /// What the starting encoder is (its identity): recorded in checkpoints, so that one of a
    /// run from another encoder is refused.
    #[serde(default)]
    pub base_model: Option<String>,
}

impl Default for EncoderTrainOptions {
    fn default() -> Self {
        EncoderTrainOptions {
            epochs: 1,
            batch_size: 32,
            hard_negatives: 0,
            lr: 2e-5,
            warmup_ratio: 0.1,
            min_lr_ratio: 0.0,
            max_grad_norm: Some(1.0),
            adamw: AdamWConfig { weight_decay: 0.01, ..AdamWConfig::default() },
            temperature: 0.05,
            max_tokens: 128,
            seed: 0,
            checkpoint: None,
            stop_after: None,
            base_model: None,
        }
    }
}

impl EncoderTrainOptions {
    fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Options(m.to_owned()));
        if self.epochs == 0 {
            return bad("epochs must be at least 1");
        }
        if self.batch_size < 2 {
            return bad("batch_size must be at least 2: a query needs another pair's passage to contrast with");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr must be a positive number");
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad("warmup_ratio must be in [0, 1)");
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad("temperature must be a positive number");
        }
        if self.max_tokens < 3 {
            return bad("max_tokens must leave room for [CLS], a token and [SEP]");
        }
        if self.checkpoint.as_ref().is_some_and(|c| c.every == 0) {
            return bad("checkpoint.every must be at least 1");
        }
        Ok(())
    }

    /// The options as far as they decide the trajectory.
    fn trajectory(&self) -> Self {
        EncoderTrainOptions { checkpoint: None, stop_after: None, base_model: None, ..self.clone() }
    }
}

/// What [`train_encoder`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EncoderTrainReport {
    /// One entry per step (`metrics`: the in-batch accuracy, the share of queries whose own
    /// passage scored highest).
    pub steps: Vec<StepLog>,
    /// Pairs trained on.
    pub pairs: usize,
    /// Pairs an epoch left out because no batch could take them without repeating a query or
    /// positive (summed over epochs).
    pub left_out: usize,
    /// Texts cut to `max_tokens`.
    pub truncated: usize,
    /// Wall-clock seconds of the loop, earlier processes included.
    pub seconds: f64,
    /// Whether every step of every epoch has run (not stopped early by `stop_after`).
    #[serde(default)]
    pub finished: bool,
}

impl EncoderTrainReport {
    /// Pairs per second over the steps run.
    pub fn pairs_per_second(&self) -> f64 {
        let pairs: usize =
            self.steps.iter().map(|s| s.metrics.iter().find(|m| m.0 == "pairs").map_or(0.0, |m| m.1) as usize).sum();
        pairs as f64 / self.steps.iter().map(|s| s.seconds).sum::<f64>().max(1e-9)
    }
}

/// One step, as the caller's progress callback sees it.
#[derive(Debug, Clone, Copy)]
pub struct EncoderProgress {
    /// The step, 1-based.
    pub step: u64,
    /// Steps in the whole run.
    pub total: u64,
    /// The step's loss.
    pub loss: f64,
    /// Its in-batch accuracy.
    pub accuracy: f64,
    /// Pairs per second of this step.
    pub pairs_per_second: f64,
}

/// A pair as token ids.
struct Tokens {
    query: Vec<u32>,
    positive: Vec<u32>,
    negatives: Vec<Vec<u32>>,
}

/// Fine-tunes `encoder` on `pairs` (see the module's documentation); `on_step` sees every
/// step. The encoder comes back with the trained weights ([`Encoder::set_bert`]): write it
/// with [`Encoder::save_dir`].
///
/// Errors: bad options, no pairs, a text the encoder cannot tokenise, a non-finite loss or
/// gradient, a checkpoint of another run.
pub fn train_encoder<B: AutodiffBackend>(
    mut encoder: Encoder<B>,
    pairs: &[RetrievalPair],
    opts: &EncoderTrainOptions,
    mut on_step: impl FnMut(&EncoderProgress),
) -> Result<(Encoder<B>, EncoderTrainReport)> {
    opts.check()?;
    if pairs.is_empty() {
        return Err(Error::Options("no pairs to train on".into()));
    }
    let (tokens, truncated) = tokenize(&encoder, pairs, opts)?;
    let key = |ids: &[u32]| {
        let mut h = Fnv64::new();
        ids.iter().for_each(|&t| {
            h.u32(t);
        });
        h.finish()
    };
    let queries: Vec<u64> = tokens.iter().map(|t| key(&t.query)).collect();
    let positives: Vec<u64> = tokens.iter().map(|t| key(&t.positive)).collect();
    let (mut epochs, mut left_out) = (Vec::with_capacity(opts.epochs), 0);
    for e in 0..opts.epochs {
        let order = permutation(pairs.len(), epoch_seed(opts.seed, e));
        let (batches, dropped) = batches::pack(&order, opts.batch_size, &queries, &positives);
        epochs.push(batches);
        left_out += dropped;
    }
    let total: u64 = epochs.iter().map(|b| b.len() as u64).sum();
    if total == 0 {
        return Err(Error::Options(
            "every pair shares its query or positive with all the others: no batch to contrast".into(),
        ));
    }
    let warmup = (opts.warmup_ratio * total as f64).round() as u64;
    let mut digest = Fnv64::new();
    for t in &tokens {
        for ids in std::iter::once(&t.query).chain([&t.positive]).chain(t.negatives.iter().take(opts.hard_negatives)) {
            digest.bytes(&(ids.len() as u64).to_le_bytes());
            ids.iter().for_each(|&x| {
                digest.u32(x);
            });
        }
    }
    let mut optim = AdamW::<B>::new(opts.adamw);
    let mut state = RunState {
        format: checkpoint::FORMAT,
        step: 0,
        epoch: 0,
        position: 0,
        options: opts.trajectory(),
        data: digest.hex(),
        base: opts.base_model.clone(),
        parameters: checkpoint::parameters(encoder.bert()),
        report: EncoderTrainReport { pairs: pairs.len(), left_out, truncated, ..Default::default() },
    };
    if let Some(ck) = opts.checkpoint.as_ref().filter(|c| c.resume)
        && let Some(path) = checkpoint::latest_checkpoint(&ck.dir)?
    {
        let (bert, saved) = checkpoint::load(&path, encoder.bert().clone(), &mut optim, &state)?;
        tracing::info!(checkpoint = %path.display(), step = saved.step, "resuming the encoder's training");
        encoder.set_bert(bert)?;
        state = saved;
    }
    // Every weight trains (an encoder moved onto the autodiff backend from a plain one has
    // none marked for gradients).
    let bert = encoder.bert().clone().map(&mut Trainable);
    encoder.set_bert(bert)?;
    let started = Instant::now();
    let resumed_seconds = state.report.seconds;
    let last = opts.stop_after.map_or(total, |s| s.min(total));
    let mut step = state.step;
    'epochs: for (epoch, batches) in epochs.iter().enumerate().skip(state.epoch) {
        let skip = if epoch == state.epoch { state.position } else { 0 };
        for (position, batch) in batches.iter().enumerate().skip(skip) {
            if step >= last {
                break 'epochs;
            }
            step += 1;
            let t0 = Instant::now();
            let lr = learning_rate(step - 1, total, warmup, opts.lr, opts.min_lr_ratio);
            let (loss, accuracy, norm, read) = {
                let q: Vec<&[u32]> = batch.iter().map(|&i| tokens[i].query.as_slice()).collect();
                let mut p: Vec<&[u32]> = batch.iter().map(|&i| tokens[i].positive.as_slice()).collect();
                p.extend(
                    batch.iter().flat_map(|&i| tokens[i].negatives.iter().take(opts.hard_negatives).map(Vec::as_slice)),
                );
                let read: usize = q.iter().chain(&p).map(|s| s.len()).sum();
                let out = info_nce(encoder.embed_ids(&q)?, encoder.embed_ids(&p)?, opts.temperature);
                let loss = f64::from(out.loss.clone().into_scalar().elem::<f32>());
                let accuracy = f64::from(out.accuracy.into_scalar().elem::<f32>());
                if !loss.is_finite() {
                    return Err(Error::NonFinite { step, what: "loss", value: loss });
                }
                let grads = GradientsParams::from_grads(out.loss.backward(), encoder.bert());
                let norm = grad_norm(encoder.bert(), &grads);
                if !norm.is_finite() {
                    return Err(Error::NonFinite { step, what: "gradient norm", value: norm });
                }
                let bert = optim.step(encoder.bert().clone(), grads, lr, clip_scale(norm, opts.max_grad_norm));
                encoder.set_bert(bert)?;
                (loss, accuracy, norm, read)
            };
            let seconds = t0.elapsed().as_secs_f64();
            let metrics = vec![("accuracy".to_owned(), accuracy), ("pairs".to_owned(), batch.len() as f64)];
            state.report.steps.push(StepLog { step, lr, loss, grad_norm: norm, tokens: read, metrics, seconds });
            tracing::debug!(step, loss, accuracy, grad_norm = norm, lr, "encoder step");
            on_step(&EncoderProgress {
                step,
                total,
                loss,
                accuracy,
                pairs_per_second: batch.len() as f64 / seconds.max(1e-9),
            });
            if let Some(ck) = &opts.checkpoint
                && (step.is_multiple_of(ck.every) || step == last)
            {
                let (e, p) = if position + 1 == batches.len() { (epoch + 1, 0) } else { (epoch, position + 1) };
                state.report.seconds = resumed_seconds + started.elapsed().as_secs_f64();
                let now = RunState { step, epoch: e, position: p, ..state.clone() };
                checkpoint::save(ck, &encoder.bert().clone(), &optim, &now)?;
            }
        }
    }
    state.report.seconds = resumed_seconds + started.elapsed().as_secs_f64();
    state.report.finished = step == total;
    Ok((encoder, state.report))
}

/// Marks every float parameter as requiring its gradient.
struct Trainable;

impl<B: AutodiffBackend> ModuleMapper<B> for Trainable {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.require_grad(), mapper)
    }
}

fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64).wrapping_mul(0xA076_1D64_78BD_642F)
}

/// Every pair's texts as the encoder's token ids, cut to `max_tokens` (the last kept id is
/// the text's `[SEP]`); with the number of texts cut.
fn tokenize<B: Backend>(
    encoder: &Encoder<B>,
    pairs: &[RetrievalPair],
    opts: &EncoderTrainOptions,
) -> Result<(Vec<Tokens>, usize)> {
    let mut truncated = 0;
    let mut cut = |mut ids: Vec<u32>| {
        if ids.len() > opts.max_tokens {
            let sep = ids[ids.len() - 1];
            ids.truncate(opts.max_tokens - 1);
            ids.push(sep);
            truncated += 1;
        }
        ids
    };
    let mut out = Vec::with_capacity(pairs.len());
    for (i, pair) in pairs.iter().enumerate() {
        let negatives: Vec<&str> = pair.negatives.iter().take(opts.hard_negatives).map(String::as_str).collect();
        let mut texts = vec![pair.query.as_str(), pair.positive.as_str()];
        texts.extend(&negatives);
        let ids = encoder.token_ids(&texts).map_err(|e| Error::Pair { index: i, reason: e.to_string() })?;
        let mut ids = ids.into_iter().map(&mut cut);
        let (query, positive) = (ids.next().unwrap_or_default(), ids.next().unwrap_or_default());
        out.push(Tokens { query, positive, negatives: ids.collect() });
    }
    Ok((out, truncated))
}
