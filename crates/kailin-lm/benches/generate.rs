//! `cargo bench -p kailin-lm` (or `cargo xtask bench lm`): greedy decoding of
//! SmolLM2-135M-Instruct on the CPU (burn's Flex backend), KV cache on, one sequence and a
//! batch of 16, driven as the `kailin` binary drives the CPU backend (`on_cpu_threads`). Needs
//! `cargo xtask fetch-models`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

use std::sync::OnceLock;

use burn::backend::Flex;
use divan::Bencher;
use divan::counter::ItemsCount;
use kailin_lm::{Gguf, Llama, Sampler, generate_batch, on_cpu_threads};

fn main() {
    divan::main();
}

fn model() -> Option<&'static Llama<Flex>> {
    static MODEL: OnceLock<Option<Llama<Flex>>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = kailin_lm::smollm2_gguf()?;
            let Ok(g) = Gguf::open(&path) else {
                eprintln!("note: {} absent (cargo xtask fetch-models): nothing to benchmark", path.display());
                return None;
            };
            Some(Llama::from_gguf(&g, 512, &Default::default()).unwrap().0)
        })
        .as_ref()
}

/// New tokens per sequence.
const NEW: usize = 64;

/// Tokens per second of decoding: `batch` copies of a 16-token ChatML prompt (prefill
/// included), then 64 greedy tokens each (no stop token, so every sequence runs to 64).
#[divan::bench(args = [1, 16], sample_count = 3)]
fn decode(b: Bencher<'_, '_>, batch: usize) {
    let Some(model) = model() else { return };
    // <|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n
    let prompt = vec![1u32, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198];
    let prompts = vec![prompt; batch];
    b.counter(ItemsCount::new(NEW * batch)).bench(|| {
        let mut samplers = vec![Sampler::greedy(); batch];
        on_cpu_threads(|| generate_batch(model, &prompts, NEW, &[], &mut samplers, kailin_lm::every_token).unwrap())
    });
}

/// The prompt pass alone (one new token): `batch` copies of the 16-token prompt. Subtracted
/// from `decode`, it gives the decode steps' own rate.
#[divan::bench(args = [1, 16], sample_count = 3)]
fn prefill(b: Bencher<'_, '_>, batch: usize) {
    let Some(model) = model() else { return };
    let prompt = vec![1u32, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198];
    let prompts = vec![prompt; batch];
    b.counter(ItemsCount::new(16 * batch)).bench(|| {
        let mut samplers = vec![Sampler::greedy(); batch];
        on_cpu_threads(|| generate_batch(model, &prompts, 1, &[], &mut samplers, kailin_lm::every_token).unwrap())
    });
}

/// The evaluation's prompt pass: 8 prompts of 400 tokens each, the next-token
/// log-probabilities of three answers at each prompt's end (what `kailin eval pubmedqa` asks per
/// batch). Tokens per second of prompt.
#[divan::bench(sample_count = 3)]
fn prompt_pass(b: Bencher<'_, '_>) {
    let Some(model) = model() else { return };
    // Ordinary vocabulary ids (no special tokens), a different sequence per prompt.
    let prompts: Vec<Vec<u32>> =
        (0..8u32).map(|p| (0..400u32).map(|i| 300 + (i * 7919 + p * 104_729) % 40_000).collect()).collect();
    b.counter(ItemsCount::new(8 * 400usize))
        .bench(|| on_cpu_threads(|| kailin_lm::next_token_logprobs(model, &prompts, &[2_152, 1_473, 3_060]).unwrap()));
}
