//! The SwiGLU feed-forward layer.

use burn::prelude::*;

use super::Linear;
use burn::tensor::activation::silu;

/// `down(silu(gate(x)) * up(x))`.
#[derive(Module, Debug)]
pub(crate) struct Mlp<B: Backend> {
    pub(crate) gate: Linear<B>,
    pub(crate) up: Linear<B>,
    pub(crate) down: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// Shapes: `x` `[batch, seq, hidden]` → `[batch, seq, hidden]`.
    pub(crate) fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        // As one [batch·seq, hidden] matrix: a 3-D input would make burn broadcast the weight
        // and multiply per sequence, reading every weight once per sequence.
        let [batch, seq, hidden] = x.dims();
        let x = x.reshape([batch * seq, hidden]);
        self.down.forward(silu(self.gate.forward(x.clone())) * self.up.forward(x)).reshape([batch, seq, hidden])
    }
}
