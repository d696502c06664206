//! One packed pass through the decoder: embeddings, blocks over every token of the call, and
//! logits at the rows the caller names.

use rayon::prelude::*;

use super::kernels::{
    QUANTISED_ROWS, add_into, dots, matmul, product, rms_norm_rows, rope, silu_mul_rows, softmax, tiled,
    weighted_rows_heads,
};
use super::{NativeBlock, NativeLlama};
use crate::error::{Error, Result};

/// One sequence's keys and values, per layer `[kv_heads, capacity, head_dim]` (RoPE applied):
/// a head's positions are contiguous, and a new position is written in place.
#[derive(Debug, Clone)]
pub(crate) struct SeqCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    len: usize,
    capacity: usize,
}

impl SeqCache {
    pub(super) fn new(layers: usize, kv_heads: usize, capacity: usize, head_dim: usize) -> Self {
        let size = kv_heads * capacity * head_dim;
        SeqCache { k: vec![vec![0.0; size]; layers], v: vec![vec![0.0; size]; layers], len: 0, capacity }
    }

    /// A copy holding what this one holds, with room for `capacity` positions (at least
    /// [`len`](Self::len)): a shared prefix handed to a sequence that goes on after it.
    pub(super) fn with_capacity(&self, capacity: usize, head_dim: usize) -> SeqCache {
        let capacity = capacity.max(self.len);
        let per_layer = |old: &Vec<f32>| {
            let heads = old.len() / (self.capacity * head_dim);
            let mut new = vec![0.0; heads * capacity * head_dim];
            for h in 0..heads {
                let (src, dst) = (h * self.capacity * head_dim, h * capacity * head_dim);
                new[dst..dst + self.len * head_dim].copy_from_slice(&old[src..src + self.len * head_dim]);
            }
            new
        };
        SeqCache {
            k: self.k.iter().map(per_layer).collect(),
            v: self.v.iter().map(per_layer).collect(),
            len: self.len,
            capacity,
        }
    }
}

/// Where one sequence's rows sit in the packed buffers of a pass.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    /// First row in the pass.
    pub(super) row: usize,
    /// New tokens.
    pub(super) len: usize,
    /// Positions already cached (the first new token's position).
    pub(super) start: usize,
}

impl NativeLlama {
    /// Runs `tokens[i]` after what `caches[i]` holds (which then holds them too) and returns the
    /// logits `[Σ want[i].len(), vocab]` of rows `want[i]` (indices into `tokens[i]`), sequence
    /// after sequence.
    ///
    /// Errors: an empty sequence, one past its cache's capacity or the model's positions, a
    /// token outside the vocabulary, `caches` or `want` of another length, a wanted row past
    /// its sequence.
    pub(crate) fn forward(&self, tokens: &[&[u32]], caches: &mut [SeqCache], want: &[Vec<usize>]) -> Result<Vec<f32>> {
        if caches.len() != tokens.len() || want.len() != tokens.len() {
            let (expected, batch) = (tokens.len(), caches.len().min(want.len()));
            return Err(Error::BatchMismatch { what: "the KV caches and wanted rows", expected, batch });
        }
        let mut spans = Vec::with_capacity(tokens.len());
        let mut row = 0;
        for ((seq, cache), rows) in tokens.iter().zip(caches.iter()).zip(want) {
            let end = cache.len + seq.len();
            if seq.is_empty() {
                return Err(Error::EmptyScore { pair: spans.len() });
            }
            if end > cache.capacity.min(self.max_positions) {
                return Err(Error::TooLong { len: end, max: cache.capacity.min(self.max_positions) });
            }
            if let Some(&bad) = seq.iter().find(|&&t| t as usize >= self.vocab) {
                return Err(Error::TokenOutOfRange { token: i64::from(bad), vocab: self.vocab });
            }
            if let Some(&r) = rows.iter().find(|&&r| r >= seq.len()) {
                return Err(Error::TooLong { len: r + 1, max: seq.len() });
            }
            spans.push(Span { row, len: seq.len(), start: cache.len });
            row += seq.len();
        }
        let (n, h) = (row, self.hidden);
        let mut x = vec![0f32; n * h];
        for (span, seq) in spans.iter().zip(tokens) {
            for (t, &id) in seq.iter().enumerate() {
                let at = (span.row + t) * h;
                x[at..at + h].copy_from_slice(&self.embed[id as usize * h..(id as usize + 1) * h]);
            }
        }
        // The wanted rows only go through the final norm and the output projection.
        let rows: Vec<usize> = spans.iter().zip(want).flat_map(|(s, w)| w.iter().map(move |&r| s.row + r)).collect();
        let logits = match self.step_weights(n) {
            Some(weights) => self.step(&weights, &mut x, &spans, caches, &rows),
            None => {
                let mut buffers = Buffers::new(self, n);
                for (layer, block) in self.blocks.iter().enumerate() {
                    self.block(layer, block, &mut x, &spans, caches, &mut buffers);
                }
                self.head_rows(&x, &rows)
            }
        };
        for (cache, span) in caches.iter_mut().zip(&spans) {
            cache.len += span.len;
        }
        Ok(logits)
    }

