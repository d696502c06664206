//! `kailin evaluate rule|train|learned|pairs`: thin subcommands over `kailin-evaluator`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::backend::Flex;
use clap::{Args, Subcommand, ValueEnum};
use kailin_core::{Document, DpoExample, JsonlReader, JsonlWriter, PreferencePair, Provenance};
use kailin_evaluator::{
    Corpus, Evaluator, IcSource, Item, JudgeOptions, Judgement, Label, Outcome, PairwiseJudge, Pooling, RuleEvaluator,
    RuleOptions, Tally, TermSource,
};
use kailin_retrieval::{AnyRetriever, DenseRetriever, EncoderBuilder, ExactSearch, Store};
use serde::Deserialize;

/// The evaluator: label which of two questions of a document is better.
#[derive(Debug, Subcommand)]
pub(crate) enum EvaluateCmd {
    /// The MeSH rule (cold start): prefer the question whose retrieved context is closer to the
    /// document in the MeSH hierarchy. One output line per candidates line, with the reasons.
    Rule(RuleArgs),
    /// Fine-tune a language model on rule labels (each in both presentation orders): the
    /// learned evaluator.
    Train(TrainArgs),
    /// Label with a language-model judge: a model from `evaluate train` (the learned
    /// evaluator), or a base model (the no-MeSH ablation). Same output as `rule`.
    Learned(LearnedArgs),
    /// Labels to preference pairs (kailin-core `PreferencePair` lines) and, optionally, DPO
    /// examples (`{"prompt","chosen","rejected"}`); labels without preference are counted.
    Pairs(PairsArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RetrieverArg {
    /// The store's encoder and exact inner-product search.
    Dense,
    /// BM25 over the corpus (a lexical baseline); --store and --model are
    /// not needed.
    Bm25,
}

#[derive(Debug, Args)]
pub(crate) struct ContextArgs {
    /// Documents (kailin-core `Document` lines): the judged documents and everything
    /// retrievable.
    #[arg(long)]
    corpus: PathBuf,
    /// The store built from the corpus with `kailin retrieve build` (dense retrieval).
    #[arg(long)]
    store: Option<PathBuf>,
    /// The store's encoder directory (dense retrieval).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Contexts per question.
    #[arg(long, default_value_t = 4, value_parser = crate::args::at_least_one)]
    k: usize,
    /// Leave the document itself out of its questions' contexts.
    #[arg(long)]
    exclude_source: bool,
    /// The retriever.
    #[arg(long, value_enum, default_value = "dense")]
    retriever: RetrieverArg,
    /// Candidates, JSON lines `{"doc_id": "...", "questions": ["q1", "q2"]}` (a document may
    /// have several lines).
    #[arg(long)]
    candidates: PathBuf,
    /// Output labels, one line per candidates line.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum AggArg {
    /// Mean over all term pairs (m-KAILIN Eq. 4).
    Mean,
    /// Best-match average.
    Bma,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum TermsArg {
    /// The record's headings when it has any, otherwise extraction from title and text.
    HeadingsElseExtraction,
    /// Headings only.
    Headings,
    /// Extraction only.
    Extraction,
    /// Both.
    Union,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum PoolingArg {
    /// Mean of each context's similarity with the document.
    Mean,
    /// One similarity with the union of the contexts' terms.
    Union,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum IcArg {
    /// Intrinsic IC of the hierarchy.
    Intrinsic,
    /// Corpus IC from the corpus's terms.
    Corpus,
}

#[derive(Debug, Args)]
pub(crate) struct RuleArgs {
    #[command(flatten)]
    ctx: ContextArgs,
    /// The MeSH hierarchy (descriptor XML, ASCII tree file, TSV or kailin cache).
    #[arg(long)]
    mesh: PathBuf,
    /// Aggregation of term-pair scores (mean: the paper's Eq. 4; bma measured better).
    #[arg(long, value_enum, default_value = "bma")]
    agg: AggArg,
    /// Scores this close or closer are a tie (no label).
    #[arg(long, default_value_t = 0.0, value_parser = crate::args::non_negative)]
    margin: f64,
    /// Where terms come from.
    #[arg(long, value_enum, default_value = "headings-else-extraction")]
    terms: TermsArg,
    /// How a question's k contexts make one score.
    #[arg(long, value_enum, default_value = "mean")]
    pooling: PoolingArg,
    /// Information content (corpus: from the terms of --corpus; measured better than intrinsic).
    #[arg(long, value_enum, default_value = "corpus")]
    ic: IcArg,
    /// Keep the MeSH check tags (Humans, Male, age groups…), which are left out by default.
    #[arg(long)]
    keep_check_tags: bool,
}

#[derive(Debug, Args)]
pub(crate) struct JudgeViewArgs {
    /// Words of the document the model sees.
    #[arg(long, default_value_t = 64, value_parser = crate::args::at_least_one)]
    document_words: usize,
    /// Words of each context document the model sees.
    #[arg(long, default_value_t = 16, value_parser = crate::args::at_least_one)]
    context_words: usize,
}

#[derive(Debug, Args)]
pub(crate) struct LearnedArgs {
    #[command(flatten)]
    ctx: ContextArgs,
    /// The judge: a directory from `kailin evaluate train`, or any model (GGUF file or Hugging
    /// Face directory) for the no-MeSH judge.
    #[arg(long)]
    evaluator: PathBuf,
    #[command(flatten)]
    view: JudgeViewArgs,
    /// |P(first) − P(second)| this small or smaller is a tie.
    #[arg(long, default_value_t = 0.0, value_parser = crate::args::unit_closed)]
    margin: f64,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 8, value_parser = crate::args::at_least_one)]
    batch_size: usize,
}

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// Rule labels (`kailin evaluate rule --out`).
    #[arg(long)]
    labels: PathBuf,
    /// The corpus the labels' contexts come from.
    #[arg(long)]
    corpus: PathBuf,
    #[command(flatten)]
    view: JudgeViewArgs,
    #[command(flatten)]
    train: crate::train::CommonArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PairsArgs {
    /// Labels (`kailin evaluate rule|learned --out`).
    #[arg(long)]
    labels: PathBuf,
    /// The corpus the labels' documents and contexts come from.
    #[arg(long)]
    corpus: PathBuf,
    /// Output preference pairs (kailin-core `PreferencePair` lines).
    #[arg(long)]
    out: PathBuf,
    /// Also write DPO examples (`{"prompt","chosen","rejected"}`) here.
    #[arg(long)]
    dpo: Option<PathBuf>,
}

pub(crate) fn run(cmd: EvaluateCmd) -> Result<()> {
    match cmd {
        EvaluateCmd::Rule(a) => rule(a),
        EvaluateCmd::Train(a) => train(a),
        EvaluateCmd::Learned(a) => learned(a),
        EvaluateCmd::Pairs(a) => pairs(a),
    }
}

/// One line of the candidates file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a candidates line: {\"doc_id\": \"...\", \"questions\": [\"q1\", \"q2\"]}")]
struct CandidatesLine {
    doc_id: String,
    questions: [String; 2],
}

fn read_corpus(path: &Path) -> Result<Corpus> {
    let mut corpus = Corpus::default();
    for doc in JsonlReader::<Document>::open(path)? {
        corpus.push(doc?).with_context(|| format!("reading {}", path.display()))?;
    }
    if corpus.is_empty() {
        bail!("{}: the corpus holds no documents", path.display());
    }
    Ok(corpus)
}

/// The retriever the options name, over `corpus`.
fn retriever(a: &ContextArgs, corpus: &Corpus) -> Result<AnyRetriever<Flex>> {
    Ok(match a.retriever {
        RetrieverArg::Bm25 => {
            AnyRetriever::bm25(corpus.documents().iter().map(|d| (d.id.as_str(), d.retrieval_text())))?
        }
        RetrieverArg::Dense => {
            let (Some(store), Some(model)) = (&a.store, &a.model) else {
                bail!("dense retrieval needs --store (built with `kailin retrieve build`) and --model (its encoder)")
            };
            let store = Store::open(store)?;
            if store.len() != corpus.len() as u64 {
                tracing::warn!(
                    store = store.len(),
                    corpus = corpus.len(),
                    "the store and the corpus hold different numbers of documents"
                );
            }
            let encoder = EncoderBuilder::new(model).build::<Flex>(&Default::default())?;
            AnyRetriever::Dense(Box::new(DenseRetriever::new(encoder, store, ExactSearch::new(0)?)?))
        }
    })
}

/// Reads the candidates in groups, judges each group, writes one label per line; the outcome
/// counts go to stderr.
fn label_all<E: Evaluator>(evaluator: &E, corpus: &Corpus, candidates: &Path, out: &Path) -> Result<Tally> {
    const GROUP: usize = 256;
    let mut reader = JsonlReader::<CandidatesLine>::open(candidates)?;
    let mut writer = JsonlWriter::<Label>::create(out)?;
    let mut tally = Tally::default();
    // The number of lines, for the bar's ETA (a cheap pass; a read error ends the count and is
    // reported by the reader).
    let total = std::fs::File::open(candidates)
        .map(|f| std::io::BufRead::lines(std::io::BufReader::new(f)).map_while(std::io::Result::ok).count())
        .unwrap_or(0);
    let bar = crate::progress::bar(total as u64, "judging");
    loop {
        let mut group = Vec::with_capacity(GROUP);
        for line in reader.by_ref().take(GROUP) {
            group.push(line?);
        }
        if group.is_empty() {
            break;
        }
        let docs: Vec<Option<&Document>> = group.iter().map(|c| corpus.get(&c.doc_id)).collect();
        let items: Vec<Item<'_>> = group
            .iter()
            .zip(&docs)
            .filter_map(|(c, d)| {
                d.map(|doc| Item { doc, questions: [c.questions[0].as_str(), c.questions[1].as_str()] })
            })
            .collect();
        let mut judged =
            evaluator.evaluate(&items).map_err(|e| anyhow::anyhow!(e)).context("judging candidates")?.into_iter();
        for (c, d) in group.into_iter().zip(docs) {
            let judgement = match d {
                Some(_) => judged.next().context("the evaluator returned fewer judgements than items")?,
                None => Judgement::skipped(Outcome::UnknownDocument),
            };
            tally.add(judgement.outcome);
            writer.write(&Label { doc_id: c.doc_id, questions: c.questions, judgement })?;
        }
        bar.set_position(tally.total() as u64);
    }
    bar.finish_and_clear();
    writer.finish()?;
    report(&tally, out);
    Ok(tally)
}

#[allow(clippy::print_stderr)]
fn report(tally: &Tally, out: &Path) {
    eprintln!("{tally}; labels written to {}", out.display());
    if tally.get(Outcome::UnknownDocument) > 0 {
        eprintln!(
            "warning: {} candidates lines name a document the corpus does not hold (outcome unknown_document)",
            tally.get(Outcome::UnknownDocument)
        );
    }
}

/// Refuses an --out that is one of the inputs.
fn check_context_outputs(ctx: &ContextArgs, more: &[(&str, &Path)]) -> Result<()> {
    let mut inputs: Vec<(&str, &Path)> = vec![("--corpus", &ctx.corpus), ("--candidates", &ctx.candidates)];
    if let Some(s) = &ctx.store {
        inputs.push(("--store", s));
    }
    if let Some(m) = &ctx.model {
        inputs.push(("--model", m));
    }
    inputs.extend_from_slice(more);
    Ok(kailin_core::check_outputs(&inputs, &[("--out", &ctx.out)])?)
}

fn rule(a: RuleArgs) -> Result<()> {
    check_context_outputs(&a.ctx, &[("--mesh", &a.mesh)])?;
    let corpus = read_corpus(&a.ctx.corpus)?;
    let mesh = kailin_mesh::Mesh::load(&a.mesh)?;
    let retriever = retriever(&a.ctx, &corpus)?;
    let options = RuleOptions {
        k: a.ctx.k,
        exclude_source: a.ctx.exclude_source,
        aggregate: match a.agg {
            AggArg::Mean => kailin_mesh::Aggregate::Mean,
            AggArg::Bma => kailin_mesh::Aggregate::BestMatch,
        },
        pooling: match a.pooling {
            PoolingArg::Mean => Pooling::MeanOfContexts,
            PoolingArg::Union => Pooling::Union,
        },
        margin: a.margin,
        terms: match a.terms {
            TermsArg::HeadingsElseExtraction => TermSource::HeadingsElseExtraction,
            TermsArg::Headings => TermSource::Headings,
            TermsArg::Extraction => TermSource::Extraction,
            TermsArg::Union => TermSource::Union,
        },
        ic: match a.ic {
            IcArg::Intrinsic => IcSource::Intrinsic,
            IcArg::Corpus => IcSource::Corpus,
        },
        ignore_check_tags: !a.keep_check_tags,
        ..Default::default()
    };
    let evaluator = RuleEvaluator::new(&mesh, &corpus, retriever, options)?;
    label_all(&evaluator, &corpus, &a.ctx.candidates, &a.ctx.out)?;
    Ok(())
}

fn judge_options(ctx: &ContextArgs, view: &JudgeViewArgs, margin: f64, batch_size: usize) -> JudgeOptions {
    JudgeOptions {
        k: ctx.k,
        exclude_source: ctx.exclude_source,
        document_words: view.document_words,
        context_words: view.context_words,
        margin,
        batch_size,
    }
}

fn learned(a: LearnedArgs) -> Result<()> {
    check_context_outputs(&a.ctx, &[("--evaluator", &a.evaluator)])?;
    let corpus = read_corpus(&a.ctx.corpus)?;
    let retriever = retriever(&a.ctx, &corpus)?;
    let (model, _, tokenizer) = kailin_lm::load::<Flex>(&a.evaluator, 4096, &Default::default())?;
    let options = judge_options(&a.ctx, &a.view, a.margin, a.batch_size);
    let name = format!("llm-judge/{}", a.evaluator.display());
    let judge = PairwiseJudge::new(model, tokenizer, &corpus, retriever, options, name)?;
    kailin_lm::on_cpu_threads(|| label_all(&judge, &corpus, &a.ctx.candidates, &a.ctx.out))?;
    Ok(())
}

fn read_labels(path: &Path) -> Result<Vec<Label>> {
    Ok(JsonlReader::<Label>::open(path)?.collect::<kailin_core::Result<Vec<_>>>()?)
}

fn train(a: TrainArgs) -> Result<()> {
    kailin_core::check_outputs(
        &[("--labels", &a.labels), ("--corpus", &a.corpus), ("--model", a.train.model())],
        &[("--out", a.train.out())],
    )?;
    let corpus = read_corpus(&a.corpus)?;
    let labels = read_labels(&a.labels)?;
    let options = JudgeOptions {
        document_words: a.view.document_words,
        context_words: a.view.context_words,
        ..Default::default()
    };
    let (examples, dropped) = kailin_evaluator::judge_examples(&labels, &corpus, &options)?;
    if examples.is_empty() {
        bail!("{}: no label with a preference to train on ({dropped} without)", a.labels.display());
    }
    tracing::info!(examples = examples.len(), dropped, "judge examples (each label in both orders)");
    let _out = a.train.open_out("kailin evaluate train")?;
    let data = a.train.out().join("judge-examples.jsonl");
    crate::train::check_resumable(kailin_train::Objective::Sft, &data, &a.train)?;
    crate::train::write_training_data(&a.train, &data, &examples)?;
    crate::train::sft_on(a.train, data)
}

fn pairs(a: PairsArgs) -> Result<()> {
    let mut outputs: Vec<(&str, &Path)> = vec![("--out", &a.out)];
    if let Some(dpo) = &a.dpo {
        outputs.push(("--dpo", dpo));
    }
    kailin_core::check_outputs(&[("--labels", &a.labels), ("--corpus", &a.corpus)], &outputs)?;
    let corpus = read_corpus(&a.corpus)?;
    let mut out = JsonlWriter::<PreferencePair>::create(&a.out)?;
    let mut dpo = a.dpo.as_ref().map(JsonlWriter::<DpoExample>::create).transpose()?;
    let mut tally = Tally::default();
    let mut dropped = 0usize;
    let mut labels = JsonlReader::<Label>::open(&a.labels)?;
    while let Some(label) = labels.next() {
        let label = label?;
        let line = labels.line();
        tally.add(label.judgement.outcome);
        let provenance = Provenance { agent: "evaluator".into(), ..Default::default() };
        let pair = kailin_evaluator::preference_pair(&label, &corpus, &provenance)
            .with_context(|| format!("{}:{line}", a.labels.display()))?;
        let Some(pair) = pair else {
            dropped += 1;
            continue;
        };
        if let Some(w) = &mut dpo {
            let doc = corpus.get(&label.doc_id).with_context(|| {
                format!(
                    "{}:{line}: document {} is not in --corpus {}",
                    a.labels.display(),
                    label.doc_id,
                    a.corpus.display()
                )
            })?;
            w.write(&DpoExample::new(&pair, doc))?;
        }
        out.write(&pair)?;
    }
    let written = out.finish()?;
    if let Some(w) = dpo {
        w.finish()?;
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "{tally}; {written} preference pairs written to {}, {dropped} labels without preference dropped",
            a.out.display()
        );
    }
    Ok(())
}
