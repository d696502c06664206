//! `cargo xtask full-pipeline`: the m-KAILIN loop end to end (kailin-pipeline), with progress
//! bars; fetches the models a preset needs first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::backend::{Autodiff, Flex};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use kailin_pipeline::{Config, Event};

/// Options of `cargo xtask full-pipeline`.
#[derive(Debug, clap::Args)]
pub(crate) struct PipelineArgs {
    /// The preset: `tiny` (tiny random models and fixtures; seconds), `cpu-small` (the
    /// default: SmolLM2-135M-Instruct and all-MiniLM-L6-v2 on a small real slice; within 45
    /// minutes on a 2-core CPU) or `gpu-paper` (all data, CUDA).
    #[arg(long, default_value = kailin_pipeline::DEFAULT_PRESET)]
    preset: String,
    /// A TOML file whose keys override the preset's.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The data directory (default: the `tiny` preset reads the repository's fixtures/data;
    /// the others $KAILIN_DATA, else ../shared/data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output directory (report.md, metrics.json, datasets/, predictions/, models/, stages/).
    #[arg(long, default_value = "target/kailin-run")]
    out: PathBuf,
    /// Override one setting, `section.key=value` (repeatable), e.g. `--set retrieval.k=8`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Compute shard I of N of the next unfinished per-document stage (candidates, labels,
    /// cpt, sft), then stop; a run without --shard merges the shards (docs/scale-out.md).
    #[arg(long, value_name = "I/N", value_parser = shard)]
    shard: Option<(usize, usize)>,
    /// Stop before this stage if it is not finished (e.g. `candidates`).
    #[arg(long, value_name = "STAGE")]
    until: Option<String>,
    /// Write into an --out that exists, is not empty and was not made by a run.
    #[arg(long)]
    force: bool,
}

fn shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{s:?} is not a shard I/N with 0 <= I < N");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n) = (i.trim().parse::<usize>().map_err(|_| bad())?, n.trim().parse::<usize>().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

pub(crate) fn run(a: &PipelineArgs) -> Result<()> {
    let mut overrides = a.overrides.clone();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let env = std::env::var_os("KAILIN_DATA").map(PathBuf::from);
    match (&a.data, a.preset.as_str(), env) {
        (Some(d), _, _) => overrides.insert(0, format!("data.dir={}", toml_string(d))),
        // The tiny preset reads the repository's fixtures wherever it is run from ($KAILIN_DATA
        // names the real data, which its tiny models cannot use).
        (None, "tiny", _) => overrides.insert(0, format!("data.dir={}", toml_string(&repo.join("fixtures/data")))),
        (None, _, Some(d)) => overrides.insert(0, format!("data.dir={}", toml_string(&d))),
        (None, _, None) => {}
    }
    let config = Config::load(Some(&a.preset), a.config.as_deref(), &overrides)?;
    if config.models.base == "smollm2" || config.models.encoder == "minilm" {
        let dir = crate::models::models_dir();
        let have = |p: &str| dir.join(p).exists();
        if !(have("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
            && have("all-minilm-l6-v2/model.safetensors"))
        {
            println!("fetching the models into {}", dir.display());
            crate::models::fetch(&dir)?;
        }
    }
    println!("m-KAILIN pipeline, preset {} -> {}", a.preset, a.out.display());
    let bars = MultiProgress::new();
    let mut open: HashMap<String, ProgressBar> = HashMap::new();
    let style = ProgressStyle::with_template("{msg:>22} {bar:30} {pos}/{len} {prefix} [{elapsed}, ETA {eta}]")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let mut on_event = |e: Event<'_>| match e {
        Event::Start { .. } => {}
        Event::Progress { stage, done, total, unit } => {
            let bar = open.entry(stage.to_owned()).or_insert_with(|| {
                let b = bars.add(ProgressBar::new(total).with_style(style.clone()));
                b.set_message(stage.to_owned());
                b.set_prefix(unit.to_owned());
                b
            });
            bar.set_length(total);
            bar.set_position(done);
        }
        Event::Done { stage, seconds, cached } => {
            if let Some(b) = open.remove(stage) {
                b.finish_and_clear();
            }
            let line = if cached { format!("  {stage:<30} cached") } else { format!("  {stage:<30} {seconds:.1} s") };
            if bars.is_hidden() {
                println!("{line}");
            } else {
                let _ = bars.println(line);
            }
        }
    };
    let options = kailin_pipeline::RunOptions { shard: a.shard, until: a.until.clone(), force: a.force };
    let result = match config.run.device {
        kailin_pipeline::DeviceKind::Cpu => kailin_lm::on_cpu_threads(|| {
            kailin_pipeline::run_with::<Autodiff<Flex>>(&config, &a.out, &options, &Default::default(), &mut on_event)
        }),
        #[cfg(feature = "cuda")]
        kailin_pipeline::DeviceKind::Cuda => {
            let device = kailin_lm::cuda_device(0)?;
            kailin_pipeline::run_with::<Autodiff<burn::backend::Cuda>>(
                &config,
                &a.out,
                &options,
                &device,
                &mut on_event,
            )
        }
        #[cfg(not(feature = "cuda"))]
        kailin_pipeline::DeviceKind::Cuda => anyhow::bail!(
            "run.device = \"cuda\" (preset {}): run `cargo run --release -p xtask --features cuda -- full-pipeline …` \
             on a machine with CUDA, or add --set run.device=\"cpu\"",
            a.preset
        ),
    };
    let summary = match result {
        Err(kailin_pipeline::Error::Stopped { message, .. }) => {
            println!("{message}");
            return Ok(());
        }
        other => other.with_context(|| format!("the pipeline (preset {}) into {}", a.preset, a.out.display()))?,
    };
    println!("\ndatasets:");
    for (name, n) in &summary.datasets {
        println!("  {}: {n} records", a.out.join("datasets").join(format!("{name}.jsonl")).display());
    }
    println!("PubMedQA:");
    for p in &summary.pubmedqa {
        println!(
            "  {:<8} {:<19} accuracy {:.1}%  macro-F1 {:.3}",
            p.model,
            p.setting.as_str(),
            100.0 * p.report.overall.accuracy,
            p.report.overall.macro_f1
        );
    }
    println!(
        "report: {}  metrics: {}  ({:.0} s)",
        a.out.join("report.md").display(),
        a.out.join("metrics.json").display(),
        summary.seconds
    );
    Ok(())
}

/// A path as a TOML string.
fn toml_string(p: &Path) -> String {
    toml::Value::String(p.display().to_string()).to_string()
}
