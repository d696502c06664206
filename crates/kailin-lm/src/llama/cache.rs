//! The key/value cache of incremental decoding.

use burn::prelude::*;

/// Keys and values of the positions decoded so far, per layer, rotated (RoPE applied), and
/// the left padding of each sequence of the batch.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    /// Per layer: keys and values `[batch, kv_heads, len, head_dim]`.
    pub(crate) layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    pub(crate) pads: Vec<usize>,
    len: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a model of `layers` blocks (sequences without padding).
    pub fn new(layers: usize) -> Self {
        KvCache { layers: vec![None; layers], pads: Vec::new(), len: 0 }
    }

    /// An empty cache for a batch of left-padded sequences: sequence `b` starts with
    /// `pads[b]` padding positions, which are never attended to; its positions (RoPE) count
    /// from its first real token, so each sequence decodes exactly as it would alone.
    pub fn with_left_padding(layers: usize, pads: Vec<usize>) -> Self {
        KvCache { layers: vec![None; layers], pads, len: 0 }
    }

    /// Number of positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps only the sequences at `rows` (ascending indices into the batch), in that order.
    pub(crate) fn retain_rows(&mut self, rows: &[usize]) {
        for (k, v) in self.layers.iter_mut().flatten() {
            let device = k.device();
            let ids: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
            let index = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [rows.len()]), &device);
            *k = k.clone().select(0, index.clone());
            *v = v.clone().select(0, index);
        }
        if !self.pads.is_empty() {
            self.pads = rows.iter().map(|&r| self.pads[r]).collect();
        }
    }

    pub(crate) fn advance(&mut self, by: usize) {
        self.len += by;
    }
}
