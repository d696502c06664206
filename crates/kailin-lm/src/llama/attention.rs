//! Causal self-attention with grouped key/value heads.

use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::rope::rotate;
use super::{Linear, Step};

/// Multi-head attention where `num_heads / num_kv_heads` query heads share each key/value head.
#[derive(Module, Debug)]
pub(crate) struct Attention<B: Backend> {
    pub(crate) q: Linear<B>,
    pub(crate) k: Linear<B>,
    pub(crate) v: Linear<B>,
    pub(crate) o: Linear<B>,
    pub(crate) num_heads: usize,
    pub(crate) num_kv_heads: usize,
    pub(crate) head_dim: usize,
}

impl<B: Backend> Attention<B> {
    /// Shapes: `x` `[batch, seq, hidden]` → `[batch, seq, hidden]`. With a `cache` entry, the
    /// new keys and values are appended to it and the queries attend to every cached position
    /// as well; `step` holds the RoPE tables and mask of the pass.
    pub(crate) fn forward(
        &self,
        x: Tensor<B, 3>,
        step: &Step<B>,
        cache: Option<&mut Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    ) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        let (hd, kvh) = (self.head_dim, self.num_kv_heads);
        let group = self.num_heads / kvh;
        // Projections on one [batch·seq, hidden] matrix (see `Mlp::forward`).
        let x = x.reshape([batch * seq, hidden]);
        let heads = |t: Tensor<B, 2>, n: usize| t.reshape([batch, seq, n, hd]).swap_dims(1, 2);
        let q = rotate(heads(self.q.forward(x.clone()), self.num_heads), &step.cos, &step.sin);
        let mut k = rotate(heads(self.k.forward(x.clone()), kvh), &step.cos, &step.sin);
        let mut v = heads(self.v.forward(x), kvh);
        if let Some(slot) = cache {
            if let Some((ck, cv)) = slot.take() {
                k = Tensor::cat(vec![ck, k], 2);
                v = Tensor::cat(vec![cv, v], 2);
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let total = k.dims()[2];
        // Query heads h = kv·group + g share key/value head kv: fold the group into the rows,
        // so keys and values are used as they are, not copied per query head.
        // [batch, heads, seq, hd] -> [batch, kv, group·seq, hd]
        let q = q.reshape([batch, kvh, group * seq, hd]);
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((hd as f64).sqrt());
        let scores = match &step.mask {
            // [batch, kv, group, seq, total] + [batch or 1, 1, 1, seq, total]
            Some(mask) => (scores.reshape([batch, kvh, group, seq, total]) + mask.clone().unsqueeze_dim::<5>(2))
                .reshape([batch, kvh, group * seq, total]),
            None => scores,
        };
        let out = softmax(scores, 3).matmul(v); // [batch, kv, group·seq, hd]
        let out = out.reshape([batch, self.num_heads, seq, hd]).swap_dims(1, 2);
        self.o.forward(out.reshape([batch * seq, self.num_heads * hd])).reshape([batch, seq, hidden])
    }
}
