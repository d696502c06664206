//! `report.md`'s PNG plots (plotters): records per stage, preference-score margins, the DPO
//! reward margin and held-out preference accuracy and every training loss over steps, PubMedQA
//! accuracy per year span and per MeSH subset. Text needs a TrueType font: `$KAILIN_FONT`, else a common system path; without
//! one the plots are skipped (and the report says so), never the run.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::report::Summary;

/// Where fonts usually are.
const FONT_PATHS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a font for plotters' "sans-serif" once; whether one is available.
fn font() -> bool {
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        let env = std::env::var_os("KAILIN_FONT").map(PathBuf::from);
        let candidates = env.into_iter().chain(FONT_PATHS.iter().map(PathBuf::from));
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

type Draw = Result<(), Box<dyn std::error::Error>>;

/// Draws into `dir/name` under a temporary name, renamed when complete.
fn png(dir: &Path, name: &str, draw: impl FnOnce(&Path) -> Draw) -> Option<PathBuf> {
    let dest = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp.png"));
    // Drawn beside, then put in place by the one atomic writer (plotters picks the encoder by
    // the file's extension, so it cannot write through kailin-core's temporaries itself).
    let placed = draw(&tmp).and_then(|()| {
        let bytes = std::fs::read(&tmp)?;
        kailin_core::write_atomic(&dest, &bytes)?;
        Ok(())
    });
    let _ = std::fs::remove_file(&tmp);
    match placed {
        Ok(()) => Some(dest),
        Err(e) => {
            tracing::warn!(plot = name, error = %e, "plot not written");
            None
        }
    }
}

/// The plots of a run under `out/plots/`: their paths (relative to `out`), or why none.
pub(crate) fn draw(out: &Path, s: &Summary) -> Result<Vec<String>, String> {
    if !font() {
        return Err("no TrueType font found (set KAILIN_FONT to a .ttf file)".into());
    }
    let dir = out.join("plots");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    use crate::summary::StageSummary as S;
    let mut written = Vec::new();

    // Records per stage.
    let mut bars: Vec<(String, f64)> = Vec::new();
    let mut margins: &[f64] = &[];
    for r in &s.stages {
        match &r.summary {
            S::Corpus(c) => bars.push(("documents".into(), c.documents as f64)),
            S::Candidates(c) => {
                bars.push(("general kept".into(), c.general.kept as f64));
                bars.push(("domain kept".into(), c.domain.kept as f64));
            }
            S::Labels(l) => {
                bars.push(("pairs judged".into(), l.items as f64));
                bars.push(("preferences".into(), l.pairs as f64));
                margins = &l.margins;
            }
            _ => {}
        }
    }
    for (name, n) in &s.datasets {
        if name != "preference" {
            bars.push((format!("{name} records"), *n as f64));
        }
    }
    written.extend(png(&dir, "records.png", |p| bar_chart(p, "Records per stage", &bars)));

    // Preference-score margins.
    if !margins.is_empty() {
        written.extend(png(&dir, "margins.png", |p| {
            histogram(p, "Preference score margins (chosen - rejected)", margins)
        }));
    }

    // Training losses, and DPO's reward margin.
    let trained = || {
        s.stages.iter().filter_map(|r| match &r.summary {
            S::Train(t) if !t.curve.is_empty() => Some((r.stage.as_str(), t)),
            _ => None,
        })
    };
    let curves: Vec<(String, Vec<(f64, f64)>)> = trained()
        .map(|(stage, t)| (stage.to_owned(), t.curve.iter().map(|(step, loss, _)| (*step as f64, *loss)).collect()))
        .collect();
    if !curves.is_empty() {
        written.extend(png(&dir, "training_loss.png", |p| lines(p, "Training loss", "step", "loss", &curves)));
    }
    if let Some((_, t)) = trained().find(|(stage, _)| *stage == "dpo") {
        let pts: Vec<(f64, f64)> = t.curve.iter().filter_map(|(step, _, m)| Some((*step as f64, (*m)?))).collect();
        if !pts.is_empty() {
            let series = vec![("reward margin".to_owned(), pts)];
            written.extend(png(&dir, "dpo_reward_margin.png", |p| {
                lines(p, "DPO reward margin", "step", "margin", &series)
            }));
        }
        let held: Vec<(f64, f64)> =
            t.eval_curve.iter().filter_map(|(step, _, a)| Some((*step as f64, (*a)?))).collect();
        if !held.is_empty() {
            let series = vec![(format!("{} held-out pairs", t.eval_records), held)];
            written.extend(png(&dir, "dpo_heldout_accuracy.png", |p| {
                lines(p, "DPO preference accuracy on held-out pairs", "step", "accuracy", &series)
            }));
        }
    }

    // PubMedQA by year span and MeSH subset, one series per model and setting, each bar with
    // its 95% interval.
    for (file, title, by_year) in [
        ("pubmedqa_years.png", "PubMedQA accuracy by publication year", true),
        ("pubmedqa_mesh.png", "PubMedQA accuracy by MeSH subset", false),
    ] {
        let Some(first) = s.pubmedqa.first() else { break };
        let groups = if by_year { &first.report.by_year } else { &first.report.by_mesh };
        let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
        let series: Vec<(String, Vec<Bar>)> = s
            .pubmedqa
            .iter()
            .map(|p| {
                let gs = if by_year { &p.report.by_year } else { &p.report.by_mesh };
                let bar = |m: &kailin_eval::Metrics| Bar {
                    value: 100.0 * m.accuracy,
                    ci: m.accuracy_ci95.map(|[l, h]| [100.0 * l, 100.0 * h]),
                };
                (format!("{} ({})", p.model, p.setting.as_str()), gs.iter().map(|g| bar(&g.metrics)).collect())
            })
            .collect();
        written.extend(png(&dir, file, |p| grouped(p, title, &names, &series)));
    }
    Ok(written.iter().filter_map(|p| p.strip_prefix(out).ok().map(|r| r.display().to_string())).collect())
}

const SIZE: (u32, u32) = (900, 540);

fn bar_chart(path: &Path, title: &str, bars: &[(String, f64)]) -> Draw {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let top = bars.iter().map(|b| b.1).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..bars.len() as f64 - 0.5, 0.0..top)?;
    let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    chart.configure_mesh().disable_x_mesh().x_labels(bars.len()).x_label_formatter(&|x| label_at(&names, *x)).draw()?;
    chart.draw_series(
        bars.iter()
            .enumerate()
            .map(|(i, b)| Rectangle::new([(i as f64 - 0.35, 0.0), (i as f64 + 0.35, b.1)], BLUE.mix(0.6).filled())),
    )?;
    root.present()?;
    Ok(())
}

