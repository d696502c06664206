//! The question-generation seam and its implementations.

use std::collections::HashSet;

use burn::prelude::Backend;
use kailin_core::{Document, Fnv64, Provenance, Question};
use kailin_lm::{ChatMessage, CompletionOptions, Llama, PromptTemplate, Sampler, Tokenizer};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::filter::{Rejection, Tally, check_question, clean_question, words};

/// The default prompt: the instruction, the title and the abstract; the same text as
/// [`kailin_core::question_prompt`], which the DPO examples use.
pub const QUESTION_TEMPLATE: &str = include_str!("../prompts/question.jinja");

/// The default prompt template, compiled.
pub fn default_template() -> PromptTemplate {
    // The embedded template is tested to compile.
    PromptTemplate::new("question", QUESTION_TEMPLATE).unwrap_or_else(|e| unreachable!("{e}"))
}

/// The variables a question template sees: `title`, `text` (cut to the configured length),
/// `id`, `mesh`.
#[derive(Debug, Serialize)]
pub struct PromptFields<'a> {
    /// The document's id.
    pub id: &'a str,
    /// Its title (may be empty).
    pub title: &'a str,
    /// Its text.
    pub text: &'a str,
    /// Its MeSH headings.
    pub mesh: &'a [String],
}

/// The prompt for `doc`, its text cut to at most `max_chars` characters (at a word boundary).
pub fn render_prompt(template: &PromptTemplate, doc: &Document, max_chars: usize) -> Result<String> {
    let text = kailin_core::cut_chars_at_word(&doc.text, max_chars);
    Ok(template.render(PromptFields { id: &doc.id, title: &doc.title, text, mesh: &doc.mesh })?)
}

/// What a generation run returns: the kept questions (in document order, then sample order)
/// and the counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Generated {
    /// Kept questions, each with its `doc_id` and provenance.
    pub questions: Vec<Question>,
    /// Documents, generations, kept and filtered.
    pub tally: Tally,
}

/// A question-generation agent: documents in, up to `n` candidate questions per document out.
pub trait QuestionGenerator {
    /// The agent's name, as it appears in provenance (`question-generator/general`).
    fn name(&self) -> &str;

    /// Up to `n` questions for each document; empty documents are skipped and filtered
    /// generations dropped, both counted in the tally.
    fn generate(&self, documents: &[Document], n: usize) -> Result<Generated>;
}

impl<G: QuestionGenerator + ?Sized> QuestionGenerator for &G {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn generate(&self, documents: &[Document], n: usize) -> Result<Generated> {
        (**self).generate(documents, n)
    }
}

/// Sampling settings of [`LocalGenerator`].
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationOptions {
    /// Sampling temperature; 0 is greedy (then the `n` samples of a document are the same and
    /// all but one are dropped as duplicates).
    pub temperature: f32,
    /// Nucleus sampling threshold.
    pub top_p: Option<f32>,
    /// Sample among the `k` most likely tokens only.
    pub top_k: Option<usize>,
    /// Most new tokens per question.
    pub max_new: usize,
    /// Seed: sample `j` of document `d` uses a seed derived from this, `d`'s id and `j` only,
    /// so its question does not depend on the batch or on the other documents.
    pub seed: u64,
    /// Sequences decoding at once (a finished one's slot is refilled from the call's other
    /// prompts: continuous batching).
    pub batch_size: usize,
    /// The document text is cut to this many characters.
    pub max_document_chars: usize,
    /// A filtered generation (empty, not a question, a copy, a duplicate) is sampled again
    /// with the next derived seed up to this many times.
    pub resample: usize,
    /// The temperature of those resamples (a greedy generator's too: the same seed greedy
    /// would repeat itself); 0: no resampling.
    pub resample_temperature: f32,
}

impl Default for GenerationOptions {
    fn default() -> Self {
        GenerationOptions {
            temperature: 0.7,
            top_p: Some(0.9),
            top_k: None,
            max_new: 64,
            seed: 0,
            batch_size: 16,
            max_document_chars: 4000,
            resample: 3,
            resample_temperature: 0.7,
        }
    }
}

