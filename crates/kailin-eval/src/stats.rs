//! Uncertainty: seeded percentile-bootstrap intervals, paired comparisons of two sets of
//! answers to the same items, and McNemar's exact test.

use serde::{Deserialize, Serialize};

use crate::pubmedqa::Decision;

/// Bootstrap resamples behind every interval.
pub const RESAMPLES: usize = 10_000;

/// The seed of every interval (the same seed gives the same interval on every platform).
pub const BOOTSTRAP_SEED: u64 = 0x6b61_696c_696e_0095;

/// 95% percentile-bootstrap intervals of `K` statistics at once: `resamples` draws of `n` item
/// indices with replacement (seeded), each statistic computed on every draw, and the 2.5th and
/// 97.5th percentiles of each taken (linear interpolation between order statistics, numpy's
/// default). The same draws serve all `K` statistics, so statistics of a pair (a difference)
/// are paired. `None` for no items.
///
/// ```
/// use kailin_eval::bootstrap_ci95;
///
/// let right = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0];
/// let mean = |idx: &[usize]| [idx.iter().map(|&i| right[i]).sum::<f64>() / idx.len() as f64];
/// let [[low, high]] = bootstrap_ci95(right.len(), 10_000, 7, mean).unwrap();
/// assert!(low < 0.75 && 0.75 < high);
/// ```
pub fn bootstrap_ci95<const K: usize>(
    n: usize,
    resamples: usize,
    seed: u64,
    mut stat: impl FnMut(&[usize]) -> [f64; K],
) -> Option<[[f64; 2]; K]> {
    if n == 0 || resamples == 0 {
        return None;
    }
    let mut rng = kailin_core::SplitMix64::new(seed);
    let mut idx = vec![0usize; n];
    let mut values: [Vec<f64>; K] = std::array::from_fn(|_| Vec::with_capacity(resamples));
    for _ in 0..resamples {
        for i in idx.iter_mut() {
            *i = rng.below(n as u64) as usize;
        }
        for (v, x) in values.iter_mut().zip(stat(&idx)) {
            v.push(x);
        }
    }
    Some(values.map(|mut v| {
        v.sort_by(f64::total_cmp);
        [quantile(&v, 0.025), quantile(&v, 0.975)]
    }))
}

/// The `q` quantile of sorted values (linear interpolation between order statistics; `NaN`
/// for none).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else { return f64::NAN };
    let h = last as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The interval of a mean of per-item values (accuracy of 0/1 values, mean log-probability,
/// Brier score) with [`RESAMPLES`] and [`BOOTSTRAP_SEED`].
pub fn mean_ci95(values: &[f64]) -> Option<[f64; 2]> {
    bootstrap_ci95(values.len(), RESAMPLES, BOOTSTRAP_SEED, |idx| [mean_at(values, idx)]).map(|[c]| c)
}

fn mean_at(values: &[f64], idx: &[usize]) -> f64 {
    idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64
}

fn slot(d: Decision) -> usize {
    match d {
        Decision::Yes => 0,
        Decision::No => 1,
        Decision::Maybe => 2,
    }
}

/// Accuracy and macro-F1 (scikit-learn's: over the answers present in the truth or the
/// predictions) of the items at `idx` (repeats count), from a confusion table.
pub(crate) fn scores_at(truth: &[Decision], pred: &[Decision], idx: &[usize]) -> [f64; 2] {
    let mut table = [[0u32; 3]; 3];
    for &i in idx {
        table[slot(truth[i])][slot(pred[i])] += 1;
    }
    let correct: u32 = (0..3).map(|k| table[k][k]).sum();
    let (mut f1, mut present) = (0.0, 0);
    for (k, row) in table.iter().enumerate() {
        let support: u32 = row.iter().sum();
        let predicted: u32 = table.iter().map(|r| r[k]).sum();
        if support + predicted == 0 {
            continue;
        }
        present += 1;
        // F1 = 2 tp / (support + predicted), 0 when tp is 0.
        f1 += 2.0 * f64::from(row[k]) / f64::from(support + predicted);
    }
    let n = idx.len().max(1) as f64;
    [f64::from(correct) / n, if present == 0 { 0.0 } else { f1 / f64::from(present) }]
}

/// The intervals of accuracy and macro-F1 of `pred` against `truth` (parallel slices).
pub(crate) fn scores_ci95(truth: &[Decision], pred: &[Decision]) -> Option<[[f64; 2]; 2]> {
    bootstrap_ci95(truth.len(), RESAMPLES, BOOTSTRAP_SEED, |idx| scores_at(truth, pred, idx))
}

/// McNemar's exact test (two-sided) of paired right/wrong outcomes: `b` items only the first
/// got right, `c` only the second — twice the smaller tail of Binomial(b + c, ½), at most 1;
/// 1 when no item is discordant.
///
/// ```
/// // 1 against 5 discordant items: 2 · P(X ≤ 1), X ~ Bin(6, ½) = 2 · 7/64.
/// assert!((kailin_eval::mcnemar_exact(1, 5) - 14.0 / 64.0).abs() < 1e-12);
/// assert_eq!(kailin_eval::mcnemar_exact(0, 0), 1.0);
/// ```
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    // P(X ≤ min(b, c)) summed in log space (no underflow of ½ⁿ).
    let mut log_pmf = -(n as f64) * std::f64::consts::LN_2;
    let mut tail = 0.0;
    for i in 0..=b.min(c) {
        tail += log_pmf.exp();
        log_pmf += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
    }
    (2.0 * tail).min(1.0)
}

