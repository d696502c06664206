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
use kailin_evaluator::{Corpus, Evaluator, IcSource, Item, Judgement, Pooling, RuleEvaluator, RuleOptions, TermSource};
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
    /// Only BM25 (no encoder, no store; the speed figures are then BM25's).
    #[arg(long)]
    bm25_only: bool,
    /// Also train the learned evaluator on this many rule labels (of the PQA-L train/dev
    /// half) and measure it and the no-MeSH judge on the test half (0: skip; slow on a CPU).
    #[arg(long, default_value_t = 0)]
    learned: usize,
    /// Skip the speed figures and the table of options (with `--learned`: only the judges).
    #[arg(long)]
    judges_only: bool,
    /// With `--learned`: skip the no-MeSH judge (its row is the base model's, unchanged by
    /// training; measured once, it need not be re-run with each training setting).
    #[arg(long)]
    skip_plain: bool,
    /// Judge at most this many pairs of the test half (the judges' forward passes dominate).
    #[arg(long, default_value_t = 500)]
    held: usize,
    /// LoRA rank of the learned evaluator.
    #[arg(long, default_value_t = 16)]
    lora_rank: usize,
    /// Learning rate of the learned evaluator.
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// Words of the document the judges see.
    #[arg(long, default_value_t = 48)]
    document_words: usize,
    /// Words of each context the judges see.
    #[arg(long, default_value_t = 12)]
    context_words: usize,
    /// Working directory (the dense store of PQA-L abstracts and BioASQ snippets).
    #[arg(long, default_value = "target/bench-evaluator")]
    work: PathBuf,
    /// The dense encoder (default: all-MiniLM-L6-v2 from the model cache), e.g. a fine-tuned
    /// one from `kailin retrieve train`; its store is kept apart under the working directory.
    #[arg(long)]
    encoder: Option<PathBuf>,
    /// Pit only the questions of PubMedQA's 500 test-split documents (the corpus stays whole):
    /// the documents no encoder fine-tuned by `kailin retrieve train` saw as a pair.
    #[arg(long)]
    test_split_only: bool,
}

