//! The run's user-facing outputs: the datasets and predictions in their places, `metrics.json`
//! with every number, and `report.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kailin_eval::{Report, Setting};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::run::StageRow;
use crate::stage::core_io;

/// What the stages produced, for the report.
#[derive(Debug, Clone)]
pub(crate) struct Results {
    pub(crate) labels: PathBuf,
    pub(crate) cpt: PathBuf,
    pub(crate) sft: PathBuf,
    pub(crate) generator: PathBuf,
    pub(crate) evals: Vec<(String, Setting, Report, PathBuf)>,
    pub(crate) dpo_ran: bool,
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
        pairs: rows.iter().find(|r| r.stage == "labels").and_then(|r| r.summary["pairs"].as_u64()).unwrap_or(0),
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
    /// Whether DPO ran (it does not when no pair was labelled or `dpo.enabled` is false).
    pub dpo: bool,
    /// The model that wrote the final questions.
    pub generator: PathBuf,
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
    config_toml: String,
    rows: Vec<StageRow>,
    results: Results,
    ablations: Vec<AblationRow>,
    seconds: f64,
) -> Result<Summary> {
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
        stages: rows,
        datasets,
        dpo: results.dpo_ran,
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
    Ok(summary)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// `report.md`.
fn markdown(s: &Summary) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# m-KAILIN run\n\nOutput: `{}`; this invocation: {:.0} s.\n", s.out.display(), s.seconds);
    let _ = writeln!(md, "## Stages\n\n| stage | seconds | this run | summary |\n|---|---|---|---|");
    for r in &s.stages {
        let mut summary = r.summary.clone();
        if let Some(o) = summary.as_object_mut() {
            o.remove("curve");
            o.remove("margins");
            // An evaluation: its headline only (the tables below hold the rest).
            if let Some(overall) = o.get("overall").cloned() {
                summary = serde_json::json!({ "accuracy": overall["accuracy"], "macro_f1": overall["macro_f1"], "n": overall["n"] });
            }
        }
        let text = summary.to_string();
        let text = if text.len() > 240 {
            format!("{}…", &text[..text.char_indices().nth(240).map_or(text.len(), |c| c.0)])
        } else {
            text
        };
        let _ = writeln!(
            md,
            "| {} | {:.1} | {} | `{}` |",
            r.stage,
            r.seconds,
            if r.cached { "cached" } else { "ran" },
            text.replace('|', "\\|")
        );
    }
    let _ = writeln!(md, "\n## Datasets\n\n| dataset | records |\n|---|---|");
    for (name, n) in &s.datasets {
        let _ = writeln!(md, "| `datasets/{name}.jsonl` | {n} |");
    }
    if let Some(c) = s.stages.iter().find(|r| r.stage == "candidates") {
        let (same, both) =
            (c.summary["identical_first"].as_u64().unwrap_or(0), c.summary["both_kept"].as_u64().unwrap_or(0));
        let _ = writeln!(
            md,
            "\nAgents' overlap: the two agents' first questions are identical on {same} of {both} documents ({}).",
            if both > 0 { pct(same as f64 / both as f64) } else { "n/a".into() }
        );
    }
    if let Some(l) = s.stages.iter().find(|r| r.stage == "labels") {
        let margins: Vec<f64> = l.summary["margins"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default();
        let mean = if margins.is_empty() { f64::NAN } else { margins.iter().sum::<f64>() / margins.len() as f64 };
        let _ = writeln!(
            md,
            "Evaluator {}: {} pairs judged, outcomes {}, {} preference pairs (mean score margin {mean:.3}).",
            l.summary["evaluator"].as_str().unwrap_or("?"),
            l.summary["items"],
            l.summary["outcomes"],
            l.summary["pairs"]
        );
    }
    let _ = writeln!(
        md,
        "DPO: {}; final questions written by `{}`.",
        if s.dpo { "ran" } else { "did not run (no preference pair, or disabled)" },
        s.generator.display()
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
        let pairs =
            s.stages.iter().find(|r| r.stage == "labels").map_or(0, |r| r.summary["pairs"].as_u64().unwrap_or(0));
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
