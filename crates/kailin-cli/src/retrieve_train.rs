//! `kailin retrieve train`: contrastive fine-tuning of the sentence encoder on biomedical
//! question–passage pairs (`kailin-train`'s `train_encoder`), exported as a model directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::backend::{Autodiff, Flex};
use clap::Args;
use kailin_retrieval::EncoderBuilder;
use kailin_train::{CheckpointOptions, EncoderTrainOptions, RetrievalPair};

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// The encoder to start from: a Hugging Face BERT directory (sentence-transformers layout
    /// or plain `BertModel`).
    #[arg(long)]
    base: PathBuf,
    /// Where the fine-tuned encoder is written (a model directory in sentence-transformers'
    /// layout, replaced whole); checkpoints go to `OUT.checkpoints/`.
    #[arg(long)]
    out: PathBuf,
    /// BioASQ golden batches (a directory searched for `*.json`): each training question with
    /// each of its snippets.
    #[arg(long)]
    bioasq: Option<PathBuf>,
    /// PubMedQA (`ori_pqal.json`): each question with its abstract, the test split left out.
    #[arg(long)]
    pubmedqa: Option<PathBuf>,
    /// The PubMedQA test split (`test_ground_truth.json`) whose PMIDs are never trained on
    /// (default: the file of that name beside --pubmedqa).
    #[arg(long)]
    pubmedqa_test: Option<PathBuf>,
    /// More pairs: JSON lines `{"query", "positive", "negatives": [...]}` (repeatable).
    #[arg(long)]
    pairs: Vec<PathBuf>,
    /// BioASQ batches never trained on: file-name globs, comma-separated (default: the
    /// agents' held-out batches).
    #[arg(long, value_delimiter = ',', default_values_t = kailin_question::HELD_OUT_BATCHES.map(String::from))]
    held_out: Vec<String>,
    /// Train on at most this many pairs: a sample drawn with --seed from every source's, after
    /// duplicates are dropped.
    #[arg(long, value_parser = crate::args::at_least_one)]
    limit: Option<usize>,
    /// Passes over the pairs.
    #[arg(long, default_value_t = 1, value_parser = crate::args::at_least_one)]
    epochs: usize,
    /// Pairs per step (at least 2: each pair's passage is the others' negative).
    #[arg(long, default_value_t = 32, value_parser = crate::args::at_least(2))]
    batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-5, value_parser = crate::args::positive)]
    lr: f64,
    /// Share of the steps spent warming up.
    #[arg(long, default_value_t = 0.1, value_parser = crate::args::unit_closed_open)]
    warmup: f64,
    /// Scores are cosine similarities divided by this.
    #[arg(long, default_value_t = 0.05, value_parser = crate::args::positive)]
    temperature: f64,
    /// Texts are cut to this many tokens while training.
    #[arg(long, default_value_t = 128, value_parser = crate::args::at_least(3))]
    max_tokens: usize,
    /// Hard negatives per pair: those the pairs file gives, then passages BM25 ranks high for
    /// the query among all the pairs' passages (none of the query's own).
    #[arg(long, default_value_t = 0)]
    hard_negatives: usize,
    /// Seed of the order of the pairs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write a checkpoint every this many steps (and at the end); a rerun resumes.
    #[arg(long, default_value_t = 100, value_parser = crate::args::at_least_one_u64)]
    checkpoint_every: u64,
    /// Stop after this many steps in all (a checkpoint is written there; rerun to go on).
    #[arg(long, value_parser = crate::args::at_least_one_u64)]
    stop_after: Option<u64>,
}

