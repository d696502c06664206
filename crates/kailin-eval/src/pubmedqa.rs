//! PubMedQA PQA-L: the official test split, prompts, answers by log-probability, metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::prelude::Backend;
use kailin_lm::{ChatMessage, Llama, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A PubMedQA answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// "yes".
    Yes,
    /// "no".
    No,
    /// "maybe".
    Maybe,
}

impl Decision {
    /// The three answers, in the order of [`Prediction::logprobs`].
    pub const ALL: [Decision; 3] = [Decision::Yes, Decision::No, Decision::Maybe];

    /// `yes`, `no` or `maybe`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Yes => "yes",
            Decision::No => "no",
            Decision::Maybe => "maybe",
        }
    }

    /// Parses `yes`, `no` or `maybe` (case and surrounding space ignored).
    pub fn parse(s: &str) -> Option<Decision> {
        Decision::ALL.into_iter().find(|d| s.trim().eq_ignore_ascii_case(d.as_str()))
    }
}

/// What the model sees of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Setting {
    /// The abstract without its conclusion, then the question (the paper's main setting).
    #[default]
    ReasoningRequired,
    /// The question alone.
    QuestionOnly,
}

impl Setting {
    /// `reasoning-required` or `question-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Setting::ReasoningRequired => "reasoning-required",
            Setting::QuestionOnly => "question-only",
        }
    }
}

/// One item of the test split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestItem {
    /// The PMID.
    pub pmid: String,
    /// The question.
    pub question: String,
    /// The abstract's sections without the conclusion.
    pub contexts: Vec<String>,
    /// Publication year, where the record has one.
    pub year: Option<u16>,
    /// MeSH headings by name.
    pub meshes: Vec<String>,
    /// The expert's answer.
    pub truth: Decision,
}

impl TestItem {
    /// The item of a PQA-L record whose true answer is `truth`.
    pub fn from_record(r: kailin_corpus::PubmedqaRecord, truth: Decision) -> TestItem {
        TestItem { pmid: r.pmid, question: r.question, contexts: r.contexts, year: r.year, meshes: r.meshes, truth }
    }
}

/// The paper's publication-year spans (inclusive).
pub const YEAR_SPANS: [(u16, u16); 8] =
    [(1989, 2000), (2001, 2004), (2005, 2007), (2008, 2009), (2010, 2011), (2012, 2013), (2014, 2015), (2016, 2017)];

/// The paper's MeSH subsets: items whose headings include the name.
pub const MESH_SUBSETS: [&str; 6] = ["Female", "Male", "Middle Aged", "Aged", "Adult", "Adolescent"];

/// The name of a year span, e.g. `2001-2004`.
pub fn span_name((from, to): (u16, u16)) -> String {
    format!("{from}-{to}")
}

/// Reads the official test split from a data directory: `pubmedqa/ori_pqal.json` (the
/// records) and `pubmedqa/test_ground_truth.json` (PMID → answer), in PMID order.
pub fn load_test_set(data_dir: impl AsRef<Path>) -> Result<Vec<TestItem>> {
    let dir = data_dir.as_ref().join("pubmedqa");
    load_test_set_from(dir.join("ori_pqal.json"), dir.join("test_ground_truth.json"))
}

/// [`load_test_set`] from the two files.
///
/// Errors: a file missing or malformed; a test PMID without a record; an answer that is not
/// yes/no/maybe; an empty split.
pub fn load_test_set_from(records: impl AsRef<Path>, ground_truth: impl AsRef<Path>) -> Result<Vec<TestItem>> {
    let (records, truth_path) = (records.as_ref(), ground_truth.as_ref());
    let truth = read_labels(truth_path)?;
    if truth.is_empty() {
        return Err(Error::Data { path: truth_path.to_owned(), message: "the test split is empty".into() });
    }
    let (all, _) = kailin_corpus::read_pubmedqa(records, false)?;
    let mut by_pmid: BTreeMap<String, kailin_corpus::PubmedqaRecord> =
        all.into_iter().map(|r| (r.pmid.clone(), r)).collect();
    truth
        .into_iter()
        .map(|(pmid, label)| {
            let r = by_pmid.remove(&pmid).ok_or_else(|| Error::Data {
                path: records.to_owned(),
                message: format!("test PMID {pmid} (from {}) has no record", truth_path.display()),
            })?;
            Ok(TestItem::from_record(r, label))
        })
        .collect()
}

