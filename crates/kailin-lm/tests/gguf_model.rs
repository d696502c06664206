//! The tiny hand-set model written as GGUF files (Q8_0 and Q4_1, llama.cpp names and Q/K row
//! order), loaded through `Llama::from_gguf`, against the naive reference run on the same
//! (dequantised) weights.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use burn::backend::Flex;
use burn::prelude::*;
use kailin_lm::{GgmlType, Gguf, Llama, LlamaConfig, QkOrder, Weight, dequantize, reorder_qk_rows};

mod common;
use common::{Writer, reference, string, weights};

/// f32 to IEEE half by truncation (the tests only need some half near the value).
fn f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    if exp <= 0 {
        return sign;
    }
    sign | ((exp as u16) << 10) | ((b >> 13) & 0x3ff) as u16
}

fn quantize(kind: GgmlType, values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in values.chunks(32) {
        match kind {
            GgmlType::Q8_0 => {
                let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = f16_bits(amax / 127.0);
                let dq = kailin_lm::f16_to_f32(d);
                out.extend(d.to_le_bytes());
                out.extend(
                    block.iter().map(|v| if dq == 0.0 { 0 } else { (v / dq).round().clamp(-127.0, 127.0) as i8 as u8 }),
                );
            }
            GgmlType::Q4_1 => {
                let (lo, hi) = block.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                let (d, m) = (f16_bits((hi - lo) / 15.0), f16_bits(lo));
                let (dq, mq) = (kailin_lm::f16_to_f32(d), kailin_lm::f16_to_f32(m));
                out.extend(d.to_le_bytes());
                out.extend(m.to_le_bytes());
                let q = |v: f32| if dq == 0.0 { 0 } else { ((v - mq) / dq).round().clamp(0.0, 15.0) as u8 };
                out.extend((0..16).map(|j| q(block[j]) | (q(block[j + 16]) << 4)));
            }
            _ => unreachable!(),
        }
    }
    out
}

/// llama.cpp's name of a Hugging Face weight name (the table is unit-tested against the
/// known spellings in the crate).
fn gguf_name(hf: &str) -> String {
    let (weight, layer, part) = Weight::parse_hf(hf).expect("a Llama weight name");
    weight.gguf(layer, part)
}

/// A tiny model's GGUF file with `kind` projections, its configuration and the weights the
/// file holds (dequantised); `edits` overwrite numeric metadata values after the fact.
fn tiny_gguf(kind: GgmlType, edits: &[(&str, f64)]) -> (Vec<u8>, LlamaConfig, HashMap<String, Vec<f32>>) {
    // Row lengths (hidden 64, intermediate 96) are whole 32-value blocks.
    // GGUF stores the epsilon as f32: expect exactly what the file holds.
    let config = LlamaConfig::new(13, 64, 96, 2, 2, 1).with_rope_theta(10000.0).with_rms_eps(f64::from(1e-5f32));
    let edited = |key: &str, v: f64| edits.iter().find(|(k, _)| *k == key).map_or(v, |(_, e)| *e);
    let (h, hd) = (config.hidden_size, config.head_dim());
    let hf = weights(&config);
    let mut w = Writer::new();
    let mut s = Vec::new();
    string(&mut s, "llama");
    w.kv("general.architecture", 8, &s);
    for (key, v) in [
        ("llama.block_count", config.num_layers),
        ("llama.embedding_length", h),
        ("llama.feed_forward_length", config.intermediate_size),
        ("llama.attention.head_count", config.num_heads),
        ("llama.attention.head_count_kv", config.num_kv_heads),
    ] {
        w.kv(key, 4, &(edited(key, v as f64) as u32).to_le_bytes());
    }
    w.kv("llama.rope.freq_base", 6, &(edited("llama.rope.freq_base", 10000.0) as f32).to_le_bytes());
    let eps = edited("llama.attention.layer_norm_rms_epsilon", f64::from(1e-5f32)) as f32;
    w.kv("llama.attention.layer_norm_rms_epsilon", 6, &eps.to_le_bytes());
    let mut toks = 8u32.to_le_bytes().to_vec();
    toks.extend((config.vocab_size as u64).to_le_bytes());
    for t in 0..config.vocab_size {
        string(&mut toks, &format!("t{t}"));
    }
    w.kv("tokenizer.ggml.tokens", 9, &toks);

    // The reference sees exactly what the file holds: dequantised weights.
    let mut dequantised: HashMap<String, Vec<f32>> = HashMap::new();
    let mut names: Vec<&String> = hf.keys().collect();
    names.sort();
    for name in names {
        let values = &hf[name];
        if name.contains("norm") {
            w.tensor(
                &gguf_name(name),
                &[values.len() as u64],
                0,
                &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
            );
            dequantised.insert(name.clone(), values.clone());
            continue;
        }
        let cols = if name.contains("down_proj") { config.intermediate_size } else { h };
        let rows = values.len() / cols;
        let heads = if name.contains("q_proj") {
            Some(config.num_heads)
        } else if name.contains("k_proj") {
            Some(config.num_kv_heads)
        } else {
            None
        };
        let stored = match heads {
            Some(n) => reorder_qk_rows(values, n, hd, cols, QkOrder::Gguf),
            None => values.clone(),
        };
        let bytes = quantize(kind, &stored);
        let kind_id = if kind == GgmlType::Q8_0 { 8 } else { 3 };
        w.tensor(&gguf_name(name), &[cols as u64, rows as u64], kind_id, &bytes);
        let mut back = Vec::new();
        dequantize(kind, &bytes, &mut back);
        let back = match heads {
            // Undo the permutation to get the Hugging Face row order back.
            Some(n) => reorder_qk_rows(&back, n, hd, cols, QkOrder::HuggingFace),
            None => back,
        };
        dequantised.insert(name.clone(), back);
    }
    (w.bytes(), config, dequantised)
}

