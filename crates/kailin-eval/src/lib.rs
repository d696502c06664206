//! Evaluation of biomedical QA models for m-KAILIN: PubMedQA PQA-L and BioASQ yes/no, with the
//! uncertainty of every figure.
//!
//! - [`load_test_set`]: the official 500-item test split (`pubmedqa/test_ground_truth.json`)
//!   with its records (`pubmedqa/ori_pqal.json`) from a data directory;
//!   [`load_bioasq_yesno`]: the yes/no questions of BioASQ golden batches, their snippets as
//!   the context.
//! - [`predict`]: any `kailin-lm` model answers each item with the answer ("yes", "no",
//!   "maybe"; [`Answers`]) whose first token it finds most likely after the prompt — one
//!   forward pass per item, so small models that would not follow a format are measured
//!   fairly. Two [`Setting`]s: the abstract then the question (reasoning-required), or the
//!   question alone.
//! - [`metrics`], [`report`]: accuracy and macro-F1 with the official script's semantics
//!   (scikit-learn's), overall, by the paper's 8 publication-year spans ([`YEAR_SPANS`]) and
//!   its 6 MeSH subsets ([`MESH_SUBSETS`]), with the majority-class baseline beside them —
//!   each with a seeded 95% bootstrap interval ([`bootstrap_ci95`]).
//! - [`ProbabilityScores`]: what raw accuracy cannot see behind a model's label bias — the
//!   true answer's log-probability, the Brier score, and accuracy after contextual calibration
//!   ([`content_free`], [`calibrated`]).
//! - [`Evaluation`] (`metrics.json`), [`evaluate`]; [`compare`]: two evaluations of the same
//!   items, paired — the difference with its paired-bootstrap interval and McNemar's exact p
//!   ([`mcnemar_exact`]).
//! - [`official_predictions`], [`official_scores`]: the official `{PMID: answer}` file, and
//!   its scores as the official script computes them.
//!
//! ```
//! use kailin_eval::{Decision, compare, metrics};
//!
//! let truth = [Decision::Yes, Decision::No, Decision::Maybe, Decision::Yes];
//! let pred = [Decision::Yes, Decision::No, Decision::Yes, Decision::Yes];
//! let m = metrics(&truth, &pred);
//! assert_eq!(m.accuracy, 0.75);
//! // yes: F1 0.8, no: 1.0, maybe: 0.0 (never predicted).
//! assert!((m.macro_f1 - 0.6).abs() < 1e-12);
//! let [low, high] = m.accuracy_ci95.unwrap();
//! assert!(low <= 0.75 && 0.75 <= high);
//!
//! let always_yes = [Decision::Yes; 4];
//! let c = compare(&truth, &always_yes, &pred);
//! assert_eq!((c.accuracy_diff, c.discordant), (0.25, [0, 1]));
//! assert!(!c.detectable());
//! ```
#![deny(missing_docs)]

mod bioasq;
mod error;
mod evaluation;
mod pubmedqa;
mod scores;
mod stats;
mod train;

pub use crate::{
    bioasq::{BioasqSet, load_bioasq_yesno},
    error::{Error, Result},
    evaluation::{Benchmark, Evaluation, evaluate},
    pubmedqa::{
        AnswerScores, Answers, Decision, Group, MESH_SUBSETS, Metrics, PredictOptions, Prediction, PromptStyle, Report,
        Setting, TestItem, YEAR_SPANS, load_test_set, load_test_set_from, metrics, official_predictions,
        official_scores, predict, prompt, read_labels, report, span_name, user_turn,
    },
    scores::{
        AnswerProbabilities, CONTENT_FREE, ProbabilityScores, calibrated, content_free, mean_prediction, probabilities,
        probability_scores,
    },
    stats::{
        BOOTSTRAP_SEED, Comparison, PairedMeans, RESAMPLES, bootstrap_ci95, compare, mcnemar_exact, mean_ci95, quantile,
    },
    train::{pubmedqa_train_chats, test_split_gate},
};