// What was read, trained and written is the command's report, on stderr.
#[allow(clippy::print_stderr)]
pub(crate) fn train(a: TrainArgs) -> Result<()> {
    let mut inputs: Vec<(&str, &Path)> = vec![("--base", &a.base)];
    if let Some(p) = &a.bioasq {
        inputs.push(("--bioasq", p));
    }
    if let Some(p) = &a.pubmedqa {
        inputs.push(("--pubmedqa", p));
    }
    inputs.extend(a.pairs.iter().map(|p| ("--pairs", p.as_path())));
    kailin_core::check_outputs(&inputs, &[("--out", &a.out)])?;
    let pairs = gather(&a)?;
    let device = Default::default();
    let encoder = EncoderBuilder::new(&a.base)
        .build::<Autodiff<Flex>>(&device)
        .with_context(|| format!("{}: not a BERT model directory", a.base.display()))?;
    let checkpoints = PathBuf::from(format!("{}.checkpoints", a.out.display()));
    let opts = EncoderTrainOptions {
        epochs: a.epochs,
        batch_size: a.batch_size,
        hard_negatives: a.hard_negatives,
        lr: a.lr,
        warmup_ratio: a.warmup,
        temperature: a.temperature,
        max_tokens: a.max_tokens,
        seed: a.seed,
        checkpoint: Some(CheckpointOptions::new(&checkpoints, a.checkpoint_every)),
        stop_after: a.stop_after,
        base_model: Some(encoder.identity().to_owned()),
        ..Default::default()
    };
    let mut bar: Option<indicatif::ProgressBar> = None;
    let (encoder, report) = kailin_train::train_encoder(encoder, &pairs, &opts, |p| {
        let bar = bar.get_or_insert_with(|| {
            let bar = crate::progress::bar(p.total, "training the encoder").with_position(p.step - 1);
            bar.reset_eta();
            bar
        });
        bar.set_message(format!(
            "loss {:.3} · in-batch accuracy {:.2} · {:.1} pairs/s",
            p.loss, p.accuracy, p.pairs_per_second
        ));
        bar.set_position(p.step);
        if bar.is_hidden() && (p.step.is_multiple_of(25) || p.step == p.total) {
            eprintln!(
                "step {}/{}: loss {:.3}, in-batch accuracy {:.2}, {:.1} pairs/s",
                p.step, p.total, p.loss, p.accuracy, p.pairs_per_second
            );
        }
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if !report.finished {
        eprintln!(
            "stopped after step {} (--stop-after): rerun without it to go on from the checkpoint",
            report.steps.last().map_or(0, |s| s.step)
        );
        return Ok(());
    }
    encoder.save_dir(&a.out)?;
    let summary = serde_json::json!({
        "base": a.base, "pairs": report.pairs, "steps": report.steps.len(), "seconds": report.seconds,
        "pairs_per_second": report.pairs_per_second(), "left_out": report.left_out, "truncated": report.truncated,
        "first_loss": report.steps.first().map(|s| s.loss), "last_loss": report.steps.last().map(|s| s.loss),
        "options": opts,
    });
    kailin_core::write_atomic(a.out.join("kailin-train.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    eprintln!(
        "{} pairs, {} steps in {:.0} s ({:.1} pairs/s); loss {:.3} -> {:.3}; encoder written to {}",
        report.pairs,
        report.steps.len(),
        report.seconds,
        report.pairs_per_second(),
        report.steps.first().map_or(f64::NAN, |s| s.loss),
        report.steps.last().map_or(f64::NAN, |s| s.loss),
        a.out.display()
    );
    Ok(())
}

/// The pairs of every source given, duplicates dropped, hard negatives mined when asked.
#[allow(clippy::print_stderr)]
fn gather(a: &TrainArgs) -> Result<Vec<RetrievalPair>> {
    let mut pairs = Vec::new();
    if let Some(dir) = &a.bioasq {
        let batches = kailin_question::read_bioasq_batches(dir)?;
        let held: Vec<&str> = a.held_out.iter().map(String::as_str).collect();
        let split = kailin_corpus::bioasq_pairs(&batches, &held)?;
        eprintln!(
            "BioASQ: {} pairs from {} batches; held out {} questions of {:?}; dropped {} repeated questions, {} held-out snippets, {} empty questions",
            split.train.len(),
            batches.len() - split.held_out_files.len(),
            split.held_out.len(),
            split.held_out_files,
            split.repeats,
            split.held_out_snippets,
            split.empty
        );
        pairs.extend(split.train);
    }
    if let Some(file) = &a.pubmedqa {
        let test = match &a.pubmedqa_test {
            Some(t) => t.clone(),
            None => file.with_file_name("test_ground_truth.json"),
        };
        if !test.is_file() {
            bail!("{}: no PubMedQA test split to leave out (give --pubmedqa-test)", test.display());
        }
        let excluded: BTreeSet<String> = kailin_corpus::read_pubmedqa_test_ids(&test)?;
        let (records, _) = kailin_corpus::read_pubmedqa(file, false)?;
        let (found, left_out) = kailin_corpus::pubmedqa_pairs(&records, &excluded);
        eprintln!("PubMedQA: {} pairs ({left_out} records of the test split or empty left out)", found.len());
        pairs.extend(found);
    }
    for file in &a.pairs {
        let data = kailin_train::read_pairs_dataset(file)?;
        eprintln!("{}: {} pairs", file.display(), data.records.len());
        pairs.extend(data.records.into_iter().map(|r| r.record));
    }
    if pairs.is_empty() {
        bail!("no pairs: give --bioasq, --pubmedqa or --pairs");
    }
    let prepared = kailin_train::prepare_pairs(pairs, a.limit, a.hard_negatives, a.seed)?;
    if prepared.duplicates > 0 {
        eprintln!("{} duplicate pairs skipped", prepared.duplicates);
    }
    if let Some(limit) = a.limit {
        eprintln!("{} pairs sampled (--limit {limit}, --seed {})", prepared.pairs.len(), a.seed);
    }
    if a.hard_negatives > 0 {
        eprintln!("{} hard negatives mined with BM25", prepared.mined);
    }
    Ok(prepared.pairs)
}
