//! Supervised fine-tuning: cross-entropy over the response tokens only (the prompt's weigh 0),
//! prompts formatted with the model's chat template. m-KAILIN fine-tunes the question
//! generators (document → question), the evaluator (pair A/B → preferred label) and the
//! target model (question and context → answer) this way. Rows come from
//! [`encode_sft`](crate::encode_sft).

pub use crate::lm::train;
