//! One PubMedQA abstract, two questions (its own, and another abstract's), the contexts each
//! question retrieves, and the MeSH rule's preference with its reasons, printed for a person.
//!
//! ```text
//! cargo run --release --example explain_preference              # first PQA-L abstract
//! cargo run --release --example explain_preference -- 16418930  # another PMID
//! ```
//!
//! It reads PubMedQA PQA-L and MeSH 2024 from `../shared/data` (or `$KAILIN_DATA`), and falls
//! back to the invented fixtures (`fixtures/corpus/pubmedqa.json`, `fixtures/mesh/mini.tsv`).
//! Contexts come from BM25 over the PQA-L abstracts, so the example needs no encoder; `kailin
//! evaluate rule` uses the dense retriever by default.
#![allow(clippy::print_stdout)]

use anyhow::{Context, Result, bail};
use kailin_evaluator::{Corpus, Evaluator, Explanation, Item, RuleEvaluator, RuleOptions};
use kailin_examples::{data_dir, default_mesh_path, short};
use kailin_mesh::Mesh;
use kailin_retrieval::Bm25Retriever;

fn main() -> Result<()> {
    let real = data_dir().join("pubmedqa/ori_pqal.json");
    let path = if real.exists() {
        real
    } else {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/corpus/pubmedqa.json")
    };
    let (records, _) = kailin_corpus::read_pubmedqa(&path, false).with_context(|| path.display().to_string())?;
    if records.len() < 2 {
        bail!("{}: need at least two abstracts", path.display());
    }
    let mesh_path = default_mesh_path();
    let mesh = Mesh::load(&mesh_path).with_context(|| mesh_path.display().to_string())?;
    let i = match std::env::args().nth(1) {
        Some(pmid) => records.iter().position(|r| r.pmid == pmid).with_context(|| format!("no PMID {pmid}"))?,
        None => 0,
    };
    // Another abstract's question: half the corpus away.
    let j = (i + records.len() / 2) % records.len();
    let corpus = Corpus::new(records.iter().map(|r| r.document()))?;
    let bm25 = Bm25Retriever::build(corpus.documents().iter().map(|d| (d.id.as_str(), d.text.as_str())))?;
    let options = RuleOptions { exclude_source: true, ..Default::default() };
    let rule = RuleEvaluator::new(&mesh, &corpus, bm25, options)?;

    let doc = corpus.documents()[i].clone();
    let questions = [records[i].question.as_str(), records[j].question.as_str()];
    println!("MeSH from {}; {} abstracts from {}\n", mesh_path.display(), corpus.len(), path.display());
    println!("Document PMID {}: {}", doc.id, short(&doc.text.replace('\n', " "), 300));
    let judgement = rule.evaluate(&[Item { doc: &doc, questions }])?.remove(0);
    let Explanation::Rule(why) = &judgement.explanation else { bail!("no rule explanation") };
    let names = |terms: &[kailin_evaluator::Term]| terms.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join("; ");
    println!("  its MeSH terms (check tags left out): {}", names(&why.document_terms));
    for (side, (question, cand)) in questions.iter().zip(&why.candidates).enumerate() {
        let letter = ["A", "B"][side];
        let whose = if side == 0 { "its own question" } else { "another abstract's" };
        println!("\n{letter} ({whose}): {question}");
        for c in &cand.contexts {
            let text = corpus.get(&c.doc_id).map(|d| short(&d.text.replace('\n', " "), 90)).unwrap_or_default();
            let sim = c.similarity.map_or("no terms".to_owned(), |s| format!("similarity {s:.3}"));
            println!("  context PMID {} ({sim}): {text}", c.doc_id);
            println!("    terms: {}", names(&c.terms));
        }
        println!("  pairs that contributed most:");
        for p in &cand.top_pairs {
            let mica = p.mica.as_ref().map_or("no common ancestor".to_owned(), |m| m.name.clone());
            println!("    {} × {} → {} (IC {:.3})", p.document.name, p.context.name, mica, p.score);
        }
        match judgement.scores[side] {
            Some(s) => println!("  score (mean of the contexts' similarities): {s:.4}"),
            None => println!("  no score: no context has MeSH terms"),
        }
    }
    match judgement.preferred {
        Some(w) => println!(
            "\nPreferred: {} (margin {:.4}): its context is closer to the document in MeSH.",
            ["A", "B"][w],
            judgement.margin().unwrap_or(0.0)
        ),
        None => println!("\nNo preference: {}", judgement.outcome.as_str()),
    }
    Ok(())
}
