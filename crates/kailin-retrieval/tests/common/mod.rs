//! A tiny BERT with fixed weights, shared by the integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use burn::backend::Flex;
use kailin_retrieval::{Bert, BertConfig, BertTokenizer, Encoder, Pooling};

pub const VOCAB: &[&str] =
    &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cell", "gene", "protein", "liver", "binds", "##s", "a"];
pub const H: usize = 8;
pub const HEADS: usize = 2;
pub const FF: usize = 12;
pub const LAYERS: usize = 2;
pub const MAXPOS: usize = 16;

pub fn config() -> BertConfig {
    BertConfig {
        vocab_size: VOCAB.len(),
        hidden_size: H,
        num_layers: LAYERS,
        num_heads: HEADS,
        intermediate_size: FF,
        max_positions: MAXPOS,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
    }
}

/// Deterministic weights: name → (shape, values).
pub fn weights() -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut w = BTreeMap::new();
    let mut seed = 7u64;
    let mut add = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
        let n = shape.iter().product();
        let v = (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                offset + scale * (((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5)
            })
            .collect();
        w.insert(name, (shape, v));
    };
    add("embeddings.word_embeddings.weight".into(), vec![VOCAB.len(), H], 1.0, 0.0);
    add("embeddings.position_embeddings.weight".into(), vec![MAXPOS, H], 0.5, 0.0);
    add("embeddings.token_type_embeddings.weight".into(), vec![2, H], 0.5, 0.0);
    add("embeddings.LayerNorm.weight".into(), vec![H], 0.4, 1.0);
    add("embeddings.LayerNorm.bias".into(), vec![H], 0.2, 0.0);
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}");
        for part in ["query", "key", "value"] {
            add(format!("{p}.attention.self.{part}.weight"), vec![H, H], 0.8, 0.0);
            add(format!("{p}.attention.self.{part}.bias"), vec![H], 0.2, 0.0);
        }
        add(format!("{p}.attention.output.dense.weight"), vec![H, H], 0.8, 0.0);
        add(format!("{p}.attention.output.dense.bias"), vec![H], 0.2, 0.0);
        add(format!("{p}.attention.output.LayerNorm.weight"), vec![H], 0.4, 1.0);
        add(format!("{p}.attention.output.LayerNorm.bias"), vec![H], 0.2, 0.0);
        add(format!("{p}.intermediate.dense.weight"), vec![FF, H], 0.8, 0.0);
        add(format!("{p}.intermediate.dense.bias"), vec![FF], 0.2, 0.0);
        add(format!("{p}.output.dense.weight"), vec![H, FF], 0.8, 0.0);
        add(format!("{p}.output.dense.bias"), vec![H], 0.2, 0.0);
        add(format!("{p}.output.LayerNorm.weight"), vec![H], 0.4, 1.0);
        add(format!("{p}.output.LayerNorm.bias"), vec![H], 0.2, 0.0);
    }
    // Unused by the encoder: must be ignored.
    add("pooler.dense.weight".into(), vec![H, H], 1.0, 0.0);
    w
}

/// A safetensors file: 8-byte header length, JSON header, little-endian f32 data.
pub fn safetensors(w: &BTreeMap<String, (Vec<usize>, Vec<f32>)>, prefix: &str) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, (shape, values)) in w {
        let start = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            format!("{prefix}{name}"),
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [start, data.len()] }),
        );
    }
    let mut header = serde_json::to_vec(&header).unwrap();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(data);
    out
}

/// The tiny model, written as a safetensors file in `dir` (names with `prefix`) and loaded.
pub fn model(dir: &Path, prefix: &str) -> Bert<Flex> {
    let file = dir.join(format!("model{}.safetensors", prefix.len()));
    std::fs::write(&file, safetensors(&weights(), prefix)).unwrap();
    Bert::<Flex>::from_safetensors(&config(), &file, &Default::default()).unwrap()
}

/// The tiny vocabulary's tokenizer (written as `vocab.txt` in `dir`).
pub fn tokenizer(dir: &Path) -> BertTokenizer {
    let vocab = dir.join("vocab.txt");
    std::fs::write(&vocab, VOCAB.join("\n")).unwrap();
    BertTokenizer::from_vocab(&vocab, true).unwrap()
}

/// A mean-pooling, normalising encoder over the tiny model.
pub fn encoder(dir: &Path, identity: &str) -> Encoder<Flex> {
    Encoder::from_parts(model(dir, ""), tokenizer(dir), Pooling::Mean, true, identity.into(), Default::default())
        .unwrap()
}

/// The tiny model as a sentence-transformers directory in `dir`: `config.json`,
/// `model.safetensors` (weights scaled by `scale`, so two directories can differ),
/// `vocab.txt`, mean pooling and normalisation.
pub fn write_dir(dir: &Path, scale: f32) {
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    let config = serde_json::json!({
        "model_type": "bert", "vocab_size": VOCAB.len(), "hidden_size": H, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "intermediate_size": FF, "max_position_embeddings": MAXPOS,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
        "position_embedding_type": "absolute"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut w = weights();
    for (_, values) in w.values_mut() {
        values.iter_mut().for_each(|v| *v *= scale);
    }
    std::fs::write(dir.join("model.safetensors"), safetensors(&w, "")).unwrap();
    std::fs::write(dir.join("vocab.txt"), VOCAB.join("\n")).unwrap();
    let modules = serde_json::json!([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
    ]);
    std::fs::write(dir.join("modules.json"), modules.to_string()).unwrap();
    let pooling = serde_json::json!({"word_embedding_dimension": H, "pooling_mode_mean_tokens": true});
    std::fs::write(dir.join("1_Pooling/config.json"), pooling.to_string()).unwrap();
}
