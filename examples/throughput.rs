//! Throughput of the model runtime and the trainer on one device: greedy decoding (one
//! sequence and batches), batched scoring, and training steps (full fine-tuning, and LoRA
//! with `--lora-rank`), with the model-FLOPs utilisation of training. On a GPU it first checks
//! that the CUDA backend computes the same logits as the CPU backend for the same weights.
//!
//! ```text
//! cargo run --release -p kailin-examples --example throughput -- --device cpu
//! cargo run --release -p kailin-examples --features cuda --example throughput -- --device cuda --rows 16 --seq 512
//! ```
//!
//! Without `--model` the weights are SmolLM2-135M's architecture filled with deterministic
//! pseudo-random values (throughput does not depend on the values; the model file need not
//! travel to the machine being measured). With `--model` a GGUF file or Hugging Face
//! directory is loaded instead.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::backend::Autodiff;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use clap::Parser;
use kailin_lm::{Llama, LlamaConfig, LoraConfig, Sampler, generate_batch, score};
use kailin_train::{Encoded, Row, TrainOptions, cpt};

#[derive(Parser, Debug)]
struct Args {
    /// `cpu` (burn's Flex) or `cuda` (needs `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// A GGUF file or Hugging Face directory; without it, SmolLM2-135M's architecture with
    /// deterministic pseudo-random weights.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Batch sizes of the decoding runs.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16])]
    batches: Vec<usize>,
    /// New tokens per decoded sequence.
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// Rows per training step.
    #[arg(long, default_value_t = 4)]
    rows: usize,
    /// Predicted tokens per training row (also the scored sequence length).
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Timed training steps (after two warm-up steps).
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// LoRA ranks to train with besides full fine-tuning (`0` alone: full fine-tuning only).
    #[arg(long, value_delimiter = ',', default_values_t = [0usize])]
    lora_rank: Vec<usize>,
    /// Peak FLOP/s of the device, to report model-FLOPs utilisation (e.g. 67e12 for an H100's
    /// f32 units).
    #[arg(long)]
    peak_flops: Option<f64>,
    /// Skip parts: any of `generate`, `score`, `train`, `check`.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
}

/// SmolLM2-135M's `config.json` (architecture fields only).
const SMOLLM2_135M: &str = r#"{"model_type": "llama", "vocab_size": 49152, "hidden_size": 576,
  "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
  "num_key_value_heads": 3, "rope_theta": 100000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": true}"#;

fn main() -> Result<()> {
    let args = Args::parse();
    match args.device.as_str() {
        "cpu" => run::<Autodiff<burn::backend::Flex>>(&args, &Default::default()),
        #[cfg(feature = "cuda")]
        "cuda" => {
            let device = kailin_lm::cuda_device(0)?;
            if !args.skip.iter().any(|s| s == "check") {
                check_cuda_against_cpu(&device)?;
            }
            run::<Autodiff<burn::backend::Cuda>>(&args, &device)
        }
        #[cfg(not(feature = "cuda"))]
        "cuda" => bail!("built without CUDA: add --features cuda"),
        other => bail!("unknown device {other:?} (cpu, cuda)"),
    }
}

/// A deterministic pseudo-random value in `[-scale, scale]` for element `i` of tensor `name`.
fn pseudo_random(name: &str, i: usize, scale: f32) -> f32 {
    let mut z = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    z = z.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
}

/// The model to measure: loaded, or SmolLM2-135M's architecture with pseudo-random weights.
fn load_model<B: Backend>(args: &Args, positions: usize, device: &B::Device) -> Result<(Llama<B>, LlamaConfig)> {
    if let Some(path) = &args.model {
        let (model, config, _) = kailin_lm::load::<B>(path, positions, device)?;
        return Ok((model, config));
    }
    let config = LlamaConfig::from_hf_json(SMOLLM2_135M)?;
    Ok((pseudo_random_model(&config, positions, device)?, config))
}

fn pseudo_random_model<B: Backend>(config: &LlamaConfig, positions: usize, device: &B::Device) -> Result<Llama<B>> {
    Ok(Llama::from_weights(config, positions, device, |name, shape| {
        let n: usize = shape.iter().product();
        Ok(if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else {
            (0..n).map(|i| pseudo_random(name, i, 0.05)).collect()
        })
    })?)
}