impl GenerationOptions {
    pub(crate) fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Options(what.to_owned()));
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad("temperature must be a finite number ≥ 0");
        }
        if !(self.resample_temperature.is_finite() && self.resample_temperature >= 0.0) {
            return bad("resample_temperature must be a finite number ≥ 0");
        }
        if self.resample > 100 {
            return bad("resample must be at most 100");
        }
        if self.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
            return bad("top_p must be in (0, 1]");
        }
        if self.max_new == 0 || self.batch_size == 0 || self.max_document_chars == 0 || self.top_k == Some(0) {
            return bad("max_new, batch_size, max_document_chars and top_k must be at least 1");
        }
        Ok(())
    }

    /// What a question's provenance says of how it was sampled: the prompt's version and the
    /// sampling settings.
    pub(crate) fn detail(&self, template: &PromptTemplate) -> String {
        let mut detail = format!("prompt={} temperature={}", template.version(), self.temperature);
        if let Some(p) = self.top_p {
            detail.push_str(&format!(" top_p={p}"));
        }
        if let Some(k) = self.top_k {
            detail.push_str(&format!(" top_k={k}"));
        }
        if self.resample > 0 && self.resample_temperature > 0.0 {
            detail.push_str(&format!(" resample={} resample_temperature={}", self.resample, self.resample_temperature));
        }
        detail
    }

    /// The seed of sample `j` of the document with id `doc_id`.
    pub fn sample_seed(&self, doc_id: &str, j: usize) -> u64 {
        Fnv64::new().bytes(&self.seed.to_le_bytes()).bytes(doc_id.as_bytes()).bytes(&(j as u64).to_le_bytes()).finish()
    }
}

/// The local question generator: a `kailin-lm` model, a prompt template rendered as the user
/// turn of the model's chat template, batched sampling, cleaning and filtering.
#[derive(Debug)]
pub struct LocalGenerator<B: Backend> {
    model: Llama<B>,
    tokenizer: Tokenizer,
    template: PromptTemplate,
    options: GenerationOptions,
    agent: String,
    model_id: String,
}

impl<B: Backend> LocalGenerator<B> {
    /// A generator on `model`; `model_id` (a path or name) goes into provenance. The agent is
    /// `question-generator` and the prompt [`default_template`] until changed.
    pub fn new(
        model: Llama<B>,
        tokenizer: Tokenizer,
        model_id: impl Into<String>,
        options: GenerationOptions,
    ) -> Result<Self> {
        options.check()?;
        if tokenizer.chat_template().is_none() {
            return Err(Error::Options("the model has no chat template (an instruction-tuned model is needed)".into()));
        }
        Ok(LocalGenerator {
            model,
            tokenizer,
            template: default_template(),
            options,
            agent: "question-generator".into(),
            model_id: model_id.into(),
        })
    }

    /// Uses `template` for the prompts.
    pub fn with_template(mut self, template: PromptTemplate) -> Self {
        self.template = template;
        self
    }

    /// Names the agent (`question-generator/domain`, `question-generator/general`).
    pub fn with_agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = agent.into();
        self
    }

    /// The chat prompt of `doc`.
    pub fn prompt(&self, doc: &Document) -> Result<String> {
        let user = render_prompt(&self.template, doc, self.options.max_document_chars)?;
        Ok(kailin_lm::chat_prompt(&self.tokenizer, &[ChatMessage::user(user)])?)
    }

    fn provenance(&self, seed: u64) -> Provenance {
        Provenance {
            agent: self.agent.clone(),
            model: Some(self.model_id.clone()),
            seed: Some(seed),
            detail: Some(self.options.detail(&self.template)),
        }
    }
}

impl<B: Backend> QuestionGenerator for LocalGenerator<B> {
    fn name(&self) -> &str {
        &self.agent
    }

    fn generate(&self, documents: &[Document], n: usize) -> Result<Generated> {
        let o = &self.options;
        let prompts = documents
            .iter()
            .map(|d| if is_blank(d) { Ok(None) } else { self.prompt(d).map(Some) })
            .collect::<Result<Vec<_>>>()?;
        let sample = |jobs: &[(usize, usize)], temperature: f32| -> Result<Vec<String>> {
            let completion = CompletionOptions {
                max_new: o.max_new,
                temperature,
                top_k: o.top_k,
                top_p: o.top_p,
                seed: o.seed,
                stop: vec!["\n".into(), "?".into()],
                // `batch_size` sequences decode at once, a finished one's slot refilled.
                slots: o.batch_size,
            };
            let prompts: Vec<String> = jobs.iter().map(|&(d, _)| prompts[d].clone().unwrap_or_default()).collect();
            let mut samplers: Vec<Sampler> =
                jobs.iter().map(|&(d, j)| completion.sampler_seeded(o.sample_seed(&documents[d].id, j))).collect();
            let out = kailin_lm::complete_with(&self.model, &self.tokenizer, &prompts, &completion, &mut samplers)?;
            // The generated tokens, stop string included: cleaning cuts at the first `?`.
            out.iter().map(|c| Ok(self.tokenizer.decode(&c.tokens, true)?)).collect()
        };
        let record = |doc: &Document, j: usize, text: String| {
            question(doc, &self.agent, j, text, Some(self.provenance(o.sample_seed(&doc.id, j))))
        };
        generate_rounds(documents, n, o, sample, record)
    }
}

