//! Hugging Face checkpoints: the tiny model written as safetensors (single file and sharded,
//! f32/f16/bf16, with `config.json`) loads through burn's store and matches the naive reference.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::HashMap;
use std::path::Path;

use burn::backend::Flex;
use burn::prelude::*;
use kailin_lm::{Error, Llama, LlamaConfig};

mod common;
use common::{f32_to_bf16, f32_to_f16, reference, safetensors, weights};

type B = Flex;

fn shape_of(c: &LlamaConfig, name: &str) -> Vec<usize> {
    let (h, hd, ff) = (c.hidden_size, c.head_dim(), c.intermediate_size);
    let (q, kv) = (c.num_heads * hd, c.num_kv_heads * hd);
    let last = name.rsplit('.').nth(1).unwrap_or("");
    match (last, name.ends_with(".bias")) {
        ("q_proj", false) => vec![q, h],
        ("k_proj" | "v_proj", false) => vec![kv, h],
        ("o_proj", _) => vec![h, q],
        ("q_proj", true) => vec![q],
        ("k_proj" | "v_proj", true) => vec![kv],
        ("gate_proj" | "up_proj", _) => vec![ff, h],
        ("down_proj", _) => vec![h, ff],
        ("embed_tokens" | "lm_head", _) => vec![c.vocab_size, h],
        _ => vec![h],
    }
}

/// The weights as the reference must see them after a round trip through `dtype`.
fn rounded(w: &HashMap<String, Vec<f32>>, dtype: &str) -> HashMap<String, Vec<f32>> {
    let round = |v: f32| match dtype {
        "F16" => kailin_lm::f16_to_f32(f32_to_f16(v)),
        "BF16" => f32::from_bits(u32::from(f32_to_bf16(v)) << 16),
        _ => v,
    };
    w.iter().map(|(k, v)| (k.clone(), v.iter().map(|&x| round(x)).collect())).collect()
}

fn check(config: &LlamaConfig, w: &HashMap<String, Vec<f32>>, model: &Llama<B>) {
    let seq = [1usize, 5, 2, 9, 4];
    let data: Vec<i64> = seq.iter().map(|&t| t as i64).collect();
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(data, [1, seq.len()]), &Default::default());
    let got = model.forward(tokens).unwrap().into_data().to_vec::<f32>().unwrap();
    let want = reference(config, w, &seq);
    for (t, row) in want.iter().enumerate() {
        for (v, &r) in row.iter().enumerate() {
            let g = f64::from(got[t * config.vocab_size + v]);
            assert!((g - r).abs() < 1e-4, "pos {t} token {v}: {g} vs reference {r}");
        }
    }
}

fn write_config(dir: &Path, c: &LlamaConfig, model_type: &str) {
    let json = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": model_type, "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_layers, "num_attention_heads": c.num_heads,
        "num_key_value_heads": c.num_kv_heads, "rope_theta": c.rope_theta, "rms_norm_eps": c.rms_eps,
        "tie_word_embeddings": c.tie_embeddings, "head_dim": c.head_dim(), "torch_dtype": "bfloat16"});
    std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
}

#[test]
fn single_f32_file_matches_the_reference() {
    let config = LlamaConfig::new(13, 8, 12, 2, 2, 1);
    let w = weights(&config);
    let tensors: Vec<_> = w.iter().map(|(k, v)| (k.as_str(), shape_of(&config, k), v.as_slice())).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.safetensors");
    std::fs::write(&file, safetensors(&tensors, "F32")).unwrap();
    let model = Llama::<B>::from_safetensors(&config, &[file], 16, &Default::default()).unwrap();
    check(&config, &w, &model);
}

