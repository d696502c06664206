//! A tiny BERT with fixed weights, written as a Hugging Face safetensors file, against a
//! straightforward reference written here (naive loops in f64).
#![allow(missing_docs, clippy::unwrap_used, clippy::needless_range_loop)]

use std::collections::BTreeMap;
use std::path::Path;

use burn::backend::Flex;
use kailin_retrieval::{Bert, BertConfig, BertTokenizer, Encoder, Pooling};

const VOCAB: &[&str] =
    &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cell", "gene", "protein", "liver", "binds", "##s", "a"];
const H: usize = 8;
const HEADS: usize = 2;
const FF: usize = 12;
const LAYERS: usize = 2;
const MAXPOS: usize = 16;

fn config() -> BertConfig {
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
fn weights() -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
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
fn safetensors(w: &BTreeMap<String, (Vec<usize>, Vec<f32>)>, prefix: &str) -> Vec<u8> {
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

// ---- the reference ----

fn erf(x: f64) -> f64 {
    // Abramowitz & Stegun 7.1.26 is too coarse here; use the series / continued fraction of
    // erfc via its relation to the regularised gamma function, summed to convergence.
    if x.abs() < 3.0 {
        let mut sum = x;
        let mut term = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        x.signum()
    }
}

fn get<'a>(w: &'a BTreeMap<String, (Vec<usize>, Vec<f32>)>, name: &str) -> &'a [f32] {
    &w[name].1
}

fn layer_norm(x: &[f64], g: &[f32], b: &[f32]) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    x.iter().enumerate().map(|(i, v)| (v - mean) / (var + 1e-12).sqrt() * f64::from(g[i]) + f64::from(b[i])).collect()
}

/// y = W x + b with W `[out, in]` row-major (PyTorch layout).
fn linear(x: &[f64], w: &[f32], b: &[f32]) -> Vec<f64> {
    let (out, inp) = (b.len(), x.len());
    (0..out).map(|o| f64::from(b[o]) + (0..inp).map(|i| f64::from(w[o * inp + i]) * x[i]).sum::<f64>()).collect()
}

/// Hidden states of one unpadded sequence.
fn reference(w: &BTreeMap<String, (Vec<usize>, Vec<f32>)>, ids: &[u32]) -> Vec<Vec<f64>> {
    let n = ids.len();
    let mut x: Vec<Vec<f64>> = (0..n)
        .map(|t| {
            let e: Vec<f64> = (0..H)
                .map(|i| {
                    f64::from(get(w, "embeddings.word_embeddings.weight")[ids[t] as usize * H + i])
                        + f64::from(get(w, "embeddings.position_embeddings.weight")[t * H + i])
                        + f64::from(get(w, "embeddings.token_type_embeddings.weight")[i])
                })
                .collect();
            layer_norm(&e, get(w, "embeddings.LayerNorm.weight"), get(w, "embeddings.LayerNorm.bias"))
        })
        .collect();
    let hd = H / HEADS;
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}");
        let lin = |x: &[f64], name: &str| {
            linear(x, get(w, &format!("{p}.{name}.weight")), get(w, &format!("{p}.{name}.bias")))
        };
        let q: Vec<Vec<f64>> = x.iter().map(|v| lin(v, "attention.self.query")).collect();
        let k: Vec<Vec<f64>> = x.iter().map(|v| lin(v, "attention.self.key")).collect();
        let v: Vec<Vec<f64>> = x.iter().map(|v| lin(v, "attention.self.value")).collect();
        let mut next = Vec::new();
        for t in 0..n {
            let mut ctx = vec![0.0; H];
            for h in 0..HEADS {
                let r = h * hd..(h + 1) * hd;
                let s: Vec<f64> =
                    (0..n).map(|u| r.clone().map(|i| q[t][i] * k[u][i]).sum::<f64>() / (hd as f64).sqrt()).collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for u in 0..n {
                    for i in r.clone() {
                        ctx[i] += e[u] / z * v[u][i];
                    }
                }
            }
            let a = lin(&ctx, "attention.output.dense");
            let res: Vec<f64> = (0..H).map(|i| x[t][i] + a[i]).collect();
            let y = layer_norm(
                &res,
                get(w, &format!("{p}.attention.output.LayerNorm.weight")),
                get(w, &format!("{p}.attention.output.LayerNorm.bias")),
            );
            let up: Vec<f64> =
                lin(&y, "intermediate.dense").iter().map(|u| 0.5 * u * (1.0 + erf(u / 2f64.sqrt()))).collect();
            let down = lin(&up, "output.dense");
            let res: Vec<f64> = (0..H).map(|i| y[i] + down[i]).collect();
            next.push(layer_norm(
                &res,
                get(w, &format!("{p}.output.LayerNorm.weight")),
                get(w, &format!("{p}.output.LayerNorm.bias")),
            ));
        }
        x = next;
    }
    x
}

