//! A tiny BERT with fixed weights, written as a Hugging Face safetensors file, against a
//! straightforward reference written here (naive loops in f64).
#![allow(missing_docs, clippy::unwrap_used, clippy::needless_range_loop)]

mod common;

use std::collections::BTreeMap;

use burn::backend::Flex;
use common::{FF, H, HEADS, LAYERS, config, model, safetensors, weights};
use kailin_retrieval::{Bert, Encoder, Pooling};

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
    let tokenizer = common::tokenizer(dir.path());
    assert_eq!(tokenizer.encode("The cells binds").unwrap().0, vec![2, 4, 5, 10, 9, 3]);
    let w = weights();
    // On the CPU backend the encoder runs its own kernels by default; burn's path is checked too.
    let cases = [(Pooling::Mean, true), (Pooling::Cls, true), (Pooling::Mean, false), (Pooling::Cls, false)];
    for (pooling, native) in cases {
        let mut encoder = Encoder::from_parts(
            model(dir.path(), ""),
            tokenizer.clone(),
            pooling,
            true,
            "tiny".into(),
            Default::default(),
        )
        .unwrap();
        assert!(encoder.is_native(), "the CPU kernels are the default on Flex");
        encoder.set_native(native).unwrap();
        assert_eq!(encoder.is_native(), native);
        let texts = ["the cell binds a gene", "protein", "liver cells"];
        let all = encoder.encode(&texts).unwrap();
        let pooled = |ids: &[u32]| -> Vec<f64> {
            let states = reference(&w, ids);
            let mut v: Vec<f64> = match pooling {
                Pooling::Mean => (0..H).map(|i| states.iter().map(|s| s[i]).sum::<f64>() / ids.len() as f64).collect(),
                Pooling::Cls => states[0].clone(),
            };
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            v
        };
        for (row, text) in texts.iter().enumerate() {
            let v = pooled(&tokenizer.encode(text).unwrap().0);
            let alone = encoder.encode(&[*text]).unwrap();
            for i in 0..H {
                assert!((f64::from(all[[row, i]]) - v[i]).abs() < 1e-4, "{pooling:?} native {native} {text:?} dim {i}");
                assert!((all[[row, i]] - alone[[0, i]]).abs() < 1e-5, "batching changed {text:?}");
            }
        }
        let err = encoder.encode(&["the cell", "  "]).unwrap_err();
        assert!(matches!(err, kailin_retrieval::Error::Text { index: 1, .. }), "{err}");
        // Over the 16-position window: truncated to it by default, refused when asked.
        let long = "the cell binds a gene ".repeat(5);
        let cut = encoder.encode(&[long.as_str()]).unwrap();
        let full = tokenizer.encode(&long).unwrap().0; // this tokenizer has no window: 27 ids
        assert_eq!(full.len(), 27);
        let mut window = full[..common::MAXPOS - 1].to_vec(); // [CLS] and 14 words…
        window.push(3); // …and [SEP]
        let v = pooled(&window);
        for i in 0..H {
            assert!(
                (f64::from(cut[[0, i]]) - v[i]).abs() < 1e-4,
                "{pooling:?} native {native} truncated text, dim {i}"
            );
        }
        encoder.set_truncate(false);
        let err = encoder.encode(&["protein", long.as_str()]).unwrap_err();
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
