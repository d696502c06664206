//! Contrastive fine-tuning of a tiny sentence encoder: it learns the pairs, is seeded,
//! resumes exactly from a checkpoint, and refuses what it cannot train on.
#![allow(missing_docs, clippy::unwrap_used)]

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::prelude::*;
use kailin_retrieval::{BertConfig, BertTokenizer, Encoder, Pooling};
use kailin_train::{CheckpointOptions, EncoderTrainOptions, RetrievalPair, dedup_pairs, train_encoder};

type A = Autodiff<Flex>;

const VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "what", "is", "the", "gene", "liver", "cell", "protein", "heart", "lung",
    "kidney", "binds", "causes", "disease", "of", "in", "a", "?",
];

fn encoder(dir: &std::path::Path) -> Encoder<A> {
    let vocab = dir.join("vocab.txt");
    std::fs::write(&vocab, VOCAB.join("\n")).unwrap();
    let tokenizer = BertTokenizer::from_vocab(&vocab, true).unwrap();
    let config = BertConfig::new(VOCAB.len(), 16, 2, 2, 32, 24);
    // One model for every run of a test, so they start from the same weights.
    static BERT: std::sync::OnceLock<kailin_retrieval::Bert<Flex>> = std::sync::OnceLock::new();
    let bert = BERT.get_or_init(|| {
        Flex::seed(&Default::default(), 3);
        // burn draws a parameter when first used, separately in each clone: draw them once.
        let record = config.init::<Flex>(&Default::default()).into_record();
        config.init::<Flex>(&Default::default()).load_record(record)
    });
    let bert = <kailin_retrieval::Bert<A> as AutodiffModule<A>>::from_inner(bert.clone());
    Encoder::from_parts(bert, tokenizer, Pooling::Mean, true, "tiny".into(), Default::default()).unwrap()
}

fn pairs() -> Vec<RetrievalPair> {
    let organs = ["liver", "heart", "lung", "kidney"];
    let mut out = Vec::new();
    for o in organs {
        out.push(RetrievalPair {
            query: format!("what is the disease of the {o} ?"),
            positive: format!("a {o} disease causes {o} cell disease"),
            negatives: vec![],
        });
        out.push(RetrievalPair {
            query: format!("what protein binds the {o} gene ?"),
            positive: format!("the protein binds a gene in {o} cell"),
            negatives: vec![format!("a {o} disease causes {o} cell disease")],
        });
    }
    out
}

fn options() -> EncoderTrainOptions {
    EncoderTrainOptions {
        epochs: 8,
        batch_size: 4,
        hard_negatives: 1,
        lr: 5e-3,
        warmup_ratio: 0.1,
        seed: 5,
        ..Default::default()
    }
}

/// The in-batch retrieval accuracy over all pairs at once.
fn accuracy(encoder: &Encoder<A>, pairs: &[RetrievalPair]) -> f64 {
    let q = encoder.encode(&pairs.iter().map(|p| p.query.as_str()).collect::<Vec<_>>()).unwrap();
    let p = encoder.encode(&pairs.iter().map(|p| p.positive.as_str()).collect::<Vec<_>>()).unwrap();
    let scores = q.dot(&p.t());
    let right =
        (0..pairs.len()).filter(|&i| (0..pairs.len()).all(|j| j == i || scores[[i, j]] < scores[[i, i]])).count();
    right as f64 / pairs.len() as f64
}

