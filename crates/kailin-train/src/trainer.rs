//! The training loop the three objectives share: seeded shuffling, micro-batches with
//! gradient accumulation, global-norm clipping, AdamW on the warmup + cosine schedule,
//! periodic evaluation, and a stop on a non-finite loss or gradient.

use std::time::Instant;

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use kailin_lm::Llama;
use serde::{Deserialize, Serialize};

use kailin_core::Fnv64;

use crate::checkpoint::{self, CheckpointOptions, RunState};
use crate::encode::Row;
use crate::error::{Error, Result};
use crate::optim::{AdamW, AdamWConfig, clip_scale, grad_norm, learning_rate};

/// Options of the training loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Passes over the training set.
    pub epochs: usize,
    /// Rows (CPT, SFT) or pairs (DPO) per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Optimiser steps of linear warmup.
    pub warmup_steps: u64,
    /// The learning rate at the last step, as a fraction of the peak.
    pub min_lr_ratio: f64,
    /// Clip the global gradient norm to this.
    pub max_grad_norm: Option<f64>,
    /// AdamW's other hyper-parameters.
    pub adamw: AdamWConfig,
    /// Seed of the shuffling, and of LoRA dropout: for a model with dropout, burn's random
    /// generator (one per process) is re-seeded from it at every step, so that a resumed run
    /// draws what an uninterrupted one drew.
    pub seed: u64,
    /// Evaluate every this many optimiser steps (and after the last).
    pub eval_every: Option<u64>,
    /// Write checkpoints (and resume from them).
    pub checkpoint: Option<CheckpointOptions>,
    /// End the run after this many optimiser steps in all (a checkpoint is written there when
    /// checkpoints are on); the learning-rate schedule still spans every epoch.
    pub stop_after: Option<u64>,
    /// What the starting model is (its [`kailin_lm::model_digest`]; [`run_job`](crate::run_job)
    /// fills it): recorded in checkpoints, so that a checkpoint of a run from another starting
    /// model — even one of the same shape — is refused instead of resumed.
    #[serde(default)]
    pub base_model: Option<String>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 1,
            batch_size: 4,
            grad_accum: 1,
            lr: 2e-5,
            warmup_steps: 0,
            min_lr_ratio: 0.1,
            max_grad_norm: Some(1.0),
            adamw: AdamWConfig::default(),
            seed: 0,
            eval_every: None,
            checkpoint: None,
            stop_after: None,
            base_model: None,
        }
    }
}

impl TrainOptions {
    pub(crate) fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Options(m.to_owned()));
        if self.epochs == 0 || self.batch_size == 0 || self.grad_accum == 0 {
            return bad("epochs, batch size and gradient accumulation must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("the learning rate must be a positive number");
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return bad("the final learning-rate ratio must be within 0..=1");
        }
        if self.checkpoint.as_ref().is_some_and(|c| c.every == 0) {
            return bad("checkpoints must be written every 1 or more steps");
        }
        if self.max_grad_norm.is_some_and(|m| !(m.is_finite() && m > 0.0)) {
            return bad("the gradient-norm limit must be a positive number");
        }
        let a = &self.adamw;
        if !(0.0..1.0).contains(&a.beta1) || !(0.0..1.0).contains(&a.beta2) || a.epsilon <= 0.0 || a.weight_decay < 0.0
        {
            return bad("AdamW needs betas within 0..1, a positive epsilon and a non-negative weight decay");
        }
        Ok(())
    }
}

/// What one optimiser step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// Optimiser step, 1-based.
    pub step: u64,
    /// Learning rate used.
    pub lr: f64,
    /// The step's loss (mean over its tokens or pairs).
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens the step's forward passes read.
    pub tokens: usize,
    /// The objective's own metrics (DPO: rewards, margin, accuracy), means over the step.
    pub metrics: Vec<(String, f64)>,
    /// Wall-clock seconds of the step (forward, backward and update; evaluation excluded).
    pub seconds: f64,
}

