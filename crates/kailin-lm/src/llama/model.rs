//! The whole decoder: embedding, blocks, final norm, output projection.

use burn::module::Param;
use burn::nn::{Embedding, EmbeddingConfig, LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;

use super::{Attention, Block, KvCache, Linear, LlamaConfig, Mlp, Part, Rope, Step, Weight};
use crate::error::{Error, Result};
use crate::native::{FileWeight, NativeSlot};

/// A Llama-family decoder.
#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    pub(crate) embed: Embedding<B>,
    pub(crate) blocks: Vec<Block<B>>,
    pub(crate) norm: RmsNorm<B>,
    /// `None` when tied to the embedding.
    pub(crate) lm_head: Option<Linear<B>>,
    #[module(skip)]
    pub(crate) rope: Rope,
    /// The embedding as its GGUF file stored it (the tied head's decoding products), while
    /// the embedding is the one loaded.
    #[module(skip)]
    pub(crate) embed_file: Option<FileWeight>,
    /// The CPU kernels' copy of the weights, made at the first call that needs it.
    #[module(skip)]
    pub(crate) native: NativeSlot,
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
    fn linear(&mut self, w: Weight, layer: usize, out: usize, inp: usize, bias: bool) -> Result<Linear<B>> {
        // Transposed here, on the host: a transposed view would be copied to contiguous
        // memory by every matmul (that copy was 85% of decoding time).
        let values = self.values(&w.hf(layer, Part::Weight), &[out, inp])?;
        let mut t = vec![0.0f32; values.len()];
        for (o, row) in values.chunks_exact(inp).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                t[i * out + o] = v;
            }
        }
        let weight = Param::from_tensor(Tensor::from_data(TensorData::new(t, [inp, out]), self.device));
        let bias = if bias { Some(Param::from_tensor(self.tensor(&w.hf(layer, Part::Bias), [out])?)) } else { None };
        Ok(Linear::plain(weight, bias))
    }

    fn rms(&mut self, w: Weight, layer: usize, width: usize, eps: f64) -> Result<RmsNorm<B>> {
        Ok(RmsNorm { gamma: Param::from_tensor(self.tensor(&w.hf(layer, Part::Weight), [width])?), epsilon: eps })
    }
}

