//! One real abstract in; both question agents' candidate questions and an answer out: the
//! generation end of m-KAILIN on one document, on the CPU.
//!
//! ```text
//! cargo xtask fetch-models
//! cargo run --release --example distill_one                                  # base model as both agents
//! cargo run --release --example distill_one -- --domain DIR --general DIR    # from `kailin question train`
//! ```
//!
//! The abstract is the first of BC5CDR's (`../shared/data`, or `$KAILIN_DATA`; the invented
//! fixture corpus when the data is absent). Without `--domain` / `--general` both agents are
//! SmolLM2-135M-Instruct as shipped (the paper's "same backend" ablation); the answer agent is
//! that model too, with the abstract as the question's context (in the pipeline the context is
//! retrieved).
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::backend::Flex;
use clap::Parser;
use kailin_answer::{AnswerGenerator, LocalAnswerer, LocalOptions};
use kailin_core::{CptRecord, Provenance};
use kailin_examples::{data_dir, short};
use kailin_question::{GenerationOptions, LocalGenerator, QuestionGenerator};

#[derive(Parser)]
struct Args {
    /// The domain agent (a model directory or GGUF); default: the shipped SmolLM2.
    #[arg(long)]
    domain: Option<PathBuf>,
    /// The general agent; default: the shipped SmolLM2.
    #[arg(long)]
    general: Option<PathBuf>,
    /// Candidate questions per agent.
    #[arg(long, default_value_t = 2)]
    n: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let real = data_dir().join("bc5cdr/CDR_TrainingSet.PubTator.txt");
    let doc = if real.exists() {
        let mut stream = kailin_corpus::DocumentStream::open(&real, kailin_corpus::Source::Pubtator, false)?;
        stream.next().context("no abstract")??
    } else {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/corpus/documents.jsonl");
        kailin_core::read_jsonl(&path)?.into_iter().next().context("no document")?
    };
    println!("Abstract {}: {}\n{}\n", doc.id, doc.title, short(&doc.text, 400));
    let base = kailin_lm::smollm2_gguf().context("no SmolLM2 GGUF: run `cargo xtask fetch-models`")?;
    let device = Default::default();
    let options = GenerationOptions { max_document_chars: 1500, ..Default::default() };
    for (name, path) in [
        ("domain", args.domain.unwrap_or_else(|| base.clone())),
        ("general", args.general.unwrap_or_else(|| base.clone())),
    ] {
        let (model, _, tokenizer) =
            kailin_lm::load::<Flex>(&path, 2048, &device).with_context(|| path.display().to_string())?;
        let agent = LocalGenerator::new(model, tokenizer, path.display().to_string(), options.clone())?
            .with_agent(format!("question-generator/{name}"));
        let out = agent.generate(std::slice::from_ref(&doc), args.n)?;
        let t = &out.tally;
        println!(
            "{name} agent ({}): {} of {} generations kept ({} not a question, {} copies, {} duplicates, {} empty)",
            path.display(),
            t.kept,
            t.generated,
            t.not_a_question,
            t.copies_document,
            t.duplicates,
            t.empty
        );
        for q in &out.questions {
            println!("  {}", q.text);
        }
    }
    let (model, _, tokenizer) = kailin_lm::load::<Flex>(&base, 2048, &device)?;
    let answerer = LocalAnswerer::new(
        model,
        tokenizer,
        base.display().to_string(),
        LocalOptions { max_new: 96, ..Default::default() },
    )?;
    let record = CptRecord {
        id: doc.id.clone(),
        question: format!("What does the study \"{}\" report?", doc.title),
        context: kailin_core::Context { doc_ids: vec![doc.id.clone()], text: short(&doc.text, 1500) },
        provenance: Provenance { agent: "example".into(), ..Default::default() },
    };
    let answer = answerer.answer(std::slice::from_ref(&record)).remove(0)?;
    println!("\nAnswer agent, to \"{}\":\n  {}", record.question, answer.text.trim());
    Ok(())
}
