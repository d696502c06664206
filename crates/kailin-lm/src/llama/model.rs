//! The whole decoder: embedding, blocks, final norm, output projection.

use burn::module::Param;
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::prelude::*;

use super::{Attention, Block, KvCache, LlamaConfig, Mlp, Rope};
use crate::error::{Error, Result};

/// A Llama-family decoder.
#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    embed: Embedding<B>,
    blocks: Vec<Block<B>>,
    norm: RmsNorm<B>,
    /// `None` when tied to the embedding.
    lm_head: Option<Linear<B>>,
    #[module(skip)]
    rope: Rope,
}

/// Fetches weights by name and checks their size.
struct Loader<'d, B: Backend, F> {
    weight: F,
    device: &'d B::Device,
}

impl<B: Backend, F: FnMut(&str, &[usize]) -> Result<Vec<f32>>> Loader<'_, B, F> {
    fn values(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let values = (self.weight)(name, shape)?;
        let want: usize = shape.iter().product();
        if values.len() != want {
            return Err(Error::Shape { tensor: name.to_owned(), expected: shape.to_vec(), got: values.len() });
        }
        Ok(values)
    }

    fn tensor<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Result<Tensor<B, D>> {
        let values = self.values(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), self.device))
    }

    /// A projection stored `[out, in]` (Hugging Face); burn's `Linear` holds `[in, out]`.
    fn linear(&mut self, name: &str, out: usize, inp: usize, bias: bool) -> Result<Linear<B>> {
        let weight = Param::from_tensor(self.tensor(&format!("{name}.weight"), [out, inp])?.transpose());
        let bias = if bias { Some(Param::from_tensor(self.tensor(&format!("{name}.bias"), [out])?)) } else { None };
        Ok(Linear { weight, bias })
    }

    fn rms(&mut self, name: &str, width: usize, eps: f64) -> Result<RmsNorm<B>> {
        Ok(RmsNorm { gamma: Param::from_tensor(self.tensor(name, [width])?), epsilon: eps })
    }
}

impl<B: Backend> Llama<B> {
    /// Builds the model from weights supplied by name, in Hugging Face naming and layout
    /// (`model.layers.0.self_attn.q_proj.weight`, `[out, in]`, row-major f32). `weight(name,
    /// shape)` must return exactly `shape.iter().product()` values. `max_positions` bounds the
    /// sequence length (RoPE tables).
    pub fn from_weights(
        config: &LlamaConfig,
        max_positions: usize,
        device: &B::Device,
        mut weight: impl FnMut(&str, &[usize]) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        let (h, kv, eps) = (config.hidden_size, config.num_kv_heads * config.head_dim(), config.rms_eps);
        let mut l = Loader { weight: &mut weight, device };
        let mut blocks = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let p = format!("model.layers.{i}");
            let attn = Attention {
                q: l.linear(&format!("{p}.self_attn.q_proj"), h, h, config.attention_bias)?,
                k: l.linear(&format!("{p}.self_attn.k_proj"), kv, h, config.attention_bias)?,
                v: l.linear(&format!("{p}.self_attn.v_proj"), kv, h, config.attention_bias)?,
                o: l.linear(&format!("{p}.self_attn.o_proj"), h, h, false)?,
                num_heads: config.num_heads,
                num_kv_heads: config.num_kv_heads,
            };
            let mlp = Mlp {
                gate: l.linear(&format!("{p}.mlp.gate_proj"), config.intermediate_size, h, false)?,
                up: l.linear(&format!("{p}.mlp.up_proj"), config.intermediate_size, h, false)?,
                down: l.linear(&format!("{p}.mlp.down_proj"), h, config.intermediate_size, false)?,
            };
            let attn_norm = l.rms(&format!("{p}.input_layernorm.weight"), h, eps)?;
            let mlp_norm = l.rms(&format!("{p}.post_attention_layernorm.weight"), h, eps)?;
            blocks.push(Block { attn_norm, attn, mlp_norm, mlp });
        }
        let embed =
            Embedding { weight: Param::from_tensor(l.tensor("model.embed_tokens.weight", [config.vocab_size, h])?) };
        let norm = l.rms("model.norm.weight", h, eps)?;
        let lm_head =
            if config.tie_embeddings { None } else { Some(l.linear("lm_head", config.vocab_size, h, false)?) };
        let rope = Rope::new(config.head_dim(), max_positions, config.rope_theta);
        Ok(Llama { embed, blocks, norm, lm_head, rope })
    }

    /// Next-token logits for every position.
    ///
    /// Shapes: `tokens` `[batch, seq]` → logits `[batch, seq, vocab]`.
    ///
    /// Errors: a sequence longer than the `max_positions` the model was built with; a token id
    /// outside the vocabulary.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Result<Tensor<B, 3>> {
        self.run(tokens, None)
    }

    /// Like [`forward`](Self::forward) for the tokens that follow those in `cache`, which
    /// receives their keys and values: incremental decoding.
    ///
    /// Shapes: `tokens` `[batch, new]` → logits `[batch, new, vocab]`.
    pub fn forward_cached(&self, tokens: Tensor<B, 2, Int>, cache: &mut KvCache<B>) -> Result<Tensor<B, 3>> {
        if cache.layers.len() != self.blocks.len() {
            return Err(Error::CacheMismatch { cache: cache.layers.len(), model: self.blocks.len() });
        }
        let seq = tokens.dims()[1];
        let logits = self.run(tokens, Some(cache))?;
        cache.advance(seq);
        Ok(logits)
    }

    /// The number of transformer blocks (what a [`KvCache`] must be made for).
    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    fn run(&self, tokens: Tensor<B, 2, Int>, mut cache: Option<&mut KvCache<B>>) -> Result<Tensor<B, 3>> {
        let [_, seq] = tokens.dims();
        let start = cache.as_ref().map_or(0, |c| c.len());
        if start + seq > self.rope.max_positions() {
            return Err(Error::TooLong { len: start + seq, max: self.rope.max_positions() });
        }
        let vocab = self.embed.weight.dims()[0];
        let (lowest, highest) =
            (tokens.clone().min().into_scalar().elem::<i64>(), tokens.clone().max().into_scalar().elem::<i64>());
        if lowest < 0 || highest >= vocab as i64 {
            let token = if lowest < 0 { lowest } else { highest };
            return Err(Error::TokenOutOfRange { token, vocab });
        }
        let mut x = self.embed.forward(tokens);
        for (i, block) in self.blocks.iter().enumerate() {
            let slot = cache.as_mut().map(|c| &mut c.layers[i]);
            x = block.forward(x, &self.rope, start, slot);
        }
        let x = self.norm.forward(x);
        Ok(match &self.lm_head {
            Some(head) => head.forward(x),
            None => {
                let [batch, seq, hidden] = x.dims();
                let vocab = self.embed.weight.dims()[0];
                x.reshape([batch * seq, hidden])
                    .matmul(self.embed.weight.val().transpose())
                    .reshape([batch, seq, vocab])
            }
        })
    }
}