/// What a training run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainReport {
    /// One entry per optimiser step.
    pub steps: Vec<StepLog>,
    /// `(step, loss)` on the evaluation set.
    pub evals: Vec<(u64, f64)>,
    /// The objective's own metrics on the evaluation set (DPO: rewards, margin, preference
    /// accuracy), means over its items, at the steps of `evals` (one entry each, same order).
    #[serde(default)]
    pub eval_metrics: Vec<(u64, Vec<(String, f64)>)>,
    /// Wall-clock seconds of the loop.
    pub seconds: f64,
    /// Tokens read by the training forward passes.
    pub tokens: usize,
    /// Records cut to the context window when the data were encoded.
    pub truncated: usize,
}

impl TrainReport {
    /// Training tokens per second.
    pub fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.seconds.max(1e-9)
    }
}

/// The loss of one micro-batch.
pub(crate) struct MicroLoss<B: Backend> {
    /// Already divided by the step's normaliser.
    pub(crate) loss: Tensor<B, 1>,
    /// Metric sums over the micro-batch's items (divided by the step's item count later).
    pub(crate) metrics: Vec<(&'static str, f64)>,
    pub(crate) tokens: usize,
}

/// The loss of one micro-batch on `kailin-lm`'s CPU kernels, with its gradients when asked.
pub(crate) struct NativeLoss {
    /// Already divided by the step's normaliser.
    pub(crate) loss: f64,
    pub(crate) metrics: Vec<(&'static str, f64)>,
    pub(crate) tokens: usize,
    pub(crate) grads: Option<GradientsParams>,
}

/// An objective: the loss of a micro-batch of items.
pub(crate) trait Objective {
    type Item;
    /// The item's share of the step's normaliser (tokens learned, or 1 per pair).
    fn weight(&self, item: &Self::Item) -> f64;
    /// Feeds what the item trains on into a digest (names the data a checkpoint belongs to).
    fn fingerprint(&self, item: &Self::Item, h: &mut Fnv64);
    fn loss<B: Backend>(&self, model: &Llama<B>, items: &[&Self::Item], normaliser: f64) -> Result<MicroLoss<B>>;
    /// [`loss`](Self::loss) on the CPU kernels, on `model` (burn's `Flex` model, for its
    /// weights) with gradients for `trained` (the autodiff model it is the valid copy of) when
    /// given: `None` where the kernels do not apply.
    fn native<B: AutodiffBackend>(
        &self,
        model: &Llama<B::InnerBackend>,
        trained: Option<&Llama<B>>,
        items: &[&Self::Item],
        normaliser: f64,
    ) -> Result<Option<NativeLoss>>;
}

/// Inputs, targets, weights and segments of right-padded rows.
pub(crate) struct BatchTensors<B: Backend> {
    pub(crate) inputs: Tensor<B, 2, Int>,
    pub(crate) targets: Tensor<B, 2, Int>,
    pub(crate) weights: Tensor<B, 2>,
    pub(crate) segments: Option<Vec<u32>>,
    pub(crate) tokens: usize,
}

impl<B: Backend> BatchTensors<B> {
    pub(crate) fn new(rows: &[&Row], device: &B::Device) -> Self {
        let seq = rows.iter().map(|r| r.ids.len().saturating_sub(1)).max().unwrap_or(0).max(1);
        let n = rows.len();
        let (mut inputs, mut targets, mut weights) = (vec![0i64; n * seq], vec![0i64; n * seq], vec![0.0f32; n * seq]);
        let packed = rows.iter().any(|r| r.segments.is_some());
        let mut segments = packed.then(|| vec![u32::MAX; n * seq]);
        let mut tokens = 0;
        for (b, row) in rows.iter().enumerate() {
            let len = row.ids.len().saturating_sub(1);
            tokens += len;
            for j in 0..len {
                inputs[b * seq + j] = i64::from(row.ids[j]);
                targets[b * seq + j] = i64::from(row.ids[j + 1]);
                weights[b * seq + j] = row.weights[j];
            }
            if let Some(segments) = &mut segments {
                for j in 0..len {
                    segments[b * seq + j] = row.segments.as_ref().map_or(0, |s| s[j]);
                }
            }
        }
        BatchTensors {
            inputs: Tensor::from_data(TensorData::new(inputs, [n, seq]), device),
            targets: Tensor::from_data(TensorData::new(targets, [n, seq]), device),
            weights: Tensor::from_data(TensorData::new(weights, [n, seq]), device),
            segments,
            tokens,
        }
    }

