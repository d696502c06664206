//! The seam: what an answer agent takes and gives, its prompt, and the SFT record it makes.

use kailin_core::{CptRecord, Provenance, SftRecord};
use kailin_lm::PromptTemplate;
use serde::Serialize;

use crate::error::Result;

/// The default prompt of the answer agent (the user turn): an instruction, the context, the
/// question.
pub const ANSWER_TEMPLATE: &str = include_str!("../prompts/answer.jinja");

/// The default prompt template, compiled.
pub fn default_template() -> PromptTemplate {
    // The embedded template is tested to compile.
    PromptTemplate::new("answer", ANSWER_TEMPLATE).unwrap_or_else(|e| unreachable!("{e}"))
}

/// The variables an answer template sees.
#[derive(Debug, Serialize)]
pub struct AnswerFields<'a> {
    /// The question.
    pub question: &'a str,
    /// The context text.
    pub context: &'a str,
    /// The ids of the context's documents.
    pub doc_ids: &'a [String],
}

/// The user turn for `record`.
pub fn render_prompt(template: &PromptTemplate, record: &CptRecord) -> Result<String> {
    Ok(template.render(AnswerFields {
        question: &record.question,
        context: &record.context.text,
        doc_ids: &record.context.doc_ids,
    })?)
}

/// One answer: a [`kailin_lm::Reply`] (text, finish reason, tokens, whether cached).
pub type Answer = kailin_lm::Reply;

/// An answer agent: question + context in, answer out.
pub trait AnswerGenerator {
    /// The agent's provenance: agent name, model, seed and prompt version.
    fn provenance(&self) -> Provenance;

    /// Answers every record. One result per record, in input order; a record that fails
    /// fails alone (the others' answers are still returned).
    fn answer(&self, records: &[CptRecord]) -> Vec<Result<Answer>>;
}

impl<G: AnswerGenerator + ?Sized> AnswerGenerator for &G {
    fn provenance(&self) -> Provenance {
        (**self).provenance()
    }

    fn answer(&self, records: &[CptRecord]) -> Vec<Result<Answer>> {
        (**self).answer(records)
    }
}

/// The SFT record of `record` answered by `answer`.
pub fn sft_record(record: &CptRecord, answer: &Answer, provenance: &Provenance) -> SftRecord {
    SftRecord {
        id: record.id.clone(),
        question: record.question.clone(),
        context: record.context.clone(),
        answer: answer.text.trim().to_owned(),
        provenance: provenance.clone(),
    }
}

/// An in-memory agent for tests: answers with a function of the record.
pub struct FnAnswerer<F> {
    name: String,
    f: F,
}

impl<F> std::fmt::Debug for FnAnswerer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnAnswerer").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<F: Fn(&CptRecord) -> Result<String>> FnAnswerer<F> {
    /// An agent named `name` answering with `f`.
    pub fn new(name: impl Into<String>, f: F) -> Self {
        FnAnswerer { name: name.into(), f }
    }
}

impl<F: Fn(&CptRecord) -> Result<String>> AnswerGenerator for FnAnswerer<F> {
    fn provenance(&self) -> Provenance {
        Provenance { agent: self.name.clone(), ..Default::default() }
    }

    fn answer(&self, records: &[CptRecord]) -> Vec<Result<Answer>> {
        records.iter().map(|r| (self.f)(r).map(|text| Answer { text, ..Default::default() })).collect()
    }
}
