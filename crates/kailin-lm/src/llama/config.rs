//! Model hyper-parameters.

use burn::config::Config;

/// A Llama-family architecture (the fields of a Hugging Face `config.json` it needs).
#[derive(Config, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Number of transformer blocks.
    pub num_layers: usize,
    /// Attention (query) heads.
    pub num_heads: usize,
    /// Key/value heads (grouped-query attention; equal to `num_heads` for plain attention).
    pub num_kv_heads: usize,
    /// RoPE base frequency.
    #[config(default = 10000.0)]
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    #[config(default = 1e-5)]
    pub rms_eps: f64,
    /// Biases on the q/k/v projections (Qwen2).
    #[config(default = false)]
    pub attention_bias: bool,
    /// The output projection shares the token embedding (SmolLM, Llama 3.2 small models).
    #[config(default = true)]
    pub tie_embeddings: bool,
}

impl LlamaConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }
}