    /// The final norm and the output projection of rows `rows` of `x` `[n, hidden]`: their
    /// logits `[rows, vocab]`, in that order.
    pub(super) fn head_rows(&self, x: &[f32], rows: &[usize]) -> Vec<f32> {
        let normed = self.final_norm(x, rows);
        let mut logits = vec![0f32; rows.len() * self.vocab];
        if rows.is_empty() {
            return logits;
        }
        match &self.head {
            Some(head) => matmul(&mut logits, &normed, head, rows.len()),
            // Tied: the embedding `[vocab, hidden]` is the head's `Wᵀ`.
            None => match &self.embed_q {
                Some(q) if rows.len() <= QUANTISED_ROWS => q.product(&mut logits, &normed, None, rows.len()),
                Some(q) if tiled(q, rows.len()) => q.product_tiled(&mut logits, &normed, None, rows.len()),
                _ => product(&mut logits, &normed, &self.embed, None, rows.len(), self.hidden, self.vocab),
            },
        }
        logits
    }

    /// Rows `rows` of `x` `[n, hidden]` through the final norm, in that order.
    pub(super) fn final_norm(&self, x: &[f32], rows: &[usize]) -> Vec<f32> {
        let h = self.hidden;
        let mut picked = vec![0f32; rows.len() * h];
        for (dst, &r) in picked.chunks_exact_mut(h).zip(rows) {
            dst.copy_from_slice(&x[r * h..(r + 1) * h]);
        }
        let mut normed = vec![0f32; picked.len()];
        rms_norm_rows(&mut normed, &picked, &self.norm, self.eps);
        normed
    }

    fn block(
        &self,
        layer: usize,
        block: &NativeBlock,
        x: &mut [f32],
        spans: &[Span],
        caches: &mut [SeqCache],
        b: &mut Buffers,
    ) {
        let n = spans.iter().map(|s| s.len).sum::<usize>();
        rms_norm_rows(&mut b.normed, x, &block.attn_norm, self.eps);
        matmul(&mut b.qkv, &b.normed, &block.qkv, n);
        self.rotate_and_cache(layer, &mut b.qkv, spans, caches);
        self.attention(layer, &b.qkv, spans, caches, &mut b.context);
        matmul(&mut b.out, &b.context, &block.o, n);
        add_into(x, &b.out);
        rms_norm_rows(&mut b.normed, x, &block.mlp_norm, self.eps);
        matmul(&mut b.gate_up, &b.normed, &block.gate_up, n);
        silu_mul_rows(&mut b.act, &b.gate_up, self.ff);
        matmul(&mut b.out, &b.act, &block.down, n);
        add_into(x, &b.out);
    }

