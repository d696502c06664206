//! Text in, text out: tokenisation, batched generation and stop strings together.

use std::ops::ControlFlow;

use burn::prelude::*;

use crate::chat::ChatMessage;
use crate::error::{Error, Result};
use crate::generate::generate_continuous;
use crate::llama::Llama;
use crate::sampler::Sampler;
use crate::tokenizer::{TextStream, Tokenizer};

/// Sampling and stopping settings of a text completion.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionOptions {
    /// Most tokens generated per prompt.
    pub max_new: usize,
    /// 0 is greedy decoding.
    pub temperature: f32,
    /// Sample among the `k` most likely tokens only.
    pub top_k: Option<usize>,
    /// Nucleus sampling threshold.
    pub top_p: Option<f32>,
    /// Seed of prompt 0's sampler; prompt `i` uses `seed + i`, so a prompt's output does not
    /// depend on which other prompts share its batch.
    pub seed: u64,
    /// Texts that end a completion (not included in it), besides the model's stop tokens.
    pub stop: Vec<String>,
    /// At most this many prompts decode at once, a finished one's place taken by the next
    /// ([`generate_continuous`]); 0: all at once.
    pub slots: usize,
}

impl Default for CompletionOptions {
    fn default() -> Self {
        CompletionOptions {
            max_new: 256,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 0,
            stop: Vec::new(),
            slots: 0,
        }
    }
}

impl CompletionOptions {
    /// The sampler of prompt `index`: these settings, seeded with `seed + index`.
    pub fn sampler(&self, index: usize) -> Sampler {
        self.sampler_seeded(self.seed.wrapping_add(index as u64))
    }

    /// A sampler with these settings and the given seed (for callers that derive each
    /// prompt's seed themselves, with [`complete_with`]).
    pub fn sampler_seeded(&self, seed: u64) -> Sampler {
        let mut s = Sampler::new(self.temperature, seed);
        if let Some(k) = self.top_k {
            s = s.top_k(k);
        }
        if let Some(p) = self.top_p {
            s = s.top_p(p);
        }
        s
    }
}

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token or stop string.
    Stop,
    /// `max_new` tokens.
    Length,
}

/// One generated text.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The text, special tokens and any stop string left out.
    pub text: String,
    /// The generated token ids (up to and including the token that completed a stop string).
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub finish: FinishReason,
}

/// The prompt text for a conversation, rendered with the model's chat template, ending where
/// the assistant's reply begins.
pub fn chat_prompt(tokenizer: &Tokenizer, messages: &[ChatMessage]) -> Result<String> {
    let template = tokenizer.chat_template().ok_or_else(|| Error::Template("the model has no chat template".into()))?;
    template.render(messages, true)
}

/// Completes every prompt (text, e.g. from [`chat_prompt`]) in one batch, or `options.slots`
/// at a time; see [`generate_continuous`]. Generation stops at the tokenizer's stop tokens
/// ([`Tokenizer::stop_ids`]) and at `options.stop` strings.
pub fn complete<B: Backend>(
    model: &Llama<B>,
    tokenizer: &Tokenizer,
    prompts: &[String],
    options: &CompletionOptions,
) -> Result<Vec<Completion>> {
    let mut samplers: Vec<Sampler> = (0..prompts.len()).map(|i| options.sampler(i)).collect();
    complete_with(model, tokenizer, prompts, options, &mut samplers)
}

/// [`complete`] with one sampler per prompt chosen by the caller (`options`' sampling settings
/// and seed are then unused): a prompt's output can depend on its own seed only, whatever
/// batch it shares. One sampler per prompt, or [`Error::BatchMismatch`].
pub fn complete_with<B: Backend>(
    model: &Llama<B>,
    tokenizer: &Tokenizer,
    prompts: &[String],
    options: &CompletionOptions,
    samplers: &mut [Sampler],
) -> Result<Vec<Completion>> {
    let ids = prompts.iter().map(|p| tokenizer.encode(p, true)).collect::<Result<Vec<_>>>()?;
    let mut texts: Vec<TextStream<'_>> = (0..prompts.len()).map(|_| TextStream::new(tokenizer, true)).collect();
    let slots = if options.slots == 0 { prompts.len() } else { options.slots };
    let stops = tokenizer.stop_ids();
    let tokens = generate_continuous(model, &ids, options.max_new, &stops, samplers, slots, |i, token| {
        if options.stop.is_empty() {
            return Ok(ControlFlow::Continue(()));
        }
        texts[i].push(token)?;
        let stopped = options.stop.iter().any(|s| texts[i].text().contains(s.as_str()));
        Ok::<_, Error>(if stopped { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
    })?;
    tokens
        .into_iter()
        .map(|tokens| {
            let mut text = tokenizer.decode(&tokens, true)?;
            let cut = options.stop.iter().filter_map(|s| text.find(s.as_str())).min();
            let finish =
                if cut.is_some() || tokens.len() < options.max_new { FinishReason::Stop } else { FinishReason::Length };
            if let Some(cut) = cut {
                text.truncate(cut);
            }
            Ok(Completion { text, tokens, finish })
        })
        .collect()
}
