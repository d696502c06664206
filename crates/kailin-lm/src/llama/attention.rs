//! Causal self-attention with grouped key/value heads.

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::Rope;

/// Multi-head attention where `num_heads / num_kv_heads` query heads share each key/value head.
#[derive(Module, Debug)]
pub(crate) struct Attention<B: Backend> {
    pub(crate) q: Linear<B>,
    pub(crate) k: Linear<B>,
    pub(crate) v: Linear<B>,
    pub(crate) o: Linear<B>,
    pub(crate) num_heads: usize,
    pub(crate) num_kv_heads: usize,
}

impl<B: Backend> Attention<B> {
    /// Shapes: `x` `[batch, seq, hidden]` → `[batch, seq, hidden]`; positions start at 0.
    pub(crate) fn forward(&self, x: Tensor<B, 3>, rope: &Rope) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        let head_dim = hidden / self.num_heads;
        let heads = |t: Tensor<B, 3>, n: usize| t.reshape([batch, seq, n, head_dim]).swap_dims(1, 2);
        let q = rope.forward(heads(self.q.forward(x.clone()), self.num_heads), 0);
        let k = rope.forward(heads(self.k.forward(x.clone()), self.num_kv_heads), 0);
        let v = heads(self.v.forward(x), self.num_kv_heads);
        // [batch, kv_heads, seq, head_dim] -> [batch, heads, seq, head_dim]
        let group = self.num_heads / self.num_kv_heads;
        let expand = |t: Tensor<B, 4>| {
            t.unsqueeze_dim::<5>(2).repeat_dim(2, group).reshape([batch, self.num_heads, seq, head_dim])
        };
        let (k, v) = (expand(k), expand(v));
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((head_dim as f64).sqrt());
        let device = scores.device();
        let positions = || Tensor::<B, 1, Int>::arange(0..seq as i64, &device);
        // future[t, s]: key position s comes after query position t.
        let future = positions().reshape([1, seq]).greater(positions().reshape([seq, 1]));
        let scores = scores.mask_fill(future.unsqueeze::<4>(), f32::NEG_INFINITY);
        let out = softmax(scores, 3).matmul(v);
        self.o.forward(out.swap_dims(1, 2).reshape([batch, seq, hidden]))
    }
}
