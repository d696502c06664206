//! The run's user-facing outputs: the datasets and predictions in their places, `metrics.json`
//! with every number, and `report.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kailin_eval::{Report, Setting};
use serde::{Deserialize, Serialize};

use crate::engine::StageRow;
use crate::error::{Error, Result};
use crate::stage::core_io;
use crate::stages::{Evaluated, Results};
use crate::summary::{RoleStats, StageSummary};

/// The preference pairs a run's labels stage made.
fn pairs_of(rows: &[StageRow]) -> u64 {
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
    kailin_core::write_atomic(out.join("report.md"), markdown(&summary).as_bytes()).map_err(core_io(out))?;
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
                    "CPT on the corpus's raw abstracts, as many tokens as kailin's CPT and SFT records hold, then SFT on PQA-L's training half alone: the arms differ only in kailin's data against the raw material it was made from{}",
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

fn bench_name(b: &str) -> &str {
    match b {
        "pubmedqa" => "PubMedQA",
        "bioasq" => "BioASQ yes/no",
        other => other,
    }
}

/// `[low, high]` in points.
fn ci_pct(c: Option<[f64; 2]>) -> String {
    c.map_or_else(|| "[–]".to_owned(), |[l, h]| format!("[{:.1}, {:.1}]", 100.0 * l, 100.0 * h))
}

/// `[low, high]` to three places.
fn ci(c: Option<[f64; 2]>) -> String {
    c.map_or_else(|| "[–]".to_owned(), |[l, h]| format!("[{l:.3}, {h:.3}]"))
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// `report.md`.
fn markdown(s: &Summary) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# m-KAILIN run\n\nOutput: `{}`; this invocation: {:.0} s.\n", s.out.display(), s.seconds);
    let _ = writeln!(md, "## Stages\n\n| stage | seconds | this run | what it did |\n|---|---|---|---|");
    for r in &s.stages {
        let _ = writeln!(
            md,
            "| {} | {:.1} | {} | {} |",
            r.stage,
            r.seconds,
            if r.cached { "cached" } else { "ran" },
            r.summary.describe().replace('|', "\\|")
        );
    }
    let _ = writeln!(md, "\n## Datasets\n\n| dataset | records |\n|---|---|");
    for (name, n) in &s.datasets {
        let _ = writeln!(md, "| `datasets/{name}.jsonl` | {n} |");
    }
    let _ = writeln!(md, "\nThe dataset card, `datasets/README.md`, says how they were made and under which terms.");
    for r in &s.stages {
        match &r.summary {
            StageSummary::Candidates(c) => {
                let (same, both) = (c.identical_first, c.both_kept);
                let share = if both > 0 { pct(same as f64 / both as f64) } else { "n/a".into() };
                let _ = writeln!(
                    md,
                    "\nAgents' overlap: the two agents' first questions are identical on {same} of {both} documents ({share})."
                );
            }
            StageSummary::Corpus(c) => {
                let Some(i) = &c.ingest else { continue };
                for (file, why) in i
                    .failed
                    .iter()
                    .map(|(f, w)| (f, format!("skipped: {w}")))
                    .chain(i.unread.iter().map(|(f, w)| (f, format!("not read: {w}"))))
                {
                    let _ = writeln!(md, "\nCorpus file `{}` {why}.", file.display());
                }
            }
            StageSummary::Labels(l) => {
                let m = &l.margins;
                let mean = if m.is_empty() { f64::NAN } else { m.iter().sum::<f64>() / m.len() as f64 };
                let _ = writeln!(
                    md,
                    "Evaluator: {} (mean score margin of the preference pairs {mean:.3}).",
                    r.summary.describe()
                );
            }
            _ => {}
        }
    }
    if !s.served.is_empty() {
        let _ = writeln!(
            md,
            "\n## Served roles\n\nAs each stage recorded them when it ran (a cached stage sends nothing).\n\n| role | model | endpoint | requests | retries | cache hits | prompt tokens | completion tokens |\n|---|---|---|---|---|---|---|---|"
        );
        for r in &s.served {
            let t = &r.stats;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.role,
                r.model,
                kailin_core::redact(&r.endpoint),
                t.requests,
                t.retries,
                t.cached,
                t.prompt_tokens,
                t.completion_tokens
            );
        }
    }
    let _ = writeln!(
        md,
        "DPO: {}; final questions written by `{}`.",
        match &s.dpo_skipped {
            None => "ran".to_owned(),
            Some(why) => format!("did not run ({why})"),
        },
        s.generator
    );
    let _ = writeln!(md, "\n## What each arm trained on\n");
    for (arm, what) in &s.arms {
        let _ = writeln!(md, "- **{arm}**: {what}.");
    }
    let _ = writeln!(
        md,
        "\nEvery figure below carries its 95% interval (seeded bootstrap, {} resamples); a difference is called detectable only when its paired interval excludes zero and McNemar's exact p < 0.05.",
        kailin_eval::RESAMPLES
    );
    if !s.comparisons.is_empty() {
        let _ = writeln!(md, "\n## Comparisons (paired, same items)\n");
        for c in &s.comparisons {
            let _ = writeln!(md, "- {} ({}): {}.", bench_name(&c.benchmark), c.setting.as_str(), c.words);
        }
    }
    for (title, rows) in [
        ("PubMedQA (PQA-L official test split)", &s.pubmedqa),
        ("BioASQ yes/no (the agents' held-out batches)", &s.bioasq),
    ] {
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(md, "\n## {title}\n");
        let _ = writeln!(
            md,
            "| model | setting | items | accuracy | macro-F1 | majority class | predicted yes/no/maybe |\n|---|---|---|---|---|---|---|"
        );
        for p in rows.iter() {
            let r = &p.report;
            let share = |d| r.predicted_share.get(&d).copied().unwrap_or(0.0);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} {} | {:.3} {} | {} | {} / {} / {} |",
                p.model,
                p.setting.as_str(),
                r.overall.n,
                pct(r.overall.accuracy),
                ci_pct(r.overall.accuracy_ci95),
                r.overall.macro_f1,
                ci(r.overall.macro_f1_ci95),
                pct(r.majority_accuracy),
                pct(share(kailin_eval::Decision::Yes)),
                pct(share(kailin_eval::Decision::No)),
                pct(share(kailin_eval::Decision::Maybe))
            );
        }
        let _ = writeln!(
            md,
            "\nPast the label bias: the true answer's mean log-probability (renormalised over the answers), the Brier score, and accuracy after contextual calibration (the label prior measured with content-free prompts divided out).\n\n| model | setting | log p(true answer) | Brier | calibrated accuracy | calibrated macro-F1 | content-free prior yes/no/maybe |\n|---|---|---|---|---|---|---|"
        );
        for p in rows.iter() {
            let sc = &p.report.scores;
            let (acc, f1) = sc.calibrated.as_ref().map_or(("–".to_owned(), "–".to_owned()), |m| {
                (
                    format!("{} {}", pct(m.accuracy), ci_pct(m.accuracy_ci95)),
                    format!("{:.3} {}", m.macro_f1, ci(m.macro_f1_ci95)),
                )
            });
            let prior = sc.prior.as_ref().map_or("–".to_owned(), |q| {
                let g = |d| q.get(&d).map_or("–".to_owned(), |x| format!("{x:.2}"));
                format!(
                    "{} / {} / {}",
                    g(kailin_eval::Decision::Yes),
                    g(kailin_eval::Decision::No),
                    g(kailin_eval::Decision::Maybe)
                )
            });
            let _ = writeln!(
                md,
                "| {} | {} | {:.3} {} | {:.3} {} | {acc} | {f1} | {prior} |",
                p.model,
                p.setting.as_str(),
                sc.gold_logprob,
                ci(sc.gold_logprob_ci95),
                sc.brier,
                ci(sc.brier_ci95),
            );
        }
    }
    for (title, pick) in [("publication year", 0), ("MeSH subset", 1)] {
        let Some(first) = s.pubmedqa.first() else { break };
        let groups = if pick == 0 { &first.report.by_year } else { &first.report.by_mesh };
        let _ = write!(
            md,
            "\nPubMedQA accuracy by {title} (95% intervals; most subsets are too small to tell models apart):\n\n| model | setting |"
        );
        for g in groups {
            let _ = write!(md, " {} ({}) |", g.name, g.metrics.n);
        }
        let _ = write!(md, "\n|---|---|{}\n", "---|".repeat(groups.len()));
        for p in &s.pubmedqa {
            let gs = if pick == 0 { &p.report.by_year } else { &p.report.by_mesh };
            let _ = write!(md, "| {} | {} |", p.model, p.setting.as_str());
            for g in gs {
                let cell = if g.metrics.n == 0 {
                    "–".into()
                } else {
                    format!("{} {}", pct(g.metrics.accuracy), ci_pct(g.metrics.accuracy_ci95))
                };
                let _ = write!(md, " {cell} |");
            }
            let _ = writeln!(md);
        }
    }
    if !s.ablations.is_empty() {
        let _ = writeln!(
            md,
            "\n## Ablations\n\nEach row is a variant of this run (under `ablations/NAME/`, reusing this run's stages before the one it changes); the kailin model's figures, and its paired difference from this run's kailin model.\n"
        );
        let _ = writeln!(
            md,
            "| run | what changes | preference pairs | benchmark | setting | accuracy | macro-F1 | against this run |\n|---|---|---|---|---|---|---|---|"
        );
        let pairs = pairs_of(&s.stages);
        for p in s.pubmedqa.iter().chain(&s.bioasq).filter(|p| p.model == "kailin") {
            let _ = writeln!(
                md,
                "| m-KAILIN (this run) | — | {pairs} | {} | {} | {} {} | {:.3} | — |",
                bench_name(&p.benchmark),
                p.setting.as_str(),
                pct(p.report.overall.accuracy),
                ci_pct(p.report.overall.accuracy_ci95),
                p.report.overall.macro_f1
            );
        }
        for a in &s.ablations {
            for p in a.pubmedqa.iter().chain(&a.bioasq) {
                let against = a
                    .against_main
                    .iter()
                    .find(|c| c.benchmark == p.benchmark && c.setting == p.setting)
                    .map_or("–".to_owned(), |c| c.words.replace('|', "\\|"));
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} {} | {:.3} | {against} |",
                    a.name,
                    a.what,
                    a.pairs,
                    bench_name(&p.benchmark),
                    p.setting.as_str(),
                    pct(p.report.overall.accuracy),
                    ci_pct(p.report.overall.accuracy_ci95),
                    p.report.overall.macro_f1
                );
            }
        }
    }
    match &s.plots {
        Ok(plots) if !plots.is_empty() => {
            let _ = writeln!(md, "\n## Plots\n");
            for p in plots {
                let _ = writeln!(md, "![{p}]({p})\n");
            }
        }
        Ok(_) => {}
        Err(why) => {
            let _ = writeln!(md, "\nPlots: none ({why}).");
        }
    }
    let _ = writeln!(
        md,
        "\nEvery number above is in `metrics.json`; the datasets are in `datasets/`, the trained models in `models/`, the kailin model's predictions in the official shape in `predictions/pubmedqa.json` (and `predictions/bioasq.json`); `kailin eval compare --a DIR --b DIR` compares any two `stages/eval-…` directories."
    );
    md
}
