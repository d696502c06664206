//! Training passes on the CPU kernels: a forward pass over packed sequences that keeps what
//! its backward pass needs (a [`Tape`]), and that backward pass ([`Tape::backward`], in
//! `backward.rs`), which returns the LoRA adapters' gradients.
//!
//! The frozen weights come from the model's base copy ([`CopyKind::Base`], made once: an
//! optimiser step changes only the adapters); the adapters are read at every pass and applied
//! beside the frozen product, `y = x·W + s·(x·A)·B`, so that their gradients need only the
//! low-rank products `x·A` kept on the tape.

use std::sync::Arc;

use burn::module::ParamId;
use burn::prelude::*;
use rayon::prelude::*;

use super::kernels::{add_into, log_sum_exp, matmul, rms_norm_rows, rope, rope_inverse, silu_mul_rows};
use super::{CopyKind, NativeBlock, NativeLlama, cached, values};
use crate::error::{Error, Result};
use crate::llama::{Linear, Llama};

/// One sequence of a training pass: its tokens, and each position whose next token is scored
/// with the token it must predict (`(position, target)`, positions into `tokens`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrainSequence {
    /// Token ids, from position 0.
    pub tokens: Vec<u32>,
    /// `(position, target)` pairs: `log p(target | tokens[..=position])` is scored.
    pub targets: Vec<(usize, u32)>,
}

/// The gradient of one LoRA parameter (`A` `[in, rank]` or `B` `[rank, out]`), by its id.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraGradient {
    /// The parameter's id in the model.
    pub param: ParamId,
    /// Its shape.
    pub shape: [usize; 2],
    /// Row-major values.
    pub values: Vec<f32>,
}

/// One adapter of a (fused) projection, as plain arrays: its update lands on output columns
/// `offset..offset + width`.
pub(super) struct Adapter {
    /// `[input, rank]`.
    pub(super) a: Vec<f32>,
    /// `[rank, width]`.
    pub(super) b: Vec<f32>,
    pub(super) rank: usize,
    pub(super) input: usize,
    pub(super) offset: usize,
    pub(super) width: usize,
    pub(super) scale: f32,
    pub(super) ids: [ParamId; 2],
}

/// The adapters of one block's fused projections (empty where a projection has none).
pub(super) struct BlockAdapters {
    pub(super) qkv: Vec<Adapter>,
    pub(super) o: Vec<Adapter>,
    pub(super) gate_up: Vec<Adapter>,
    pub(super) down: Vec<Adapter>,
}

/// Where one sequence's rows sit in the packed buffers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) row: usize,
    pub(super) len: usize,
}

/// What one block's backward pass needs.
pub(super) struct LayerTape {
    /// The block's input `[n, hidden]`.
    pub(super) x: Vec<f32>,
    pub(super) n1: Vec<f32>,
    /// Q, K (RoPE applied) and V `[n, q + 2·kv]`.
    pub(super) qkv: Vec<f32>,
    pub(super) xa_qkv: Vec<Vec<f32>>,
    /// Attention probabilities per (sequence, key/value head), `[group · len, len]`.
    pub(super) probs: Vec<Vec<f32>>,
    pub(super) ctx: Vec<f32>,
    pub(super) xa_o: Vec<Vec<f32>>,
    /// After attention's residual add.
    pub(super) x2: Vec<f32>,
    pub(super) n2: Vec<f32>,
    pub(super) gate_up: Vec<f32>,
    pub(super) xa_gate_up: Vec<Vec<f32>>,
    pub(super) act: Vec<f32>,
    pub(super) xa_down: Vec<Vec<f32>>,
}

/// A training forward pass, kept for its backward pass: [`training_pass`] makes it.
pub struct Tape {
    pub(super) model: Arc<NativeLlama>,
    pub(super) adapters: Vec<BlockAdapters>,
    pub(super) spans: Vec<Span>,
    pub(super) layers: Vec<LayerTape>,
    /// The last block's output `[n, hidden]`.
    pub(super) last: Vec<f32>,
    /// Packed row and target of every scored position, sequence after sequence.
    pub(super) scored: Vec<(usize, u32)>,
    /// Their logits `[scored, vocab]`.
    pub(super) logits: Vec<f32>,
    /// Each logits row's normaliser, `ln Σ e^z`.
    pub(super) lse: Vec<f32>,
    pub(super) logprobs: Vec<Vec<f64>>,
}

impl std::fmt::Debug for Tape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tape").field("sequences", &self.spans.len()).field("scored", &self.scored.len()).finish()
    }
}

impl Tape {
    /// `log p(target)` of every target of every sequence, in the order given.
    pub fn logprobs(&self) -> &[Vec<f64>] {
        &self.logprobs
    }
}

