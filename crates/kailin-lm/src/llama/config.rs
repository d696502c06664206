//! Model hyper-parameters, and reading them from a Hugging Face `config.json`.

use std::path::Path;

use burn::config::Config;
use serde::Deserialize;

use crate::error::{Error, Result};

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
    /// Width of one attention head when it is not `hidden_size / num_heads` (some Mistral models).
    #[config(default = "None")]
    pub head_dim_override: Option<usize>,
    /// Llama 3.1's RoPE frequency scaling.
    #[config(default = "None")]
    pub rope_scaling: Option<RopeScaling>,
}

/// Llama 3.1's RoPE scaling (`rope_scaling` with `rope_type: "llama3"` in `config.json`):
/// wavelengths longer than `original_max_positions / low_freq_factor` are stretched by `factor`,
/// those shorter than `original_max_positions / high_freq_factor` are kept, and those between
/// are interpolated smoothly.
#[derive(Config, Debug, PartialEq)]
pub struct RopeScaling {
    /// Stretch of the low frequencies.
    pub factor: f64,
    /// Low-frequency threshold factor.
    pub low_freq_factor: f64,
    /// High-frequency threshold factor.
    pub high_freq_factor: f64,
    /// Context length of the model before scaling.
    pub original_max_positions: usize,
}

