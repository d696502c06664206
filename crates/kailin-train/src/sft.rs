//! Supervised fine-tuning: cross-entropy over the response tokens only (the prompt's weigh 0),
//! prompts formatted with the model's chat template. m-KAILIN fine-tunes the question
//! generators (document → question), the evaluator (pair A/B → preferred label) and the
//! target model (question and context → answer) this way.

use burn::tensor::backend::AutodiffBackend;
use kailin_lm::Llama;

use crate::encode::{Encoded, Row};
use crate::error::Result;
use crate::lm::train_rows;
use crate::trainer::{Progress, TrainOptions, TrainReport};

/// Trains `model` on SFT rows (from [`encode_sft`](crate::encode_sft)); `eval` rows give the
/// evaluation loss; `on_step` sees every optimiser step.
pub fn train<B: AutodiffBackend>(
    model: Llama<B>,
    data: &Encoded<Row>,
    eval: &[Row],
    opts: &TrainOptions,
    on_step: impl FnMut(&Progress<'_>),
) -> Result<(Llama<B>, TrainReport)> {
    train_rows(model, data, eval, opts, on_step)
}