impl LlamaConfig {
    /// A model of this architecture with freshly initialised weights (burn's default
    /// initialisers, drawn lazily: weights loaded over them are never drawn), for training
    /// from scratch or as the target of a weight loader. `max_positions` bounds the sequence
    /// length (RoPE tables).
    pub fn init<B: Backend>(&self, max_positions: usize, device: &B::Device) -> Llama<B> {
        let (h, hd, eps) = (self.hidden_size, self.head_dim(), self.rms_eps);
        let (q, kv, ff) = (self.num_heads * hd, self.num_kv_heads * hd, self.intermediate_size);
        let linear = |i: usize, o: usize, bias: bool| {
            let l = LinearConfig::new(i, o).with_bias(bias).init(device);
            Linear::plain(l.weight, l.bias)
        };
        let rms = || RmsNormConfig::new(h).with_epsilon(eps).init(device);
        let blocks = (0..self.num_layers)
            .map(|_| Block {
                attn_norm: rms(),
                attn: Attention {
                    q: linear(h, q, self.attention_bias),
                    k: linear(h, kv, self.attention_bias),
                    v: linear(h, kv, self.attention_bias),
                    o: linear(q, h, false),
                    num_heads: self.num_heads,
                    num_kv_heads: self.num_kv_heads,
                    head_dim: hd,
                },
                mlp_norm: rms(),
                mlp: Mlp { gate: linear(h, ff, false), up: linear(h, ff, false), down: linear(ff, h, false) },
            })
            .collect();
        Llama {
            embed: EmbeddingConfig::new(self.vocab_size, h).init(device),
            blocks,
            norm: rms(),
            lm_head: (!self.tie_embeddings).then(|| linear(h, self.vocab_size, false)),
            rope: Rope::new(&self.inverse_frequencies(), max_positions),
            embed_file: None,
            native: NativeSlot::default(),
        }
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
        let (h, eps) = (config.hidden_size, config.rms_eps);
        let (q, kv) = (config.num_heads * config.head_dim(), config.num_kv_heads * config.head_dim());
        let mut l = Loader { weight: &mut weight, device };
        let mut blocks = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let ff = config.intermediate_size;
            let attn = Attention {
                q: l.linear(Weight::Q, i, q, h, config.attention_bias)?,
                k: l.linear(Weight::K, i, kv, h, config.attention_bias)?,
                v: l.linear(Weight::V, i, kv, h, config.attention_bias)?,
                o: l.linear(Weight::O, i, h, q, false)?,
                num_heads: config.num_heads,
                num_kv_heads: config.num_kv_heads,
                head_dim: config.head_dim(),
            };
            let mlp = Mlp {
                gate: l.linear(Weight::Gate, i, ff, h, false)?,
                up: l.linear(Weight::Up, i, ff, h, false)?,
                down: l.linear(Weight::Down, i, h, ff, false)?,
            };
            let attn_norm = l.rms(Weight::AttnNorm, i, h, eps)?;
            let mlp_norm = l.rms(Weight::MlpNorm, i, h, eps)?;
            blocks.push(Block { attn_norm, attn, mlp_norm, mlp });
        }
        let embed_name = Weight::Embed.hf(0, Part::Weight);
        let embed = Embedding { weight: Param::from_tensor(l.tensor(&embed_name, [config.vocab_size, h])?) };
        let norm = l.rms(Weight::Norm, 0, h, eps)?;
        let lm_head = if config.tie_embeddings {
            None
        } else {
            Some(l.linear(Weight::LmHead, 0, config.vocab_size, h, false)?)
        };
        let rope = Rope::new(&config.inverse_frequencies(), max_positions);
        Ok(Llama { embed, blocks, norm, lm_head, rope, embed_file: None, native: NativeSlot::default() })
    }

    /// Next-token logits for every position.
    ///
    /// Shapes: `tokens` `[batch, seq]` → logits `[batch, seq, vocab]`.
    ///
    /// Errors: a sequence longer than the `max_positions` the model was built with; a token id
    /// outside the vocabulary.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Result<Tensor<B, 3>> {
        self.run(tokens, None, None, Checks::Device, Logits::All)
    }

    /// The logits of one position per sequence: row `b` at `positions[b]` (the last token of a
    /// right-padded prompt, say). The output projection runs on those positions only, which
    /// is what scoring a one-token answer needs.
    ///
    /// Shapes: `tokens` `[batch, seq]`, `positions` `[batch]` → logits `[batch, vocab]`.
    ///
    /// Errors: as [`Llama::forward`]; `positions` of another length than the batch, or a
    /// position outside the sequence ([`Error::BatchMismatch`], [`Error::TooLong`]).
    pub fn forward_at(&self, tokens: Tensor<B, 2, Int>, positions: &[usize]) -> Result<Tensor<B, 2>> {
        let [batch, seq] = tokens.dims();
        if positions.len() != batch {
            return Err(Error::BatchMismatch { what: "positions", expected: positions.len(), batch });
        }
        if let Some(&p) = positions.iter().find(|&&p| p >= seq) {
            return Err(Error::TooLong { len: p + 1, max: seq });
        }
        let logits = self.run(tokens, None, None, Checks::Device, Logits::At(positions))?;
        let vocab = self.vocab_size();
        Ok(logits.reshape([batch, vocab]))
    }

    /// Next-token logits of packed sequences, for training on several records per row:
    /// `segments` (`batch · seq` record numbers, row-major) says which record each token belongs
    /// to. Attention never crosses a change of record, and positions restart at each record, so
    /// every record is computed exactly as it would be alone.
    ///
    /// Shapes: `tokens` `[batch, seq]`, `segments` `[batch · seq]` → logits `[batch, seq, vocab]`.
    ///
    /// Errors: as [`Llama::forward`]; `segments` of another length.
    pub fn forward_segments(&self, tokens: Tensor<B, 2, Int>, segments: &[u32]) -> Result<Tensor<B, 3>> {
        let [batch, seq] = tokens.dims();
        if segments.len() != batch * seq {
            return Err(Error::Segments { expected: batch * seq, got: segments.len() });
        }
        self.run(tokens, None, Some(segments), Checks::Device, Logits::All)
    }

    /// Like [`forward`](Self::forward) for the tokens that follow those in `cache`, which
    /// receives their keys and values: incremental decoding.
    ///
    /// Shapes: `tokens` `[batch, new]` → logits `[batch, new, vocab]`.
    pub fn forward_cached(&self, tokens: Tensor<B, 2, Int>, cache: &mut KvCache<B>) -> Result<Tensor<B, 3>> {
        self.run_cached(tokens, cache, Checks::Device, Logits::All)
    }

    /// The number of transformer blocks (what a [`KvCache`] must be made for).
    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// The vocabulary size (rows of the token embedding).
    pub fn vocab_size(&self) -> usize {
        self.embed.weight.dims()[0]
    }

    /// The longest sequence (prompt and generated tokens) this model instance accepts.
    pub fn max_positions(&self) -> usize {
        self.rope.max_positions()
    }

    /// [`forward_cached`](Self::forward_cached) for token ids held on the host (the range
    /// check needs no device reduction, and no synchronisation), returning the logits of the
    /// last position only (the output projection of the other positions is skipped): what a
    /// decoding step needs.
    ///
    /// Shapes: `ids` row-major `[batch, new]` → logits `[batch, 1, vocab]`.
    pub(crate) fn next_logits(&self, ids: &[u32], batch: usize, cache: &mut KvCache<B>) -> Result<Tensor<B, 3>> {
        let vocab = self.vocab_size();
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::TokenOutOfRange { token: i64::from(bad), vocab });
        }
        let device = self.embed.weight.device();
        let seq = ids.len() / batch.max(1);
        let data: Vec<i64> = ids.iter().map(|&t| i64::from(t)).collect();
        let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(data, [batch, seq]), &device);
        self.run_cached(tokens, cache, Checks::Host, Logits::Last)
    }

    /// A pass through `cache`, which must belong to this model's depth and advances by the
    /// new tokens.
    fn run_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: &mut KvCache<B>,
        checks: Checks,
        logits: Logits<'_>,
    ) -> Result<Tensor<B, 3>> {
        if cache.layers.len() != self.blocks.len() {
            return Err(Error::CacheMismatch { cache: cache.layers.len(), model: self.blocks.len() });
        }
        let seq = tokens.dims()[1];
        let logits = self.run(tokens, Some(cache), None, checks, logits)?;
        cache.advance(seq);
        Ok(logits)
    }

    fn run(
        &self,
        tokens: Tensor<B, 2, Int>,
        mut cache: Option<&mut KvCache<B>>,
        segments: Option<&[u32]>,
        checks: Checks,
        logits: Logits<'_>,
    ) -> Result<Tensor<B, 3>> {
        let [batch, seq] = tokens.dims();
        let start = cache.as_ref().map_or(0, |c| c.len());
        if start + seq > self.rope.max_positions() {
            return Err(Error::TooLong { len: start + seq, max: self.rope.max_positions() });
        }
        let vocab = self.vocab_size();
        if checks == Checks::Device {
            let (lowest, highest) =
                (tokens.clone().min().into_scalar().elem::<i64>(), tokens.clone().max().into_scalar().elem::<i64>());
            if lowest < 0 || highest >= vocab as i64 {
                let token = if lowest < 0 { lowest } else { highest };
                return Err(Error::TokenOutOfRange { token, vocab });
            }
        }
        let pads = cache.as_ref().map_or(&[][..], |c| &c.pads[..]);
        if !pads.is_empty() && pads.len() != batch {
            return Err(Error::BatchMismatch { what: "KV cache padding", expected: pads.len(), batch });
        }
        let step = match segments {
            Some(segments) => Step::segmented(&self.rope, batch, seq, segments, &tokens.device()),
            None => Step::new(&self.rope, batch, seq, start, pads, &tokens.device()),
        };
        let mut x = self.embed.forward(tokens);
        for (i, block) in self.blocks.iter().enumerate() {
            let slot = cache.as_mut().map(|c| &mut c.layers[i]);
            x = block.forward(x, &step, slot);
        }
        match logits {
            Logits::Last if seq > 1 => x = x.slice_dim(1, seq - 1..seq),
            Logits::At(positions) => {
                let [batch, seq, hidden] = x.dims();
                let rows: Vec<i64> = positions.iter().enumerate().map(|(b, &p)| (b * seq + p) as i64).collect();
                let rows = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [batch]), &x.device());
                x = x.reshape([batch * seq, hidden]).select(0, rows).reshape([batch, 1, hidden]);
            }
            _ => {}
        }
        let x = self.norm.forward(x);
        let [batch, seq, hidden] = x.dims();
        let x = x.reshape([batch * seq, hidden]);
        let logits = match &self.lm_head {
            Some(head) => head.forward(x),
            // (E·xᵀ)ᵀ rather than x·Eᵀ: the embedding is read in its own row-major layout
            // (faster for batches on flex).
            None => self.embed.weight.val().matmul(x.transpose()).transpose(),
        };
        Ok(logits.reshape([batch, seq, vocab]))
    }
}

/// Where the token ids of a pass are range-checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checks {
    /// On the device (two reductions and a synchronisation): ids arrived as a tensor.
    Device,
    /// Already on the host, by the caller.
    Host,
}

/// Which positions of a pass get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logits<'a> {
    /// Every position.
    All,
    /// The last one only.
    Last,
    /// One per sequence: row `b` at position `[b]` (checked by the caller).
    At(&'a [usize]),
}
