//! Causal self-attention of a training pass, forward and backward, per (sequence, key/value
//! head) in parallel. A key/value head's query heads are stacked token-major (row
//! `t·group + j`: query head `g·group + j` at token `t`), so the rows of a run of tokens are
//! contiguous and see the same keys; each product runs over blocks of [`BLOCK`] tokens against
//! the keys they can see only, which skips most of the masked half of every score matrix.

use rayon::prelude::*;

use super::NativeLlama;
use super::kernels::softmax;
use super::train::{Span, gemm, mat, mat_mut};

/// Tokens per block of the causal products.
const BLOCK: usize = 32;

/// The blocks of a stack of `group` query heads over `len` tokens: `(first row, rows, keys
/// seen)`; the rows of tokens `t0..t1` see keys `0..t1`.
fn blocks(len: usize, group: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    (0..len).step_by(BLOCK).map(move |t0| {
        let t1 = (t0 + BLOCK).min(len);
        (t0 * group, (t1 - t0) * group, t1)
    })
}

impl NativeLlama {
    /// Causal attention of each sequence over itself: the context `[n, heads·head_dim]` and,
    /// per (sequence, key/value head), the probabilities `[group · len, len]` (stacked rows,
    /// zero where masked) that [`attention_backward`](Self::attention_backward) needs.
    pub(super) fn self_attention(&self, qkv: &[f32], spans: &[Span]) -> (Vec<f32>, Vec<Vec<f32>>) {
        let (hd, group) = (self.head_dim, self.heads / self.kv_heads);
        let scale = 1.0 / (hd as f32).sqrt();
        let tasks = self.tasks(spans);
        let results: Vec<(Vec<f32>, Vec<f32>)> = tasks
            .par_iter()
            .map(|&(s, g)| {
                let (len, seq) = (spans[s].len, faer::Par::Seq);
                let rows = group * len;
                let (q, k, v) = self.gather_heads(qkv, spans[s], g);
                let mut probs = vec![0f32; rows * len];
                let mut out = vec![0f32; rows * hd];
                for (r0, br, seen) in blocks(len, group) {
                    let scores = mat_mut(&mut probs, rows, len).submatrix_mut(r0, 0, br, seen);
                    gemm(scores, false, mat(&q, rows, hd).subrows(r0, br), mat(&k, seen, hd).transpose(), 1.0, seq);
                    for (i, row) in probs[r0 * len..(r0 + br) * len].chunks_exact_mut(len).enumerate() {
                        let visible = (r0 + i) / group + 1;
                        softmax(&mut row[..visible], scale);
                        row[visible..seen].fill(0.0);
                    }
                    let p = mat(&probs, rows, len).submatrix(r0, 0, br, seen);
                    gemm(mat_mut(&mut out, rows, hd).subrows_mut(r0, br), false, p, mat(&v, seen, hd), 1.0, seq);
                }
                (out, probs)
            })
            .collect();
        let n = spans.iter().map(|s| s.len).sum::<usize>();
        let qd = self.heads * hd;
        let mut ctx = vec![0f32; n * qd];
        let mut probs = Vec::with_capacity(tasks.len());
        for (&(s, g), (out, p)) in tasks.iter().zip(results) {
            self.scatter_queries(&mut ctx, qd, &out, spans[s], g);
            probs.push(p);
        }
        (ctx, probs)
    }

