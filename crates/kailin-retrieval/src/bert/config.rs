//! The architecture of a BERT checkpoint, from its Hugging Face `config.json`.

use std::path::Path;

use burn::prelude::*;

use super::Bert;
use super::attention::SelfAttention;
use super::embeddings::Embeddings;
use super::layer::{FeedForward, Layer};
use crate::error::Error;

/// Sizes of a BERT model.
#[derive(Config, Debug, PartialEq)]
pub struct BertConfig {
    /// Token vocabulary.
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_layers: usize,
    /// Attention heads per layer (`hidden_size` must be a multiple).
    pub num_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Longest input, in tokens (rows of the position embedding).
    pub max_positions: usize,
    /// Rows of the token-type embedding.
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// Layer-norm epsilon.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
}

impl BertConfig {
    /// Reads a Hugging Face `config.json` (`BertModel` and its relatives: BiomedBERT,
    /// PubMedBERT, MedCPT, MiniLM).
    ///
    /// Errors: unreadable file, missing or impossible sizes, an activation other than GELU, or
    /// position embeddings other than absolute.
    pub fn from_hf_file(path: impl AsRef<Path>) -> crate::Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        let bad = |message: String| Error::Config { path: path.to_path_buf(), message };
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let size = |key: &str| -> crate::Result<usize> {
            json.get(key)
                .and_then(serde_json::Value::as_u64)
                .and_then(|v| usize::try_from(v).ok())
                .filter(|&v| v > 0)
                .ok_or_else(|| bad(format!("{key} missing or not a positive integer")))
        };
        let act = json.get("hidden_act").and_then(|v| v.as_str()).unwrap_or("gelu");
        if act != "gelu" {
            return Err(bad(format!("hidden_act {act:?}: only \"gelu\" (erf) is implemented")));
        }
        let pos = json.get("position_embedding_type").and_then(|v| v.as_str()).unwrap_or("absolute");
        if pos != "absolute" {
            return Err(bad(format!("position_embedding_type {pos:?}: only \"absolute\" is implemented")));
        }
        let config = BertConfig {
            vocab_size: size("vocab_size")?,
            hidden_size: size("hidden_size")?,
            num_layers: size("num_hidden_layers")?,
            num_heads: size("num_attention_heads")?,
            intermediate_size: size("intermediate_size")?,
            max_positions: size("max_position_embeddings")?,
            type_vocab_size: json.get("type_vocab_size").map_or(Ok(2), |_| size("type_vocab_size"))?,
            layer_norm_eps: json.get("layer_norm_eps").and_then(serde_json::Value::as_f64).unwrap_or(1e-12),
        };
        if !config.hidden_size.is_multiple_of(config.num_heads) {
            return Err(bad(format!(
                "hidden_size {} is not a multiple of {} heads",
                config.hidden_size, config.num_heads
            )));
        }
        Ok(config)
    }

    /// A model of these sizes with freshly initialised weights (load real ones with
    /// [`Bert::from_hf_dir`] or [`Bert::from_safetensors`]).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Bert<B> {
        let h = self.hidden_size;
        let linear = |i, o| burn::nn::LinearConfig::new(i, o).init(device);
        let norm = || burn::nn::LayerNormConfig::new(h).with_epsilon(self.layer_norm_eps).init(device);
        let embedding = |n| burn::nn::EmbeddingConfig::new(n, h).init(device);
        Bert {
            embeddings: Embeddings {
                word: embedding(self.vocab_size),
                position: embedding(self.max_positions),
                token_type: embedding(self.type_vocab_size),
                norm: norm(),
            },
            layers: (0..self.num_layers)
                .map(|_| Layer {
                    attention: SelfAttention {
                        query: linear(h, h),
                        key: linear(h, h),
                        value: linear(h, h),
                        output: linear(h, h),
                        num_heads: self.num_heads,
                    },
                    attention_norm: norm(),
                    ffn: FeedForward { up: linear(h, self.intermediate_size), down: linear(self.intermediate_size, h) },
                    ffn_norm: norm(),
                })
                .collect(),
            layer_norm_eps: self.layer_norm_eps,
        }
    }
}
