//! A decoding step (a pass of up to [`STEP_ROWS`] rows, every projection on its file's blocks)
//! as phases of one [`Team`]: each product's outputs split into chunks that the team's threads
//! claim (up to four rows on the blocks' integer kernels, more by bands as
//! [`QMatrix::product_tiled`] cuts them), the attention's (sequence, key/value head) tasks and
//! SiLU·up's rows likewise, and the small row passes between them (norms, RoPE, residual
//! adds) on the leading thread. The values are those of
//! [`NativeLlama::forward`]'s other path bit for bit: each output is computed by the same
//! kernel on the same quantised activations, whichever thread and chunk computes it.
//!
//! The leader's row passes are `kernels.rs`' own (the residual add a loop of its own); on at
//! most [`STEP_ROWS`] rows each is one chunk of its parallel iterator, which rayon runs in
//! place, so the leader never waits inside rayon while its helpers spin (the team's items,
//! products, attention and SiLU·up, never call it).

use std::sync::Mutex;

use super::disjoint::Disjoint;
use super::kernels::{QUANTISED_ROWS, ROWS_PER_TASK, TILED_ROWS, rms_norm_rows, silu_mul};
use super::pass::{Buffers, SeqCache, Span};
use super::qmatrix::{ActRows, QMatrix, TILE};
use super::team::{Team, with_team};
use super::{NativeLlama, Proj};

/// A block's four products on the file's blocks, with their biases.
pub(super) struct StepBlock<'a> {
    qkv: Quantised<'a>,
    o: Quantised<'a>,
    gate_up: Quantised<'a>,
    down: Quantised<'a>,
}

/// The weights a step multiplies: every block's, and the output projection's.
pub(super) struct StepWeights<'a> {
    blocks: Vec<StepBlock<'a>>,
    head: Quantised<'a>,
}

/// A product's quantised weights and bias.
#[derive(Clone, Copy)]
struct Quantised<'a> {
    q: &'a QMatrix,
    bias: Option<&'a [f32]>,
}

impl<'a> Quantised<'a> {
    fn of(p: &'a Proj) -> Option<Self> {
        Some(Quantised { q: p.q.as_deref()?, bias: p.b.as_deref() })
    }
}

/// Most output rows a chunk of a product takes (on the integer kernels).
const MAX_CHUNK: usize = 256;

/// Most rows a step takes: what the row passes take as one chunk, within the quantised
/// products' reach.
pub(super) const STEP_ROWS: usize = ROWS_PER_TASK;
const _: () = assert!(STEP_ROWS <= TILED_ROWS && QUANTISED_ROWS <= STEP_ROWS);

impl NativeLlama {
    /// The weights of a step of `rows` rows, when it may run on a team: at most [`STEP_ROWS`],
    /// and each product's file blocks at hand.
    pub(super) fn step_weights(&self, rows: usize) -> Option<StepWeights<'_>> {
        #[cfg(test)]
        if super::tests::POOL_STEP.get() {
            return None;
        }
        if rows > STEP_ROWS {
            return None;
        }
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                Some(StepBlock {
                    qkv: Quantised::of(&b.qkv)?,
                    o: Quantised::of(&b.o)?,
                    gate_up: Quantised::of(&b.gate_up)?,
                    down: Quantised::of(&b.down)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let head = match &self.head {
            Some(head) => Quantised::of(head)?,
            None => Quantised { q: self.embed_q.as_deref()?, bias: None },
        };
        Some(StepWeights { blocks, head })
    }

    /// The blocks over `x` `[n, hidden]` (the embedded tokens of `spans`, each after what its
    /// cache holds, which then holds them too; the caches' lengths are left to the caller),
    /// and the logits `[rows, vocab]` of rows `rows`.
    pub(super) fn step(
        &self,
        w: &StepWeights<'_>,
        x: &mut [f32],
        spans: &[Span],
        caches: &mut [SeqCache],
        rows: &[usize],
    ) -> Vec<f32> {
        let n = spans.iter().map(|s| s.len).sum::<usize>();
        let width = (self.heads + 2 * self.kv_heads) * self.head_dim;
        let tasks = self.attention_tasks(spans);
        let one_token = spans.iter().all(|s| s.len == 1);
        with_team(|team| {
            let mut b = Buffers::new(self, n);
            // Spans of several tokens: each attention task's output, placed after the phase.
            let outputs: Vec<Mutex<Vec<f32>>> =
                if one_token { Vec::new() } else { tasks.iter().map(|_| Mutex::new(Vec::new())).collect() };
            for (layer, (block, weights)) in self.blocks.iter().zip(&w.blocks).enumerate() {
                rms_norm_rows(&mut b.normed, x, &block.attn_norm, self.eps);
                project(team, weights.qkv, &b.normed, &mut b.qkv, n);
                let mut rest = &mut b.qkv[..];
                for (span, cache) in spans.iter().zip(caches.iter_mut()) {
                    let (seq, tail) = rest.split_at_mut(span.len * width);
                    self.rotate_span(layer, seq, cache, *span);
                    rest = tail;
                }
                let (qkv, caches) = (&b.qkv[..], &*caches);
                if one_token {
                    // Each task's heads are one stretch of its token's context row.
                    let (qd, part) = (self.heads * self.head_dim, self.heads / self.kv_heads * self.head_dim);
                    let context = Disjoint::new(&mut b.context[..n * qd]);
                    team.run(tasks.len(), &|t| {
                        let (s, g) = tasks[t];
                        let at = spans[s].row * qd + g * part;
                        // SAFETY: task `t` alone writes this stretch (one per sequence and
                        // key/value head), and nothing reads `context` until the phase has ended.
                        let out = unsafe { context.slice(at..at + part) };
                        self.attend_one(layer, qkv, spans[s], &caches[s], g, out);
                    });
                } else {
                    team.run(tasks.len(), &|t| {
                        let (s, g) = tasks[t];
                        let out = self.attend(layer, qkv, spans[s], &caches[s], g);
                        *outputs[t].lock().unwrap_or_else(std::sync::PoisonError::into_inner) = out;
                    });
                    let done: Vec<Vec<f32>> = outputs
                        .iter()
                        .map(|o| std::mem::take(&mut *o.lock().unwrap_or_else(std::sync::PoisonError::into_inner)))
                        .collect();
                    self.place_context(&tasks, &done, spans, &mut b.context);
                }
                project(team, weights.o, &b.context, &mut b.out, n);
                add(x, &b.out);
                rms_norm_rows(&mut b.normed, x, &block.mlp_norm, self.eps);
                project(team, weights.gate_up, &b.normed, &mut b.gate_up, n);
                // SiLU·up row by row on the team (a row's values are the same whoever computes them).
                let (act, gate_up, ff) = (Disjoint::new(&mut b.act[..n * self.ff]), &b.gate_up[..], self.ff);
                team.run(n, &|r| {
                    let (gate, up) = gate_up[r * 2 * ff..(r + 1) * 2 * ff].split_at(ff);
                    // SAFETY: item `r` alone writes row `r`, and nothing reads `act` until the
                    // phase has ended.
                    silu_mul(unsafe { act.slice(r * ff..(r + 1) * ff) }, gate, up);
                });
                project(team, weights.down, &b.act, &mut b.out, n);
                add(x, &b.out);
            }
            let normed = self.final_norm(x, rows);
            let mut logits = vec![0f32; rows.len() * self.vocab];
            project(team, w.head, &normed, &mut logits, rows.len());
            logits
        })
    }
}

/// `x += y` on the calling thread (each element's sum, as `kernels::add_into`'s).
fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
}