/// The forward pass of a training step on the crate's CPU kernels: the log-probability of
/// every target of `seqs` (each sequence alone, from position 0), and a [`Tape`] whose
/// [`backward`](Tape::backward) gives the LoRA adapters' gradients of any loss of them.
///
/// `None` where these kernels do not apply: a backend other than burn's `Flex` (call it with
/// [`AutodiffModule::valid`](burn::module::AutodiffModule::valid) of a model being trained),
/// LoRA dropout (burn's path draws it), or `KAILIN_LM_KERNELS=burn`. The model's frozen
/// weights are copied once and kept; its adapters are read at every call.
///
/// Errors: an empty sequence, one longer than the model's positions, a token or target outside
/// the vocabulary, a target position outside its sequence.
pub fn training_pass<B: Backend>(model: &Llama<B>, seqs: &[TrainSequence]) -> Result<Option<Tape>> {
    if model.is_stochastic() {
        return Ok(None);
    }
    let Some(native) = cached(model, CopyKind::Base)? else { return Ok(None) };
    let adapters = model.blocks.iter().map(block_adapters).collect::<Result<Vec<_>>>()?;
    native.tape(adapters, seqs).map(Some)
}

/// The adapters of `block`'s projections, fused as the copy fuses them.
fn block_adapters<B: Backend>(block: &crate::llama::Block<B>) -> Result<BlockAdapters> {
    let (a, m) = (&block.attn, &block.mlp);
    Ok(BlockAdapters {
        qkv: fused(&[&a.q, &a.k, &a.v])?,
        o: fused(&[&a.o])?,
        gate_up: fused(&[&m.gate, &m.up])?,
        down: fused(&[&m.down])?,
    })
}

fn fused<B: Backend>(parts: &[&Linear<B>]) -> Result<Vec<Adapter>> {
    let (mut out, mut offset) = (Vec::new(), 0);
    for l in parts {
        let [input, width] = l.weight.dims();
        if let Some(lora) = &l.lora {
            let rank = lora.a.dims()[1];
            out.push(Adapter {
                a: values(lora.a.val())?,
                b: values(lora.b.val())?,
                rank,
                input,
                offset,
                width,
                scale: lora.scale as f32,
                ids: [lora.a.id, lora.b.id],
            });
        }
        offset += width;
    }
    Ok(out)
}

/// `dst = a · b` (or `+=` with `accumulate`), times `alpha`, for faer matrices.
pub(super) fn gemm(
    dst: faer::MatMut<'_, f32>,
    accumulate: bool,
    a: faer::MatRef<'_, f32>,
    b: faer::MatRef<'_, f32>,
    alpha: f32,
    par: faer::Par,
) {
    let accum = if accumulate { faer::Accum::Add } else { faer::Accum::Replace };
    faer::linalg::matmul::matmul(dst, accum, a, b, alpha, par);
}

/// A row-major slice as a faer matrix.
pub(super) fn mat(s: &[f32], rows: usize, cols: usize) -> faer::MatRef<'_, f32> {
    faer::MatRef::from_row_major_slice(&s[..rows * cols], rows, cols)
}

/// [`mat`], mutably.
pub(super) fn mat_mut(s: &mut [f32], rows: usize, cols: usize) -> faer::MatMut<'_, f32> {
    faer::MatMut::from_row_major_slice_mut(&mut s[..rows * cols], rows, cols)
}

/// `y[:, offset..offset + width] += s·(x·A)·B` for each adapter; returns each `x·A` `[n, rank]`.
fn lora_forward(adapters: &[Adapter], x: &[f32], y: &mut [f32], n: usize, out: usize) -> Vec<Vec<f32>> {
    let par = faer::Par::rayon(0);
    adapters
        .iter()
        .map(|ad| {
            let mut xa = vec![0f32; n * ad.rank];
            gemm(mat_mut(&mut xa, n, ad.rank), false, mat(x, n, ad.input), mat(&ad.a, ad.input, ad.rank), 1.0, par);
            let part = mat_mut(y, n, out).subcols_mut(ad.offset, ad.width);
            gemm(part, true, mat(&xa, n, ad.rank), mat(&ad.b, ad.rank, ad.width), ad.scale, par);
            xa
        })
        .collect()
}

