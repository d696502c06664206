//! The run's user-facing outputs: the datasets and predictions in their places, `metrics.json`
//! with every number, and `report.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kailin_eval::{Report, Setting};
use serde::{Deserialize, Serialize};

use crate::engine::StageRow;
use crate::error::{Error, Result};
use crate::stage::core_io;
use crate::stages::Results;
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

/// One PubMedQA measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PubmedqaRow {
    /// `base`, `kailin` (the target trained on kailin's data) or `control` (same budget
    /// without it).
    pub model: String,
    /// Its directory or file.
    pub path: PathBuf,
    /// The setting.
    pub setting: Setting,
    /// Everything measured.
    pub report: Report,
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
    pub pubmedqa: Vec<PubmedqaRow>,
}

/// The row of an ablation from its run.
pub(crate) fn ablation_row(
    name: &str,
    what: &str,
    overrides: Vec<String>,
    out: &Path,
    rows: &[StageRow],
    results: &Results,
) -> AblationRow {
    AblationRow {
        name: name.to_owned(),
        what: what.to_owned(),
        overrides,
        out: out.to_owned(),
        stages_ran: rows.iter().filter(|r| !r.cached).map(|r| r.stage.clone()).collect(),
        pairs: pairs_of(rows),
        pubmedqa: pubmedqa_rows(results),
    }
}

fn pubmedqa_rows(results: &Results) -> Vec<PubmedqaRow> {
    results
        .evals
        .iter()
        .map(|(model, setting, report, path)| PubmedqaRow {
            model: model.clone(),
            path: path.clone(),
            setting: *setting,
            report: report.clone(),
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
    pub pubmedqa: Vec<PubmedqaRow>,
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
    if let Some((_, _, _, path)) = results.evals.iter().find(|(m, ..)| m == "kailin") {
        copy(path, &out.join("predictions/pubmedqa.json"))?;
    }
    kailin_core::write_atomic(out.join("config.toml"), config_toml.as_bytes()).map_err(core_io(out))?;
    let pubmedqa = pubmedqa_rows(&results);
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
    let _ = writeln!(md, "\n## PubMedQA (PQA-L official test split)\n");
    let _ = writeln!(
        md,
        "| model | setting | items | accuracy | macro-F1 | majority class | predicted yes/no/maybe |\n|---|---|---|---|---|---|---|"
    );
    for p in &s.pubmedqa {
        let r = &p.report;
        let share = |d| r.predicted_share.get(&d).copied().unwrap_or(0.0);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.3} | {} | {} / {} / {} |",
            p.model,
            p.setting.as_str(),
            r.overall.n,
            pct(r.overall.accuracy),
            r.overall.macro_f1,
            pct(r.majority_accuracy),
            pct(share(kailin_eval::Decision::Yes)),
            pct(share(kailin_eval::Decision::No)),
            pct(share(kailin_eval::Decision::Maybe))
        );
    }
    for (title, pick) in [("publication year", 0), ("MeSH subset", 1)] {
        let Some(first) = s.pubmedqa.first() else { break };
        let groups = if pick == 0 { &first.report.by_year } else { &first.report.by_mesh };
        let _ = write!(md, "\nAccuracy by {title}:\n\n| model | setting |");
        for g in groups {
            let _ = write!(md, " {} ({}) |", g.name, g.metrics.n);
        }
        let _ = write!(md, "\n|---|---|{}\n", "---|".repeat(groups.len()));
        for p in &s.pubmedqa {
            let gs = if pick == 0 { &p.report.by_year } else { &p.report.by_mesh };
            let _ = write!(md, "| {} | {} |", p.model, p.setting.as_str());
            for g in gs {
                let _ = write!(md, " {} |", if g.metrics.n == 0 { "–".into() } else { pct(g.metrics.accuracy) });
            }
            let _ = writeln!(md);
        }
    }
    if !s.ablations.is_empty() {
        let _ = writeln!(
            md,
            "\n## Ablations\n\nEach row is a variant of this run (under `ablations/NAME/`, reusing this run's stages before the one it changes); the kailin model's PubMedQA figures.\n"
        );
        let _ = writeln!(
            md,
            "| run | what changes | preference pairs | setting | accuracy | macro-F1 |\n|---|---|---|---|---|---|"
        );
        let pairs = pairs_of(&s.stages);
        for p in s.pubmedqa.iter().filter(|p| p.model != "base") {
            let (run, what) = if p.model == "kailin" {
                ("m-KAILIN (this run)", "—")
            } else {
                ("control", "same token budget without kailin's data (raw abstracts, PQA-L training half)")
            };
            let pairs = if p.model == "kailin" { pairs.to_string() } else { "—".into() };
            let _ = writeln!(
                md,
                "| {run} | {what} | {pairs} | {} | {} | {:.3} |",
                p.setting.as_str(),
                pct(p.report.overall.accuracy),
                p.report.overall.macro_f1
            );
        }
        for a in &s.ablations {
            for p in &a.pubmedqa {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {:.3} |",
                    a.name,
                    a.what,
                    a.pairs,
                    p.setting.as_str(),
                    pct(p.report.overall.accuracy),
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
        "\nEvery number above is in `metrics.json`; the datasets are in `datasets/`, the trained models in `models/`, the kailin model's predictions in the official shape in `predictions/pubmedqa.json`."
    );
    md
}
