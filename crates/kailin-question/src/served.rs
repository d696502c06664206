//! The question generator on a served model (any OpenAI-compatible server): the same
//! prompt, seeds, cleaning and filtering as [`LocalGenerator`](crate::LocalGenerator).

use std::collections::HashSet;

use kailin_core::{Document, Provenance};
use kailin_lm::{ChatMessage, ChatRequest, PromptTemplate, ServedModel};

use crate::error::Result;
use crate::filter::Tally;
use crate::generator::{
    Generated, GenerationOptions, QuestionGenerator, default_template, is_blank, question, render_prompt, screen,
};

/// A question agent on a [`ServedModel`]: one chat request per document and sample, each
/// with the sample's own seed (servers that honour seeds give the same question again), its
/// reply cut at the first line and filtered like a local model's.
#[derive(Debug)]
pub struct ServedGenerator {
    served: ServedModel,
    template: PromptTemplate,
    options: GenerationOptions,
    agent: String,
}

impl ServedGenerator {
    /// A generator on `served` (agent `question-generator`, prompt [`default_template`]
    /// until changed). `top_k` is not sent (the OpenAI protocol has none).
    ///
    /// Errors: an option out of range.
    pub fn new(served: ServedModel, options: GenerationOptions) -> Result<Self> {
        options.check()?;
        Ok(ServedGenerator { served, template: default_template(), options, agent: "question-generator".into() })
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

    /// The served model (its preflight, its counters).
    pub fn served(&self) -> &ServedModel {
        &self.served
    }

    fn provenance(&self, seed: u64) -> Provenance {
        let detail = format!("{} backend=openai-compatible", self.options.detail(&self.template));
        Provenance {
            agent: self.agent.clone(),
            model: Some(format!("{} at {}", self.served.options().model, self.served.url())),
            seed: Some(seed),
            detail: Some(detail),
        }
    }
}

impl QuestionGenerator for ServedGenerator {
    fn name(&self) -> &str {
        &self.agent
    }

    fn generate(&self, documents: &[Document], n: usize) -> Result<Generated> {
        let o = &self.options;
        let mut tally = Tally { documents: documents.len() as u64, ..Default::default() };
        let mut jobs = Vec::new();
        let mut requests = Vec::new();
        for (d, doc) in documents.iter().enumerate() {
            if is_blank(doc) {
                tally.empty_documents += 1;
                continue;
            }
            let user = render_prompt(&self.template, doc, o.max_document_chars)?;
            for j in 0..n {
                let mut r = ChatRequest::new(vec![ChatMessage::user(user.clone())], o.max_new);
                r.temperature = o.temperature;
                r.top_p = o.top_p;
                r.seed = Some(o.sample_seed(&doc.id, j));
                requests.push(r);
                jobs.push((d, j));
            }
        }
        let replies = self.served.chat_all(&requests);
        let mut questions = Vec::new();
        let mut seen = HashSet::new();
        let mut current = None;
        for (&(d, j), reply) in jobs.iter().zip(replies) {
            let reply = reply?;
            if current != Some(d) {
                (current, seen) = (Some(d), HashSet::new());
            }
            let doc = &documents[d];
            let first_line = reply.text.trim_start().lines().next().unwrap_or("");
            if let Some(text) = screen(doc, first_line, &mut seen, &mut tally) {
                let provenance = Some(self.provenance(o.sample_seed(&doc.id, j)));
                questions.push(question(doc, &self.agent, j, text, provenance));
            }
        }
        Ok(Generated { questions, tally })
    }
}
