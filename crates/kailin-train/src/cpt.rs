//! Continued pre-training: next-token cross-entropy over packed texts (m-KAILIN's CPT data:
//! question and context).

use burn::tensor::backend::AutodiffBackend;
use kailin_lm::Llama;

use crate::encode::{Encoded, Row};
use crate::error::Result;
use crate::lm::train_rows;
use crate::trainer::{Progress, TrainOptions, TrainReport};

/// Trains `model` on CPT rows (from [`encode_texts`](crate::encode_texts)); every token is
/// learned but those a packed text would predict from the text before it. `eval` rows give
/// the evaluation loss; `on_step` sees every optimiser step.
pub fn train<B: AutodiffBackend>(
    model: Llama<B>,
    data: &Encoded<Row>,
    eval: &[Row],
    opts: &TrainOptions,
    on_step: impl FnMut(&Progress<'_>),
) -> Result<(Llama<B>, TrainReport)> {
    train_rows(model, data, eval, opts, on_step)
}
