//! One evaluation as a file (`metrics.json`): its settings, report and every prediction, so
//! that two evaluations of the same items can be compared item by item.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pubmedqa::{Answers, Decision, Prediction, PromptStyle, Report};
use crate::stats::{Comparison, compare};

/// An evaluation of one model on one benchmark, as `kailin eval` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// `pubmedqa` or `bioasq`.
    pub benchmark: String,
    /// The items' source (`PQA-L official test`, or the BioASQ batch files).
    pub split: String,
    /// The model evaluated.
    pub model: PathBuf,
    /// Items evaluated.
    pub items: usize,
    /// Items in the split.
    pub items_in_split: usize,
    /// Whether only the first `items` were evaluated.
    pub limited: bool,
    /// The prompt's layout.
    pub style: PromptStyle,
    /// The answers allowed.
    pub answers: Answers,
    /// Seconds the predictions took.
    pub seconds: f64,
    /// Everything measured.
    pub report: Report,
    /// Every prediction, in item order.
    pub predictions: Vec<Prediction>,
}

impl Evaluation {
    /// The file name in an evaluation's directory.
    pub const FILE: &'static str = "metrics.json";

    /// Reads `DIR/metrics.json`.
    ///
    /// Errors: [`Error::Data`] naming the file when it is missing or not an evaluation (one
    /// written before predictions carried their true answers included).
    pub fn read(dir: impl AsRef<Path>) -> Result<Evaluation> {
        let path = dir.as_ref().join(Self::FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Data {
            path: path.clone(),
            message: format!("cannot read ({e}): is this the --out of `kailin eval`?"),
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Data {
            path: path.clone(),
            message: format!(
                "line {}: not an evaluation of this kailin ({e}); an older one is re-made by running `kailin eval` again",
                e.line()
            ),
        })
    }

    /// Writes `DIR/metrics.json` (atomically).
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<()> {
        let path = dir.as_ref().join(Self::FILE);
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Data { path: path.clone(), message: format!("cannot serialise: {e}") })?;
        Ok(kailin_core::write_atomic(&path, &json)?)
    }

    /// The paired comparison of `self` (a) and `b` on their common items.
    ///
    /// Errors: [`Error::Incomparable`] naming the first difference when the two are not of the
    /// same benchmark, split, setting, prompt layout, answers and items (same ids, same order,
    /// same true answers).
    pub fn compare(&self, b: &Evaluation) -> Result<Comparison> {
        let a = self;
        let differs =
            |what: &str, x: String, y: String| Err(Error::Incomparable(format!("{what} differs: {x} in a, {y} in b")));
        if a.benchmark != b.benchmark {
            return differs("the benchmark", a.benchmark.clone(), b.benchmark.clone());
        }
        if a.split != b.split {
            return differs("the split", a.split.clone(), b.split.clone());
        }
        if a.report.setting != b.report.setting {
            return differs("the setting", a.report.setting.as_str().into(), b.report.setting.as_str().into());
        }
        if a.style != b.style {
            return differs("the prompt style", format!("{:?}", a.style), format!("{:?}", b.style));
        }
        if a.answers != b.answers {
            return differs("the answers allowed", format!("{:?}", a.answers), format!("{:?}", b.answers));
        }
        if a.predictions.len() != b.predictions.len() {
            return differs("the number of items", a.predictions.len().to_string(), b.predictions.len().to_string());
        }
        if let Some((i, (x, y))) = a
            .predictions
            .iter()
            .zip(&b.predictions)
            .enumerate()
            .find(|(_, (x, y))| x.pmid != y.pmid || x.truth != y.truth)
        {
            return differs(
                &format!("item {}", i + 1),
                format!("{} ({})", x.pmid, x.truth.as_str()),
                format!("{} ({})", y.pmid, y.truth.as_str()),
            );
        }
        let pick = |e: &Evaluation| e.predictions.iter().map(|p| p.decision).collect::<Vec<Decision>>();
        let truth: Vec<Decision> = a.predictions.iter().map(|p| p.truth).collect();
        Ok(compare(&truth, &pick(a), &pick(b)))
    }
}

/// What an evaluation is of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Benchmark {
    /// `pubmedqa` or `bioasq`.
    pub name: String,
    /// The items' source.
    pub split: String,
    /// Items in the split (the items evaluated may be its first few).
    pub items_in_split: usize,
}

