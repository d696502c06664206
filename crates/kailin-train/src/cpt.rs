//! Continued pre-training: next-token cross-entropy over packed texts (m-KAILIN's CPT data:
//! question and context). Rows come from [`encode_texts`](crate::encode_texts).

pub use crate::lm::train;
