//! The generation loop: forward pass, KV cache and sampler, kept apart and joined here.

use burn::prelude::*;

use crate::error::Result;
use crate::llama::{KvCache, Llama};
use crate::sampler::Sampler;

/// Generates up to `max_new` tokens after `prompt` (one sequence), stopping early at any of
/// `stop` tokens (not included). `on_token` sees each token as it is chosen (streaming) and
/// may return `false` to stop. Returns the generated tokens.
pub fn generate<B: Backend>(
    model: &Llama<B>,
    prompt: &[u32],
    max_new: usize,
    stop: &[u32],
    sampler: &mut Sampler,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<Vec<u32>> {
    let device = model.devices().into_iter().next().unwrap_or_default();
    let tensor = |t: &[u32]| {
        let ids: Vec<i64> = t.iter().map(|&x| i64::from(x)).collect();
        Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, t.len()]), &device)
    };
    let mut cache = KvCache::new(model.num_layers());
    let mut out = Vec::new();
    if prompt.is_empty() || max_new == 0 {
        return Ok(out);
    }
    let mut logits = model.forward_cached(tensor(prompt), &mut cache)?;
    loop {
        let [_, seq, vocab] = logits.dims();
        let last = logits.slice([0..1, seq - 1..seq]).reshape([vocab]).into_data();
        let last = last.to_vec::<f32>().unwrap_or_default();
        let next = sampler.sample(&last) as u32;
        if stop.contains(&next) {
            break;
        }
        out.push(next);
        if !on_token(next) || out.len() >= max_new {
            break;
        }
        logits = model.forward_cached(tensor(&[next]), &mut cache)?;
    }
    Ok(out)
}
