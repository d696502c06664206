//! One transformer block.

use burn::nn::RmsNorm;
use burn::prelude::*;

use super::{Attention, Linear, Mlp, Step, Weight};

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

    /// The seven projections, in [`Weight::PROJECTIONS`] order.
    pub(crate) fn projections(&self) -> [(Weight, &Linear<B>); 7] {
        let (a, m) = (&self.attn, &self.mlp);
        use Weight::{Down, Gate, K, O, Q, Up, V};
        [(Q, &a.q), (K, &a.k), (V, &a.v), (O, &a.o), (Gate, &m.gate), (Up, &m.up), (Down, &m.down)]
    }

    /// [`projections`](Self::projections), mutably.
    pub(crate) fn projections_mut(&mut self) -> [(Weight, &mut Linear<B>); 7] {
        let (a, m) = (&mut self.attn, &mut self.mlp);
        use Weight::{Down, Gate, K, O, Q, Up, V};
        [
            (Q, &mut a.q),
            (K, &mut a.k),
            (V, &mut a.v),
            (O, &mut a.o),
            (Gate, &mut m.gate),
            (Up, &mut m.up),
            (Down, &mut m.down),
        ]
    }
}
