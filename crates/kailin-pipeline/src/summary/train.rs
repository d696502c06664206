//! The training stages' summaries: a trained model's losses and held-out metrics, and DPO's
//! check on held-out documents.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A training stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Training records.
    pub records: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// The first step's loss.
    pub loss_first: Option<f64>,
    /// The last step's loss.
    pub loss_last: Option<f64>,
    /// The last held-out loss.
    pub eval_loss: Option<f64>,
    /// Tokens trained on.
    pub tokens: usize,
    /// Seconds of training.
    pub seconds: f64,
    /// `(step, loss, DPO reward margin)` of every step, for the plots.
    pub curve: Vec<(u64, f64, Option<f64>)>,
    /// Held-out records (never trained on).
    #[serde(default)]
    pub eval_records: usize,
    /// `(step, held-out loss, held-out DPO preference accuracy)` of every evaluation.
    #[serde(default)]
    pub eval_curve: Vec<(u64, f64, Option<f64>)>,
    /// What there is to say about the held-out data (e.g. why there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn metric(metrics: &[(String, f64)], name: &str) -> Option<f64> {
    metrics.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

impl TrainSummary {
    /// The summary of a trainer's report on the `prepared` data.
    pub(crate) fn of(prepared: &crate::stages::Prepared, r: &kailin_train::TrainReport) -> Self {
        let accuracy = |step: u64| {
            r.eval_metrics.iter().find(|(s, _)| *s == step).and_then(|(_, m)| metric(m, "preference_accuracy"))
        };
        TrainSummary {
            records: prepared.records,
            steps: r.steps.len(),
            loss_first: r.steps.first().map(|s| s.loss),
            loss_last: r.steps.last().map(|s| s.loss),
            eval_loss: r.evals.last().map(|e| e.1),
            tokens: r.tokens,
            seconds: r.seconds,
            curve: r.steps.iter().map(|s| (s.step, s.loss, metric(&s.metrics, "reward_margin"))).collect(),
            eval_records: prepared.eval_records,
            eval_curve: r.evals.iter().map(|&(step, loss)| (step, loss, accuracy(step))).collect(),
            note: prepared.note.clone(),
        }
    }

    /// The held-out preference accuracy over steps, in words, the last with its 95% interval
    /// (`None` without one).
    pub fn held_out_accuracy(&self) -> Option<String> {
        let points: Vec<String> = self
            .eval_curve
            .iter()
            .filter_map(|&(step, _, a)| Some(format!("{:.0}% at step {step}", 100.0 * a?)))
            .collect();
        let last = self.eval_curve.last().and_then(|e| e.2)?;
        // The interval of a share of 0/1 outcomes depends only on its count.
        let right = (last * self.eval_records as f64).round() as usize;
        let outcomes: Vec<f64> = (0..self.eval_records).map(|i| f64::from(u8::from(i < right))).collect();
        let ci = kailin_eval::mean_ci95(&outcomes)
            .map_or_else(String::new, |[lo, hi]| format!(" [{:.0}, {:.0}]", 100.0 * lo, 100.0 * hi));
        Some(format!(
            "held-out preference accuracy on {} pairs: {} (last: {:.0}%{ci}, n = {})",
            self.eval_records,
            points.join(", "),
            100.0 * last,
            self.eval_records
        ))
    }
}

/// The `dpo-check` stage: the general agent's questions on held-out documents before and
/// after DPO, each scored with the MeSH rule against its document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpoCheckSummary {
    /// Held-out documents checked.
    pub documents: usize,
    /// Documents they were drawn from (retrieval corpus, outside the generation corpus, with
    /// MeSH terms).
    pub eligible: usize,
    /// The general agent's counts before DPO.
    pub before: kailin_question::Tally,
    /// And after.
    pub after: kailin_question::Tally,
    /// Documents whose two questions were both scored.
    pub scored: usize,
    /// The others, by why (`no question after DPO`, `… before DPO`, `… either time`, or the
    /// rule's outcome: `no_terms`…).
    pub unscored: BTreeMap<String, usize>,
    /// Mean reward before (`a`) and after (`b`), paired, with the interval of the difference.
    pub reward: Option<kailin_eval::PairedMeans>,
}

impl DpoCheckSummary {
    /// The check in words.
    pub fn words(&self) -> String {
        let unscored: Vec<String> = self.unscored.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let unscored = if unscored.is_empty() { String::new() } else { format!(" ({})", unscored.join(", ")) };
        let reward = self.reward.as_ref().map_or_else(
            || "no document scored both ways".to_owned(),
            |r| {
                format!(
                    "mean reward {:.3} before, {:.3} after; {}; win rate {}",
                    r.mean_a,
                    r.mean_b,
                    r.describe("before", "after"),
                    r.win_rate().map_or_else(|| "–".to_owned(), |w| format!("{:.0}%", 100.0 * w))
                )
            },
        );
        format!(
            "{} held-out documents (of {} eligible), {} scored before and after{unscored}: {reward}",
            self.documents, self.eligible, self.scored
        )
    }
}
