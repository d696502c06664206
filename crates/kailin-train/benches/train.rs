//! `cargo bench -p kailin-train` (or `cargo xtask bench train`): training throughput of
//! SmolLM2-135M-Instruct on the CPU (burn's `Autodiff<Flex>`, f32), full fine-tuning: one
//! optimiser step of next-token training on 4 rows of 128 predicted tokens (forward, backward,
//! global-norm clipping, AdamW), and the same with LoRA adapters of rank 16 on the seven
//! projections (base frozen), and a LoRA step shaped like the pipeline's SFT (4 rows of 320
//! tokens whose last 64 are learned). On `Flex` the LoRA steps run on kailin-lm's CPU training
//! kernels; `KAILIN_LM_KERNELS=burn` runs them on burn's ops, for the comparison. Needs
//! `cargo xtask fetch-models`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

use burn::backend::{Autodiff, Flex};
use divan::Bencher;
use divan::counter::ItemsCount;
use kailin_lm::{Gguf, Llama, LoraConfig};
use kailin_train::{Encoded, Row, TrainOptions, cpt};

type A = Autodiff<Flex>;

fn main() {
    divan::main();
}

fn model() -> Option<Llama<A>> {
    let path = kailin_lm::smollm2_gguf()?;
    let Ok(g) = Gguf::open(&path) else {
        eprintln!("note: {} absent (cargo xtask fetch-models): nothing to benchmark", path.display());
        return None;
    };
    Some(Llama::from_gguf(&g, 512, &Default::default()).unwrap().0)
}

/// Rows per optimiser step, and predicted tokens per row.
const ROWS: usize = 4;
const SEQ: usize = 128;

/// `ROWS` rows of `seq` predicted tokens, the last `learned` of them weighted 1.
fn rows(seq: usize, learned: usize) -> Encoded<Row> {
    // Deterministic pseudo-text over the first 40k ids.
    let rows: Vec<Row> = (0..ROWS)
        .map(|r| {
            let ids: Vec<u32> = (0..=seq).map(|i| ((r * 7919 + i * 104_729) % 40_000) as u32 + 100).collect();
            let weights = (0..seq).map(|j| if j + learned >= seq { 1.0 } else { 0.0 }).collect();
            Row { weights, ids, segments: None }
        })
        .collect();
    Encoded { items: rows, truncated: 0 }
}

fn step(b: Bencher<'_, '_>, model: Llama<A>) {
    step_on(b, model, rows(SEQ, SEQ));
}

fn step_on(b: Bencher<'_, '_>, mut model: Llama<A>, data: Encoded<Row>) {
    let tokens = data.items.iter().map(|r| r.ids.len() - 1).sum::<usize>();
    let opts = TrainOptions { batch_size: ROWS, lr: 1e-5, ..Default::default() };
    b.counter(ItemsCount::new(tokens)).bench_local(|| {
        let (trained, report) = cpt::train(model.clone(), &data, &[], &opts, |_| ()).unwrap();
        assert_eq!(report.steps.len(), 1);
        model = trained;
    });
}

/// Tokens per second of full fine-tuning: one optimiser step over `ROWS × SEQ` tokens.
#[divan::bench(sample_count = 3)]
fn full_step(b: Bencher<'_, '_>) {
    let Some(model) = model() else { return };
    step(b, model);
}

/// The same with LoRA adapters (rank 16, alpha 16) on q, k, v, o, gate, up and down.
#[divan::bench(sample_count = 3)]
fn lora_step(b: Bencher<'_, '_>) {
    let Some(model) = model() else { return };
    step(b, model.with_lora(&LoraConfig::new(16)).unwrap());
}

/// LoRA as the pipeline's SFT uses it: 4 rows of 320 tokens, the last 64 learned (a prompt
/// and its answer); tokens/s counts every token read.
#[divan::bench(sample_count = 3)]
fn lora_sft_step(b: Bencher<'_, '_>) {
    let Some(model) = model() else { return };
    step_on(b, model.with_lora(&LoraConfig::new(16)).unwrap(), rows(320, 64));
}
