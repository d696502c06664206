//! `report.md`: the run in words and tables, every figure with its interval.

use std::fmt::Write as _;

use crate::report::{Summary, pairs_of};
use crate::summary::StageSummary;

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
pub(crate) fn markdown(s: &Summary) -> String {
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
                if let Some(i) = &c.ingest {
                    ingest_notes(&mut md, "Corpus file", i);
                }
            }
            StageSummary::RetrievalCorpus(c) => {
                let _ = writeln!(md, "\nContexts: {}.", r.summary.describe());
                for (entry, i) in &c.ingest {
                    ingest_notes(&mut md, &format!("Retrieval-corpus file ({entry})"), i);
                }
            }
            StageSummary::Labels(_) => {
                let _ = writeln!(md, "\nEvaluator: {}.", r.summary.describe());
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
    for row in &s.stages {
        match (row.stage.as_str(), &row.summary) {
            ("dpo", StageSummary::Train(t)) => {
                if let Some(words) = t.held_out_accuracy().or_else(|| t.note.clone()) {
                    let _ = writeln!(md, "\n- DPO's implicit reward (chosen above rejected): {words}.");
                }
            }
            ("dpo-check", StageSummary::DpoCheck(c)) => {
                let _ = writeln!(
                    md,
                    "- What DPO is for — the general agent's questions on held-out documents, before and after DPO \
                     (greedy, same seeds), each scored with the MeSH rule (Eq. 4) against its document: {}.",
                    c.words()
                );
            }
            _ => {}
        }
    }
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
            "\nPast the label bias: the true answer's mean log-probability (renormalised over the answers), the Brier score, and accuracy after contextual calibration (the label prior measured with content-free prompts divided out) and after dividing out the items' own mean prediction (no label used).\n\n| model | setting | log p(true answer) | Brier | calibrated accuracy | calibrated macro-F1 | content-free prior yes/no/maybe | mean-prediction calibrated accuracy |\n|---|---|---|---|---|---|---|---|"
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
            let mean = sc
                .mean_calibrated
                .as_ref()
                .map_or("–".to_owned(), |m| format!("{} {}", pct(m.accuracy), ci_pct(m.accuracy_ci95)));
            let _ = writeln!(
                md,
                "| {} | {} | {:.3} {} | {:.3} {} | {acc} | {f1} | {prior} | {mean} |",
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

/// One line per file an ingest skipped or did not read, with why.
fn ingest_notes(md: &mut String, what: &str, i: &kailin_corpus::IngestReport) {
    let failed = i.failed.iter().map(|(f, w)| (f, format!("skipped: {w}")));
    for (file, why) in failed.chain(i.unread.iter().map(|(f, w)| (f, format!("not read: {w}")))) {
        let _ = writeln!(md, "\n{what} `{}` {why}.", file.display());
    }
}