/// Reads a `{PMID: answer}` JSON file (the ground truth, or predictions in the official shape).
pub fn read_labels(path: impl AsRef<Path>) -> Result<BTreeMap<String, Decision>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Data { path: path.to_owned(), message: format!("cannot read: {e}") })?;
    let raw: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| Error::Data {
        path: path.to_owned(),
        message: format!("line {}: not a JSON object of PMID to answer: {e}", e.line()),
    })?;
    raw.into_iter()
        .map(|(pmid, label)| match Decision::parse(&label) {
            Some(d) => Ok((pmid, d)),
            None => Err(Error::Data {
                path: path.to_owned(),
                message: format!("PMID {pmid}: answer {label:?} is not yes, no or maybe"),
            }),
        })
        .collect()
}

/// The answers a benchmark allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answers {
    /// yes, no or maybe (PubMedQA).
    #[default]
    YesNoMaybe,
    /// yes or no (BioASQ's yes/no questions).
    YesNo,
}

impl Answers {
    /// The answers, in the order ties are broken.
    pub fn decisions(self) -> &'static [Decision] {
        match self {
            Answers::YesNoMaybe => &Decision::ALL,
            Answers::YesNo => &Decision::ALL[..2],
        }
    }

    /// The instruction that closes every prompt.
    fn instruction(self) -> &'static str {
        match self {
            Answers::YesNoMaybe => "Answer the question with yes, no or maybe.",
            Answers::YesNo => "Answer the question with yes or no.",
        }
    }
}

/// The user's turn for `item`: the contexts (reasoning-required), the question, the
/// instruction (what [`prompt`] wraps in the chat template; training data in PubMedQA's shape
/// can use it too).
pub fn user_turn(item: &TestItem, setting: Setting) -> String {
    user_turn_cut(item, setting, Answers::YesNoMaybe, None)
}

/// [`user_turn`] for `answers`, with the joined contexts cut to `context_chars` (to fit a
/// model's window).
fn user_turn_cut(item: &TestItem, setting: Setting, answers: Answers, context_chars: Option<usize>) -> String {
    let instruction = answers.instruction();
    match setting {
        Setting::QuestionOnly => format!("Question: {}\n{instruction}", item.question),
        Setting::ReasoningRequired => {
            let joined = item.contexts.join("\n");
            let context = context_chars.map_or(joined.as_str(), |n| kailin_core::cut_chars(&joined, n));
            format!("Context: {context}\nQuestion: {}\n{instruction}", item.question)
        }
    }
}

/// How the prompt is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptStyle {
    /// The user's turn in the model's chat template, the reply opening with the answer (plain
    /// text for a model without a template).
    #[default]
    Chat,
    /// Plain text: the turn followed by `"\nAnswer:"`, the answer after a space.
    Plain,
}

/// The whole prompt text for `item` in `style` (see [`PromptStyle`]), PubMedQA's answers.
pub fn prompt(tokenizer: &Tokenizer, item: &TestItem, setting: Setting, style: PromptStyle) -> Result<String> {
    let options = PredictOptions { setting, style, ..Default::default() };
    prompt_cut(tokenizer, item, &options, None)
}

/// Whether `style` uses the chat template with this tokenizer.
fn uses_chat(tokenizer: &Tokenizer, style: PromptStyle) -> bool {
    style == PromptStyle::Chat && tokenizer.chat_template().is_some()
}

fn prompt_cut(tokenizer: &Tokenizer, item: &TestItem, options: &PredictOptions, cut: Option<usize>) -> Result<String> {
    let turn = user_turn_cut(item, options.setting, options.answers, cut);
    Ok(if uses_chat(tokenizer, options.style) {
        kailin_lm::chat_prompt(tokenizer, &[ChatMessage::user(turn)])?
    } else {
        format!("{turn}\nAnswer:")
    })
}

/// One prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The item (a PMID for PubMedQA, a question id for BioASQ).
    pub pmid: String,
    /// The item's true answer.
    pub truth: Decision,
    /// The answer with the highest log-probability.
    pub decision: Decision,
    /// Of each allowed answer, its log-probability as the reply's first token (summed over its
    /// spellings, e.g. "yes" and "Yes"; not renormalised over the answers).
    pub logprobs: BTreeMap<Decision, f64>,
    /// Whether the context was cut to fit the model.
    pub truncated: bool,
}

