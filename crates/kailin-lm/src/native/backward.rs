//! The backward pass of a [`Tape`]: from the gradient of a loss with respect to each scored
//! log-probability down through every block to the LoRA adapters' gradients. The frozen
//! weights get none; the gradient that flows through them is `dy · Wᵀ`, one product per
//! projection as in the forward pass.

use rayon::prelude::*;

use super::NativeLlama;
use super::kernels::{log_softmax_grad, silu_mul_back};
use super::train::{Adapter, LayerTape, LoraGradient, Span, Tape, gemm, mat, mat_mut};
use crate::error::{Error, Result};

/// Rows per parallel task of the element-wise passes.
const ROWS_PER_TASK: usize = 32;

impl Tape {
    /// The gradients of the adapters (every `A` and `B` of the model, in block order) of a
    /// loss `L` whose derivative with respect to each log-probability of
    /// [`logprobs`](Self::logprobs) is `dlogp` (same shape).
    ///
    /// Errors: `dlogp` of another shape than the log-probabilities.
    pub fn backward(self, dlogp: &[Vec<f64>]) -> Result<Vec<LoraGradient>> {
        let fits =
            dlogp.len() == self.logprobs.len() && dlogp.iter().zip(&self.logprobs).all(|(d, l)| d.len() == l.len());
        if !fits {
            let (expected, batch) = (self.logprobs.len(), dlogp.len());
            return Err(Error::BatchMismatch { what: "the log-probability gradients", expected, batch });
        }
        let Tape { model: m, adapters, spans, mut layers, last, scored, mut logits, lse, .. } = self;
        let (h, vocab) = (m.hidden, m.vocab);
        let n = last.len() / h;
        // d log softmax(z)[t] / dz = onehot(t) − softmax(z), times the row's coefficient.
        let coefficients: Vec<f32> = dlogp.iter().flatten().map(|&d| d as f32).collect();
        let rows = scored.par_iter().zip(&lse).zip(&coefficients);
        logits.par_chunks_exact_mut(vocab).zip(rows).for_each(|(z, ((&(_, t), &lse), &c))| {
            log_softmax_grad(z, lse, c, t as usize);
        });
        let mut dnormed = vec![0f32; scored.len() * h];
        if !scored.is_empty() {
            let head = m.head.as_ref().map_or(&m.embed[..], |p| &p.wt[..]);
            let par = faer::Par::rayon(0);
            gemm(
                mat_mut(&mut dnormed, scored.len(), h),
                false,
                mat(&logits, scored.len(), vocab),
                mat(head, vocab, h),
                1.0,
                par,
            );
        }
        drop(logits);
        let mut dx = vec![0f32; n * h];
        for (d, &(r, _)) in dnormed.chunks_exact(h).zip(&scored) {
            rms_back(&mut dx[r * h..(r + 1) * h], d, &last[r * h..(r + 1) * h], &m.norm, m.eps);
        }
        let mut grads = Vec::new();
        for layer in (0..m.blocks.len()).rev() {
            let tape = layers.pop().ok_or_else(|| Error::Backend("a tape without its layers".into()))?;
            dx = m.block_backward(layer, &tape, &adapters[layer], dx, &spans, &mut grads);
        }
        grads.reverse();
        Ok(grads)
    }
}

impl NativeLlama {
    /// One block backwards: `dx` is the gradient of the block's output; returns that of its
    /// input (left empty for the first block, whose input is the frozen embedding). Pushes the
    /// adapters' gradients onto `grads` in reverse order (`B` before `A`, `down` first).
    fn block_backward(
        &self,
        layer: usize,
        t: &LayerTape,
        ad: &super::train::BlockAdapters,
        dx: Vec<f32>,
        spans: &[Span],
        grads: &mut Vec<LoraGradient>,
    ) -> Vec<f32> {
        let blk = &self.blocks[layer];
        let (h, ff, n) = (self.hidden, self.ff, dx.len() / self.hidden);
        let par = faer::Par::rayon(0);
        // MLP: out = x2 + act·W_down, act = silu(gate)·up, [gate | up] = n2·W_gu.
        let mut dact = vec![0f32; n * ff];
        gemm(mat_mut(&mut dact, n, ff), false, mat(&dx, n, h), mat(&blk.down.wt, h, ff), 1.0, par);
        lora_backward(&ad.down, &t.act, &t.xa_down, &dx, n, h, Some(&mut dact), grads);
        let mut dgu = vec![0f32; n * 2 * ff];
        silu_mul_back_rows(&mut dgu, &dact, &t.gate_up, ff);
        drop(dact);
        let mut dn2 = vec![0f32; n * h];
        gemm(mat_mut(&mut dn2, n, h), false, mat(&dgu, n, 2 * ff), mat(&blk.gate_up.wt, 2 * ff, h), 1.0, par);
        lora_backward(&ad.gate_up, &t.n2, &t.xa_gate_up, &dgu, n, 2 * ff, Some(&mut dn2), grads);
        drop(dgu);
        let mut dx2 = dx;
        rms_back_rows(&mut dx2, &dn2, &t.x2, &blk.mlp_norm, self.eps);
        // Attention: x2 = x + ctx·W_o.
        let qd = self.heads * self.head_dim;
        let mut dctx = vec![0f32; n * qd];
        gemm(mat_mut(&mut dctx, n, qd), false, mat(&dx2, n, h), mat(&blk.o.wt, h, qd), 1.0, par);
        lora_backward(&ad.o, &t.ctx, &t.xa_o, &dx2, n, h, Some(&mut dctx), grads);
        let wq = blk.qkv.output;
        let mut dqkv = self.attention_backward(&dctx, &t.qkv, &t.probs, spans);
        drop(dctx);
        self.rope_rows(&mut dqkv, spans, true);
        if layer == 0 {
            lora_backward(&ad.qkv, &t.n1, &t.xa_qkv, &dqkv, n, wq, None, grads);
            return Vec::new();
        }
        let mut dn1 = vec![0f32; n * h];
        gemm(mat_mut(&mut dn1, n, h), false, mat(&dqkv, n, wq), mat(&blk.qkv.wt, wq, h), 1.0, par);
        lora_backward(&ad.qkv, &t.n1, &t.xa_qkv, &dqkv, n, wq, Some(&mut dn1), grads);
        rms_back_rows(&mut dx2, &dn1, &t.x, &blk.attn_norm, self.eps);
        dx2
    }
}