/// A paired comparison of two sets of answers (`a`, then `b`) to the same items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Items.
    pub n: usize,
    /// Accuracy of `a`.
    pub accuracy_a: f64,
    /// Accuracy of `b`.
    pub accuracy_b: f64,
    /// `accuracy_b − accuracy_a`.
    pub accuracy_diff: f64,
    /// Its 95% paired-bootstrap interval (the same resampled items for both).
    pub accuracy_diff_ci95: Option<[f64; 2]>,
    /// Macro-F1 of `a`.
    pub macro_f1_a: f64,
    /// Macro-F1 of `b`.
    pub macro_f1_b: f64,
    /// `macro_f1_b − macro_f1_a`.
    pub macro_f1_diff: f64,
    /// Its 95% paired-bootstrap interval.
    pub macro_f1_diff_ci95: Option<[f64; 2]>,
    /// McNemar's exact two-sided p on the discordant items.
    pub mcnemar_p: f64,
    /// `[a right & b wrong, a wrong & b right]`.
    pub discordant: [usize; 2],
}

/// Compares `a` and `b`, answers to the same items whose true answers are `truth` (parallel
/// slices, cut to the shortest).
pub fn compare(truth: &[Decision], a: &[Decision], b: &[Decision]) -> Comparison {
    let n = truth.len().min(a.len()).min(b.len());
    let (truth, a, b) = (&truth[..n], &a[..n], &b[..n]);
    let all: Vec<usize> = (0..n).collect();
    let ([acc_a, f1_a], [acc_b, f1_b]) = (scores_at(truth, a, &all), scores_at(truth, b, &all));
    let ci = bootstrap_ci95(n, RESAMPLES, BOOTSTRAP_SEED, |idx| {
        let ([acc_a, f1_a], [acc_b, f1_b]) = (scores_at(truth, a, idx), scores_at(truth, b, idx));
        [acc_b - acc_a, f1_b - f1_a]
    });
    let only_a = (0..n).filter(|&i| a[i] == truth[i] && b[i] != truth[i]).count();
    let only_b = (0..n).filter(|&i| a[i] != truth[i] && b[i] == truth[i]).count();
    Comparison {
        n,
        accuracy_a: acc_a,
        accuracy_b: acc_b,
        accuracy_diff: acc_b - acc_a,
        accuracy_diff_ci95: ci.map(|c| c[0]),
        macro_f1_a: f1_a,
        macro_f1_b: f1_b,
        macro_f1_diff: f1_b - f1_a,
        macro_f1_diff_ci95: ci.map(|c| c[1]),
        mcnemar_p: mcnemar_exact(only_a, only_b),
        discordant: [only_a, only_b],
    }
}

impl Comparison {
    /// Whether the accuracy difference is detectable: its interval excludes zero and
    /// McNemar's p is below 0.05 (both, so that neither alone decides).
    pub fn detectable(&self) -> bool {
        self.mcnemar_p < 0.05 && self.accuracy_diff_ci95.is_some_and(|[lo, hi]| lo > 0.0 || hi < 0.0)
    }