    /// RoPE on each new token's query and key heads (in place in `qkv`), and the keys and values
    /// written into each sequence's cache at their positions.
    fn rotate_and_cache(&self, layer: usize, qkv: &mut [f32], spans: &[Span], caches: &mut [SeqCache]) {
        let width = (self.heads + 2 * self.kv_heads) * self.head_dim;
        let mut rest = &mut qkv[..];
        let mut blocks = Vec::with_capacity(spans.len());
        for span in spans {
            let (block, tail) = rest.split_at_mut(span.len * width);
            blocks.push(block);
            rest = tail;
        }
        blocks.into_par_iter().zip(caches.par_iter_mut()).zip(spans.par_iter()).for_each(|((rows, cache), span)| {
            self.rotate_span(layer, rows, cache, *span);
        });
    }

    /// [`rotate_and_cache`](Self::rotate_and_cache) for one sequence: `rows` are its rows of
    /// `qkv`.
    pub(super) fn rotate_span(&self, layer: usize, rows: &mut [f32], cache: &mut SeqCache, span: Span) {
        let (hd, nh, kvh) = (self.head_dim, self.heads, self.kv_heads);
        let width = (nh + 2 * kvh) * hd;
        let half = hd / 2;
        let cap = cache.capacity;
        for (t, row) in rows.chunks_exact_mut(width).enumerate() {
            let pos = span.start + t;
            let (cos, sin) = (&self.cos[pos * half..(pos + 1) * half], &self.sin[pos * half..(pos + 1) * half]);
            for head in row[..(nh + kvh) * hd].chunks_exact_mut(hd) {
                rope(head, cos, sin);
            }
            for g in 0..kvh {
                let at = (g * cap + pos) * hd;
                let k = &row[(nh + g) * hd..(nh + g + 1) * hd];
                let v = &row[(nh + kvh + g) * hd..(nh + kvh + g + 1) * hd];
                cache.k[layer][at..at + hd].copy_from_slice(k);
                cache.v[layer][at..at + hd].copy_from_slice(v);
            }
        }
    }

    /// Causal attention of each sequence's new queries over its cache, in parallel over
    /// (sequence, key/value head); `context` `[tokens, heads·head_dim]`.
    fn attention(&self, layer: usize, qkv: &[f32], spans: &[Span], caches: &[SeqCache], context: &mut [f32]) {
        let tasks = self.attention_tasks(spans);
        let outputs: Vec<Vec<f32>> =
            tasks.par_iter().map(|&(s, g)| self.attend(layer, qkv, spans[s], &caches[s], g)).collect();
        self.place_context(&tasks, &outputs, spans, context);
    }

    /// The attention's tasks: every (sequence, key/value head).
    pub(super) fn attention_tasks(&self, spans: &[Span]) -> Vec<(usize, usize)> {
        (0..spans.len()).flat_map(|s| (0..self.kv_heads).map(move |g| (s, g))).collect()
    }

    /// One sequence's new queries of key/value head `g`'s group against its cache: `[group ·
    /// span.len, head_dim]`, head after head (row `j·len + t`: head `g·group + j` at token `t`).
    pub(super) fn attend(&self, layer: usize, qkv: &[f32], span: Span, cache: &SeqCache, g: usize) -> Vec<f32> {
        let (hd, nh, kvh) = (self.head_dim, self.heads, self.kv_heads);
        let (group, width) = (nh / kvh, (nh + 2 * kvh) * hd);
        let scale = 1.0 / (hd as f32).sqrt();
        let (n, total) = (span.len, span.start + span.len);
        if n == 1 {
            let mut out = vec![0f32; group * hd];
            self.attend_one(layer, qkv, span, cache, g, &mut out);
            return out;
        }
        // The group's queries stacked: row j·n + t is head g·group + j at token t.
        let mut q = vec![0f32; group * n * hd];
        for j in 0..group {
            let head = g * group + j;
            for t in 0..n {
                let src = (span.row + t) * width + head * hd;
                q[(j * n + t) * hd..(j * n + t + 1) * hd].copy_from_slice(&qkv[src..src + hd]);
            }
        }
        let base = g * cache.capacity * hd;
        let keys = &cache.k[layer][base..base + total * hd];
        let values = &cache.v[layer][base..base + total * hd];
        let mut scores = vec![0f32; group * n * total];
        let qm = faer::MatRef::from_row_major_slice(&q, group * n, hd);
        let km = faer::MatRef::from_row_major_slice(keys, total, hd).transpose();
        let sm = faer::MatMut::from_row_major_slice_mut(&mut scores, group * n, total);
        faer::linalg::matmul::matmul(sm, faer::Accum::Replace, qm, km, 1.0, faer::Par::Seq);
        for (r, row) in scores.chunks_exact_mut(total).enumerate() {
            let seen = span.start + r % n + 1;
            softmax(&mut row[..seen], scale);
            row[seen..].fill(0.0);
        }
        let mut out = vec![0f32; group * n * hd];
        let pm = faer::MatRef::from_row_major_slice(&scores, group * n, total);
        let vm = faer::MatRef::from_row_major_slice(values, total, hd);
        let om = faer::MatMut::from_row_major_slice_mut(&mut out, group * n, hd);
        faer::linalg::matmul::matmul(om, faer::Accum::Replace, pm, vm, 1.0, faer::Par::Seq);
        out
    }

