//! The objectives on `kailin-lm`'s CPU kernels ([`kailin_lm::training_pass`]): token rows as
//! the kernels' sequences, each row's weighted log-probability, and the adapters' gradients
//! of a loss whose derivative with respect to each row's log-probability is known — which is
//! all the next-token objective and DPO need. Used on burn's `Flex` backend when only LoRA
//! adapters train; elsewhere the objectives run on burn's ops.

use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use kailin_lm::{Llama, LoraGradient, Tape, TrainSequence, training_pass};

use crate::encode::Row;
use crate::error::Result;

/// A forward pass over rows on the CPU kernels.
pub(crate) struct NativeRows {
    tape: Tape,
    /// The row each sequence came from.
    rows: Vec<usize>,
    /// The weight of each target of each sequence.
    weights: Vec<Vec<f32>>,
    row_count: usize,
}

/// Each row's records (a packed row's segments; a plain row is one) as sequences of their
/// own, positions from 0, the weighted predictions their targets (what burn's path computes
/// with its segment mask and restarted positions). The last token of a row is only a target.
fn sequences(rows: &[&Row]) -> (Vec<TrainSequence>, Vec<usize>, Vec<Vec<f32>>) {
    let (mut seqs, mut owners, mut weights) = (Vec::new(), Vec::new(), Vec::new());
    for (r, row) in rows.iter().enumerate() {
        let inputs = row.ids.len().saturating_sub(1);
        let mut start = 0;
        while start < inputs {
            let segment = row.segments.as_ref().map(|s| s[start]);
            let end = (start..inputs).find(|&j| row.segments.as_ref().map(|s| s[j]) != segment).unwrap_or(inputs);
            let (mut targets, mut w) = (Vec::new(), Vec::new());
            for j in start..end {
                if row.weights[j] != 0.0 {
                    targets.push((j - start, row.ids[j + 1]));
                    w.push(row.weights[j]);
                }
            }
            seqs.push(TrainSequence { tokens: row.ids[start..end].to_vec(), targets });
            owners.push(r);
            weights.push(w);
            start = end;
        }
    }
    (seqs, owners, weights)
}

impl NativeRows {
    /// The forward pass of `rows` on the CPU kernels; `None` where they do not apply.
    pub(crate) fn forward<B: Backend>(model: &Llama<B>, rows: &[&Row]) -> Result<Option<Self>> {
        let (seqs, owners, weights) = sequences(rows);
        Ok(training_pass(model, &seqs)?.map(|tape| NativeRows { tape, rows: owners, weights, row_count: rows.len() }))
    }

    /// Each row's summed weighted log-probability (`Σ w·log p`), row by row.
    pub(crate) fn row_logprobs(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.row_count];
        for ((lp, w), &r) in self.tape.logprobs().iter().zip(&self.weights).zip(&self.rows) {
            out[r] += lp.iter().zip(w).map(|(lp, w)| lp * f64::from(*w)).sum::<f64>();
        }
        out
    }

    /// The adapters' gradients of a loss whose derivative with respect to row `r`'s
    /// log-probability ([`row_logprobs`](Self::row_logprobs)) is `d_row[r]`, as burn's
    /// gradients of `model`'s parameters.
    pub(crate) fn backward<B: AutodiffBackend>(self, model: &Llama<B>, d_row: &[f64]) -> Result<GradientsParams> {
        let dlogp: Vec<Vec<f64>> = self
            .weights
            .iter()
            .zip(&self.rows)
            .map(|(w, &r)| w.iter().map(|&w| f64::from(w) * d_row[r]).collect())
            .collect();
        let grads = self.tape.backward(&dlogp)?;
        let device = model.devices().first().cloned().unwrap_or_default();
        Ok(into_params::<B>(grads, &device))
    }
}

fn into_params<B: AutodiffBackend>(grads: Vec<LoraGradient>, device: &B::Device) -> GradientsParams {
    let mut out = GradientsParams::new();
    for g in grads {
        let t = Tensor::<B, 2>::from_data(TensorData::new(g.values, g.shape), device).inner();
        out.register::<B::InnerBackend, 2>(g.param, t);
    }
    out
}

/// What the objectives' tests share: a tiny adapted model, and a comparison of an
/// objective's loss, metrics and gradients on the CPU kernels against burn's autodiff.
#[cfg(test)]
pub(crate) mod testing {
    #![allow(clippy::unwrap_used)]

