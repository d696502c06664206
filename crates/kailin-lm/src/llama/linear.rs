//! A projection `y = x·W + b` that can carry a LoRA adapter.

use burn::module::Param;
use burn::prelude::*;

use super::lora::Lora;
use crate::native::FileWeight;

/// Up to this many rows (and from 2), a projection multiplies in the transposed orientation.
/// burn-flex hands both layouts to the `gemm` crate as strided matrices; with at most 32 rows
/// (twice its 16-row register tile) `gemm` does not pack a row-major right operand and reads the
/// weight six columns at a time, a fraction of each cache line; as the left, column-major
/// operand the weight is read a whole line at a time. Batch-16 decoding ~+20% (measurements in
/// docs/benchmarks.md, "Generation speed"); one sequence (a matrix-vector product either way)
/// and a 256-row prompt pass are not helped, so they keep the plain product.
const SMALL_BATCH: usize = 32;

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
    /// The weight as its GGUF file stored it (the CPU kernels' decoding products), while the
    /// weight is the one loaded.
    #[module(skip)]
    pub(crate) file: Option<FileWeight>,
}

impl<B: Backend> Linear<B> {
    /// A projection without adapter.
    pub(crate) fn plain(weight: Param<Tensor<B, 2>>, bias: Option<Param<Tensor<B, 1>>>) -> Self {
        Linear { weight, bias, lora: None, file: None }
    }

    /// Shapes: `x` `[rows, in]` → `[rows, out]`.
    pub(crate) fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let rows = x.dims()[0];
        let product = |x: Tensor<B, 2>| {
            if (2..=SMALL_BATCH).contains(&rows) {
                // (Wᵀ·xᵀ)ᵀ: the weight as the left, column-major operand, which the CPU's gemm
                // streams a cache line at a time; as the right operand of so few rows it is
                // neither packed nor read in whole lines (see `SMALL_BATCH`).
                self.weight.val().transpose().matmul(x.transpose()).transpose()
            } else {
                x.matmul(self.weight.val())
            }
        };
        let mut y = match &self.lora {
            Some(lora) => product(x.clone()) + lora.forward(x),
            None => product(x),
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
        Linear { weight, bias: self.bias, lora: None, file: None }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;

    use super::*;

    #[test]
    fn both_orientations_compute_x_w_plus_b() {
        let device = Default::default();
        let (inp, out) = (7, 5);
        let w: Vec<f32> = (0..inp * out).map(|i| ((i * 37 % 11) as f32 - 5.0) / 4.0).collect();
        let b: Vec<f32> = (0..out).map(|o| o as f32 - 2.0).collect();
        let weight = Param::from_tensor(Tensor::<Flex, 2>::from_data(TensorData::new(w.clone(), [inp, out]), &device));
        let bias = Param::from_tensor(Tensor::<Flex, 1>::from_data(TensorData::new(b.clone(), [out]), &device));
        let linear = Linear::plain(weight, Some(bias));
        // One row (plain), the small-batch range (transposed) and past it (plain).
        for rows in [1, 2, SMALL_BATCH, SMALL_BATCH + 1] {
            let x: Vec<f32> = (0..rows * inp).map(|i| ((i * 13 % 7) as f32 - 3.0) / 2.0).collect();
            let mut want = vec![0.0f32; rows * out];
            for r in 0..rows {
                for o in 0..out {
                    want[r * out + o] = b[o] + (0..inp).map(|i| x[r * inp + i] * w[i * out + o]).sum::<f32>();
                }
            }
            let got = linear.forward(Tensor::from_data(TensorData::new(x, [rows, inp]), &device));
            assert_eq!(got.dims(), [rows, out]);
            got.into_data().assert_approx_eq::<f32>(&TensorData::new(want, [rows, out]), Default::default());
        }
    }
}
