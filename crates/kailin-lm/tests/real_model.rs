//! The real SmolLM2-135M-Instruct GGUF (`cargo xtask fetch-models`); skips with a message when
//! it has not been fetched. Expected values: `shared/notes/models.md`.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::PathBuf;

use kailin_lm::{GgmlType, Gguf, Value};

fn model() -> Option<PathBuf> {
    let dir = std::env::var_os("KAILIN_MODELS").map(PathBuf::from).or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|c| c.join("kailin/models"))
    })?;
    let path = dir.join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: {} not found (run `cargo xtask fetch-models`)", path.display());
        None
    }
}

#[test]
fn smollm2_metadata_and_every_tensor() {
    let Some(path) = model() else { return };
    let g = Gguf::open(&path).unwrap();
    let u = |k: &str| g.get(k).and_then(Value::as_u64).unwrap_or_else(|| panic!("{k}"));
    let s = |k: &str| g.get(k).and_then(Value::as_str).unwrap_or_else(|| panic!("{k}")).to_owned();
    assert_eq!(g.version(), 3);
    assert_eq!(s("general.architecture"), "llama");
    assert_eq!(u("llama.block_count"), 30);
    assert_eq!(u("llama.embedding_length"), 576);
    assert_eq!(u("llama.attention.head_count"), 9);
    assert_eq!(u("llama.attention.head_count_kv"), 3);
    assert_eq!(u("llama.feed_forward_length"), 1536);
    assert_eq!(u("llama.rope.dimension_count"), 64);
    assert_eq!(u("llama.context_length"), 8192);
    assert_eq!(g.get("llama.rope.freq_base").and_then(Value::as_f64), Some(100000.0));
    assert!((g.get("llama.attention.layer_norm_rms_epsilon").and_then(Value::as_f64).unwrap() - 1e-5).abs() < 1e-9);
    assert_eq!(s("tokenizer.ggml.model"), "gpt2");
    assert_eq!(s("tokenizer.ggml.pre"), "smollm");
    assert_eq!(g.get("tokenizer.ggml.tokens").and_then(Value::as_array).map(<[Value]>::len), Some(49152));
    assert_eq!((u("tokenizer.ggml.bos_token_id"), u("tokenizer.ggml.eos_token_id")), (1, 2));
    assert!(s("tokenizer.chat_template").contains("<|im_start|>"));

    let mut kinds = std::collections::BTreeMap::new();
    let mut params = 0u64;
    for t in g.tensors() {
        *kinds.entry(format!("{:?}", t.kind)).or_insert(0) += 1;
        params += t.elements();
        let values = g.dequantize(&t.name).unwrap();
        assert_eq!(values.len() as u64, t.elements());
        assert!(values.iter().all(|v| v.is_finite()), "{} has non-finite values", t.name);
    }
    eprintln!("tensor types: {kinds:?}, {params} parameters");
    assert_eq!(kinds.get("Q8_0"), Some(&1));
    assert!(kinds.get("Q4_1").copied().unwrap_or(0) > kinds.get("F32").copied().unwrap_or(0));
    assert!((130_000_000..140_000_000).contains(&params), "{params}");
    assert_eq!(g.tensor("token_embd.weight").unwrap().dims, [576, 49152]);
    assert!(matches!(g.tensor("output_norm.weight").unwrap().kind, GgmlType::F32));
}
