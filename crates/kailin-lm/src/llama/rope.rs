//! Rotary position embedding, in the Hugging Face ("rotate half") layout: dimension `i` of the
//! first half pairs with dimension `i` of the second half.

use burn::prelude::*;

/// Precomputed cosines and sines, `[max_positions, head_dim / 2]` row-major. Plain data (not
/// parameters): the rows for the positions of a forward pass are uploaded once per pass
/// ([`Rope::tables`]) and shared by every layer.
#[derive(Debug, Clone)]
pub(crate) struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
    max_positions: usize,
}

impl Rope {
    /// Tables for `inverse_frequencies` (`head_dim / 2` of them, see
    /// [`LlamaConfig::inverse_frequencies`](super::LlamaConfig::inverse_frequencies)).
    pub(crate) fn new(inverse_frequencies: &[f64], max_positions: usize) -> Self {
        let half = inverse_frequencies.len();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            for freq in inverse_frequencies {
                let angle = p as f64 * freq;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Rope { cos, sin, half, max_positions }
    }

    /// The longest sequence the tables cover.
    pub(crate) fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The whole cosine and sine tables, `[max_positions, head_dim / 2]` row-major each.
    pub(crate) fn table_values(&self) -> (&[f32], &[f32]) {
        (&self.cos, &self.sin)
    }

    /// Cosine and sine tables for the given positions, one row of positions per sequence
    /// (`positions.len() / seq` rows; each position `< max_positions`).
    ///
    /// Shapes: → `[rows, 1, seq, head_dim / 2]` each (broadcast over heads, and over the batch
    /// when `rows` is 1).
    pub(crate) fn tables<B: Backend>(
        &self,
        positions: &[usize],
        seq: usize,
        device: &B::Device,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let half = self.half;
        let rows = positions.len() / seq.max(1);
        let gather = |t: &[f32]| {
            let mut v = Vec::with_capacity(positions.len() * half);
            for &p in positions {
                v.extend_from_slice(&t[p * half..(p + 1) * half]);
            }
            Tensor::<B, 4>::from_data(TensorData::new(v, [rows, 1, seq, half]), device)
        };
        (gather(&self.cos), gather(&self.sin))
    }
}

/// Rotates `x` by the tables of [`Rope::tables`].
///
/// Shapes: `x` `[batch, heads, seq, head_dim]`, `cos`/`sin` `[batch or 1, 1, seq, head_dim / 2]`
/// → `[batch, heads, seq, head_dim]`.
pub(crate) fn rotate<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, _, head_dim] = x.dims();
    let half = head_dim / 2;
    let x1 = x.clone().slice_dim(3, 0..half);
    let x2 = x.slice_dim(3, half..head_dim);
    let rotated_1 = x1.clone() * cos.clone() - x2.clone() * sin.clone();
    let rotated_2 = x2 * cos.clone() + x1 * sin.clone();
    Tensor::cat(vec![rotated_1, rotated_2], 3)
}
