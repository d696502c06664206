//! `kailin train cpt|sft|dpo`: thin subcommands over `kailin-train`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use clap::{Args, Subcommand};
use kailin_lm::LoraConfig;
use kailin_train::{CheckpointOptions, Job, Objective, Overlong, TrainOptions, TrainReport};

use crate::lm::Device;

/// Training: continued pre-training, supervised fine-tuning, DPO.
#[derive(Debug, Subcommand)]
pub(crate) enum TrainCmd {
    /// Continued pre-training on `{"text"}` lines (packed into full windows).
    Cpt(DataArgs),
    /// Supervised fine-tuning on `{"prompt","completion"}` or `{"messages"}` lines; only the
    /// answers are learned.
    Sft(DataArgs),
    /// Direct preference optimisation on `{"prompt","chosen","rejected"}` lines.
    Dpo(DpoArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DataArgs {
    /// Training data (JSON Lines).
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    common: CommonArgs,
}

/// The options of every training run but its data (`kailin evaluate train` and
/// `kailin question train` make their own).
#[derive(Debug, Clone, Args)]
pub(crate) struct CommonArgs {
    /// The starting model: a GGUF file or a Hugging Face directory.
    #[arg(long, visible_alias = "base")]
    model: PathBuf,
    /// Evaluation data in the same shape (its loss is logged).
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Output directory: the trained model as a Hugging Face checkpoint (model.safetensors,
    /// config.json, tokenizer files), checkpoints under `checkpoints/`, and `report.json`.
    #[arg(long)]
    out: PathBuf,
    /// Train LoRA adapters of this rank (base frozen; merged into the exported model) instead
    /// of every weight.
    #[arg(long, value_parser = crate::args::at_least_one)]
    lora_rank: Option<usize>,
    /// LoRA's alpha (the update is scaled by alpha / rank).
    #[arg(long, default_value_t = 16.0, value_parser = crate::args::positive)]
    lora_alpha: f64,
    /// LoRA's dropout.
    #[arg(long, default_value_t = 0.0, value_parser = crate::args::unit_closed_open)]
    lora_dropout: f64,
    /// Passes over the data.
    #[arg(long, default_value_t = 1, value_parser = crate::args::at_least_one)]
    epochs: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-5, value_parser = crate::args::positive)]
    lr: f64,
    /// Rows (pairs for DPO) per micro-batch.
    #[arg(long, default_value_t = 4, value_parser = crate::args::at_least_one)]
    batch_size: usize,
    /// Micro-batches per optimiser step.
    #[arg(long, default_value_t = 1, value_parser = crate::args::at_least_one)]
    grad_accum: usize,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 0)]
    warmup_steps: u64,
    /// Clip the global gradient norm (0: no clipping).
    #[arg(long, default_value_t = 1.0, value_parser = crate::args::non_negative)]
    max_grad_norm: f64,
    /// Decoupled weight decay.
    #[arg(long, default_value_t = 0.0, value_parser = crate::args::non_negative)]
    weight_decay: f64,
    /// Context window: longest row in tokens.
    #[arg(long, default_value_t = 512, value_parser = crate::args::positions)]
    max_len: usize,
    /// Refuse records longer than the window instead of cutting them (with a counted warning).
    #[arg(long)]
    refuse_long: bool,
    /// Seed of the shuffling (and of LoRA dropout).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Evaluate every this many steps (and after the last).
    #[arg(long, value_parser = crate::args::at_least_one_u64)]
    eval_every: Option<u64>,
    /// Write a checkpoint every this many steps (and after the last); a later run with the same
    /// `--out` resumes from the newest one.
    #[arg(long, default_value_t = 100, value_parser = crate::args::at_least_one_u64)]
    checkpoint_every: u64,
    /// End after this many optimiser steps in all (resume later with the same command).
    #[arg(long, value_parser = crate::args::at_least_one_u64)]
    stop_after: Option<u64>,
    /// Compute device.
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
    /// Start over: write into an --out that is not empty and was not made by this command, and
    /// discard its checkpoints (a run from another model or with other options is refused
    /// otherwise).
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DpoArgs {
    #[command(flatten)]
    data: DataArgs,
    /// DPO's beta.
    #[arg(long, default_value_t = 0.1, value_parser = crate::args::positive)]
    beta: f64,
    /// Weight of the chosen completions' per-token negative log-likelihood added to the DPO
    /// loss (RPO): keeps the policy on the chosen completions' form (0: plain DPO).
    #[arg(long, default_value_t = 0.0, value_parser = crate::args::non_negative)]
    nll: f64,
}

