//! What every layer of one forward pass shares: the RoPE tables of the positions in the pass
//! and the attention mask. Built once per pass, on the host, from plain position arithmetic.

use burn::prelude::*;

use super::Rope;

/// Added to the scores of masked keys: large and finite, so a row whose keys are all masked
/// (a padding query) stays finite instead of turning NaN and leaking into other rows.
const MASKED: f32 = -1.0e30;

/// Per-pass tensors shared by the layers.
#[derive(Debug, Clone)]
pub(crate) struct Step<B: Backend> {
    /// RoPE cosines and sines, `[batch or 1, 1, seq, head_dim / 2]`.
    pub(crate) cos: Tensor<B, 4>,
    /// See `cos`.
    pub(crate) sin: Tensor<B, 4>,
    /// Additive mask `[batch or 1, 1, seq, total]` (0 or a large negative number), `None` when
    /// every query may see every key (one new token per sequence, no padding).
    pub(crate) mask: Option<Tensor<B, 4>>,
}

impl<B: Backend> Step<B> {
    /// A pass over `seq` new tokens per sequence after `start` cached positions. `pads[b]` is
    /// the number of left-padding positions of sequence `b` (empty: no padding): they are never
    /// attended to, and positions count from the first real token.
    pub(crate) fn new(rope: &Rope, batch: usize, seq: usize, start: usize, pads: &[usize], device: &B::Device) -> Self {
        let total = start + seq;
        let padded = pads.iter().any(|&p| p > 0);
        // One row per sequence when they differ, else one row broadcast over the batch.
        let row_pads: &[usize] = if padded { &pads[..batch.min(pads.len())] } else { &[0] };
        let rows = row_pads.len();
        let mut positions = Vec::with_capacity(rows * seq);
        for &pad in row_pads {
            positions.extend((start..total).map(|p| p.saturating_sub(pad)));
        }
        let (cos, sin) = rope.tables(&positions, seq, device);
        let mask = (seq > 1 || padded).then(|| {
            let mut m = Vec::with_capacity(rows * seq * total);
            for &pad in row_pads {
                for q in start..total {
                    // A query sees keys up to itself, never padding (a padding query sees itself).
                    m.extend((0..total).map(|k| if k > q || (k < pad && k != q) { MASKED } else { 0.0 }));
                }
            }
            Tensor::from_data(TensorData::new(m, [rows, 1, seq, total]), device)
        });
        Step { cos, sin, mask }
    }

    /// A pass over packed sequences without a cache: `segments[b·seq + t]` names the record
    /// that token `t` of sequence `b` belongs to. A query sees earlier keys of its own record
    /// only, and positions (RoPE) restart at 0 wherever the record changes.
    pub(crate) fn segmented(rope: &Rope, batch: usize, seq: usize, segments: &[u32], device: &B::Device) -> Self {
        let mut positions = Vec::with_capacity(batch * seq);
        let mut m = Vec::with_capacity(batch * seq * seq);
        for row in segments.chunks_exact(seq.max(1)).take(batch) {
            let mut start = 0;
            for (q, &segment) in row.iter().enumerate() {
                if q > 0 && row[q - 1] != segment {
                    start = q;
                }
                positions.push(q - start);
                m.extend((0..seq).map(|k| if k > q || k < start { MASKED } else { 0.0 }));
            }
        }
        let (cos, sin) = rope.tables(&positions, seq, device);
        let mask = Some(Tensor::from_data(TensorData::new(m, [batch, 1, seq, seq]), device));
        Step { cos, sin, mask }
    }
}
