//! The decoder against a naive reference written here with plain loops in f64: same
//! hand-set weights, same tokens, logits within 1e-4.
#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

use burn::backend::Flex;
use burn::prelude::*;
use kailin_lm::{Llama, LlamaConfig};
use std::ops::ControlFlow;

mod common;
use common::{reference, weight, weights};

type B = Flex;

fn check(config: LlamaConfig) {
    let w = weights(&config);
    let device = Default::default();
    let model = Llama::<B>::from_weights(&config, 16, &device, |name, shape| {
        let v = w.get(name).cloned().unwrap_or_else(|| panic!("model asked for unknown weight {name}"));
        assert_eq!(v.len(), shape.iter().product::<usize>(), "{name}");
        Ok(v)
    })
    .unwrap();
    let seqs = [[1usize, 5, 2, 9, 4], [3, 3, 0, 12, 7]];
    let flat: Vec<i64> = seqs.iter().flatten().map(|&t| t as i64).collect();
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [2, 5]), &device);
    let logits = model.forward(tokens).unwrap();
    assert_eq!(logits.dims(), [2, 5, config.vocab_size]);
    let got = logits.into_data().to_vec::<f32>().unwrap();
    for (b, seq) in seqs.iter().enumerate() {
        let want = reference(&config, &w, seq);
        for t in 0..seq.len() {
            for v in 0..config.vocab_size {
                let g = f64::from(got[(b * seq.len() + t) * config.vocab_size + v]);
                assert!((g - want[t][v]).abs() < 1e-4, "batch {b} pos {t} token {v}: {g} vs reference {}", want[t][v]);
            }
        }
    }
}

#[test]
fn tied_gqa_model_matches_the_reference() {
    check(LlamaConfig::new(13, 8, 12, 2, 2, 1).with_rope_theta(10000.0));
}

#[test]
fn untied_model_with_attention_bias_matches_the_reference() {
    check(
        LlamaConfig::new(13, 12, 20, 2, 3, 3)
            .with_tie_embeddings(false)
            .with_attention_bias(true)
            .with_rope_theta(500.0),
    );
}

#[test]
fn too_long_a_sequence_is_an_error() {
    let config = LlamaConfig::new(13, 8, 12, 1, 2, 1);
    let device = Default::default();
    let model =
        Llama::<B>::from_weights(&config, 4, &device, |name, shape| Ok(weight(name, shape.iter().product()))).unwrap();
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![1i64; 5], [1, 5]), &device);
    assert!(matches!(model.forward(tokens), Err(kailin_lm::Error::TooLong { len: 5, max: 4 })));
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![1i64, 13], [1, 2]), &device);
    assert!(matches!(model.forward(tokens), Err(kailin_lm::Error::TokenOutOfRange { token: 13, vocab: 13 })));
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![-1i64, 2], [1, 2]), &device);
    assert!(matches!(model.forward(tokens), Err(kailin_lm::Error::TokenOutOfRange { token: -1, .. })));
}

#[test]
fn a_missing_or_misshapen_weight_is_an_error() {
    let config = LlamaConfig::new(13, 8, 12, 1, 2, 1);
    let device = Default::default();
    let err = Llama::<B>::from_weights(&config, 8, &device, |name, shape| {
        let n: usize = shape.iter().product();
        Ok(vec![0.0; if name.ends_with("k_proj.weight") { n - 1 } else { n }])
    })
    .unwrap_err();
    assert!(err.to_string().contains("k_proj"), "{err}");
}

