//! `cargo xtask full-pipeline`: the m-KAILIN pipeline, stage by stage, as far as it is built.
//!
//! Today: the MeSH stage. Each abstract's MeSH descriptors are extracted and every pair of
//! abstracts is scored by knowledge-hierarchy similarity (m-KAILIN Eq. 4), the signal the
//! evaluator's cold start uses. Retrieval, question generation, evaluation, DPO and the
//! CPT/SFT datasets arrive with their crates.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use kailin_mesh::{Aggregate, Extractor, Mesh, Similarity};

/// Invented abstracts shipped with the repository: the default corpus.
const DEFAULT_ABSTRACTS: &str = include_str!("../../fixtures/text/abstracts.txt");

pub(crate) fn run(data: &Path, abstracts: Option<&Path>, out: &Path) -> Result<()> {
    let mesh_path = {
        let real = data.join("mesh/mesh2024.tsv");
        if real.exists() { real } else { PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/mesh/mini.tsv") }
    };
    let text = match abstracts {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        None => DEFAULT_ABSTRACTS.to_owned(),
    };
    let docs: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    println!("stage 1/1 (MeSH): {} abstracts, hierarchy {}", docs.len(), mesh_path.display());

    let mesh = Mesh::load(&mesh_path).with_context(|| format!("loading {}", mesh_path.display()))?;
    let extractor = Extractor::new(&mesh)?;
    let bar = ProgressBar::new(docs.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} abstracts, {per_sec}, ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let sets: Vec<_> = docs
        .iter()
        .map(|d| {
            bar.inc(1);
            extractor.descriptors(d)
        })
        .collect();
    bar.finish_and_clear();

    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let terms_path = out.join("mesh_terms.jsonl");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&terms_path)?);
    for (i, set) in sets.iter().enumerate() {
        let uis: Vec<&str> = set.iter().map(|&d| mesh.descriptor(d).ui()).collect();
        writeln!(w, "{}", serde_json::json!({ "doc": i, "mesh": uis }))?;
    }
    w.flush()?;

    let sim = Similarity::new(&mesh);
    let sim_path = out.join("doc_similarity.tsv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&sim_path)?);
    let mut best = (0.0, 0, 0);
    for i in 0..sets.len() {
        for j in i + 1..sets.len() {
            let s = sim.set_score(&sets[i], &sets[j], Aggregate::BestMatch).score;
            writeln!(w, "{i}\t{j}\t{s:.6}")?;
            if s > best.0 {
                best = (s, i, j);
            }
        }
    }
    w.flush()?;
    let mean_terms = sets.iter().map(Vec::len).sum::<usize>() as f64 / sets.len().max(1) as f64;
    println!("  {mean_terms:.1} descriptors per abstract -> {}", terms_path.display());
    println!(
        "  closest pair: abstracts {} and {} (best-match Resnik {:.3}) -> {}",
        best.1,
        best.2,
        best.0,
        sim_path.display()
    );
    println!("later stages (retrieval, question generation, evaluation, DPO, CPT/SFT) arrive with their crates");
    Ok(())
}