#[test]
fn sharded_half_precision_checkpoints_with_config_json() {
    // Untied, Qwen2 (q/k/v biases), and a head width that is not hidden / heads.
    let config = LlamaConfig::new(13, 12, 20, 2, 2, 1)
        .with_tie_embeddings(false)
        .with_attention_bias(true)
        .with_head_dim_override(Some(8))
        .with_rope_theta(1000.0)
        .with_rms_eps(1e-6);
    let w = weights(&config);
    for dtype in ["F16", "BF16"] {
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), &config, "qwen2");
        // Two shards: layer 1 and the head in the second, the rest in the first.
        let mut names: Vec<&String> = w.keys().collect();
        names.sort();
        let (second, first): (Vec<&String>, Vec<&String>) =
            names.into_iter().partition(|n| n.starts_with("model.layers.1.") || n.starts_with("lm_head"));
        let mut map = serde_json::Map::new();
        for (file, part) in
            [("model-00001-of-00002.safetensors", &first), ("model-00002-of-00002.safetensors", &second)]
        {
            let tensors: Vec<_> =
                part.iter().map(|k| (k.as_str(), shape_of(&config, k), w[k.as_str()].as_slice())).collect();
            std::fs::write(dir.path().join(file), safetensors(&tensors, dtype)).unwrap();
            for k in part {
                map.insert((*k).clone(), serde_json::json!(file));
            }
        }
        let index = serde_json::json!({"metadata": {}, "weight_map": map});
        std::fs::write(dir.path().join("model.safetensors.index.json"), index.to_string()).unwrap();
        let (model, loaded) = Llama::<B>::from_hf_dir(dir.path(), 16, &Default::default()).unwrap();
        assert_eq!(loaded, config);
        check(&config, &rounded(&w, dtype), &model);
    }
}

#[test]
fn bad_files_are_typed_errors() {
    let config = LlamaConfig::new(13, 8, 12, 1, 2, 1);
    let w = weights(&config);
    let all: Vec<_> = w.iter().map(|(k, v)| (k.as_str(), shape_of(&config, k), v.as_slice())).collect();
    let good = safetensors(&all, "F32");
    let load = |bytes: Vec<u8>| Llama::<B>::from_safetensors_bytes(&config, bytes, 8, &Default::default());

    // Truncations anywhere: header length, header, data.
    for cut in [0, 4, 8, 20, good.len() / 2, good.len() - 1] {
        let err = load(good[..cut].to_vec()).unwrap_err();
        assert!(matches!(err, Error::Safetensors { .. }), "cut at {cut}: {err}");
    }
    // A header length far past the end (an absurd allocation if believed).
    let mut lying = good.clone();
    lying[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert!(matches!(load(lying), Err(Error::Safetensors { .. })));
    // A missing weight.
    let fewer: Vec<_> = all.iter().filter(|(k, _, _)| !k.ends_with("mlp.up_proj.weight")).cloned().collect();
    let err = load(safetensors(&fewer, "F32")).unwrap_err();
    assert!(matches!(&err, Error::MissingTensor(n) if n.contains("mlp.up")), "{err}");
    // A weight whose shape disagrees with the config.
    let mut wrong = all.clone();
    for t in &mut wrong {
        if t.0.ends_with("0.self_attn.k_proj.weight") {
            t.1 = vec![2, 8];
            t.2 = &t.2[..16];
        }
    }
    let err = load(safetensors(&wrong, "F32")).unwrap_err();
    assert!(matches!(&err, Error::Shape { tensor, .. } if tensor.contains("attn.k")), "{err}");

    // Index files naming shards outside the directory, or nothing at all.
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &config, "llama");
    for index in [r#"{"weight_map": {"a": "../x.safetensors"}}"#, r#"{"weight_map": {}}"#, "[]"] {
        std::fs::write(dir.path().join("model.safetensors.index.json"), index).unwrap();
        let err = Llama::<B>::from_hf_dir(dir.path(), 8, &Default::default()).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{index}: {err}");
    }
    std::fs::remove_file(dir.path().join("model.safetensors.index.json")).unwrap();
    assert!(matches!(Llama::<B>::from_hf_dir(dir.path(), 8, &Default::default()), Err(Error::Io { .. })));
}
