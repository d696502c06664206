//! The generation loop: forward pass, KV cache and sampler, kept apart and joined here.

use std::collections::VecDeque;
use std::ops::ControlFlow;

use burn::prelude::*;

use crate::error::{Error, Result};
use crate::llama::{KvCache, Llama};
use crate::native::{NativeLlama, SeqCache};
use crate::sampler::Sampler;

/// Generates up to `max_new` tokens after `prompt` (one sequence), stopping early at any of
/// `stop` tokens (not included). `on_token` sees each token as it is chosen (streaming) and
/// may stop generation (`ControlFlow::Break`) or fail it (`Err`, returned as is; the error
/// type is the caller's, so a streaming writer's I/O error needs no detour). Returns the
/// generated tokens.
pub fn generate<B: Backend, E: From<Error>>(
    model: &Llama<B>,
    prompt: &[u32],
    max_new: usize,
    stop: &[u32],
    sampler: &mut Sampler,
    mut on_token: impl FnMut(u32) -> Result<ControlFlow<()>, E>,
) -> Result<Vec<u32>, E> {
    let mut out =
        generate_batch(model, &[prompt.to_vec()], max_new, stop, std::slice::from_mut(sampler), |_, token| {
            on_token(token)
        })?;
    Ok(out.pop().unwrap_or_default())
}

/// The `on_token` of a caller that only wants the tokens: never stops a sequence, never fails.
pub fn every_token(_: usize, _: u32) -> Result<ControlFlow<()>> {
    Ok(ControlFlow::Continue(()))
}

/// Generates for many prompts at once: the prompts are left-padded to the longest (padding is
/// masked and positions count from each prompt's first token, so every sequence decodes as it
/// would alone), then one token per unfinished sequence is decoded per step through the KV
/// cache. Sequence `i` draws from `samplers[i]` (seed them differently for different samples),
/// ends at a `stop` token (not included), after `max_new` tokens, or when `on_token(i, token)`
/// returns `Ok(ControlFlow::Break(()))`; finished sequences leave the batch. An error from
/// `on_token` ends the whole batch and is returned. An empty prompt generates nothing.
/// [`generate_continuous`] bounds how many decode at once.
///
/// Errors: `samplers` and `prompts` of different lengths; a prompt plus `max_new` longer than
/// the model's positions (checked before any work); token ids outside the vocabulary.
pub fn generate_batch<B: Backend, E: From<Error>>(
    model: &Llama<B>,
    prompts: &[Vec<u32>],
    max_new: usize,
    stop: &[u32],
    samplers: &mut [Sampler],
    on_token: impl FnMut(usize, u32) -> Result<ControlFlow<()>, E>,
) -> Result<Vec<Vec<u32>>, E> {
    generate_continuous(model, prompts, max_new, stop, samplers, prompts.len(), on_token)
}

