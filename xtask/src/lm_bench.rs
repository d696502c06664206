//! `cargo xtask bench lm`: the language model side by side with llama.cpp (llama-cpp-python) on
//! the same GGUF file, token ids and threads, in one run: the prompt pass, decoding one
//! sequence, decoding a batch of 16 (against our one sequence), how close each comes to the
//! machine's limits, and the ratios; then one training step, LoRA and full, against PyTorch
//! (`transformers` + `peft`, same architecture, rows and threads), run where a Python can import
//! it and skipped with a message where none can.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::backend::Flex;
use kailin_lm::{Gguf, Llama, Sampler, Tokenizer, on_cpu_threads};

/// Options of the benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct LmBench {
    /// The Python with llama-cpp-python (default: $KAILIN_LLAMACPP_PYTHON, else the venv CI
    /// builds, ~/.cache/kailin/llamacpp-venv).
    #[arg(long, env = "KAILIN_LLAMACPP_PYTHON")]
    peer: Option<PathBuf>,
    /// A GGUF model (default: SmolLM2-135M-Instruct from the model cache).
    #[arg(long)]
    lm_model: Option<PathBuf>,
    /// Repeats of each measurement, both engines (their median is reported).
    #[arg(long, default_value_t = 3, value_parser = crate::cli::at_least_one())]
    lm_repeats: usize,
    /// The Python with torch, transformers and peft for the training peer (default:
    /// $KAILIN_TORCH_PYTHON, else the llama.cpp peer's, else python3).
    #[arg(long, env = "KAILIN_TORCH_PYTHON")]
    torch_python: Option<PathBuf>,
    /// Skip the training steps (both engines).
    #[arg(long)]
    skip_training: bool,
}

/// Prompt-pass shape of the issue: 8 prompts of 400 tokens.
const PROMPTS: usize = 8;
const PROMPT_LEN: usize = 400;
/// Decoding: a 16-token prompt, then this many tokens.
const DECODE_NEW: usize = 128;
const BATCH: usize = 16;
const BATCH_NEW: usize = 64;
/// Training steps: rows of this many tokens, every token learned; LoRA of this rank.
const TRAIN_ROWS: usize = 4;
const TRAIN_SEQ: usize = 256;
const LORA_RANK: usize = 16;