/// Samples `n` questions of every document with text through `sample` (one raw text per
/// `(document, sample)` job at the given temperature, seeded by the job alone), screens them,
/// and samples a filtered job again as `j + n`, `j + 2n`, … up to `options.resample` times at
/// `options.resample_temperature`; the kept questions in document order, then sample order.
pub(crate) fn generate_rounds(
    documents: &[Document],
    n: usize,
    options: &GenerationOptions,
    mut sample: impl FnMut(&[(usize, usize)], f32) -> Result<Vec<String>>,
    record: impl Fn(&Document, usize, String) -> Question,
) -> Result<Generated> {
    let mut tally = Tally { documents: documents.len() as u64, ..Default::default() };
    let mut pending = Vec::new();
    for (d, doc) in documents.iter().enumerate() {
        if is_blank(doc) {
            tally.empty_documents += 1;
        } else {
            pending.extend((0..n).map(|j| (d, j)));
        }
    }
    let with_text = pending.iter().map(|&(d, _)| d).collect::<HashSet<_>>();
    let mut seen = vec![HashSet::new(); documents.len()];
    let mut kept: Vec<(usize, usize, Question)> = Vec::new();
    let rounds = if options.resample_temperature > 0.0 { options.resample } else { 0 };
    for round in 0..=rounds {
        if pending.is_empty() {
            break;
        }
        if round > 0 {
            tally.resampled += pending.len() as u64;
        }
        let raw = sample(&pending, if round == 0 { options.temperature } else { options.resample_temperature })?;
        let mut next = Vec::new();
        for (&(d, j), text) in pending.iter().zip(raw) {
            let doc = &documents[d];
            match screen(doc, &text, &mut seen[d], &mut tally) {
                Some(q) => kept.push((d, j, record(doc, j, q))),
                None => next.push((d, j + n)),
            }
        }
        pending = next;
    }
    kept.sort_by_key(|&(d, j, _)| (d, j));
    let with_question = kept.iter().map(|&(d, ..)| d).collect::<HashSet<_>>();
    tally.without_question = with_text.difference(&with_question).count() as u64;
    Ok(Generated { questions: kept.into_iter().map(|(.., q)| q).collect(), tally })
}

/// An in-memory generator for tests and replays: each document's questions are given
/// beforehand (by document id) and filtered like a model's generations.
#[derive(Debug, Clone, Default)]
pub struct FixedGenerator {
    name: String,
    questions: std::collections::HashMap<String, Vec<String>>,
}

impl FixedGenerator {
    /// A generator named `name` with no questions yet.
    pub fn new(name: impl Into<String>) -> Self {
        FixedGenerator { name: name.into(), questions: Default::default() }
    }

    /// Gives document `doc_id` these generations (raw texts, cleaned and filtered on use).
    pub fn with(mut self, doc_id: impl Into<String>, questions: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.questions.entry(doc_id.into()).or_default().extend(questions.into_iter().map(Into::into));
        self
    }
}

impl QuestionGenerator for FixedGenerator {
    fn name(&self) -> &str {
        &self.name
    }

    fn generate(&self, documents: &[Document], n: usize) -> Result<Generated> {
        let mut out = Generated {
            tally: Tally { documents: documents.len() as u64, ..Default::default() },
            ..Default::default()
        };
        for doc in documents {
            if is_blank(doc) {
                out.tally.empty_documents += 1;
                continue;
            }
            let mut seen = HashSet::new();
            for (j, raw) in self.questions.get(&doc.id).into_iter().flatten().take(n).enumerate() {
                if let Some(text) = screen(doc, raw, &mut seen, &mut out.tally) {
                    let provenance = Some(Provenance { agent: self.name.clone(), ..Default::default() });
                    out.questions.push(question(doc, &self.name, j, text, provenance));
                }
            }
        }
        Ok(out)
    }
}