fn check(kind: GgmlType) {
    let (bytes, config, dequantised) = tiny_gguf(kind, &[]);
    // The fuzz target's seed (fuzz/Cargo.toml): this file, written where asked.
    if let Some(dir) = std::env::var_os("KAILIN_GGUF_SEED_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("tiny-{kind:?}.gguf")), &bytes).unwrap();
    }
    let g = Gguf::from_bytes(bytes, "tiny.gguf").unwrap();
    let device = Default::default();
    let (model, loaded) = Llama::<Flex>::from_gguf(&g, 16, &device).unwrap();
    assert_eq!(loaded, config);
    let seq = [1usize, 5, 2, 9, 4, 12, 0];
    let ids: Vec<i64> = seq.iter().map(|&t| t as i64).collect();
    let logits = model.forward(Tensor::from_data(TensorData::new(ids, [1, seq.len()]), &device)).unwrap();
    let got = logits.into_data().to_vec::<f32>().unwrap();
    let want = reference(&config, &dequantised, &seq);
    for t in 0..seq.len() {
        for v in 0..config.vocab_size {
            let g = f64::from(got[t * config.vocab_size + v]);
            assert!((g - want[t][v]).abs() < 1e-4, "{kind:?} pos {t} token {v}: {g} vs reference {}", want[t][v]);
        }
    }
}

#[test]
fn q8_0_copy_matches_the_reference() {
    check(GgmlType::Q8_0);
}

#[test]
fn q4_1_copy_matches_the_reference() {
    check(GgmlType::Q4_1);
}

#[test]
fn metadata_that_disagrees_with_the_tensors_is_an_error_not_a_panic() {
    for edit in [
        ("llama.attention.head_count", 4.0),
        ("llama.attention.head_count", 3.0),
        ("llama.attention.head_count", 0.0),
        ("llama.attention.head_count_kv", 2.0),
        ("llama.attention.head_count_kv", 0.0),
        ("llama.embedding_length", 32.0),
        ("llama.embedding_length", 128.0),
        ("llama.embedding_length", 4e9),
        ("llama.feed_forward_length", 48.0),
        ("llama.block_count", 0.0),
        ("llama.block_count", 3.0),
        ("llama.rope.freq_base", f64::NAN),
        ("llama.rope.freq_base", -1.0),
        ("llama.attention.layer_norm_rms_epsilon", -1e-5),
    ] {
        let (bytes, ..) = tiny_gguf(GgmlType::Q8_0, &[edit]);
        let g = Gguf::from_bytes(bytes, "edited.gguf").unwrap();
        let loaded = std::panic::catch_unwind(|| Llama::<Flex>::from_gguf(&g, 16, &Default::default()).map(|_| ()));
        match loaded {
            Ok(Err(e)) => assert!(!e.to_string().is_empty()),
            Ok(Ok(())) => panic!("{edit:?}: loaded a model that disagrees with its file"),
            Err(_) => panic!("{edit:?}: panicked"),
        }
    }
}
