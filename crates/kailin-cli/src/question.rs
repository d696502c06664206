//! `kailin question generate|train|score`: thin subcommands over `kailin-question`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::Backend;
use clap::{Args, Subcommand};
use kailin_core::{Document, JsonlReader, JsonlWriter, Question, TextExample};
use kailin_question::{
    GenerationOptions, HELD_OUT_BATCHES, LocalGenerator, PromptTemplate, QuestionGenerator, Tally, default_template,
    read_bioasq_batches, rouge_l, sft_data, split_bioasq, words,
};

use crate::lm::Device;

/// The question-generation agents.
#[derive(Debug, Subcommand)]
pub(crate) enum QuestionCmd {
    /// Write candidate questions for documents (kailin-core `Document` lines in, `Question`
    /// lines out, each with its `doc_id`); filtered generations are counted on stderr.
    Generate(GenerateArgs),
    /// Fine-tune a question generator on BioASQ (Eq. 1): the general agent, or with
    /// `--domain-cpt` the domain agent (continued pre-training on abstracts first).
    Train(TrainArgs),
    /// Measure generated questions: ROUGE-L against gold questions, and the overlap with
    /// another agent's questions for the same documents.
    Score(ScoreArgs),
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// The generator: a GGUF file or a Hugging Face directory (e.g. from `question train`).
    #[arg(long)]
    model: PathBuf,
    /// Documents (kailin-core `Document` JSON lines).
    #[arg(long)]
    documents: PathBuf,
    /// Output questions (kailin-core `Question` JSON lines).
    #[arg(long)]
    out: PathBuf,
    /// Candidate questions per document (fewer are kept when generations are filtered).
    #[arg(long, default_value_t = 2, value_parser = crate::args::at_least_one)]
    n: usize,
    /// Sampling seed (each document and sample gets its own seed derived from it).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sampling temperature (0: greedy; then one question per document).
    #[arg(long, default_value_t = 0.7, value_parser = crate::args::non_negative_f32)]
    temperature: f32,
    /// Nucleus sampling threshold (1: off).
    #[arg(long, default_value_t = 0.9, value_parser = crate::args::unit_open_closed_f32)]
    top_p: f32,
    /// Most new tokens per question.
    #[arg(long, default_value_t = 64, value_parser = crate::args::at_least_one)]
    max_new: usize,
    /// Prompts per batch.
    #[arg(long, default_value_t = 16, value_parser = crate::args::at_least_one)]
    batch_size: usize,
    /// Cut each document's text to this many characters.
    #[arg(long, default_value_t = 4000, value_parser = crate::args::at_least_one)]
    max_document_chars: usize,
    /// Sample a filtered generation (empty, not a question, a copy) again with the next
    /// derived seed up to this many times (0 to 100), at `--resample-temperature`.
    #[arg(long, default_value_t = 3, value_parser = crate::args::retries)]
    resample: usize,
    /// The temperature of those resamples, a greedy generator's too (0: none).
    #[arg(long, default_value_t = 0.7, value_parser = crate::args::non_negative_f32)]
    resample_temperature: f32,
    /// The prompt template (Jinja; sees `title`, `text`, `id`, `mesh`); default: the built-in
    /// `question.jinja`.
    #[arg(long)]
    prompt: Option<PathBuf>,
    /// The agent's name in provenance and question ids.
    #[arg(long, default_value = "question-generator")]
    agent: String,
    /// Write the counts (documents, generated, kept, filtered by reason) as JSON here.
    #[arg(long)]
    stats: Option<PathBuf>,
    /// Compute device.
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
    /// Longest prompt plus question, in tokens.
    #[arg(long, default_value_t = 2048, value_parser = crate::args::positions)]
    max_positions: usize,
}

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// BioASQ golden batches: a directory searched for `*.json` files.
    #[arg(long, env = "KAILIN_BIOASQ", default_value = "../shared/data/bioasq")]
    bioasq: PathBuf,
    /// File names of the batches kept out for evaluation (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = HELD_OUT_BATCHES.map(String::from))]
    held_out: Vec<String>,
    /// Abstracts (kailin-core `Document` lines) for continued pre-training before the BioASQ
    /// fine-tuning: the domain agent. Without it, the general agent.
    #[arg(long)]
    domain_cpt: Option<PathBuf>,
    /// Epochs of the continued pre-training.
    #[arg(long, default_value_t = 1, value_parser = crate::args::at_least_one)]
    cpt_epochs: usize,
    /// Train on at most this many BioASQ questions (the first, in file order).
    #[arg(long, value_parser = crate::args::at_least_one)]
    limit: Option<usize>,
    /// Evaluate on at most this many held-out questions.
    #[arg(long, default_value_t = 64, value_parser = crate::args::at_least_one)]
    eval_limit: usize,
    /// Cut each snippet document to this many characters in the prompts.
    #[arg(long, default_value_t = 1200, value_parser = crate::args::at_least_one)]
    max_document_chars: usize,
    /// The prompt template (as for `generate`).
    #[arg(long)]
    prompt: Option<PathBuf>,
    #[command(flatten)]
    train: crate::train::CommonArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ScoreArgs {
    /// Generated questions (kailin-core `Question` lines with `doc_id`).
    #[arg(long)]
    questions: PathBuf,
    /// Gold questions (`Question` lines with `doc_id`, e.g. `held_out_questions.jsonl` from
    /// `question train`).
    #[arg(long)]
    gold: Option<PathBuf>,
    /// Another agent's questions for the same documents: how many are (near-)identical.
    #[arg(long)]
    other: Option<PathBuf>,
    /// ROUGE-L at or above which two questions count as near-identical.
    #[arg(long, default_value_t = 0.8, value_parser = crate::args::unit_closed)]
    near: f64,
}

