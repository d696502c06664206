//! `cargo xtask bench retrieval`'s quality part: BioASQ retrieval over every unique snippet,
//! scored on the held-out batches (the encoder trainer never sees them) and on all questions,
//! for BM25, the general encoder, a fine-tuned one (`--domain-model`), and each encoder fused
//! with BM25 by reciprocal rank.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::backend::Flex;
use kailin_retrieval::{Bm25Retriever, EncoderBuilder, ExactSearch, HybridRetriever, Retrieved, Retriever, Vectors};
use ndarray::Array2;

use crate::retrieval::{RetrievalBench, bar};

/// Lists already computed, served as a retriever (by query text), so the library's fusion
/// runs on them.
struct Ranked(HashMap<String, Vec<Retrieved>>);

impl Retriever for Ranked {
    type Error = kailin_retrieval::Error;
    fn retrieve(&self, queries: &[&str], k: usize) -> kailin_retrieval::Result<Vec<Vec<Retrieved>>> {
        Ok(queries
            .iter()
            .map(|q| self.0.get(*q).map(|r| r.iter().take(k).cloned().collect()).unwrap_or_default())
            .collect())
    }
}

/// Lists searched this deep, so that fusion sees what each engine ranks up to 100.
const DEPTH: usize = 100;

/// Per query: whether a gold snippet is in the top 4, in the top 10, and the reciprocal rank
/// of the first within 10.
fn per_query(ranked: &[Vec<String>], gold: &[Vec<String>]) -> [Vec<f64>; 3] {
    let first = |r: &Vec<String>, g: &Vec<String>| r.iter().take(10).position(|id| g.contains(id));
    let mut out = [Vec::new(), Vec::new(), Vec::new()];
    for (r, g) in ranked.iter().zip(gold) {
        let p = first(r, g);
        out[0].push(f64::from(u8::from(p.is_some_and(|p| p < 4))));
        out[1].push(f64::from(u8::from(p.is_some())));
        out[2].push(p.map_or(0.0, |p| 1.0 / (p + 1) as f64));
    }
    out
}

fn cell(values: &[f64]) -> String {
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    match kailin_eval::mean_ci95(values) {
        Some([lo, hi]) => format!("{mean:.3} [{lo:.3}, {hi:.3}]"),
        None => "–".into(),
    }
}

