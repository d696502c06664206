//! The run's user-facing outputs: the datasets and predictions in their places, `metrics.json`
//! with every number, and `report.md`.

use std::path::{Path, PathBuf};

use kailin_eval::{Report, Setting};
use serde::{Deserialize, Serialize};

use crate::engine::StageRow;
use crate::error::{Error, Result};
use crate::stage::core_io;
use crate::stages::{Evaluated, Results};
use crate::summary::{RoleStats, StageSummary};

/// The preference pairs a run's labels stage made.
pub(crate) fn pairs_of(rows: &[StageRow]) -> u64 {
    rows.iter()
        .find_map(|r| match &r.summary {
            StageSummary::Labels(l) => Some(l.pairs as u64),
            _ => None,
        })
        .unwrap_or(0)
}

/// Each served role's work over the stages, added up by role (in the order first seen).
fn served_totals(rows: &[StageRow]) -> Vec<RoleStats> {
    let mut out: Vec<RoleStats> = Vec::new();
    for s in rows.iter().flat_map(|r| r.summary.served()) {
        match out.iter_mut().find(|o| o.role == s.role) {
            Some(o) => o.stats.add(&s.stats),
            None => out.push(s.clone()),
        }
    }
    out
}

/// One evaluation of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// `base`, `kailin` (the target trained on kailin's data) or `control` (same budget
    /// without it).
    pub model: String,
    /// Its directory or file.
    pub path: PathBuf,
    /// `pubmedqa` or `bioasq`.
    pub benchmark: String,
    /// The setting.
    pub setting: Setting,
    /// Everything measured.
    pub report: Report,
    /// The evaluation's directory (its `metrics.json` is what `kailin eval compare` reads).
    pub dir: PathBuf,
}

/// A paired comparison of two models' answers to the same items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// `pubmedqa` or `bioasq`.
    pub benchmark: String,
    /// The setting.
    pub setting: Setting,
    /// The first model (the difference is `b − a`).
    pub a: String,
    /// The second.
    pub b: String,
    /// The figures.
    pub comparison: kailin_eval::Comparison,
    /// In words.
    pub words: String,
}

/// Every paired comparison of `b` against `a` among `evals` (by model name), on each
/// benchmark and setting both were evaluated in.
fn comparisons(
    a_evals: &[Evaluated],
    a: &str,
    b_evals: &[Evaluated],
    b: &str,
    as_b: &str,
) -> Result<Vec<ComparisonRow>> {
    let mut out = Vec::new();
    for x in a_evals.iter().filter(|e| e.model == a) {
        let (xa, r) = (&x.evaluation, &x.evaluation.report);
        let Some(y) = b_evals.iter().find(|e| {
            e.model == b && e.evaluation.benchmark == xa.benchmark && e.evaluation.report.setting == r.setting
        }) else {
            continue;
        };
        let comparison = xa.compare(&y.evaluation).map_err(|e| Error::Stage {
            stage: "report".into(),
            input: format!("{} and {}", x.dir.display(), y.dir.display()),
            fix: crate::engine::RERUN.into(),
            source: Box::new(e),
        })?;
        out.push(ComparisonRow {
            benchmark: xa.benchmark.clone(),
            setting: r.setting,
            a: a.to_owned(),
            b: as_b.to_owned(),
            words: comparison.describe(a, as_b),
            comparison,
        });
    }
    Ok(out)
}

/// One ablation: a variant of the main run and what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AblationRow {
    /// Its name (`ABLATIONS`).
    pub name: String,
    /// What it changes, in words.
    pub what: String,
    /// The configuration overrides.
    pub overrides: Vec<String>,
    /// Its output directory.
    pub out: PathBuf,
    /// Stages it ran itself (the others were the main run's).
    pub stages_ran: Vec<String>,
    /// Its preference pairs.
    pub pairs: u64,
    /// Its kailin model on PubMedQA.
    pub pubmedqa: Vec<EvalRow>,
    /// Its kailin model on BioASQ yes/no.
    pub bioasq: Vec<EvalRow>,
    /// Its kailin model against the main run's, paired on the same items.
    pub against_main: Vec<ComparisonRow>,
}

/// The row of an ablation from its run.
pub(crate) fn ablation_row(
    name: &str,
    what: &str,
    overrides: Vec<String>,
    out: &Path,
    rows: &[StageRow],
    results: &Results,
    main: &Results,
) -> Result<AblationRow> {
    Ok(AblationRow {
        name: name.to_owned(),
        what: what.to_owned(),
        overrides,
        out: out.to_owned(),
        stages_ran: rows.iter().filter(|r| !r.cached).map(|r| r.stage.clone()).collect(),
        pairs: pairs_of(rows),
        pubmedqa: eval_rows(results, "pubmedqa"),
        bioasq: eval_rows(results, "bioasq"),
        against_main: comparisons(&main.evals, "kailin", &results.evals, "kailin", name)?,
    })
}

fn eval_rows(results: &Results, benchmark: &str) -> Vec<EvalRow> {
    results
        .evals
        .iter()
        .filter(|e| e.evaluation.benchmark == benchmark)
        .map(|e| EvalRow {
            model: e.model.clone(),
            path: e.evaluation.model.clone(),
            benchmark: benchmark.to_owned(),
            setting: e.evaluation.report.setting,
            report: e.evaluation.report.clone(),
            dir: e.dir.clone(),
        })
        .collect()
}

