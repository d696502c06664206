//! The m-KAILIN loop end to end: a thin orchestrator that wires the kailin crates into
//! stages and holds no method logic of its own.
//!
//! Ingest and decontaminate the corpus (against PubMedQA's test split) → fine-tune the two
//! question agents (the domain one continually pre-trained on the corpus first; BioASQ SFT)
//! → candidate questions from both → the shared encoder (fine-tuned on biomedical
//! question–passage pairs first with `models.encoder = "domain"`) and its store of the
//! retrieval corpus → the evaluator labels each
//! pair (the MeSH rule, or the LLM judge without MeSH) → preference dataset → DPO on the
//! general agent → final questions from the optimised generator with their top-k contexts
//! (the CPT dataset) → answers (the SFT dataset) → the target model trained CPT then SFT, and
//! the same-budget control → PubMedQA → `report.md` and `metrics.json`.
//!
//! - [`Config`]: one TOML file; four embedded [`PRESETS`] (`tiny`, `cpu-small`, `cpu-medium`,
//!   `gpu-paper`); every key overridable as `section.key=value`.
//! - Each stage's output is keyed by a hash of its inputs and configuration (and its upstream
//!   stages' keys): a rerun reuses every finished stage; a stage is written to a temporary
//!   directory and renamed into place only when finished, so a process killed at any moment
//!   (SIGKILL) loses no finished stage and leaves nothing half-written.
//! - Every language-model role (`question-general`, `question-domain`, `question-final`,
//!   `judge`, `answer`) is the run's own local model or any OpenAI-compatible server
//!   (`[backends.ROLE]`), checked by a preflight request before any long stage.
//! - The corpus is PQA-L or the user's files (`data.corpus`: PubMed XML baseline and update
//!   files, PubTator, PubMedQA, Document JSONL), always decontaminated against PubMedQA's test
//!   split.
//! - [`plan`] says, without running anything, which stages a run would redo and why.
//! - Progress through [`Event`] callbacks; the binary draws.
//!
//! The crate defines no method step: each stage calls the library that owns it.
//!
//! ```no_run
//! use burn::backend::{Autodiff, Flex};
//! use kailin_pipeline::{Config, run};
//!
//! let config = Config::load(Some("tiny"), None, &["questions.n=1".into()])?;
//! let summary = run::<Autodiff<Flex>>(&config, "target/kailin-tiny".as_ref(), &Default::default(), &mut |_| ())?;
//! println!("{} stages", summary.stages.len());
//! # Ok::<(), kailin_pipeline::Error>(())
//! ```
#![deny(missing_docs)]

mod backends;
mod card;
mod config;
mod engine;
mod error;
mod files;
mod markdown;
mod models;
mod plots;
mod report;
mod stage;
mod stages;
mod summary;
mod tiny;

use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;

pub use crate::{
    config::{
        ABLATIONS, AgentsConfig, AggregateKind, AnswersConfig, BackendConfig, BackendsConfig, Config, DEFAULT_PRESET,
        DataConfig, DeviceKind, DpoConfig, EncoderConfig, EvalConfig, EvaluatorConfig, EvaluatorKind, ModelsConfig,
        PRESETS, QuestionsConfig, ROLES, RetrievalConfig, RetrieverKind, RunConfig, TargetConfig, TrainSettings,
    },
    engine::{Event, PlanRow, StageRow},
    error::{Error, Result},
    models::resolve_models,
    report::{AblationRow, ComparisonRow, EvalRow, Summary},
    stage::STAGE_FILE,
    summary::{
        CandidatesSummary, CorpusSummary, CptSummary, DpoCheckSummary, LabelSummary, RetrievalCorpusSummary, RoleStats,
        SftSummary, StageSummary, StoreSummary, TrainSummary,
    },
    tiny::{TINY_WORDS, tiny_bert_vocab, write_tiny_bert, write_tiny_llama},
};

/// The stages, in order (`eval-MODEL-SETTING` stages follow them).
pub const STAGES: [&str; 18] = [
    "corpus",
    "retrieval-corpus",
    "encoder",
    "agent-general",
    "agent-domain-cpt",
    "agent-domain",
    "candidates",
    "store",
    "labels",
    "dpo",
    "dpo-check",
    "cpt",
    "sft",
    "target-cpt",
    "target",
    "control-cpt",
    "control",
    "eval",
];

