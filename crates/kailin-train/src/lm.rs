//! The next-token objective CPT and SFT share: cross-entropy over the weighted tokens.

use burn::prelude::*;
use kailin_lm::Llama;

use crate::encode::Row;
use crate::error::Result;
use crate::loss::lm_loss;
use crate::trainer::{BatchTensors, MicroLoss, Objective};

/// Mean cross-entropy over the tokens whose weight is 1.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NextToken;

impl Objective for NextToken {
    type Item = Row;

    fn weight(&self, row: &Row) -> f64 {
        row.trained_tokens() as f64
    }

    fn loss<B: Backend>(&self, model: &Llama<B>, rows: &[&Row], normaliser: f64) -> Result<MicroLoss<B>> {
        let device = model.devices().first().cloned().unwrap_or_default();
        let batch = BatchTensors::<B>::new(rows, &device);
        let logits = batch.logits(model)?;
        let loss = lm_loss(logits, batch.targets, batch.weights, normaliser);
        Ok(MicroLoss { loss, metrics: Vec::new(), tokens: batch.tokens })
    }
}