/// Options of [`predict`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictOptions {
    /// What the model sees.
    pub setting: Setting,
    /// Prompts per forward pass (prompts are grouped by length).
    pub batch_size: usize,
    /// How the prompt is laid out.
    pub style: PromptStyle,
    /// The answers allowed.
    pub answers: Answers,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            setting: Setting::ReasoningRequired,
            batch_size: 8,
            style: PromptStyle::Chat,
            answers: Answers::YesNoMaybe,
        }
    }
}

/// The first token of each spelling of each answer after a prompt: found by tokenising the
/// prompt with the answer appended (so a tokenizer that merges across the boundary is
/// handled), and checked to be distinct between answers.
fn answer_tokens(tokenizer: &Tokenizer, prompt: &str, chat: bool, answers: Answers) -> Result<Vec<Vec<u32>>> {
    let base = tokenizer.encode(prompt, true)?;
    let decisions = answers.decisions();
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); decisions.len()];
    for (slot, &d) in out.iter_mut().zip(decisions) {
        let word = d.as_str();
        let capital = format!("{}{}", word[..1].to_uppercase(), &word[1..]);
        for spelling in [word.to_owned(), capital] {
            let text = if chat { spelling } else { format!(" {spelling}") };
            let ids = tokenizer.encode(&format!("{prompt}{text}"), true)?;
            let first = if ids.len() > base.len() && ids[..base.len()] == base[..] {
                ids[base.len()]
            } else {
                // The tokenizer merged across the boundary: the spelling's own first token.
                match tokenizer.encode(&text, false)?.first() {
                    Some(&t) => t,
                    None => continue,
                }
            };
            // A token that does not spell the answer's beginning (an unknown-word token) would
            // stand for anything: left out.
            let piece = tokenizer.decode(&[first], false)?;
            let piece = piece.trim();
            let spells = !piece.is_empty() && text.trim().starts_with(piece);
            if spells && !slot.contains(&first) {
                slot.push(first);
            }
        }
    }
    for (i, a) in out.iter().enumerate() {
        if a.is_empty() {
            return Err(Error::Answers(format!(
                "no token of the vocabulary spells the beginning of {:?}",
                Decision::ALL[i].as_str()
            )));
        }
        for (j, b) in out.iter().enumerate().skip(i + 1) {
            if let Some(t) = a.iter().find(|t| b.contains(t)) {
                return Err(Error::Answers(format!(
                    "{:?} and {:?} both start with token {t}",
                    Decision::ALL[i].as_str(),
                    Decision::ALL[j].as_str()
                )));
            }
        }
    }
    Ok(out)
}

/// The index of the largest value; ties go to the earlier one (yes, no, maybe), as an argmax
/// would.
pub(crate) fn argmax(xs: &[f64]) -> usize {
    (0..xs.len()).fold(0, |b, k| if xs[k] > xs[b] { k } else { b })
}

