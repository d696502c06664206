//! The next-token objective CPT and SFT share: cross-entropy over the weighted tokens.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use kailin_lm::Llama;

use crate::encode::{Encoded, Row};
use crate::error::Result;
use crate::loss::lm_loss;
use crate::trainer::{BatchTensors, MicroLoss, Objective, Progress, TrainOptions, TrainReport, train};
use kailin_core::Fnv64;

/// Trains `model` on weighted rows with the next-token objective (the body of
/// [`cpt::train`](crate::cpt::train) and [`sft::train`](crate::sft::train)).
pub(crate) fn train_rows<B: AutodiffBackend>(
    model: Llama<B>,
    data: &Encoded<Row>,
    eval: &[Row],
    opts: &TrainOptions,
    on_step: impl FnMut(&Progress<'_>),
) -> Result<(Llama<B>, TrainReport)> {
    let (model, mut report) = train(model, &NextToken, &data.items, eval, opts, on_step)?;
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
}
