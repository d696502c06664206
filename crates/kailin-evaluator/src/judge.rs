//! Language-model judges: a pairwise prompt ("document, pair A, pair B → A or B") scored by a
//! `kailin-lm` model. With a model fine-tuned on the rule's labels ([`train_judge`]) it is the
//! learned evaluator (m-KAILIN Eq. 6); with the base model it is the no-MeSH ablation.
//!
//! Why a pairwise prompt rather than a Bradley–Terry scalar head: the prompt trains with the
//! SFT objective `kailin-train` already has (the negative log-likelihood of the preferred
//! letter is Eq. 6's loss), needs no new model head or export format, and the same prompt
//! serves the untrained no-MeSH ablation, so the two rows differ only in training. Showing
//! each pair in both orders, in training and in judging, removes the letter's position bias.
//!
//! What the model sees ([`judge_prompt`]): the document's title and first
//! [`JudgeOptions::document_words`] words, the instruction, then for A and B the question and
//! the first [`JudgeOptions::context_words`] words (title first) of each of its k contexts.
//! Contexts are cut this short so that a pair fits a CPU budget (about 270 tokens at 40 and 10
//! words).

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use kailin_core::{CompletionExample, Document};
use kailin_lm::{Llama, Tokenizer};
use kailin_retrieval::Retriever;
use kailin_train::{Dataset, Lined, Overlong, Progress, SftExample, TrainOptions, TrainReport};

use crate::corpus::{Corpus, retrieve_contexts};
use crate::error::{Error, Result};
use crate::judgement::{ContextDoc, Evaluator, Explanation, Item, Judgement, ModelExplanation, Outcome};
use crate::preference::Label;

/// The judge's question to the model; a fine-tuned judge learns to answer it as the rule does.
pub const JUDGE_INSTRUCTION: &str = "Which question, with the context retrieved for it, fits the document better? \
Answer with A or B.";

/// What the judge shows the model, and how it decides.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeOptions {
    /// Contexts per question.
    pub k: usize,
    /// Leave the document itself out of its questions' contexts.
    pub exclude_source: bool,
    /// Words of the document shown (title first, then the text).
    pub document_words: usize,
    /// Words of each context document shown (its title, else the start of its text).
    pub context_words: usize,
    /// `|P(0) − P(1)|` at or below this is a tie.
    pub margin: f64,
    /// Prompts per forward pass.
    pub batch_size: usize,
}

impl Default for JudgeOptions {
    fn default() -> Self {
        JudgeOptions { k: 4, exclude_source: false, document_words: 64, context_words: 16, margin: 0.0, batch_size: 8 }
    }
}

/// The first `n` whitespace-separated words of `text`, with "…" when cut.
fn first_words(text: &str, n: usize) -> String {
    let mut words = text.split_whitespace();
    let mut out: Vec<&str> = words.by_ref().take(n).collect();
    if words.next().is_some() {
        out.push("…");
    }
    out.join(" ")
}

/// How a document is shown: title, then as much text as the budget allows.
fn shown(doc: &Document, words: usize) -> String {
    let full = if doc.title.is_empty() { doc.text.clone() } else { format!("{}. {}", doc.title, doc.text) };
    first_words(&full, words)
}

/// The pairwise prompt: the document, then candidate `a` as "A" and `b` as "B", each a
/// question with the start of each context document.
pub fn judge_prompt(
    doc: &Document,
    a: (&str, &[&Document]),
    b: (&str, &[&Document]),
    options: &JudgeOptions,
) -> String {
    let mut p = format!("Document: {}\n\n{JUDGE_INSTRUCTION}\n", shown(doc, options.document_words));
    for (letter, (question, contexts)) in [("A", a), ("B", b)] {
        p.push_str(&format!("\n{letter}. Question: {}\n", question.trim()));
        for c in contexts {
            p.push_str(&format!("   Context: {}\n", shown(c, options.context_words)));
        }
    }
    p
}

pub(crate) fn context_docs<'c>(corpus: &'c Corpus, contexts: &[ContextDoc]) -> Result<Vec<&'c Document>> {
    contexts
        .iter()
        .map(|c| corpus.get(&c.doc_id).ok_or_else(|| Error::UnknownContext { id: c.doc_id.clone() }))
        .collect()
}

