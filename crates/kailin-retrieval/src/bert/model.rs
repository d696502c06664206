//! The whole encoder: embeddings and layers, over right-padded batches.

use burn::prelude::*;

use super::embeddings::Embeddings;
use super::layer::Layer;
use crate::error::{Error, Result};

/// Added to the attention scores of padding keys.
const MASKED: f32 = -1.0e30;

/// A BERT encoder (`BertModel` without its pooler), generic over burn's backend.
#[derive(Module, Debug)]
pub struct Bert<B: Backend> {
    pub(crate) embeddings: Embeddings<B>,
    pub(crate) layers: Vec<Layer<B>>,
    /// The layer norms' epsilon (burn's `LayerNorm` keeps its own private).
    pub(crate) layer_norm_eps: f64,
}

impl<B: Backend> Bert<B> {
    /// Hidden states of the last layer for right-padded token ids: sequence `b` is
    /// `ids[b, ..lengths[b]]`, the rest is padding, which no real token attends to.
    ///
    /// Shapes: `ids` `[batch, seq]`, `lengths` `batch` values in `1..=seq` →
    /// `[batch, seq, hidden]` (padding rows hold unspecified values).
    ///
    /// Errors: a batch longer than the position embedding, ids outside the vocabulary, or
    /// lengths that do not fit the batch.
    pub fn forward(&self, ids: &[u32], lengths: &[usize], device: &B::Device) -> Result<Tensor<B, 3>> {
        let batch = lengths.len();
        let seq = ids.len().checked_div(batch).unwrap_or(0);
        if batch == 0 || seq == 0 || ids.len() != batch * seq || lengths.iter().any(|&l| l == 0 || l > seq) {
            return Err(Error::Invalid(format!("{} ids with lengths {lengths:?}", ids.len())));
        }
        let max = self.max_positions();
        if seq > max {
            return Err(Error::Invalid(format!("{seq} tokens exceed the model's {max} positions")));
        }
        let vocab = self.embeddings.word.weight.dims()[0];
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::Invalid(format!("token id {bad} outside the vocabulary of {vocab}")));
        }
        let data: Vec<i64> = ids.iter().map(|&t| i64::from(t)).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(data, [batch, seq]), device);
        let mut mask = Vec::with_capacity(batch * seq);
        for &len in lengths {
            mask.extend((0..seq).map(|i| if i < len { 0.0 } else { MASKED }));
        }
        let mask = Tensor::<B, 4>::from_data(TensorData::new(mask, [batch, 1, 1, seq]), device);
        let mut x = self.embeddings.forward(ids);
        for layer in &self.layers {
            x = layer.forward(x, &mask);
        }
        Ok(x)
    }

    /// Width of the hidden states (the embedding dimension).
    pub fn hidden_size(&self) -> usize {
        self.embeddings.word.weight.dims()[1]
    }

    /// The longest input, in tokens.
    pub fn max_positions(&self) -> usize {
        self.embeddings.position.weight.dims()[0]
    }
}