/// For each adapter of a projection whose input was `x` `[n, in]` and whose output's gradient
/// is `dy` `[n, out]`: pushes `dB = s·(x·A)ᵀ·dy_part` and `dA = s·xᵀ·(dy_part·Bᵀ)` (in that
/// order), and adds the adapter's share of the input's gradient, `s·(dy_part·Bᵀ)·Aᵀ`, to `dx`.
#[allow(clippy::too_many_arguments)]
fn lora_backward(
    adapters: &[Adapter],
    x: &[f32],
    xas: &[Vec<f32>],
    dy: &[f32],
    n: usize,
    out: usize,
    mut dx: Option<&mut [f32]>,
    grads: &mut Vec<LoraGradient>,
) {
    let par = faer::Par::rayon(0);
    for (ad, xa) in adapters.iter().zip(xas).rev() {
        let (r, w, input) = (ad.rank, ad.width, ad.input);
        let dy_part = mat(dy, n, out).subcols(ad.offset, w);
        let mut db = vec![0f32; r * w];
        gemm(mat_mut(&mut db, r, w), false, mat(xa, n, r).transpose(), dy_part, ad.scale, par);
        let mut t = vec![0f32; n * r];
        gemm(mat_mut(&mut t, n, r), false, dy_part, mat(&ad.b, r, w).transpose(), 1.0, par);
        let mut da = vec![0f32; input * r];
        gemm(mat_mut(&mut da, input, r), false, mat(x, n, input).transpose(), mat(&t, n, r), ad.scale, par);
        if let Some(dx) = dx.as_deref_mut() {
            gemm(mat_mut(dx, n, input), true, mat(&t, n, r), mat(&ad.a, input, r).transpose(), ad.scale, par);
        }
        grads.push(LoraGradient { param: ad.ids[1], shape: [r, w], values: db });
        grads.push(LoraGradient { param: ad.ids[0], shape: [input, r], values: da });
    }
}

/// `dx += ∂(RMSNorm(x)·γ)/∂x · dy` for one row: with `inv = 1/√(mean(x²) + eps)` and
/// `u = γ∘dy`, `dx = inv·u − x·inv³·(u·x)/width`.
fn rms_back(dx: &mut [f32], dy: &[f32], x: &[f32], gamma: &[f32], eps: f32) {
    let width = x.len() as f32;
    let ms: f32 = x.iter().map(|v| v * v).sum::<f32>() / width;
    let inv = 1.0 / (ms + eps).sqrt();
    let dot: f32 = dy.iter().zip(gamma).zip(x).map(|((d, g), x)| d * g * x).sum();
    let coefficient = inv * inv * inv * dot / width;
    for (((o, &d), &g), &xv) in dx.iter_mut().zip(dy).zip(gamma).zip(x) {
        *o += inv * g * d - coefficient * xv;
    }
}

/// [`rms_back`] row by row, in parallel.
fn rms_back_rows(dx: &mut [f32], dy: &[f32], x: &[f32], gamma: &[f32], eps: f32) {
    let w = gamma.len();
    dx.par_chunks_mut(w * ROWS_PER_TASK)
        .zip(dy.par_chunks(w * ROWS_PER_TASK))
        .zip(x.par_chunks(w * ROWS_PER_TASK))
        .for_each(|((o, d), x)| {
            for ((o, d), x) in o.chunks_exact_mut(w).zip(d.chunks_exact(w)).zip(x.chunks_exact(w)) {
                rms_back(o, d, x, gamma, eps);
            }
        });
}

/// The gradient of `[gate | up]` rows from that of `act = silu(gate)·up`:
/// `d gate = d act·up·σ(gate)·(1 + gate·(1 − σ(gate)))`, `d up = d act·silu(gate)`.
fn silu_mul_back_rows(dgu: &mut [f32], dact: &[f32], gate_up: &[f32], ff: usize) {
    dgu.par_chunks_mut(2 * ff * ROWS_PER_TASK)
        .zip(dact.par_chunks(ff * ROWS_PER_TASK))
        .zip(gate_up.par_chunks(2 * ff * ROWS_PER_TASK))
        .for_each(|((dgu, dact), gu)| {
            for ((dgu, da), gu) in dgu.chunks_exact_mut(2 * ff).zip(dact.chunks_exact(ff)).zip(gu.chunks_exact(2 * ff))
            {
                let (dg, du) = dgu.split_at_mut(ff);
                let (g, u) = gu.split_at(ff);
                silu_mul_back(dg, du, da, g, u);
            }
        });
}
