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
    /// Shapes: `x` `[batch, seq, hidden]` → `[batch, seq, hidden]`. The new positions start
    /// at `start`; with a `cache` entry, their keys and values are appended to it and the
    /// queries attend to every cached position as well.
    pub(crate) fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &Rope,
        start: usize,
        cache: Option<&mut Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    ) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        let head_dim = hidden / self.num_heads;
        let heads = |t: Tensor<B, 3>, n: usize| t.reshape([batch, seq, n, head_dim]).swap_dims(1, 2);
        let q = rope.forward(heads(self.q.forward(x.clone()), self.num_heads), start);
        let mut k = rope.forward(heads(self.k.forward(x.clone()), self.num_kv_heads), start);
        let mut v = heads(self.v.forward(x), self.num_kv_heads);
        if let Some(slot) = cache {
            if let Some((ck, cv)) = slot.take() {
                k = Tensor::cat(vec![ck, k], 2);
                v = Tensor::cat(vec![cv, v], 2);
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let total = k.dims()[2];
        // [batch, kv_heads, total, head_dim] -> [batch, heads, total, head_dim]
        let group = self.num_heads / self.num_kv_heads;
        let expand = |t: Tensor<B, 4>| {
            t.unsqueeze_dim::<5>(2).repeat_dim(2, group).reshape([batch, self.num_heads, total, head_dim])
        };
        let (k, v) = (expand(k), expand(v));
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((head_dim as f64).sqrt());
        let device = scores.device();
        // future[i, j]: key position j comes after query position total - seq + i.
        let queries = Tensor::<B, 1, Int>::arange((total - seq) as i64..total as i64, &device).reshape([seq, 1]);
        let keys = Tensor::<B, 1, Int>::arange(0..total as i64, &device).reshape([1, total]);
        let scores = scores.mask_fill(keys.greater(queries).unsqueeze::<4>(), f32::NEG_INFINITY);
        let out = softmax(scores, 3).matmul(v);
        self.o.forward(out.swap_dims(1, 2).reshape([batch, seq, hidden]))
    }
}