    use burn::backend::{Autodiff, Flex};
    use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
    use burn::optim::GradientsParams;
    use burn::prelude::*;
    use kailin_lm::{Llama, LlamaConfig, LoraConfig};

    use crate::optim::{AdamW, AdamWConfig};
    use crate::trainer::Objective;

    pub(crate) type A = Autodiff<Flex>;

    /// A tiny model (grouped-query attention) with LoRA adapters on every projection.
    pub(crate) fn adapted() -> Llama<A> {
        let m = LlamaConfig::new(64, 32, 48, 2, 4, 2).init::<A>(128, &Default::default());
        m.with_lora(&LoraConfig::new(4)).unwrap()
    }

    fn trainable(model: &Llama<A>) -> Vec<ParamId> {
        struct Ids(Vec<ParamId>);
        impl ModuleVisitor<A> for Ids {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
                if param.val().is_require_grad() {
                    self.0.push(param.id);
                }
            }
        }
        let mut ids = Ids(Vec::new());
        model.visit(&mut ids);
        ids.0
    }

    /// `objective` on `items`, on both paths: the same loss, metrics, token count and
    /// gradients. The model first takes one AdamW step on burn's gradients, so that every
    /// adapter's `B` is away from zero and every gradient path carries signal.
    pub(crate) fn both_paths_agree<O: Objective>(objective: &O, items: &[&O::Item], normaliser: f64) {
        let model = adapted();
        let first = objective.loss(&model, items, normaliser).unwrap();
        let grads = GradientsParams::from_grads(first.loss.backward(), &model);
        let model = AdamW::<A>::new(AdamWConfig::default()).step(model, grads, 0.05, 1.0);

        let burn = objective.loss(&model, items, normaliser).unwrap();
        let burn_loss = f64::from(burn.loss.clone().into_scalar());
        let mut want = GradientsParams::from_grads(burn.loss.backward(), &model);
        let native = objective.native(&model.valid(), Some(&model), items, normaliser).unwrap();
        let native = native.expect("the CPU kernels apply to an adapted model on Flex");
        assert!((native.loss - burn_loss).abs() < 1e-4 * burn_loss.abs().max(1.0), "{} vs {burn_loss}", native.loss);
        assert_eq!(native.tokens, burn.tokens);
        assert_eq!(native.metrics.len(), burn.metrics.len());
        for ((n, a), (m, b)) in native.metrics.iter().zip(&burn.metrics) {
            assert_eq!(n, m);
            assert!((a - b).abs() < 1e-4 * b.abs().max(1.0), "{n}: {a} vs {b}");
        }
        let mut got = native.grads.unwrap();
        let ids = trainable(&model);
        assert_eq!(ids.len(), 2 * 7 * 2, "A and B of 7 projections in 2 blocks");
        for id in ids {
            let w = want.remove::<Flex, 2>(id).unwrap().into_data().to_vec::<f32>().unwrap();
            let g = got.remove::<Flex, 2>(id).unwrap().into_data().to_vec::<f32>().unwrap();
            let scale = w.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let worst = g.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-4 * scale.max(1.0), "max |Δ| {worst}, largest gradient {scale}");
        }
        assert!(got.is_empty(), "no gradient for a frozen weight");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_one_sequence_per_record_with_their_weighted_targets() {
        let plain = Row { ids: vec![10, 11, 12, 13], weights: vec![0.0, 1.0, 1.0], segments: None };
        let packed = Row {
            ids: vec![20, 21, 22, 23, 24, 25],
            weights: vec![1.0, 0.0, 1.0, 1.0, 0.0],
            segments: Some(vec![0, 0, 1, 1, 1, 2]),
        };
        let (seqs, owners, weights) = sequences(&[&plain, &packed]);
        assert_eq!(owners, [0, 1, 1]);
        assert_eq!(seqs[0], TrainSequence { tokens: vec![10, 11, 12], targets: vec![(1, 12), (2, 13)] });
        // Record 0 is ids 20, 21 (21 → 22 crosses a boundary: weight 0); record 1 is 22..=24.
        assert_eq!(seqs[1], TrainSequence { tokens: vec![20, 21], targets: vec![(0, 21)] });
        assert_eq!(seqs[2], TrainSequence { tokens: vec![22, 23, 24], targets: vec![(0, 23), (1, 24)] });
        assert_eq!(weights, [vec![1.0, 1.0], vec![1.0], vec![1.0, 1.0]]);
    }
}
