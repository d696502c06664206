//! One transformer block.

use burn::nn::RmsNorm;
use burn::prelude::*;

use super::{Attention, Linear, Mlp, Step};

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

    /// The seven projections with their short names (those of [`LORA_TARGETS`](super::LORA_TARGETS)),
    /// attention's first.
    pub(crate) fn projections(&self) -> [(&'static str, &Linear<B>); 7] {
        let (a, m) = (&self.attn, &self.mlp);
        [("q", &a.q), ("k", &a.k), ("v", &a.v), ("o", &a.o), ("gate", &m.gate), ("up", &m.up), ("down", &m.down)]
    }

    /// [`projections`](Self::projections), mutably.
    pub(crate) fn projections_mut(&mut self) -> [(&'static str, &mut Linear<B>); 7] {
        let (a, m) = (&mut self.attn, &mut self.mlp);
        [
            ("q", &mut a.q),
            ("k", &mut a.k),
            ("v", &mut a.v),
            ("o", &mut a.o),
            ("gate", &mut m.gate),
            ("up", &mut m.up),
            ("down", &mut m.down),
        ]
    }
}