/// The fine-tuning examples of labels: each preferred label in both presentation orders (so
/// the judge cannot learn a position), answer "A" or "B". Labels without preference are left
/// out; their number is returned.
///
/// Errors: [`Error::UnknownDocument`], [`Error::UnknownContext`]: a label's document or context
/// the corpus lacks.
pub fn judge_examples(
    labels: &[Label],
    corpus: &Corpus,
    options: &JudgeOptions,
) -> Result<(Vec<CompletionExample>, usize)> {
    let mut out = Vec::new();
    let mut dropped = 0;
    for label in labels {
        let Some(win) = label.judgement.preferred.filter(|&w| w < 2) else {
            dropped += 1;
            continue;
        };
        let doc = corpus.get(&label.doc_id).ok_or_else(|| Error::UnknownDocument { id: label.doc_id.clone() })?;
        let ctx =
            [context_docs(corpus, &label.judgement.contexts[0])?, context_docs(corpus, &label.judgement.contexts[1])?];
        let cand = |s: usize| (label.questions[s].as_str(), ctx[s].as_slice());
        for (first, second) in [(0, 1), (1, 0)] {
            let answer = if first == win { "A" } else { "B" };
            out.push(CompletionExample {
                prompt: judge_prompt(doc, cand(first), cand(second), options),
                completion: answer.to_owned(),
            });
        }
    }
    Ok((out, dropped))
}

/// Fine-tunes a judge on examples from [`judge_examples`] with `kailin-train`'s SFT (the
/// answer letter is the only trained token besides the turn's end). `window` bounds a
/// prompt's tokens (longer ones keep their end).
///
/// Errors: the trainer's.
pub fn train_judge<B: AutodiffBackend>(
    model: Llama<B>,
    tokenizer: &Tokenizer,
    examples: Vec<CompletionExample>,
    window: usize,
    options: &TrainOptions,
    on_step: impl FnMut(&Progress<'_>),
) -> Result<(Llama<B>, TrainReport)> {
    let data = Dataset {
        path: "judge examples".into(),
        records: examples
            .into_iter()
            .enumerate()
            .map(|(i, c)| Lined { line: i as u64 + 1, record: SftExample::Completion(c) })
            .collect(),
    };
    let rows = kailin_train::encode_sft(&data, tokenizer, window, Overlong::Truncate)?;
    Ok(kailin_train::sft::train(model, &rows, &[], options, on_step)?)
}

/// A language-model judge over a retriever and the corpus it searches: P(candidate 0 is
/// better) is the mean of the model's P("A") with candidate 0 shown first and its P("B") with
/// it shown second (each from the two letters' log-probabilities), which cancels a
/// preference for a position.
#[derive(Debug)]
pub struct PairwiseJudge<'a, B: Backend, R> {
    model: Llama<B>,
    tokenizer: Tokenizer,
    corpus: &'a Corpus,
    retriever: R,
    options: JudgeOptions,
    name: String,
}

impl<'a, B: Backend, R: Retriever> PairwiseJudge<'a, B, R> {
    /// A judge named `name` (`learned`, `llm-judge`…, for provenance).
    ///
    /// Errors: an option out of range.
    pub fn new(
        model: Llama<B>,
        tokenizer: Tokenizer,
        corpus: &'a Corpus,
        retriever: R,
        options: JudgeOptions,
        name: impl Into<String>,
    ) -> Result<Self> {
        check_options(&options)?;
        Ok(PairwiseJudge { model, tokenizer, corpus, retriever, options, name: name.into() })
    }

