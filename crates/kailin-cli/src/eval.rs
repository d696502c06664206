//! `kailin eval …`: thin subcommands over `kailin-eval`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::Backend;
use clap::{Args, Subcommand, ValueEnum};
use kailin_eval::{PredictOptions, Setting};

use crate::lm::Device;

/// Benchmarks of a model, and comparisons of two evaluations.
#[derive(Debug, Subcommand)]
pub(crate) enum EvalCmd {
    /// PubMedQA PQA-L's official 500-item test split: accuracy and macro-F1 with 95%
    /// intervals, by publication year span and MeSH subset, the true answer's log-probability,
    /// Brier score and calibrated accuracy; writes OUT/predictions/pubmedqa.json and
    /// OUT/metrics.json.
    Pubmedqa(PubmedqaArgs),
    /// BioASQ yes/no: the yes/no questions of the golden batches under --data, each with its
    /// gold snippets as the context; writes OUT/predictions/bioasq.json and OUT/metrics.json.
    Bioasq(BioasqArgs),
    /// A paired comparison of two evaluations of the same items (two `kailin eval` output
    /// directories): b − a with its paired-bootstrap interval and McNemar's exact p.
    Compare(CompareArgs),
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
    #[command(flatten)]
    run: RunArgs,
}

/// How every benchmark is run.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
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
    /// Only the first N items (in file order), for a quick look; the metrics say so.
    #[arg(long, value_parser = crate::args::at_least_one)]
    limit: Option<usize>,
    /// Write into an --out that is not empty and was not made by the same `kailin eval`
    /// command (its predictions and metrics.json are replaced).
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BioasqArgs {
    /// A GGUF file, or a Hugging Face model directory (config.json, safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// A BioASQ golden batch file, or a directory searched for them (recursively).
    #[arg(long)]
    data: PathBuf,
    /// Only the batch files of these names (comma-separated; e.g. the agents' held-out
    /// 10B5_golden.json,10B6_golden.json, the fair test of a kailin model).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Output directory.
    #[arg(long, default_value = "kailin-eval-bioasq")]
    out: PathBuf,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// The first evaluation's directory (the `--out` of `kailin eval`, or a run's
    /// `stages/eval-…` directory).
    #[arg(long)]
    a: PathBuf,
    /// The second: the difference is b − a.
    #[arg(long)]
    b: PathBuf,
    /// Also write the comparison (JSON) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(crate) fn run(cmd: EvalCmd) -> Result<()> {
    let device = match &cmd {
        EvalCmd::Pubmedqa(a) => a.run.device,
        EvalCmd::Bioasq(a) => a.run.device,
        EvalCmd::Compare(a) => return compare(a),
    };
    match device {
        Device::Cpu => kailin_lm::on_cpu_threads(|| dispatch::<burn::backend::Flex>(&cmd, &Default::default())),
        #[cfg(feature = "cuda")]
        Device::Cuda => dispatch::<burn::backend::Cuda>(&cmd, &kailin_lm::cuda_device(0)?),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => bail!("this kailin was built without CUDA (cargo build -p kailin-cli --features cuda)"),
    }
}

fn dispatch<B: Backend>(cmd: &EvalCmd, device: &B::Device) -> Result<()> {
    match cmd {
        EvalCmd::Pubmedqa(a) => pubmedqa::<B>(a, device),
        EvalCmd::Bioasq(a) => bioasq::<B>(a, device),
        EvalCmd::Compare(a) => compare(a),
    }
}

fn style_of(a: StyleArg) -> kailin_eval::PromptStyle {
    match a {
        StyleArg::Chat => kailin_eval::PromptStyle::Chat,
        StyleArg::Plain => kailin_eval::PromptStyle::Plain,
    }
}

