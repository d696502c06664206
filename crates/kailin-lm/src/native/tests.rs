#![allow(clippy::unwrap_used)]

use std::cell::Cell;

use burn::backend::Flex;
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;

use super::NativeLlama;
use crate::llama::{Llama, LlamaConfig, LoraConfig};
use crate::{Sampler, every_token, generate_batch, generate_continuous, next_token_logprobs, score};

thread_local! {
    /// Set by a test for its own thread: burn's path even on `Flex`, to compare against.
    pub(super) static BURN_ONLY: Cell<bool> = const { Cell::new(false) };
    /// Set by a test for its own thread: a pass of a few rows on the pool's path, not a team's.
    pub(super) static POOL_STEP: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on burn's path.
fn on_burn<T>(f: impl FnOnce() -> T) -> T {
    BURN_ONLY.set(true);
    let out = f();
    BURN_ONLY.set(false);
    out
}

/// A tiny model with grouped-query attention (4 heads over 2 key/value heads); with
/// `adapted`, attention biases and a LoRA adapter whose update is not zero.
fn model(tied: bool, adapted: bool) -> Llama<Flex> {
    crate::test_seed::seeded(7, || random_model(tied, adapted))
}

fn random_model(tied: bool, adapted: bool) -> Llama<Flex> {
    let config = LlamaConfig::new(48, 32, 40, 2, 4, 2).with_tie_embeddings(tied).with_attention_bias(adapted);
    let device = Default::default();
    let mut model = config.init::<Flex>(64, &device);
    // Norm scales away from one, so a wrong gamma shows.
    for b in &mut model.blocks {
        b.attn_norm.gamma = Param::from_tensor(Tensor::random([32], Distribution::Uniform(0.5, 1.5), &device));
        b.mlp_norm.gamma = Param::from_tensor(Tensor::random([32], Distribution::Uniform(0.5, 1.5), &device));
    }
    if !adapted {
        return model;
    }
    let mut model = model.with_lora(&LoraConfig::new(4)).unwrap();
    for b in &mut model.blocks {
        for (_, l) in b.projections_mut() {
            if let Some(lora) = &mut l.lora {
                let [rank, out] = lora.b.dims();
                lora.b = Param::from_tensor(Tensor::random([rank, out], Distribution::Uniform(-0.3, 0.3), &device));
            }
        }
    }
    model
}

fn burn_logits(model: &Llama<Flex>, seq: &[u32]) -> Vec<f32> {
    let ids: Vec<i64> = seq.iter().map(|&t| i64::from(t)).collect();
    let tokens = Tensor::<Flex, 2, Int>::from_data(TensorData::new(ids, [1, seq.len()]), &Default::default());
    model.forward(tokens).unwrap().into_data().to_vec::<f32>().unwrap()
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst <= tol, "max |Δ| {worst}");
}

#[test]
fn packed_pass_matches_burn_for_every_row_with_gqa_bias_lora_and_tied_or_own_head() {
    for (tied, adapted) in [(true, false), (false, true)] {
        let model = model(tied, adapted);
        let native = NativeLlama::from_llama(&model, super::CopyKind::Folded).unwrap();
        let seqs: [&[u32]; 3] = [&[1, 5, 7, 9, 47], &[3], &[2, 2, 30, 31, 4, 6, 8, 10, 12]];
        let mut caches: Vec<_> = seqs.iter().map(|s| native.cache(s.len())).collect();
        let want: Vec<Vec<usize>> = seqs.iter().map(|s| (0..s.len()).collect()).collect();
        let got = native.forward(&seqs, &mut caches, &want).unwrap();
        let want: Vec<f32> = seqs.iter().flat_map(|s| burn_logits(&model, s)).collect();
        close(&got, &want, 1e-4);
    }
}

