//! What the CLI's integration tests share: running the binary (bounded in time) and tiny
//! models written by the test (a Llama with a word-level tokenizer, a BERT with a WordPiece
//! vocabulary).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use burn::backend::Flex;
use kailin_lm::{Llama, LlamaConfig};

/// A fixture file of the repository.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(rel)
}

/// How a run of the binary ended.
#[derive(Debug)]
pub struct Run {
    pub output: Output,
    /// Killed after the time limit.
    pub timed_out: bool,
}

/// Runs `kailin ARGS` with `stdin`, killed after `limit`. Its output is read as it comes (a
/// child writing more than a pipe holds must not stall).
pub fn kailin_timed(args: &[&str], stdin: &[u8], limit: Duration) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kailin"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kailin runs");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // A writer thread: a child that never reads stdin must not block the test.
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            timed_out = true;
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = feeder.join();
    let output = Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() };
    Run { output, timed_out }
}

pub const WORDS: &[&str] = &[
    "<unk>",
    "<s>",
    "</s>",
    "user",
    "assistant",
    ":",
    "what",
    "does",
    "aspirin",
    "inhibit",
    "cox",
    "statins",
    "lower",
    "ldl",
    "insulin",
    "glucose",
    "yes",
    "no",
    "why",
    "abstract",
    "on",
    "?",
    ".",
    "it",
    "A",
    "B",
    "maybe",
];

/// A tiny Llama and a word-level tokenizer with a plain chat template, as a model directory.
pub fn tiny_llama(dir: &Path) {
    let vocab: serde_json::Map<String, serde_json::Value> =
        WORDS.iter().enumerate().map(|(i, w)| ((*w).to_owned(), i.into())).collect();
    let special = |id: usize| {
        serde_json::json!({"id": id, "content": WORDS[id], "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": true})
    };
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0), special(1), special(2)],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let template = "{% for m in messages %}{{ m.role }} : {{ m.content }} {% endfor %}{% if add_generation_prompt %}assistant : {% endif %}";
    let config =
        serde_json::json!({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true, "chat_template": template});
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    let config = LlamaConfig::new(WORDS.len(), 16, 32, 2, 2, 1).with_tie_embeddings(true);
    let model = Llama::<Flex>::from_weights(&config, 64, &Default::default(), |name, shape| {
        let n: usize = shape.iter().product();
        Ok(if name.ends_with("norm.weight") { vec![1.0; n] } else { small_values(name, n) })
    })
    .unwrap();
    model.save_hf_dir(&config, dir).unwrap();
}

/// Deterministic small weights for tensor `name`.
fn small_values(name: &str, n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919 + name.len() * 104_729) % 1000) as f32 / 1000.0 * 0.2 - 0.1).collect()
}

/// A tiny one-layer BERT (hidden 8) with a WordPiece `vocab.txt`, as a model directory.
pub fn tiny_bert(dir: &Path) {
    let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "aspirin", "cox", "liver", "gene", "the", "##s"];
    let (h, ff) = (8usize, 12usize);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n")).unwrap();
    let config = serde_json::json!({
        "model_type": "bert", "vocab_size": vocab.len(), "hidden_size": h, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": ff, "max_position_embeddings": 32,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
        "position_embedding_type": "absolute"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut tensors: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![vocab.len(), h]),
        ("embeddings.position_embeddings.weight".into(), vec![32, h]),
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
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(name, shape, bytes)| {
            (name.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).unwrap())
        })
        .collect();
    std::fs::write(dir.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
}