/// Matrix-product parameters (every projection and the output head; not the embedding lookup).
fn matmul_params(c: &LlamaConfig) -> f64 {
    let (h, hd, ff) = (c.hidden_size, c.head_dim(), c.intermediate_size);
    let per_layer = h * c.num_heads * hd * 2 + h * c.num_kv_heads * hd * 2 + 3 * h * ff;
    (per_layer * c.num_layers + h * c.vocab_size) as f64
}

/// Training FLOPs per token: 6 per matrix-product parameter (4 with LoRA: frozen weights need
/// no weight gradient; the adapters' own work is neglected), plus causal attention's
/// `6 · layers · seq · heads · head_dim` (scores and weighted sum, forward and backward, half
/// of the square).
fn train_flops_per_token(c: &LlamaConfig, seq: usize, lora: bool) -> f64 {
    let per_param = if lora { 4.0 } else { 6.0 };
    per_param * matmul_params(c) + 6.0 * (c.num_layers * seq * c.num_heads * c.head_dim()) as f64
}

/// Runs the measurements: inference on `A`'s inner backend, training on `A`.
fn run<A: AutodiffBackend>(args: &Args, device: &A::Device) -> Result<()> {
    let positions = (args.seq + 1).max(16 + args.new_tokens).max(512);
    let (model, config) = load_model::<A::InnerBackend>(args, positions, device)?;
    let skip = |part: &str| args.skip.iter().any(|s| s == part);
    println!(
        "device {}, model {}",
        args.device,
        args.model.as_ref().map_or("SmolLM2-135M (pseudo-random)".into(), |p| p.display().to_string())
    );
    let prompt = vec![1u32, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198];
    if !skip("generate") {
        for &batch in &args.batches {
            let prompts = vec![prompt.clone(); batch];
            let run = || {
                let mut samplers = vec![Sampler::greedy(); batch];
                generate_batch(&model, &prompts, args.new_tokens, &[], &mut samplers, kailin_lm::every_token)
            };
            run()?; // warm-up: kernels compiled and tuned
            let (mut best, mut times) = (f64::MAX, Vec::new());
            for _ in 0..3 {
                let t = Instant::now();
                let out = run()?;
                let s = t.elapsed().as_secs_f64();
                anyhow::ensure!(out.iter().all(|o| o.len() == args.new_tokens), "a sequence stopped early");
                best = best.min(s);
                times.push(s);
            }
            times.sort_by(f64::total_cmp);
            let tokens = (batch * args.new_tokens) as f64;
            println!(
                "generate  batch {batch:>3}: {:>9.1} tok/s median, {:>9.1} best (16-token prompt + {} new tokens each)",
                tokens / times[1],
                tokens / best,
                args.new_tokens
            );
        }
    }
    if !skip("score") {
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = (0..16)
            .map(|r| {
                let ids: Vec<u32> = (0..args.seq).map(|i| ((r * 7919 + i * 104_729) % 40_000) as u32 + 100).collect();
                (ids[..args.seq / 2].to_vec(), ids[args.seq / 2..].to_vec())
            })
            .collect();
        score(&model, &pairs)?;
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            score(&model, &pairs)?;
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        println!("score     16 × {} tokens: {:>9.1} tok/s median", args.seq, (16 * args.seq) as f64 / times[1]);
    }
    if !skip("train") {
        let rows: Vec<Row> = (0..args.rows * (args.steps + 2))
            .map(|r| {
                let ids: Vec<u32> = (0..=args.seq).map(|i| ((r * 7919 + i * 104_729) % 40_000) as u32 + 100).collect();
                Row { weights: vec![1.0; args.seq], ids, segments: None }
            })
            .collect();
        let data = Encoded { items: rows, truncated: 0 };
        let opts = TrainOptions { batch_size: args.rows, lr: 1e-5, ..Default::default() };
        for &rank in &args.lora_rank {
            let policy = load_model::<A>(args, positions, device)?.0;
            let policy = if rank == 0 { policy } else { policy.with_lora(&LoraConfig::new(rank))? };
            let (_, report) = cpt::train(policy, &data, &[], &opts, |_| ())?;
            let flops = train_flops_per_token(&config, args.seq, rank > 0);
            let timed = &report.steps[2..];
            let seconds: f64 = timed.iter().map(|s| s.seconds).sum();
            let tokens: usize = timed.iter().map(|s| s.tokens).sum();
            let rate = tokens as f64 / seconds;
            let what = if rank == 0 { "full".to_owned() } else { format!("LoRA r={rank}") };
            let mfu = args.peak_flops.map_or(String::new(), |p| format!(", MFU {:.1}%", 100.0 * rate * flops / p));
            println!(
                "train     {what:<9} {} × {}: {rate:>9.1} tok/s ({:.2} s/step, {:.1} TFLOP/s at {:.2} GFLOP/token{mfu}), loss {:.3} → {:.3}",
                args.rows,
                args.seq,
                seconds / timed.len() as f64,
                rate * flops / 1e12,
                flops / 1e9,
                report.steps[0].loss,
                report.steps.last().map_or(f64::NAN, |s| s.loss),
            );
        }
    }
    Ok(())
}

