//! Loading a Llama-family model from a GGUF file (llama.cpp's naming and layout).

use burn::prelude::*;

use super::{Llama, LlamaConfig, Part, Weight, gguf_name};
use crate::error::{Error, Result};
use crate::gguf::{Gguf, GgufValue};
use crate::native::{FileWeight, QMatrix, quantised_products};

/// The row order of query and key projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkOrder {
    /// Hugging Face's: each head's rotary pairs are its two halves (rotate-half RoPE).
    HuggingFace,
    /// llama.cpp's: its converter interleaves the two halves of each head.
    Gguf,
}

/// Reorders the rows of a query or key projection (row-major `[heads · head_dim, cols]`) into
/// the order `to`, from the other one: Hugging Face row `h·d + r·d/2 + j` is GGUF row
/// `h·d + 2j + r`. The two directions are inverse to each other.
pub fn reorder_qk_rows(values: &[f32], heads: usize, head_dim: usize, cols: usize, to: QkOrder) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for (hf, gg) in qk_row_order(heads, head_dim).into_iter().enumerate() {
        let (dst, src) = match to {
            QkOrder::HuggingFace => (hf, gg),
            QkOrder::Gguf => (gg, hf),
        };
        out[dst * cols..(dst + 1) * cols].copy_from_slice(&values[src * cols..(src + 1) * cols]);
    }
    out
}

impl LlamaConfig {
    /// The architecture described by a GGUF file's `llama.*` metadata.
    pub fn from_gguf(g: &Gguf) -> Result<LlamaConfig> {
        let bad = |m: String| Error::Gguf { origin: "metadata".into(), offset: 0, message: m };
        let arch = g.get("general.architecture").and_then(GgufValue::as_str).unwrap_or("llama").to_owned();
        let u = |key: &str| -> Result<usize> {
            let full = format!("{arch}.{key}");
            g.get(&full).and_then(GgufValue::as_u64).map(|v| v as usize).ok_or_else(|| bad(format!("missing {full}")))
        };
        let f = |key: &str| g.get(&format!("{arch}.{key}")).and_then(GgufValue::as_f64);
        let vocab = g
            .get("tokenizer.ggml.tokens")
            .and_then(GgufValue::as_array)
            .map(<[GgufValue]>::len)
            .or_else(|| u("vocab_size").ok())
            .ok_or_else(|| bad("no vocabulary size".into()))?;
        let heads = u("attention.head_count")?;
        LlamaConfig::new(
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
        .with_attention_bias(g.tensor("blk.0.attn_q.bias").is_ok())
        .validated()
        .map_err(bad)
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
            // The metadata's sizes against the tensor's own, before any row is moved.
            let want: usize = shape.iter().product();
            if values.len() != want {
                return Err(Error::Shape { tensor: gg, expected: shape.to_vec(), got: values.len() });
            }
            let heads = match Weight::parse_hf(name) {
                Some((Weight::Q, _, Part::Weight)) => config.num_heads,
                Some((Weight::K, _, Part::Weight)) => config.num_kv_heads,
                _ => return Ok(values),
            };
            Ok(reorder_qk_rows(&values, heads, head_dim, shape[1], QkOrder::HuggingFace))
        })?;
        Ok((model.with_file_weights(g, &config)?, config))
    }

    /// Keeps each quantised projection's (and the embedding's) blocks as the file stores them,
    /// beside the f32 weights, for the CPU kernels' decoding products. Types without such
    /// products (f32, f16, bf16) keep their f32 copy alone.
    fn with_file_weights(mut self, g: &Gguf, config: &LlamaConfig) -> Result<Self> {
        let head_dim = config.head_dim();
        let matrix = |name: &str| -> Result<Option<QMatrix>> {
            let t = g.tensor(name)?;
            if !quantised_products(t.kind) || t.dims.len() != 2 {
                return Ok(None);
            }
            let (cols, rows) = (t.dims[0] as usize, t.dims[1] as usize);
            QMatrix::new(t.kind, rows, cols, g.tensor_bytes(name)?.to_vec()).map(Some)
        };
        for (layer, block) in self.blocks.iter_mut().enumerate() {
            for (w, proj) in block.projections_mut() {
                let Some(m) = matrix(&w.gguf(layer, Part::Weight))? else { continue };
                let heads = match w {
                    Weight::Q => config.num_heads,
                    Weight::K => config.num_kv_heads,
                    _ => 0,
                };
                // The rows in Hugging Face's order, as the f32 weights were reordered.
                let m = if heads > 0 { m.reordered(&qk_row_order(heads, head_dim)) } else { m };
                proj.file = FileWeight::new(&proj.weight, m);
            }
        }
        if let Some(head) = self.lm_head.as_mut()
            && let Some(m) = matrix(&Weight::LmHead.gguf(0, Part::Weight))?
        {
            head.file = FileWeight::new(&head.weight, m);
        }
        if let Some(m) = matrix(&Weight::Embed.gguf(0, Part::Weight))? {
            self.embed_file = FileWeight::new(&self.embed.weight, m);
        }
        Ok(self)
    }
}

/// Row `i` of a Hugging Face-ordered query or key projection is row `order[i]` of the GGUF
/// file's (see [`reorder_qk_rows`]).
fn qk_row_order(heads: usize, head_dim: usize) -> Vec<usize> {
    let half = head_dim / 2;
    let mut order = vec![0; heads * head_dim];
    for h in 0..heads {
        for r in 0..2 {
            for j in 0..half {
                order[h * head_dim + r * half + j] = h * head_dim + 2 * j + r;
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reordering_inverts_the_converter() {
        let (heads, hd, cols) = (3, 4, 2);
        let hf: Vec<f32> = (0..heads * hd * cols).map(|v| v as f32).collect();
        let gguf = reorder_qk_rows(&hf, heads, hd, cols, QkOrder::Gguf);
        assert_ne!(gguf, hf);
        // Head 0, rows in GGUF order: q0 q2 q1 q3 (pairs interleaved), as llama.cpp's converter
        // (numpy: reshape(h, 2, d/2, c).swapaxes(1, 2)) writes them.
        assert_eq!(&gguf[..8], &[0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
        assert_eq!(reorder_qk_rows(&gguf, heads, hd, cols, QkOrder::HuggingFace), hf);
        // The row order the quantised blocks take is the same reordering.
        let order = qk_row_order(heads, hd);
        let rows: Vec<f32> = order.iter().flat_map(|&r| gguf[r * cols..(r + 1) * cols].iter().copied()).collect();
        assert_eq!(rows, hf);
    }
}
