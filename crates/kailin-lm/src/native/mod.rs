//! The decoder's inference on the CPU without a tensor framework: the weights of a [`Llama`]
//! on burn's CPU backend (`Flex`), copied out once into its own layout and run with faer's
//! GEMM and fused, vectorised loops. [`score`](crate::score), [`next_token_logprobs`](crate::next_token_logprobs)
//! and [`generate_batch`](crate::generate_batch) take this path by themselves on `Flex`; other
//! backends, and autodiff (training), keep burn's, which stays the reference.
//!
//! What it changes against burn's path:
//! - sequences are packed without padding (`[tokens, hidden]`, one block of rows per
//!   sequence), so no product is spent on padding and no mask is built;
//! - Q, K and V are one product (`hidden → q + 2·kv`), gate and up another (`hidden → 2·ff`),
//!   each over every token of the call, on all the pool's threads;
//! - RMSNorm, RoPE, SiLU·up and the residual adds are passes over rows, vectorised (AVX2+FMA
//!   chosen at run time);
//! - attention runs per sequence and key/value head in parallel, over a per-sequence KV cache
//!   laid out per head (`[kv_heads, capacity, head_dim]`), so a head's keys are contiguous and
//!   a decoding step appends in place instead of concatenating;
//! - only the positions a caller needs go through the final norm and the output projection.
//!
//! LoRA adapters are folded into the copied weights (`W + (α/r)·A·B`), so an adapted model
//! runs at the plain model's speed. The copy is made once and kept in the model's
//! [`NativeSlot`], beside the buffers it was made from (held, so they can be neither freed
//! nor changed in place: burn's CPU tensors copy on write); a call whose model holds other
//! buffers (loaded, merged, trained) makes a new copy.

mod backward;
mod causal;
mod disjoint;
mod kernels;
mod pass;
mod qmatrix;
mod shared;
mod step;
mod team;
mod train;

use std::any::Any;
use std::sync::{Arc, Mutex};

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;
use burn_flex::FlexTensor;

use crate::error::{Error, Result};
use crate::llama::{InAdapter, Linear, Llama};
use crate::score::Score;

pub(crate) use self::pass::SeqCache;
pub(crate) use self::qmatrix::{QMatrix, supported as quantised_products};
pub use self::train::{LoraGradient, Tape, TrainSequence, training_pass};

/// A projection `y = x·W + b`, stored as `Wᵀ` (`[output, input]` row-major): one output's
/// weights are contiguous, so a single row's product streams them.
#[derive(Debug, Clone)]
struct Proj {
    wt: Vec<f32>,
    b: Option<Vec<f32>>,
    input: usize,
    output: usize,
    /// The same weights as the file stored them, where they are still the file's (no adapter
    /// folded in, not trained): what products of a few rows (decoding) read instead of `wt`.
    q: Option<Arc<QMatrix>>,
}

/// Whether inference may multiply the file's quantised blocks (`KAILIN_LM_KERNELS=f32` asks for
/// the f32 copies alone, for comparisons).
fn quantised_wanted() -> bool {
    !std::env::var("KAILIN_LM_KERNELS").is_ok_and(|v| v == "f32")
}

/// A weight as its GGUF file stored it, and the buffer the model got at load: the quantised
/// matrix stands for the weight only while the model still holds that buffer (not after a
/// merge, a load or an optimiser step).
#[derive(Clone)]
pub(crate) struct FileWeight {
    matrix: Arc<QMatrix>,
    loaded: FlexTensor,
}

impl std::fmt::Debug for FileWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileWeight({:?})", self.matrix)
    }
}

impl FileWeight {
    /// `matrix` for the weight `param` holds now; `None` off burn's CPU backend (where the
    /// kernels never run).
    pub(crate) fn new<B: Backend, const D: usize>(param: &Param<Tensor<B, D>>, matrix: QMatrix) -> Option<Self> {
        let primitive = param.val().into_primitive().tensor();
        let loaded = (&primitive as &dyn Any).downcast_ref::<FlexTensor>()?.clone();
        Some(FileWeight { matrix: Arc::new(matrix), loaded })
    }

    /// The matrix, if `param` still holds the loaded buffer.
    fn matching<B: Backend, const D: usize>(&self, param: &Param<Tensor<B, D>>) -> Option<Arc<QMatrix>> {
        let primitive = param.val().into_primitive().tensor();
        let now = (&primitive as &dyn Any).downcast_ref::<FlexTensor>()?;
        same_buffers(std::slice::from_ref(&self.loaded), std::slice::from_ref(now)).then(|| Arc::clone(&self.matrix))
    }
}