pub(crate) fn run(cmd: QuestionCmd) -> Result<()> {
    match cmd {
        QuestionCmd::Generate(a) => match a.device {
            Device::Cpu => kailin_lm::on_cpu_threads(|| generate::<burn::backend::Flex>(a, &Default::default())),
            #[cfg(feature = "cuda")]
            Device::Cuda => generate::<burn::backend::Cuda>(a, &kailin_lm::cuda_device(0)?),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda => bail!("this kailin was built without CUDA (cargo build -p kailin-cli --features cuda)"),
        },
        QuestionCmd::Train(a) => train(a),
        QuestionCmd::Score(a) => score(a),
    }
}

fn template(path: Option<&Path>) -> Result<PromptTemplate> {
    Ok(match path {
        Some(p) => PromptTemplate::from_file(p)?,
        None => default_template(),
    })
}

fn generate<B: Backend>(a: GenerateArgs, device: &B::Device) -> Result<()> {
    let mut inputs: Vec<(&str, &Path)> = vec![("--documents", &a.documents), ("--model", &a.model)];
    if let Some(p) = &a.prompt {
        inputs.push(("--prompt", p));
    }
    let mut outputs: Vec<(&str, &Path)> = vec![("--out", &a.out)];
    if let Some(p) = &a.stats {
        outputs.push(("--stats", p));
    }
    kailin_core::check_outputs(&inputs, &outputs)?;
    // Question ids derive from document ids: two documents with one id would give two
    // questions one id.
    let documents = kailin_core::read_jsonl_unique(&a.documents, |d: &Document| &d.id)?;
    let (model, _, tokenizer) = kailin_lm::load::<B>(&a.model, a.max_positions, device)?;
    let options = GenerationOptions {
        temperature: a.temperature,
        top_p: (a.top_p < 1.0).then_some(a.top_p),
        top_k: None,
        max_new: a.max_new,
        seed: a.seed,
        batch_size: a.batch_size,
        max_document_chars: a.max_document_chars,
        resample: a.resample,
        resample_temperature: a.resample_temperature,
    };
    let generator = LocalGenerator::new(model, tokenizer, a.model.display().to_string(), options)?
        .with_template(template(a.prompt.as_deref())?)
        .with_agent(&a.agent);
    let mut out = JsonlWriter::create(&a.out)?;
    let mut tally = Tally::default();
    let bar = crate::progress::bar(documents.len() as u64, "documents");
    let per_call = (a.batch_size / a.n).max(1);
    let started = std::time::Instant::now();
    for chunk in documents.chunks(per_call) {
        let generated = generator.generate(chunk, a.n)?;
        for q in &generated.questions {
            out.write(q)?;
        }
        tally.add(&generated.tally);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    out.finish()?;
    let seconds = started.elapsed().as_secs_f64();
    report(&tally, seconds, a.stats.as_deref())
}

#[allow(clippy::print_stderr)]
fn report(tally: &Tally, seconds: f64, stats: Option<&Path>) -> Result<()> {
    let json = serde_json::json!({
        "tally": tally,
        "well_formed": tally.well_formed(),
        "seconds": seconds,
        "questions_per_second": tally.kept as f64 / seconds.max(1e-9),
        "generations_per_second": tally.generated as f64 / seconds.max(1e-9),
    });
    eprintln!(
        "{} documents ({} empty, skipped): {} generations, {} kept; filtered: {} empty, {} not a question, {} copies of the document, {} duplicates; {:.2} questions/s",
        tally.documents,
        tally.empty_documents,
        tally.generated,
        tally.kept,
        tally.empty,
        tally.not_a_question,
        tally.copies_document,
        tally.duplicates,
        tally.kept as f64 / seconds.max(1e-9)
    );
    if let Some(path) = stats {
        kailin_core::write_atomic(path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    }
    Ok(())
}

fn train(a: TrainArgs) -> Result<()> {
    let out = a.train.out().to_path_buf();
    let mut inputs: Vec<(&str, &Path)> = vec![("--bioasq", &a.bioasq), ("--base", a.train.model())];
    if let Some(p) = &a.domain_cpt {
        inputs.push(("--domain-cpt", p));
    }
    if let Some(p) = &a.prompt {
        inputs.push(("--prompt", p));
    }
    kailin_core::check_outputs(&inputs, &[("--out", &out)])?;
    // The inputs first: a run refused for its inputs leaves no directory behind.
    let batches = read_bioasq_batches(&a.bioasq)
        .with_context(|| format!("reading the BioASQ directory {}", a.bioasq.display()))?;
    let held: Vec<&str> = a.held_out.iter().map(String::as_str).collect();
    let split = split_bioasq(&batches, &held)?;
    let _out = a.train.open_out("kailin question train")?;
    let data_dir = out.join("data");
    let cpt_out = out.join("cpt");
    let start = if a.domain_cpt.is_some() { cpt_out.clone() } else { a.train.model().to_path_buf() };
    let (train_path, eval_path) = (data_dir.join("train.jsonl"), data_dir.join("eval.jsonl"));
    // Refused before anything is written: checkpoints of a run from another model.
    let cpt = a.train.retarget(a.train.model().to_path_buf(), cpt_out.clone(), None);
    if a.domain_cpt.is_some() {
        if a.train.forced() && cpt_out.exists() {
            std::fs::remove_dir_all(&cpt_out).with_context(|| format!("removing {}", cpt_out.display()))?;
        }
        crate::train::check_resumable(kailin_train::Objective::Cpt, &data_dir.join("cpt.jsonl"), &cpt)?;
    } else {
        crate::train::check_resumable(
            kailin_train::Objective::Sft,
            &train_path,
            &a.train.retarget(start.clone(), out.clone(), None),
        )?;
    }
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let template = template(a.prompt.as_deref())?;
    let (train, eval) = sft_data(&split, &template, a.limit.unwrap_or(usize::MAX), a.eval_limit, a.max_document_chars)?;
    crate::train::write_training_data(&a.train, &train_path, &train)?;
    crate::train::write_training_data(&a.train, &eval_path, &eval)?;
    kailin_core::write_jsonl(data_dir.join("held_out_documents.jsonl"), split.held_out.iter().map(|(d, _)| d))?;
    kailin_core::write_jsonl(data_dir.join("held_out_questions.jsonl"), split.held_out.iter().map(|(_, q)| q))?;
    tracing::info!(
        train = train.len(),
        held_out = split.held_out.len(),
        without_snippets = split.without_snippets,
        repeats = split.repeats,
        "BioASQ split"
    );
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "BioASQ: {} training questions, {} held out ({}), {} without snippets, {} repeats of held-out or earlier questions dropped",
            train.len(),
            split.held_out.len(),
            a.held_out.join(", "),
            split.without_snippets,
            split.repeats
        );
    }
    // The domain agent first learns the abstracts. A rerun resumes from (or, when finished,
    // re-exports) the continued pre-training's own checkpoints, which refuse a change of base
    // model, data or options.
    if let Some(abstracts) = &a.domain_cpt {
        let texts: Vec<TextExample> = JsonlReader::<Document>::open(abstracts)?
            .map(|d| d.map(|d| TextExample::from_document(&d)))
            .collect::<kailin_core::Result<_>>()?;
        if texts.is_empty() {
            bail!("{}: no documents for the continued pre-training", abstracts.display());
        }
        let cpt_path = data_dir.join("cpt.jsonl");
        crate::train::write_training_data(&cpt, &cpt_path, &texts)?;
        let mut cpt = cpt;
        cpt.set_epochs(a.cpt_epochs);
        crate::train::cpt_on(cpt, cpt_path)?;
    }
    crate::train::sft_on(a.train.retarget(start, out, Some(eval_path)), train_path)
}