    /// `log p("A")`, `log p("B")` for each prompt, as the first token of the answer the judge
    /// was trained to give (one forward pass per prompt for both letters).
    fn letters(&self, prompts: &[String]) -> Result<Vec<[f64; 2]>> {
        let Some(first) = prompts.first() else { return Ok(Vec::new()) };
        // The letters' tokens open the reply whatever the prompt: found once, from the first.
        let (_, a) = kailin_train::prompt_completion_ids(&self.tokenizer, first, "A")?;
        let (_, b) = kailin_train::prompt_completion_ids(&self.tokenizer, first, "B")?;
        let letters = match (a.first(), b.first()) {
            (Some(&a), Some(&b)) if a != b => [a, b],
            _ => return Err(Error::Options("the tokenizer does not tell the answers A and B apart".into())),
        };
        let ids = prompts
            .iter()
            .map(|p| Ok(kailin_train::prompt_completion_ids(&self.tokenizer, p, "A")?.0))
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(prompts.len());
        for chunk in ids.chunks(self.options.batch_size) {
            out.extend(kailin_lm::next_token_logprobs(&self.model, chunk, &letters)?.into_iter().map(|v| [v[0], v[1]]));
        }
        Ok(out)
    }
}

/// P(first of two letters) from their log-probabilities (0.5 when neither has any).
fn p_first([a, b]: [f64; 2]) -> f64 {
    if a == f64::NEG_INFINITY && b == f64::NEG_INFINITY {
        return 0.5;
    }
    1.0 / (1.0 + (b - a).exp())
}

/// Judges `items` with `letters` (`log p("A")`, `log p("B")` of each prompt): both orders of
/// each pair, averaged, so a position preference cancels.
pub(crate) fn judge_pairs<R: Retriever>(
    corpus: &Corpus,
    retriever: &R,
    o: &JudgeOptions,
    items: &[Item<'_>],
    letters: impl FnOnce(&[String]) -> Result<Vec<[f64; 2]>>,
) -> Result<Vec<Judgement>> {
    let found = retrieve_contexts(retriever, items, o.k, o.exclude_source)?;
    let mut prompts = Vec::new();
    let mut contexts = Vec::with_capacity(items.len());
    for (it, [a, b]) in items.iter().zip(found) {
        let (Some(a), Some(b)) = (a, b) else {
            contexts.push(None);
            continue;
        };
        let (da, db) = (context_docs(corpus, &a)?, context_docs(corpus, &b)?);
        let (qa, qb) = (it.questions[0], it.questions[1]);
        prompts.push(judge_prompt(it.doc, (qa, &da), (qb, &db), o));
        prompts.push(judge_prompt(it.doc, (qb, &db), (qa, &da), o));
        contexts.push(Some([a, b]));
    }
    let letters = letters(&prompts)?;
    let mut next = letters.chunks(2);
    let mut out = Vec::with_capacity(items.len());
    for ctx in contexts {
        let Some(ctx) = ctx else {
            out.push(Judgement::skipped(Outcome::EmptyQuestion));
            continue;
        };
        let Some(&[ab, ba]) = next.next() else {
            return Err(Error::Options("internal: fewer scores than prompts".into()));
        };
        let shown_first = p_first(ab);
        let shown_second = 1.0 - p_first(ba);
        let p = (shown_first + shown_second) / 2.0;
        let (preferred, outcome) = if (2.0 * p - 1.0).abs() <= o.margin {
            (None, Outcome::Tie)
        } else {
            (Some(usize::from(p < 0.5)), Outcome::Preferred)
        };
        out.push(Judgement {
            preferred,
            scores: [Some(p), Some(1.0 - p)],
            outcome,
            contexts: ctx,
            explanation: Explanation::Model(ModelExplanation {
                p_first_shown_first: shown_first,
                p_first_shown_second: shown_second,
            }),
        });
    }
    Ok(out)
}

/// Checks a judge's options.
pub(crate) fn check_options(options: &JudgeOptions) -> Result<()> {
    if options.k == 0 || options.batch_size == 0 {
        return Err(Error::Options("k and batch_size must be at least 1".into()));
    }
    if !(options.margin.is_finite() && (0.0..=1.0).contains(&options.margin)) {
        return Err(Error::Options(format!("margin must be in [0, 1], not {}", options.margin)));
    }
    Ok(())
}

impl<B: Backend, R: Retriever> Evaluator for PairwiseJudge<'_, B, R> {
    type Error = Error;

    fn evaluate(&self, items: &[Item<'_>]) -> Result<Vec<Judgement>> {
        judge_pairs(self.corpus, &self.retriever, &self.options, items, |prompts| self.letters(prompts))
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}