#[derive(Debug, Clone)]
struct NativeBlock {
    attn_norm: Vec<f32>,
    /// Q, K and V side by side: `hidden → q + 2·kv`.
    qkv: Proj,
    o: Proj,
    mlp_norm: Vec<f32>,
    /// Gate and up side by side: `hidden → 2·ff`.
    gate_up: Proj,
    down: Proj,
}

/// A decoder's weights as plain arrays.
#[derive(Debug, Clone)]
pub(crate) struct NativeLlama {
    /// `[vocab, hidden]`.
    embed: Vec<f32>,
    blocks: Vec<NativeBlock>,
    norm: Vec<f32>,
    /// `None`: tied to the embedding.
    head: Option<Proj>,
    /// The embedding as its file stored it (while unchanged): the tied head's products for a few rows.
    embed_q: Option<Arc<QMatrix>>,
    /// RoPE tables `[max_positions, head_dim / 2]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    ff: usize,
    vocab: usize,
    max_positions: usize,
    eps: f32,
}

/// Whether `B` is burn's CPU backend, where [`NativeLlama`] runs.
fn is_cpu<B: Backend>() -> bool {
    std::any::TypeId::of::<B>() == std::any::TypeId::of::<burn::backend::Flex>()
}

/// The CPU kernels' copy of `model`'s weights on burn's CPU backend, made once per set of
/// weights; `None` on any other backend (or when `KAILIN_LM_KERNELS=burn` asks for burn's
/// path, for comparisons).
pub(crate) fn native<B: Backend>(model: &Llama<B>) -> Result<Option<Arc<NativeLlama>>> {
    cached(model, CopyKind::Folded)
}

/// Which weights a copy holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyKind {
    /// Every projection with its LoRA adapter folded in: inference.
    Folded,
    /// The frozen weights alone, adapters left out: training, where the adapters change at
    /// every step and are applied beside the copy.
    Base,
}

/// [`native`] for either kind of copy, each kept in its own place of the model's
/// [`NativeSlot`] and keyed by the buffers it was made from (a base copy by the frozen
/// weights' alone, so an optimiser step on the adapters keeps it).
pub(crate) fn cached<B: Backend>(model: &Llama<B>, copy: CopyKind) -> Result<Option<Arc<NativeLlama>>> {
    #[cfg(test)]
    if tests::BURN_ONLY.get() {
        return Ok(None);
    }
    if !is_cpu::<B>() || std::env::var("KAILIN_LM_KERNELS").is_ok_and(|v| v == "burn") {
        return Ok(None);
    }
    let mut keys = Buffers { buffers: Vec::new(), skip_adapters: copy == CopyKind::Base, depth: InAdapter::default() };
    model.visit(&mut keys);
    let slot = match copy {
        CopyKind::Folded => &model.native.folded,
        CopyKind::Base => &model.native.base,
    };
    let mut slot = slot.lock().map_err(|_| Error::Backend("a CPU weight cache poisoned by a panic".into()))?;
    if let Some((held, prepared)) = slot.as_ref()
        && same_buffers(held, &keys.buffers)
    {
        return Ok(Some(Arc::clone(prepared)));
    }
    *slot = None; // the old copy goes before the new one is made
    let prepared = Arc::new(NativeLlama::from_llama(model, copy)?);
    *slot = Some((keys.buffers, Arc::clone(&prepared)));
    Ok(Some(prepared))
}

/// Where a [`Llama`] keeps its [`NativeLlama`]s: each copy and the buffers it was made from.
/// Clones of a model share it.
#[derive(Clone, Default)]
pub(crate) struct NativeSlot {
    folded: Arc<Mutex<Option<Prepared>>>,
    base: Arc<Mutex<Option<Prepared>>>,
}

/// The buffers a copy was made from, and the copy.
type Prepared = (Vec<FlexTensor>, Arc<NativeLlama>);

impl std::fmt::Debug for NativeSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NativeSlot")
    }
}

/// Every float parameter's buffer, in the module's order (on `Flex`); with `skip_adapters`,
/// those of LoRA adapters left out.
struct Buffers {
    buffers: Vec<FlexTensor>,
    skip_adapters: bool,
    depth: InAdapter,
}

