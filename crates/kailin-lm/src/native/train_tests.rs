#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Param, ParamId};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::log_softmax;

use super::train::{TrainSequence, training_pass};
use super::{CopyKind, cached};
use crate::llama::{Llama, LlamaConfig, LoraConfig};

type A = Autodiff<Flex>;

/// A tiny adapted model on the autodiff backend: grouped-query attention (4 heads over 2
/// key/value heads), norm scales away from one, adapters whose `B` is not zero (so every
/// gradient path carries signal), on the projections `targets` names.
fn adapted(tied: bool, bias: bool, targets: &[&str]) -> Llama<A> {
    crate::test_seed::seeded(11, || random_adapted(tied, bias, targets))
}

fn random_adapted(tied: bool, bias: bool, targets: &[&str]) -> Llama<A> {
    let config = LlamaConfig::new(48, 32, 40, 2, 4, 2).with_tie_embeddings(tied).with_attention_bias(bias);
    let device = Default::default();
    let mut model = config.init::<A>(64, &device);
    for b in &mut model.blocks {
        b.attn_norm.gamma = Param::from_tensor(Tensor::random([32], Distribution::Uniform(0.5, 1.5), &device));
        b.mlp_norm.gamma = Param::from_tensor(Tensor::random([32], Distribution::Uniform(0.5, 1.5), &device));
    }
    let lora = LoraConfig::new(3).with_alpha(6.0).with_targets(targets.iter().map(|t| (*t).to_owned()).collect());
    let mut model = model.with_lora(&lora).unwrap();
    for b in &mut model.blocks {
        for (_, l) in b.projections_mut() {
            if let Some(lora) = &mut l.lora {
                let [rank, out] = lora.b.dims();
                let values = Tensor::random([rank, out], Distribution::Uniform(-0.3, 0.3), &device);
                lora.b = Param::from_tensor(values).set_require_grad(true);
            }
        }
    }
    model
}

fn sequences() -> Vec<TrainSequence> {
    vec![
        TrainSequence { tokens: vec![1, 5, 7, 9, 47, 3], targets: vec![(0, 5), (2, 9), (5, 11)] },
        TrainSequence { tokens: vec![3], targets: vec![(0, 40)] },
        TrainSequence {
            tokens: vec![2, 2, 30, 31, 4, 6, 8, 10, 12],
            targets: (0..8).map(|p| (p, p as u32 * 5)).collect(),
        },
        // Longer than a block of the causal products (32 tokens), scored in both blocks.
        TrainSequence {
            tokens: (0..60).map(|i| (i * 7 + 3) % 48).collect(),
            targets: [0, 5, 31, 32, 33, 47, 59].iter().map(|&p| (p, (p as u32 * 11) % 48)).collect(),
        },
        // Scored nowhere: it still runs through the blocks, and contributes nothing.
        TrainSequence { tokens: vec![9, 8, 7], targets: vec![] },
    ]
}

/// A coefficient per target, of both signs.
fn coefficients(seqs: &[TrainSequence]) -> Vec<Vec<f64>> {
    seqs.iter()
        .enumerate()
        .map(|(s, seq)| (0..seq.targets.len()).map(|i| ((s * 7 + i * 3) % 5) as f64 * 0.4 - 0.9).collect())
        .collect()
}

/// burn's autodiff of `Σ c·log p(target)`: the log-probabilities and every adapter's gradient.
fn burn_reference(model: &Llama<A>, seqs: &[TrainSequence], c: &[Vec<f64>]) -> (Vec<f64>, HashMap<ParamId, Vec<f32>>) {
    let device = Default::default();
    let mut loss = Tensor::<A, 1>::zeros([1], &device);
    let mut logprobs = Vec::new();
    for (seq, cs) in seqs.iter().zip(c) {
        let ids: Vec<i64> = seq.tokens.iter().map(|&t| i64::from(t)).collect();
        let tokens = Tensor::<A, 2, Int>::from_data(TensorData::new(ids, [1, seq.tokens.len()]), &device);
        let lp = log_softmax(model.forward(tokens).unwrap(), 2);
        for (&(p, t), &coef) in seq.targets.iter().zip(cs) {
            let one = lp.clone().slice([0..1, p..p + 1, t as usize..t as usize + 1]).reshape([1]);
            logprobs.push(f64::from(one.clone().into_scalar()));
            loss = loss + one.mul_scalar(coef);
        }
    }
    let grads = loss.backward();
    let mut out = HashMap::new();
    for b in &model.blocks {
        for (_, l) in b.projections() {
            if let Some(lora) = &l.lora {
                for p in [&lora.a, &lora.b] {
                    let g = p.val().grad(&grads).map(|g| g.into_data().to_vec::<f32>().unwrap());
                    out.insert(p.id, g.unwrap_or_else(|| vec![0.0; p.dims().iter().product()]));
                }
            }
        }
    }
    (logprobs, out)
}