    /// In words, `b` against `a` by name: "kailin − control: +1.2 points [−3.1, +5.5],
    /// McNemar p = 0.61 (n = 500): no detectable difference; macro-F1 +0.004 [−0.030, +0.038]"
    /// (the verdict is the accuracy's; macro-F1 follows with its paired interval, since a model
    /// that answers the majority class wins on accuracy and loses on macro-F1).
    pub fn describe(&self, a: &str, b: &str) -> String {
        let pts = |x: f64| format!("{:+.1}", 100.0 * x).replace('-', "−");
        let f1 = |x: f64| format!("{x:+.3}").replace('-', "−");
        let ci = self.accuracy_diff_ci95.map_or_else(|| "[–]".to_owned(), |[l, h]| format!("[{}, {}]", pts(l), pts(h)));
        let f1_ci =
            self.macro_f1_diff_ci95.map_or_else(|| "[–]".to_owned(), |[l, h]| format!("[{}, {}]", f1(l), f1(h)));
        let verdict = if !self.detectable() {
            "no detectable difference".to_owned()
        } else if self.accuracy_diff > 0.0 {
            format!("{b} ahead")
        } else {
            format!("{a} ahead")
        };
        format!(
            "{b} − {a}: {} points {ci}, McNemar p = {:.2} (n = {}): {verdict}; macro-F1 {} {f1_ci}",
            pts(self.accuracy_diff),
            self.mcnemar_p,
            self.n,
            f1(self.macro_f1_diff)
        )
    }
}

/// A paired comparison of two scores of the same items (`a`, then `b`): a reward before and
/// after training, on the same documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedMeans {
    /// Items.
    pub n: usize,
    /// Mean of `a`.
    pub mean_a: f64,
    /// Mean of `b`.
    pub mean_b: f64,
    /// `mean_b − mean_a`.
    pub diff: f64,
    /// Its 95% paired-bootstrap interval ([`RESAMPLES`], [`BOOTSTRAP_SEED`]).
    pub diff_ci95: [f64; 2],
    /// Items where `b` scored above `a`.
    pub wins: usize,
    /// Items where `b` scored below `a`.
    pub losses: usize,
    /// Items where they scored the same.
    pub ties: usize,
}

impl PairedMeans {
    /// Compares `b` with `a`, scores of the same items (parallel slices, cut to the
    /// shortest); `None` for no items.
    ///
    /// ```
    /// let before = [0.2, 0.4, 0.1, 0.5];
    /// let after = [0.3, 0.4, 0.3, 0.6];
    /// let p = kailin_eval::PairedMeans::of(&before, &after).unwrap();
    /// assert_eq!((p.n, p.wins, p.losses, p.ties), (4, 3, 0, 1));
    /// assert!((p.diff - 0.1).abs() < 1e-12 && p.diff_ci95[0] >= 0.0);
    /// ```
    pub fn of(a: &[f64], b: &[f64]) -> Option<Self> {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
        let diff_ci95 = mean_ci95(&diffs)?;
        let all: Vec<usize> = (0..n).collect();
        let count = |f: fn(&f64) -> bool| diffs.iter().filter(|d| f(d)).count();
        Some(PairedMeans {
            n,
            mean_a: mean_at(a, &all),
            mean_b: mean_at(b, &all),
            diff: mean_at(&diffs, &all),
            diff_ci95,
            wins: count(|d| *d > 0.0),
            losses: count(|d| *d < 0.0),
            ties: count(|d| *d == 0.0),
        })
    }

    /// The share of items `b` won, of those not tied (`None` when every item tied).
    pub fn win_rate(&self) -> Option<f64> {
        let decided = self.wins + self.losses;
        (decided > 0).then(|| self.wins as f64 / decided as f64)
    }

    /// Whether the interval of the difference excludes zero.
    pub fn detectable(&self) -> bool {
        self.diff_ci95[0] > 0.0 || self.diff_ci95[1] < 0.0
    }