pub(crate) fn run(cmd: TrainCmd) -> Result<()> {
    let (objective, data, common, command) = match &cmd {
        TrainCmd::Cpt(a) => (Objective::Cpt, &a.data, &a.common, "kailin train cpt"),
        TrainCmd::Sft(a) => (Objective::Sft, &a.data, &a.common, "kailin train sft"),
        TrainCmd::Dpo(d) => {
            (Objective::Dpo { beta: d.beta, nll: d.nll }, &d.data.data, &d.data.common, "kailin train dpo")
        }
    };
    let mut inputs: Vec<(&str, &Path)> = vec![("--data", data), ("--model", &common.model)];
    if let Some(e) = &common.eval {
        inputs.push(("--eval", e));
    }
    kailin_core::check_outputs(&inputs, &[("--out", &common.out)])?;
    // The data must be there before a directory is made for the run.
    for (flag, p) in &inputs {
        if !(p.is_file() || *flag == "--model" && p.is_dir()) {
            bail!("{flag} {}: {}; give the file to train on", p.display(), kailin_core::describe_path(p));
        }
    }
    let _out = common.open_out(command)?;
    check_resumable(objective, data, common)?;
    on_device(objective, data, common)
}

/// Supervised fine-tuning on `data` with the options of `a` (its --out opened by the caller).
pub(crate) fn sft_on(a: CommonArgs, data: PathBuf) -> Result<()> {
    on_device(Objective::Sft, &data, &a)
}

/// Continued pre-training on `data` with the options of `a` (its --out opened by the caller).
pub(crate) fn cpt_on(a: CommonArgs, data: PathBuf) -> Result<()> {
    on_device(Objective::Cpt, &data, &a)
}

/// Writes the training records a command derived from its inputs to `path` in --out; refused
/// (before writing) when the file holds other records and checkpoints continue a run on
/// them, unless --force: the run would be refused later, with its data already replaced.
pub(crate) fn write_training_data<T: serde::Serialize>(a: &CommonArgs, path: &Path, records: &[T]) -> Result<()> {
    let mut bytes = Vec::new();
    for r in records {
        serde_json::to_writer(&mut bytes, r)?;
        bytes.push(b'\n');
    }
    if !a.force
        && std::fs::read(path).is_ok_and(|old| old != bytes)
        && kailin_train::latest_checkpoint(a.out.join("checkpoints"))?.is_some()
    {
        bail!(
            "{} holds other training records than these inputs make, and the checkpoints in {} continue a run on them: \
             rerun with --force to start over, or give another --out",
            path.display(),
            a.out.join("checkpoints").display()
        );
    }
    Ok(kailin_core::write_atomic(path, &bytes)?)
}

/// Refuses, before anything is written, to continue checkpoints of a run from another
/// starting model, objective or adapter.
pub(crate) fn check_resumable(objective: Objective, data: &Path, a: &CommonArgs) -> Result<()> {
    kailin_train::check_resumable(&a.job(objective, data)?)
        .map_err(|e| anyhow::anyhow!("{e}, or rerun with --force to start over"))
}

fn on_device(objective: Objective, data: &Path, a: &CommonArgs) -> Result<()> {
    match a.device {
        Device::Cpu => dispatch::<Autodiff<burn::backend::Flex>>(objective, data, a, &Default::default()),
        #[cfg(feature = "cuda")]
        Device::Cuda => dispatch::<Autodiff<burn::backend::Cuda>>(objective, data, a, &kailin_lm::cuda_device(0)?),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => bail!("this kailin was built without CUDA (cargo build -p kailin-cli --features cuda)"),
    }
}

impl CommonArgs {
    /// The output directory.
    pub(crate) fn out(&self) -> &Path {
        &self.out
    }

