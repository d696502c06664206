//! `kailin run`: the m-KAILIN loop end to end (kailin-pipeline), with progress bars; `--plan`
//! says what a run would redo, `--print-config` the effective configuration.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::backend::{Autodiff, Flex};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use kailin_pipeline::{Config, DeviceKind, Event};

/// Options of `kailin run` (and of `cargo xtask full-pipeline`, its alias).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The preset: `tiny` (tiny random models and the repository's fixtures; seconds),
    /// `cpu-small` (the default: SmolLM2-135M-Instruct and all-MiniLM-L6-v2 fine-tuned into the
    /// domain encoder, on a small real slice; about 90 minutes on a 2-core CPU), `cpu-medium` (the same on 330 documents: a run
    /// large enough to decide, about 2.8 hours, resumable) or `gpu-paper` (all data, CUDA).
    #[arg(long, default_value = kailin_pipeline::DEFAULT_PRESET)]
    pub preset: String,
    /// A TOML file whose keys override the preset's.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The data directory (default: the `tiny` preset reads the repository's fixtures/data;
    /// the others $KAILIN_DATA, else the preset's data.dir).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output directory (report.md, metrics.json, datasets/, predictions/, models/, stages/).
    #[arg(long, default_value = "target/kailin-run")]
    pub out: PathBuf,
    /// Override one setting, `section.key=value` (repeatable), e.g. `--set retrieval.k=8`,
    /// `--set backends.answer.kind=openai`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Compute shard I of N of the next unfinished per-document stage (candidates, labels,
    /// cpt, sft), then stop; a run without --shard merges the shards (docs/scale-out.md).
    #[arg(long, value_name = "I/N", value_parser = shard)]
    pub shard: Option<(usize, usize)>,
    /// Stop before this stage if it is not finished (e.g. `candidates`).
    #[arg(long, value_name = "STAGE")]
    pub until: Option<String>,
    /// Print each stage with "cached" or "will run" and why, without running anything.
    #[arg(long, conflicts_with_all = ["shard", "until"])]
    pub plan: bool,
    /// Print the effective configuration (the preset, the file and the overrides applied) as
    /// TOML, and exit.
    #[arg(long, conflicts_with = "plan")]
    pub print_config: bool,
    /// Refuse a corpus directory with an unreadable or corrupt file (`data.strict`).
    #[arg(long)]
    pub strict: bool,
    /// Write into an --out that exists, is not empty and was not made by a run.
    #[arg(long)]
    pub force: bool,
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

/// A path as a TOML string.
fn toml_string(p: &Path) -> String {
    toml::Value::String(p.display().to_string()).to_string()
}