/// The name of the bar (group) centred at `x`, an integer (an empty label elsewhere).
fn label_at(names: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 { names.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
}

fn histogram(path: &Path, title: &str, values: &[f64]) -> Draw {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (lo, hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if hi - lo < 1e-9 { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
    let bins = 12usize;
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for &v in values {
        counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(lo..hi, 0.0..top)?;
    chart.configure_mesh().x_desc("margin").y_desc("pairs").draw()?;
    chart.draw_series(counts.iter().enumerate().map(|(i, &c)| {
        let x0 = lo + i as f64 * width;
        Rectangle::new([(x0, 0.0), (x0 + width, c as f64)], GREEN.mix(0.6).filled())
    }))?;
    root.present()?;
    Ok(())
}

fn lines(path: &Path, title: &str, x: &str, y: &str, series: &[(String, Vec<(f64, f64)>)]) -> Draw {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let all = series.iter().flat_map(|s| s.1.iter());
    let (x_hi, y_lo, y_hi) =
        all.fold((1.0f64, f64::INFINITY, f64::NEG_INFINITY), |(a, b, c), &(px, py)| (a.max(px), b.min(py), c.max(py)));
    let pad = ((y_hi - y_lo) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_hi, (y_lo - pad)..(y_hi + pad))?;
    chart.configure_mesh().x_desc(x).y_desc(y).draw()?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// A bar and its 95% interval.
struct Bar {
    value: f64,
    ci: Option<[f64; 2]>,
}

fn grouped(path: &Path, title: &str, groups: &[String], series: &[(String, Vec<Bar>)]) -> Draw {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..groups.len() as f64 - 0.5, 0.0..100.0)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len())
        .x_label_formatter(&|x| label_at(groups, *x))
        .y_desc("accuracy (%)")
        .draw()?;
    let n = series.len().max(1) as f64;
    for (k, (name, values)) in series.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let w = 0.8 / n;
        chart
            .draw_series(values.iter().enumerate().map(|(i, b)| {
                let x0 = i as f64 - 0.4 + k as f64 * w;
                Rectangle::new([(x0, 0.0), (x0 + w, b.value)], color.filled())
            }))?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart.draw_series(values.iter().enumerate().filter_map(|(i, b)| {
            let [lo, hi] = b.ci?;
            let x = i as f64 - 0.4 + (k as f64 + 0.5) * w;
            Some(ErrorBar::new_vertical(x, lo, b.value, hi, BLACK.stroke_width(1), 6))
        }))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