pub(crate) fn log_sum_exp(xs: impl Iterator<Item = f64>) -> f64 {
    let xs: Vec<f64> = xs.collect();
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Answers every item: the answer whose first token the model finds most likely after the
/// prompt (one forward pass per prompt, only the last position projected to the vocabulary).
/// A prompt longer than the model's window has its context cut from the end until it fits
/// (flagged in [`Prediction::truncated`]). `on_progress(done, total)` after each batch.
/// Predictions are in the order of `items`.
///
/// Errors: the model's; [`Error::Answers`] when two answers share a first token;
/// [`Error::TooLong`] when the question alone does not fit.
pub fn predict<B: Backend>(
    model: &Llama<B>,
    tokenizer: &Tokenizer,
    items: &[TestItem],
    options: &PredictOptions,
    mut on_progress: impl FnMut(usize, usize),
) -> Result<Vec<Prediction>> {
    let Some(first) = items.first() else { return Ok(Vec::new()) };
    let chat = uses_chat(tokenizer, options.style);
    let decisions = options.answers.decisions();
    let answers = answer_tokens(tokenizer, &prompt_cut(tokenizer, first, options, None)?, chat, options.answers)?;
    let flat: Vec<u32> = answers.iter().flatten().copied().collect();
    let limit = model.max_positions();
    let mut encoded = Vec::with_capacity(items.len());
    for item in items {
        let mut ids = tokenizer.encode(&prompt_cut(tokenizer, item, options, None)?, true)?;
        let mut truncated = false;
        if ids.len() >= limit {
            // Cut the context in proportion to the excess, then step down until it fits.
            let chars = item.contexts.iter().map(|c| c.len() + 1).sum::<usize>();
            let mut keep = chars * (limit - 1) / ids.len();
            loop {
                ids = tokenizer.encode(&prompt_cut(tokenizer, item, options, Some(keep))?, true)?;
                if ids.len() < limit {
                    break;
                }
                if keep == 0 {
                    return Err(Error::TooLong { pmid: item.pmid.clone(), tokens: ids.len(), limit });
                }
                keep = keep * 9 / 10;
            }
            truncated = true;
        }
        encoded.push((ids, truncated));
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| encoded[i].0.len());
    let mut out: Vec<Option<Prediction>> = vec![None; items.len()];
    let mut done = 0;
    for chunk in order.chunks(options.batch_size.max(1)) {
        let prompts: Vec<Vec<u32>> = chunk.iter().map(|&i| encoded[i].0.clone()).collect();
        let rows = kailin_lm::next_token_logprobs(model, &prompts, &flat)?;
        for (&i, row) in chunk.iter().zip(rows) {
            let mut at = 0;
            let mut logprobs = Vec::with_capacity(answers.len());
            for a in &answers {
                logprobs.push(log_sum_exp(row[at..at + a.len()].iter().copied()));
                at += a.len();
            }
            out[i] = Some(Prediction {
                pmid: items[i].pmid.clone(),
                truth: items[i].truth,
                decision: decisions[argmax(&logprobs)],
                logprobs: decisions.iter().copied().zip(logprobs).collect(),
                truncated: encoded[i].1,
            });
        }
        done += chunk.len();
        on_progress(done, items.len());
    }
    Ok(out.into_iter().flatten().collect())
}

/// Per-answer scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerScores {
    /// Items with this true answer.
    pub support: usize,
    /// Items predicted as this answer.
    pub predicted: usize,
    /// Precision (0 when never predicted).
    pub precision: f64,
    /// Recall (0 when never true).
    pub recall: f64,
    /// F1 (0 when precision and recall are both 0).
    pub f1: f64,
}

/// Accuracy and macro-F1 of a set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Items.
    pub n: usize,
    /// Share of items answered correctly (0 for no items).
    pub accuracy: f64,
    /// Mean F1 over the answers present in the truth or the predictions — scikit-learn's
    /// `f1_score(average="macro")`, which the official script calls.
    pub macro_f1: f64,
    /// 95% bootstrap interval of the accuracy (`None` for no items).
    pub accuracy_ci95: Option<[f64; 2]>,
    /// 95% bootstrap interval of the macro-F1.
    pub macro_f1_ci95: Option<[f64; 2]>,
    /// Scores of each answer.
    pub per_answer: BTreeMap<Decision, AnswerScores>,
}

/// [`Metrics`] of `pred` against `truth` (parallel slices), with 95% bootstrap intervals
/// ([`RESAMPLES`](crate::RESAMPLES) resamples, [`BOOTSTRAP_SEED`](crate::BOOTSTRAP_SEED)).
pub fn metrics(truth: &[Decision], pred: &[Decision]) -> Metrics {
    let n = truth.len().min(pred.len());
    let (truth, pred) = (&truth[..n], &pred[..n]);
    let correct = truth.iter().zip(pred).filter(|(t, p)| t == p).count();
    let present: BTreeSet<Decision> = truth.iter().chain(pred).copied().collect();
    let mut per_answer = BTreeMap::new();
    for d in present {
        let tp = truth.iter().zip(pred).filter(|&(&t, &p)| t == d && p == d).count();
        let support = truth.iter().filter(|&&t| t == d).count();
        let predicted = pred.iter().filter(|&&p| p == d).count();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
        let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
        per_answer.insert(d, AnswerScores { support, predicted, precision, recall, f1 });
    }
    let macro_f1 = if per_answer.is_empty() {
        0.0
    } else {
        per_answer.values().map(|s| s.f1).sum::<f64>() / per_answer.len() as f64
    };
    let ci = crate::stats::scores_ci95(truth, pred);
    Metrics {
        n,
        accuracy: if n == 0 { 0.0 } else { correct as f64 / n as f64 },
        macro_f1,
        accuracy_ci95: ci.map(|c| c[0]),
        macro_f1_ci95: ci.map(|c| c[1]),
        per_answer,
    }
}

