//! The one weight-name table of the Llama family: every weight under its Hugging Face name,
//! this crate's module path (what burn's store sees) and llama.cpp's GGUF name. GGUF loading,
//! safetensors loading, LoRA targets and export are all derived from [`TABLE`]: an
//! architecture with other names changes this file only.

/// A weight of the Llama-family decoder (per block unless noted).
///
/// | weight | Hugging Face | module path | GGUF |
/// |---|---|---|---|
/// | `Embed` (model) | `model.embed_tokens.weight` | `embed.weight` | `token_embd.weight` |
/// | `Q`, `K`, `V` | `model.layers.N.self_attn.{q,k,v}_proj.{weight,bias}` | `blocks.N.attn.{q,k,v}.{weight,bias}` | `blk.N.attn_{q,k,v}.{weight,bias}` |
/// | `O` | `model.layers.N.self_attn.o_proj.weight` | `blocks.N.attn.o.weight` | `blk.N.attn_output.weight` |
/// | `Gate`, `Up`, `Down` | `model.layers.N.mlp.{gate,up,down}_proj.weight` | `blocks.N.mlp.{gate,up,down}.weight` | `blk.N.ffn_{gate,up,down}.weight` |
/// | `AttnNorm` | `model.layers.N.input_layernorm.weight` | `blocks.N.attn_norm.gamma` | `blk.N.attn_norm.weight` |
/// | `MlpNorm` | `model.layers.N.post_attention_layernorm.weight` | `blocks.N.mlp_norm.gamma` | `blk.N.ffn_norm.weight` |
/// | `Norm` (model) | `model.norm.weight` | `norm.gamma` | `output_norm.weight` |
/// | `LmHead` (model) | `lm_head.weight` (absent with tied embeddings) | `lm_head.weight` | `output.weight` |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Weight {
    /// The token embedding.
    Embed,
    /// The query projection.
    Q,
    /// The key projection.
    K,
    /// The value projection.
    V,
    /// The attention output projection.
    O,
    /// The SwiGLU gate projection.
    Gate,
    /// The SwiGLU up projection.
    Up,
    /// The SwiGLU down projection.
    Down,
    /// The norm before attention.
    AttnNorm,
    /// The norm before the MLP.
    MlpNorm,
    /// The final norm.
    Norm,
    /// The output projection (untied models).
    LmHead,
}

/// Which tensor of a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// The weight matrix (or a norm's scale, or the embedding table).
    Weight,
    /// The bias vector.
    Bias,
}

/// `(weight, Hugging Face stem, module stem, GGUF stem)`; `{}` stands for the layer index.
const TABLE: [(Weight, &str, &str, &str); 12] = [
    (Weight::Embed, "model.embed_tokens", "embed", "token_embd"),
    (Weight::Q, "model.layers.{}.self_attn.q_proj", "blocks.{}.attn.q", "blk.{}.attn_q"),
    (Weight::K, "model.layers.{}.self_attn.k_proj", "blocks.{}.attn.k", "blk.{}.attn_k"),
    (Weight::V, "model.layers.{}.self_attn.v_proj", "blocks.{}.attn.v", "blk.{}.attn_v"),
    (Weight::O, "model.layers.{}.self_attn.o_proj", "blocks.{}.attn.o", "blk.{}.attn_output"),
    (Weight::Gate, "model.layers.{}.mlp.gate_proj", "blocks.{}.mlp.gate", "blk.{}.ffn_gate"),
    (Weight::Up, "model.layers.{}.mlp.up_proj", "blocks.{}.mlp.up", "blk.{}.ffn_up"),
    (Weight::Down, "model.layers.{}.mlp.down_proj", "blocks.{}.mlp.down", "blk.{}.ffn_down"),
    (Weight::AttnNorm, "model.layers.{}.input_layernorm", "blocks.{}.attn_norm", "blk.{}.attn_norm"),
    (Weight::MlpNorm, "model.layers.{}.post_attention_layernorm", "blocks.{}.mlp_norm", "blk.{}.ffn_norm"),
    (Weight::Norm, "model.norm", "norm", "output_norm"),
    (Weight::LmHead, "lm_head", "lm_head", "output"),
];

impl Weight {
    /// The seven projections of a block, attention's first.
    pub const PROJECTIONS: [Weight; 7] =
        [Weight::Q, Weight::K, Weight::V, Weight::O, Weight::Gate, Weight::Up, Weight::Down];

    fn row(self) -> (&'static str, &'static str, &'static str) {
        let (_, hf, module, gguf) = TABLE[TABLE.iter().position(|r| r.0 == self).unwrap_or(0)];
        (hf, module, gguf)
    }

    /// Whether it is an RMS norm's scale (`gamma` in burn's `RmsNorm`).
    pub fn is_norm(self) -> bool {
        matches!(self, Weight::AttnNorm | Weight::MlpNorm | Weight::Norm)
    }