pub(crate) fn bench(data: &Path, o: &LmBench) -> Result<()> {
    let path = match &o.lm_model {
        Some(p) => p.clone(),
        None => kailin_lm::smollm2_gguf().context("no model cache directory (set KAILIN_MODELS)")?,
    };
    let gguf = Gguf::open(&path).with_context(|| format!("{} (run `cargo xtask fetch-models`)", path.display()))?;
    let (model, _) = Llama::<Flex>::from_gguf(&gguf, 1024, &Default::default())?;
    let tokenizer = Tokenizer::from_gguf(&gguf)?;
    let threads = on_cpu_threads(rayon::current_num_threads);
    // The weights a decoding step reads: every matrix as the file stores it.
    let weight_bytes: u64 = gguf.tensors().iter().filter(|t| t.dims.len() == 2).map(|t| t.bytes).sum();
    let block_params: u64 =
        gguf.tensors().iter().filter(|t| t.dims.len() == 2 && t.name.starts_with("blk.")).map(|t| t.elements()).sum();

    // Token ids both engines get: PubMedQA abstracts, joined and cut into 400-token prompts.
    let file = data.join("pubmedqa/ori_pqal.json");
    let (records, _) = kailin_corpus::read_pubmedqa(&file, false).with_context(|| file.display().to_string())?;
    let mut ids = Vec::new();
    for r in &records {
        ids.extend(tokenizer.encode(&r.document().text, false)?);
        if ids.len() >= (PROMPTS + BATCH) * PROMPT_LEN {
            break;
        }
    }
    anyhow::ensure!(ids.len() >= (PROMPTS + BATCH) * PROMPT_LEN, "too little text in {}", file.display());
    let prompts: Vec<Vec<u32>> = ids.chunks_exact(PROMPT_LEN).take(PROMPTS).map(<[u32]>::to_vec).collect();
    let short: Vec<Vec<u32>> =
        ids.chunks_exact(PROMPT_LEN).skip(PROMPTS).take(BATCH).map(|c| c[..16].to_vec()).collect();

    println!("{}: {threads} threads, median of {} repeats each", path.display(), o.lm_repeats);
    let peak = gemm_gflops();
    let (one_gbs, all_gbs) = read_bandwidth();
    println!(
        "machine: f32 GEMM (faer, 2048³) {peak:.1} GFLOP/s; read bandwidth {one_gbs:.1} GB/s one thread, {all_gbs:.1} GB/s all"
    );
    // Warm-up: the CPU kernels' copy of the weights is made at the first call.
    on_cpu_threads(|| kailin_lm::next_token_logprobs(&model, &prompts[..1], &[0]))?;

    let prompt_tok_s = median(o.lm_repeats, || {
        let started = Instant::now();
        on_cpu_threads(|| kailin_lm::next_token_logprobs(&model, &prompts, &[0]))?;
        Ok((PROMPTS * PROMPT_LEN) as f64 / started.elapsed().as_secs_f64())
    })?;
    let decode_tok_s = median(o.lm_repeats, || decode(&model, &short[..1], DECODE_NEW))?;
    let batch_tok_s = median(o.lm_repeats, || decode(&model, &short, BATCH_NEW))?;
    let gflops = 2.0 * block_params as f64 * prompt_tok_s / 1e9;
    let gbs = weight_bytes as f64 * decode_tok_s / 1e9;
    println!("\nkailin (CPU kernels, the file's blocks for decoding)");
    println!(
        "  prompt pass, {PROMPTS} × {PROMPT_LEN} tokens    {prompt_tok_s:8.1} tok/s  ({gflops:.1} GFLOP/s in the blocks' products: {:.0}% of the GEMM peak)",
        100.0 * gflops / peak
    );
    println!(
        "  decode, one sequence             {decode_tok_s:8.1} tok/s  ({gbs:.1} GB/s of weights read: {:.0}% of one thread's, {:.0}% of all threads' bandwidth)",
        100.0 * gbs / one_gbs,
        100.0 * gbs / all_gbs
    );
    println!(
        "  decode, batch of {BATCH}              {batch_tok_s:8.1} tok/s  ({:.2} × one sequence)",
        batch_tok_s / decode_tok_s
    );

    let python = o.peer.clone().or_else(|| default_venv("llamacpp-venv"));
    let Some(peer_python) = &python else {
        println!(
            "\nllama.cpp: no peer Python (--peer PYTHON with llama-cpp-python, or the venv `.ci/run` builds): not run"
        );
        return training_unless_skipped(&gguf, o.torch_python.clone(), threads, o);
    };
    let job = serde_json::json!({"prompts": prompts, "decode_prompt": short[0], "decode_new": DECODE_NEW, "repeats": o.lm_repeats});
    match peer(peer_python, "llamacpp_bench.py", &[path.display().to_string(), threads.to_string()], &job) {
        Ok(theirs) => {
            let (p, d) = (
                theirs["prompt_tok_s"].as_f64().unwrap_or(f64::NAN),
                theirs["decode_tok_s"].as_f64().unwrap_or(f64::NAN),
            );
            println!(
                "\nllama.cpp (llama-cpp-python {}, same file, ids and threads)",
                theirs["version"].as_str().unwrap_or("?")
            );
            println!("  prompt pass                      {p:8.1} tok/s");
            println!(
                "  decode, one sequence             {d:8.1} tok/s  ({:.1} GB/s of weights read)",
                weight_bytes as f64 * d / 1e9
            );
            println!(
                "\nratios (kailin ÷ llama.cpp): prompt pass {:.2}, decode {:.2}",
                prompt_tok_s / p,
                decode_tok_s / d
            );
        }
        Err(e) => println!("\nllama.cpp: not run ({e:#})"),
    }
    training_unless_skipped(&gguf, o.torch_python.clone().or(python), threads, o)
}

