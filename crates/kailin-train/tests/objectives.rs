//! The three objectives on tiny random models on the CPU: losses fall, DPO starts at ln 2 and
//! raises the margin, prompt tokens are never learned, packed texts stay apart.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::prelude::*;
use kailin_lm::{ChatMessage, Llama, LlamaConfig};
use kailin_train::*;

type A = Autodiff<Flex>;

/// Bytes as tokens (3 + byte % 60), BOS 1, EOS 2, and a plain chat format.
struct Bytes;

impl TextEncoder for Bytes {
    fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>> {
        let bos = add_bos.then_some(1);
        Ok(bos.into_iter().chain(text.bytes().map(|b| 3 + u32::from(b) % 60)).collect())
    }
    fn eos(&self) -> Option<u32> {
        Some(2)
    }
    fn render_chat(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Option<Result<String>> {
        let mut s: String = messages.iter().map(|m| format!("{}: {}\n", m.role, m.content)).collect();
        if add_generation_prompt {
            s.push_str("assistant: ");
        }
        Some(Ok(s))
    }
}

/// A tiny model with weights drawn from `seed`. burn's CPU generator is one per process and
/// weights are drawn lazily: seed and draw under a lock, all at once (one forward pass).
fn model(seed: u64) -> Llama<A> {
    static DRAW: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = DRAW.lock().unwrap_or_else(|e| e.into_inner());
    A::seed(&Default::default(), seed);
    let m = LlamaConfig::new(64, 32, 64, 2, 4, 2).init::<A>(128, &Default::default());
    let probe = Tensor::<A, 2, Int>::from_data(TensorData::new(vec![1i64], [1, 1]), &Default::default());
    m.forward(probe).unwrap();
    m
}

fn dataset<T>(records: Vec<T>) -> Dataset<T> {
    let records = records.into_iter().enumerate().map(|(i, record)| Lined { line: i as u64 + 1, record }).collect();
    Dataset { path: PathBuf::from("test.jsonl"), records }
}

fn opts(steps_lr: f64) -> TrainOptions {
    TrainOptions { epochs: 30, batch_size: 2, lr: steps_lr, max_grad_norm: Some(1.0), ..Default::default() }
}

#[test]
fn cpt_loss_falls_and_packed_texts_stay_apart() {
    let texts = ["aspirin inhibits cox", "statins lower ldl", "insulin lowers glucose", "levodopa in parkinson"];
    let data = dataset(texts.iter().map(|t| TextExample { text: (*t).into() }).collect());
    let packed = encode_texts(&data, &Bytes, 48, Overlong::Truncate, Packing { pack: true, isolate: true }).unwrap();
    assert_eq!(packed.items.len(), 2, "two texts of ~20 tokens per 48-token row");
    assert!(packed.items.iter().all(|r| r.segments.as_ref().is_some_and(|s| s.contains(&1))));

    // Isolated packing: a packed row's loss equals the sum of its texts' losses alone.
    let alone = encode_texts(&data, &Bytes, 48, Overlong::Truncate, Packing { pack: false, isolate: false }).unwrap();
    let m = model(1).valid();
    let sum = |rows: &[Row]| -> f64 {
        rows.iter()
            .map(|r| {
                let d = Default::default();
                let n = r.ids.len() - 1;
                let ids: Vec<i64> = r.ids.iter().map(|&t| i64::from(t)).collect();
                let inputs = Tensor::<Flex, 2, Int>::from_data(TensorData::new(ids[..n].to_vec(), [1, n]), &d);
                let targets = Tensor::<Flex, 2, Int>::from_data(TensorData::new(ids[1..].to_vec(), [1, n]), &d);
                let w = Tensor::<Flex, 2>::from_data(TensorData::new(r.weights.clone(), [1, n]), &d);
                let logits = match &r.segments {
                    Some(s) => m.forward_segments(inputs, &s[..n]).unwrap(),
                    None => m.forward(inputs).unwrap(),
                };
                f64::from(lm_loss(logits, targets, w, 1.0).into_scalar())
            })
            .sum()
    };
    let (p, a) = (sum(&packed.items), sum(&alone.items));
    assert!((p - a).abs() < 1e-3 * a, "packed {p} vs alone {a}");

    let (_, report) = cpt::train(model(2), &packed, &[], &opts(1e-2), |_| ()).unwrap();
    let (first, last) = (report.steps[0].loss, report.steps.last().unwrap().loss);
    assert!(last < 0.5 * first, "CPT loss {first} -> {last}");
    assert!(report.tokens > 0 && report.steps.len() == 30);
}

#[test]
fn sft_learns_only_the_answers_and_its_loss_falls() {
    let pairs = [("dose of aspirin?", "81 mg"), ("target ldl?", "below 70"), ("hba1c goal?", "under 7")];
    let data = dataset(
        pairs
            .iter()
            .map(|(p, c)| SftExample::Completion(CompletionExample { prompt: (*p).into(), completion: (*c).into() }))
            .collect(),
    );
    let enc = encode_sft(&data, &Bytes, 64, Overlong::Refuse).unwrap();
    for (row, (p, c)) in enc.items.iter().zip(pairs) {
        let prompt = format!("user: {p}\nassistant: ");
        // Only the answer and the line end after it are learned.
        assert_eq!(row.trained_tokens(), c.len() + 1, "{row:?}");
        assert!(row.weights[..prompt.len() - 1].iter().all(|&w| w == 0.0));
    }
    let (_, report) = sft::train(model(3), &enc, &enc.items, &opts(1e-2), |_| ()).unwrap();
    let (first, last) = (report.steps[0].loss, report.steps.last().unwrap().loss);
    assert!(last < 0.3 * first, "SFT loss {first} -> {last}");
    assert!(report.evals.last().unwrap().1 < 0.3 * first, "{:?}", report.evals);

    // Too long, refused by flag; truncated by default (and counted).
    let long =
        dataset(vec![SftExample::Completion(CompletionExample { prompt: "x".repeat(80), completion: "y".into() })]);
    assert!(matches!(encode_sft(&long, &Bytes, 64, Overlong::Refuse), Err(Error::TooLong { line: 1, .. })));
    let cut = encode_sft(&long, &Bytes, 64, Overlong::Truncate).unwrap();
    assert_eq!((cut.truncated, cut.items[0].ids.len()), (1, 64));
    assert_eq!(cut.items[0].trained_tokens(), 2, "the answer survives the cut");
}

/// Four preference pairs (a question chosen over a fragment), encoded.
fn four_pairs() -> Encoded<PairRows> {
    let triples = [
        ("abstract on aspirin", "does aspirin prevent stroke?", "what?"),
        ("abstract on statins", "do statins lower ldl?", "why"),
        ("abstract on insulin", "how does insulin act?", "who"),
        ("abstract on levodopa", "is levodopa effective?", "hm"),
    ];
    let data = dataset(
        triples
            .iter()
            .map(|(p, c, r)| DpoExample { prompt: (*p).into(), chosen: (*c).into(), rejected: (*r).into() })
            .collect(),
    );
    encode_pairs(&data, &Bytes, 96, Overlong::Refuse).unwrap()
}

#[test]
fn dpo_starts_at_ln_2_and_raises_the_margin() {
    let enc = four_pairs();
    let dir = tempfile::tempdir().unwrap();
    let dpo_opts = DpoOptions {
        reference_cache: Some(dir.path().join("ref.json")),
        reference_id: "m4".into(),
        ..Default::default()
    };
    let o = TrainOptions { epochs: 10, batch_size: 2, grad_accum: 2, lr: 5e-3, ..Default::default() };
    let (_, report) = dpo::train(model(4), &enc, &[], &o, &dpo_opts, |_| ()).unwrap();
    let first = &report.steps[0];
    assert!((first.loss - std::f64::consts::LN_2).abs() < 1e-5, "policy = reference: loss {}", first.loss);
    let metric = |s: &StepLog, name: &str| s.metrics.iter().find(|(n, _)| n == name).unwrap().1;
    assert!(metric(first, "reward_margin").abs() < 1e-5);
    let last = report.steps.last().unwrap();
    assert!(metric(last, "reward_margin") > 0.1, "margin {}", metric(last, "reward_margin"));
    assert_eq!(metric(last, "preference_accuracy"), 1.0);
    assert!(last.loss < first.loss);
    assert!(dir.path().join("ref.json").exists(), "reference log-probabilities cached");

    // Same run from the cache: same losses.
    let (_, again) = dpo::train(model(4), &enc, &[], &o, &dpo_opts, |_| ()).unwrap();
    let losses = |r: &TrainReport| r.steps.iter().map(|s| s.loss).collect::<Vec<_>>();
    assert_eq!(losses(&again), losses(&report));
    assert!(matches!(
        dpo::train(model(4), &enc, &[], &o, &DpoOptions { beta: -1.0, ..Default::default() }, |_| ()),
        Err(Error::Options(_))
    ));

    // Evaluation pairs get the objective's metrics as means over the pairs, at every
    // evaluation: here the training pairs themselves, so the last evaluation prefers each
    // chosen question (accuracy 1), and the first (after one step) is a fraction of 4 pairs.
    let o = TrainOptions { eval_every: Some(3), ..o };
    let dpo_opts = DpoOptions { reference_cache: None, ..dpo_opts };
    let (_, evaluated) = dpo::train(model(4), &enc, &enc.items, &o, &dpo_opts, |_| ()).unwrap();
    let steps: Vec<u64> = evaluated.evals.iter().map(|e| e.0).collect();
    assert_eq!(steps, evaluated.eval_metrics.iter().map(|e| e.0).collect::<Vec<_>>());
    assert_eq!(steps.last(), Some(&(evaluated.steps.len() as u64)));
    let accuracy = |m: &[(String, f64)]| m.iter().find(|(n, _)| n == "preference_accuracy").unwrap().1;
    for (_, m) in &evaluated.eval_metrics {
        let a = accuracy(m);
        assert!((0.0..=1.0).contains(&a) && (a * 4.0).fract() == 0.0, "a mean over 4 pairs: {a}");
    }
    assert_eq!(accuracy(&evaluated.eval_metrics.last().unwrap().1), 1.0);
}

#[test]
fn the_nll_term_adds_the_chosen_per_token_nll_and_holds_the_chosen_likelihood() {
    let enc = four_pairs();
    let o = TrainOptions { epochs: 10, batch_size: 2, grad_accum: 2, lr: 5e-3, ..Default::default() };
    let metric = |s: &StepLog, name: &str| s.metrics.iter().find(|(n, _)| n == name).unwrap().1;
    let train = |nll: f64| dpo::train(model(4), &enc, &[], &o, &DpoOptions { nll, ..Default::default() }, |_| ());
    let (_, plain) = train(0.0).unwrap();
    let (_, held) = train(1.0).unwrap();
    // At the first step the policy is the reference: DPO's ln 2 plus α times the chosen
    // completions' mean per-token NLL (the metric is their mean per-token log-probability).
    let first = &held.steps[0];
    let per_token = metric(first, "chosen_logprob_per_token");
    assert!(per_token < 0.0);
    assert!((first.loss - (std::f64::consts::LN_2 - per_token)).abs() < 1e-4, "{} vs {per_token}", first.loss);
    assert!((plain.steps[0].loss - std::f64::consts::LN_2).abs() < 1e-5);
    assert_eq!(metric(&plain.steps[0], "chosen_logprob_per_token"), per_token);
    // Trained, the NLL term keeps the chosen completions likelier than DPO alone does.
    let last = |r: &TrainReport| metric(r.steps.last().unwrap(), "chosen_logprob_per_token");
    assert!(last(&held) > last(&plain), "with the term {} vs without {}", last(&held), last(&plain));
    assert!(matches!(
        dpo::train(model(4), &enc, &[], &o, &DpoOptions { nll: -1.0, ..Default::default() }, |_| ()),
        Err(Error::Options(_))
    ));
}

#[test]
fn a_non_finite_loss_stops_training_with_a_typed_error() {
    let data = dataset(vec![TextExample { text: "aspirin".into() }]);
    let enc = encode_texts(&data, &Bytes, 32, Overlong::Truncate, Packing::default()).unwrap();
    let o = TrainOptions { epochs: 3, lr: 1e30, max_grad_norm: None, ..Default::default() };
    match cpt::train(model(5), &enc, &[], &o, |_| ()) {
        Err(Error::NonFinite { step, .. }) => assert!(step >= 2, "{step}"),
        other => panic!("expected a non-finite stop, got {:?}", other.map(|r| r.1.steps.len())),
    }
}