    /// Its short name as a LoRA target (`q` … `down`); `None` for a weight that is not a block
    /// projection.
    pub fn short(self) -> Option<&'static str> {
        Self::PROJECTIONS.iter().position(|&w| w == self).map(|i| LORA_TARGETS[i])
    }

    /// The Hugging Face name of its `part` in block `layer` (ignored for model-level weights).
    pub fn hf(self, layer: usize, part: Part) -> String {
        fill(self.row().0, layer, suffix(part, false))
    }

    /// The module path of its `part` in block `layer` (burn's store names).
    pub fn module(self, layer: usize, part: Part) -> String {
        fill(self.row().1, layer, suffix(part, self.is_norm()))
    }

    /// llama.cpp's GGUF name of its `part` in block `layer`.
    pub fn gguf(self, layer: usize, part: Part) -> String {
        fill(self.row().2, layer, suffix(part, false))
    }

    /// The weight, layer (0 for model-level weights) and parameter a Hugging Face name stands
    /// for; `None` for a name outside the table.
    pub fn parse_hf(name: &str) -> Option<(Weight, usize, Part)> {
        let (stem, part) = match name.rsplit_once('.')? {
            (stem, "weight") => (stem, Part::Weight),
            (stem, "bias") => (stem, Part::Bias),
            _ => return None,
        };
        TABLE.iter().find_map(|&(w, hf, _, _)| match hf.split_once("{}") {
            None => (stem == hf).then_some((w, 0, part)),
            Some((before, after)) => {
                let layer = stem.strip_prefix(before)?.strip_suffix(after)?;
                let digits = !layer.is_empty() && layer.bytes().all(|b| b.is_ascii_digit());
                digits.then(|| layer.parse().ok().map(|l| (w, l, part)))?
            }
        })
    }
}

fn suffix(part: Part, norm: bool) -> &'static str {
    match (part, norm) {
        (Part::Bias, _) => "bias",
        (Part::Weight, true) => "gamma",
        (Part::Weight, false) => "weight",
    }
}

fn fill(stem: &str, layer: usize, suffix: &str) -> String {
    format!("{}.{suffix}", stem.replace("{}", &layer.to_string()))
}

/// The LoRA target names of [`Weight::PROJECTIONS`], in that order.
pub const LORA_TARGETS: [&str; 7] = ["q", "k", "v", "o", "gate", "up", "down"];

/// The llama.cpp name of a Hugging Face weight name.
pub(crate) fn gguf_name(hf: &str) -> Option<String> {
    Weight::parse_hf(hf).map(|(w, layer, part)| w.gguf(layer, part))
}

/// The `(regex, replacement)` pairs by which burn's store maps Hugging Face names onto module
/// paths (its `KeyRemapper`), derived from the table: one pair per weight and parameter
/// (biases for the q/k/v projections, which Qwen2 has).
pub fn hf_name_map() -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(TABLE.len() + 3);
    for (w, ..) in TABLE {
        let params: &[Part] =
            if matches!(w, Weight::Q | Weight::K | Weight::V) { &[Part::Weight, Part::Bias] } else { &[Part::Weight] };
        for &part in params {
            // A layer index no real name has marks where the capture group goes.
            let (hf, module) = (w.hf(usize::MAX, part), w.module(usize::MAX, part));
            let pattern = hf.replace('.', r"\.").replace(&usize::MAX.to_string(), r"(\d+)");
            out.push((format!("^{pattern}$"), module.replace(&usize::MAX.to_string(), "$1")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_known_spellings() {
        assert_eq!(gguf_name("model.layers.12.self_attn.k_proj.weight").as_deref(), Some("blk.12.attn_k.weight"));
        assert_eq!(gguf_name("model.layers.3.self_attn.q_proj.bias").as_deref(), Some("blk.3.attn_q.bias"));
        assert_eq!(gguf_name("model.embed_tokens.weight").as_deref(), Some("token_embd.weight"));
        assert_eq!(gguf_name("lm_head.weight").as_deref(), Some("output.weight"));
        assert_eq!(gguf_name("model.layers.0.unknown"), None);
        assert_eq!(gguf_name("model.layers.x.mlp.up_proj.weight"), None);
        assert_eq!(Weight::MlpNorm.module(4, Part::Weight), "blocks.4.mlp_norm.gamma");
        for (w, ..) in TABLE {
            for layer in [0, 7, 31] {
                let name = w.hf(layer, Part::Weight);
                let expect_layer = if name.contains("layers") { layer } else { 0 };
                assert_eq!(Weight::parse_hf(&name), Some((w, expect_layer, Part::Weight)), "{name}");
            }
        }
        let shorts: Vec<&str> = Weight::PROJECTIONS.iter().filter_map(|w| w.short()).collect();
        assert_eq!(shorts, LORA_TARGETS);
    }

    #[test]
    fn store_map_has_one_pattern_per_parameter() {
        let map = hf_name_map();
        assert_eq!(map.len(), 15);
        assert!(
            map.contains(&(r"^model\.layers\.(\d+)\.self_attn\.q_proj\.bias$".into(), "blocks.$1.attn.q.bias".into()))
        );
        assert!(map.contains(&(r"^model\.norm\.weight$".into(), "norm.gamma".into())));
    }
}