    /// [`attend`](Self::attend) for a span of one token (a decoding step), into `out`
    /// `[group · head_dim]` (the group's heads side by side, as a row of the context holds
    /// them): each head's scores and weighted values directly, without a GEMM's packing for a
    /// product this small, and without allocating.
    pub(super) fn attend_one(
        &self,
        layer: usize,
        qkv: &[f32],
        span: Span,
        cache: &SeqCache,
        g: usize,
        out: &mut [f32],
    ) {
        thread_local! {
            static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let (hd, nh, kvh) = (self.head_dim, self.heads, self.kv_heads);
        let (group, width) = (nh / kvh, (nh + 2 * kvh) * hd);
        let scale = 1.0 / (hd as f32).sqrt();
        let total = span.start + 1;
        let base = g * cache.capacity * hd;
        let keys = &cache.k[layer][base..base + total * hd];
        let values = &cache.v[layer][base..base + total * hd];
        SCORES.with_borrow_mut(|scores| {
            scores.resize(group * total, 0.0);
            for (j, scores) in scores.chunks_exact_mut(total).enumerate() {
                let src = span.row * width + (g * group + j) * hd;
                dots(scores, &qkv[src..src + hd], keys);
                softmax(scores, scale);
            }
            weighted_rows_heads(&mut out[..group * hd], scores, values, hd);
        });
    }

    /// The outputs of [`attend`](Self::attend) for `tasks` (sequence, key/value head) written
    /// into `context` `[tokens, heads·head_dim]`.
    pub(super) fn place_context(
        &self,
        tasks: &[(usize, usize)],
        outputs: &[Vec<f32>],
        spans: &[Span],
        context: &mut [f32],
    ) {
        let (hd, group, qd) = (self.head_dim, self.heads / self.kv_heads, self.heads * self.head_dim);
        for (&(s, g), out) in tasks.iter().zip(outputs) {
            let span = spans[s];
            for j in 0..group {
                let head = g * group + j;
                for t in 0..span.len {
                    let dst = (span.row + t) * qd + head * hd;
                    context[dst..dst + hd].copy_from_slice(&out[(j * span.len + t) * hd..(j * span.len + t + 1) * hd]);
                }
            }
        }
    }
}

/// The pass's scratch buffers, sized for its tokens once.
pub(super) struct Buffers {
    pub(super) normed: Vec<f32>,
    pub(super) qkv: Vec<f32>,
    pub(super) context: Vec<f32>,
    pub(super) out: Vec<f32>,
    pub(super) gate_up: Vec<f32>,
    pub(super) act: Vec<f32>,
}

impl Buffers {
    pub(super) fn new(m: &NativeLlama, n: usize) -> Self {
        let (h, hd) = (m.hidden, m.head_dim);
        Buffers {
            normed: vec![0.0; n * h],
            qkv: vec![0.0; n * (m.heads + 2 * m.kv_heads) * hd],
            context: vec![0.0; n * m.heads * hd],
            out: vec![0.0; n * h],
            gate_up: vec![0.0; n * 2 * m.ff],
            act: vec![0.0; n * m.ff],
        }
    }
}
