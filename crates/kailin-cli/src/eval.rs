//! `kailin eval …`: thin subcommands over `kailin-eval`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::prelude::Backend;
use clap::{Args, Subcommand, ValueEnum};
use kailin_eval::{PredictOptions, Setting};

use crate::lm::Device;

/// Benchmarks of a model.
#[derive(Debug, Subcommand)]
pub(crate) enum EvalCmd {
    /// PubMedQA PQA-L's official 500-item test split: accuracy and macro-F1, by publication
    /// year span and MeSH subset; writes OUT/predictions/pubmedqa.json and OUT/metrics.json.
    Pubmedqa(PubmedqaArgs),
}

/// What the model sees.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SettingArg {
    /// The abstract without its conclusion, then the question.
    ReasoningRequired,
    /// The question alone.
    QuestionOnly,
}

/// Prompt layout.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StyleArg {
    /// The model's chat template.
    Chat,
    /// Plain text.
    Plain,
}

#[derive(Debug, Args)]
pub(crate) struct PubmedqaArgs {
    /// A GGUF file, or a Hugging Face model directory (config.json, safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Data directory holding pubmedqa/ori_pqal.json and pubmedqa/test_ground_truth.json.
    #[arg(long, env = "KAILIN_DATA", default_value = "../shared/data")]
    data: PathBuf,
    /// What the model sees.
    #[arg(long, value_enum, default_value = "reasoning-required")]
    setting: SettingArg,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Compute device.
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
    /// The model's window in tokens (longer prompts have their context cut to fit).
    #[arg(long, default_value_t = 2048, value_parser = crate::args::positions)]
    max_positions: usize,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 8, value_parser = crate::args::at_least_one)]
    batch_size: usize,
    /// Prompt layout: `chat` (the user turn in the model's chat template, the reply opening
    /// with the answer) or `plain` (text ending "Answer:", the answer after a space).
    #[arg(long, value_enum, default_value = "chat")]
    style: StyleArg,
    /// Only the first N items (in PMID order), for a quick look; the metrics say so.
    #[arg(long, value_parser = crate::args::at_least_one)]
    limit: Option<usize>,
    /// Write into an --out that is not empty and was not made by `kailin eval pubmedqa` (its
    /// predictions and metrics.json are replaced).
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(cmd: EvalCmd) -> Result<()> {
    match cmd {
        EvalCmd::Pubmedqa(a) => match a.device {
            Device::Cpu => kailin_lm::on_cpu_threads(|| pubmedqa::<burn::backend::Flex>(&a, &Default::default())),
            #[cfg(feature = "cuda")]
            Device::Cuda => pubmedqa::<burn::backend::Cuda>(&a, &kailin_lm::cuda_device(0)?),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda => bail!("this kailin was built without CUDA (cargo build -p kailin-cli --features cuda)"),
        },
    }
}

fn pubmedqa<B: Backend>(a: &PubmedqaArgs, device: &B::Device) -> Result<()> {
    if !a.model.exists() {
        bail!("--model {}: no such file or directory", a.model.display());
    }
    kailin_core::check_outputs(&[("--model", &a.model), ("--data", &a.data)], &[("--out", &a.out)])?;
    let mut items = kailin_eval::load_test_set(&a.data)
        .with_context(|| format!("reading PubMedQA's test split under {}", a.data.display()))?;
    let total = items.len();
    if let Some(n) = a.limit {
        items.truncate(n);
    }
    let _out = kailin_core::RunDir::open(
        &a.out,
        &kailin_core::RunDirOptions {
            flag: "--out",
            command: "kailin eval pubmedqa",
            force: a.force,
            sharing: kailin_core::Sharing::Exclusive,
        },
    )?;
    let (model, _, tokenizer) = kailin_lm::load::<B>(&a.model, a.max_positions, device)
        .with_context(|| format!("loading {}", a.model.display()))?;
    let setting = match a.setting {
        SettingArg::ReasoningRequired => Setting::ReasoningRequired,
        SettingArg::QuestionOnly => Setting::QuestionOnly,
    };
    let style = match a.style {
        StyleArg::Chat => kailin_eval::PromptStyle::Chat,
        StyleArg::Plain => kailin_eval::PromptStyle::Plain,
    };
    let options = PredictOptions { setting, batch_size: a.batch_size, style };
    let bar = crate::progress::bar(items.len() as u64, "PubMedQA items");
    let start = std::time::Instant::now();
    let predictions =
        kailin_eval::predict(&model, &tokenizer, &items, &options, |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let report = kailin_eval::report(&items, &predictions, setting)?;

    let predictions_path = a.out.join("predictions").join("pubmedqa.json");
    std::fs::create_dir_all(a.out.join("predictions"))
        .with_context(|| format!("creating {}", a.out.join("predictions").display()))?;
    let official = serde_json::to_vec_pretty(&kailin_eval::official_predictions(&predictions))?;
    kailin_core::write_atomic(&predictions_path, &official)?;
    let metrics = serde_json::json!({
        "benchmark": "pubmedqa",
        "split": "PQA-L official test",
        "model": a.model,
        "items": items.len(),
        "items_in_split": total,
        "limited": a.limit.is_some_and(|n| n < total),
        "style": style,
        "seconds": seconds,
        "report": report,
        "predictions": predictions,
    });
    let metrics_path = a.out.join("metrics.json");
    kailin_core::write_atomic(&metrics_path, &serde_json::to_vec_pretty(&metrics)?)?;
    #[allow(clippy::print_stdout)]
    {
        let o = &report.overall;
        println!(
            "PubMedQA ({}; {} items{}): accuracy {:.1}%, macro-F1 {:.3} (majority class {:.1}%); {:.1} items/s",
            setting.as_str(),
            items.len(),
            if items.len() < total { format!(" of {total}") } else { String::new() },
            100.0 * o.accuracy,
            o.macro_f1,
            100.0 * report.majority_accuracy,
            items.len() as f64 / seconds.max(1e-9)
        );
        for g in report.by_year.iter().chain(&report.by_mesh) {
            println!(
                "  {:<12} {:>4} items  accuracy {:>5.1}%  macro-F1 {:.3}",
                g.name,
                g.metrics.n,
                100.0 * g.metrics.accuracy,
                g.metrics.macro_f1
            );
        }
        println!("-> {} and {}", predictions_path.display(), metrics_path.display());
    }
    Ok(())
}
