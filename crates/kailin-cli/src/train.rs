//! `kailin train cpt|sft|dpo`: thin subcommands over `kailin-train`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use clap::{Args, Subcommand};
use kailin_lm::LoraConfig;
use kailin_train::{
    CheckpointOptions, DpoOptions, Encoded, Overlong, Packing, TrainOptions, TrainReport, cpt, dpo, encode_pairs,
    encode_sft, encode_texts, read_dpo_dataset, read_sft_dataset, read_text_dataset, sft,
};

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
    #[arg(long, default_value_t = 0.0, value_parser = crate::args::dropout)]
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
}

#[derive(Debug, Args)]
pub(crate) struct DpoArgs {
    #[command(flatten)]
    data: DataArgs,
    /// DPO's beta.
    #[arg(long, default_value_t = 0.1, value_parser = crate::args::positive)]
    beta: f64,
}

/// What a run optimises.
enum Objective {
    Cpt,
    Sft,
    Dpo { beta: f64 },
}

pub(crate) fn run(cmd: TrainCmd) -> Result<()> {
    match cmd {
        TrainCmd::Cpt(a) => on_device(Objective::Cpt, &a.data, &a.common),
        TrainCmd::Sft(a) => on_device(Objective::Sft, &a.data, &a.common),
        TrainCmd::Dpo(d) => on_device(Objective::Dpo { beta: d.beta }, &d.data.data, &d.data.common),
    }
}

/// Supervised fine-tuning on `data` with the options of `a`.
pub(crate) fn sft_on(a: CommonArgs, data: PathBuf) -> Result<()> {
    on_device(Objective::Sft, &data, &a)
}

/// Continued pre-training on `data` with the options of `a`.
pub(crate) fn cpt_on(a: CommonArgs, data: PathBuf) -> Result<()> {
    on_device(Objective::Cpt, &data, &a)
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
    let opts = a.options()?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    // Positions beyond the window cost only RoPE table rows; the exported config.json keeps a
    // usable `max_position_embeddings`.
    let (model, config, tok) = kailin_lm::load::<A>(&a.model, (a.max_len + 1).max(2048), device)?;
    let model = match a.lora_rank {
        Some(rank) => model.with_lora(&LoraConfig::new(rank).with_alpha(a.lora_alpha).with_dropout(a.lora_dropout))?,
        None => model,
    };
    let (window, overlong) = (a.max_len, a.overlong());
    let mut bar = crate::progress::TrainBar::default();
    let on_step = |p: &kailin_train::Progress<'_>| bar.update(p);
    let (model, report) = match objective {
        Objective::Cpt => {
            let packing = Packing { pack: true, isolate: true };
            let (data, eval) =
                training_and_eval(a, data, |p| encode_texts(&read_text_dataset(p)?, &tok, window, overlong, packing))?;
            cpt::train(model, &data, &eval, &opts, on_step)?
        }
        Objective::Sft => {
            let (data, eval) =
                training_and_eval(a, data, |p| encode_sft(&read_sft_dataset(p)?, &tok, window, overlong))?;
            sft::train(model, &data, &eval, &opts, on_step)?
        }
        Objective::Dpo { beta } => {
            let (data, eval) =
                training_and_eval(a, data, |p| encode_pairs(&read_dpo_dataset(p)?, &tok, window, overlong))?;
            let dpo_opts = DpoOptions {
                beta,
                reference_cache: Some(a.out.join("reference_logprobs.json")),
                reference_id: std::fs::canonicalize(&a.model).unwrap_or_else(|_| a.model.clone()).display().to_string(),
            };
            dpo::train(model, &data, &eval, &opts, &dpo_opts, on_step)?
        }
    };
    drop(bar);
    let finished = report.steps.last().map(|s| s.step);
    let total_done = a.stop_after.is_none() || finished < a.stop_after;
    write_report(&a.out, &report)?;
    if total_done {
        model.valid_export(&config, &tok, &a.out)?;
        summary(&report, &a.out, "trained model written to");
    } else {
        summary(&report, &a.out.join("checkpoints"), "stopped; resume with the same command; checkpoints in");
    }
    Ok(())
}

/// Exporting the trained model (LoRA merged) next to its tokenizer.
trait Export {
    fn valid_export(self, config: &kailin_lm::LlamaConfig, tok: &kailin_lm::Tokenizer, out: &Path) -> Result<()>;
}

impl<A: AutodiffBackend> Export for kailin_lm::Llama<A> {
    fn valid_export(self, config: &kailin_lm::LlamaConfig, tok: &kailin_lm::Tokenizer, out: &Path) -> Result<()> {
        use burn::module::AutodiffModule;
        let model = self.valid().merge_lora();
        model.save_hf_dir(config, out).with_context(|| format!("exporting to {}", out.display()))?;
        tok.save_hf_dir(out)?;
        Ok(())
    }
}

/// The training data and the evaluation items (none without `--eval`), read and encoded by
/// `encode`; cut records are counted in a warning.
fn training_and_eval<T>(
    a: &CommonArgs,
    path: &Path,
    encode: impl Fn(&Path) -> kailin_train::Result<Encoded<T>>,
) -> Result<(Encoded<T>, Vec<T>)> {
    let data = encode(path)?;
    if data.truncated > 0 {
        tracing::warn!(data = %path.display(), records = data.truncated, "records longer than --max-len were cut (--refuse-long refuses them)");
    }
    let eval = match &a.eval {
        Some(p) => encode(p)?.items,
        None => Vec::new(),
    };
    Ok((data, eval))
}

fn write_report(out: &Path, report: &TrainReport) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    Ok(kailin_core::write_atomic(out.join("report.json"), serde_json::to_string_pretty(report)?.as_bytes())?)
}

#[allow(clippy::print_stdout)]
fn summary(report: &TrainReport, place: &Path, what: &str) {
    let (first, last) = (report.steps.first(), report.steps.last());
    if let (Some(f), Some(l)) = (first, last) {
        println!("steps {}..{}: loss {:.4} -> {:.4}", f.step, l.step, f.loss, l.loss);
    }
    if let Some((step, loss)) = report.evals.last() {
        println!("eval loss {loss:.4} at step {step}");
    }
    println!(
        "{:.0} training tokens/s over {:.1} s; {what} {}",
        report.tokens_per_second(),
        report.seconds,
        place.display()
    );
}
