//! The rule on real data: every PubMedQA PQA-L abstract's own question against another
//! abstract's, contexts by BM25 over the PQA-L abstracts, MeSH 2024 (`$KAILIN_DATA`, default
//! `../shared/data`). The full measurement (dense retrieval, BioASQ snippets in the corpus,
//! every option) is `cargo xtask bench evaluator`; this guards the defaults against regression.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::PathBuf;

use kailin_core::SplitMix64;
use kailin_evaluator::{Corpus, Evaluator, Item, RuleEvaluator, RuleOptions};
use kailin_mesh::Mesh;
use kailin_retrieval::Bm25Retriever;

fn data() -> PathBuf {
    std::env::var_os("KAILIN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

#[test]
#[ignore = "needs ../shared/data (MeSH 2024, PubMedQA PQA-L)"]
fn the_rule_prefers_each_abstracts_own_question() {
    let data = data();
    let mesh = Mesh::load(data.join("mesh/mesh2024.tsv")).unwrap();
    let (records, _) = kailin_corpus::read_pubmedqa(data.join("pubmedqa/ori_pqal.json"), false).unwrap();
    assert_eq!(records.len(), 1000);
    let corpus = Corpus::new(records.iter().map(|r| r.document())).unwrap();
    let mut rng = SplitMix64::new(13);
    let others: Vec<usize> = (0..records.len())
        .map(|i| {
            let j = rng.below(records.len() as u64 - 1) as usize;
            if j >= i { j + 1 } else { j }
        })
        .collect();
    let items: Vec<Item<'_>> = corpus
        .documents()
        .iter()
        .zip(&others)
        .enumerate()
        .map(|(i, (doc, &j))| Item { doc, questions: [records[i].question.as_str(), records[j].question.as_str()] })
        .collect();
    let mut shares = Vec::new();
    for exclude_source in [false, true] {
        let bm25 = Bm25Retriever::build(corpus.documents().iter().map(|d| (d.id.as_str(), d.text.as_str()))).unwrap();
        let options = RuleOptions { exclude_source, ..Default::default() };
        let rule = RuleEvaluator::new(&mesh, &corpus, bm25, options).unwrap();
        let judged = rule.evaluate(&items).unwrap();
        let won = judged.iter().filter(|j| j.preferred == Some(0)).count();
        shares.push(won as f64 / items.len() as f64);
    }
    eprintln!(
        "own question preferred: {:.1}% (source allowed), {:.1}% (excluded)",
        100.0 * shares[0],
        100.0 * shares[1]
    );
    assert!(shares[0] >= 0.98 && shares[1] >= 0.88, "{shares:?}");
}
