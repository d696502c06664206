//! Dense retrieval end to end: embed the invented abstracts of `fixtures/text/abstracts.txt`
//! with all-MiniLM-L6-v2 into a store, then find the best context for a few questions.
//!
//! `cargo xtask fetch-models && cargo run --release --example dense_retrieval [MODEL_DIR]`
#![allow(clippy::print_stdout)]

use anyhow::{Context, Result};
use burn::backend::Flex;
use kailin_retrieval::{DenseRetriever, EncoderBuilder, ExactSearch, Retriever, StoreBuilder, build_store};

fn main() -> Result<()> {
    let model = match std::env::args().nth(1) {
        Some(dir) => dir.into(),
        None => kailin_lm::models_dir().context("no model cache directory: pass MODEL_DIR")?.join("all-minilm-l6-v2"),
    };
    let encoder = EncoderBuilder::new(&model)
        .build::<Flex>(&Default::default())
        .with_context(|| format!("{} (run `cargo xtask fetch-models`)", model.display()))?;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/text/abstracts.txt"))?;
    let docs = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| Ok::<_, std::io::Error>((format!("abstract-{i}"), l.to_owned())));
    let dir = std::env::temp_dir().join("kailin-dense-retrieval-example");
    let _ = std::fs::remove_dir_all(&dir);
    let store = build_store(&encoder, StoreBuilder::new(&dir, encoder.dim()), docs, |_| {})?;
    println!("{} abstracts embedded by {}", store.len(), encoder.identity());
    let retriever = DenseRetriever::new(encoder, store, ExactSearch::new(0)?)?;
    let questions = ["Which drug treats Parkinson disease?", "What limits the dose of cisplatin?"];
    for (q, hits) in questions.iter().zip(retriever.retrieve(&questions, 2)?) {
        println!("{q}");
        for hit in hits {
            println!("  {:.3}  {}", hit.score, hit.id);
        }
    }
    Ok(())
}
