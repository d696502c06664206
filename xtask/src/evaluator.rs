//! `cargo xtask bench evaluator`: the MeSH rule's sanity on PubMedQA PQA-L (each abstract's
//! real question against a random other document's), across retrievers, aggregations and term
//! sources, and its speed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::backend::Flex;
use kailin_core::{Document, SplitMix64};
use kailin_evaluator::{Corpus, Evaluator, Item, Pooling, RuleEvaluator, RuleOptions, TermSource};
use kailin_mesh::{Aggregate, Mesh};
use kailin_retrieval::{
    Bm25Retriever, DenseRetriever, EncoderBuilder, ExactSearch, Retrieved, Retriever, Store, StoreBuilder,
};

/// Options of the benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct EvaluatorBench {
    /// Seed of the random pairing.
    #[arg(long, default_value_t = 13)]
    seed: u64,
    /// Working directory (the dense store of PQA-L abstracts and BioASQ snippets).
    #[arg(long, default_value = "target/bench-evaluator")]
    work: PathBuf,
}

/// The PQA-L documents with their questions, and the retrievable corpus: those abstracts plus
/// every unique BioASQ snippet (no headings: their terms are extracted).
pub(crate) fn pqal_corpus(data: &Path) -> Result<(Vec<(Document, String)>, Corpus)> {
    let path = data.join("pubmedqa/ori_pqal.json");
    let (records, _) = kailin_corpus::read_pubmedqa(&path, false).with_context(|| path.display().to_string())?;
    let docs: Vec<(Document, String)> = records.iter().map(|r| (r.document(), r.question.clone())).collect();
    let (_, questions) = crate::retrieval::bioasq_questions(data)?;
    let mut corpus = Corpus::new(docs.iter().map(|(d, _)| d.clone()))?;
    let mut seen = std::collections::HashSet::new();
    for q in &questions {
        for s in &q.snippets {
            let text = s.text.trim();
            if !text.is_empty() && seen.insert(text.to_owned()) {
                corpus.push(Document {
                    id: format!("bioasq-snippet-{}", seen.len()),
                    text: text.to_owned(),
                    source: "bioasq".into(),
                    ..Default::default()
                })?;
            }
        }
    }
    Ok((docs, corpus))
}

/// Every document's real question (side `i % 2`) against the real question of a random other
/// document.
pub(crate) fn real_vs_random(docs: &[(Document, String)], seed: u64) -> Vec<([String; 2], usize)> {
    let mut rng = SplitMix64::new(seed);
    let n = docs.len() as u64;
    (0..docs.len())
        .map(|i| {
            let mut j = rng.below(n - 1) as usize;
            if j >= i {
                j += 1;
            }
            let (real, other) = (docs[i].1.clone(), docs[j].1.clone());
            if i % 2 == 0 { ([real, other], 0) } else { ([other, real], 1) }
        })
        .collect()
}

/// Memoises a retriever's answers (the configurations share their queries).
struct Cached<'r, R> {
    inner: &'r R,
    memo: RefCell<HashMap<(String, usize), Vec<Retrieved>>>,
}

impl<R: Retriever> Retriever for Cached<'_, R> {
    type Error = R::Error;

    fn retrieve(&self, queries: &[&str], k: usize) -> Result<Vec<Vec<Retrieved>>, R::Error> {
        let missing: Vec<&str> =
            queries.iter().copied().filter(|q| !self.memo.borrow().contains_key(&(q.to_string(), k))).collect();
        if !missing.is_empty() {
            let found = self.inner.retrieve(&missing, k)?;
            let mut memo = self.memo.borrow_mut();
            for (q, hits) in missing.into_iter().zip(found) {
                memo.insert((q.to_owned(), k), hits);
            }
        }
        let memo = self.memo.borrow();
        Ok(queries.iter().map(|q| memo.get(&(q.to_string(), k)).cloned().unwrap_or_default()).collect())
    }
}

/// The dense retriever over the store of `corpus` under `work` (built, or resumed, first).
pub(crate) fn dense(corpus: &Corpus, work: &Path) -> Result<DenseRetriever<Flex>> {
    let model = crate::models::models_dir().join("all-minilm-l6-v2");
    if !model.join("model.safetensors").is_file() {
        bail!("{}: no encoder (run `cargo xtask fetch-models`)", model.display());
    }
    let device = Default::default();
    let encoder = EncoderBuilder::new(&model).batch_size(64).build::<Flex>(&device)?;
    let dir = work.join("store");
    let store = match Store::open(&dir) {
        Ok(s) if s.len() == corpus.len() as u64 => s,
        _ => {
            let t = Instant::now();
            let bar = crate::retrieval::bar(corpus.len(), "encoding the corpus");
            let docs = corpus
                .documents()
                .iter()
                .map(|d| Ok::<_, std::io::Error>((d.id.clone(), format!("{} {}", d.title, d.text).trim().to_owned())));
            let store = kailin_retrieval::build_store(&encoder, StoreBuilder::new(&dir, encoder.dim()), docs, |n| {
                bar.set_position(n);
                if bar.is_hidden() && n % 1024 == 0 {
                    eprintln!("encoded {n} / {} ({:.0} s)", corpus.len(), t.elapsed().as_secs_f64());
                }
            })?;
            bar.finish_and_clear();
            store
        }
    };
    Ok(DenseRetriever::new(encoder, store, ExactSearch::new(0)?)?)
}

