//! Word, position and token-type embeddings, summed and normalised.

use burn::nn::{Embedding, LayerNorm};
use burn::prelude::*;

/// BERT's input embeddings.
#[derive(Module, Debug)]
pub(crate) struct Embeddings<B: Backend> {
    pub(crate) word: Embedding<B>,
    pub(crate) position: Embedding<B>,
    pub(crate) token_type: Embedding<B>,
    pub(crate) norm: LayerNorm<B>,
}

impl<B: Backend> Embeddings<B> {
    /// Shapes: `ids` `[batch, seq]` (token type 0 throughout, positions from 0) →
    /// `[batch, seq, hidden]`.
    pub(crate) fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [batch, seq] = ids.dims();
        let device = ids.device();
        let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &device).unsqueeze::<2>();
        let types = Tensor::<B, 2, Int>::zeros([1, seq], &device);
        let x = self.word.forward(ids)
            + self.position.forward(positions).expand([batch as i64, -1, -1])
            + self.token_type.forward(types).expand([batch as i64, -1, -1]);
        self.norm.forward(x)
    }
}
