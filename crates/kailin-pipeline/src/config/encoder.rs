//! `[encoder]`: the domain encoder's fine-tuning, and its checks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Config;
use crate::error::{Error, Result};

/// `[encoder]`: the domain encoder's fine-tuning (`models.encoder = "domain"`; `kailin-train`'s
/// `train_encoder`): in-batch negatives, symmetric InfoNCE, AdamW with warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    /// The encoder fine-tuned: `minilm`, `tiny` or a path.
    pub base: String,
    /// Train on BioASQ's questions, each with each of its snippets (`data.bioasq`, less
    /// `agents.held_out`).
    pub bioasq: bool,
    /// Train on PQA-L's questions, each with its abstract (outside the test split).
    pub pubmedqa: bool,
    /// More pairs: JSON Lines files `{"query", "positive", "negatives"}` (relative to
    /// `data.dir`, or absolute).
    pub pairs: Vec<PathBuf>,
    /// Pairs trained on: a seeded sample of them all (0: all).
    pub limit: usize,
    /// Passes over the pairs.
    pub epochs: usize,
    /// Pairs per step (each pair's passage is every other pair's negative).
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Share of the steps spent warming up.
    pub warmup: f64,
    /// Scores are cosine similarities divided by this.
    pub temperature: f64,
    /// Texts are cut to this many tokens while training.
    pub max_tokens: usize,
    /// Hard negatives per pair, mined with BM25 among the pairs' passages.
    pub hard_negatives: usize,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            base: "minilm".into(),
            bioasq: true,
            pubmedqa: true,
            pairs: Vec::new(),
            limit: 0,
            epochs: 1,
            batch_size: 32,
            lr: 2e-5,
            warmup: 0.1,
            temperature: 0.05,
            max_tokens: 128,
            hard_negatives: 0,
        }
    }
}

impl Config {
    /// Checks `models.encoder` and `[encoder]`.
    pub(super) fn check_encoder(&self) -> Result<()> {
        let bad = |key: &str, message: &str| Err(Error::Config { key: key.into(), message: message.into() });
        let e = &self.encoder;
        if self.models.encoder.trim().is_empty() {
            return bad("models.encoder", "allowed: \"domain\", \"minilm\", \"tiny\" or a path");
        }
        if e.base.trim().is_empty() || e.base == "domain" {
            return bad("encoder.base", "the encoder fine-tuned: \"minilm\", \"tiny\" or a path");
        }
        if e.batch_size < 2 {
            return bad("encoder.batch_size", "must be at least 2 (a pair's negatives are the batch's other passages)");
        }
        if !(0.0..1.0).contains(&e.warmup) {
            return bad("encoder.warmup", "must be within [0, 1)");
        }
        if e.max_tokens < 3 {
            return bad("encoder.max_tokens", "must be at least 3 ([CLS], a token and [SEP])");
        }
        if !(e.temperature.is_finite() && e.temperature > 0.0) {
            return bad("encoder.temperature", "must be above 0 (0.05 is usual)");
        }
        if self.models.encoder == "domain" && !e.bioasq && !e.pubmedqa && e.pairs.is_empty() {
            return bad(
                "encoder.pairs",
                "models.encoder = \"domain\" needs pairs: encoder.bioasq, encoder.pubmedqa or a pairs file",
            );
        }
        Ok(())
    }
}