/// `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The output directory.
    pub out: PathBuf,
    /// The effective configuration (TOML).
    pub config: String,
    /// Every stage in order.
    pub stages: Vec<StageRow>,
    /// Records of each published dataset (`preference`, `cpt`, `sft`).
    pub datasets: Vec<(String, usize)>,
    /// Whether DPO ran (it does not when no pair was labelled, `dpo.enabled` is false or the
    /// general agent is served).
    pub dpo: bool,
    /// Why DPO did not run.
    pub dpo_skipped: Option<String>,
    /// What wrote the final questions (a model path, or a served model and its role).
    pub generator: String,
    /// Each served role's requests, retries, cache hits and tokens, over the stages (as each
    /// stage recorded them when it ran).
    pub served: Vec<RoleStats>,
    /// PubMedQA, per model and setting.
    pub pubmedqa: Vec<EvalRow>,
    /// BioASQ yes/no (the agents' held-out batches), per model.
    pub bioasq: Vec<EvalRow>,
    /// Paired comparisons of the models on the same items: kailin − control, kailin − base,
    /// control − base.
    pub comparisons: Vec<ComparisonRow>,
    /// What each arm of the comparison trained on, in words.
    pub arms: Vec<(String, String)>,
    /// The ablations (`run.ablations`), each a variant's kailin model.
    pub ablations: Vec<AblationRow>,
    /// The PNG plots under `plots/` (relative paths), or why there are none.
    pub plots: Result<Vec<String>, String>,
    /// Seconds of this invocation.
    pub seconds: f64,
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().filter(|l| !l.trim().is_empty()).count()).unwrap_or(0)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from).map_err(|source| Error::Io { path: from.to_owned(), source })?;
    kailin_core::write_atomic(to, &bytes).map_err(core_io(to))
}

/// Publishes the datasets and predictions and writes `metrics.json` and `report.md`.
pub(crate) fn publish(
    out: &Path,
    config: &crate::Config,
    rows: Vec<StageRow>,
    results: Results,
    ablations: Vec<AblationRow>,
    seconds: f64,
) -> Result<Summary> {
    let config_toml = config.to_toml();
    for dir in ["datasets", "predictions"] {
        std::fs::create_dir_all(out.join(dir)).map_err(|source| Error::Io { path: out.join(dir), source })?;
    }
    let sources = [
        ("preference", results.labels.join("preference.jsonl")),
        ("cpt", results.cpt.clone()),
        ("sft", results.sft.clone()),
    ];
    let mut datasets = Vec::new();
    for (name, from) in sources {
        let to = out.join("datasets").join(format!("{name}.jsonl"));
        copy(&from, &to)?;
        datasets.push((name.to_owned(), lines(&to)));
    }
    for e in results.evals.iter().filter(|e| e.model == "kailin") {
        let file = format!("{}.json", e.evaluation.benchmark);
        copy(&e.dir.join(&file), &out.join("predictions").join(&file))?;
    }
    kailin_core::write_atomic(out.join("config.toml"), config_toml.as_bytes()).map_err(core_io(out))?;
    let pubmedqa = eval_rows(&results, "pubmedqa");
    let bioasq = eval_rows(&results, "bioasq");
    let arms = arms(config, &rows);
    let mut compared = Vec::new();
    for (a, b) in [("control", "kailin"), ("base", "kailin"), ("base", "control")] {
        compared.extend(comparisons(&results.evals, a, &results.evals, b, b)?);
    }
    let mut summary = Summary {
        out: out.to_owned(),
        config: config_toml,
        served: served_totals(&rows),
        stages: rows,
        datasets,
        dpo: results.dpo.is_ok(),
        dpo_skipped: results.dpo.err(),
        generator: results.generator,
        pubmedqa,
        bioasq,
        comparisons: compared,
        arms,
        ablations,
        plots: Ok(Vec::new()),
        seconds,
    };
    summary.plots = crate::plots::draw(out, &summary);
    let json = serde_json::to_vec_pretty(&summary)
        .map_err(|e| Error::Io { path: out.join("metrics.json"), source: std::io::Error::other(e) })?;
    kailin_core::write_atomic(out.join("metrics.json"), &json).map_err(core_io(out))?;
    kailin_core::write_atomic(out.join("report.md"), crate::markdown::markdown(&summary).as_bytes())
        .map_err(core_io(out))?;
    let card = crate::card::dataset_card(config, &summary);
    kailin_core::write_atomic(out.join("datasets/README.md"), card.as_bytes()).map_err(core_io(out))?;
    Ok(summary)
}

/// What each arm trained on, from the configuration and the control's stage inputs.
fn arms(config: &crate::Config, rows: &[StageRow]) -> Vec<(String, String)> {
    let pqa = config.target.pubmedqa_train;
    let mut out = vec![(
        "kailin".to_owned(),
        format!(
            "CPT on kailin's CPT dataset (question + retrieved context), then SFT on kailin's SFT dataset (question, context, answer){}",
            if pqa { " and PQA-L's training half" } else { "" }
        ),
    )];
    if config.target.control {
        let cpt = rows.iter().find(|r| r.stage == "control-cpt").map(|r| r.summary.describe());
        out.push((
            "control".to_owned(),
            if pqa {
                format!(
                    "CPT on the raw abstracts kailin's records were made from (the corpus documents, then the documents their contexts came from), as many tokens as kailin's CPT and SFT records hold, then SFT on PQA-L's training half alone: the arms differ only in kailin's data against the raw material it was made from{}",
                    cpt.map_or(String::new(), |d| format!(" (control CPT: {d})"))
                )
            } else {
                "CPT on the corpus's raw abstracts (kailin's CPT tokens), then SFT on PQA-L's training half up to kailin's SFT tokens: the arms differ in kailin's data *and* in the answer format only the control sees (target.pubmedqa_train = false)".to_owned()
            },
        ));
    }
    if config.eval.base {
        out.push(("base".to_owned(), "the base model, untrained".to_owned()));
    }
    out
}