#[test]
fn cached_steps_equal_one_pass() {
    let model = model(true, true);
    let native = NativeLlama::from_llama(&model, super::CopyKind::Folded).unwrap();
    let seq: [u32; 7] = [4, 8, 15, 16, 23, 42, 1];
    let mut cache = native.cache(seq.len());
    let whole = native.forward(&[&seq], &mut [cache.clone()], &[(0..7).collect()]).unwrap();
    let mut stepped = native.forward(&[&seq[..3]], std::slice::from_mut(&mut cache), &[(0..3).collect()]).unwrap();
    for t in 3..7 {
        stepped.extend(native.forward(&[&seq[t..=t]], std::slice::from_mut(&mut cache), &[vec![0]]).unwrap());
    }
    // One pass over 7 rows and steps of one row sum in different orders (the GEMM's
    // blocking against the row kernel): equal up to f32 rounding, which reached 1.1e-5
    // on 1 in 100 random models, so the bound is the other tests' 1e-4.
    close(&stepped, &whole, 1e-4);
    // The cache is full: one more token is refused, not written past its end.
    assert!(native.forward(&[&[1]], std::slice::from_mut(&mut cache), &[vec![0]]).is_err());
}

#[test]
fn score_next_token_and_generation_equal_burns_path() {
    let model = model(false, true);
    let pairs = vec![(vec![1, 5, 7], vec![9, 11, 13]), (vec![3], vec![47]), (vec![2, 2, 30, 31], vec![4, 6])];
    let got = score(&model, &pairs).unwrap();
    let want = on_burn(|| score(&model, &pairs).unwrap());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.per_token.len(), w.per_token.len());
        for (a, b) in g.per_token.iter().zip(&w.per_token) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
    let prompts = vec![vec![1, 5, 7, 9], vec![3], vec![2, 2, 30, 31, 4, 6]];
    let got = next_token_logprobs(&model, &prompts, &[11, 12, 47]).unwrap();
    let want = on_burn(|| next_token_logprobs(&model, &prompts, &[11, 12, 47]).unwrap());
    for (a, b) in got.iter().flatten().zip(want.iter().flatten()) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    let prompts = vec![vec![1, 5, 7, 9], vec![], vec![3], vec![2, 2, 30, 31, 4, 6]];
    let run = || {
        let mut samplers: Vec<Sampler> = (0..4).map(|i| Sampler::new(0.8, i)).collect();
        generate_batch(&model, &prompts, 12, &[0], &mut samplers, every_token).unwrap()
    };
    let got = run();
    assert_eq!(got, on_burn(run));
    assert!(got[1].is_empty() && got.iter().any(|g| g.len() > 3));
    // Batched equals alone.
    for (p, g) in prompts.iter().zip(&got) {
        let mut alone = [Sampler::new(0.8, prompts.iter().position(|q| q == p).unwrap() as u64)];
        assert_eq!(&generate_batch(&model, std::slice::from_ref(p), 12, &[0], &mut alone, every_token).unwrap()[0], g);
    }
}