#[test]
fn cached_decoding_equals_the_full_forward() {
    let config = LlamaConfig::new(13, 8, 12, 2, 2, 1);
    let w = weights(&config);
    let device = Default::default();
    let model = Llama::<B>::from_weights(&config, 16, &device, |name, _| Ok(w[name].clone())).unwrap();
    let seq = [1i64, 5, 2, 9, 4, 7];
    let tensor = |t: &[i64]| Tensor::<B, 2, Int>::from_data(TensorData::new(t.to_vec(), [1, t.len()]), &device);
    let full = model.forward(tensor(&seq)).unwrap().into_data().to_vec::<f32>().unwrap();
    let v = config.vocab_size;
    let mut cache = kailin_lm::KvCache::new(model.num_layers());
    // Prefill three tokens, then one at a time.
    let mut got = model.forward_cached(tensor(&seq[..3]), &mut cache).unwrap().into_data().to_vec::<f32>().unwrap();
    for t in 3..seq.len() {
        got.extend(model.forward_cached(tensor(&seq[t..=t]), &mut cache).unwrap().into_data().to_vec::<f32>().unwrap());
    }
    assert_eq!(cache.len(), seq.len());
    assert_eq!(got.len(), full.len());
    for (i, (g, f)) in got.iter().zip(&full).enumerate() {
        assert!((g - f).abs() < 1e-5, "position {} token {}: cached {g} vs full {f}", i / v, i % v);
    }
    // The cache bounds the sequence too, and belongs to one model depth.
    let mut long = kailin_lm::KvCache::new(model.num_layers());
    model.forward_cached(tensor(&[1; 16]), &mut long).unwrap();
    assert!(matches!(
        model.forward_cached(tensor(&[1]), &mut long),
        Err(kailin_lm::Error::TooLong { len: 17, max: 16 })
    ));
    let mut wrong = kailin_lm::KvCache::new(5);
    assert!(matches!(model.forward_cached(tensor(&[1]), &mut wrong), Err(kailin_lm::Error::CacheMismatch { .. })));
}

#[test]
fn scores_equal_summed_log_softmax_of_a_full_forward() {
    let config = LlamaConfig::new(13, 8, 12, 2, 2, 1);
    let w = weights(&config);
    let device = Default::default();
    let model = Llama::<B>::from_weights(&config, 16, &device, |name, _| Ok(w[name].clone())).unwrap();
    let pairs =
        vec![(vec![1u32, 5, 2], vec![9u32, 4]), (vec![3u32], vec![3u32, 0, 12, 7]), (vec![6u32, 6], vec![1u32])];
    let scores = kailin_lm::score(&model, &pairs).unwrap();
    for ((p, c), s) in pairs.iter().zip(&scores) {
        // Reference: the full forward of this pair alone, log-softmax by hand in f64.
        let seq: Vec<usize> = p.iter().chain(c).map(|&t| t as usize).collect();
        let logits = reference(&config, &w, &seq);
        let mut want = Vec::new();
        for (i, &t) in c.iter().enumerate() {
            let row = &logits[p.len() + i - 1];
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
            want.push(row[t as usize] - m - z.ln());
        }
        assert_eq!(s.per_token.len(), c.len());
        for (g, w) in s.per_token.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
        assert!((s.total - want.iter().sum::<f64>()).abs() < 1e-4);
        // Alone, without padding: the same.
        let alone = kailin_lm::score(&model, &[(p.clone(), c.clone())]).unwrap();
        assert!((alone[0].total - s.total).abs() < 1e-5, "padding changed a score");
    }
    assert!(matches!(kailin_lm::score(&model, &[(vec![], vec![1])]), Err(kailin_lm::Error::EmptyScore { pair: 0 })));
}

