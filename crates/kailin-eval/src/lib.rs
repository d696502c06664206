//! Evaluation of biomedical QA models for m-KAILIN: PubMedQA PQA-L.
//!
//! - [`load_test_set`]: the official 500-item test split (`pubmedqa/test_ground_truth.json`)
//!   with its records (`pubmedqa/ori_pqal.json`) from a data directory.
//! - [`predict`]: any `kailin-lm` model answers each item with the answer ("yes", "no",
//!   "maybe") whose first token it finds most likely after the prompt — one forward pass per
//!   item, so small models that would not follow a format are measured fairly. Two
//!   [`Setting`]s: the abstract then the question (reasoning-required), or the question alone.
//! - [`metrics`], [`report`]: accuracy and macro-F1 with the official script's semantics
//!   (scikit-learn's), overall, by the paper's 8 publication-year spans ([`YEAR_SPANS`]) and
//!   its 6 MeSH subsets ([`MESH_SUBSETS`]), with the majority-class baseline beside them.
//! - [`official_predictions`], [`official_scores`]: the official `{PMID: answer}` file, and
//!   its scores as the official script computes them.
//!
//! ```
//! use kailin_eval::{Decision, metrics};
//!
//! let truth = [Decision::Yes, Decision::No, Decision::Maybe, Decision::Yes];
//! let pred = [Decision::Yes, Decision::No, Decision::Yes, Decision::Yes];
//! let m = metrics(&truth, &pred);
//! assert_eq!(m.accuracy, 0.75);
//! // yes: F1 0.8, no: 1.0, maybe: 0.0 (never predicted).
//! assert!((m.macro_f1 - 0.6).abs() < 1e-12);
//! ```
#![deny(missing_docs)]

mod error;
mod pubmedqa;
mod train;

pub use crate::{
    error::{Error, Result},
    pubmedqa::{
        AnswerScores, Decision, Group, MESH_SUBSETS, Metrics, PredictOptions, Prediction, PromptStyle, Report, Setting,
        TestItem, YEAR_SPANS, load_test_set, load_test_set_from, metrics, official_predictions, official_scores,
        predict, prompt, read_labels, report, span_name, user_turn,
    },
    train::{pubmedqa_train_chats, test_split_gate},
};