/// `dst = x · Wᵀ + b` for `n` rows of `x`, as [`QMatrix::product`] (up to four rows) or
/// [`QMatrix::product_tiled`] computes it, in chunks of output rows claimed by the team's
/// threads.
fn project(team: &Team, p: Quantised<'_>, x: &[f32], dst: &mut [f32], n: usize) {
    if n == 0 {
        return;
    }
    if n > QUANTISED_ROWS {
        return project_tiled(team, p, x, dst, n);
    }
    let (rows, cols) = (p.q.rows(), x.len() / n);
    let acts = ActRows::new(&x[..n * cols], n, cols);
    // Several chunks a thread, so that one slow thread leaves little to wait for.
    let chunk = rows.div_ceil(8 * team.threads()).next_multiple_of(16).clamp(16, MAX_CHUNK);
    let dst = Disjoint::new(&mut dst[..n * rows]);
    team.run(rows.div_ceil(chunk), &|c| {
        let range = c * chunk..((c + 1) * chunk).min(rows);
        let width = range.len();
        let mut local = [0f32; QUANTISED_ROWS * MAX_CHUNK];
        p.q.product_range(&mut local, &acts, n, range.clone());
        // SAFETY: this item alone writes outputs `range`, and nothing reads `dst` until the
        // phase has ended.
        unsafe { place(&dst, &local[..n * width], rows, range, p.bias) };
    });
}

/// [`project`] for more than four rows: one item per band of [`QMatrix::product_tiled`].
fn project_tiled(team: &Team, p: Quantised<'_>, x: &[f32], dst: &mut [f32], n: usize) {
    let rows = p.q.rows();
    let dst = Disjoint::new(&mut dst[..n * rows]);
    let x = p.q.batch_rows(x, n);
    team.run(rows.div_ceil(TILE), &|band| {
        let range = band * TILE..((band + 1) * TILE).min(rows);
        // SAFETY: `dst` holds `n` rows of `rows` outputs; this item alone writes outputs
        // `range` of each, and nothing reads `dst` until the phase has ended.
        unsafe { p.q.tiled_band(&dst, &x, range, p.bias) };
    });
}

/// Writes an item's outputs `range`, `local` `[n, range.len()]`, into `dst` `[n, rows]`,
/// adding the bias.
///
/// # Safety
/// No other item may write or read outputs `range` of `dst` meanwhile.
unsafe fn place(dst: &Disjoint<'_>, local: &[f32], rows: usize, range: std::ops::Range<usize>, bias: Option<&[f32]>) {
    for (k, part) in local.chunks_exact(range.len()).enumerate() {
        // SAFETY: the caller's.
        let out = unsafe { dst.slice(k * rows + range.start..k * rows + range.end) };
        out.copy_from_slice(part);
        if let Some(b) = bias {
            out.iter_mut().zip(&b[range.clone()]).for_each(|(d, b)| *d += b);
        }
    }
}
