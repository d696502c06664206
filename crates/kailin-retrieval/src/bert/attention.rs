//! Bidirectional multi-head self-attention with a key padding mask.

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::softmax;

/// BERT's self-attention (with its output projection).
#[derive(Module, Debug)]
pub(crate) struct SelfAttention<B: Backend> {
    pub(crate) query: Linear<B>,
    pub(crate) key: Linear<B>,
    pub(crate) value: Linear<B>,
    pub(crate) output: Linear<B>,
    pub(crate) num_heads: usize,
}

impl<B: Backend> SelfAttention<B> {
    /// Shapes: `x` `[batch, seq, hidden]`, `mask` `[batch, 1, 1, seq]` (0 for real keys, a
    /// large negative number for padding) → `[batch, seq, hidden]`.
    pub(crate) fn forward(&self, x: Tensor<B, 3>, mask: &Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        let (heads, hd) = (self.num_heads, hidden / self.num_heads);
        // Projections on one [batch·seq, hidden] matrix: a 3-D input would multiply per sequence.
        let x = x.reshape([batch * seq, hidden]);
        let split = |t: Tensor<B, 2>| t.reshape([batch, seq, heads, hd]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x));
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((hd as f64).sqrt()) + mask.clone();
        let context = softmax(scores, 3).matmul(v).swap_dims(1, 2).reshape([batch * seq, hidden]);
        self.output.forward(context).reshape([batch, seq, hidden])
    }
}