/// The effective configuration of `a`.
pub fn config_of(a: &RunArgs) -> Result<Config> {
    let mut overrides = a.overrides.clone();
    let env = std::env::var_os("KAILIN_DATA").map(PathBuf::from);
    // The repository's fixtures: beside the working directory, else where this binary was
    // built from.
    let fixtures = || {
        let here = PathBuf::from("fixtures/data");
        if here.is_dir() { here } else { PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/data") }
    };
    match (&a.data, a.preset.as_str(), env) {
        (Some(d), _, _) => overrides.insert(0, format!("data.dir={}", toml_string(d))),
        // The tiny preset reads the repository's fixtures ($KAILIN_DATA names the real data,
        // which its tiny models cannot use).
        (None, "tiny", _) => overrides.insert(0, format!("data.dir={}", toml_string(&fixtures()))),
        (None, _, Some(d)) => overrides.insert(0, format!("data.dir={}", toml_string(&d))),
        (None, _, None) => {}
    }
    if a.strict {
        overrides.push("data.strict=true".into());
    }
    Ok(Config::load(Some(&a.preset), a.config.as_deref(), &overrides)?)
}

/// Runs `kailin run`.
pub fn run_pipeline(a: &RunArgs) -> Result<()> {
    let config = config_of(a)?;
    let mut stdout = std::io::stdout().lock();
    if a.print_config {
        write!(stdout, "{}", config.to_toml())?;
        return Ok(());
    }
    if a.plan {
        let rows = match config.run.device {
            DeviceKind::Cpu => kailin_lm::on_cpu_threads(|| {
                kailin_pipeline::plan::<Autodiff<Flex>>(&config, &a.out, &Default::default())
            })?,
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda => {
                kailin_pipeline::plan::<Autodiff<burn::backend::Cuda>>(&config, &a.out, &kailin_lm::cuda_device(0)?)?
            }
            #[cfg(not(feature = "cuda"))]
            DeviceKind::Cuda => anyhow::bail!(NO_CUDA),
        };
        writeln!(stdout, "plan for {} (preset {}):", a.out.display(), a.preset)?;
        for r in &rows {
            let status = if r.cached { "cached".to_owned() } else { format!("will run: {}", r.why) };
            writeln!(stdout, "  {:<34} {status}", r.stage)?;
        }
        let n = rows.iter().filter(|r| !r.cached).count();
        writeln!(stdout, "{n} of {} stages will run", rows.len())?;
        return Ok(());
    }
    writeln!(stdout, "m-KAILIN pipeline, preset {} -> {}", a.preset, a.out.display())?;
    drop(stdout);
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
                #[allow(clippy::print_stdout)]
                {
                    println!("{line}");
                }
            } else {
                let _ = bars.println(line);
            }
        }
    };
    let options = kailin_pipeline::RunOptions { shard: a.shard, until: a.until.clone(), force: a.force };
    let result = match config.run.device {
        DeviceKind::Cpu => kailin_lm::on_cpu_threads(|| {
            kailin_pipeline::run_with::<Autodiff<Flex>>(&config, &a.out, &options, &Default::default(), &mut on_event)
        }),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => {
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
        DeviceKind::Cuda => anyhow::bail!(NO_CUDA),
    };
    let mut stdout = std::io::stdout().lock();
    let summary = match result {
        Err(kailin_pipeline::Error::Stopped { message, .. }) => {
            writeln!(stdout, "{message}")?;
            return Ok(());
        }
        other => other.with_context(|| format!("the pipeline (preset {}) into {}", a.preset, a.out.display()))?,
    };
    writeln!(stdout, "\ndatasets:")?;
    for (name, n) in &summary.datasets {
        writeln!(stdout, "  {}: {n} records", a.out.join("datasets").join(format!("{name}.jsonl")).display())?;
    }
    for r in &summary.served {
        let t = &r.stats;
        writeln!(
            stdout,
            "served {}: {} requests ({} retries, {} cache hits), {} prompt + {} completion tokens",
            r.role, t.requests, t.retries, t.cached, t.prompt_tokens, t.completion_tokens
        )?;
    }
    writeln!(stdout, "PubMedQA and BioASQ yes/no (95% intervals):")?;
    for p in summary.pubmedqa.iter().chain(&summary.bioasq) {
        let o = &p.report.overall;
        let ci = o.accuracy_ci95.map_or_else(String::new, |[l, h]| format!(" [{:.1}, {:.1}]", 100.0 * l, 100.0 * h));
        writeln!(
            stdout,
            "  {:<8} {:<8} {:<19} accuracy {:.1}%{ci}  macro-F1 {:.3}",
            p.model,
            p.benchmark,
            p.setting.as_str(),
            100.0 * o.accuracy,
            o.macro_f1
        )?;
    }
    for c in &summary.comparisons {
        writeln!(stdout, "  {} ({}): {}", c.benchmark, c.setting.as_str(), c.words)?;
    }
    writeln!(
        stdout,
        "report: {}  metrics: {}  ({:.0} s)",
        a.out.join("report.md").display(),
        a.out.join("metrics.json").display(),
        summary.seconds
    )?;
    Ok(())
}

/// Why a CUDA run cannot start in a build without CUDA.
#[cfg(not(feature = "cuda"))]
const NO_CUDA: &str = "run.device = \"cuda\": this kailin was built without CUDA; build it with `--features cuda` on a \
                       machine with CUDA, or add --set run.device=cpu";
