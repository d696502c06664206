//! The `tiny` preset's models, written on the spot: a Llama with a word-level tokenizer and a
//! chat template, and a one-layer BERT with a WordPiece vocabulary. Random (deterministic)
//! weights; they exist to run every stage in seconds. Tests elsewhere write theirs with the
//! same functions and their own vocabularies.

use std::path::Path;

use burn::backend::Flex;
use kailin_lm::{Llama, LlamaConfig};

use crate::error::{Error, Result};

/// The tiny preset's Llama words: special tokens (`<unk>`, `<s>`, `</s>` first, as every
/// vocabulary given to [`write_tiny_llama`] must start), the chat template's words, question
/// words, the answers and the fixtures' vocabulary.
pub const TINY_WORDS: &[&str] = &[
    "<unk>",
    "<s>",
    "</s>",
    "user",
    "assistant",
    ":",
    "?",
    ".",
    ",",
    "what",
    "does",
    "do",
    "is",
    "are",
    "which",
    "how",
    "why",
    "the",
    "a",
    "of",
    "in",
    "and",
    "with",
    "for",
    "yes",
    "no",
    "maybe",
    "answer",
    "question",
    "context",
    "aspirin",
    "inhibit",
    "cox",
    "statins",
    "lower",
    "ldl",
    "insulin",
    "glucose",
    "levodopa",
    "parkinson",
    "disease",
    "motor",
    "symptoms",
    "dopamine",
    "asthma",
    "lung",
    "cancer",
    "breast",
    "cisplatin",
    "survival",
    "patients",
    "improve",
    "reduce",
    "study",
    "invented",
    "therapy",
    "drug",
    "tumor",
    "memory",
    "alzheimer",
    "infections",
    "corticosteroids",
    "exacerbations",
    "radiotherapy",
    "recurrence",
];

/// A Llama (2 layers, hidden 16, tied embeddings, `max_positions` positions) with a word-level
/// tokenizer over `words` (whose first three are `<unk>`, `<s>`, `</s>`; lower-casing the
/// input when `lowercase`) and a plain chat template, as a Hugging Face directory.
///
/// Errors: fewer than three words, or the directory cannot be written.
pub fn write_tiny_llama(dir: &Path, words: &[&str], lowercase: bool, max_positions: usize) -> Result<()> {
    if words.len() < 3 {
        return Err(tiny_error(dir, "the vocabulary needs <unk>, <s> and </s> first"));
    }
    let vocab: serde_json::Map<String, serde_json::Value> =
        words.iter().enumerate().map(|(i, w)| ((*w).to_owned(), i.into())).collect();
    let special = |id: usize| {
        serde_json::json!({"id": id, "content": words[id], "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": true})
    };
    let normalizer = if lowercase { serde_json::json!({"type": "Lowercase"}) } else { serde_json::Value::Null };
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0), special(1), special(2)],
        "normalizer": normalizer, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).map_err(io(&dir.join(name)));
    write("tokenizer.json", tokenizer.to_string())?;
    let template = "{% for m in messages %}{{ m.role }} : {{ m.content }} {% endfor %}{% if add_generation_prompt %}assistant : {% endif %}";
    write(
        "tokenizer_config.json",
        serde_json::json!({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true, "chat_template": template})
            .to_string(),
    )?;
    let config = LlamaConfig::new(words.len(), 16, 32, 2, 2, 1).with_tie_embeddings(true);
    let model = Llama::<Flex>::from_weights(&config, max_positions, &Default::default(), |name, shape| {
        let n: usize = shape.iter().product();
        Ok(if name.ends_with("norm.weight") { vec![1.0; n] } else { small_values(name, n) })
    })
    .map_err(|e| tiny_error(dir, e))?;
    model.save_hf_dir(&config, dir).map_err(|e| tiny_error(dir, e))?;
    Ok(())
}

/// The tiny preset's BERT vocabulary: the special tokens, then the Llama's ordinary words.
pub fn tiny_bert_vocab() -> Vec<&'static str> {
    let mut vocab = vec!["[PAD]", "[UNK]", "[CLS]", "[SEP]"];
    vocab.extend(TINY_WORDS.iter().skip(5).copied());
    vocab
}

/// A one-layer BERT (hidden 8, `positions` positions) with the WordPiece `vocab.txt` `vocab`
/// (`[PAD]`, `[UNK]`, `[CLS]`, `[SEP]` first), as a model directory.
///
/// Errors: the directory cannot be written.
pub fn write_tiny_bert(dir: &Path, vocab: &[&str], positions: usize) -> Result<()> {
    let (h, ff) = (8usize, 12usize);
    let io = |source| Error::Io { path: dir.to_owned(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n")).map_err(io)?;
    let config = serde_json::json!({
        "model_type": "bert", "vocab_size": vocab.len(), "hidden_size": h, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": ff, "max_position_embeddings": positions,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
        "position_embedding_type": "absolute"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).map_err(io)?;
    let mut tensors: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![vocab.len(), h]),
        ("embeddings.position_embeddings.weight".into(), vec![positions, h]),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, h]),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    let p = "encoder.layer.0";
    for (name, shape) in [
        ("attention.self.query", vec![h, h]),
        ("attention.self.key", vec![h, h]),
        ("attention.self.value", vec![h, h]),
        ("attention.output.dense", vec![h, h]),
        ("intermediate.dense", vec![ff, h]),
        ("output.dense", vec![h, ff]),
    ] {
        tensors.push((format!("{p}.{name}.bias"), vec![shape[0]]));
        tensors.push((format!("{p}.{name}.weight"), shape));
    }
    for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
        tensors.push((format!("{p}.{norm}.weight"), vec![h]));
        tensors.push((format!("{p}.{norm}.bias"), vec![h]));
    }
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape)| {
            let n = shape.iter().product();
            let values = if name.ends_with("LayerNorm.weight") { vec![1.0f32; n] } else { small_values(&name, n) };
            (name, shape, values.iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect();
    let mut views = Vec::with_capacity(data.len());
    for (name, shape, bytes) in &data {
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
            .map_err(|e| tiny_error(dir, e))?;
        views.push((name.clone(), view));
    }
    let bytes = safetensors::serialize(views, None).map_err(|e| tiny_error(dir, e))?;
    std::fs::write(dir.join("model.safetensors"), bytes).map_err(io)?;
    Ok(())
}

fn tiny_error(dir: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io { path: dir.to_owned(), source: std::io::Error::other(format!("writing a tiny model: {e}")) }
}

/// Deterministic small weights for tensor `name`.
fn small_values(name: &str, n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919 + name.len() * 104_729) % 1000) as f32 / 1000.0 * 0.2 - 0.1).collect()
}