fn model(dir: &Path, prefix: &str) -> Bert<Flex> {
    let file = dir.join(format!("model{}.safetensors", prefix.len()));
    std::fs::write(&file, safetensors(&weights(), prefix)).unwrap();
    Bert::<Flex>::from_safetensors(&config(), &file, &Default::default()).unwrap()
}

#[test]
fn hidden_states_equal_the_reference_with_padding_and_either_name_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights();
    let seqs: [&[u32]; 2] = [&[2, 4, 5, 9, 6, 3], &[2, 7, 3]];
    for prefix in ["", "bert."] {
        let bert = model(dir.path(), prefix);
        let seq = 6;
        let mut ids = Vec::new();
        for s in seqs {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(0, seq - s.len()));
        }
        let out = bert.forward(&ids, &[6, 3], &Default::default()).unwrap();
        let out = out.into_data().to_vec::<f32>().unwrap();
        for (b, s) in seqs.iter().enumerate() {
            let want = reference(&w, s);
            for t in 0..s.len() {
                for i in 0..H {
                    let got = out[(b * seq + t) * H + i];
                    assert!(
                        (f64::from(got) - want[t][i]).abs() < 1e-4,
                        "prefix {prefix:?} seq {b} token {t} dim {i}: {got} vs {}",
                        want[t][i]
                    );
                }
            }
        }
    }
}

#[test]
fn encoder_pools_and_normalises_like_the_reference_in_any_batch() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = dir.path().join("vocab.txt");
    std::fs::write(&vocab, VOCAB.join("\n")).unwrap();
    let tokenizer = BertTokenizer::from_vocab(&vocab, true).unwrap();
    assert_eq!(tokenizer.encode("The cells binds").unwrap().0, vec![2, 4, 5, 10, 9, 3]);
    let w = weights();
    for pooling in [Pooling::Mean, Pooling::Cls] {
        let encoder = Encoder::from_parts(
            model(dir.path(), ""),
            tokenizer.clone(),
            pooling,
            true,
            "tiny".into(),
            Default::default(),
        );
        let texts = ["the cell binds a gene", "protein", "liver cells"];
        let all = encoder.encode(&texts).unwrap();
        for (row, text) in texts.iter().enumerate() {
            let ids = tokenizer.encode(text).unwrap().0;
            let states = reference(&w, &ids);
            let mut v: Vec<f64> = match pooling {
                Pooling::Mean => (0..H).map(|i| states.iter().map(|s| s[i]).sum::<f64>() / ids.len() as f64).collect(),
                Pooling::Cls => states[0].clone(),
            };
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            let alone = encoder.encode(&[*text]).unwrap();
            for i in 0..H {
                assert!((f64::from(all[[row, i]]) - v[i]).abs() < 1e-4, "{pooling:?} {text:?} dim {i}");
                assert!((all[[row, i]] - alone[[0, i]]).abs() < 1e-5, "batching changed {text:?}");
            }
        }
        let err = encoder.encode(&["the cell", "  "]).unwrap_err();
        assert!(matches!(err, kailin_retrieval::Error::Text { index: 1, .. }), "{err}");
    }
}

#[test]
fn a_misshapen_or_missing_weight_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = weights();
    w.get_mut("encoder.layer.1.intermediate.dense.weight").unwrap().0 = vec![FF - 1, H];
    w.get_mut("encoder.layer.1.intermediate.dense.weight").unwrap().1.truncate((FF - 1) * H);
    let bad = Bert::<Flex>::from_safetensors_bytes(&config(), safetensors(&w, ""), &Default::default());
    assert!(bad.unwrap_err().to_string().contains("layers.1.ffn.up"));
    let mut w = weights();
    w.remove("encoder.layer.0.attention.self.key.bias");
    let err = Bert::<Flex>::from_safetensors_bytes(&config(), safetensors(&w, ""), &Default::default()).unwrap_err();
    assert!(err.to_string().contains("layers.0.attention.key.bias"), "{err}");
    let missing = Bert::<Flex>::from_safetensors(&config(), &dir.path().join("none.safetensors"), &Default::default());
    assert!(matches!(missing, Err(kailin_retrieval::Error::Io { .. })));
}
