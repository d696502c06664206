//! Scores that see past a model's label bias: the log-probability and Brier score of the true
//! answer, and accuracy after calibration of the label prior: contextual calibration's
//! content-free prior (Zhao et al., 2021), and the mean prediction over the evaluated items.

use std::collections::BTreeMap;

use burn::prelude::Backend;
use kailin_lm::{Llama, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::pubmedqa::{Decision, Metrics, PredictOptions, Prediction, TestItem, argmax, log_sum_exp, metrics, predict};
use crate::stats::mean_ci95;

/// A distribution over answers.
pub type AnswerProbabilities = BTreeMap<Decision, f64>;

/// The answers' probabilities of a prediction, renormalised over the answers it allows.
pub fn probabilities(p: &Prediction) -> AnswerProbabilities {
    let total = log_sum_exp(p.logprobs.values().copied());
    p.logprobs.iter().map(|(&d, &lp)| (d, (lp - total).exp())).collect()
}

/// The content-free inputs of contextual calibration: each stands for both the context and the
/// question.
pub const CONTENT_FREE: [&str; 3] = ["N/A", "", "[MASK]"];

/// The model's prior over the answers under `options`' prompt: the renormalised probabilities
/// after prompts whose context and question are content-free ([`CONTENT_FREE`]), averaged —
/// contextual calibration's estimate of the label bias (Zhao et al., 2021).
///
/// Errors: the model's, as [`predict`].
pub fn content_free<B: Backend>(
    model: &Llama<B>,
    tokenizer: &Tokenizer,
    options: &PredictOptions,
) -> Result<AnswerProbabilities> {
    let items: Vec<TestItem> = CONTENT_FREE
        .iter()
        .enumerate()
        .map(|(i, &text)| TestItem {
            pmid: format!("content-free-{i}"),
            question: text.to_owned(),
            contexts: vec![text.to_owned()],
            year: None,
            meshes: Vec::new(),
            truth: Decision::Yes,
        })
        .collect();
    let predictions = predict(model, tokenizer, &items, options, |_, _| {})?;
    Ok(mean_prediction(&predictions).unwrap_or_default())
}

/// The answer after dividing the probabilities by `prior` (and renormalising): the label bias
/// the prior measured taken out. Ties go to the earlier answer.
pub fn calibrated(p: &Prediction, prior: &AnswerProbabilities) -> Decision {
    let probs = probabilities(p);
    let decisions: Vec<Decision> = probs.keys().copied().collect();
    let scores: Vec<f64> =
        probs.iter().map(|(d, x)| x / prior.get(d).copied().unwrap_or(1.0).max(f64::MIN_POSITIVE)).collect();
    decisions[argmax(&scores)]
}

/// The mean of `predictions`' renormalised probabilities: the label prior as the evaluated
/// inputs themselves show it, no label used (as batch calibration estimates it, Zhou et al.,
/// 2024). `None` for no predictions.
pub fn mean_prediction(predictions: &[Prediction]) -> Option<AnswerProbabilities> {
    if predictions.is_empty() {
        return None;
    }
    let mut prior = AnswerProbabilities::new();
    for p in predictions {
        for (d, x) in probabilities(p) {
            *prior.entry(d).or_default() += x / predictions.len() as f64;
        }
    }
    Some(prior)
}

/// Probability scores of a set of predictions, each with a 95% bootstrap interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbabilityScores {
    /// Mean log-probability of the true answer (renormalised over the allowed answers; 0 is
    /// certainty, `ln ⅓` = −1.10 a uniform guess among three).
    pub gold_logprob: f64,
    /// Its interval.
    pub gold_logprob_ci95: Option<[f64; 2]>,
    /// Mean Brier score over the allowed answers (Σ (p − 1[true])²; 0 best, 2 worst; a
    /// uniform guess among three scores ⅔).
    pub brier: f64,
    /// Its interval.
    pub brier_ci95: Option<[f64; 2]>,
    /// The content-free prior the calibration divided by (`None`: not calibrated).
    pub prior: Option<AnswerProbabilities>,
    /// Accuracy and macro-F1 after contextual calibration, with their intervals.
    pub calibrated: Option<Metrics>,
    /// The calibrated answers' share of each answer.
    pub calibrated_share: Option<AnswerProbabilities>,
    /// The mean prediction over the evaluated items ([`mean_prediction`]; no label used).
    #[serde(default)]
    pub mean_prior: Option<AnswerProbabilities>,
    /// Accuracy and macro-F1 after dividing by `mean_prior`, with their intervals: the bias
    /// the model shows on these very inputs taken out, so an answer reflects how the item
    /// moves the model, not which label it leans to.
    #[serde(default)]
    pub mean_calibrated: Option<Metrics>,
}

