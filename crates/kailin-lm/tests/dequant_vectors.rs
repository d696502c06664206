//! Dequantisation against an independent implementation: vectors made by the numpy code of the
//! `gguf` Python package (`fixtures/gguf/make_vectors.py`).
#![allow(clippy::unwrap_used)]

use kailin_lm::{GgmlType, dequantize};

#[test]
fn matches_gguf_py_for_every_type() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/gguf/quant_vectors.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = Vec::new();
    for v in doc["vectors"].as_array().unwrap() {
        let name = v["type"].as_str().unwrap();
        let kind = match name {
            "Q4_0" => GgmlType::Q4_0,
            "Q4_1" => GgmlType::Q4_1,
            "Q8_0" => GgmlType::Q8_0,
            "Q4_K" => GgmlType::Q4K,
            "Q5_K" => GgmlType::Q5K,
            "Q6_K" => GgmlType::Q6K,
            "F16" => GgmlType::F16,
            "BF16" => GgmlType::Bf16,
            other => panic!("unexpected type {other}"),
        };
        let hex = v["hex"].as_str().unwrap();
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let want: Vec<f32> = v["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let mut got = Vec::new();
        dequantize(kind, &bytes, &mut got);
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{name}[{i}]: {g} vs gguf-py {w}");
        }
        checked.push(name.to_owned());
    }
    assert_eq!(checked.len(), 8);
}