#[test]
fn training_raises_retrieval_and_is_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = pairs();
    let before = accuracy(&encoder(dir.path()), &pairs);
    let (trained, report) = train_encoder(encoder(dir.path()), &pairs, &options(), |_| {}).unwrap();
    let after = accuracy(&trained, &pairs);
    assert!(after > before && after >= 0.75, "accuracy {before} -> {after}");
    let first = report.steps.first().unwrap().loss;
    let last = report.steps.last().unwrap().loss;
    assert!(last < first, "loss {first} -> {last}");
    assert_eq!(report.pairs, 8);
    assert!(report.pairs_per_second() > 0.0);
    assert!(trained.identity().starts_with("bert-unsaved/"));
    let (again, _) = train_encoder(encoder(dir.path()), &pairs, &options(), |_| {}).unwrap();
    assert_eq!(trained.encode(&["the liver"]).unwrap(), again.encode(&["the liver"]).unwrap());
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = pairs();
    let (whole, whole_report) = train_encoder(encoder(dir.path()), &pairs, &options(), |_| {}).unwrap();
    let ck = CheckpointOptions::new(dir.path().join("ck"), 2);
    let first = EncoderTrainOptions { checkpoint: Some(ck.clone()), stop_after: Some(5), ..options() };
    let (_, part) = train_encoder(encoder(dir.path()), &pairs, &first, |_| {}).unwrap();
    assert_eq!(part.steps.len(), 5);
    let rest = EncoderTrainOptions { checkpoint: Some(ck), ..options() };
    let mut seen = Vec::new();
    let (resumed, report) = train_encoder(encoder(dir.path()), &pairs, &rest, |p| seen.push(p.step)).unwrap();
    assert_eq!(seen.first(), Some(&6), "the resumed run starts after the checkpoint");
    let losses = |r: &kailin_train::EncoderTrainReport| r.steps.iter().map(|s| s.loss).collect::<Vec<_>>();
    assert_eq!(losses(&report), losses(&whole_report));
    assert_eq!(resumed.encode(&["the liver"]).unwrap(), whole.encode(&["the liver"]).unwrap());
    // Other options over the same checkpoints: refused, not resumed.
    let other = EncoderTrainOptions { temperature: 0.1, ..rest_options(dir.path()) };
    let err = train_encoder(encoder(dir.path()), &pairs, &other, |_| {}).unwrap_err();
    assert!(err.to_string().contains("temperature"), "{err}");
}

fn rest_options(dir: &std::path::Path) -> EncoderTrainOptions {
    EncoderTrainOptions { checkpoint: Some(CheckpointOptions::new(dir.join("ck"), 2)), ..options() }
}

#[test]
fn bad_input_is_an_error_or_a_counted_skip() {
    let dir = tempfile::tempdir().unwrap();
    let err = train_encoder(encoder(dir.path()), &[], &options(), |_| {}).unwrap_err();
    assert!(err.to_string().contains("no pairs"), "{err}");
    let one = vec![pairs().remove(0)];
    let err = train_encoder(encoder(dir.path()), &one, &options(), |_| {}).unwrap_err();
    assert!(err.to_string().contains("no batch"), "{err}");
    let bad = EncoderTrainOptions { batch_size: 1, ..options() };
    assert!(train_encoder(encoder(dir.path()), &pairs(), &bad, |_| {}).is_err());
    let mut empty = pairs();
    empty[3].positive = "   ".into();
    let err = train_encoder(encoder(dir.path()), &empty, &options(), |_| {}).unwrap_err();
    assert!(err.to_string().contains("pair 3"), "{err}");
    let mut twice = pairs();
    twice.push(twice[0].clone());
    twice.push(RetrievalPair { query: format!(" {} ", twice[1].query), ..twice[1].clone() });
    let (kept, dropped) = dedup_pairs(twice);
    assert_eq!((kept.len(), dropped), (8, 2));
    // A file of pairs: an empty text is an error naming the line.
    let file = dir.path().join("pairs.jsonl");
    std::fs::write(&file, "{\"query\": \"q?\", \"positive\": \"p\"}\n{\"query\": \"\", \"positive\": \"p\"}\n")
        .unwrap();
    let err = kailin_train::read_pairs_dataset(&file).unwrap_err();
    assert!(err.to_string().contains(":2:") && err.to_string().contains("query"), "{err}");
}