/// The same pseudo-random weights on the CPU and on the GPU must give the same logits.
#[cfg(feature = "cuda")]
fn check_cuda_against_cpu(device: &burn::backend::cuda::CudaDevice) -> Result<()> {
    use burn::backend::{Cuda, Flex};
    let config = LlamaConfig::from_hf_json(SMOLLM2_135M)?;
    let ids: Vec<i64> = (0..2 * 24).map(|i| (i * 104_729 % 40_000) as i64 + 100).collect();
    let logits = |out: Tensor<_, 3>| -> Vec<f32> { out.into_data().to_vec::<f32>().unwrap_or_default() };
    let cpu = pseudo_random_model::<Flex>(&config, 64, &Default::default())?;
    let want = logits(cpu.forward(Tensor::from_data(TensorData::new(ids.clone(), [2, 24]), &Default::default()))?);
    let gpu = pseudo_random_model::<Cuda>(&config, 64, device)?;
    let got: Vec<f32> = gpu
        .forward(Tensor::from_data(TensorData::new(ids, [2, 24]), device))?
        .into_data()
        .to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("logits: {e:?}"))?;
    let (mut diff, mut norm, mut top1) = (0.0f64, 0.0f64, 0usize);
    for (w, g) in want.chunks(config.vocab_size).zip(got.chunks(config.vocab_size)) {
        let argmax = |v: &[f32]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
        top1 += usize::from(argmax(w) == argmax(g));
        for (a, b) in w.iter().zip(g) {
            diff += f64::from(a - b).powi(2);
            norm += f64::from(*a).powi(2);
        }
    }
    let rel = (diff / norm).sqrt();
    println!("check     CUDA vs CPU logits (2 × 24 tokens): relative L2 error {rel:.2e}, top-1 agreement {top1}/48");
    anyhow::ensure!(rel < 1e-2 && top1 >= 46, "the CUDA backend's logits differ from the CPU backend's");
    check_matmul_precision(device)
}

/// Which precision the GPU's f32 matrix products really have: the relative error of a
/// 512 × 512 × 512 product against an f64 reference, next to the CPU's f32 product (about 1e-7
/// for f32 arithmetic; tensor cores' TF32, with its 10-bit mantissa, gives about 1e-4).
#[cfg(feature = "cuda")]
fn check_matmul_precision(device: &burn::backend::cuda::CudaDevice) -> Result<()> {
    use burn::backend::{Cuda, Flex};
    const N: usize = 512;
    let a: Vec<f32> = (0..N * N).map(|i| pseudo_random("a", i, 1.0)).collect();
    let b: Vec<f32> = (0..N * N).map(|i| pseudo_random("b", i, 1.0)).collect();
    let mut want = vec![0.0f64; N * N];
    for i in 0..N {
        for k in 0..N {
            let x = f64::from(a[i * N + k]);
            for (w, &y) in want[i * N..(i + 1) * N].iter_mut().zip(&b[k * N..(k + 1) * N]) {
                *w += x * f64::from(y);
            }
        }
    }
    fn product<B: Backend>(a: &[f32], b: &[f32], device: &B::Device) -> Result<Vec<f32>> {
        let t = |v: &[f32]| Tensor::<B, 2>::from_data(TensorData::new(v.to_vec(), [N, N]), device);
        t(a).matmul(t(b)).into_data().to_vec::<f32>().map_err(|e| anyhow::anyhow!("product: {e:?}"))
    }
    let error = |got: &[f32]| {
        let (mut diff, mut norm) = (0.0f64, 0.0f64);
        for (&g, &w) in got.iter().zip(&want) {
            diff += (f64::from(g) - w).powi(2);
            norm += w.powi(2);
        }
        (diff / norm).sqrt()
    };
    let gpu = error(&product::<Cuda>(&a, &b, device)?);
    let cpu = error(&product::<Flex>(&a, &b, &Default::default())?);
    println!("check     f32 matmul {N}³ vs f64: CUDA relative L2 error {gpu:.2e}, CPU {cpu:.2e} (TF32 ~1e-4)");
    Ok(())
}