/// Share of items whose real side is preferred (ties and unlabelled items lose), and the
/// number without a label.
fn wins<E: Evaluator>(rule: &E, docs: &[(Document, String)], pairs: &[([String; 2], usize)]) -> Result<(f64, usize)>
where
    E::Error: Send + Sync + 'static,
{
    let items: Vec<Item<'_>> = docs
        .iter()
        .zip(pairs)
        .map(|((d, _), (q, _))| Item { doc: d, questions: [q[0].as_str(), q[1].as_str()] })
        .collect();
    let mut won = 0;
    let mut unlabelled = 0;
    for (chunk, truth) in items.chunks(256).zip(pairs.chunks(256)) {
        for (j, (_, real)) in rule.evaluate(chunk)?.iter().zip(truth) {
            won += usize::from(j.preferred == Some(*real));
            unlabelled += usize::from(j.preferred.is_none());
        }
    }
    Ok((won as f64 / items.len() as f64, unlabelled))
}

pub(crate) fn bench(data: &Path, o: &EvaluatorBench) -> Result<()> {
    let mesh = Mesh::load(data.join("mesh/mesh2024.tsv"))?;
    let (docs, corpus) = pqal_corpus(data)?;
    let pairs = real_vs_random(&docs, o.seed);
    println!(
        "## Rule sanity on PubMedQA PQA-L: {} documents, real question vs a random other document's (seed {}); \
         corpus {} (PQA-L abstracts + BioASQ snippets)",
        docs.len(),
        o.seed,
        corpus.len()
    );
    let dense = dense(&corpus, &o.work)?;
    let bm25 = Bm25Retriever::build(corpus.documents().iter().map(|d| (d.id.as_str(), d.text.as_str())))?;

    // Speed first, uncached: 1,000 pairs from scratch with the default options.
    let t = Instant::now();
    let rule = RuleEvaluator::new(&mesh, &corpus, &dense, RuleOptions::default())?;
    let setup = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (default_win, _) = wins(&rule, &docs, &pairs)?;
    let total = t.elapsed().as_secs_f64();
    let cached = Cached { inner: &dense, memo: RefCell::default() };
    let rule = RuleEvaluator::new(&mesh, &corpus, &cached, RuleOptions::default())?;
    let t = Instant::now();
    wins(&rule, &docs, &pairs)?;
    let retrieval = t.elapsed().as_secs_f64();
    let t = Instant::now();
    wins(&rule, &docs, &pairs)?;
    let mesh_part = t.elapsed().as_secs_f64();
    println!(
        "\nspeed ({} pairs, default options, dense): {:.1} labels/s end to end ({total:.1} s; terms of the {}-document \
         corpus found once in {setup:.1} s); MeSH part alone (retrieval memoised) {:.0} labels/s ({mesh_part:.2} s), \
         so retrieval takes {:.0}% of the time",
        pairs.len(),
        pairs.len() as f64 / total,
        corpus.len(),
        pairs.len() as f64 / mesh_part,
        100.0 * (1.0 - mesh_part / retrieval.max(total))
    );
    println!("(default configuration: {:.1}% real question preferred)", 100.0 * default_win);

    let bm25 = Cached { inner: &bm25, memo: RefCell::default() };
    println!(
        "\n| retriever | aggregation | terms | check tags | pooling | source allowed | source excluded |\n|---|---|---|---|---|---|---|"
    );
    let configs: Vec<(&str, Aggregate, TermSource, bool, Pooling)> = vec![
        ("dense", Aggregate::Mean, TermSource::HeadingsElseExtraction, true, Pooling::MeanOfContexts),
        ("dense", Aggregate::BestMatch, TermSource::HeadingsElseExtraction, true, Pooling::MeanOfContexts),
        ("dense", Aggregate::Mean, TermSource::Extraction, true, Pooling::MeanOfContexts),
        ("dense", Aggregate::BestMatch, TermSource::Extraction, true, Pooling::MeanOfContexts),
        ("dense", Aggregate::Mean, TermSource::Headings, true, Pooling::MeanOfContexts),
        ("dense", Aggregate::Mean, TermSource::Union, true, Pooling::MeanOfContexts),
        ("dense", Aggregate::Mean, TermSource::HeadingsElseExtraction, false, Pooling::MeanOfContexts),
        ("dense", Aggregate::Mean, TermSource::HeadingsElseExtraction, true, Pooling::Union),
        ("bm25", Aggregate::Mean, TermSource::HeadingsElseExtraction, true, Pooling::MeanOfContexts),
        ("bm25", Aggregate::BestMatch, TermSource::HeadingsElseExtraction, true, Pooling::MeanOfContexts),
        ("bm25", Aggregate::Mean, TermSource::Extraction, true, Pooling::MeanOfContexts),
    ];
    for (engine, aggregate, terms, ignore_check_tags, pooling) in configs {
        let mut row = Vec::new();
        for exclude_source in [false, true] {
            let options =
                RuleOptions { aggregate, terms, ignore_check_tags, pooling, exclude_source, ..Default::default() };
            let (win, unlabelled) = if engine == "dense" {
                wins(&RuleEvaluator::new(&mesh, &corpus, &cached, options)?, &docs, &pairs)?
            } else {
                wins(&RuleEvaluator::new(&mesh, &corpus, &bm25, options)?, &docs, &pairs)?
            };
            row.push(format!("{:.1}% ({unlabelled} unlabelled)", 100.0 * win));
        }
        println!(
            "| {engine} | {} | {} | {} | {} | {} | {} |",
            match aggregate {
                Aggregate::Mean => "mean",
                Aggregate::BestMatch => "bma",
            },
            match terms {
                TermSource::HeadingsElseExtraction => "headings, else extraction",
                TermSource::Headings => "headings",
                TermSource::Extraction => "extraction",
                TermSource::Union => "union",
            },
            if ignore_check_tags { "ignored" } else { "kept" },
            match pooling {
                Pooling::MeanOfContexts => "mean of contexts",
                Pooling::Union => "union of contexts",
            },
            row[0],
            row[1]
        );
    }
    Ok(())
}