#[test]
fn continuous_batching_gives_each_prompt_what_it_gets_alone() {
    let model = model(true, true);
    // Prompts of different lengths, one empty, and a stop token, so sequences finish at
    // different steps and slots are refilled mid-way.
    let prompts: Vec<Vec<u32>> =
        vec![vec![1, 5, 7, 9], vec![3], vec![], vec![2, 2, 30, 31, 4, 6], vec![8, 8], vec![40, 2, 9], vec![17]];
    // Hot sampling: the tiny model's own choices repeat one token.
    let samplers = || -> Vec<Sampler> { (0..prompts.len() as u64).map(|i| Sampler::new(4.0, 70 + i)).collect() };
    let run_alone = |stop: &[u32]| -> Vec<Vec<u32>> {
        let one = |(i, p): (usize, &Vec<u32>)| {
            let mut one = [samplers().swap_remove(i)];
            generate_batch(&model, std::slice::from_ref(p), 10, stop, &mut one, every_token).unwrap().remove(0)
        };
        prompts.iter().enumerate().map(one).collect()
    };
    // A stop token the first prompt meets at its third step, so that it finishes early and
    // its slot is refilled while the others decode.
    let stop = [run_alone(&[])[0][2]];
    let alone = run_alone(&stop);
    assert!(alone[0].len() <= 2 && alone[2].is_empty(), "{alone:?}");
    for slots in [1, 2, 3, 16] {
        let mut order = Vec::new();
        let got = generate_continuous(&model, &prompts, 10, &stop, &mut samplers(), slots, |i, _| {
            order.push(i);
            Ok::<_, crate::Error>(std::ops::ControlFlow::Continue(()))
        })
        .unwrap();
        assert_eq!(got, alone, "{slots} slots");
        // Never more than `slots` sequences between two admissions: with one slot, one at a time.
        if slots == 1 {
            assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
        }
        let burn = on_burn(|| generate_continuous(&model, &prompts, 10, &stop, &mut samplers(), slots, every_token));
        assert_eq!(burn.unwrap(), alone, "{slots} slots on burn's path");
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let model = model(true, false);
    let native = NativeLlama::from_llama(&model, super::CopyKind::Folded).unwrap();
    let mut caches = vec![native.cache(4)];
    assert!(native.forward(&[&[1, 2, 3, 4, 5]], &mut caches, &[vec![0]]).is_err(), "past the cache");
    assert!(native.forward(&[&[48]], &mut caches, &[vec![0]]).is_err(), "outside the vocabulary");
    assert!(native.forward(&[&[]], &mut caches, &[vec![]]).is_err(), "empty");
    assert!(native.forward(&[&[1]], &mut caches, &[vec![1]]).is_err(), "a row past the sequence");
    assert!(native.forward(&[&[1], &[2]], &mut caches, &[vec![0]]).is_err(), "caches of another length");
    assert!(score(&model, &[(vec![1], vec![48])]).is_err());
    let mut big = vec![native.cache(100)];
    assert!(native.forward(&[&[1; 65]], &mut big, &[vec![0]]).is_err(), "past the model's positions");
}

#[test]
fn big_calls_are_split_into_passes() {
    let ranges = super::groups([3000, 2000, 5000, 10, 20].into_iter());
    assert_eq!(ranges, vec![0..1, 1..2, 2..3, 3..5]);
    assert!(super::groups(std::iter::empty()).is_empty());
}

#[test]
fn the_copy_is_kept_while_the_weights_stay_and_remade_when_they_change() {
    let model = model(true, false);
    let first = super::native(&model).unwrap().unwrap();
    let again = super::native(&model).unwrap().unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again), "the same weights reuse the copy");
    // New weights in the same model (an adapter, then merged): a new copy, the new results.
    let adapted = crate::test_seed::seeded(8, || {
        let mut adapted = model.clone().with_lora(&LoraConfig::new(2)).unwrap();
        for b in &mut adapted.blocks {
            if let Some(lora) = &mut b.attn.q.lora {
                let [rank, out] = lora.b.dims();
                let values = Tensor::random([rank, out], Distribution::Uniform(-0.5, 0.5), &Default::default());
                lora.b = Param::from_tensor(values);
            }
        }
        adapted
    });
    let merged = adapted.merge_lora();
    let remade = super::native(&merged).unwrap().unwrap();
    assert!(!std::sync::Arc::ptr_eq(&first, &remade));
    let prompts = vec![vec![1, 2, 3]];
    let got = next_token_logprobs(&merged, &prompts, &[5]).unwrap();
    let want = on_burn(|| next_token_logprobs(&merged, &prompts, &[5]).unwrap());
    assert!((got[0][0] - want[0][0]).abs() < 1e-4);
    let before = next_token_logprobs(&model, &prompts, &[5]).unwrap();
    assert!((before[0][0] - got[0][0]).abs() > 1e-4, "the merged adapter changed the model");
}

#[test]
fn transposed_is_the_transpose_for_ragged_tiles() {
    let (rows, cols) = (37, 70);
    let w: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
    let t = super::transposed(&w, rows, cols);
    for r in 0..rows {
        for c in 0..cols {
            assert_eq!(t[c * rows + r], w[r * cols + c]);
        }
    }
}

