//! `kailin retrieve …`: thin subcommands over `kailin-retrieval`.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::backend::Flex;
use clap::{Args, Subcommand, ValueEnum};
use kailin_corpus::{DocumentStream, Source};
use kailin_retrieval::{
    Bm25Retriever, DenseRetriever, Dtype, EncoderBuilder, ExactSearch, Hit, HybridRetriever, NpyMatrix, Retriever,
    Store, StoreBuilder,
};

/// Dense retrieval: build, import and search embedding stores.
#[derive(Debug, Subcommand)]
pub(crate) enum RetrieveCmd {
    /// Encode a corpus (JSON lines of documents) into a store; resumes an interrupted build.
    Build(BuildArgs),
    /// Import precomputed embeddings (a 2-D little-endian f32 .npy) into a store.
    Import(ImportArgs),
    /// Top-k search: queries one per line on stdin (with --model), or rows of --query-vectors.
    Search(SearchArgs),
    /// Fine-tune an encoder on question–passage pairs (BioASQ, PubMedQA, JSON lines) with a
    /// contrastive loss; writes a model directory `build --model` loads.
    Train(crate::retrieve_train::TrainArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum DtypeArg {
    F32,
    F16,
}

impl From<DtypeArg> for Dtype {
    fn from(d: DtypeArg) -> Dtype {
        match d {
            DtypeArg::F32 => Dtype::F32,
            DtypeArg::F16 => Dtype::F16,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// Output store directory.
    #[arg(long)]
    out: PathBuf,
    /// Element type on disk.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: DtypeArg,
    /// Rows per shard (the unit of resumption and of distribution).
    #[arg(long, default_value_t = 1 << 20, value_parser = crate::args::at_least_one)]
    shard_rows: usize,
    /// Commit what is encoded at least this often, in seconds (what an interrupted build can
    /// lose); 0 commits every group of documents.
    #[arg(long, default_value_t = 60.0, value_parser = crate::args::non_negative)]
    commit_every: f64,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// Encoder: a Hugging Face BERT directory (config.json, model.safetensors, tokenizer.json or vocab.txt).
    #[arg(long)]
    model: PathBuf,
    /// Documents: JSON lines (`id`, `title`, `text`, …), PubMed XML, PubTator or PubMedQA, or a
    /// directory of such files (those of one format are read, in path order); title and text
    /// are embedded together.
    #[arg(long)]
    corpus: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32, value_parser = crate::args::at_least_one)]
    batch_size: usize,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The vectors: a 2-D little-endian f32 .npy file.
    #[arg(long)]
    vectors: PathBuf,
    /// Ids, one per line (default: the row numbers).
    #[arg(long)]
    ids: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SearchArgs {
    /// The store to search.
    #[arg(long)]
    store: PathBuf,
    /// Encoder for text queries read from stdin (must be the store's encoder).
    #[arg(long, conflicts_with = "query_vectors", required_unless_present = "query_vectors")]
    model: Option<PathBuf>,
    /// Query vectors (a 2-D f32 .npy) instead of text.
    #[arg(long)]
    query_vectors: Option<PathBuf>,
    /// Hits per query.
    #[arg(long, default_value_t = 4, value_parser = crate::args::at_least_one)]
    k: usize,
    /// Search threads (0: one per core).
    #[arg(long, default_value_t = 0, value_parser = crate::args::threads)]
    threads: usize,
    /// Search a store whose build has not finished (the rows committed so far).
    #[arg(long)]
    partial: bool,
    /// Fuse the store's dense ranking with BM25 over --corpus by reciprocal rank (text
    /// queries only); the hits' scores are then the fused scores.
    #[arg(long, requires = "corpus", requires = "model")]
    hybrid: bool,
    /// The documents the store was built from (as `build --corpus` takes them), for --hybrid's
    /// BM25 index.
    #[arg(long, requires = "hybrid")]
    corpus: Option<PathBuf>,
}

pub(crate) fn run(cmd: RetrieveCmd) -> Result<()> {
    match cmd {
        RetrieveCmd::Build(a) => build(a),
        RetrieveCmd::Import(a) => import(a),
        RetrieveCmd::Search(a) => search(a),
        RetrieveCmd::Train(a) => crate::retrieve_train::train(a),
    }
}

fn store_builder(a: &StoreArgs, dim: usize) -> StoreBuilder {
    StoreBuilder::new(&a.out, dim)
        .dtype(a.dtype.into())
        .shard_rows(a.shard_rows)
        .commit_every(std::time::Duration::from_secs_f64(a.commit_every))
}

fn build(a: BuildArgs) -> Result<()> {
    kailin_core::check_outputs(&[("--corpus", &a.corpus), ("--model", &a.model)], &[("--out", &a.store.out)])?;
    // The corpus first (cheap checks before the model loads).
    let inputs = crate::data::inputs(&a.corpus, None)?;
    if inputs.source == Source::Bioasq {
        bail!("{}: BioASQ files hold questions, not documents to retrieve", a.corpus.display());
    }
    let docs = DocumentStream::from_inputs(&inputs, false)?;
    // Count the documents of a JSON lines file, for the progress bar's ETA (a cheap pass; a
    // read error ends the count and is reported by the reader); other inputs count up.
    let total = if inputs.source == Source::Jsonl && inputs.files.len() == 1 {
        let file = std::fs::File::open(&a.corpus).with_context(|| format!("opening {}", a.corpus.display()))?;
        std::io::BufReader::new(file).lines().map_while(std::io::Result::ok).count() as u64
    } else {
        0
    };
    let device = Default::default();
    let encoder = EncoderBuilder::new(&a.model).batch_size(a.batch_size).build::<Flex>(&device)?;
    let progress = crate::progress::bar(total, "encoding");
    let store = kailin_retrieval::build_store(
        &encoder,
        store_builder(&a.store, encoder.dim()),
        docs.map(|d| d.map(|d| (d.id.clone(), d.retrieval_text()))),
        |n| progress.set_position(n),
    )?;
    progress.finish_and_clear();
    tracing::info!(rows = store.len(), shards = store.shard_count(), "store written to {}", a.store.out.display());
    Ok(())
}

fn import(a: ImportArgs) -> Result<()> {
    let mut inputs: Vec<(&str, &std::path::Path)> = vec![("--vectors", &a.vectors)];
    if let Some(ids) = &a.ids {
        inputs.push(("--ids", ids));
    }
    kailin_core::check_outputs(&inputs, &[("--out", &a.store.out)])?;
    let npy = NpyMatrix::open(&a.vectors)?;
    let (rows, dim) = npy.view()?.dim();
    drop(npy);
    let progress = crate::progress::bar(rows as u64, "importing");
    let store = kailin_retrieval::import_npy(&a.vectors, a.ids.as_deref(), store_builder(&a.store, dim), |n| {
        if n.is_multiple_of(4096) {
            progress.set_position(n);
        }
    })?;
    progress.finish_and_clear();
    tracing::info!(rows = store.len(), shards = store.shard_count(), "store written to {}", a.store.out.display());
    Ok(())
}

fn search(a: SearchArgs) -> Result<()> {
    let store = if a.partial {
        Store::open_partial(&a.store)?
    } else {
        Store::open(&a.store).map_err(|e| match e.to_string() {
            m if m.contains("has not finished") => {
                anyhow::anyhow!("{m}, or search the rows stored so far with --partial")
            }
            _ => e.into(),
        })?
    };
    let engine = ExactSearch::new(a.threads)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let hits_json = |hits: &[Hit]| -> Result<Vec<serde_json::Value>> {
        hits.iter()
            .map(|h| {
                let id = store.id(h.row).with_context(|| format!("store has no id for row {}", h.row))?;
                Ok(serde_json::json!({ "id": id, "score": h.score }))
            })
            .collect()
    };
    if let Some(path) = &a.query_vectors {
        let npy = NpyMatrix::open(path)?;
        let hits = store.search(&engine, npy.view()?, a.k)?;
        for (row, hits) in hits.iter().enumerate() {
            serde_json::to_writer(&mut out, &serde_json::json!({ "row": row, "hits": hits_json(hits)? }))?;
            writeln!(out)?;
        }
        return Ok(out.flush()?);
    }
    let Some(model) = &a.model else { bail!("give --model (text queries on stdin) or --query-vectors") };
    let encoder = EncoderBuilder::new(model).build::<Flex>(&Default::default())?;
    store.check_encoder(encoder.identity())?;
    if let Some(corpus) = a.corpus.as_ref().filter(|_| a.hybrid) {
        let inputs = crate::data::inputs(corpus, None)?;
        let mut docs = Vec::new();
        for d in DocumentStream::from_inputs(&inputs, false)? {
            let d = d?;
            docs.push((d.id.clone(), d.retrieval_text()));
        }
        if docs.len() as u64 != store.len() {
            bail!(
                "{}: {} documents, but the store holds {} rows: give the corpus the store was built from",
                corpus.display(),
                docs.len(),
                store.len()
            );
        }
        let bm25 = Bm25Retriever::build(docs)?;
        let hybrid = HybridRetriever::new(DenseRetriever::new(encoder, store, engine)?, bm25);
        let queries = read_queries()?;
        let asked: Vec<&str> = queries.iter().map(String::as_str).filter(|q| !q.trim().is_empty()).collect();
        let mut hits = hybrid.retrieve(&asked, a.k)?.into_iter();
        for query in &queries {
            let found = if query.trim().is_empty() { Vec::new() } else { hits.next().unwrap_or_default() };
            let found: Vec<_> = found.iter().map(|h| serde_json::json!({ "id": h.id, "score": h.score })).collect();
            serde_json::to_writer(&mut out, &serde_json::json!({ "query": query, "hits": found }))?;
            writeln!(out)?;
        }
        return Ok(out.flush()?);
    }
    let queries = read_queries()?;
    // One output line per input line: an empty query finds nothing.
    let asked: Vec<&str> = queries.iter().map(String::as_str).filter(|q| !q.trim().is_empty()).collect();
    let vectors = encoder.encode(&asked)?;
    let mut hits = store.search(&engine, vectors.view(), a.k)?.into_iter();
    for query in &queries {
        let found = if query.trim().is_empty() { Vec::new() } else { hits.next().unwrap_or_default() };
        serde_json::to_writer(&mut out, &serde_json::json!({ "query": query, "hits": hits_json(&found)? }))?;
        writeln!(out)?;
    }
    Ok(out.flush()?)
}

/// The queries on stdin, one per line (a trailing carriage return dropped).
fn read_queries() -> Result<Vec<String>> {
    let mut queries = Vec::new();
    for (i, line) in std::io::stdin().lock().split(b'\n').enumerate() {
        let line = line.context("reading queries from stdin")?;
        let text = String::from_utf8(line).map_err(|_| anyhow::anyhow!("stdin line {}: not UTF-8 text", i + 1))?;
        queries.push(text.trim_end_matches('\r').to_owned());
    }
    Ok(queries)
}