    /// The gradient of Q, K (both after RoPE) and V `[n, q + 2·kv]` from that of the context,
    /// given the forward pass's `qkv` and probabilities.
    pub(super) fn attention_backward(&self, dctx: &[f32], qkv: &[f32], probs: &[Vec<f32>], spans: &[Span]) -> Vec<f32> {
        let (hd, nh, kvh) = (self.head_dim, self.heads, self.kv_heads);
        let (group, width, qd) = (nh / kvh, (nh + 2 * kvh) * hd, nh * hd);
        let scale = 1.0 / (hd as f32).sqrt();
        let tasks = self.tasks(spans);
        let results: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = tasks
            .par_iter()
            .zip(probs)
            .map(|(&(s, g), p)| {
                let (span, seq) = (spans[s], faer::Par::Seq);
                let (rows, len) = (group * span.len, span.len);
                let (q, k, v) = self.gather_heads(qkv, span, g);
                let dc = self.stack_queries(dctx, qd, span, g);
                let (mut dq, mut dk, mut dv) = (vec![0f32; rows * hd], vec![0f32; len * hd], vec![0f32; len * hd]);
                let mut ds = vec![0f32; BLOCK * group * len];
                for (r0, br, seen) in blocks(len, group) {
                    let pb = mat(p, rows, len).submatrix(r0, 0, br, seen);
                    let dcb = mat(&dc, rows, hd).subrows(r0, br);
                    gemm(mat_mut(&mut dv, seen, hd), true, pb.transpose(), dcb, 1.0, seq);
                    gemm(mat_mut(&mut ds, br, seen), false, dcb, mat(&v, seen, hd).transpose(), 1.0, seq);
                    // Softmax backwards, row by row: dS = P ∘ (dP − Σ P·dP).
                    let prows = p[r0 * len..(r0 + br) * len].chunks_exact(len);
                    for (d, pr) in ds[..br * seen].chunks_exact_mut(seen).zip(prows) {
                        let pr = &pr[..seen];
                        let dot: f32 = d.iter().zip(pr).map(|(a, b)| a * b).sum();
                        for (d, &pv) in d.iter_mut().zip(pr) {
                            *d = pv * (*d - dot);
                        }
                    }
                    let dsb = mat(&ds, br, seen);
                    gemm(mat_mut(&mut dq, rows, hd).subrows_mut(r0, br), false, dsb, mat(&k, seen, hd), scale, seq);
                    let qb = mat(&q, rows, hd).subrows(r0, br);
                    gemm(mat_mut(&mut dk, seen, hd), true, dsb.transpose(), qb, scale, seq);
                }
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

    /// Every (sequence, key/value head): the attention's parallel tasks.
    fn tasks(&self, spans: &[Span]) -> Vec<(usize, usize)> {
        let kvh = self.kv_heads;
        (0..spans.len()).flat_map(|s| (0..kvh).map(move |g| (s, g))).collect()
    }

    /// Key/value head `g`'s queries stacked, and its keys and values `[len, head_dim]`, of one
    /// sequence's rows of `qkv`.
    fn gather_heads(&self, qkv: &[f32], span: Span, g: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (hd, nh, kvh) = (self.head_dim, self.heads, self.kv_heads);
        let width = (nh + 2 * kvh) * hd;
        let q = self.stack_queries(qkv, width, span, g);
        let (mut k, mut v) = (vec![0f32; span.len * hd], vec![0f32; span.len * hd]);
        for t in 0..span.len {
            let row = &qkv[(span.row + t) * width..(span.row + t + 1) * width];
            k[t * hd..(t + 1) * hd].copy_from_slice(&row[(nh + g) * hd..(nh + g + 1) * hd]);
            v[t * hd..(t + 1) * hd].copy_from_slice(&row[(nh + kvh + g) * hd..(nh + kvh + g + 1) * hd]);
        }
        (q, k, v)
    }

    /// Key/value head `g`'s query heads of one sequence's rows of `src` `[n, width]` (whose
    /// first `heads·head_dim` columns are the query heads), stacked: token-major, each token's
    /// heads contiguous in `src` already.
    fn stack_queries(&self, src: &[f32], width: usize, span: Span, g: usize) -> Vec<f32> {
        let part = (self.heads / self.kv_heads) * self.head_dim;
        let mut stacked = vec![0f32; span.len * part];
        for (t, dst) in stacked.chunks_exact_mut(part).enumerate() {
            let at = (span.row + t) * width + g * part;
            dst.copy_from_slice(&src[at..at + part]);
        }
        stacked
    }

    /// Writes stacked rows (as [`stack_queries`](Self::stack_queries) lays them out) back into
    /// `dst` `[n, width]`.
    fn scatter_queries(&self, dst: &mut [f32], width: usize, stacked: &[f32], span: Span, g: usize) {
        let part = (self.heads / self.kv_heads) * self.head_dim;
        for (t, src) in stacked.chunks_exact(part).enumerate() {
            let at = (span.row + t) * width + g * part;
            dst[at..at + part].copy_from_slice(src);
        }
    }
}