impl LlamaConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim_override.unwrap_or(self.hidden_size / self.num_heads.max(1))
    }

    /// Reads a Hugging Face `config.json` (model types `llama`, `mistral`, `qwen2`; SmolLM and
    /// SmolLM2 are `llama`).
    pub fn from_hf_file(path: impl AsRef<Path>) -> Result<LlamaConfig> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.into(), error: source })?;
        Self::from_hf_json(&text).map_err(|e| match e {
            Error::Config { message, .. } => Error::Config { origin: path.display().to_string(), message },
            other => other,
        })
    }

    /// Reads the text of a Hugging Face `config.json`; see [`from_hf_file`](Self::from_hf_file).
    pub fn from_hf_json(text: &str) -> Result<LlamaConfig> {
        let bad = |message: String| Error::Config { origin: "config.json".into(), message };
        let c: HfConfig = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let model_type = c.model_type.as_deref().unwrap_or("llama");
        let attention_bias = match model_type {
            "llama" | "mistral" => c.attention_bias.unwrap_or(false),
            "qwen2" => true,
            other => return Err(bad(format!("unsupported model_type {other:?} (llama, mistral, qwen2)"))),
        };
        let rope_scaling = match &c.rope_scaling {
            None => None,
            Some(s) => match s.rope_type.as_deref().or(s.kind.as_deref()) {
                Some("llama3") => Some(RopeScaling::new(
                    s.factor.ok_or_else(|| bad("rope_scaling.factor missing".into()))?,
                    s.low_freq_factor.unwrap_or(1.0),
                    s.high_freq_factor.unwrap_or(4.0),
                    s.original_max_position_embeddings.unwrap_or(8192),
                )),
                Some("default") | None => None,
                Some(other) => return Err(bad(format!("unsupported rope_scaling type {other:?} (llama3)"))),
            },
        };
        let heads = c.num_attention_heads;
        let kv = c.num_key_value_heads.unwrap_or(heads);
        let head_dim_override = c.head_dim.filter(|&d| heads == 0 || d != c.hidden_size / heads);
        LlamaConfig::new(c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers, heads, kv)
            .with_rope_theta(c.rope_theta.unwrap_or(10000.0))
            .with_rms_eps(c.rms_norm_eps.unwrap_or(1e-6))
            .with_attention_bias(attention_bias)
            .with_tie_embeddings(c.tie_word_embeddings.unwrap_or(false))
            .with_head_dim_override(head_dim_override)
            .with_rope_scaling(rope_scaling)
            .validated()
            .map_err(bad)
    }

    /// This configuration if it describes a model that can exist: every size at least 1 and
    /// within generous bounds (a file's claims never size an allocation unchecked), key/value
    /// heads dividing the heads, an even head width that divides the hidden width (unless set
    /// explicitly), positive finite RoPE base and norm epsilon; otherwise what is wrong.
    pub fn validated(self) -> std::result::Result<Self, String> {
        let sizes = [
            ("vocabulary size", self.vocab_size, 1 << 22),
            ("hidden width", self.hidden_size, 1 << 16),
            ("MLP width", self.intermediate_size, 1 << 18),
            ("block count", self.num_layers, 1 << 10),
            ("head count", self.num_heads, 1 << 10),
            ("key/value head count", self.num_kv_heads, 1 << 10),
        ];
        for (what, n, max) in sizes {
            if n == 0 || n > max {
                return Err(format!("{what} {n} is outside 1..={max}"));
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(format!(
                "the head count {} is not a multiple of the key/value head count {}",
                self.num_heads, self.num_kv_heads
            ));
        }
        let head_dim = self.head_dim();
        if head_dim == 0 || head_dim > 1 << 12 || !head_dim.is_multiple_of(2) {
            return Err(format!("head width {head_dim} must be even and within 2..=4096"));
        }
        if self.head_dim_override.is_none() && !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(format!(
                "the head count {} does not divide the hidden width {}",
                self.num_heads, self.hidden_size
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(format!("RoPE base {} must be a positive number", self.rope_theta));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0) {
            return Err(format!("norm epsilon {} must be a positive number", self.rms_eps));
        }
        if let Some(s) = &self.rope_scaling {
            let ok = [s.factor, s.low_freq_factor, s.high_freq_factor].iter().all(|v| v.is_finite() && *v > 0.0);
            if !ok || s.original_max_positions == 0 || s.high_freq_factor <= s.low_freq_factor {
                return Err("rope_scaling needs positive factors, high_freq_factor above low_freq_factor and original positions".into());
            }
        }
        Ok(self)
    }

    /// RoPE inverse frequencies `θ^(-2i/d)` for `i < head_dim / 2`, with the Llama 3.1 scaling
    /// applied when configured.
    pub fn inverse_frequencies(&self) -> Vec<f64> {
        let d = self.head_dim();
        let base = (0..d / 2).map(|i| self.rope_theta.powf(-((2 * i) as f64) / d as f64));
        let Some(s) = &self.rope_scaling else { return base.collect() };
        let old = s.original_max_positions as f64;
        let (low_wavelen, high_wavelen) = (old / s.low_freq_factor, old / s.high_freq_factor);
        base.map(|freq| {
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            if wavelen < high_wavelen {
                freq
            } else if wavelen > low_wavelen {
                freq / s.factor
            } else {
                let smooth = (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                (1.0 - smooth) * freq / s.factor + smooth * freq
            }
        })
        .collect()
    }
}

/// The fields of `config.json` read here; the rest are ignored.
#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rope_theta: Option<f64>,
    rms_norm_eps: Option<f64>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    rope_scaling: Option<HfRopeScaling>,
}

#[derive(Deserialize)]
struct HfRopeScaling {
    rope_type: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    factor: Option<f64>,
    low_freq_factor: Option<f64>,
    high_freq_factor: Option<f64>,
    original_max_position_embeddings: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":49152,
        "hidden_size":576,"intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,
        "num_key_value_heads":3,"rope_theta":100000,"rms_norm_eps":1e-05,"tie_word_embeddings":true,
        "torch_dtype":"bfloat16","rope_scaling":null}"#;

    #[test]
    fn smollm2() {
        let c = LlamaConfig::from_hf_json(SMOLLM2).unwrap();
        assert_eq!((c.vocab_size, c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads), (49152, 576, 30, 9, 3));
        assert_eq!((c.head_dim(), c.rope_theta, c.tie_embeddings, c.attention_bias), (64, 100000.0, true, false));
        assert_eq!(c.rope_scaling, None);
    }

    #[test]
    fn qwen2_has_qkv_bias_and_mistral_a_head_dim() {
        let q = r#"{"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":4,
            "num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1}"#;
        let c = LlamaConfig::from_hf_json(q).unwrap();
        assert!(c.attention_bias && !c.tie_embeddings);
        let m = r#"{"model_type":"mistral","vocab_size":10,"hidden_size":8,"intermediate_size":4,
            "num_hidden_layers":1,"num_attention_heads":2,"head_dim":6}"#;
        let c = LlamaConfig::from_hf_json(m).unwrap();
        assert_eq!((c.head_dim(), c.num_kv_heads), (6, 2));
    }

    #[test]
    fn llama3_rope_scaling_follows_the_reference_formula() {
        let j = r#"{"model_type":"llama","vocab_size":10,"hidden_size":256,"intermediate_size":4,
            "num_hidden_layers":1,"num_attention_heads":2,"rope_theta":500000.0,
            "rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
            "original_max_position_embeddings":8192,"rope_type":"llama3"}}"#;
        let c = LlamaConfig::from_hf_json(j).unwrap();
        let f = c.inverse_frequencies();
        let plain = LlamaConfig { rope_scaling: None, ..c.clone() }.inverse_frequencies();
        assert_eq!(f.len(), 64);
        // High frequencies (wavelength < 2048) are untouched, low ones (> 8192) divided by 8.
        assert_eq!(f[0], 1.0);
        let last = plain[63];
        assert!(2.0 * std::f64::consts::PI / last > 8192.0);
        assert!((f[63] - last / 8.0).abs() < 1e-18);
        // In between: the smooth interpolation, checked at one index by hand.
        let i = (0..64).find(|&i| (2048.0..8192.0).contains(&(2.0 * std::f64::consts::PI / plain[i]))).unwrap();
        let wl = 2.0 * std::f64::consts::PI / plain[i];
        let smooth = (8192.0 / wl - 1.0) / 3.0;
        assert!((f[i] - ((1.0 - smooth) * plain[i] / 8.0 + smooth * plain[i])).abs() < 1e-15);
        assert!(f[i] < plain[i] && f[i] > plain[i] / 8.0);
    }

    #[test]
    fn bad_configs_are_typed_errors() {
        for bad in [
            "{",
            r#"{"model_type":"gpt2","vocab_size":1,"hidden_size":8,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":2}"#,
            r#"{"vocab_size":1,"hidden_size":8,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":0}"#,
            r#"{"vocab_size":1,"hidden_size":8,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":3}"#,
        ] {
            assert!(matches!(LlamaConfig::from_hf_json(bad), Err(Error::Config { .. })), "{bad}");
        }
    }
}