    /// Logits `[rows, seq, vocab]` of the inputs.
    pub(crate) fn logits(&self, model: &Llama<B>) -> Result<Tensor<B, 3>> {
        Ok(match &self.segments {
            Some(s) => model.forward_segments(self.inputs.clone(), s)?,
            None => model.forward(self.inputs.clone())?,
        })
    }
}

/// A deterministic permutation of `0..n` for `seed`.
pub(crate) fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    kailin_core::SplitMix64::new(seed).shuffle(&mut order);
    order
}

/// Draws every lazily initialised parameter now, before the loop seeds the backend's random
/// generator per step: initial weights must not depend on where the first draw happens.
fn materialise<B: Backend>(model: &Llama<B>) {
    struct Touch;
    impl<B: Backend> ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_scalar().elem::<f64>()
}

/// Adds a micro-batch's metric sums into `sums` (by name, first-seen order).
fn add_metrics(sums: &mut Vec<(&'static str, f64)>, metrics: Vec<(&'static str, f64)>) {
    for (name, v) in metrics {
        match sums.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 += v,
            None => sums.push((name, v)),
        }
    }
}

/// Metric sums as means over `items` items.
fn means(sums: Vec<(&'static str, f64)>, items: usize) -> Vec<(String, f64)> {
    sums.into_iter().map(|(n, v)| (n.to_owned(), v / items.max(1) as f64)).collect()
}

/// Mean loss of `items` without gradients, in micro-batches of `batch_size`, and the
/// objective's metrics as means over the items.
pub(crate) fn evaluate<B: AutodiffBackend, O: Objective>(
    model: &Llama<B::InnerBackend>,
    objective: &O,
    items: &[O::Item],
    batch_size: usize,
) -> Result<(f64, Vec<(String, f64)>)> {
    let normaliser: f64 = items.iter().map(|i| objective.weight(i)).sum();
    let (mut total, mut sums) = (0.0, Vec::new());
    for chunk in items.chunks(batch_size.max(1)) {
        let refs: Vec<&O::Item> = chunk.iter().collect();
        let (value, metrics) = match objective.native::<B>(model, None, &refs, normaliser)? {
            Some(out) => (out.loss, out.metrics),
            None => {
                let out = objective.loss(model, &refs, normaliser)?;
                (scalar(out.loss), out.metrics)
            }
        };
        total += value;
        add_metrics(&mut sums, metrics);
    }
    Ok((total, means(sums, items.len())))
}

/// What the loop tells its caller after every optimiser step (a binary draws its progress
/// bar from it; the library draws nothing).
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The step just taken.
    pub log: &'a StepLog,
    /// The step the run ends at (`stop_after`, or the last step of the last epoch).
    pub last: u64,
    /// Training tokens per second since this process started or resumed the run.
    pub tokens_per_second: f64,
    /// The evaluation loss, when this step evaluated.
    pub eval_loss: Option<f64>,
}

/// A run in progress: what the loop carries from step to step besides the model.
struct Run<'a, B: AutodiffBackend, O: Objective> {
    objective: &'a O,
    opts: &'a TrainOptions,
    optim: AdamW<B>,
    /// Where the run stands, as a checkpoint records it (its `report` is kept in `report`).
    state: RunState,
    report: TrainReport,
    /// Optimiser steps of every epoch, and in all.
    steps_per_epoch: usize,
    total: u64,
    stochastic: bool,
    /// Only LoRA adapters train: the CPU kernels can compute the step where they apply.
    adapters_alone: bool,
    device: B::Device,
    started: Instant,
    resumed_seconds: f64,
    resumed_tokens: usize,
}

