//! `cargo bench -p kailin-lm`: single-sequence greedy decoding of SmolLM2-135M-Instruct on
//! the CPU (burn's Flex backend), KV cache on. Needs `cargo xtask fetch-models`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

use std::sync::OnceLock;

use burn::backend::Flex;
use divan::Bencher;
use divan::counter::ItemsCount;
use kailin_lm::{Gguf, Llama, Sampler, generate};

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

const NEW: usize = 32;

/// Tokens per second of decoding: a 16-token ChatML prompt, then 32 greedy tokens.
#[divan::bench(sample_count = 5)]
fn decode_single_sequence(b: Bencher<'_, '_>) {
    let Some(model) = model() else { return };
    // <|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n
    let prompt = [1u32, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198];
    b.counter(ItemsCount::new(NEW))
        .bench(|| generate(model, &prompt, NEW, &[], &mut Sampler::greedy(), |_| true).unwrap());
}