pub(crate) fn quality(data: &Path, o: &RetrievalBench) -> Result<()> {
    let batches = kailin_question::read_bioasq_batches(data.join("bioasq"))?;
    let held_out = kailin_question::HELD_OUT_BATCHES;
    // Unique snippet texts are the corpus; a question's gold is its snippets.
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut corpus: Vec<(String, String)> = Vec::new();
    let (mut gold, mut queries, mut held) = (Vec::new(), Vec::new(), Vec::new());
    for (file, questions) in &batches {
        for q in questions {
            let mut g = Vec::new();
            for s in &q.snippets {
                let text = s.text.trim().to_owned();
                if text.is_empty() {
                    continue;
                }
                let id = ids
                    .entry(text.clone())
                    .or_insert_with(|| {
                        let id = format!("s{}", corpus.len());
                        corpus.push((id.clone(), text));
                        id
                    })
                    .clone();
                if !g.contains(&id) {
                    g.push(id);
                }
            }
            if !g.is_empty() && !q.body.trim().is_empty() {
                gold.push(g);
                queries.push(q.body.trim().to_owned());
                held.push(held_out.contains(&file.as_str()));
            }
        }
    }
    let n_held = held.iter().filter(|h| **h).count();
    println!(
        "\n## BioASQ retrieval ({} files): {} unique snippets; {} questions, {n_held} of them in the held-out batches {held_out:?}",
        batches.len(),
        corpus.len(),
        queries.len()
    );
    let general = match &o.model {
        Some(m) => m.clone(),
        None => crate::models::models_dir().join("all-minilm-l6-v2"),
    };
    let mut encoders = vec![("general", general)];
    if let Some(d) = &o.domain_model {
        encoders.push(("fine-tuned", d.clone()));
    }
    let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
    let bm25 = Bm25Retriever::build(corpus.iter().map(|(i, t)| (i.as_str(), t.as_str())))?;
    let sparse = bm25.retrieve(&refs, DEPTH)?;
    let sparse_ranked = Ranked(queries.iter().cloned().zip(sparse.iter().cloned()).collect());
    let ids_of = |lists: &[Vec<Retrieved>]| -> Vec<Vec<String>> {
        lists.iter().map(|r| r.iter().map(|h| h.id.clone()).collect()).collect()
    };
    let mut rows: Vec<(String, Vec<Vec<String>>)> = vec![("BM25 (tantivy, English stemming)".into(), ids_of(&sparse))];
    for (name, dir) in &encoders {
        if !dir.join("model.safetensors").is_file() {
            bail!(
                "{}: no encoder (run `cargo xtask fetch-models`, or train one with `kailin retrieve train`)",
                dir.display()
            );
        }
        let encoder = EncoderBuilder::new(dir).batch_size(64).build::<Flex>(&Default::default())?;
        let progress = bar(corpus.len(), &format!("encoding snippets ({name})"));
        let t = Instant::now();
        let mut vectors = Array2::<f32>::zeros((corpus.len(), encoder.dim()));
        for (c, chunk) in corpus.chunks(512).enumerate() {
            let texts: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
            vectors.slice_mut(ndarray::s![c * 512..c * 512 + chunk.len(), ..]).assign(&encoder.encode(&texts)?);
            progress.inc(chunk.len() as u64);
        }
        progress.finish_and_clear();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{name} encoder {} ({}): {:.0} snippets/s on the CPU ({} snippets, {secs:.1} s)",
            dir.display(),
            encoder.identity(),
            corpus.len() as f64 / secs,
            corpus.len()
        );
        let qv = encoder.encode(&queries)?;
        let hits = ExactSearch::new(o.threads)?.search(qv.view(), &[Vectors::F32(vectors.view())], DEPTH)?;
        let dense: Vec<Vec<Retrieved>> = hits
            .iter()
            .map(|h| h.iter().map(|h| Retrieved { id: corpus[h.row as usize].0.clone(), score: h.score }).collect())
            .collect();
        let hybrid = HybridRetriever::new(
            Ranked(queries.iter().cloned().zip(dense.iter().cloned()).collect()),
            Ranked(sparse_ranked.0.clone()),
        )
        .depth(DEPTH)
        .retrieve(&refs, 10)?;
        rows.push((format!("dense: {name} encoder"), ids_of(&dense)));
        rows.push((
            format!("hybrid: {name} encoder + BM25 (reciprocal-rank fusion, k = 60, 100 deep)"),
            ids_of(&hybrid),
        ));
    }
    let scored: Vec<(String, [Vec<f64>; 3])> =
        rows.iter().map(|(name, ranked)| (name.clone(), per_query(ranked, &gold))).collect();
    for (title, keep) in [
        ("held-out batches (10B5 + 10B6)", true),
        ("all questions (the fine-tuned encoder trained on the others)", false),
    ] {
        let pick =
            |v: &Vec<f64>| -> Vec<f64> { v.iter().zip(&held).filter(|(_, h)| !keep || **h).map(|(x, _)| *x).collect() };
        let n = if keep { n_held } else { queries.len() };
        println!("\n### {title}: n = {n} questions; 95% bootstrap intervals\n");
        println!("| engine | recall@4 | recall@10 | MRR@10 |\n|---|---|---|---|");
        for (name, [r4, r10, mrr]) in &scored {
            println!("| {name} | {} | {} | {} |", cell(&pick(r4)), cell(&pick(r10)), cell(&pick(mrr)));
        }
        // The fine-tuned encoder against the general one, paired on the same questions.
        if let (Some(general), Some(tuned)) = (
            scored.iter().find(|(n, _)| n == "dense: general encoder"),
            scored.iter().find(|(n, _)| n == "dense: fine-tuned encoder"),
        ) {
            for (figure, i) in [("recall@4", 0), ("recall@10", 1), ("MRR@10", 2)] {
                if let Some(p) = kailin_eval::PairedMeans::of(&pick(&general.1[i]), &pick(&tuned.1[i])) {
                    println!("\n{figure}: {}", p.describe("general", "fine-tuned"));
                }
            }
        }
    }
    Ok(())
}
