//! `kailin lm …`: thin subcommands over `kailin-lm`.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::prelude::Backend;
use clap::{Args, Subcommand, ValueEnum};
use kailin_lm::{ChatMessage, CompletionOptions};

/// Language models: generation and scoring.
#[derive(Debug, Subcommand)]
pub(crate) enum LmCmd {
    /// Generate a continuation of a prompt, streamed to stdout.
    Generate(GenerateArgs),
    /// Print the summed log-probability of a continuation given a prompt.
    Score(ScoreArgs),
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Device {
    /// burn's flex backend.
    Cpu,
    /// burn's CUDA backend (built with `--features cuda`).
    Cuda,
}

#[derive(Debug, Args)]
pub(crate) struct ModelArgs {
    /// A GGUF file, or a Hugging Face model directory (config.json, safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Compute device.
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
    /// Longest prompt plus continuation, in tokens.
    #[arg(long, default_value_t = 2048, value_parser = crate::args::positions)]
    max_positions: usize,
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt text.
    #[arg(long)]
    prompt: String,
    /// Wrap the prompt as a user turn in the model's chat template.
    #[arg(long)]
    chat: bool,
    /// Most new tokens.
    #[arg(long, default_value_t = 256, value_parser = crate::args::at_least_one)]
    max_new: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.0, value_parser = crate::args::non_negative_f32)]
    temperature: f32,
    /// Sample among the k most likely tokens.
    #[arg(long, value_parser = crate::args::at_least_one)]
    top_k: Option<usize>,
    /// Nucleus sampling threshold.
    #[arg(long, value_parser = crate::args::unit_open_closed_f32)]
    top_p: Option<f32>,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Debug, Args)]
pub(crate) struct ScoreArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The conditioning text.
    #[arg(long)]
    prompt: String,
    /// The text whose log-probability is printed (tokenised on its own, after the prompt's tokens).
    #[arg(long)]
    continuation: String,
}

pub(crate) fn run(cmd: LmCmd) -> Result<()> {
    let device = match &cmd {
        LmCmd::Generate(a) => a.model.device,
        LmCmd::Score(a) => a.model.device,
    };
    match device {
        Device::Cpu => kailin_lm::on_cpu_threads(|| dispatch::<burn::backend::Flex>(cmd, &Default::default())),
        #[cfg(feature = "cuda")]
        Device::Cuda => dispatch::<burn::backend::Cuda>(cmd, &kailin_lm::cuda_device(0)?),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => bail!("this kailin was built without CUDA (cargo build -p kailin-cli --features cuda)"),
    }
}

fn dispatch<B: Backend>(cmd: LmCmd, device: &B::Device) -> Result<()> {
    match cmd {
        LmCmd::Generate(a) => generate::<B>(a, device),
        LmCmd::Score(a) => score::<B>(a, device),
    }
}

fn load<B: Backend>(a: &ModelArgs, device: &B::Device) -> Result<(kailin_lm::Llama<B>, kailin_lm::Tokenizer)> {
    let (model, _, tokenizer) = kailin_lm::load::<B>(&a.model, a.max_positions, device)?;
    Ok((model, tokenizer))
}

fn generate<B: Backend>(a: GenerateArgs, device: &B::Device) -> Result<()> {
    let (model, tokenizer) = load::<B>(&a.model, device)?;
    let text = if a.chat { kailin_lm::chat_prompt(&tokenizer, &[ChatMessage::user(&a.prompt)])? } else { a.prompt };
    let prompt = tokenizer.encode(&text, true)?;
    if prompt.is_empty() {
        bail!("the prompt is empty");
    }
    let options = CompletionOptions {
        max_new: a.max_new,
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        seed: a.seed,
        stop: Vec::new(),
        slots: 0,
    };
    let mut sampler = options.sampler(0);
    // Streamed: print the text each new token adds.
    let mut out = std::io::stdout().lock();
    let mut text = kailin_lm::TextStream::new(&tokenizer, true);
    kailin_lm::generate(&model, &prompt, options.max_new, &tokenizer.stop_ids(), &mut sampler, |t| {
        out.write_all(text.push(t)?.as_bytes())?;
        out.flush()?;
        Ok::<_, anyhow::Error>(ControlFlow::Continue(()))
    })?;
    out.write_all(text.rest().as_bytes())?;
    writeln!(out)?;
    Ok(())
}

fn score<B: Backend>(a: ScoreArgs, device: &B::Device) -> Result<()> {
    let (model, tokenizer) = load::<B>(&a.model, device)?;
    let prompt = tokenizer.encode(&a.prompt, true)?;
    let continuation = tokenizer.encode(&a.continuation, false)?;
    if prompt.is_empty() || continuation.is_empty() {
        bail!("the prompt and the continuation must each be at least one token");
    }
    let s = kailin_lm::score(&model, &[(prompt, continuation)])?;
    #[allow(clippy::print_stdout)]
    {
        println!("{}", s[0].total);
    }
    Ok(())
}