/// Metrics of one subset of the items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The subset: a year span (`2001-2004`) or a MeSH heading.
    pub name: String,
    /// Its metrics.
    pub metrics: Metrics,
}

/// Everything measured on the test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What the model saw.
    pub setting: Setting,
    /// All items.
    pub overall: Metrics,
    /// Accuracy if every item were answered with the most common true answer.
    pub majority_accuracy: f64,
    /// The predictions' share of each answer.
    pub predicted_share: BTreeMap<Decision, f64>,
    /// By the paper's publication-year spans ([`YEAR_SPANS`]).
    pub by_year: Vec<Group>,
    /// Items in no span (no year, or outside 1989–2017).
    pub outside_year_spans: usize,
    /// By the paper's MeSH subsets ([`MESH_SUBSETS`]).
    pub by_mesh: Vec<Group>,
    /// Prompts whose context was cut to fit the model.
    pub truncated: usize,
    /// Scores that see past the label bias: the true answer's log-probability and Brier score,
    /// accuracy after contextual calibration.
    pub scores: crate::ProbabilityScores,
}

/// The [`Report`] of `predictions` (parallel to `items`, as [`predict`] returns them),
/// calibrated with `prior` ([`content_free`](crate::content_free)) when given.
///
/// Errors: [`Error::Data`] when a prediction is for another item than its slot's.
pub fn report(
    items: &[TestItem],
    predictions: &[Prediction],
    setting: Setting,
    prior: Option<&crate::AnswerProbabilities>,
) -> Result<Report> {
    if items.len() != predictions.len() {
        return Err(Error::Data {
            path: PathBuf::from("predictions"),
            message: format!("{} predictions for {} items", predictions.len(), items.len()),
        });
    }
    if let Some((i, p)) = items.iter().zip(predictions).find(|(i, p)| i.pmid != p.pmid || i.truth != p.truth) {
        return Err(Error::Data {
            path: PathBuf::from("predictions"),
            message: format!(
                "prediction for {} ({}) in the slot of item {} ({})",
                p.pmid,
                p.truth.as_str(),
                i.pmid,
                i.truth.as_str()
            ),
        });
    }
    let group = |keep: &dyn Fn(&TestItem) -> bool| {
        let (t, p): (Vec<Decision>, Vec<Decision>) =
            items.iter().zip(predictions).filter(|(i, _)| keep(i)).map(|(i, p)| (i.truth, p.decision)).unzip();
        metrics(&t, &p)
    };
    let by_year = YEAR_SPANS
        .iter()
        .map(|&(from, to)| Group {
            name: span_name((from, to)),
            metrics: group(&|i| i.year.is_some_and(|y| (from..=to).contains(&y))),
        })
        .collect();
    let outside_year_spans =
        items.iter().filter(|i| !i.year.is_some_and(|y| YEAR_SPANS.iter().any(|&(a, b)| (a..=b).contains(&y)))).count();
    let by_mesh = MESH_SUBSETS
        .iter()
        .map(|&m| Group { name: m.to_owned(), metrics: group(&|i| i.meshes.iter().any(|x| x == m)) })
        .collect();
    let majority = Decision::ALL.iter().map(|&d| items.iter().filter(|i| i.truth == d).count()).max().unwrap_or(0);
    let n = items.len().max(1) as f64;
    let predicted_share =
        Decision::ALL.iter().map(|&d| (d, predictions.iter().filter(|p| p.decision == d).count() as f64 / n)).collect();
    Ok(Report {
        setting,
        overall: group(&|_| true),
        majority_accuracy: majority as f64 / n,
        predicted_share,
        by_year,
        outside_year_spans,
        by_mesh,
        truncated: predictions.iter().filter(|p| p.truncated).count(),
        scores: crate::probability_scores(predictions, prior),
    })
}