/// [`generate_batch`] with at most `slots` sequences decoding at once (continuous batching):
/// on the CPU kernels, a sequence that finishes hands its slot to the next waiting prompt at
/// once (the prompts newly admitted run their prompt pass together, then decode with the
/// others), so a batch never waits on its longest member; on burn's other backends the
/// prompts run in consecutive batches of `slots`. Prompts are admitted in order, and sequence
/// `i` still draws from `samplers[i]` alone, so its tokens do not depend on `slots` beyond the
/// products' rounding (a row's product may take another path in a step of another size).
/// `slots` 0 is taken as 1.
///
/// Errors: as [`generate_batch`].
pub fn generate_continuous<B: Backend, E: From<Error>>(
    model: &Llama<B>,
    prompts: &[Vec<u32>],
    max_new: usize,
    stop: &[u32],
    samplers: &mut [Sampler],
    slots: usize,
    mut on_token: impl FnMut(usize, u32) -> Result<ControlFlow<()>, E>,
) -> Result<Vec<Vec<u32>>, E> {
    if samplers.len() != prompts.len() {
        let (expected, batch) = (samplers.len(), prompts.len());
        return Err(Error::BatchMismatch { what: "the samplers", expected, batch }.into());
    }
    let mut out = vec![Vec::new(); prompts.len()];
    let mut waiting: VecDeque<usize> = (0..prompts.len()).filter(|&i| !prompts[i].is_empty()).collect();
    let longest = waiting.iter().map(|&i| prompts[i].len()).max().unwrap_or(0);
    if waiting.is_empty() || max_new == 0 {
        return Ok(out);
    }
    // The last generated token is never fed back, hence the - 1.
    let len = longest.saturating_add(max_new - 1);
    if len > model.max_positions() {
        return Err(Error::TooLong { len, max: model.max_positions() }.into());
    }
    let slots = slots.max(1);
    // `active[row]` is the prompt decoding in row `row`; `last` holds each row's logits.
    let (mut decoder, mut active, mut last) = (None::<Decoder<'_, B>>, Vec::<usize>::new(), Vec::new());
    loop {
        let admits = decoder.as_ref().is_none_or(Decoder::admits);
        if admits && active.len() < slots && !waiting.is_empty() {
            let take = (slots - active.len()).min(waiting.len());
            let new: Vec<usize> = waiting.drain(..take).collect();
            let seqs: Vec<&[u32]> = new.iter().map(|&i| prompts[i].as_slice()).collect();
            let logits = match decoder.as_mut() {
                Some(d) => d.admit(&seqs, max_new)?,
                None => {
                    let (d, logits) = Decoder::start(model, &seqs, max_new)?;
                    decoder = Some(d);
                    logits
                }
            };
            last.extend_from_slice(&logits);
            active.extend(new);
        }
        if active.is_empty() {
            break;
        }
        let vocab = last.len() / active.len(); // one row per active sequence: its last position
        let (mut keep, mut next) = (Vec::new(), Vec::new());
        for (row, &i) in active.iter().enumerate() {
            let token = samplers[i].sample(&last[row * vocab..(row + 1) * vocab]) as u32;
            if stop.contains(&token) {
                continue;
            }
            out[i].push(token);
            if on_token(i, token)?.is_continue() && out[i].len() < max_new {
                keep.push(row);
                next.push(token);
            }
        }
        last.clear();
        if keep.len() < active.len() {
            active = keep.iter().map(|&row| active[row]).collect();
            match decoder.as_mut() {
                // A decoder that cannot admit is dropped once empty; the next batch starts anew.
                Some(d) if keep.is_empty() && !d.admits() => decoder = None,
                Some(d) => d.retain(&keep),
                None => {}
            }
        }
        if let (Some(d), false) = (decoder.as_mut(), next.is_empty()) {
            last = d.step(&next)?;
        }
    }
    Ok(out)
}

/// Where decoding runs: burn's ops over a padded batch, or the CPU kernels over per-sequence
/// caches (on `Flex`, see [`crate::native`]).
enum Decoder<'m, B: Backend> {
    Burn { model: &'m Llama<B>, cache: KvCache<B> },
    Native { model: std::sync::Arc<NativeLlama>, caches: Vec<SeqCache> },
}

impl<'m, B: Backend> Decoder<'m, B> {
    /// Runs the prompts (non-empty) and returns the decoder with the logits `[prompts, vocab]`
    /// at each prompt's last position.
    fn start(model: &'m Llama<B>, prompts: &[&[u32]], max_new: usize) -> Result<(Self, Vec<f32>)> {
        if let Some(native) = crate::native::native(model)? {
            // The last generated token is never fed back, hence the - 1. Identical prompts (n
            // samples) and a prefix common to all run once.
            let (caches, logits) = native.prefill_shared(prompts, max_new - 1)?;
            return Ok((Decoder::Native { model: native, caches }, logits));
        }
        let longest = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
        let pads: Vec<usize> = prompts.iter().map(|p| longest - p.len()).collect();
        let mut ids = Vec::with_capacity(prompts.len() * longest);
        for (p, &pad) in prompts.iter().zip(&pads) {
            ids.extend(std::iter::repeat_n(0, pad));
            ids.extend_from_slice(p);
        }
        let mut cache = KvCache::with_left_padding(model.num_layers(), pads);
        let logits = model.next_logits(&ids, prompts.len(), &mut cache)?;
        Ok((Decoder::Burn { model, cache }, last_logits(logits)?))
    }

    /// Whether sequences may join while others decode (the CPU kernels' per-sequence caches;
    /// burn's padded batch cannot).
    fn admits(&self) -> bool {
        matches!(self, Decoder::Native { .. })
    }

    /// Runs the prompts (non-empty) into new sequences after the current ones and returns
    /// their logits `[prompts, vocab]`, as [`start`](Self::start) does; only when
    /// [`admits`](Self::admits).
    fn admit(&mut self, prompts: &[&[u32]], max_new: usize) -> Result<Vec<f32>> {
        match self {
            Decoder::Native { model, caches } => {
                let (new, logits) = model.prefill_shared(prompts, max_new - 1)?;
                caches.extend(new);
                Ok(logits)
            }
            Decoder::Burn { .. } => Err(Error::Backend("burn's padded batch admits no sequence mid-way".into())),
        }
    }

    /// Keeps only the sequences at `rows` (ascending).
    fn retain(&mut self, rows: &[usize]) {
        match self {
            Decoder::Burn { cache, .. } => cache.retain_rows(rows),
            Decoder::Native { caches, .. } => {
                let mut index = 0;
                caches.retain(|_| {
                    index += 1;
                    rows.binary_search(&(index - 1)).is_ok()
                });
            }
        }
    }

    /// Feeds one token per sequence and returns the next logits `[sequences, vocab]`.
    fn step(&mut self, next: &[u32]) -> Result<Vec<f32>> {
        match self {
            Decoder::Burn { model, cache } => last_logits(model.next_logits(next, next.len(), cache)?),
            Decoder::Native { model, caches } => {
                let seqs: Vec<&[u32]> = next.iter().map(std::slice::from_ref).collect();
                model.forward(&seqs, caches, &vec![vec![0]; next.len()])
            }
        }
    }
}

/// The values of logits `[batch, 1, vocab]`.
fn last_logits<B: Backend>(logits: Tensor<B, 3>) -> Result<Vec<f32>> {
    let [batch, _, vocab] = logits.dims();
    logits
        .reshape([batch * vocab])
        .into_data()
        .to_vec::<f32>()
        .map_err(|e| Error::Backend(format!("reading logits: {e:?}")))
}
