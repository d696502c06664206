//! One post-norm transformer layer: attention and feed-forward, each added to its input and
//! layer-normalised.

use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::activation::gelu;

use super::attention::SelfAttention;

/// The feed-forward block (GELU, erf form).
#[derive(Module, Debug)]
pub(crate) struct FeedForward<B: Backend> {
    pub(crate) up: Linear<B>,
    pub(crate) down: Linear<B>,
}

/// A BERT layer.
#[derive(Module, Debug)]
pub(crate) struct Layer<B: Backend> {
    pub(crate) attention: SelfAttention<B>,
    pub(crate) attention_norm: LayerNorm<B>,
    pub(crate) ffn: FeedForward<B>,
    pub(crate) ffn_norm: LayerNorm<B>,
}

impl<B: Backend> Layer<B> {
    /// Shapes: `x` `[batch, seq, hidden]`, `mask` `[batch, 1, 1, seq]` → `[batch, seq, hidden]`.
    pub(crate) fn forward(&self, x: Tensor<B, 3>, mask: &Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        let x = self.attention_norm.forward(x.clone() + self.attention.forward(x, mask));
        // As one [batch·seq, hidden] matrix (see `SelfAttention::forward`).
        let flat = x.clone().reshape([batch * seq, hidden]);
        let h = self.ffn.down.forward(gelu(self.ffn.up.forward(flat))).reshape([batch, seq, hidden]);
        self.ffn_norm.forward(x + h)
    }
}