impl<B: Backend> ModuleVisitor<B> for Buffers {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.depth.enter(name);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.depth.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.skip_adapters && self.depth.inside() {
            return;
        }
        let primitive = param.val().into_primitive().tensor();
        if let Some(t) = (&primitive as &dyn Any).downcast_ref::<FlexTensor>() {
            self.buffers.push(t.clone());
        }
    }
}

/// Whether two lists name the same buffers with the same layouts.
fn same_buffers(a: &[FlexTensor], b: &[FlexTensor]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            std::ptr::eq(x.bytes().as_ptr(), y.bytes().as_ptr()) && x.layout() == y.layout() && x.dtype() == y.dtype()
        })
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    t.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| Error::Backend(format!("reading weights: {e:?}")))
}

fn proj<B: Backend>(l: &Linear<B>, copy: CopyKind) -> Result<Proj> {
    let [input, output] = l.weight.dims();
    let b = l.bias.as_ref().map(|b| values(b.val())).transpose()?;
    let w = match copy {
        CopyKind::Folded => l.effective_weight(),
        CopyKind::Base => l.weight.val(),
    };
    // The file's blocks hold the loaded weight, so they stand for a projection without an
    // adapter folded in; training (the base copy) keeps f32 products, which its backward pass
    // differentiates.
    let q = match (&l.file, copy) {
        (Some(file), CopyKind::Folded) if l.lora.is_none() && quantised_wanted() => file.matching(&l.weight),
        _ => None,
    };
    Ok(Proj { wt: transposed(&values(w)?, input, output), b, input, output, q })
}

/// `w` `[rows, cols]` row-major as `[cols, rows]`, by 32 × 32 tiles (burn's strided read of a
/// transposed view took seconds for a 135M model; this takes a fraction of one).
fn transposed(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    use rayon::prelude::*;
    const TILE: usize = 32;
    let mut out = vec![0f32; w.len()];
    out.par_chunks_mut(TILE * rows).enumerate().for_each(|(band, dst)| {
        let c0 = band * TILE;
        let width = dst.len() / rows;
        for r0 in (0..rows).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in 0..width {
                    dst[c * rows + r] = w[r * cols + c0 + c];
                }
            }
        }
    });
    out
}

/// Projections of one input side by side: the outputs of each part in turn (biases likewise;
/// zero where a part has none).
fn side_by_side(parts: &[Proj]) -> Proj {
    let input = parts[0].input;
    let output: usize = parts.iter().map(|p| p.output).sum();
    let wt = parts.iter().flat_map(|p| p.wt.iter().copied()).collect();
    let b = parts
        .iter()
        .any(|p| p.b.is_some())
        .then(|| parts.iter().flat_map(|p| p.b.clone().unwrap_or_else(|| vec![0.0; p.output])).collect::<Vec<f32>>());
    let q = parts
        .iter()
        .map(|p| p.q.as_deref())
        .collect::<Option<Vec<_>>>()
        .and_then(|qs| QMatrix::stacked(&qs))
        .map(Arc::new);
    Proj { wt, b, input, output, q }
}