/// Evaluates `model` (read from `model_path`) on `items` of `benchmark`: the predictions
/// ([`predict`](crate::predict)), the content-free prior ([`content_free`](crate::content_free))
/// and the [`Report`] calibrated with it. `on_progress(done, total)` after each batch.
///
/// Errors: those of [`predict`](crate::predict) and [`report`](crate::report).
pub fn evaluate<B: burn::prelude::Backend>(
    model: &kailin_lm::Llama<B>,
    tokenizer: &kailin_lm::Tokenizer,
    model_path: &Path,
    benchmark: &Benchmark,
    items: &[crate::TestItem],
    options: &crate::PredictOptions,
    on_progress: impl FnMut(usize, usize),
) -> Result<Evaluation> {
    let start = std::time::Instant::now();
    let predictions = crate::predict(model, tokenizer, items, options, on_progress)?;
    let prior = crate::content_free(model, tokenizer, options)?;
    let seconds = start.elapsed().as_secs_f64();
    let report = crate::report(items, &predictions, options.setting, Some(&prior))?;
    Ok(Evaluation {
        benchmark: benchmark.name.clone(),
        split: benchmark.split.clone(),
        model: model_path.to_owned(),
        items: items.len(),
        items_in_split: benchmark.items_in_split,
        limited: items.len() < benchmark.items_in_split,
        style: options.style,
        answers: options.answers,
        seconds,
        report,
        predictions,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;
    use crate::pubmedqa::{Setting, TestItem};
    use Decision::{Maybe, No, Yes};

    fn evaluation(decisions: &[Decision]) -> Evaluation {
        let truth = [Yes, No, Maybe, Yes];
        let items: Vec<TestItem> = truth
            .iter()
            .enumerate()
            .map(|(i, &t)| TestItem {
                pmid: i.to_string(),
                question: "Q?".into(),
                contexts: vec![],
                year: Some(2010),
                meshes: vec![],
                truth: t,
            })
            .collect();
        let predictions: Vec<Prediction> = items
            .iter()
            .zip(decisions)
            .map(|(i, &d)| Prediction {
                pmid: i.pmid.clone(),
                truth: i.truth,
                decision: d,
                logprobs: Decision::ALL
                    .iter()
                    .map(|&x| (x, if x == d { -0.1 } else { -3.0 }))
                    .collect::<BTreeMap<_, _>>(),
                truncated: false,
            })
            .collect();
        Evaluation {
            benchmark: "pubmedqa".into(),
            split: "PQA-L official test".into(),
            model: "m".into(),
            items: 4,
            items_in_split: 4,
            limited: false,
            style: PromptStyle::Chat,
            answers: Answers::YesNoMaybe,
            seconds: 1.0,
            report: crate::report(&items, &predictions, Setting::ReasoningRequired, None).unwrap(),
            predictions,
        }
    }

    #[test]
    fn an_evaluation_compared_with_itself_differs_by_nothing() {
        let a = evaluation(&[Yes, Yes, Maybe, No]);
        let dir = tempfile::tempdir().unwrap();
        a.write(dir.path()).unwrap();
        let back = Evaluation::read(dir.path()).unwrap();
        assert_eq!(back, a);
        let c = back.compare(&a).unwrap();
        assert_eq!((c.n, c.accuracy_diff, c.mcnemar_p, c.discordant), (4, 0.0, 1.0, [0, 0]));
        let b = evaluation(&[Yes, No, Maybe, Yes]);
        assert_eq!(a.compare(&b).unwrap().discordant, [0, 2]);
    }

    #[test]
    fn evaluations_of_other_items_or_settings_are_refused() {
        let a = evaluation(&[Yes, Yes, Maybe, No]);
        let mut b = a.clone();
        b.report.setting = Setting::QuestionOnly;
        let err = a.compare(&b).unwrap_err().to_string();
        assert!(err.contains("the setting differs: reasoning-required in a, question-only in b"), "{err}");
        let mut b = a.clone();
        b.predictions[2].pmid = "9".into();
        let err = a.compare(&b).unwrap_err().to_string();
        assert!(err.contains("item 3 differs: 2 (maybe) in a, 9 (maybe) in b"), "{err}");
        let mut b = a.clone();
        b.predictions.pop();
        assert!(a.compare(&b).unwrap_err().to_string().contains("the number of items differs: 4 in a, 3 in b"));
        let mut b = a.clone();
        b.benchmark = "bioasq".into();
        assert!(a.compare(&b).unwrap_err().to_string().contains("the benchmark differs"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("metrics.json"), "{\"benchmark\": 1}").unwrap();
        let err = Evaluation::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("metrics.json: line 1: not an evaluation of this kailin"), "{err}");
    }
}