impl<'a, B: AutodiffBackend, O: Objective> Run<'a, B, O> {
    /// Checks the options, names the data, and resumes from the newest checkpoint when asked.
    fn start(
        mut model: Llama<B>,
        objective: &'a O,
        train: &[O::Item],
        opts: &'a TrainOptions,
    ) -> Result<(Llama<B>, Self)> {
        opts.check()?;
        if train.is_empty() {
            return Err(Error::Options("nothing to train on".into()));
        }
        let steps_per_epoch = train.len().div_ceil(opts.batch_size * opts.grad_accum);
        let mut optim = AdamW::<B>::new(opts.adamw);
        let mut digest = Fnv64::new();
        train.iter().for_each(|item| objective.fingerprint(item, &mut digest));
        let mut state = RunState {
            format: checkpoint::FORMAT,
            step: 0,
            epoch: 0,
            position: 0,
            options: RunState::trajectory(opts),
            data: digest.hex(),
            base: opts.base_model.clone(),
            parameters: checkpoint::parameters(&model),
            report: TrainReport::default(),
        };
        if let Some(ck) = opts.checkpoint.as_ref().filter(|c| c.resume)
            && let Some(path) = checkpoint::latest_checkpoint(&ck.dir)?
        {
            let (restored, saved) = checkpoint::load(&path, model, &mut optim, &state)?;
            tracing::info!(checkpoint = %path.display(), step = saved.step, "resuming");
            model = restored;
            state = saved;
        }
        materialise(&model);
        let report = std::mem::take(&mut state.report);
        let run = Run {
            objective,
            opts,
            optim,
            steps_per_epoch,
            total: steps_per_epoch as u64 * opts.epochs as u64,
            stochastic: model.is_stochastic(),
            adapters_alone: model.trains_adapters_only(),
            device: model.devices().first().cloned().unwrap_or_default(),
            started: Instant::now(),
            resumed_seconds: report.seconds,
            resumed_tokens: report.tokens,
            report,
            state,
        };
        Ok((model, run))
    }