impl NativeLlama {
    fn tape(self: Arc<Self>, adapters: Vec<BlockAdapters>, seqs: &[TrainSequence]) -> Result<Tape> {
        let (mut spans, mut scored, mut row) = (Vec::with_capacity(seqs.len()), Vec::new(), 0);
        for (i, s) in seqs.iter().enumerate() {
            if s.tokens.is_empty() {
                return Err(Error::EmptyScore { pair: i });
            }
            if s.tokens.len() > self.max_positions {
                return Err(Error::TooLong { len: s.tokens.len(), max: self.max_positions });
            }
            let bad = s.tokens.iter().chain(s.targets.iter().map(|(_, t)| t)).find(|&&t| t as usize >= self.vocab);
            if let Some(&bad) = bad {
                return Err(Error::TokenOutOfRange { token: i64::from(bad), vocab: self.vocab });
            }
            if let Some(&(p, _)) = s.targets.iter().find(|(p, _)| *p >= s.tokens.len()) {
                return Err(Error::TooLong { len: p + 1, max: s.tokens.len() });
            }
            scored.extend(s.targets.iter().map(|&(p, t)| (row + p, t)));
            spans.push(Span { row, len: s.tokens.len() });
            row += s.tokens.len();
        }
        let (n, h) = (row, self.hidden);
        let mut x = vec![0f32; n * h];
        for (span, s) in spans.iter().zip(seqs) {
            for (t, &id) in s.tokens.iter().enumerate() {
                let at = (span.row + t) * h;
                x[at..at + h].copy_from_slice(&self.embed[id as usize * h..(id as usize + 1) * h]);
            }
        }
        let mut layers = Vec::with_capacity(self.blocks.len());
        for (block, ad) in self.blocks.iter().zip(&adapters) {
            let (tape, next) = self.block_forward(block, ad, x, &spans);
            layers.push(tape);
            x = next;
        }
        let rows: Vec<usize> = scored.iter().map(|&(r, _)| r).collect();
        let logits = self.head_rows(&x, &rows);
        let lse: Vec<f32> = logits.par_chunks_exact(self.vocab).map(log_sum_exp).collect();
        let mut at = logits.chunks_exact(self.vocab).zip(&scored).zip(&lse);
        let logprobs = seqs
            .iter()
            .map(|s| {
                let row = |((z, &(_, t)), &l): ((&[f32], _), &f32)| f64::from(z[t as usize]) - f64::from(l);
                at.by_ref().take(s.targets.len()).map(row).collect()
            })
            .collect();
        Ok(Tape { model: self, adapters, spans, layers, last: x, scored, logits, lse, logprobs })
    }

    fn block_forward(
        &self,
        blk: &NativeBlock,
        ad: &BlockAdapters,
        x: Vec<f32>,
        spans: &[Span],
    ) -> (LayerTape, Vec<f32>) {
        let (n, h, ff) = (x.len() / self.hidden, self.hidden, self.ff);
        let wq = blk.qkv.output;
        let mut n1 = vec![0f32; n * h];
        rms_norm_rows(&mut n1, &x, &blk.attn_norm, self.eps);
        let mut qkv = vec![0f32; n * wq];
        matmul(&mut qkv, &n1, &blk.qkv, n);
        let xa_qkv = lora_forward(&ad.qkv, &n1, &mut qkv, n, wq);
        self.rope_rows(&mut qkv, spans, false);
        let (ctx, probs) = self.self_attention(&qkv, spans);
        let mut x2 = vec![0f32; n * h];
        matmul(&mut x2, &ctx, &blk.o, n);
        let xa_o = lora_forward(&ad.o, &ctx, &mut x2, n, h);
        add_into(&mut x2, &x);
        let mut n2 = vec![0f32; n * h];
        rms_norm_rows(&mut n2, &x2, &blk.mlp_norm, self.eps);
        let mut gate_up = vec![0f32; n * 2 * ff];
        matmul(&mut gate_up, &n2, &blk.gate_up, n);
        let xa_gate_up = lora_forward(&ad.gate_up, &n2, &mut gate_up, n, 2 * ff);
        let mut act = vec![0f32; n * ff];
        silu_mul_rows(&mut act, &gate_up, ff);
        let mut out = vec![0f32; n * h];
        matmul(&mut out, &act, &blk.down, n);
        let xa_down = lora_forward(&ad.down, &act, &mut out, n, h);
        add_into(&mut out, &x2);
        let tape = LayerTape { x, n1, qkv, xa_qkv, probs, ctx, xa_o, x2, n2, gate_up, xa_gate_up, act, xa_down };
        (tape, out)
    }

    /// RoPE on the query and key heads of every row, at its position in its sequence; with
    /// `inverse`, the transposed rotation (what a gradient goes back through).
    pub(super) fn rope_rows(&self, qkv: &mut [f32], spans: &[Span], inverse: bool) {
        let (hd, nh, kvh) = (self.head_dim, self.heads, self.kv_heads);
        let width = (nh + 2 * kvh) * hd;
        let half = hd / 2;
        let starts: Vec<usize> = spans.iter().flat_map(|s| 0..s.len).collect();
        qkv.par_chunks_exact_mut(width).zip(starts.par_iter()).for_each(|(row, &pos)| {
            let cos = &self.cos[pos * half..(pos + 1) * half];
            let sin = &self.sin[pos * half..(pos + 1) * half];
            for head in row[..(nh + kvh) * hd].chunks_exact_mut(hd) {
                if inverse { rope_inverse(head, cos, sin) } else { rope(head, cos, sin) }
            }
        });
    }
}