#[test]
fn shared_prefixes_and_repeated_prompts_give_what_separate_passes_give() {
    let model = model(false, true);
    let native = NativeLlama::from_llama(&model, super::CopyKind::Folded).unwrap();
    let common: Vec<u32> = (0..20).map(|i| (i * 7 % 47) as u32 + 1).collect();
    let with = |tail: &[u32]| common.iter().chain(tail).copied().collect::<Vec<u32>>();
    let (a, b, c) = (with(&[3, 4]), with(&[5]), with(&[3, 4, 9, 9]));
    // A prefix common to all, repeated prompts, both; and prompts sharing too little.
    let calls: [Vec<&[u32]>; 3] = [vec![&a, &b, &c], vec![&a, &a, &b, &a], vec![&[1, 2, 3], &[1, 2, 4], &[1, 2, 3]]];
    for prompts in calls {
        let (mut caches, logits) = native.prefill_shared(&prompts, 2).unwrap();
        let mut alone: Vec<_> = prompts.iter().map(|p| native.cache(p.len() + 2)).collect();
        let want: Vec<Vec<usize>> = prompts.iter().map(|p| vec![p.len() - 1]).collect();
        close(&logits, &native.forward(&prompts, &mut alone, &want).unwrap(), 1e-4);
        // The caches go on as the separately filled ones do.
        let next: Vec<&[u32]> = (0..prompts.len()).map(|i| &[7u32, 8][i % 2..i % 2 + 1]).collect();
        let rows = vec![vec![0]; prompts.len()];
        close(
            &native.forward(&next, &mut caches, &rows).unwrap(),
            &native.forward(&next, &mut alone, &rows).unwrap(),
            1e-4,
        );
    }
}

/// `native` with every projection, and the head, on random blocks (4-bit, the head 8-bit): the
/// weights a decoding step multiplies, whatever the f32 copies hold.
fn on_blocks(mut native: NativeLlama) -> NativeLlama {
    use std::sync::Arc;

    use super::qmatrix::QMatrix;
    use crate::quant::GgmlType;
    let mut seed = 0;
    let mut random = |kind, rows, cols| {
        seed += 1;
        Some(Arc::new(QMatrix::random(kind, rows, cols, seed)))
    };
    for b in &mut native.blocks {
        for p in [&mut b.qkv, &mut b.o, &mut b.gate_up, &mut b.down] {
            p.q = random(GgmlType::Q4_1, p.output, p.input);
        }
    }
    match &mut native.head {
        Some(head) => head.q = random(GgmlType::Q8_0, head.output, head.input),
        None => native.embed_q = random(GgmlType::Q8_0, native.vocab, native.hidden),
    }
    native
}

#[test]
fn a_decoding_step_on_a_team_equals_the_pools_bit_for_bit() {
    for tied in [true, false] {
        // Widths of whole blocks (32), grouped-query attention, biases with the own head.
        let config = LlamaConfig::new(64, 64, 96, 2, 4, 2).with_tie_embeddings(tied).with_attention_bias(!tied);
        let model = crate::test_seed::seeded(11, || config.init::<Flex>(64, &Default::default()));
        let native = on_blocks(NativeLlama::from_llama(&model, super::CopyKind::Folded).unwrap());
        assert!(native.step_weights(3).is_some() && native.step_weights(32).is_some());
        assert!(native.step_weights(33).is_none());
        // Prompts alone (up to four rows: the integer kernels; six: unpacked bands), then
        // steps of the six sequences together (bands) and of the first three (integers).
        let run = |pool: bool| {
            POOL_STEP.set(pool);
            let prompts: [&[u32]; 6] = [&[1, 5, 7], &[3], &[2, 2, 30, 31], &[9, 8, 7, 6, 5, 4], &[11], &[12, 13]];
            let mut caches: Vec<_> = prompts.iter().map(|p| native.cache(p.len() + 6)).collect();
            let mut logits = Vec::new();
            for (p, cache) in prompts.iter().zip(caches.iter_mut()) {
                let want = [(0..p.len()).collect()];
                logits.extend(native.forward(&[p], std::slice::from_mut(cache), &want).unwrap());
            }
            for t in 0..6u32 {
                let next: Vec<u32> = (0..6).map(|s| t + 9 * s + 1).collect();
                let seqs: Vec<&[u32]> = next.iter().map(std::slice::from_ref).collect();
                let all = if t % 2 == 0 { 6 } else { 3 };
                let want = vec![vec![0]; all];
                logits.extend(native.forward(&seqs[..all], &mut caches[..all], &want).unwrap());
            }
            POOL_STEP.set(false);
            logits.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| run(true));
        assert!(pool.iter().all(|&v| f32::from_bits(v).is_finite()));
        for threads in [1, 2, 3] {
            let team = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| run(false));
            assert!(team == pool, "{threads} threads, tied {tied}");
        }
    }
}
