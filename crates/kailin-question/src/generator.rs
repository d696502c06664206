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
    /// Prompts per batch.
    pub batch_size: usize,
    /// The document text is cut to this many characters.
    pub max_document_chars: usize,
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
        }
    }
}

impl GenerationOptions {
    pub(crate) fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Options(what.to_owned()));
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad("temperature must be a finite number ≥ 0");
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
        let mut tally = Tally { documents: documents.len() as u64, ..Default::default() };
        // (document, sample) pairs to generate, with their prompts.
        let mut jobs = Vec::new();
        for (d, doc) in documents.iter().enumerate() {
            if is_blank(doc) {
                tally.empty_documents += 1;
                continue;
            }
            let prompt = self.prompt(doc)?;
            jobs.extend((0..n).map(|j| (d, j, prompt.clone())));
        }
        let completion = CompletionOptions {
            max_new: o.max_new,
            temperature: o.temperature,
            top_k: o.top_k,
            top_p: o.top_p,
            seed: o.seed,
            stop: vec!["\n".into(), "?".into()],
        };
        let mut raw: Vec<String> = Vec::with_capacity(jobs.len());
        for batch in jobs.chunks(o.batch_size) {
            let prompts: Vec<String> = batch.iter().map(|(_, _, p)| p.clone()).collect();
            let mut samplers: Vec<Sampler> =
                batch.iter().map(|&(d, j, _)| completion.sampler_seeded(o.sample_seed(&documents[d].id, j))).collect();
            let out = kailin_lm::complete_with(&self.model, &self.tokenizer, &prompts, &completion, &mut samplers)?;
            // The generated tokens, stop string included: cleaning cuts at the first `?`.
            for c in out {
                raw.push(self.tokenizer.decode(&c.tokens, true)?);
            }
        }
        let mut questions = Vec::new();
        let mut seen = HashSet::new();
        let mut current = None;
        for ((d, j, _), text) in jobs.iter().zip(raw) {
            if current != Some(*d) {
                (current, seen) = (Some(*d), HashSet::new());
            }
            let doc = &documents[*d];
            if let Some(text) = screen(doc, &text, &mut seen, &mut tally) {
                let provenance = Some(self.provenance(o.sample_seed(&doc.id, *j)));
                questions.push(question(doc, &self.agent, *j, text, provenance));
            }
        }
        Ok(Generated { questions, tally })
    }
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
}