    /// Checks, creates and locks --out for `command` (see `kailin_core::RunDir`); with
    /// --force, its checkpoints are removed first (the run starts over).
    pub(crate) fn open_out(&self, command: &str) -> Result<kailin_core::RunDir> {
        let dir = kailin_core::RunDir::open(
            &self.out,
            &kailin_core::RunDirOptions {
                flag: "--out",
                command,
                force: self.force,
                sharing: kailin_core::Sharing::Exclusive,
            },
        )?;
        let checkpoints = self.out.join("checkpoints");
        if self.force && checkpoints.exists() {
            tracing::warn!(dir = %checkpoints.display(), "--force: removing the checkpoints of the earlier run");
            std::fs::remove_dir_all(&checkpoints).with_context(|| format!("removing {}", checkpoints.display()))?;
        }
        Ok(dir)
    }

    /// The training job on `data`.
    fn job(&self, objective: Objective, data: &Path) -> Result<Job> {
        Ok(Job {
            objective,
            model: self.model.clone(),
            data: data.to_path_buf(),
            eval: self.eval.clone(),
            out: self.out.clone(),
            lora: self
                .lora_rank
                .map(|rank| LoraConfig::new(rank).with_alpha(self.lora_alpha).with_dropout(self.lora_dropout)),
            max_len: self.max_len,
            overlong: self.overlong(),
            options: self.options()?,
        })
    }

    /// Whether --force was given.
    pub(crate) fn forced(&self) -> bool {
        self.force
    }

    /// The starting model.
    pub(crate) fn model(&self) -> &Path {
        &self.model
    }

    /// Sets the number of epochs.
    pub(crate) fn set_epochs(&mut self, epochs: usize) {
        self.epochs = epochs;
    }

    /// The same options for another run: from `model`, into `out`, evaluated on `eval`.
    pub(crate) fn retarget(&self, model: PathBuf, out: PathBuf, eval: Option<PathBuf>) -> Self {
        CommonArgs { model, out, eval, ..self.clone() }
    }

    fn options(&self) -> Result<TrainOptions> {
        Ok(TrainOptions {
            epochs: self.epochs,
            batch_size: self.batch_size,
            grad_accum: self.grad_accum,
            lr: self.lr,
            warmup_steps: self.warmup_steps,
            max_grad_norm: (self.max_grad_norm > 0.0).then_some(self.max_grad_norm),
            adamw: kailin_train::AdamWConfig { weight_decay: self.weight_decay, ..Default::default() },
            seed: self.seed,
            eval_every: self.eval_every,
            checkpoint: Some(CheckpointOptions::new(self.out.join("checkpoints"), self.checkpoint_every)),
            stop_after: self.stop_after,
            ..Default::default()
        })
    }

    fn overlong(&self) -> Overlong {
        if self.refuse_long { Overlong::Refuse } else { Overlong::Truncate }
    }
}

fn dispatch<A: AutodiffBackend>(objective: Objective, data: &Path, a: &CommonArgs, device: &A::Device) -> Result<()> {
    let job = a.job(objective, data)?;
    let mut bar = crate::progress::TrainBar::default();
    let outcome = kailin_train::run_job::<A>(&job, device, |p| bar.update(p))?;
    drop(bar);
    if outcome.exported {
        summary(&outcome.report, &a.out, "trained model written to");
    } else {
        summary(&outcome.report, &a.out.join("checkpoints"), "stopped; resume with the same command; checkpoints in");
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn summary(report: &TrainReport, place: &Path, what: &str) {
    let (first, last) = (report.steps.first(), report.steps.last());
    if let (Some(f), Some(l)) = (first, last) {
        println!("steps {}..{}: loss {:.4} -> {:.4}", f.step, l.step, f.loss, l.loss);
    }
    if let Some((step, loss)) = report.evals.last() {
        let metrics = report.eval_metrics.last().filter(|(s, _)| s == step).map(|(_, m)| m.as_slice()).unwrap_or(&[]);
        let metrics: String = metrics.iter().map(|(name, v)| format!(", {name} {v:.4}")).collect();
        println!("eval loss {loss:.4}{metrics} at step {step}");
    }
    println!(
        "{:.0} training tokens/s over {:.1} s; {what} {}",
        report.tokens_per_second(),
        report.seconds,
        place.display()
    );
}