#[test]
fn batched_left_padded_generation_equals_each_prompt_alone() {
    let config = LlamaConfig::new(13, 8, 12, 2, 2, 1);
    let w = weights(&config);
    let device = Default::default();
    let model = Llama::<B>::from_weights(&config, 32, &device, |name, _| Ok(w[name].clone())).unwrap();
    let prompts = vec![vec![1u32, 5, 2, 9, 4], vec![3u32], vec![7u32, 7, 0], vec![], vec![12u32, 1]];
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            kailin_lm::generate(&model, p, 8, &[], &mut kailin_lm::Sampler::greedy(), |t| kailin_lm::every_token(0, t))
                .unwrap()
        })
        .collect();
    // The reference's greedy choice after the first prompt.
    let seq: Vec<usize> = prompts[0].iter().map(|&t| t as usize).collect();
    let last = reference(&config, &w, &seq).pop().unwrap();
    let argmax = (0..last.len()).fold(0, |b, i| if last[i] > last[b] { i } else { b });
    assert_eq!(alone[0][0] as usize, argmax);
    let mut samplers = vec![kailin_lm::Sampler::greedy(); prompts.len()];
    let batched = kailin_lm::generate_batch(&model, &prompts, 8, &[], &mut samplers, kailin_lm::every_token).unwrap();
    assert_eq!(batched, alone);
    assert!(batched[3].is_empty() && batched[0].len() == 8);

    // Sampled: per-prompt seeds give the same tokens batched or alone.
    let sampler = |i: u64| kailin_lm::Sampler::new(1.0, 40 + i).top_k(5);
    let mut samplers: Vec<_> = (0..prompts.len() as u64).map(sampler).collect();
    let batched = kailin_lm::generate_batch(&model, &prompts, 6, &[], &mut samplers, kailin_lm::every_token).unwrap();
    for (i, p) in prompts.iter().enumerate() {
        let alone =
            kailin_lm::generate(&model, p, 6, &[], &mut sampler(i as u64), |t| kailin_lm::every_token(0, t)).unwrap();
        assert_eq!(batched[i], alone, "prompt {i}");
    }

    // Stop tokens and a callback that ends one sequence early (it leaves the batch).
    let stop = [alone[0][2]];
    let mut samplers = vec![kailin_lm::Sampler::greedy(); prompts.len()];
    let mut seen = vec![0usize; prompts.len()];
    let out = kailin_lm::generate_batch(&model, &prompts, 8, &stop, &mut samplers, |i, _| {
        seen[i] += 1;
        let go_on = i != 4 || seen[i] < 2;
        Ok::<_, kailin_lm::Error>(if go_on { ControlFlow::Continue(()) } else { ControlFlow::Break(()) })
    })
    .unwrap();
    for (i, (o, a)) in out.iter().zip(&alone).enumerate() {
        let cut = a.iter().position(|t| stop.contains(t)).unwrap_or(a.len());
        let cut = if i == 4 { cut.min(2) } else { cut };
        assert_eq!(o[..], a[..cut], "prompt {i}");
    }
    assert!(out[0].len() <= 2);
    // Errors before any work: sampler count, length.
    assert!(matches!(
        kailin_lm::generate_batch(&model, &prompts, 8, &[], &mut [], kailin_lm::every_token),
        Err(kailin_lm::Error::BatchMismatch { .. })
    ));
    let mut samplers = vec![kailin_lm::Sampler::greedy(); prompts.len()];
    assert!(matches!(
        kailin_lm::generate_batch(&model, &prompts, 29, &[], &mut samplers, kailin_lm::every_token),
        Err(kailin_lm::Error::TooLong { len: 33, max: 32 })
    ));
}

#[test]
fn packed_records_are_computed_as_if_alone() {
    let config = LlamaConfig::new(13, 8, 12, 2, 2, 1);
    let w = weights(&config);
    let device = Default::default();
    let model = Llama::<B>::from_weights(&config, 16, &device, |name, _| Ok(w[name].clone())).unwrap();
    let tensor = |t: &[i64], rows: usize| {
        Tensor::<B, 2, Int>::from_data(TensorData::new(t.to_vec(), [rows, t.len() / rows]), &device)
    };
    let alone = |t: &[i64]| model.forward(tensor(t, 1)).unwrap().into_data().to_vec::<f32>().unwrap();
    // Row 0 packs records [1 5 2] and [9 4 7 3]; row 1 is one record of 7 tokens.
    let (a, b, c) = ([1i64, 5, 2], [9i64, 4, 7, 3], [3i64, 3, 0, 12, 7, 1, 2]);
    let packed: Vec<i64> = a.iter().chain(&b).chain(&c).copied().collect();
    let segments = [0u32, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    let got = model.forward_segments(tensor(&packed, 2), &segments).unwrap().into_data().to_vec::<f32>().unwrap();
    let want: Vec<f32> = [alone(&a), alone(&b), alone(&c)].concat();
    assert_eq!(got.len(), want.len());
    for (i, (g, f)) in got.iter().zip(&want).enumerate() {
        assert!((g - f).abs() < 1e-5, "token {} logit {}: packed {g} vs alone {f}", i / 13, i % 13);
    }
    // Without the segments, record b would attend to record a: the logits differ.
    let plain = model.forward(tensor(&packed, 2)).unwrap().into_data().to_vec::<f32>().unwrap();
    assert!(plain[3 * 13..7 * 13].iter().zip(&want[3 * 13..7 * 13]).any(|(p, w)| (p - w).abs() > 1e-4));
    assert!(matches!(
        model.forward_segments(tensor(&packed, 2), &segments[..5]),
        Err(kailin_lm::Error::Segments { expected: 14, got: 5 })
    ));
}
