//! Rotary position embedding, in the Hugging Face ("rotate half") layout: dimension `i` of the
//! first half pairs with dimension `i` of the second half.

use burn::prelude::*;

/// Precomputed cosines and sines, `[max_positions, head_dim / 2]` row-major. Plain data (not
/// parameters): the tables for the positions in use are uploaded at each forward.
#[derive(Debug, Clone)]
pub(crate) struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
    max_positions: usize,
}

impl Rope {
    pub(crate) fn new(head_dim: usize, max_positions: usize, theta: f64) -> Self {
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            for i in 0..half {
                let freq = theta.powf(-((2 * i) as f64) / head_dim as f64);
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

    /// Rotates `x` for positions `start..start + seq` (within `max_positions`).
    ///
    /// Shapes: `x` `[batch, heads, seq, head_dim]` → same.
    pub(crate) fn forward<B: Backend>(&self, x: Tensor<B, 4>, start: usize) -> Tensor<B, 4> {
        let [_, _, seq, head_dim] = x.dims();
        let half = self.half;
        let device = x.device();
        let table = |t: &[f32]| {
            let rows = t[start * half..(start + seq) * half].to_vec();
            Tensor::<B, 2>::from_data(TensorData::new(rows, [seq, half]), &device).unsqueeze::<4>()
        };
        let (cos, sin) = (table(&self.cos), table(&self.sin));
        let x1 = x.clone().slice_dim(3, 0..half);
        let x2 = x.slice_dim(3, half..head_dim);
        let rotated_1 = x1.clone() * cos.clone() - x2.clone() * sin.clone();
        let rotated_2 = x2 * cos + x1 * sin;
        Tensor::cat(vec![rotated_1, rotated_2], 3)
    }
}
