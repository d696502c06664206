//! Shared by the integration tests: a minimal GGUF writer, deterministic weights, and a naive
//! reference implementation of the decoder (plain loops in f64).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::needless_range_loop)]

use std::collections::HashMap;

use kailin_lm::LlamaConfig;

/// A minimal GGUF writer for the tests.
#[derive(Default)]
pub struct Writer {
    pub kv: Vec<u8>,
    pub n_kv: u64,
    pub infos: Vec<u8>,
    pub n_tensors: u64,
    pub data: Vec<u8>,
    pub alignment: usize,
}

pub fn string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

impl Writer {
    pub fn new() -> Self {
        Writer { alignment: 32, ..Default::default() }
    }
    pub fn kv(&mut self, key: &str, kind: u32, value: &[u8]) -> &mut Self {
        string(&mut self.kv, key);
        self.kv.extend(kind.to_le_bytes());
        self.kv.extend(value);
        self.n_kv += 1;
        self
    }
    pub fn tensor(&mut self, name: &str, dims: &[u64], kind: u32, data: &[u8]) -> &mut Self {
        while !self.data.len().is_multiple_of(self.alignment) {
            self.data.push(0);
        }
        string(&mut self.infos, name);
        self.infos.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend(d.to_le_bytes());
        }
        self.infos.extend(kind.to_le_bytes());
        self.infos.extend((self.data.len() as u64).to_le_bytes());
        self.data.extend(data);
        self.n_tensors += 1;
        self
    }
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        out.extend(&self.infos);
        while !out.len().is_multiple_of(self.alignment) {
            out.push(0);
        }
        out.extend(&self.data);
        out
    }
}

/// Deterministic weights in [-0.25, 0.25], different for every tensor and index.
pub fn weight(name: &str, n: usize) -> Vec<f32> {
    let seed = name.bytes().fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (0..n)
        .map(|i| {
            let x = seed.wrapping_add(i as u64 * 7919).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            (x % 1000) as f32 / 2000.0 - 0.25
        })
        .collect()
}

pub fn weights(c: &LlamaConfig) -> HashMap<String, Vec<f32>> {
    let (h, hd) = (c.hidden_size, c.head_dim());
    let (q, kv) = (c.num_heads * hd, c.num_kv_heads * hd);
    let mut w = HashMap::new();
    let mut put = |name: String, n: usize| {
        w.insert(name.clone(), weight(&name, n));
    };
    put("model.embed_tokens.weight".into(), c.vocab_size * h);
    put("model.norm.weight".into(), h);
    if !c.tie_embeddings {
        put("lm_head.weight".into(), c.vocab_size * h);
    }
    for l in 0..c.num_layers {
        let p = format!("model.layers.{l}");
        for (n, size) in [("q_proj", q * h), ("k_proj", kv * h), ("v_proj", kv * h), ("o_proj", h * q)] {
            put(format!("{p}.self_attn.{n}.weight"), size);
        }
        if c.attention_bias {
            put(format!("{p}.self_attn.q_proj.bias"), q);
            put(format!("{p}.self_attn.k_proj.bias"), kv);
            put(format!("{p}.self_attn.v_proj.bias"), kv);
        }
        for (n, size) in [
            ("gate_proj", c.intermediate_size * h),
            ("up_proj", c.intermediate_size * h),
            ("down_proj", h * c.intermediate_size),
        ] {
            put(format!("{p}.mlp.{n}.weight"), size);
        }
        put(format!("{p}.input_layernorm.weight"), h);
        put(format!("{p}.post_attention_layernorm.weight"), h);
    }
    w
}

/// `W x` for a row-major `[out, in]` matrix.
pub fn matvec(w: &[f32], x: &[f64], out: usize) -> Vec<f64> {
    let inp = x.len();
    (0..out).map(|o| (0..inp).map(|i| f64::from(w[o * inp + i]) * x[i]).sum()).collect()
}

pub fn rmsnorm(x: &[f64], g: &[f32], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let r = 1.0 / (ms + eps).sqrt();
    x.iter().zip(g).map(|(v, g)| v * r * f64::from(*g)).collect()
}

pub fn rope(v: &mut [f64], pos: usize, theta: f64) {
    let d = v.len();
    for i in 0..d / 2 {
        let a = pos as f64 * theta.powf(-((2 * i) as f64) / d as f64);
        let (x1, x2) = (v[i], v[i + d / 2]);
        v[i] = x1 * a.cos() - x2 * a.sin();
        v[i + d / 2] = x2 * a.cos() + x1 * a.sin();
    }
}