/// What one `kailin eval BENCHMARK` run measures and where it writes.
struct Job<'a> {
    command: &'static str,
    model: &'a Path,
    out: &'a Path,
    force: bool,
    max_positions: usize,
    benchmark: kailin_eval::Benchmark,
    items: Vec<kailin_eval::TestItem>,
    options: PredictOptions,
    /// The official-shape predictions' file name under OUT/predictions.
    predictions_file: &'static str,
}

/// Loads the model, evaluates, writes OUT/predictions/FILE and OUT/metrics.json, prints.
fn evaluate_job<B: Backend>(job: Job<'_>, device: &B::Device) -> Result<()> {
    let _out = kailin_core::RunDir::open(
        job.out,
        &kailin_core::RunDirOptions {
            flag: "--out",
            command: job.command,
            force: job.force,
            sharing: kailin_core::Sharing::Exclusive,
        },
    )?;
    let (model, _, tokenizer) = kailin_lm::load::<B>(job.model, job.max_positions, device)
        .with_context(|| format!("loading {}", job.model.display()))?;
    let bar = crate::progress::bar(job.items.len() as u64, "items");
    let evaluation =
        kailin_eval::evaluate(&model, &tokenizer, job.model, &job.benchmark, &job.items, &job.options, |d, _| {
            bar.set_position(d as u64)
        })?;
    bar.finish_and_clear();
    let predictions_path = job.out.join("predictions").join(job.predictions_file);
    std::fs::create_dir_all(job.out.join("predictions"))
        .with_context(|| format!("creating {}", job.out.join("predictions").display()))?;
    let official = serde_json::to_vec_pretty(&kailin_eval::official_predictions(&evaluation.predictions))?;
    kailin_core::write_atomic(&predictions_path, &official)?;
    evaluation.write(job.out)?;
    print_evaluation(&evaluation);
    #[allow(clippy::print_stdout)]
    {
        println!("-> {} and {}", predictions_path.display(), job.out.join(kailin_eval::Evaluation::FILE).display());
    }
    Ok(())
}

fn pubmedqa<B: Backend>(a: &PubmedqaArgs, device: &B::Device) -> Result<()> {
    if !a.model.exists() {
        bail!("--model {}: no such file or directory", a.model.display());
    }
    kailin_core::check_outputs(&[("--model", &a.model), ("--data", &a.data)], &[("--out", &a.out)])?;
    let mut items = kailin_eval::load_test_set(&a.data)
        .with_context(|| format!("reading PubMedQA's test split under {}", a.data.display()))?;
    let total = items.len();
    if let Some(n) = a.run.limit {
        items.truncate(n);
    }
    let setting = match a.setting {
        SettingArg::ReasoningRequired => Setting::ReasoningRequired,
        SettingArg::QuestionOnly => Setting::QuestionOnly,
    };
    let job = Job {
        command: "kailin eval pubmedqa",
        model: &a.model,
        out: &a.out,
        force: a.run.force,
        max_positions: a.run.max_positions,
        benchmark: kailin_eval::Benchmark {
            name: "pubmedqa".into(),
            split: "PQA-L official test".into(),
            items_in_split: total,
        },
        items,
        options: PredictOptions {
            setting,
            batch_size: a.run.batch_size,
            style: style_of(a.run.style),
            ..Default::default()
        },
        predictions_file: "pubmedqa.json",
    };
    evaluate_job::<B>(job, device)
}

fn bioasq<B: Backend>(a: &BioasqArgs, device: &B::Device) -> Result<()> {
    if !a.model.exists() {
        bail!("--model {}: no such file or directory", a.model.display());
    }
    kailin_core::check_outputs(&[("--model", &a.model), ("--data", &a.data)], &[("--out", &a.out)])?;
    let set = kailin_eval::load_bioasq_yesno(&a.data, &a.only)
        .with_context(|| format!("reading BioASQ's yes/no questions under {}", a.data.display()))?;
    let names: Vec<String> =
        set.files.iter().map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()).collect();
    let total = set.items.len();
    let mut items = set.items;
    if let Some(n) = a.run.limit {
        items.truncate(n);
    }
    let job = Job {
        command: "kailin eval bioasq",
        model: &a.model,
        out: &a.out,
        force: a.run.force,
        max_positions: a.run.max_positions,
        benchmark: kailin_eval::Benchmark {
            name: "bioasq".into(),
            split: format!("BioASQ yes/no: {}", names.join(", ")),
            items_in_split: total,
        },
        items,
        options: PredictOptions {
            setting: Setting::ReasoningRequired,
            batch_size: a.run.batch_size,
            style: style_of(a.run.style),
            answers: kailin_eval::Answers::YesNo,
        },
        predictions_file: "bioasq.json",
    };
    evaluate_job::<B>(job, device)
}