/// Cleans one raw generation for `doc` and checks it; counts it in `tally` either way. `seen`
/// holds the words of the questions kept for `doc` so far.
pub(crate) fn screen(doc: &Document, raw: &str, seen: &mut HashSet<Vec<String>>, tally: &mut Tally) -> Option<String> {
    tally.generated += 1;
    let q = clean_question(raw);
    let checked = check_question(&q, &format!("{} {}", doc.title, doc.text))
        .and_then(|()| if seen.insert(words(&q)) { Ok(()) } else { Err(Rejection::Duplicate) });
    match checked {
        Ok(()) => {
            tally.kept += 1;
            Some(q)
        }
        Err(why) => {
            tracing::debug!(doc = %doc.id, ?why, raw, "generation filtered");
            tally.reject(why);
            None
        }
    }
}

/// The record of sample `j` of `doc` by `agent`.
pub(crate) fn question(
    doc: &Document,
    agent: &str,
    j: usize,
    text: String,
    provenance: Option<Provenance>,
) -> Question {
    Question { id: format!("{}/{agent}/{j}", doc.id), text, doc_id: Some(doc.id.clone()), kind: None, provenance }
}

/// A document with neither title nor text: no prompt is made for it.
pub(crate) fn is_blank(doc: &Document) -> bool {
    doc.text.trim().is_empty() && doc.title.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_prompt_is_the_dpo_prompt() {
        let mut doc = Document {
            id: "1".into(),
            title: "Aspirin".into(),
            text: "Aspirin inhibits COX.".into(),
            ..Default::default()
        };
        let t = default_template();
        assert_eq!(render_prompt(&t, &doc, 4000).unwrap(), kailin_core::question_prompt(&doc));
        doc.title.clear();
        assert_eq!(render_prompt(&t, &doc, 4000).unwrap(), kailin_core::question_prompt(&doc));
    }

    #[test]
    fn seeds_depend_on_document_and_sample_only() {
        let o = GenerationOptions::default();
        assert_eq!(o.sample_seed("a", 1), o.sample_seed("a", 1));
        assert_ne!(o.sample_seed("a", 1), o.sample_seed("a", 2));
        assert_ne!(o.sample_seed("a", 1), o.sample_seed("b", 1));
        assert!(GenerationOptions { top_p: Some(0.0), ..o.clone() }.check().is_err());
        assert!(GenerationOptions { temperature: f32::NAN, ..o }.check().is_err());
    }

    #[test]
    fn a_filtered_sample_is_drawn_again_with_the_next_seed_a_bounded_number_of_times() {
        let doc = |id: &str, text: &str| Document { id: id.into(), text: text.into(), ..Default::default() };
        let docs = [doc("a", "Aspirin inhibits COX."), doc("b", ""), doc("c", "Statins lower LDL.")];
        let o = GenerationOptions { resample: 2, ..Default::default() };
        let mut calls = Vec::new();
        // Document a answers from its third sample on (j = 0 + 2n); c never does.
        let sample = |jobs: &[(usize, usize)], t: f32| {
            calls.push((jobs.to_vec(), t));
            Ok(jobs
                .iter()
                .map(|&(d, j)| if d == 0 && j >= 2 { format!("What does it do {j}?") } else { String::new() })
                .collect())
        };
        let record = |d: &Document, j: usize, text: String| question(d, "g", j, text, None);
        let o = GenerationOptions { temperature: 0.0, resample_temperature: 0.5, ..o };
        let g = generate_rounds(&docs, 1, &o, sample, record).unwrap();
        // A greedy first round; the resamples at their own temperature.
        let rounds = [(vec![(0, 0), (2, 0)], 0.0), (vec![(0, 1), (2, 1)], 0.5), (vec![(0, 2), (2, 2)], 0.5)];
        assert_eq!(calls, rounds);
        assert_eq!(g.questions.iter().map(|q| q.id.as_str()).collect::<Vec<_>>(), ["a/g/2"]);
        let t = g.tally;
        assert_eq!((t.generated, t.kept, t.empty, t.resampled), (6, 1, 5, 4));
        assert_eq!((t.empty_documents, t.without_question), (1, 1));
        // No resample temperature: nothing is drawn again.
        let off = GenerationOptions { resample_temperature: 0.0, ..o };
        let g = generate_rounds(&docs, 1, &off, |jobs, _| Ok(vec![String::new(); jobs.len()]), record).unwrap();
        assert_eq!((g.tally.generated, g.tally.resampled, g.tally.without_question), (2, 0, 2));
    }
}