/// The per-document stages: a shard process (`RunOptions::shard`) computes its part of one.
pub const PER_DOCUMENT_STAGES: [&str; 4] = ["candidates", "labels", "cpt", "sft"];

/// How much of the pipeline a process runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `(index, count)`: compute this shard's contiguous part of the next unfinished
    /// per-document stage ([`PER_DOCUMENT_STAGES`]), then stop; a later run without a shard
    /// merges the parts (the merged output equals a single process's). Every stage before it
    /// must be finished (run them with `until`).
    pub shard: Option<(usize, usize)>,
    /// Stop before this stage if it is not finished ([`STAGES`], or one of the configuration's
    /// [`eval_stages`]; `eval`: before the first evaluation).
    pub until: Option<String>,
    /// Write into an `out` that exists, is not empty and was not made by a run (no
    /// `kailin-run.json`), or was made by another kailin command; refused otherwise.
    pub force: bool,
}

/// The command a run directory's marker names.
pub const RUN_COMMAND: &str = "kailin run";

/// The evaluation stages a configuration runs: `eval-MODEL-SETTING` for the base model (when
/// `eval.base`), the kailin model and the control (when `target.control`), in every PubMedQA
/// setting, then `eval-MODEL-bioasq` (when `eval.bioasq`).
pub fn eval_stages(config: &Config) -> Vec<String> {
    let mut models = Vec::new();
    if config.eval.base {
        models.push("base");
    }
    models.push("kailin");
    if config.target.control {
        models.push("control");
    }
    let mut suffixes: Vec<&str> = config.eval.settings.iter().map(|s| s.as_str()).collect();
    if config.eval.bioasq {
        suffixes.push("bioasq");
    }
    models.iter().flat_map(|m| suffixes.iter().map(move |s| format!("eval-{m}-{s}"))).collect()
}

/// The stages `config` would run, in order (`dpo` whenever it is enabled and the general
/// agent is local, and `dpo-check` after it when `dpo.check_docs` > 0: whether a pair is
/// labelled is known only when the labels exist).
pub fn planned_stages(config: &Config) -> Vec<String> {
    let (a, b) = (&config.agents, &config.backends);
    let mut out = vec!["corpus", "retrieval-corpus"];
    if config.models.encoder == "domain" && config.retrieval.kind != RetrieverKind::Bm25 {
        out.push("encoder");
    }
    if a.prepare && !b.question_general.served() {
        out.push("agent-general");
    }
    if a.prepare && a.distinct && !b.question_domain.served() {
        out.extend(["agent-domain-cpt", "agent-domain"]);
    }
    out.push("candidates");
    if config.retrieval.kind != RetrieverKind::Bm25 {
        out.push("store");
    }
    out.push("labels");
    if config.dpo.enabled && !b.question_general.served() {
        out.push("dpo");
        if config.dpo.check_docs > 0 {
            out.push("dpo-check");
        }
    }
    out.extend(["cpt", "sft", "target-cpt", "target"]);
    if config.target.control {
        out.extend(["control-cpt", "control"]);
    }
    let mut out: Vec<String> = out.into_iter().map(str::to_owned).collect();
    out.extend(eval_stages(config));
    out
}

