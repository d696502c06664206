//! Loading a Llama-family model from a GGUF file (llama.cpp's naming and layout).

use burn::prelude::*;

use super::{Llama, LlamaConfig};
use crate::error::{Error, Result};
use crate::gguf::{Gguf, Value};

/// The llama.cpp name of a Hugging Face weight name.
fn gguf_name(hf: &str) -> Option<String> {
    if let Some(rest) = hf.strip_prefix("model.layers.") {
        let (layer, part) = rest.split_once('.')?;
        let part = match part {
            "self_attn.q_proj.weight" => "attn_q.weight",
            "self_attn.k_proj.weight" => "attn_k.weight",
            "self_attn.v_proj.weight" => "attn_v.weight",
            "self_attn.o_proj.weight" => "attn_output.weight",
            "self_attn.q_proj.bias" => "attn_q.bias",
            "self_attn.k_proj.bias" => "attn_k.bias",
            "self_attn.v_proj.bias" => "attn_v.bias",
            "mlp.gate_proj.weight" => "ffn_gate.weight",
            "mlp.up_proj.weight" => "ffn_up.weight",
            "mlp.down_proj.weight" => "ffn_down.weight",
            "input_layernorm.weight" => "attn_norm.weight",
            "post_attention_layernorm.weight" => "ffn_norm.weight",
            _ => return None,
        };
        return Some(format!("blk.{layer}.{part}"));
    }
    Some(
        match hf {
            "model.embed_tokens.weight" => "token_embd.weight",
            "model.norm.weight" => "output_norm.weight",
            "lm_head.weight" => "output.weight",
            _ => return None,
        }
        .to_owned(),
    )
}

/// Undoes llama.cpp's reordering of query/key rows (its converter interleaves the two halves
/// of each head for its RoPE layout): Hugging Face row `h·d + r·d/2 + j` is GGUF row
/// `h·d + 2j + r`. `values` is row-major `[heads · head_dim, cols]`.
fn unpermute(values: &[f32], heads: usize, head_dim: usize, cols: usize) -> Vec<f32> {
    let half = head_dim / 2;
    let mut out = vec![0.0; values.len()];
    for h in 0..heads {
        for r in 0..2 {
            for j in 0..half {
                let (hf, gg) = (h * head_dim + r * half + j, h * head_dim + 2 * j + r);
                out[hf * cols..(hf + 1) * cols].copy_from_slice(&values[gg * cols..(gg + 1) * cols]);
            }
        }
    }
    out
}

impl LlamaConfig {
    /// The architecture described by a GGUF file's `llama.*` metadata.
    pub fn from_gguf(g: &Gguf) -> Result<LlamaConfig> {
        let bad = |m: String| Error::Gguf { origin: "metadata".into(), offset: 0, message: m };
        let arch = g.get("general.architecture").and_then(Value::as_str).unwrap_or("llama").to_owned();
        let u = |key: &str| -> Result<usize> {
            let full = format!("{arch}.{key}");
            g.get(&full).and_then(Value::as_u64).map(|v| v as usize).ok_or_else(|| bad(format!("missing {full}")))
        };
        let f = |key: &str| g.get(&format!("{arch}.{key}")).and_then(Value::as_f64);
        let vocab = g
            .get("tokenizer.ggml.tokens")
            .and_then(Value::as_array)
            .map(<[Value]>::len)
            .or_else(|| u("vocab_size").ok())
            .ok_or_else(|| bad("no vocabulary size".into()))?;
        let heads = u("attention.head_count")?;
        Ok(LlamaConfig::new(
            vocab,
            u("embedding_length")?,
            u("feed_forward_length")?,
            u("block_count")?,
            heads,
            u("attention.head_count_kv").unwrap_or(heads),
        )
        .with_rope_theta(f("rope.freq_base").unwrap_or(10000.0))
        .with_rms_eps(f("attention.layer_norm_rms_epsilon").unwrap_or(1e-5))
        .with_tie_embeddings(g.tensor("output.weight").is_err())
        .with_attention_bias(g.tensor("blk.0.attn_q.bias").is_ok()))
    }
}

impl<B: Backend> Llama<B> {
    /// Builds the model from a GGUF file (any supported tensor type, dequantised to f32).
    pub fn from_gguf(g: &Gguf, max_positions: usize, device: &B::Device) -> Result<(Self, LlamaConfig)> {
        let config = LlamaConfig::from_gguf(g)?;
        let head_dim = config.head_dim();
        let model = Llama::from_weights(&config, max_positions, device, |name, shape| {
            let gg = gguf_name(name).ok_or_else(|| Error::MissingTensor(name.to_owned()))?;
            let values = g.dequantize(&gg)?;
            Ok(match name.rsplit('.').nth(1) {
                Some("q_proj") if name.ends_with(".weight") => unpermute(&values, config.num_heads, head_dim, shape[1]),
                Some("k_proj") if name.ends_with(".weight") => {
                    unpermute(&values, config.num_kv_heads, head_dim, shape[1])
                }
                _ => values,
            })
        })?;
        Ok((model, config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's converter permutation (numpy: reshape(h, 2, d/2, c).swapaxes(1, 2)).
    fn permute(values: &[f32], heads: usize, head_dim: usize, cols: usize) -> Vec<f32> {
        let half = head_dim / 2;
        let mut out = vec![0.0; values.len()];
        for h in 0..heads {
            for r in 0..2 {
                for j in 0..half {
                    let (src, dst) = (h * head_dim + r * half + j, h * head_dim + 2 * j + r);
                    out[dst * cols..(dst + 1) * cols].copy_from_slice(&values[src * cols..(src + 1) * cols]);
                }
            }
        }
        out
    }

    #[test]
    fn unpermute_inverts_the_converter() {
        let (heads, hd, cols) = (3, 4, 2);
        let hf: Vec<f32> = (0..heads * hd * cols).map(|v| v as f32).collect();
        let gguf = permute(&hf, heads, hd, cols);
        assert_ne!(gguf, hf);
        // Head 0, rows in GGUF order: q0 q2 q1 q3 (pairs interleaved).
        assert_eq!(&gguf[..8], &[0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
        assert_eq!(unpermute(&gguf, heads, hd, cols), hf);
    }

    #[test]
    fn names() {
        assert_eq!(gguf_name("model.layers.12.self_attn.k_proj.weight").as_deref(), Some("blk.12.attn_k.weight"));
        assert_eq!(gguf_name("model.embed_tokens.weight").as_deref(), Some("token_embd.weight"));
        assert_eq!(gguf_name("model.layers.0.unknown"), None);
    }
}