fn interval(ci: Option<[f64; 2]>, scale: f64) -> String {
    let places = if scale == 1.0 { 3 } else { 1 };
    ci.map_or_else(|| "[–]".to_owned(), |[l, h]| format!("[{:.places$}, {:.places$}]", scale * l, scale * h))
}

#[allow(clippy::print_stdout)]
fn print_evaluation(e: &kailin_eval::Evaluation) {
    let r = &e.report;
    let o = &r.overall;
    println!(
        "{} ({}; {} items{}): accuracy {:.1}% {}, macro-F1 {:.3} {} (majority class {:.1}%); {:.1} items/s",
        if e.benchmark == "pubmedqa" { "PubMedQA" } else { "BioASQ yes/no" },
        r.setting.as_str(),
        e.items,
        if e.limited { format!(" of {}", e.items_in_split) } else { String::new() },
        100.0 * o.accuracy,
        interval(o.accuracy_ci95, 100.0),
        o.macro_f1,
        interval(o.macro_f1_ci95, 1.0),
        100.0 * r.majority_accuracy,
        e.items as f64 / e.seconds.max(1e-9)
    );
    let s = &r.scores;
    println!(
        "  true answer's log-probability {:.3} {}, Brier {:.3} {}",
        s.gold_logprob,
        interval(s.gold_logprob_ci95, 1.0),
        s.brier,
        interval(s.brier_ci95, 1.0)
    );
    for (what, c) in
        [("content-free prior", &s.calibrated), ("the items' mean prediction as prior", &s.mean_calibrated)]
    {
        let Some(c) = c else { continue };
        println!(
            "  calibrated ({what}): accuracy {:.1}% {}, macro-F1 {:.3} {}",
            100.0 * c.accuracy,
            interval(c.accuracy_ci95, 100.0),
            c.macro_f1,
            interval(c.macro_f1_ci95, 1.0)
        );
    }
    if e.benchmark == "pubmedqa" {
        for g in r.by_year.iter().chain(&r.by_mesh) {
            println!(
                "  {:<12} {:>4} items  accuracy {:>5.1}% {:<14} macro-F1 {:.3}",
                g.name,
                g.metrics.n,
                100.0 * g.metrics.accuracy,
                interval(g.metrics.accuracy_ci95, 100.0),
                g.metrics.macro_f1
            );
        }
    }
}

fn compare(a: &CompareArgs) -> Result<()> {
    let read = |flag: &str, dir: &Path| {
        kailin_eval::Evaluation::read(dir).with_context(|| format!("{flag} {}", dir.display()))
    };
    let (ea, eb) = (read("--a", &a.a)?, read("--b", &a.b)?);
    let c = ea.compare(&eb).with_context(|| format!("comparing {} with {}", a.a.display(), a.b.display()))?;
    let json = serde_json::to_vec_pretty(&c)?;
    if let Some(out) = &a.out {
        kailin_core::check_outputs(&[("--a", &a.a), ("--b", &a.b)], &[("--out", out)])?;
        kailin_core::write_atomic(out, &json)?;
    }
    #[allow(clippy::print_stdout)]
    {
        println!("{}", String::from_utf8_lossy(&json));
        println!("{}", c.describe(&a.a.display().to_string(), &a.b.display().to_string()));
    }
    Ok(())
}