/// The questions of a file, grouped by `doc_id` (questions without one are an error).
fn by_document(path: &Path) -> Result<HashMap<String, Vec<String>>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    let mut reader = JsonlReader::<Question>::open(path)?;
    while let Some(q) = reader.next() {
        let q = q?;
        let Some(doc) = q.doc_id else {
            bail!("{}:{}: question {:?} has no doc_id", path.display(), reader.line(), q.id);
        };
        map.entry(doc).or_default().push(q.text);
    }
    Ok(map)
}

#[allow(clippy::print_stdout)]
fn score(a: ScoreArgs) -> Result<()> {
    let generated = by_document(&a.questions)?;
    let mut report = serde_json::Map::new();
    report.insert("documents_with_questions".into(), generated.len().into());
    report.insert("questions".into(), generated.values().map(Vec::len).sum::<usize>().into());
    if let Some(gold) = &a.gold {
        let gold = by_document(gold)?;
        let (mut mean_sum, mut best_sum, mut covered) = (0.0, 0.0, 0usize);
        for (doc, golds) in &gold {
            let Some(cands) = generated.get(doc) else { continue };
            covered += 1;
            let scores: Vec<f64> =
                cands.iter().map(|c| golds.iter().map(|g| rouge_l(c, g)).fold(0.0, f64::max)).collect();
            mean_sum += scores.iter().sum::<f64>() / scores.len() as f64;
            best_sum += scores.iter().copied().fold(0.0, f64::max);
        }
        let n = gold.len() as f64;
        // Documents without any kept question score 0: a generator cannot win by abstaining.
        // A score over nothing is no score: null, with a warning.
        report.insert("gold_documents".into(), gold.len().into());
        report.insert("covered".into(), covered.into());
        if covered == 0 {
            tracing::warn!(
                gold = gold.len(),
                "no gold document has a generated question (are the doc_ids of --questions and --gold the same ones?): ROUGE-L is null"
            );
            report.insert("rouge_l_mean".into(), serde_json::Value::Null);
            report.insert("rouge_l_best".into(), serde_json::Value::Null);
        } else {
            report.insert("rouge_l_mean".into(), (mean_sum / n).into());
            report.insert("rouge_l_best".into(), (best_sum / n).into());
        }
    }
    if let Some(other) = &a.other {
        let other = by_document(other)?;
        let (mut pairs, mut identical, mut near) = (0usize, 0usize, 0usize);
        for (doc, mine) in &generated {
            let Some(theirs) = other.get(doc) else { continue };
            for x in mine {
                for y in theirs {
                    pairs += 1;
                    identical += usize::from(words(x) == words(y));
                    near += usize::from(rouge_l(x, y) >= a.near);
                }
            }
        }
        report.insert("cross_pairs".into(), pairs.into());
        if pairs == 0 {
            tracing::warn!("no document has questions in both files: the overlap shares are null");
        }
        let share = |k: usize| if pairs == 0 { serde_json::Value::Null } else { (k as f64 / pairs as f64).into() };
        report.insert("identical_share".into(), share(identical));
        report.insert("near_identical_share".into(), share(near));
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