/// The training steps, unless `--skip-training`; PyTorch under `python` (default: python3).
fn training_unless_skipped(gguf: &Gguf, python: Option<PathBuf>, threads: usize, o: &LmBench) -> Result<()> {
    if o.skip_training {
        return Ok(());
    }
    training(gguf, &python.unwrap_or_else(|| PathBuf::from("python3")), threads, o)
}

/// One optimiser step of next-token training (forward, backward, clipping, AdamW) on
/// `TRAIN_ROWS × TRAIN_SEQ` tokens, LoRA and full, against PyTorch (same architecture, rows,
/// threads and step; `torch_cpu_train.py`); tokens per second, medians.
fn training(gguf: &Gguf, python: &Path, threads: usize, o: &LmBench) -> Result<()> {
    type A = burn::backend::Autodiff<Flex>;
    let rows: Vec<kailin_train::Row> = (0..TRAIN_ROWS)
        .map(|r| {
            // The same deterministic pseudo-text as the peer's (ids over the first 40k).
            let ids: Vec<u32> = (0..=TRAIN_SEQ).map(|i| ((r * 7919 + i * 104_729) % 40_000) as u32 + 100).collect();
            kailin_train::Row { weights: vec![1.0; TRAIN_SEQ], ids, segments: None }
        })
        .collect();
    let data = kailin_train::Encoded { items: rows, truncated: 0 };
    let tokens = (TRAIN_ROWS * TRAIN_SEQ) as f64;
    let opts = kailin_train::TrainOptions { batch_size: TRAIN_ROWS, lr: 1e-5, ..Default::default() };
    let (base, _) = Llama::<A>::from_gguf(gguf, 2 * TRAIN_SEQ, &Default::default())?;
    let rate = |model: Llama<A>| -> Result<f64> {
        let mut model = model;
        let mut step = || -> Result<f64> {
            let started = Instant::now();
            let (trained, report) =
                on_cpu_threads(|| kailin_train::cpt::train(model.clone(), &data, &[], &opts, |_| ()))?;
            anyhow::ensure!(report.steps.len() == 1, "one step expected");
            model = trained;
            Ok(tokens / started.elapsed().as_secs_f64())
        };
        step()?; // warm-up: the frozen weights' copy, first allocations
        median(o.lm_repeats, step)
    };
    let lora = rate(base.clone().with_lora(&kailin_lm::LoraConfig::new(LORA_RANK))?)?;
    let full = rate(base)?;
    println!(
        "\ntraining: one optimiser step on {TRAIN_ROWS} × {TRAIN_SEQ} tokens (forward, backward, clipping, AdamW)"
    );
    println!("  kailin, LoRA r{LORA_RANK} (CPU kernels)       {lora:8.1} tok/s");
    println!("  kailin, every weight (burn autodiff) {full:8.1} tok/s");
    let import = Command::new(python).args(["-c", "import torch, transformers, peft"]).stderr(Stdio::null()).status();
    if !matches!(import, Ok(s) if s.success()) {
        println!(
            "PyTorch: `import torch, transformers, peft` fails in {} (--torch-python): the training ratios are not measured",
            python.display()
        );
        return Ok(());
    }
    let args = [
        format!("--threads={threads}"),
        format!("--rows={TRAIN_ROWS}"),
        format!("--seq={TRAIN_SEQ}"),
        format!("--rank={LORA_RANK}"),
        format!("--steps={}", o.lm_repeats),
    ];
    match peer(python, "torch_cpu_train.py", &args, &serde_json::Value::Null) {
        Ok(theirs) => {
            let (l, f) =
                (theirs["lora_tok_s"].as_f64().unwrap_or(f64::NAN), theirs["full_tok_s"].as_f64().unwrap_or(f64::NAN));
            println!(
                "PyTorch {} (transformers + peft, same architecture, rows and threads)",
                theirs["torch"].as_str().unwrap_or("?")
            );
            println!("  LoRA r{LORA_RANK}                            {l:8.1} tok/s");
            println!("  every weight                         {f:8.1} tok/s");
            println!("ratios (kailin ÷ PyTorch): LoRA {:.2}, every weight {:.2}", lora / l, full / f);
        }
        Err(e) => println!("PyTorch: not run ({e:#})"),
    }
    Ok(())
}

