//! One whole training run from files to files: load the starting model, add LoRA, read and
//! encode the data, train, write `report.json`, and export the trained model (LoRA merged) as
//! a Hugging Face directory beside its tokenizer. The command line and the pipeline share it.

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use kailin_lm::LoraConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{
    DpoOptions, Encoded, Overlong, Packing, Progress, TrainOptions, TrainReport, cpt, dpo, encode_pairs, encode_sft,
    encode_texts, read_dpo_dataset, read_sft_dataset, read_text_dataset, sft,
};

/// What a run optimises.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "objective")]
pub enum Objective {
    /// Continued pre-training on `{"text"}` lines, packed into whole windows.
    Cpt,
    /// Supervised fine-tuning on `{"prompt","completion"}` or `{"messages"}` lines.
    Sft,
    /// Direct preference optimisation on `{"prompt","chosen","rejected"}` lines.
    Dpo {
        /// β.
        beta: f64,
        /// Weight of the chosen completions' per-token negative log-likelihood added to the
        /// DPO loss ([`DpoOptions::nll`]); 0, the paper's DPO, is left out of the serialised form.
        #[serde(default, skip_serializing_if = "crate::dpo::is_zero")]
        nll: f64,
    },
}

/// A training run from files to files.
#[derive(Debug, Clone)]
pub struct Job {
    /// What is optimised.
    pub objective: Objective,
    /// The starting model: a GGUF file or a Hugging Face directory.
    pub model: PathBuf,
    /// Training data (JSON Lines in the objective's shape).
    pub data: PathBuf,
    /// Evaluation data in the same shape (its loss is logged).
    pub eval: Option<PathBuf>,
    /// Output directory: the exported model, `report.json`, checkpoints if
    /// `options.checkpoint` says so.
    pub out: PathBuf,
    /// Train LoRA adapters (merged into the export) instead of every weight.
    pub lora: Option<LoraConfig>,
    /// Longest row in tokens.
    pub max_len: usize,
    /// What to do with a longer record.
    pub overlong: Overlong,
    /// The loop's options.
    pub options: TrainOptions,
}

/// How a [`Job`] ended.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    /// Every step's loss and the evaluations.
    pub report: TrainReport,
    /// Whether the model was exported (false when `options.stop_after` stopped the run early:
    /// resume it with the same job).
    pub exported: bool,
}

/// Runs `job` on `device`; `on_step` sees every optimiser step.
///
/// Errors: the model cannot be loaded, the data cannot be read or encoded, training fails
/// (with the last checkpoint kept), or the export cannot be written.
pub fn run_job<A: AutodiffBackend>(
    job: &Job,
    device: &A::Device,
    on_step: impl FnMut(&Progress<'_>),
) -> Result<JobOutcome> {
    std::fs::create_dir_all(&job.out).map_err(|source| Error::Io { path: job.out.clone(), source })?;
    // Positions beyond the window cost only RoPE table rows; the exported config.json keeps a
    // usable `max_position_embeddings`.
    let (model, config, tok) = kailin_lm::load::<A>(&job.model, (job.max_len + 1).max(2048), device)?;
    let model = match &job.lora {
        Some(lora) => model.with_lora(lora)?,
        None => model,
    };
    let opts = &TrainOptions { base_model: Some(start_identity(job)?), ..job.options.clone() };
    let (window, overlong) = (job.max_len, job.overlong);
    let (model, report) = match job.objective {
        Objective::Cpt => {
            let packing = Packing { pack: true, isolate: true };
            let (data, eval) =
                training_and_eval(job, |p| encode_texts(&read_text_dataset(p)?, &tok, window, overlong, packing))?;
            cpt::train(model, &data, &eval, opts, on_step)?
        }
        Objective::Sft => {
            let (data, eval) = training_and_eval(job, |p| encode_sft(&read_sft_dataset(p)?, &tok, window, overlong))?;
            sft::train(model, &data, &eval, opts, on_step)?
        }
        Objective::Dpo { beta, nll } => {
            let (data, eval) = training_and_eval(job, |p| encode_pairs(&read_dpo_dataset(p)?, &tok, window, overlong))?;
            let dpo_opts = DpoOptions {
                beta,
                nll,
                reference_cache: Some(job.out.join("reference_logprobs.json")),
                reference_id: std::fs::canonicalize(&job.model)
                    .unwrap_or_else(|_| job.model.clone())
                    .display()
                    .to_string(),
            };
            dpo::train(model, &data, &eval, opts, &dpo_opts, on_step)?
        }
    };
    let bytes = serde_json::to_vec_pretty(&report).map_err(|e| Error::Options(format!("report: {e}")))?;
    kailin_core::write_atomic(job.out.join("report.json"), &bytes)?;
    let finished = report.steps.last().map(|s| s.step);
    let exported = opts.stop_after.is_none() || finished < opts.stop_after;
    if exported {
        let model = model.valid().merge_lora();
        model.save_hf_dir(&config, &job.out)?;
        tok.save_hf_dir(&job.out)?;
    }
    Ok(JobOutcome { report, exported })
}

/// What a checkpoint of `job` must continue: its starting model's digest, objective and
/// adapter (or `options.base_model` when the caller gave one).
fn start_identity(job: &Job) -> Result<String> {
    Ok(match &job.options.base_model {
        Some(given) => given.clone(),
        None => format!(
            "model {} objective {} lora {}",
            kailin_lm::model_digest(&job.model)?,
            serde_json::to_string(&job.objective).unwrap_or_default(),
            job.lora.as_ref().map_or("none".into(), |l| format!("r{} alpha{} dropout{}", l.rank, l.alpha, l.dropout))
        ),
    })
}

/// Checks, before anything is written, that `job` can continue the checkpoints in its
/// directory: they were made from the same starting model, objective and adapter. (The
/// options and data are checked when the run resumes; this is the check a command makes
/// first, so that a refused run leaves the directory as it was.)
///
/// Errors: [`Error::Checkpoint`] naming both starting points.
pub fn check_resumable(job: &Job) -> Result<()> {
    let Some(ck) = job.options.checkpoint.as_ref().filter(|c| c.resume) else { return Ok(()) };
    let Some(latest) = crate::latest_checkpoint(&ck.dir)? else { return Ok(()) };
    let state = latest.join("state.json");
    let text = std::fs::read_to_string(&state).map_err(|source| Error::Io { path: state.clone(), source })?;
    let recorded: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Checkpoint { path: state.clone(), reason: e.to_string() })?;
    let there = recorded.get("base").and_then(|b| b.as_str());
    crate::checkpoint::check_start(&latest, there, Some(start_identity(job)?.as_str()))
}

/// The training data and the evaluation items (none without `job.eval`); cut records are
/// counted in a warning.
fn training_and_eval<T>(job: &Job, encode: impl Fn(&Path) -> Result<Encoded<T>>) -> Result<(Encoded<T>, Vec<T>)> {
    let data = encode(&job.data)?;
    if data.truncated > 0 {
        tracing::warn!(data = %job.data.display(), records = data.truncated, window = job.max_len, "records longer than the window were cut (Overlong::Refuse refuses them)");
    }
    let eval = match &job.eval {
        Some(p) => encode(p)?.items,
        None => Vec::new(),
    };
    Ok((data, eval))
}