/// Runs the pipeline into `out`: training on `A`, inference on its inner backend, on
/// `device`. Finished stages of an earlier run with the same inputs are reused.
///
/// Errors: a configuration or data problem, or a stage's failure ([`Error::Stage`] names the
/// stage, its input and the fix); the stages finished before it stay.
pub fn run<A: AutodiffBackend>(
    config: &Config,
    out: &Path,
    device: &A::Device,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<Summary> {
    run_with::<A>(config, out, &RunOptions::default(), device, on_event)
}

/// Checks `config` and, with `shard` and `until`, the options.
fn check_options(config: &Config, options: &RunOptions) -> Result<()> {
    config.check()?;
    if let Some((i, n)) = options.shard
        && (n == 0 || i >= n)
    {
        return Err(Error::Config { key: "--shard".into(), message: format!("{i}/{n}: give I/N with 0 <= I < N") });
    }
    let evals = eval_stages(config);
    if let Some(u) = &options.until
        && !STAGES.contains(&u.as_str())
        && !evals.contains(u)
    {
        return Err(Error::Config {
            key: "--until".into(),
            message: format!("no stage {u:?}; the stages are {}, {}", STAGES.join(", "), evals.join(", ")),
        });
    }
    Ok(())
}

/// [`run`] with a shard or a stopping point. A run that stops where `options` say ends with
/// [`Error::Stopped`] (not a failure: its message says what to run next).
///
/// `out` is a run directory ([`kailin_core::RunDir`]): new, empty or made by a run, never the
/// root, the home directory or a repository's root, and locked while the run lasts, so a
/// second run on it is refused naming the first; the shard processes of one run share it,
/// each locking only its own part. Before any stage, each served role is asked for its model
/// list.
///
/// Errors: those of [`run`]; an invalid shard (`index < count`) or an unknown stage in
/// `until` ([`Error::Config`]); a refused `out` ([`Error::Refused`]); a served role that is
/// down, does not list its model or refuses the key ([`Error::Backend`]); a shard process
/// asked to run a stage that is not per-document, or whose earlier stages are unfinished
/// ([`Error::NotReady`]).
pub fn run_with<A: AutodiffBackend>(
    config: &Config,
    out: &Path,
    options: &RunOptions,
    device: &A::Device,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<Summary> {
    let started = std::time::Instant::now();
    check_options(config, options)?;
    let dir_options = kailin_core::RunDirOptions {
        flag: "the run directory",
        command: RUN_COMMAND,
        force: options.force,
        sharing: if options.shard.is_some() { kailin_core::Sharing::Shared } else { kailin_core::Sharing::Exclusive },
    };
    let _run_dir = kailin_core::RunDir::open(out, &dir_options).map_err(Error::from_core)?;
    // A shard process also holds its own part alone.
    let _shard_lock = match options.shard {
        Some((i, n)) => Some(
            kailin_core::lock_file(
                &out.join(format!(".kailin-shard-{i}-of-{n}.lock")),
                kailin_core::Sharing::Exclusive,
                &format!("shard {i}/{n} of {}", out.display()),
                RUN_COMMAND,
            )
            .map_err(Error::from_core)?,
        ),
        None => None,
    };
    let models = models::models(config, out)?;
    let mut variants = Vec::new();
    for name in &config.run.ablations {
        if let Some((variant, changes, what)) = ablation(config, name)? {
            variants.push((name, variant, changes, what));
        }
    }
    // Served roles are asked for their model lists before any long stage — those whose
    // stages will run (a rerun of finished stages sends no request at all).
    let served = |c: &Config| !backends::served_roles(c).is_empty();
    if served(config) || variants.iter().any(|(_, v, ..)| served(v)) {
        let planned = plan_with::<A>(config, out, &models, device)?;
        let configs =
            std::iter::once((String::new(), config)).chain(variants.iter().map(|(n, v, ..)| (format!("{n}/"), v)));
        for (prefix, c) in configs {
            let runs = |stage: &str| planned.iter().any(|r| !r.cached && r.stage == format!("{prefix}{stage}"));
            backends::preflight(c, out, runs)?;
        }
    }
    let (rows, main) = run_one::<A>(config, out, Vec::new(), options, &models, device, on_event)?;
    let mut ablations = Vec::new();
    for (name, variant, changes, what) in variants {
        let dir = out.join("ablations").join(name);
        let mut prefixed = |e: Event<'_>| {
            let stage = match &e {
                Event::Start { stage } | Event::Progress { stage, .. } | Event::Done { stage, .. } => *stage,
            };
            let label = format!("{name}/{stage}");
            on_event(match e {
                Event::Start { .. } => Event::Start { stage: &label },
                Event::Progress { done, total, unit, .. } => Event::Progress { stage: &label, done, total, unit },
                Event::Done { seconds, cached, .. } => Event::Done { stage: &label, seconds, cached },
            });
        };
        let (rows, results) =
            run_one::<A>(&variant, &dir, vec![out.to_owned()], &RunOptions::default(), &models, device, &mut prefixed)?;
        ablations.push(report::ablation_row(name, what, changes, &dir, &rows, &results, &main)?);
    }
    report::publish(out, config, rows, main, ablations, started.elapsed().as_secs_f64())
}

/// An ablation's configuration, overrides and description. The variant trains and measures
/// its kailin model only: the base model and the control are the main run's.
fn ablation(config: &Config, name: &str) -> Result<Option<(Config, Vec<String>, &'static str)>> {
    let Some((_, changes, what)) = ABLATIONS.iter().find(|(n, ..)| *n == name) else { return Ok(None) };
    let base = toml::Value::String(config.encoder.base.clone()).to_string();
    let changes: Vec<String> = changes.iter().map(|c| c.replace("{encoder.base}", &base)).collect();
    let mut overrides = changes.clone();
    overrides.extend(["target.control=false".into(), "eval.base=false".into(), "run.ablations=[]".into()]);
    Ok(Some((config.with_overrides(&overrides)?, changes, what)))
}

/// What a run of `config` into `out` would do, stage by stage, without running anything (no
/// stage runs, no request is sent, nothing is written): "cached", or why it would run — the
/// settings or inputs that changed, the upstream stages that rerun, or that it never ran.
/// The ablations' stages follow, prefixed `NAME/`.
///
/// Errors: a configuration problem; models that cannot be read.
pub fn plan<A: AutodiffBackend>(config: &Config, out: &Path, device: &A::Device) -> Result<Vec<PlanRow>> {
    check_options(config, &RunOptions::default())?;
    let fresh = |config: &Config, prefix: &str, why: &str| -> Vec<PlanRow> {
        planned_stages(config)
            .into_iter()
            .map(|stage| PlanRow { stage: format!("{prefix}{stage}"), cached: false, why: why.to_owned() })
            .collect()
    };
    if !out.join(kailin_core::RUN_MARKER).exists() {
        let mut rows = fresh(config, "", "no earlier run in this directory");
        for name in &config.run.ablations {
            if let Some((variant, ..)) = ablation(config, name)? {
                rows.extend(fresh(&variant, &format!("{name}/"), "no earlier run in this directory"));
            }
        }
        return Ok(rows);
    }
    plan_with::<A>(config, out, &models::models(config, out)?, device)
}

/// [`plan`] of a run directory a run has made, with the models resolved.
fn plan_with<A: AutodiffBackend>(
    config: &Config,
    out: &Path,
    models: &stages::Models,
    device: &A::Device,
) -> Result<Vec<PlanRow>> {
    let (mut rows, main) = plan_one::<A>(config, out, Vec::new(), Vec::new(), models, device, "")?;
    for name in &config.run.ablations {
        if let Some((variant, ..)) = ablation(config, name)? {
            let dir = out.join("ablations").join(name);
            let prefix = format!("{name}/");
            let reuse = vec![out.to_owned()];
            rows.extend(plan_one::<A>(&variant, &dir, reuse, main.clone(), models, device, &prefix)?.0);
        }
    }
    Ok(rows)
}

/// The plan of one run (the main one or an ablation).
#[allow(clippy::type_complexity)]
fn plan_one<A: AutodiffBackend>(
    config: &Config,
    out: &Path,
    reuse: Vec<PathBuf>,
    planned: Vec<(PathBuf, String)>,
    models: &stages::Models,
    device: &A::Device,
    prefix: &str,
) -> Result<(Vec<PlanRow>, Vec<(PathBuf, String)>)> {
    let mut quiet = |_: Event<'_>| ();
    let mut r = engine::Run::new(config.clone(), out.to_owned(), reuse, &mut quiet);
    r.identity = models.identity.clone();
    r.plan = Some(Vec::new());
    r.planned = planned;
    let outcome = stages::run_all::<A>(&mut r, models, device);
    let mut rows = r.plan.take().unwrap_or_default();
    match outcome {
        Ok(_) => {}
        Err(Error::Planned { stage }) => {
            let all = planned_stages(config);
            let rest = all.iter().skip_while(|s| **s != stage).skip(1);
            rows.extend(rest.map(|s| PlanRow { stage: s.clone(), cached: false, why: format!("after {stage}") }));
        }
        Err(e) => return Err(e),
    }
    for row in &mut rows {
        row.stage = format!("{prefix}{}", row.stage);
    }
    Ok((rows, std::mem::take(&mut r.planned)))
}

/// One run of the stages into `out`, reusing the finished stages of the runs in `reuse`.
fn run_one<A: AutodiffBackend>(
    config: &Config,
    out: &Path,
    reuse: Vec<PathBuf>,
    options: &RunOptions,
    models: &stages::Models,
    device: &A::Device,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<(Vec<StageRow>, stages::Results)> {
    std::fs::create_dir_all(out).map_err(|source| Error::Io { path: out.to_owned(), source })?;
    let mut r = engine::Run::new(config.clone(), out.to_owned(), reuse, on_event);
    r.identity = models.identity.clone();
    r.shard = options.shard;
    r.until = options.until.clone();
    let results = stages::run_all::<A>(&mut r, models, device)?;
    Ok((std::mem::take(&mut r.rows), results))
}
