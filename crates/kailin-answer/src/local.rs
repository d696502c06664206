//! The local answer agent: a `kailin-lm` model.

use burn::prelude::Backend;
use kailin_core::{CptRecord, Provenance};
use kailin_lm::{ChatMessage, CompletionOptions, FinishReason, Llama, PromptTemplate, Tokenizer};

use crate::answer::{Answer, AnswerGenerator, default_template, render_prompt};
use crate::error::{Error, Result};
use kailin_lm::Usage;

/// Generation settings of [`LocalAnswerer`].
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOptions {
    /// Most new tokens per answer.
    pub max_new: usize,
    /// Sampling temperature (0: greedy).
    pub temperature: f32,
    /// Seed of the sampler.
    pub seed: u64,
    /// Sequences decoding at once (a finished one's slot is refilled from the call's other
    /// prompts: continuous batching).
    pub batch_size: usize,
    /// A system turn before the prompt, if the model's template takes one.
    pub system: Option<String>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions { max_new: 256, temperature: 0.0, seed: 0, batch_size: 8, system: None }
    }
}

/// Answers with a local model: the prompt template as the user turn of the model's chat
/// template, batched generation.
#[derive(Debug)]
pub struct LocalAnswerer<B: Backend> {
    model: Llama<B>,
    tokenizer: Tokenizer,
    template: PromptTemplate,
    options: LocalOptions,
    model_id: String,
}

impl<B: Backend> LocalAnswerer<B> {
    /// An agent on `model`; `model_id` goes into provenance.
    pub fn new(
        model: Llama<B>,
        tokenizer: Tokenizer,
        model_id: impl Into<String>,
        options: LocalOptions,
    ) -> Result<Self> {
        if options.max_new == 0 || options.batch_size == 0 {
            return Err(Error::Options("max_new and batch_size must be at least 1".into()));
        }
        if !(options.temperature.is_finite() && options.temperature >= 0.0) {
            return Err(Error::Options("temperature must be a finite number ≥ 0".into()));
        }
        if tokenizer.chat_template().is_none() {
            return Err(Error::Options("the model has no chat template (an instruction-tuned model is needed)".into()));
        }
        Ok(LocalAnswerer { model, tokenizer, template: default_template(), options, model_id: model_id.into() })
    }

    /// Uses `template` for the prompts.
    pub fn with_template(mut self, template: PromptTemplate) -> Self {
        self.template = template;
        self
    }

    fn batch(&self, records: &[CptRecord]) -> Result<Vec<Answer>> {
        let prompts = records
            .iter()
            .map(|r| {
                let mut messages = Vec::with_capacity(2);
                if let Some(system) = &self.options.system {
                    messages.push(ChatMessage::system(system));
                }
                messages.push(ChatMessage::user(render_prompt(&self.template, r)?));
                Ok(kailin_lm::chat_prompt(&self.tokenizer, &messages)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let options = CompletionOptions {
            max_new: self.options.max_new,
            temperature: self.options.temperature,
            seed: self.options.seed,
            // `batch_size` sequences decode at once, a finished one's slot refilled.
            slots: self.options.batch_size,
            ..Default::default()
        };
        let out = kailin_lm::complete(&self.model, &self.tokenizer, &prompts, &options)?;
        prompts
            .iter()
            .zip(out)
            .map(|(p, c)| {
                let prompt_tokens = self.tokenizer.encode(p, true)?.len() as u64;
                Ok(Answer {
                    text: c.text,
                    finish_reason: Some(match c.finish {
                        FinishReason::Stop => "stop".into(),
                        FinishReason::Length => "length".into(),
                    }),
                    usage: Some(Usage { prompt_tokens, completion_tokens: c.tokens.len() as u64 }),
                    ..Default::default()
                })
            })
            .collect()
    }
}

impl<B: Backend> AnswerGenerator for LocalAnswerer<B> {
    fn provenance(&self) -> Provenance {
        Provenance {
            agent: "answer-agent".into(),
            model: Some(self.model_id.clone()),
            seed: (self.options.temperature > 0.0).then_some(self.options.seed),
            detail: Some(format!("prompt={} backend=local", self.template.version())),
        }
    }

    fn answer(&self, records: &[CptRecord]) -> Vec<Result<Answer>> {
        match self.batch(records) {
            Ok(answers) => answers.into_iter().map(Ok).collect(),
            // The call fails as a whole: each of its records carries the error's text.
            Err(e) => {
                let text = e.to_string();
                let mut out = vec![Err(e)];
                out.extend((1..records.len()).map(|_| Err(Error::Batch(text.clone()))));
                out
            }
        }
    }
}