/// Predictions in the official shape: `{PMID: "yes" | "no" | "maybe"}`.
pub fn official_predictions(predictions: &[Prediction]) -> BTreeMap<String, &'static str> {
    predictions.iter().map(|p| (p.pmid.clone(), p.decision.as_str())).collect()
}

/// Accuracy and macro-F1 of a predictions file against the ground truth, with the official
/// evaluation script's semantics: every ground-truth PMID must have a prediction (extra
/// predictions are ignored), and the metrics are scikit-learn's accuracy and macro-F1.
pub fn official_scores(ground_truth: impl AsRef<Path>, predictions: impl AsRef<Path>) -> Result<(f64, f64)> {
    let truth = read_labels(ground_truth)?;
    let path = predictions.as_ref();
    let pred = read_labels(path)?;
    let mut t = Vec::with_capacity(truth.len());
    let mut p = Vec::with_capacity(truth.len());
    for (pmid, d) in &truth {
        let got =
            pred.get(pmid).ok_or_else(|| Error::MissingPrediction { path: path.to_owned(), pmid: pmid.clone() })?;
        t.push(*d);
        p.push(*got);
    }
    let m = metrics(&t, &p);
    Ok((m.accuracy, m.macro_f1))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use Decision::{Maybe, No, Yes};

    #[test]
    fn metrics_follow_scikit_learn() {
        // sklearn: accuracy_score = 0.5; f1_score(macro) over {yes, no, maybe}:
        // yes: p = 1/2, r = 1/2 -> 0.5; no: p = 1/1, r = 1/1 -> 1; maybe: p = 0/1, r = 0/1 -> 0.
        let truth = [Yes, Yes, No, Maybe];
        let pred = [Yes, Maybe, No, Yes];
        let m = metrics(&truth, &pred);
        assert_eq!(m.accuracy, 0.5);
        assert!((m.macro_f1 - 0.5).abs() < 1e-12, "{}", m.macro_f1);
        // Always "yes": yes has p = 2/4, r = 1 -> 2/3; no and maybe (in the truth, never
        // predicted) 0 each; macro = (2/3) / 3.
        let m = metrics(&truth, &[Yes; 4]);
        assert_eq!(m.accuracy, 0.5);
        assert!((m.macro_f1 - (2.0 / 3.0) / 3.0).abs() < 1e-12, "{}", m.macro_f1);
        // A predicted answer absent from the truth still counts (f1 0), as in scikit-learn.
        let m = metrics(&[Yes, Yes], &[Yes, No]);
        assert!((m.macro_f1 - (2.0 / 3.0) / 2.0).abs() < 1e-12, "{}", m.macro_f1);
        assert_eq!(metrics(&[], &[]).accuracy, 0.0);
    }

    #[test]
    fn decisions_parse_and_spans_cover_the_paper() {
        assert_eq!(Decision::parse(" Yes "), Some(Yes));
        assert_eq!(Decision::parse("perhaps"), None);
        assert_eq!(span_name(YEAR_SPANS[1]), "2001-2004");
        assert!(YEAR_SPANS.windows(2).all(|w| w[0].1 + 1 == w[1].0));
    }

    #[test]
    fn prompts_hold_context_only_when_reasoning_is_required() {
        let item = TestItem {
            pmid: "1".into(),
            question: "Does it work?".into(),
            contexts: vec!["First part.".into(), "Second part.".into()],
            year: Some(2010),
            meshes: vec![],
            truth: Yes,
        };
        let full = user_turn(&item, Setting::ReasoningRequired);
        assert_eq!(
            full,
            "Context: First part.\nSecond part.\nQuestion: Does it work?\nAnswer the question with yes, no or maybe."
        );
        assert!(!user_turn(&item, Setting::QuestionOnly).contains("First"));
        assert!(
            user_turn_cut(&item, Setting::ReasoningRequired, Answers::YesNoMaybe, Some(5))
                .starts_with("Context: First\nQuestion")
        );
    }

    #[test]
    fn log_sum_exp_is_stable() {
        let v = log_sum_exp([-1000.0, -1000.0].into_iter());
        assert!((v - (-1000.0 + 2f64.ln())).abs() < 1e-9);
        assert_eq!(log_sum_exp(std::iter::empty()), f64::NEG_INFINITY);
    }
}