/// Greedy decoding of every prompt for `new` tokens: tokens per second after the first step
/// (which includes the prompt pass).
fn decode(model: &Llama<Flex>, prompts: &[Vec<u32>], new: usize) -> Result<f64> {
    let mut samplers: Vec<Sampler> = prompts.iter().map(|_| Sampler::greedy()).collect();
    let mut first: Option<Instant> = None;
    let mut tokens = 0usize;
    on_cpu_threads(|| {
        kailin_lm::generate_batch(model, prompts, new, &[], &mut samplers, |_, _| {
            tokens += 1;
            first.get_or_insert_with(Instant::now);
            kailin_lm::every_token(0, 0)
        })
    })?;
    let first = first.context("nothing generated")?;
    // The first step's tokens (one per prompt) came with the prompt pass.
    Ok((tokens - prompts.len()) as f64 / first.elapsed().as_secs_f64())
}

fn median(repeats: usize, mut f: impl FnMut() -> Result<f64>) -> Result<f64> {
    let mut v = (0..repeats).map(|_| f()).collect::<Result<Vec<f64>>>()?;
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

/// The Python of a venv under ~/.cache/kailin (`llamacpp-venv`: the one `.ci/run` builds), if
/// it is there.
fn default_venv(name: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    Some(PathBuf::from(home).join(".cache/kailin").join(name).join("bin/python")).filter(|p| p.exists())
}

/// Runs `script` (in xtask/scripts) with `args` under `python`, `job` on its stdin; its JSON
/// output.
fn peer(python: &Path, script: &str, args: &[String], job: &serde_json::Value) -> Result<serde_json::Value> {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(script);
    let mut child = Command::new(python)
        .arg(&script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    child.stdin.take().context("peer stdin")?.write_all(job.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "{} {} failed ({})", python.display(), script.display(), out.status);
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The f32 GEMM rate of this machine: faer's product of two 2048 × 2048 matrices on the pool.
fn gemm_gflops() -> f64 {
    let n = 2048;
    let a = faer::Mat::<f32>::from_fn(n, n, |i, j| ((i * 7 + j * 3) % 11) as f32 / 11.0);
    let mut c = faer::Mat::<f32>::zeros(n, n);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let started = Instant::now();
        on_cpu_threads(|| {
            faer::linalg::matmul::matmul(
                c.as_mut(),
                faer::Accum::Replace,
                a.as_ref(),
                a.as_ref(),
                1.0,
                faer::Par::rayon(0),
            )
        });
        best = best.min(started.elapsed().as_secs_f64());
    }
    2.0 * (n as f64).powi(3) / best / 1e9
}

/// Read bandwidth: sums over a 512 MB array, on one thread and on all the pool's.
fn read_bandwidth() -> (f64, f64) {
    use rayon::prelude::*;
    let a = vec![1f32; 1 << 27];
    let bytes = (a.len() * 4) as f64;
    let time = |f: &dyn Fn() -> f32| {
        std::hint::black_box(f());
        let started = Instant::now();
        for _ in 0..3 {
            std::hint::black_box(f());
        }
        3.0 * bytes / started.elapsed().as_secs_f64() / 1e9
    };
    let one = time(&|| kailin_core::simd::sum(&a));
    let all = on_cpu_threads(|| time(&|| a.par_chunks(1 << 20).map(kailin_core::simd::sum).sum::<f32>()));
    (one, all)
}