    /// One optimiser step on `items`: micro-batches, accumulated gradients, clipping, update.
    fn step(&mut self, mut model: Llama<B>, step: u64, items: &[&O::Item]) -> Result<Llama<B>> {
        let (opts, objective) = (self.opts, self.objective);
        let step_started = Instant::now();
        // Anything random in the step (LoRA dropout) depends on the seed and the step alone, so
        // a resumed run draws what the uninterrupted run drew. (burn's generator is one per
        // process: only a model that draws gets it re-seeded.)
        if self.stochastic {
            B::seed(&self.device, opts.seed.wrapping_add(step.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        }
        let normaliser: f64 = items.iter().map(|i| objective.weight(i)).sum();
        let mut accumulator = GradientsAccumulator::<Llama<B>>::new();
        let (mut loss, mut tokens, mut sums) = (0.0, 0, Vec::<(&'static str, f64)>::new());
        for micro in items.chunks(opts.batch_size) {
            let native = match self.adapters_alone {
                true => objective.native(&model.valid(), Some(&model), micro, normaliser)?,
                false => None,
            };
            let (value, micro_tokens, metrics, grads) = match native {
                Some(out) => {
                    let grads = out.grads.ok_or_else(|| Error::Backend("a training pass without gradients".into()))?;
                    (out.loss, out.tokens, out.metrics, grads)
                }
                None => {
                    let out = objective.loss(&model, micro, normaliser)?;
                    let value = scalar(out.loss.clone());
                    (value, out.tokens, out.metrics, GradientsParams::from_grads(out.loss.backward(), &model))
                }
            };
            if !value.is_finite() {
                return Err(Error::NonFinite { step, what: "loss", value });
            }
            loss += value;
            tokens += micro_tokens;
            add_metrics(&mut sums, metrics);
            accumulator.accumulate(&model, grads);
        }
        let grads = accumulator.grads();
        let norm = grad_norm(&model, &grads);
        if !norm.is_finite() {
            return Err(Error::NonFinite { step, what: "gradient norm", value: norm });
        }
        let lr = learning_rate(step - 1, self.total, opts.warmup_steps, opts.lr, opts.min_lr_ratio);
        model = self.optim.step(model, grads, lr, clip_scale(norm, opts.max_grad_norm));
        let metrics = means(sums, items.len());
        tracing::debug!(step, loss, grad_norm = norm, lr, "step");
        let seconds = step_started.elapsed().as_secs_f64();
        self.report.tokens += tokens;
        self.report.steps.push(StepLog { step, lr, loss, grad_norm: norm, tokens, metrics, seconds });
        Ok(model)
    }

    /// Evaluates on `eval` when `step` is due (every `eval_every` steps, and the last).
    fn evaluate(&mut self, model: &Llama<B>, step: u64, eval: &[O::Item]) -> Result<Option<f64>> {
        let due =
            self.opts.eval_every.is_some_and(|every| every > 0 && step.is_multiple_of(every)) || step == self.total;
        if !due || eval.is_empty() {
            return Ok(None);
        }
        let (value, metrics) = evaluate::<B, O>(&model.valid(), self.objective, eval, self.opts.batch_size)?;
        tracing::info!(step, eval_loss = value, ?metrics, "evaluation");
        self.report.evals.push((step, value));
        self.report.eval_metrics.push((step, metrics));
        Ok(Some(value))
    }

    /// Writes a checkpoint after `step` (the `position`-th of `epoch`) when one is due.
    fn checkpoint(&mut self, model: &Llama<B>, step: u64, epoch: usize, position: usize) -> Result<()> {
        let Some(ck) = &self.opts.checkpoint else { return Ok(()) };
        let stopping = self.opts.stop_after == Some(step);
        if !(step.is_multiple_of(ck.every) || step == self.total || stopping) {
            return Ok(());
        }
        let (epoch, position) =
            if position + 1 == self.steps_per_epoch { (epoch + 1, 0) } else { (epoch, position + 1) };
        self.report.seconds = self.seconds();
        let now = RunState { step, epoch, position, report: self.report.clone(), ..self.state.clone() };
        checkpoint::save(ck, model, &self.optim, &now)?;
        Ok(())
    }

    /// Seconds of the whole run, earlier processes included.
    fn seconds(&self) -> f64 {
        self.resumed_seconds + self.started.elapsed().as_secs_f64()
    }

    /// Training tokens per second of this process.
    fn rate(&self) -> f64 {
        (self.report.tokens - self.resumed_tokens) as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }
}

/// Trains `model` on `train` with `objective`; evaluates on `eval` (when not empty) every
/// `eval_every` steps and after the last; `on_step` sees every step.
pub(crate) fn train<B: AutodiffBackend, O: Objective>(
    model: Llama<B>,
    objective: &O,
    train: &[O::Item],
    eval: &[O::Item],
    opts: &TrainOptions,
    mut on_step: impl FnMut(&Progress<'_>),
) -> Result<(Llama<B>, TrainReport)> {
    let (mut model, mut run) = Run::start(model, objective, train, opts)?;
    let (first_epoch, skip, mut step) = (run.state.epoch, run.state.position, run.state.step);
    let last = opts.stop_after.map_or(run.total, |s| s.min(run.total));
    let per_step = opts.batch_size * opts.grad_accum;
    'epochs: for epoch in first_epoch..opts.epochs {
        let order = permutation(train.len(), opts.seed ^ (epoch as u64).wrapping_mul(0xA076_1D64_78BD_642F));
        for (position, chunk) in order.chunks(per_step).enumerate() {
            if epoch == first_epoch && position < skip {
                continue;
            }
            if step >= last {
                break 'epochs;
            }
            step += 1;
            let items: Vec<&O::Item> = chunk.iter().map(|&i| &train[i]).collect();
            model = run.step(model, step, &items)?;
            let eval_loss = run.evaluate(&model, step, eval)?;
            if let Some(log) = run.report.steps.last() {
                on_step(&Progress { log, last, tokens_per_second: run.rate(), eval_loss });
            }
            run.checkpoint(&model, step, epoch, position)?;
        }
    }
    run.report.seconds = run.seconds();
    Ok((model, run.report))
}