    /// In words, `b` against `a` by name: "after − before: +0.012 [−0.004, +0.029] (n = 40;
    /// 14 wins, 9 losses, 17 ties): no detectable difference".
    pub fn describe(&self, a: &str, b: &str) -> String {
        let v = |x: f64| format!("{x:+.3}").replace('-', "−");
        let verdict = match (self.detectable(), self.diff > 0.0) {
            (false, _) => "no detectable difference".to_owned(),
            (true, true) => format!("{b} higher"),
            (true, false) => format!("{a} higher"),
        };
        format!(
            "{b} − {a}: {} [{}, {}] (n = {}; {} wins, {} losses, {} ties): {verdict}",
            v(self.diff),
            v(self.diff_ci95[0]),
            v(self.diff_ci95[1]),
            self.n,
            self.wins,
            self.losses,
            self.ties
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use Decision::{Maybe, No, Yes};

    /// The exact bootstrap distribution of a statistic of `n` items: every one of the nⁿ
    /// equally likely resamples, sorted.
    fn exact_distribution(n: usize, stat: impl Fn(&[usize]) -> f64) -> Vec<f64> {
        let total = n.pow(n as u32);
        let mut out: Vec<f64> = (0..total)
            .map(|mut code| {
                let idx: Vec<usize> = (0..n)
                    .map(|_| {
                        let i = code % n;
                        code /= n;
                        i
                    })
                    .collect();
                stat(&idx)
            })
            .collect();
        out.sort_by(f64::total_cmp);
        out
    }

    #[test]
    fn bootstrap_intervals_match_the_exact_bootstrap_distribution() {
        let truth = [Yes, No, Maybe, Yes, No, Yes];
        let pred = [Yes, Yes, Maybe, No, No, Yes];
        for k in 0..2 {
            let exact = exact_distribution(truth.len(), |idx| scores_at(&truth, &pred, idx)[k]);
            let [lo, hi] = scores_ci95(&truth, &pred).unwrap()[k];
            // The resampled percentiles fall between the exact distribution's 2nd and 3rd
            // (97th and 98th) percentiles: the 10,000 draws estimate them to about ±0.3
            // percentile points.
            assert!(quantile(&exact, 0.02) <= lo && lo <= quantile(&exact, 0.03), "stat {k}: low {lo}");
            assert!(quantile(&exact, 0.97) <= hi && hi <= quantile(&exact, 0.98), "stat {k}: high {hi}");
        }
        // Seeded: the same interval twice.
        assert_eq!(scores_ci95(&truth, &pred), scores_ci95(&truth, &pred));
    }

    #[test]
    fn a_large_sample_interval_is_the_normal_one() {
        // 165 of 500 right: the normal interval is ±1.96 √(p(1−p)/n) = ±4.12 points.
        let values: Vec<f64> = (0..500).map(|i| if i < 165 { 1.0 } else { 0.0 }).collect();
        let [lo, hi] = mean_ci95(&values).unwrap();
        let half = 1.96 * (0.33f64 * 0.67 / 500.0).sqrt();
        assert!((lo - (0.33 - half)).abs() < 0.004 && (hi - (0.33 + half)).abs() < 0.004, "[{lo}, {hi}]");
        assert_eq!(mean_ci95(&[]), None);
    }

    #[test]
    fn confusion_scores_equal_the_metrics() {
        let truth = [Yes, Yes, No, Maybe, No];
        let pred = [Yes, Maybe, No, Yes, Yes];
        let m = crate::metrics(&truth, &pred);
        let [acc, f1] = scores_at(&truth, &pred, &[0, 1, 2, 3, 4]);
        assert_eq!(acc, m.accuracy);
        assert!((f1 - m.macro_f1).abs() < 1e-12);
    }

    #[test]
    fn mcnemar_is_the_exact_binomial_test() {
        // scipy.stats.binomtest(k, n, 0.5).pvalue for k = min(b, c), n = b + c.
        assert!((mcnemar_exact(0, 10) - 2.0 / 1024.0).abs() < 1e-15);
        assert!((mcnemar_exact(5, 1) - 0.21875).abs() < 1e-15);
        assert!((mcnemar_exact(2, 12) - 0.012_939_453_125).abs() < 1e-12);
        assert_eq!(mcnemar_exact(3, 3), 1.0);
        // Large n stays finite and symmetric.
        let p = mcnemar_exact(480, 520);
        assert!(p > 0.0 && p < 1.0 && (p - mcnemar_exact(520, 480)).abs() < 1e-15);
    }

    #[test]
    fn a_comparison_with_itself_is_nothing() {
        let truth = [Yes, No, Maybe, Yes];
        let a = [Yes, Yes, Maybe, No];
        let c = compare(&truth, &a, &a);
        assert_eq!((c.accuracy_diff, c.macro_f1_diff, c.mcnemar_p, c.discordant), (0.0, 0.0, 1.0, [0, 0]));
        assert_eq!(c.accuracy_diff_ci95, Some([0.0, 0.0]));
        assert!(!c.detectable());
        assert_eq!(
            c.describe("control", "kailin"),
            "kailin − control: +0.0 points [+0.0, +0.0], McNemar p = 1.00 (n = 4): no detectable difference; \
             macro-F1 +0.000 [+0.000, +0.000]"
        );
        let b = [Yes, No, Maybe, Yes];
        let d = compare(&truth, &a, &b);
        assert_eq!(d.discordant, [0, 2]);
        assert_eq!(d.accuracy_diff, 0.5);
    }
}
