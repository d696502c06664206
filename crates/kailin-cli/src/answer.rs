//! `kailin answer`: CPT records in, SFT records out, through a local model or any
//! OpenAI-compatible server; resumable.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use burn::prelude::Backend;
use clap::Args;
use kailin_answer::{AnswerGenerator, LocalAnswerer, LocalOptions, OpenAiClient, PromptTemplate, answer_all};
use kailin_core::{CptRecord, JsonlAppender, JsonlReader, SftRecord};

use crate::lm::Device;

/// Answer each question with its context: kailin-core `CptRecord` lines in, `SftRecord` lines
/// out, one per input line, in input order. Rerun the same command after an interruption: the
/// records already written are kept and skipped, and (with an endpoint) answers already
/// received are taken from the cache instead of being requested again.
#[derive(Debug, Args)]
pub(crate) struct AnswerArgs {
    /// CPT records (kailin-core `CptRecord` JSON lines); ids must be unique.
    #[arg(long)]
    input: PathBuf,
    /// SFT records (kailin-core `SftRecord` JSON lines), appended to when resuming.
    #[arg(long)]
    out: PathBuf,
    /// The model: a GGUF file or Hugging Face directory, or with --endpoint the name the
    /// server knows.
    #[arg(long)]
    model: String,
    /// An OpenAI-compatible API base (http://127.0.0.1:8080/v1); without it the model runs
    /// here.
    #[arg(long)]
    endpoint: Option<String>,
    /// The environment variable holding the API key (never printed).
    #[arg(long, default_value = "OPENAI_API_KEY")]
    api_key_env: String,
    /// Requests in flight at once (endpoint).
    #[arg(long, default_value_t = 4, value_parser = crate::args::at_least_one)]
    concurrency: usize,
    /// Response cache directory (endpoint); default: the output path with `.cache` appended.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Send every request, even those already answered.
    #[arg(long)]
    no_cache: bool,
    /// Seconds before a request is abandoned (and retried).
    #[arg(long, default_value_t = 120.0, value_parser = crate::args::positive)]
    timeout: f64,
    /// Retries of a request after transient failures (5xx, 429, timeouts, network errors).
    #[arg(long, default_value_t = 6, value_parser = crate::args::retries)]
    max_retries: usize,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 512, value_parser = crate::args::at_least_one)]
    max_tokens: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.0, value_parser = crate::args::non_negative_f32)]
    temperature: f32,
    /// Seed (sent to servers that honour one; the local sampler's).
    #[arg(long)]
    seed: Option<u64>,
    /// The prompt template (Jinja; sees `question`, `context`, `doc_ids`); default: the
    /// built-in `answer.jinja`.
    #[arg(long)]
    prompt: Option<PathBuf>,
    /// A system message before the prompt.
    #[arg(long)]
    system: Option<String>,
    /// Prompts per batch (local model).
    #[arg(long, default_value_t = 8, value_parser = crate::args::at_least_one)]
    batch_size: usize,
    /// Compute device (local model).
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
    /// Longest prompt plus answer, in tokens (local model).
    #[arg(long, default_value_t = 2048, value_parser = crate::args::positions)]
    max_positions: usize,
}

