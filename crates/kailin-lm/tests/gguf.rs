//! GGUF parsing on files written here: every value type, tensors, alignment, and every way a
//! file can lie.
#![allow(clippy::unwrap_used)]

use kailin_lm::{Error, GgmlType, Gguf, GgufValue};

mod common;
use common::{Writer, string};

fn sample() -> Writer {
    let mut w = Writer::new();
    let mut s = Vec::new();
    string(&mut s, "llama");
    let mut arr = 8u32.to_le_bytes().to_vec(); // array of strings
    arr.extend(2u64.to_le_bytes());
    string(&mut arr, "<s>");
    string(&mut arr, "</s>");
    let mut nested = 9u32.to_le_bytes().to_vec(); // array of arrays of u32
    nested.extend(1u64.to_le_bytes());
    nested.extend(4u32.to_le_bytes());
    nested.extend(2u64.to_le_bytes());
    nested.extend(7u32.to_le_bytes());
    nested.extend(9u32.to_le_bytes());
    w.kv("general.architecture", 8, &s)
        .kv("llama.block_count", 4, &30u32.to_le_bytes())
        .kv("llama.rope.freq_base", 6, &100000f32.to_le_bytes())
        .kv("tokenizer.ggml.tokens", 9, &arr)
        .kv("nested", 9, &nested)
        .kv("flag", 7, &[1])
        .kv("big", 10, &u64::MAX.to_le_bytes())
        .kv("neg", 11, &(-5i64).to_le_bytes())
        .kv("pi", 12, &std::f64::consts::PI.to_le_bytes())
        .kv("small", 0, &[200])
        .kv("short", 3, &(-300i16).to_le_bytes());
    let f32s: Vec<u8> = [1.5f32, -2.0, 0.25, 8.0, 3.0, -1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    w.tensor("a.weight", &[3, 2], 0, &f32s);
    let mut q8 = vec![0x00, 0x38]; // d = 0.5
    q8.extend((0..32).map(|i| (i as i8 - 10) as u8));
    w.tensor("b.weight", &[32], 8, &q8);
    let mut q41 = vec![0x00, 0x3c, 0x00, 0x40]; // d = 1, m = 2
    q41.extend((0..16u8).map(|i| i | (i << 4)));
    w.tensor("c.weight", &[32, 1], 3, &q41);
    w
}

#[test]
fn reads_metadata_and_tensors() {
    let g = Gguf::from_bytes(sample().bytes(), "sample").unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.get("general.architecture").and_then(GgufValue::as_str), Some("llama"));
    assert_eq!(g.get("llama.block_count").and_then(GgufValue::as_u64), Some(30));
    assert_eq!(g.get("llama.rope.freq_base").and_then(GgufValue::as_f64), Some(100000.0));
    let toks: Vec<&str> =
        g.get("tokenizer.ggml.tokens").unwrap().as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(toks, ["<s>", "</s>"]);
    assert_eq!(
        g.get("nested"),
        Some(&GgufValue::Array(vec![GgufValue::Array(vec![GgufValue::U32(7), GgufValue::U32(9)])]))
    );
    assert_eq!(g.get("flag"), Some(&GgufValue::Bool(true)));
    assert_eq!(g.get("neg").and_then(GgufValue::as_u64), None, "negative is no u64");
    assert_eq!(g.get("short"), Some(&GgufValue::I16(-300)));
    assert_eq!(g.tensors().len(), 3);
    assert_eq!(g.dequantize("a.weight").unwrap(), [1.5, -2.0, 0.25, 8.0, 3.0, -1.0]);
    assert_eq!(g.dequantize("b.weight").unwrap(), (0..32).map(|i| 0.5 * (i - 10) as f32).collect::<Vec<_>>());
    let c = g.dequantize("c.weight").unwrap();
    assert_eq!(&c[..3], [2.0, 3.0, 4.0]);
    assert_eq!(g.tensor("c.weight").unwrap().kind, GgmlType::Q4_1);
    assert!(matches!(g.dequantize("missing"), Err(Error::MissingTensor(_))));
    // The same file from disk, memory-mapped.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, sample().bytes()).unwrap();
    assert_eq!(Gguf::open(&path).unwrap().dequantize("b.weight").unwrap(), g.dequantize("b.weight").unwrap());
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample().bytes();
    for cut in 0..bytes.len() {
        match Gguf::from_bytes(bytes[..cut].to_vec(), "cut") {
            Err(Error::Gguf { .. }) => {}
            other => panic!("cut at {cut} of {}: {other:?}", bytes.len()),
        }
    }
}

#[test]
fn lies_are_refused() {
    let gguf_err = |bytes: Vec<u8>, needle: &str| {
        let err = Gguf::from_bytes(bytes, "lie").unwrap_err().to_string();
        assert!(err.contains(needle), "{err} (wanted {needle:?})");
    };
    let good = sample().bytes();
    let mut b = good.clone();
    b[0] = b'X';
    gguf_err(b, "bad magic");
    let mut b = good.clone();
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    gguf_err(b, "version 1");
    let mut b = good.clone();
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    gguf_err(b, "tensor count claims");
    let mut b = good.clone();
    b[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    gguf_err(b, "metadata count claims");
    // A string length past the end: the first key's length.
    let mut b = good.clone();
    b[24..32].copy_from_slice(&(1u64 << 50).to_le_bytes());
    gguf_err(b, "metadata key claims");

    let mut w = Writer::new();
    w.tensor("t", &[32], 99, &[0; 32]);
    assert!(matches!(Gguf::from_bytes(w.bytes(), "x"), Err(Error::UnsupportedType { kind: 99, .. })));
    let mut w = Writer::new();
    w.tensor("t", &[64], 0, &[0; 16]);
    gguf_err(w.bytes(), "runs past the end");
    let mut w = Writer::new();
    w.tensor("t", &[1, 1, 1, 1, 1], 0, &[0; 4]);
    gguf_err(w.bytes(), "rank 5");
    let mut w = Writer::new();
    w.tensor("t", &[33], 8, &[0; 64]);
    gguf_err(w.bytes(), "whole number of Q8_0 blocks");
    let mut w = Writer::new();
    w.tensor("t", &[u64::MAX, 4], 0, &[0; 4]);
    gguf_err(w.bytes(), "whole number");
    let mut w = Writer::new();
    w.tensor("t", &[1], 0, &[0; 4]).tensor("t", &[1], 0, &[0; 4]);
    gguf_err(w.bytes(), "appears twice");
    let mut w = Writer::new();
    w.kv("k", 4, &1u32.to_le_bytes()).kv("k", 4, &2u32.to_le_bytes());
    gguf_err(w.bytes(), "appears twice");
    let mut w = Writer::new();
    w.kv("k", 13, &[]);
    gguf_err(w.bytes(), "unknown metadata type 13");
    let mut w = Writer::new();
    w.kv("general.alignment", 4, &24u32.to_le_bytes());
    gguf_err(w.bytes(), "not a power of two");
}

#[test]
fn custom_alignment() {
    let mut w = Writer::new();
    w.alignment = 64;
    w.kv("general.alignment", 4, &64u32.to_le_bytes());
    w.tensor("x", &[2], 0, &[0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]);
    w.tensor("y", &[1], 0, &[0, 0, 0x40, 0x40]);
    let g = Gguf::from_bytes(w.bytes(), "aligned").unwrap();
    assert_eq!(g.dequantize("x").unwrap(), [1.0, 2.0]);
    assert_eq!(g.dequantize("y").unwrap(), [3.0]);
    assert_eq!(g.tensor("y").unwrap().offset % 64, 0);
}
