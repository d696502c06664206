//! A projection `y = x·W + b` that can carry a LoRA adapter.

use burn::module::Param;
use burn::prelude::*;

use super::lora::Lora;

/// A projection with its weight held `[in, out]`, an optional bias, and an optional LoRA
/// adapter added to its output.
///
/// Named `Linear`, with burn's field names, on purpose: burn's store recognises the module type
/// `Linear` and transposes Hugging Face's `[out, in]` weights on load, and the parameter paths
/// (`….q.weight`) stay those of burn's own `Linear`.
#[derive(Module, Debug)]
pub(crate) struct Linear<B: Backend> {
    /// `[in, out]`.
    pub(crate) weight: Param<Tensor<B, 2>>,
    /// `[out]`.
    pub(crate) bias: Option<Param<Tensor<B, 1>>>,
    pub(crate) lora: Option<Lora<B>>,
}

impl<B: Backend> Linear<B> {
    /// A projection without adapter.
    pub(crate) fn plain(weight: Param<Tensor<B, 2>>, bias: Option<Param<Tensor<B, 1>>>) -> Self {
        Linear { weight, bias, lora: None }
    }

    /// Shapes: `x` `[rows, in]` → `[rows, out]`.
    pub(crate) fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let mut y = match &self.lora {
            Some(lora) => x.clone().matmul(self.weight.val()) + lora.forward(x),
            None => x.matmul(self.weight.val()),
        };
        if let Some(bias) = &self.bias {
            y = y + bias.val().unsqueeze_dim(0);
        }
        y
    }

    /// The weight this projection applies, `[in, out]`: its own, plus the adapter's update.
    pub(crate) fn effective_weight(&self) -> Tensor<B, 2> {
        match &self.lora {
            Some(lora) => self.weight.val() + lora.delta(),
            None => self.weight.val(),
        }
    }

    /// Folds the adapter into the weight and drops it.
    pub(crate) fn merged(self) -> Self {
        if self.lora.is_none() {
            return self;
        }
        let weight = Param::from_tensor(self.effective_weight().detach());
        Linear { weight, bias: self.bias, lora: None }
    }
}