/// The reference: logits `[seq][vocab]` of one sequence.
pub fn reference(c: &LlamaConfig, w: &HashMap<String, Vec<f32>>, tokens: &[usize]) -> Vec<Vec<f64>> {
    let (h, hd, nh, nkv) = (c.hidden_size, c.head_dim(), c.num_heads, c.num_kv_heads);
    let emb = &w["model.embed_tokens.weight"];
    let mut xs: Vec<Vec<f64>> = tokens.iter().map(|&t| (0..h).map(|i| f64::from(emb[t * h + i])).collect()).collect();
    let add_bias = |mut v: Vec<f64>, name: String| {
        if let Some(b) = w.get(&name) {
            v.iter_mut().zip(b).for_each(|(x, b)| *x += f64::from(*b));
        }
        v
    };
    for l in 0..c.num_layers {
        let p = format!("model.layers.{l}");
        let normed: Vec<Vec<f64>> =
            xs.iter().map(|x| rmsnorm(x, &w[&format!("{p}.input_layernorm.weight")], c.rms_eps)).collect();
        let proj = |n: &str, x: &[f64], out: usize| {
            add_bias(matvec(&w[&format!("{p}.self_attn.{n}.weight")], x, out), format!("{p}.self_attn.{n}.bias"))
        };
        let qs: Vec<Vec<f64>> = normed.iter().map(|x| proj("q_proj", x, nh * hd)).collect();
        let ks: Vec<Vec<f64>> = normed.iter().map(|x| proj("k_proj", x, nkv * hd)).collect();
        let vs: Vec<Vec<f64>> = normed.iter().map(|x| proj("v_proj", x, nkv * hd)).collect();
        let mut attn_out = vec![vec![0.0; nh * hd]; tokens.len()];
        for head in 0..nh {
            let kvh = head / (nh / nkv);
            for t in 0..tokens.len() {
                let mut q = qs[t][head * hd..(head + 1) * hd].to_vec();
                rope(&mut q, t, c.rope_theta);
                let scores: Vec<f64> = (0..=t)
                    .map(|s| {
                        let mut k = ks[s][kvh * hd..(kvh + 1) * hd].to_vec();
                        rope(&mut k, s, c.rope_theta);
                        q.iter().zip(&k).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (s, es) in e.iter().enumerate() {
                    for i in 0..hd {
                        attn_out[t][head * hd + i] += es / z * vs[s][kvh * hd + i];
                    }
                }
            }
        }
        for t in 0..tokens.len() {
            let o = matvec(&w[&format!("{p}.self_attn.o_proj.weight")], &attn_out[t], h);
            xs[t].iter_mut().zip(o).for_each(|(x, o)| *x += o);
            let n = rmsnorm(&xs[t], &w[&format!("{p}.post_attention_layernorm.weight")], c.rms_eps);
            let g = matvec(&w[&format!("{p}.mlp.gate_proj.weight")], &n, c.intermediate_size);
            let u = matvec(&w[&format!("{p}.mlp.up_proj.weight")], &n, c.intermediate_size);
            let act: Vec<f64> = g.iter().zip(&u).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            let d = matvec(&w[&format!("{p}.mlp.down_proj.weight")], &act, h);
            xs[t].iter_mut().zip(d).for_each(|(x, d)| *x += d);
        }
    }
    let head = if c.tie_embeddings { emb } else { &w["lm_head.weight"] };
    xs.iter().map(|x| matvec(head, &rmsnorm(x, &w["model.norm.weight"], c.rms_eps), c.vocab_size)).collect()
}

/// A safetensors file (the format written out by hand: little-endian header length, JSON
/// header, raw data) holding `tensors` as `dtype` ("F32", "F16" or "BF16"), with HF shapes.
pub fn safetensors(tensors: &[(&str, Vec<usize>, &[f32])], dtype: &str) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        for &v in values.iter() {
            match dtype {
                "F32" => data.extend(v.to_le_bytes()),
                "F16" => data.extend(f32_to_f16(v).to_le_bytes()),
                "BF16" => data.extend(f32_to_bf16(v).to_le_bytes()),
                _ => panic!("dtype {dtype}"),
            }
        }
        header.insert(
            (*name).to_owned(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut text = serde_json::Value::Object(header).to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text.as_bytes());
    out.extend(data);
    out
}

/// Round-to-nearest-even f32 -> IEEE half (normal range only; enough for test weights).
pub fn f32_to_f16(v: f32) -> u16 {
    if v == 0.0 {
        return if v.is_sign_negative() { 0x8000 } else { 0 };
    }
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xFF) as i32 - 127 + 15;
    let mant = bits & 0x7F_FFFF;
    assert!((1..31).contains(&exp), "{v} outside the normal half range");
    let half = (exp as u32) << 10 | (mant >> 13);
    let rest = mant & 0x1FFF;
    let rounded = if rest > 0x1000 || (rest == 0x1000 && half & 1 == 1) { half + 1 } else { half };
    sign | rounded as u16
}

/// Round-to-nearest-even f32 -> bfloat16 (finite values).
pub fn f32_to_bf16(v: f32) -> u16 {
    let bits = v.to_bits();
    ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}