pub(crate) fn run(a: AnswerArgs) -> Result<()> {
    let records = read_input(&a)?;
    let (mut out, done) = JsonlAppender::<SftRecord>::resume(&a.out)?;
    if out.cut_bytes() > 0 {
        tracing::warn!(out = %a.out.display(), bytes = out.cut_bytes(), "removed an incomplete last line left by an interrupted run");
    }
    for (i, written) in done.iter().enumerate() {
        if records.get(i).map(|r| &r.id) != Some(&written.id) {
            bail!(
                "{}:{}: record {:?} does not match input line {} ({}): the output is from another input; remove it or choose another --out",
                a.out.display(),
                i + 1,
                written.id,
                i + 1,
                records.get(i).map_or_else(|| "past the input's end".to_owned(), |r| format!("{:?}", r.id))
            );
        }
    }
    let rest = &records[done.len()..];
    if !done.is_empty() {
        tracing::info!(done = done.len(), left = rest.len(), "resuming");
    }
    let template = match &a.prompt {
        Some(p) => Some(PromptTemplate::from_file(p)?),
        None => None,
    };
    let mut write = |r: SftRecord| -> kailin_answer::Result<()> {
        out.write(&r)?;
        Ok(out.sync()?)
    };
    let bar = crate::progress::bar(records.len() as u64, "answers");
    bar.set_position(done.len() as u64);
    bar.reset_eta();
    let started = Instant::now();
    let first_line = done.len() + 1;
    let resume = || format!("stopped; the records in {} are kept: rerun the same command to resume", a.out.display());
    match &a.endpoint {
        Some(url) => {
            let mut builder = OpenAiClient::builder(url, &a.model).configure(|o| {
                o.concurrency = a.concurrency;
                o.timeout = Duration::from_secs_f64(a.timeout);
                o.max_retries = a.max_retries;
                o.max_tokens = a.max_tokens;
                o.temperature = a.temperature;
                o.seed = a.seed;
                o.system = a.system.clone();
            });
            if let Ok(key) = std::env::var(&a.api_key_env)
                && !key.is_empty()
            {
                builder = builder.api_key(key);
            }
            if let Some(t) = template {
                builder = builder.template(t);
            }
            if !a.no_cache {
                let dir = a.cache.clone().unwrap_or_else(|| {
                    let mut p = a.out.clone().into_os_string();
                    p.push(".cache");
                    p.into()
                });
                builder = builder.cache(dir);
            }
            let client = builder.build()?;
            let result = answer_all(&client, rest, first_line, a.concurrency * 4, &mut write, |n| {
                bar.set_position((done.len() + n) as u64)
            });
            bar.finish_and_clear();
            let stats = client.stats();
            summary(rest.len(), started.elapsed(), &serde_json::to_value(stats)?);
            result.with_context(resume)?;
        }
        None => {
            let options = LocalOptions {
                max_new: a.max_tokens,
                temperature: a.temperature,
                seed: a.seed.unwrap_or(0),
                batch_size: a.batch_size,
                system: a.system.clone(),
            };
            let local = |generator: &dyn AnswerGenerator| {
                answer_all(generator, rest, first_line, a.batch_size, &mut write, |n| {
                    bar.set_position((done.len() + n) as u64)
                })
            };
            let result = match a.device {
                Device::Cpu => kailin_lm::on_cpu_threads(|| {
                    with_local::<burn::backend::Flex>(&a, options, template, &Default::default(), local)
                }),
                #[cfg(feature = "cuda")]
                Device::Cuda => {
                    with_local::<burn::backend::Cuda>(&a, options, template, &kailin_lm::cuda_device(0)?, local)
                }
                #[cfg(not(feature = "cuda"))]
                Device::Cuda => bail!("this kailin was built without CUDA (cargo build -p kailin-cli --features cuda)"),
            };
            bar.finish_and_clear();
            summary(rest.len(), started.elapsed(), &serde_json::json!({}));
            result?.with_context(resume)?;
        }
    }
    Ok(())
}

fn with_local<B: Backend>(
    a: &AnswerArgs,
    options: LocalOptions,
    template: Option<PromptTemplate>,
    device: &B::Device,
    f: impl FnOnce(&dyn AnswerGenerator) -> kailin_answer::Result<()>,
) -> Result<kailin_answer::Result<()>> {
    let (model, _, tokenizer) = kailin_lm::load::<B>(&a.model, a.max_positions, device)?;
    let mut generator = LocalAnswerer::new(model, tokenizer, &a.model, options)?;
    if let Some(t) = template {
        generator = generator.with_template(t);
    }
    Ok(f(&generator))
}

fn read_input(a: &AnswerArgs) -> Result<Vec<CptRecord>> {
    let mut records = Vec::new();
    let mut lines: HashMap<String, u64> = HashMap::new();
    let mut reader = JsonlReader::<CptRecord>::open(&a.input)?;
    while let Some(r) = reader.next() {
        let r = r?;
        if let Some(first) = lines.insert(r.id.clone(), reader.line()) {
            bail!(
                "{}:{}: record id {:?} repeats line {first} (ids must be unique)",
                a.input.display(),
                reader.line(),
                r.id
            );
        }
        records.push(r);
    }
    Ok(records)
}

#[allow(clippy::print_stderr)]
fn summary(answered: usize, elapsed: Duration, stats: &serde_json::Value) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    eprintln!("{answered} records in {secs:.1} s ({:.2} answers/s); {stats}", answered as f64 / secs);
}
