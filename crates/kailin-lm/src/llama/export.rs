//! Writing a model as a Hugging Face checkpoint: `config.json` and `model.safetensors` with
//! Hugging Face tensor names and layout, the inverse of [`Llama::from_hf_dir`].

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde_json::json;

use super::{Linear, Llama, LlamaConfig, Part, Weight};
use crate::error::{Error, Result};

/// One tensor in Hugging Face naming and layout: name, shape, row-major f32 values.
pub type HfTensor = (String, Vec<usize>, Vec<f32>);

impl LlamaConfig {
    /// This architecture as a Hugging Face `config.json` (`LlamaForCausalLM`, or
    /// `Qwen2ForCausalLM` when the q/k/v projections carry biases), readable by
    /// [`LlamaConfig::from_hf_json`] and by `transformers`. `max_positions` becomes
    /// `max_position_embeddings`.
    pub fn to_hf_json(&self, max_positions: usize) -> String {
        let (model_type, architecture) =
            if self.attention_bias { ("qwen2", "Qwen2ForCausalLM") } else { ("llama", "LlamaForCausalLM") };
        let mut config = json!({
            "architectures": [architecture],
            "model_type": model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim(),
            "hidden_act": "silu",
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_eps,
            "attention_bias": self.attention_bias,
            "mlp_bias": false,
            "tie_word_embeddings": self.tie_embeddings,
            "max_position_embeddings": max_positions,
            "torch_dtype": "float32",
        });
        if let Some(s) = &self.rope_scaling {
            config["rope_scaling"] = json!({
                "rope_type": "llama3",
                "factor": s.factor,
                "low_freq_factor": s.low_freq_factor,
                "high_freq_factor": s.high_freq_factor,
                "original_max_position_embeddings": s.original_max_positions,
            });
        }
        serde_json::to_string_pretty(&config).unwrap_or_default()
    }
}

fn values<B: Backend, const D: usize>(name: &str, t: Tensor<B, D>) -> Result<HfTensor> {
    let shape = t.dims().to_vec();
    let data = t.into_data().convert::<f32>();
    let values = data.to_vec::<f32>().map_err(|e| Error::Export(format!("{name}: {e:?}")))?;
    Ok((name.to_owned(), shape, values))
}

/// A projection's weight in PyTorch's `[out, in]` layout, adapters merged in.
fn projection<B: Backend>(w: Weight, layer: usize, p: &Linear<B>, out: &mut Vec<HfTensor>) -> Result<()> {
    out.push(values(&w.hf(layer, Part::Weight), p.effective_weight().transpose())?);
    if let Some(bias) = &p.bias {
        out.push(values(&w.hf(layer, Part::Bias), bias.val())?);
    }
    Ok(())
}

impl<B: Backend> Llama<B> {
    /// Every weight in Hugging Face naming and layout (see [`Weight`]),
    /// with LoRA adapters merged into their projections.
    pub fn hf_tensors(&self) -> Result<Vec<HfTensor>> {
        let name = |w: Weight, layer: usize| w.hf(layer, Part::Weight);
        let mut out = vec![values(&name(Weight::Embed, 0), self.embed.weight.val())?];
        for (i, block) in self.blocks.iter().enumerate() {
            for (w, proj) in block.projections() {
                projection(w, i, proj, &mut out)?;
            }
            out.push(values(&name(Weight::AttnNorm, i), block.attn_norm.gamma.val())?);
            out.push(values(&name(Weight::MlpNorm, i), block.mlp_norm.gamma.val())?);
        }
        out.push(values(&name(Weight::Norm, 0), self.norm.gamma.val())?);
        if let Some(head) = &self.lm_head {
            projection(Weight::LmHead, 0, head, &mut out)?;
        }
        Ok(out)
    }

    /// Writes `config.json` and `model.safetensors` (f32, Hugging Face names, LoRA adapters
    /// merged) into `dir`, created if missing; each file is written whole or not at all.
    /// [`Llama::from_hf_dir`] and `transformers` load the result. Tokenizer files come from
    /// [`Tokenizer::save_hf_dir`](crate::Tokenizer::save_hf_dir).
    pub fn save_hf_dir(&self, config: &LlamaConfig, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|error| Error::Io { path: dir.to_owned(), error })?;
        let tensors = self.hf_tensors()?;
        let views = tensors
            .iter()
            .map(|(name, shape, v)| {
                TensorView::new(Dtype::F32, shape.clone(), bytemuck_f32(v))
                    .map(|view| (name.clone(), view))
                    .map_err(|e| Error::Export(format!("{name}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
        let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Export(e.to_string()))?;
        kailin_core::write_atomic(dir.join("model.safetensors"), &bytes)?;
        Ok(kailin_core::write_atomic(dir.join("config.json"), config.to_hf_json(self.max_positions()).as_bytes())?)
    }
}

/// The bytes of `values`, little-endian (what safetensors stores).
fn bytemuck_f32(values: &[f32]) -> &[u8] {
    // f32 has no padding bytes, and on a little-endian target (checked at compile time)
    // its in-memory bytes are safetensors' bytes.
    const _: () = assert!(cfg!(target_endian = "little"), "safetensors export assumes a little-endian target");
    bytemuck::cast_slice(values)
}
