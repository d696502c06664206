//! One transformer block.

use burn::nn::RmsNorm;
use burn::prelude::*;

use super::{Attention, Mlp, Step};

/// Pre-norm block: `x + attn(norm(x))`, then `x + mlp(norm(x))`.
#[derive(Module, Debug)]
pub(crate) struct Block<B: Backend> {
    pub(crate) attn_norm: RmsNorm<B>,
    pub(crate) attn: Attention<B>,
    pub(crate) mlp_norm: RmsNorm<B>,
    pub(crate) mlp: Mlp<B>,
}

impl<B: Backend> Block<B> {
    /// Shapes: `x` `[batch, seq, hidden]` → `[batch, seq, hidden]`; see [`Attention::forward`]
    /// for `step` and `cache`.
    pub(crate) fn forward(
        &self,
        x: Tensor<B, 3>,
        step: &Step<B>,
        cache: Option<&mut Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    ) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(self.attn_norm.forward(x), step, cache);
        x.clone() + self.mlp.forward(self.mlp_norm.forward(x))
    }
}