impl NativeLlama {
    /// The weights of `model` (adapters folded in, or left out).
    pub(crate) fn from_llama<B: Backend>(model: &Llama<B>, copy: CopyKind) -> Result<Self> {
        let first = model.blocks.first().ok_or_else(|| Error::Backend("a model without blocks".into()))?;
        let (heads, kv_heads, head_dim) = (first.attn.num_heads, first.attn.num_kv_heads, first.attn.head_dim);
        let blocks = model
            .blocks
            .iter()
            .map(|b| {
                let (a, m) = (&b.attn, &b.mlp);
                Ok(NativeBlock {
                    attn_norm: values(b.attn_norm.gamma.val())?,
                    qkv: side_by_side(&[proj(&a.q, copy)?, proj(&a.k, copy)?, proj(&a.v, copy)?]),
                    o: proj(&a.o, copy)?,
                    mlp_norm: values(b.mlp_norm.gamma.val())?,
                    gate_up: side_by_side(&[proj(&m.gate, copy)?, proj(&m.up, copy)?]),
                    down: proj(&m.down, copy)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let [vocab, hidden] = model.embed.weight.dims();
        let (cos, sin) = model.rope.table_values();
        Ok(NativeLlama {
            embed: values(model.embed.weight.val())?,
            embed_q: match (&model.embed_file, copy) {
                (Some(file), CopyKind::Folded) if quantised_wanted() => file.matching(&model.embed.weight),
                _ => None,
            },
            ff: first.mlp.gate.weight.dims()[1],
            blocks,
            norm: values(model.norm.gamma.val())?,
            head: model.lm_head.as_ref().map(|h| proj(h, copy)).transpose()?,
            cos: cos.to_vec(),
            sin: sin.to_vec(),
            hidden,
            heads,
            kv_heads,
            head_dim,
            vocab,
            max_positions: model.max_positions(),
            eps: model.norm.epsilon as f32,
        })
    }

    /// An empty KV cache for one sequence of up to `capacity` positions.
    pub(crate) fn cache(&self, capacity: usize) -> SeqCache {
        SeqCache::new(self.blocks.len(), self.kv_heads, capacity, self.head_dim)
    }
}

/// Tokens per packed pass: bounds the scratch buffers (and the logits kept) of a big call.
const TOKENS_PER_PASS: usize = 4096;

impl NativeLlama {
    /// [`crate::score`] on these kernels: each continuation's tokens scored after its prompt.
    /// The pairs are checked non-empty by the caller.
    pub(crate) fn score(&self, pairs: &[(Vec<u32>, Vec<u32>)]) -> Result<Vec<Score>> {
        let mut out = Vec::with_capacity(pairs.len());
        for group in groups(pairs.iter().map(|(p, c)| p.len() + c.len() - 1)) {
            let pairs = &pairs[group];
            // The last continuation token is predicted, never fed.
            let seqs: Vec<Vec<u32>> =
                pairs.iter().map(|(p, c)| p.iter().chain(&c[..c.len() - 1]).copied().collect()).collect();
            let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
            let mut caches: Vec<SeqCache> = seqs.iter().map(|s| self.cache(s.len())).collect();
            let want: Vec<Vec<usize>> =
                pairs.iter().map(|(p, c)| (p.len() - 1..p.len() - 1 + c.len()).collect()).collect();
            let logits = self.forward(&refs, &mut caches, &want)?;
            let mut rows = logits.chunks_exact(self.vocab);
            for (_, c) in pairs {
                let per_token: Vec<f64> = c
                    .iter()
                    .zip(rows.by_ref())
                    .map(|(&t, row)| Ok(self.log_probs(row, &[t])?[0]))
                    .collect::<Result<_>>()?;
                out.push(Score { total: per_token.iter().sum(), per_token });
            }
        }
        Ok(out)
    }

    /// [`crate::next_token_logprobs`] on these kernels (prompts checked non-empty and tokens
    /// in range by the caller).
    pub(crate) fn next_token_logprobs(&self, prompts: &[Vec<u32>], tokens: &[u32]) -> Result<Vec<Vec<f64>>> {
        let mut out = Vec::with_capacity(prompts.len());
        for group in groups(prompts.iter().map(Vec::len)) {
            let prompts = &prompts[group];
            let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
            let (_, logits) = self.prefill_shared(&refs, 0)?;
            for row in logits.chunks_exact(self.vocab) {
                out.push(self.log_probs(row, tokens)?);
            }
        }
        Ok(out)
    }

    /// `log softmax(row)[t]` for each of `tokens` (the normaliser computed once).
    fn log_probs(&self, row: &[f32], tokens: &[u32]) -> Result<Vec<f64>> {
        let lse = f64::from(kernels::log_sum_exp(row));
        tokens
            .iter()
            .map(|&t| {
                let logit =
                    row.get(t as usize).ok_or(Error::TokenOutOfRange { token: i64::from(t), vocab: self.vocab })?;
                Ok(f64::from(*logit) - lse)
            })
            .collect()
    }
}

/// Consecutive groups of sequences (by their lengths, `lens`) of at most [`TOKENS_PER_PASS`]
/// tokens each (a longer sequence alone), as index ranges.
fn groups(lens: impl Iterator<Item = usize>) -> Vec<std::ops::Range<usize>> {
    let (mut out, mut start, mut tokens, mut count) = (Vec::new(), 0, 0, 0);
    for (i, len) in lens.enumerate() {
        if i > start && tokens + len > TOKENS_PER_PASS {
            out.push(start..i);
            (start, tokens) = (i, 0);
        }
        tokens += len;
        count = i + 1;
    }
    if count > start {
        out.push(start..count);
    }
    out
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod train_tests;
