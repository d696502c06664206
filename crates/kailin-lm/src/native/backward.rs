//! The backward pass of a [`Tape`]: from the gradient of a loss with respect to each scored
//! log-probability down through every block to the LoRA adapters' gradients. The frozen
//! weights get none; the gradient that flows through them is `dy · Wᵀ`, one product per
//! projection as in the forward pass.

use rayon::prelude::*;

use super::NativeLlama;
use super::kernels::log_sum_exp;
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
        let Tape { model: m, adapters, spans, mut layers, last, scored, mut logits, .. } = self;
        let (h, vocab) = (m.hidden, m.vocab);
        let n = last.len() / h;
        // d log softmax(z)[t] / dz = onehot(t) − softmax(z), times the row's coefficient.
        let coefficients: Vec<f32> = dlogp.iter().flatten().map(|&d| d as f32).collect();
        logits.par_chunks_exact_mut(vocab).zip(&scored).zip(&coefficients).for_each(|((z, &(_, t)), &c)| {
            let lse = log_sum_exp(z);
            for v in z.iter_mut() {
                *v = -c * (*v - lse).exp();
            }
            z[t as usize] += c;
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

    /// The gradient of Q, K (both after RoPE) and V `[n, q + 2·kv]` from that of the context,
    /// per (sequence, key/value head) in parallel.
    fn attention_backward(&self, dctx: &[f32], qkv: &[f32], probs: &[Vec<f32>], spans: &[Span]) -> Vec<f32> {
        let (hd, nh, kvh) = (self.head_dim, self.heads, self.kv_heads);
        let (group, width, qd) = (nh / kvh, (nh + 2 * kvh) * hd, nh * hd);
        let scale = 1.0 / (hd as f32).sqrt();
        let tasks: Vec<(usize, usize)> = (0..spans.len()).flat_map(|s| (0..kvh).map(move |g| (s, g))).collect();
        let results: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = tasks
            .par_iter()
            .zip(probs)
            .map(|(&(s, g), p)| {
                let (span, seq) = (spans[s], faer::Par::Seq);
                let (rows, len) = (group * span.len, span.len);
                let (q, k, v) = self.gather_heads(qkv, span, g);
                // The context's gradient, stacked as the queries are.
                let mut dc = vec![0f32; rows * hd];
                for j in 0..group {
                    let head = g * group + j;
                    for t in 0..len {
                        let src = (span.row + t) * qd + head * hd;
                        dc[(j * len + t) * hd..(j * len + t + 1) * hd].copy_from_slice(&dctx[src..src + hd]);
                    }
                }
                let mut dv = vec![0f32; len * hd];
                gemm(mat_mut(&mut dv, len, hd), false, mat(p, rows, len).transpose(), mat(&dc, rows, hd), 1.0, seq);
                let mut ds = vec![0f32; rows * len];
                gemm(mat_mut(&mut ds, rows, len), false, mat(&dc, rows, hd), mat(&v, len, hd).transpose(), 1.0, seq);
                // Softmax backwards, row by row: dS = P ∘ (dP − Σ P·dP).
                for (d, pr) in ds.chunks_exact_mut(len).zip(p.chunks_exact(len)) {
                    let dot: f32 = d.iter().zip(pr).map(|(a, b)| a * b).sum();
                    for (d, &pv) in d.iter_mut().zip(pr) {
                        *d = pv * (*d - dot);
                    }
                }
                let mut dq = vec![0f32; rows * hd];
                gemm(mat_mut(&mut dq, rows, hd), false, mat(&ds, rows, len), mat(&k, len, hd), scale, seq);
                let mut dk = vec![0f32; len * hd];
                gemm(mat_mut(&mut dk, len, hd), false, mat(&ds, rows, len).transpose(), mat(&q, rows, hd), scale, seq);
                (dq, dk, dv)
            })
            .collect();
        let n = spans.iter().map(|s| s.len).sum::<usize>();
        let mut dqkv = vec![0f32; n * width];
        for (&(s, g), (dq, dk, dv)) in tasks.iter().zip(results) {
            let span = spans[s];
            self.scatter_queries(&mut dqkv, width, &dq, span, g);
            for t in 0..span.len {
                let row = (span.row + t) * width;
                let (k_at, v_at) = (row + (nh + g) * hd, row + (nh + kvh + g) * hd);
                dqkv[k_at..k_at + hd].copy_from_slice(&dk[t * hd..(t + 1) * hd]);
                dqkv[v_at..v_at + hd].copy_from_slice(&dv[t * hd..(t + 1) * hd]);
            }
        }
        dqkv
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
                for i in 0..ff {
                    let s = 1.0 / (1.0 + (-g[i]).exp());
                    dg[i] = da[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
                    du[i] = da[i] * g[i] * s;
                }
            }
        });
}
