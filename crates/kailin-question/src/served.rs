//! The question generator on a served model (any OpenAI-compatible server): the same
//! prompt, seeds, cleaning and filtering as [`LocalGenerator`](crate::LocalGenerator).

use kailin_core::{Document, Provenance};
use kailin_lm::{ChatMessage, ChatRequest, PromptTemplate, ServedModel};

use crate::error::Result;
use crate::generator::{
    Generated, GenerationOptions, QuestionGenerator, default_template, generate_rounds, is_blank, question,
    render_prompt,
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
        let users =
            documents
                .iter()
                .map(|d| {
                    if is_blank(d) { Ok(String::new()) } else { render_prompt(&self.template, d, o.max_document_chars) }
                })
                .collect::<Result<Vec<_>>>()?;
        let sample = |jobs: &[(usize, usize)], temperature: f32| -> Result<Vec<String>> {
            let requests: Vec<ChatRequest> = jobs
                .iter()
                .map(|&(d, j)| {
                    let mut r = ChatRequest::new(vec![ChatMessage::user(users[d].clone())], o.max_new);
                    r.temperature = temperature;
                    r.top_p = o.top_p;
                    r.seed = Some(o.sample_seed(&documents[d].id, j));
                    r
                })
                .collect();
            self.served
                .chat_all(&requests)
                .into_iter()
                .map(|reply| Ok(reply?.text.trim_start().lines().next().unwrap_or("").to_owned()))
                .collect()
        };
        let record = |doc: &Document, j: usize, text: String| {
            question(doc, &self.agent, j, text, Some(self.provenance(o.sample_seed(&doc.id, j))))
        };
        generate_rounds(documents, n, o, sample, record)
    }
}