#[test]
fn gradients_equal_burns_autodiff_with_gqa_bias_tied_or_own_head_and_any_targets() {
    let all = ["q", "k", "v", "o", "gate", "up", "down"];
    for (tied, bias, targets) in [(true, false, &all[..]), (false, true, &all[..]), (true, true, &["k", "up"][..])] {
        let model = adapted(tied, bias, targets);
        let seqs = sequences();
        let c = coefficients(&seqs);
        let (want_lp, want) = burn_reference(&model, &seqs, &c);
        let tape = training_pass(&model.valid(), &seqs).unwrap().expect("the CPU kernels apply on Flex");
        let got_lp: Vec<f64> = tape.logprobs().iter().flatten().copied().collect();
        assert_eq!(got_lp.len(), want_lp.len());
        for (g, w) in got_lp.iter().zip(&want_lp) {
            assert!((g - w).abs() < 1e-4, "log p {g} vs {w}");
        }
        let grads = tape.backward(&c).unwrap();
        assert_eq!(grads.len(), want.len(), "one gradient per adapter matrix ({targets:?})");
        for g in &grads {
            let w = &want[&g.param];
            assert_eq!(g.values.len(), w.len());
            assert_eq!(g.shape.iter().product::<usize>(), w.len());
            let scale = w.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let worst = g.values.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-4 * scale.max(1.0), "max |Δ| {worst} against a largest gradient of {scale}");
        }
        assert!(grads.iter().any(|g| g.values.iter().any(|v| v.abs() > 1e-3)), "gradients are not all zero");
    }
}

#[test]
fn the_frozen_copy_outlives_a_change_of_the_adapters() {
    let model = adapted(true, false, &["q", "down"]).valid();
    let first = cached(&model, CopyKind::Base).unwrap().unwrap();
    let mut stepped = model.clone();
    for b in &mut stepped.blocks {
        if let Some(lora) = &mut b.attn.q.lora {
            lora.b = Param::from_tensor(lora.b.val().add_scalar(0.5));
        }
    }
    let again = cached(&stepped, CopyKind::Base).unwrap().unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again), "an adapter step keeps the frozen weights' copy");
    let seqs = vec![TrainSequence { tokens: vec![1, 2, 3], targets: vec![(2, 4)] }];
    let before = training_pass(&model, &seqs).unwrap().unwrap().logprobs()[0][0];
    let after = training_pass(&stepped, &seqs).unwrap().unwrap().logprobs()[0][0];
    assert!((before - after).abs() > 1e-5, "the pass reads the adapters as they are now");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let model = adapted(true, false, &["q"]).valid();
    let bad = |tokens: Vec<u32>, targets: Vec<(usize, u32)>| {
        training_pass(&model, &[TrainSequence { tokens, targets }]).unwrap_err().to_string()
    };
    assert!(bad(vec![], vec![]).contains("empty"));
    assert!(bad(vec![48], vec![]).contains("outside the vocabulary"));
    assert!(bad(vec![1], vec![(0, 48)]).contains("outside the vocabulary"));
    assert!(bad(vec![1, 2], vec![(2, 3)]).contains("exceeds"));
    assert!(bad(vec![1; 65], vec![]).contains("exceeds the model's 64 positions"));
    let tape = training_pass(&model, &[TrainSequence { tokens: vec![1, 2], targets: vec![(1, 3)] }]).unwrap().unwrap();
    assert!(tape.backward(&[vec![1.0, 2.0]]).is_err(), "a gradient per log-probability");
}

#[test]
fn a_pass_over_nothing_scores_nothing_and_gives_zero_gradients() {
    let model = adapted(false, true, &["v", "gate"]).valid();
    let tape = training_pass(&model, &[]).unwrap().unwrap();
    assert!(tape.logprobs().is_empty());
    let grads = tape.backward(&[]).unwrap();
    assert_eq!(grads.len(), 2 * 2 * 2, "A and B of two projections in two blocks");
    assert!(grads.iter().all(|g| g.values.iter().all(|&v| v == 0.0)));
}