/// [`ProbabilityScores`] of `predictions`, calibrated with `prior` when given.
pub fn probability_scores(predictions: &[Prediction], prior: Option<&AnswerProbabilities>) -> ProbabilityScores {
    let mut gold = Vec::with_capacity(predictions.len());
    let mut brier = Vec::with_capacity(predictions.len());
    for p in predictions {
        let probs = probabilities(p);
        let truth = probs.get(&p.truth).copied().unwrap_or(0.0);
        gold.push(truth.max(f64::MIN_POSITIVE).ln());
        brier.push(probs.iter().map(|(&d, &x)| (x - if d == p.truth { 1.0 } else { 0.0 }).powi(2)).sum::<f64>());
    }
    let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
    let calibrated_answers: Option<Vec<Decision>> =
        prior.map(|q| predictions.iter().map(|p| calibrated(p, q)).collect());
    let truth: Vec<Decision> = predictions.iter().map(|p| p.truth).collect();
    let n = predictions.len().max(1) as f64;
    let mean_prior = mean_prediction(predictions);
    let mean_calibrated = mean_prior.as_ref().map(|q| {
        let answers: Vec<Decision> = predictions.iter().map(|p| calibrated(p, q)).collect();
        metrics(&truth, &answers)
    });
    ProbabilityScores {
        gold_logprob: mean(&gold),
        gold_logprob_ci95: mean_ci95(&gold),
        brier: mean(&brier),
        brier_ci95: mean_ci95(&brier),
        prior: prior.cloned(),
        calibrated: calibrated_answers.as_ref().map(|c| metrics(&truth, c)),
        calibrated_share: calibrated_answers
            .as_ref()
            .map(|c| Decision::ALL.iter().map(|&d| (d, c.iter().filter(|&&x| x == d).count() as f64 / n)).collect()),
        mean_prior,
        mean_calibrated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::{Maybe, No, Yes};

    fn prediction(truth: Decision, logprobs: &[(Decision, f64)]) -> Prediction {
        let logprobs: BTreeMap<Decision, f64> = logprobs.iter().copied().collect();
        let values: Vec<f64> = logprobs.values().copied().collect();
        let decision = logprobs.keys().copied().nth(argmax(&values)).unwrap_or(Yes);
        Prediction { pmid: "1".into(), truth, decision, logprobs, truncated: false }
    }

    #[test]
    fn scores_follow_their_definitions() {
        // p = (0.5, 0.3, 0.2) after renormalisation (the log-probabilities sum to less than 1).
        let p = prediction(No, &[(Yes, (0.25f64).ln()), (No, (0.15f64).ln()), (Maybe, (0.1f64).ln())]);
        let probs = probabilities(&p);
        assert!((probs[&Yes] - 0.5).abs() < 1e-12 && (probs[&No] - 0.3).abs() < 1e-12);
        let s = probability_scores(std::slice::from_ref(&p), None);
        assert!((s.gold_logprob - 0.3f64.ln()).abs() < 1e-12);
        // (0.5 − 0)² + (0.3 − 1)² + (0.2 − 0)² = 0.25 + 0.49 + 0.04.
        assert!((s.brier - 0.78).abs() < 1e-12);
        assert!(s.calibrated.is_none());
        // A prior leaning to "yes" (0.8) turns 0.5 / 0.8 below 0.3 / 0.1: calibrated "no".
        let prior: AnswerProbabilities = [(Yes, 0.8), (No, 0.1), (Maybe, 0.1)].into();
        assert_eq!(calibrated(&p, &prior), No);
        let s = probability_scores(&[p], Some(&prior));
        assert_eq!(s.calibrated.map(|m| m.accuracy), Some(1.0));
    }

    #[test]
    fn the_mean_prediction_takes_out_a_bias_every_item_shares() {
        // Every item leans to "no"; the truly-yes items lean a little less.
        let lean = |truth, yes: f64| prediction(truth, &[(Yes, yes.ln()), (No, (1.0 - yes).ln())]);
        let predictions = [lean(Yes, 0.40), lean(Yes, 0.35), lean(No, 0.20), lean(No, 0.25)];
        let s = probability_scores(&predictions, None);
        let prior = s.mean_prior.unwrap();
        assert!((prior[&Yes] - 0.30).abs() < 1e-12 && (prior[&No] - 0.70).abs() < 1e-12);
        assert_eq!(metrics(&[Yes, Yes, No, No], &[No; 4]).accuracy, 0.5, "raw: always no");
        assert_eq!(s.mean_calibrated.unwrap().accuracy, 1.0);
        assert!(mean_prediction(&[]).is_none());
    }

    #[test]
    fn yes_no_predictions_are_scored_over_two_answers() {
        let p = prediction(Yes, &[(Yes, (0.2f64).ln()), (No, (0.2f64).ln())]);
        assert_eq!(probabilities(&p).len(), 2);
        let s = probability_scores(&[p], None);
        assert!((s.gold_logprob - 0.5f64.ln()).abs() < 1e-12);
        assert!((s.brier - 0.5).abs() < 1e-12);
    }
}
