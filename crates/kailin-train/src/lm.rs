//! The next-token objective CPT and SFT share: cross-entropy over the weighted tokens.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use kailin_lm::Llama;

use crate::encode::{Encoded, Row};
use crate::error::Result;
use crate::loss::lm_loss;
use crate::native::NativeRows;
use crate::trainer::{self, BatchTensors, MicroLoss, NativeLoss, Objective, Progress, TrainOptions, TrainReport};
use kailin_core::Fnv64;

/// Trains `model` on weighted token rows with the next-token objective: CPT rows (from
/// [`encode_texts`](crate::encode_texts): every token learned but those a packed text would
/// predict from the text before it) or SFT rows (from [`encode_sft`](crate::encode_sft): the
/// response tokens only). `eval` rows give the evaluation loss; `on_step` sees every optimiser
/// step. [`cpt::train`](crate::cpt::train) and [`sft::train`](crate::sft::train) are this
/// function.
pub fn train<B: AutodiffBackend>(
    model: Llama<B>,
    data: &Encoded<Row>,
    eval: &[Row],
    opts: &TrainOptions,
    on_step: impl FnMut(&Progress<'_>),
) -> Result<(Llama<B>, TrainReport)> {
    let (model, mut report) = trainer::train(model, &NextToken, &data.items, eval, opts, on_step)?;
    report.truncated = data.truncated;
    Ok((model, report))
}

/// Mean cross-entropy over the tokens whose weight is 1.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NextToken;

impl Objective for NextToken {
    type Item = Row;

    fn weight(&self, row: &Row) -> f64 {
        row.trained_tokens() as f64
    }

    fn fingerprint(&self, row: &Row, h: &mut Fnv64) {
        row.fingerprint(h);
    }

    fn loss<B: Backend>(&self, model: &Llama<B>, rows: &[&Row], normaliser: f64) -> Result<MicroLoss<B>> {
        let device = model.devices().first().cloned().unwrap_or_default();
        let batch = BatchTensors::<B>::new(rows, &device);
        let logits = batch.logits(model)?;
        let loss = lm_loss(logits, batch.targets, batch.weights, normaliser);
        Ok(MicroLoss { loss, metrics: Vec::new(), tokens: batch.tokens })
    }

    fn native<B: AutodiffBackend>(
        &self,
        model: &Llama<B::InnerBackend>,
        trained: Option<&Llama<B>>,
        rows: &[&Row],
        normaliser: f64,
    ) -> Result<Option<NativeLoss>> {
        let Some(pass) = NativeRows::forward(model, rows)? else { return Ok(None) };
        let scale = normaliser.max(1.0);
        let loss = -pass.row_logprobs().iter().sum::<f64>() / scale;
        let tokens = rows.iter().map(|r| r.ids.len().saturating_sub(1)).sum();
        let grads = trained.map(|m| pass.backward(m, &vec![-1.0 / scale; rows.len()])).transpose()?;
        Ok(Some(NativeLoss { loss, metrics: Vec::new(), tokens, grads }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::testing::{A, adapted, both_paths_agree};

    #[test]
    fn the_cpu_kernels_compute_burns_loss_and_gradients() {
        let sft =
            Row { ids: vec![1, 9, 8, 7, 30, 31, 32, 2], weights: vec![0., 0., 0., 1., 1., 1., 1.], segments: None };
        let packed = Row {
            ids: vec![1, 5, 6, 7, 2, 1, 40, 41, 2],
            weights: vec![1., 1., 1., 1., 0., 1., 1., 1.],
            segments: Some(vec![0, 0, 0, 0, 0, 1, 1, 1, 1]),
        };
        let rows = [&sft, &packed];
        let normaliser = rows.iter().map(|r| NextToken.weight(r)).sum();
        both_paths_agree(&NextToken, &rows, normaliser);
        assert!(adapted().trains_adapters_only());
        assert!(
            !kailin_lm::LlamaConfig::new(64, 32, 48, 2, 4, 2).init::<A>(16, &Default::default()).trains_adapters_only()
        );
    }
}
