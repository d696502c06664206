//! The decoder against a naive reference written here with plain loops in f64: same
//! hand-set weights, same tokens, logits within 1e-4.
#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

use std::collections::HashMap;

use burn::backend::Flex;
use burn::prelude::*;
use kailin_lm::{Llama, LlamaConfig};

type B = Flex;

/// Deterministic weights in [-0.25, 0.25], different for every tensor and index.
fn weight(name: &str, n: usize) -> Vec<f32> {
    let seed = name.bytes().fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (0..n)
        .map(|i| {
            let x = seed.wrapping_add(i as u64 * 7919).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            (x % 1000) as f32 / 2000.0 - 0.25
        })
        .collect()
}

fn weights(c: &LlamaConfig) -> HashMap<String, Vec<f32>> {
    let (h, hd) = (c.hidden_size, c.head_dim());
    let kv = c.num_kv_heads * hd;
    let mut w = HashMap::new();
    let mut put = |name: String, n: usize| {
        w.insert(name.clone(), weight(&name, n));
    };
    put("model.embed_tokens.weight".into(), c.vocab_size * h);
    put("model.norm.weight".into(), h);
    if !c.tie_embeddings {
        put("lm_head.weight".into(), c.vocab_size * h);
    }
    for l in 0..c.num_layers {
        let p = format!("model.layers.{l}");
        for (n, size) in [("q_proj", h * h), ("k_proj", kv * h), ("v_proj", kv * h), ("o_proj", h * h)] {
            put(format!("{p}.self_attn.{n}.weight"), size);
        }
        if c.attention_bias {
            put(format!("{p}.self_attn.q_proj.bias"), h);
            put(format!("{p}.self_attn.k_proj.bias"), kv);
            put(format!("{p}.self_attn.v_proj.bias"), kv);
        }
        for (n, size) in [
            ("gate_proj", c.intermediate_size * h),
            ("up_proj", c.intermediate_size * h),
            ("down_proj", h * c.intermediate_size),
        ] {
            put(format!("{p}.mlp.{n}.weight"), size);
        }
        put(format!("{p}.input_layernorm.weight"), h);
        put(format!("{p}.post_attention_layernorm.weight"), h);
    }
    w
}

/// `W x` for a row-major `[out, in]` matrix.
fn matvec(w: &[f32], x: &[f64], out: usize) -> Vec<f64> {
    let inp = x.len();
    (0..out).map(|o| (0..inp).map(|i| f64::from(w[o * inp + i]) * x[i]).sum()).collect()
}

fn rmsnorm(x: &[f64], g: &[f32], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let r = 1.0 / (ms + eps).sqrt();
    x.iter().zip(g).map(|(v, g)| v * r * f64::from(*g)).collect()
}

fn rope(v: &mut [f64], pos: usize, theta: f64) {
    let d = v.len();
    for i in 0..d / 2 {
        let a = pos as f64 * theta.powf(-((2 * i) as f64) / d as f64);
        let (x1, x2) = (v[i], v[i + d / 2]);
        v[i] = x1 * a.cos() - x2 * a.sin();
        v[i + d / 2] = x2 * a.cos() + x1 * a.sin();
    }
}

/// The reference: logits `[seq][vocab]` of one sequence.
fn reference(c: &LlamaConfig, w: &HashMap<String, Vec<f32>>, tokens: &[usize]) -> Vec<Vec<f64>> {
    let (h, hd, nh, nkv) = (c.hidden_size, c.head_dim(), c.num_heads, c.num_kv_heads);
    let emb = &w["model.embed_tokens.weight"];
    let mut xs: Vec<Vec<f64>> = tokens.iter().map(|&t| (0..h).map(|i| f64::from(emb[t * h + i])).collect()).collect();
    let add_bias = |mut v: Vec<f64>, name: String| {
        if let Some(b) = w.get(&name) {
            v.iter_mut().zip(b).for_each(|(x, b)| *x += f64::from(*b));
        }
        v
    };
    for l in 0..c.num_layers {
        let p = format!("model.layers.{l}");
        let normed: Vec<Vec<f64>> =
            xs.iter().map(|x| rmsnorm(x, &w[&format!("{p}.input_layernorm.weight")], c.rms_eps)).collect();
        let proj = |n: &str, x: &[f64], out: usize| {
            add_bias(matvec(&w[&format!("{p}.self_attn.{n}.weight")], x, out), format!("{p}.self_attn.{n}.bias"))
        };
        let qs: Vec<Vec<f64>> = normed.iter().map(|x| proj("q_proj", x, h)).collect();
        let ks: Vec<Vec<f64>> = normed.iter().map(|x| proj("k_proj", x, nkv * hd)).collect();
        let vs: Vec<Vec<f64>> = normed.iter().map(|x| proj("v_proj", x, nkv * hd)).collect();
        let mut attn_out = vec![vec![0.0; h]; tokens.len()];
        for head in 0..nh {
            let kvh = head / (nh / nkv);
            for t in 0..tokens.len() {
                let mut q = qs[t][head * hd..(head + 1) * hd].to_vec();
                rope(&mut q, t, c.rope_theta);
                let scores: Vec<f64> = (0..=t)
                    .map(|s| {
                        let mut k = ks[s][kvh * hd..(kvh + 1) * hd].to_vec();
                        rope(&mut k, s, c.rope_theta);
                        q.iter().zip(&k).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (s, es) in e.iter().enumerate() {
                    for i in 0..hd {
                        attn_out[t][head * hd + i] += es / z * vs[s][kvh * hd + i];
                    }
                }
            }
        }
        for t in 0..tokens.len() {
            let o = matvec(&w[&format!("{p}.self_attn.o_proj.weight")], &attn_out[t], h);
            xs[t].iter_mut().zip(o).for_each(|(x, o)| *x += o);
            let n = rmsnorm(&xs[t], &w[&format!("{p}.post_attention_layernorm.weight")], c.rms_eps);
            let g = matvec(&w[&format!("{p}.mlp.gate_proj.weight")], &n, c.intermediate_size);
            let u = matvec(&w[&format!("{p}.mlp.up_proj.weight")], &n, c.intermediate_size);
            let act: Vec<f64> = g.iter().zip(&u).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            let d = matvec(&w[&format!("{p}.mlp.down_proj.weight")], &act, h);
            xs[t].iter_mut().zip(d).for_each(|(x, d)| *x += d);
        }
    }
    let head = if c.tie_embeddings { emb } else { &w["lm_head.weight"] };
    xs.iter().map(|x| matvec(head, &rmsnorm(x, &w["model.norm.weight"], c.rms_eps), c.vocab_size)).collect()
}

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