/// The PQA-L documents with their questions, and the retrievable corpus: those abstracts plus
/// every unique BioASQ snippet (no headings: their terms are extracted).
pub(crate) fn pqal_corpus(data: &Path) -> Result<(Vec<(Document, String)>, Corpus)> {
    let path = data.join("pubmedqa/ori_pqal.json");
    let (records, _) = kailin_corpus::read_pubmedqa(&path, false).with_context(|| path.display().to_string())?;
    let docs: Vec<(Document, String)> = records.iter().map(|r| (r.document(), r.question.clone())).collect();
    let (_, questions) = crate::retrieval::bioasq_questions(data)?;
    let mut corpus = Corpus::new(docs.iter().map(|(d, _)| d.clone()))?;
    for s in kailin_corpus::unique_snippets(&questions) {
        corpus.push(s.document())?;
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

/// The dense retriever over the store of `corpus` under `work` (built, or resumed, first) with
/// `encoder` (default: all-MiniLM-L6-v2).
pub(crate) fn dense(corpus: &Corpus, work: &Path, encoder: Option<&Path>) -> Result<DenseRetriever<Flex>> {
    let model = encoder.map_or_else(|| crate::models::models_dir().join("all-minilm-l6-v2"), Path::to_path_buf);
    if !model.join("model.safetensors").is_file() {
        bail!("{}: no encoder (run `cargo xtask fetch-models`)", model.display());
    }
    let device = Default::default();
    let encoder = EncoderBuilder::new(&model).batch_size(64).build::<Flex>(&device)?;
    println!("dense retrieval with encoder {} ({})", model.display(), encoder.identity());
    let dir = work.join(format!("store-{}", kailin_core::fnv1a(encoder.identity().as_bytes())));
    let store = match Store::open(&dir) {
        Ok(s) if s.len() == corpus.len() as u64 && s.check_encoder(encoder.identity()).is_ok() => s,
        _ => {
            let t = Instant::now();
            let bar = crate::retrieval::bar(corpus.len(), "encoding the corpus");
            let docs = corpus.documents().iter().map(|d| Ok::<_, std::io::Error>((d.id.clone(), d.retrieval_text())));
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

/// Labels per second for every pair with the default options, from scratch and with retrieval
/// memoised (the MeSH part alone); the share of real questions preferred.
fn speed<R: Retriever>(
    engine: &str,
    mesh: &Mesh,
    corpus: &Corpus,
    retriever: &R,
    docs: &[(Document, String)],
    pairs: &[([String; 2], usize)],
) -> Result<f64>
where
    R::Error: Send + Sync + 'static,
{
    let t = Instant::now();
    let rule = RuleEvaluator::new(mesh, corpus, retriever, RuleOptions::default())?;
    let setup = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (win, _) = wins(&rule, docs, pairs)?;
    let total = t.elapsed().as_secs_f64();
    let cached = Cached { inner: retriever, memo: RefCell::default() };
    let rule = RuleEvaluator::new(mesh, corpus, &cached, RuleOptions::default())?;
    wins(&rule, docs, pairs)?;
    let t = Instant::now();
    wins(&rule, docs, pairs)?;
    let mesh_part = t.elapsed().as_secs_f64();
    println!(
        "\nspeed ({} pairs, default options, {engine}): {:.1} labels/s end to end ({total:.1} s; the terms of the \
         {}-document corpus found once before, in {setup:.1} s); MeSH part alone (retrieval memoised) {:.0} labels/s \
         ({mesh_part:.2} s): retrieval takes {:.0}% of the time",
        pairs.len(),
        pairs.len() as f64 / total,
        corpus.len(),
        pairs.len() as f64 / mesh_part,
        100.0 * (1.0 - mesh_part / total)
    );
    Ok(win)
}

pub(crate) fn bench(data: &Path, o: &EvaluatorBench) -> Result<()> {
    // Checked before the store is built (minutes on a fresh machine).
    if o.learned == 0 && (o.judges_only || o.skip_plain) {
        bail!("--judges-only and --skip-plain need --learned N");
    }
    let mesh = Mesh::load(data.join("mesh/mesh2024.tsv"))?;
    let (mut docs, corpus) = pqal_corpus(data)?;
    if o.test_split_only {
        let test = kailin_corpus::read_pubmedqa_test_ids(data.join("pubmedqa/test_ground_truth.json"))?;
        docs.retain(|(d, _)| test.contains(&d.id));
        anyhow::ensure!(docs.len() == test.len(), "{} of the {} test-split documents found", docs.len(), test.len());
    }
    let pairs = real_vs_random(&docs, o.seed);
    println!(
        "## Rule sanity on PubMedQA PQA-L: {} documents{}, real question vs a random other document's (seed {}); \
         corpus {} (PQA-L abstracts + BioASQ snippets)",
        docs.len(),
        if o.test_split_only { " (the test split)" } else { "" },
        o.seed,
        corpus.len()
    );
    let bm25 = Bm25Retriever::build(corpus.documents().iter().map(|d| (d.id.as_str(), d.text.as_str())))?;
    let dense = if o.bm25_only { None } else { Some(dense(&corpus, &o.work, o.encoder.as_deref())?) };
    if o.judges_only {
        return match &dense {
            Some(d) => learned(data, &corpus, d, &docs, &pairs, o),
            None => learned(data, &corpus, &bm25, &docs, &pairs, o),
        };
    }
    let default_win = match &dense {
        Some(d) => speed("dense", &mesh, &corpus, d, &docs, &pairs)?,
        None => speed("bm25", &mesh, &corpus, &bm25, &docs, &pairs)?,
    };
    println!("(default configuration: {:.1}% real question preferred)", 100.0 * default_win);
    let cached = dense.as_ref().map(|d| Cached { inner: d, memo: RefCell::default() });
    let bm25 = Cached { inner: &bm25, memo: RefCell::default() };
    println!(
        "\n| retriever | aggregation | terms | check tags | pooling | IC | source allowed | source excluded |\n|---|---|---|---|---|---|---|---|"
    );
    let base = RuleOptions::default();
    // The paper's literal Eq. 4: mean of all pairs, intrinsic IC.
    let eq4 = RuleOptions { aggregate: Aggregate::Mean, ic: IcSource::Intrinsic, ..base.clone() };
    let configs: Vec<(&str, RuleOptions)> = vec![
        ("dense", base.clone()),
        ("dense", RuleOptions { terms: TermSource::Extraction, ..base.clone() }),
        ("dense", RuleOptions { pooling: Pooling::Union, ..base.clone() }),
        ("dense", RuleOptions { ignore_check_tags: false, ..base.clone() }),
        ("dense", RuleOptions { ic: IcSource::Intrinsic, ..base.clone() }),
        ("dense", RuleOptions { aggregate: Aggregate::Mean, ..base.clone() }),
        ("dense", eq4.clone()),
        ("dense", RuleOptions { terms: TermSource::Extraction, ..eq4.clone() }),
        ("dense", RuleOptions { terms: TermSource::Extraction, aggregate: Aggregate::BestMatch, ..eq4.clone() }),
        ("dense", RuleOptions { terms: TermSource::Headings, ..eq4.clone() }),
        ("dense", RuleOptions { terms: TermSource::Union, ..eq4.clone() }),
        ("dense", RuleOptions { ignore_check_tags: false, ..eq4.clone() }),
        ("dense", RuleOptions { pooling: Pooling::Union, ..eq4.clone() }),
        ("dense", RuleOptions { pooling: Pooling::Union, aggregate: Aggregate::BestMatch, ..eq4.clone() }),
        ("dense", RuleOptions { terms: TermSource::Extraction, ic: IcSource::Corpus, ..eq4.clone() }),
        ("dense", RuleOptions { terms: TermSource::Extraction, pooling: Pooling::Union, ..eq4.clone() }),
        (
            "dense",
            RuleOptions {
                terms: TermSource::Extraction,
                pooling: Pooling::Union,
                aggregate: Aggregate::BestMatch,
                ..eq4.clone()
            },
        ),
        ("dense", RuleOptions { terms: TermSource::Extraction, ignore_check_tags: false, ..eq4.clone() }),
        ("bm25", base.clone()),
        ("bm25", eq4.clone()),
        ("bm25", RuleOptions { aggregate: Aggregate::BestMatch, ..eq4.clone() }),
        ("bm25", RuleOptions { ic: IcSource::Corpus, ..eq4.clone() }),
        ("bm25", RuleOptions { terms: TermSource::Extraction, ..eq4.clone() }),
    ];
    for (engine, options) in configs {
        let mut row = Vec::new();
        for exclude_source in [false, true] {
            let options = RuleOptions { exclude_source, ..options.clone() };
            let (win, unlabelled) = match (engine, &cached) {
                ("dense", Some(cached)) => wins(&RuleEvaluator::new(&mesh, &corpus, cached, options)?, &docs, &pairs)?,
                ("dense", None) => continue,
                _ => wins(&RuleEvaluator::new(&mesh, &corpus, &bm25, options)?, &docs, &pairs)?,
            };
            row.push(format!("{:.1}% ({unlabelled} unlabelled)", 100.0 * win));
        }
        if row.is_empty() {
            continue;
        }
        println!(
            "| {engine} | {} | {} | {} | {} | {} | {} | {} |",
            match options.aggregate {
                Aggregate::Mean => "mean",
                Aggregate::BestMatch => "bma",
            },
            match options.terms {
                TermSource::HeadingsElseExtraction => "headings, else extraction",
                TermSource::Headings => "headings",
                TermSource::Extraction => "extraction",
                TermSource::Union => "union",
            },
            if options.ignore_check_tags { "left out" } else { "kept" },
            match options.pooling {
                Pooling::MeanOfContexts => "mean of contexts",
                Pooling::Union => "union of contexts",
            },
            match options.ic {
                IcSource::Intrinsic => "intrinsic",
                IcSource::Corpus => "corpus",
            },
            row[0],
            row[1]
        );
    }
    if o.learned > 0 {
        match &dense {
            Some(d) => learned(data, &corpus, d, &docs, &pairs, o)?,
            None => learned(data, &corpus, bm25.inner, &docs, &pairs, o)?,
        }
    }
    Ok(())
}

/// Agreement of a judge with rule labels: overall, and on the pairs whose rule margin is above
/// and at or below the median margin.
fn agreement(rule: &[Judgement], judged: &[Judgement]) -> (f64, f64, f64, usize) {
    let mut margins: Vec<f64> = rule.iter().filter_map(Judgement::margin).collect();
    margins.sort_by(f64::total_cmp);
    let median = margins.get(margins.len() / 2).copied().unwrap_or(0.0);
    let (mut all, mut high, mut low) = ((0, 0), (0, 0), (0, 0));
    for (r, j) in rule.iter().zip(judged) {
        let (Some(want), Some(m)) = (r.preferred, r.margin()) else { continue };
        let hit = usize::from(j.preferred == Some(want));
        for bin in [&mut all, if m > median { &mut high } else { &mut low }] {
            bin.0 += hit;
            bin.1 += 1;
        }
    }
    let share = |(h, n): (usize, usize)| h as f64 / n.max(1) as f64;
    (share(all), share(high), share(low), all.1)
}

/// The learned evaluator and the no-MeSH judge against held-out rule labels: rule labels of
/// the PQA-L train/dev half train SmolLM2-135M-Instruct (LoRA), the official test half is
/// judged by it and by the base model.
pub(crate) fn learned<R: Retriever + Sync>(
    data: &Path,
    corpus: &Corpus,
    retriever: &R,
    docs: &[(Document, String)],
    pairs: &[([String; 2], usize)],
    o: &EvaluatorBench,
) -> Result<()>
where
    R::Error: Send + Sync + 'static,
{
    use burn::backend::Autodiff;
    use burn::module::AutodiffModule;
    use kailin_evaluator::{JudgeOptions, Label, PairwiseJudge, judge_examples, train_judge};

    let mesh = Mesh::load(data.join("mesh/mesh2024.tsv"))?;
    let test = kailin_corpus::read_pubmedqa_test_ids(data.join("pubmedqa/test_ground_truth.json"))?;
    let items: Vec<Item<'_>> = docs
        .iter()
        .zip(pairs)
        .map(|((d, _), (q, _))| Item { doc: d, questions: [q[0].as_str(), q[1].as_str()] })
        .collect();
    let rule = RuleEvaluator::new(&mesh, corpus, retriever, RuleOptions::default())?;
    let labels = items.chunks(256).map(|c| rule.evaluate(c)).collect::<Result<Vec<_>, _>>()?.concat();
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for ((it, (q, _)), j) in items.iter().zip(pairs).zip(labels) {
        let label = Label { doc_id: it.doc.id.clone(), questions: q.clone(), judgement: j };
        if !test.contains(&it.doc.id) {
            train.push(label);
        } else if held.len() < o.held {
            held.push((*it, label));
        }
    }
    let view = JudgeOptions { document_words: o.document_words, context_words: o.context_words, ..Default::default() };
    let chosen: Vec<Label> = train.into_iter().filter(|l| l.judgement.preferred.is_some()).take(o.learned).collect();
    let (examples, _) = judge_examples(&chosen, corpus, &view)?;
    let gguf = kailin_lm::smollm2_gguf().context("no model cache (run `cargo xtask fetch-models`)")?;
    let held_items: Vec<Item<'_>> = held.iter().map(|(it, _)| *it).collect();
    let held_rule: Vec<Judgement> = held.iter().map(|(_, l)| l.judgement.clone()).collect();
    let judge_all = |model: kailin_lm::Llama<Flex>, tok: kailin_lm::Tokenizer, name: &str| -> Result<Vec<Judgement>> {
        let judge = PairwiseJudge::new(model, tok, corpus, retriever, view.clone(), name)?;
        let t = Instant::now();
        let out = kailin_lm::on_cpu_threads(|| {
            held_items.chunks(32).map(|c| judge.evaluate(c)).collect::<Result<Vec<_>, _>>()
        })?
        .concat();
        eprintln!("{name}: {} items judged in {:.0} s", held_items.len(), t.elapsed().as_secs_f64());
        Ok(out)
    };
    println!(
        "\n## Learned evaluator: SmolLM2-135M-Instruct, LoRA rank {} on {} rule labels of the PQA-L train/dev half \
         ({} examples: both orders), judged on the {} test-half pairs (document {} words, each of k = 4 contexts {} words)",
        o.lora_rank,
        chosen.len(),
        examples.len(),
        held.len(),
        o.document_words,
        o.context_words
    );
    println!(
        "\n| judge | agreement with the rule | above-median margin | at or below the median | pairs |\n|---|---|---|---|---|"
    );
    let row = |name: &str, judged: &[Judgement]| {
        let (all, high, low, n) = agreement(&held_rule, judged);
        println!("| {name} | {:.1}% | {:.1}% | {:.1}% | {n} |", 100.0 * all, 100.0 * high, 100.0 * low);
    };
    let device = Default::default();
    if !o.skip_plain {
        let (base, _, tok) = kailin_lm::load::<Flex>(&gguf, 2048, &device)?;
        let plain = judge_all(base, tok, "llm-judge (no MeSH)")?;
        row("no-MeSH judge (base model, same prompt)", &plain);
    }

    let (model, _, tok) = kailin_lm::load::<Autodiff<Flex>>(&gguf, 2048, &device)?;
    let model = model.with_lora(&kailin_lm::LoraConfig::new(o.lora_rank))?;
    let options = kailin_train::TrainOptions { lr: o.lr, batch_size: 4, seed: o.seed, ..Default::default() };
    let t = Instant::now();
    let mut last = Instant::now();
    let (model, report) = kailin_lm::on_cpu_threads(|| {
        train_judge(model, &tok, examples, 1024, &options, |p| {
            if last.elapsed().as_secs() >= 60 {
                eprintln!(
                    "step {} / {}: loss {:.4} ({:.0} s)",
                    p.log.step,
                    p.last,
                    p.log.loss,
                    t.elapsed().as_secs_f64()
                );
                last = Instant::now();
            }
        })
    })?;
    let (first, final_loss) =
        (report.steps.first().map_or(0.0, |s| s.loss), report.steps.last().map_or(0.0, |s| s.loss));
    println!(
        "\ntraining: {} steps, loss {first:.3} → {final_loss:.3}, {:.0} tokens/s, {:.0} s",
        report.steps.len(),
        report.tokens_per_second(),
        t.elapsed().as_secs_f64()
    );
    let trained = model.valid().merge_lora();
    let learned = judge_all(trained, tok, "learned")?;
    row("learned evaluator (fine-tuned on rule labels)", &learned);
    Ok(())
}
