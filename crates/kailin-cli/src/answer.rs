//! `kailin answer`: CPT records in, SFT records out, through a local model or any
//! OpenAI-compatible server; resumable.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use burn::prelude::Backend;
use clap::Args;
use kailin_answer::{AnswerGenerator, LocalAnswerer, LocalOptions, OpenAiClient, PromptTemplate, answer_all};
use kailin_core::{CptRecord, JsonlAppender, SftRecord};

use crate::lm::Device;

/// Answer each question with its context: kailin-core `CptRecord` lines in, `SftRecord` lines
/// out, one per input line with a question and a context, in input order. Rerun the same
/// command after an interruption: the records already written are kept and skipped, and (with
/// an endpoint) answers already received are taken from the cache instead of being requested
/// again. What made the output (model, endpoint, prompt, sampling) is recorded beside it in
/// `OUT.kailin.json`; a rerun with any of it changed is refused (or, with --force, starts
/// over).
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
    /// The environment variable holding the API key (never printed; default OPENAI_API_KEY).
    #[arg(long)]
    api_key_env: Option<String>,
    /// The longest wait a server may ask for between retries (Retry-After), in seconds; a
    /// server that asks for more ends the run with an error naming it.
    #[arg(long, default_value_t = 30.0, value_parser = crate::args::non_negative)]
    max_retry_after: f64,
    /// Start over: discard the records of an earlier run made with other settings.
    #[arg(long)]
    force: bool,
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

/// The default cache directory: the output path with `.cache` appended.
fn cache_dir(a: &AnswerArgs) -> PathBuf {
    a.cache.clone().unwrap_or_else(|| sibling(&a.out, ".cache"))
}

/// `path` with `suffix` appended to its name.
fn sibling(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut p = path.to_owned().into_os_string();
    p.push(suffix);
    p.into()
}

/// What decides the answers: recorded beside the output, compared on resume.
fn identity(a: &AnswerArgs, template: Option<&PromptTemplate>) -> Result<serde_json::Value> {
    let prompt =
        template.map_or_else(|| kailin_answer::default_template().version().to_owned(), |t| t.version().to_owned());
    let mut id = serde_json::json!({
        "command": "kailin answer",
        "model": a.model,
        "prompt": prompt,
        "system": a.system,
        "temperature": a.temperature,
        "max_tokens": a.max_tokens,
        "seed": a.seed,
    });
    match &a.endpoint {
        Some(url) => id["endpoint"] = kailin_core::strip_url_credentials(url).0.into(),
        None => {
            id["model_digest"] =
                kailin_lm::model_digest(&a.model).with_context(|| format!("--model {}", a.model))?.into();
            id["max_positions"] = a.max_positions.into();
        }
    }
    Ok(id)
}

/// The settings that differ between two identities, in words.
fn differences(old: &serde_json::Value, new: &serde_json::Value) -> String {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else { return "another format".into() };
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| {
            let show = |v: Option<&serde_json::Value>| v.map_or("unset".to_owned(), |v| v.to_string());
            format!("{k} was {}, now {}", show(old.get(k)), show(new.get(k)))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn run(a: AnswerArgs) -> Result<()> {
    let meta = sibling(&a.out, ".kailin.json");
    let cache = (a.endpoint.is_some() && !a.no_cache).then(|| cache_dir(&a));
    let mut inputs: Vec<(&str, &std::path::Path)> = vec![("--input", &a.input)];
    if let Some(p) = &a.prompt {
        inputs.push(("--prompt", p));
    }
    if a.endpoint.is_none() {
        inputs.push(("--model", std::path::Path::new(&a.model)));
    }
    let mut outputs: Vec<(&str, &std::path::Path)> = vec![("--out", &a.out), ("the record of the run", &meta)];
    if let Some(c) = &cache {
        outputs.push(("--cache", c));
    }
    kailin_core::check_outputs(&inputs, &outputs)?;
    kailin_core::check_output_file("--out", &a.out)?;
    let (records, skipped) = kailin_answer::answerable(read_input(&a)?);
    if skipped > 0 {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("warning: {skipped} records without a question or a context skipped (they would teach nothing)");
        }
    }
    let template = match &a.prompt {
        Some(p) => Some(PromptTemplate::from_file(p)?),
        None => None,
    };
    let wanted = identity(&a, template.as_ref())?;
    let _cache_dir = match &cache {
        Some(dir) => Some(kailin_core::RunDir::open(
            dir,
            &kailin_core::RunDirOptions {
                flag: "--cache",
                command: "kailin answer (response cache)",
                force: a.force,
                sharing: kailin_core::Sharing::Exclusive,
            },
        )?),
        None => None,
    };
    let (mut out, mut done) = JsonlAppender::<SftRecord>::resume(&a.out)?;
    if out.cut_bytes() > 0 {
        tracing::warn!(out = %a.out.display(), bytes = out.cut_bytes(), "removed an incomplete last line left by an interrupted run");
    }
    let recorded = std::fs::read(&meta).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    if !done.is_empty() && !a.force {
        match &recorded {
            None => bail!(
                "{} holds {} records but no {} saying what made them: resuming could mix answers of other settings; \
                 rerun with --force to start over, or give another --out",
                a.out.display(),
                done.len(),
                meta.display()
            ),
            Some(old) if *old != wanted => bail!(
                "{} was made with other settings ({}): resuming would mix their answers with these; rerun with the \
                 same settings, or --force to start over",
                a.out.display(),
                differences(old, &wanted)
            ),
            Some(_) => {}
        }
        for (i, written) in done.iter().enumerate() {
            let input = records.get(i);
            if input
                .is_none_or(|r| r.id != written.id || r.question != written.question || r.context != written.context)
            {
                bail!(
                    "{}:{}: record {:?} does not match the input's record {} ({}): the output is from another input; \
                     rerun with --force to start over, or give another --out",
                    a.out.display(),
                    i + 1,
                    written.id,
                    i + 1,
                    input.map_or_else(
                        || "past the input's end".to_owned(),
                        |r| if r.id == written.id {
                            format!("{:?}, with another question or context", r.id)
                        } else {
                            format!("{:?}", r.id)
                        }
                    )
                );
            }
        }
    }
    if a.force && !done.is_empty() {
        tracing::warn!(out = %a.out.display(), records = done.len(), "--force: starting over");
        out.clear()?;
        done.clear();
    }
    if recorded.as_ref() != Some(&wanted) {
        kailin_core::write_atomic(&meta, &serde_json::to_vec_pretty(&wanted)?)?;
    }
    let rest = &records[done.len()..];
    if !done.is_empty() {
        tracing::info!(done = done.len(), left = rest.len(), "resuming");
    }
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
                o.served.concurrency = a.concurrency;
                o.served.timeout = Duration::from_secs_f64(a.timeout);
                o.served.max_retries = a.max_retries;
                o.served.max_retry_after = Duration::from_secs_f64(a.max_retry_after);
                o.max_tokens = a.max_tokens;
                o.temperature = a.temperature;
                o.seed = a.seed;
                o.system = a.system.clone();
            });
            let var = a.api_key_env.as_deref().unwrap_or("OPENAI_API_KEY");
            match std::env::var(var) {
                Ok(key) if !key.trim().is_empty() => builder = builder.api_key(key.trim()),
                // A variable the user named that holds nothing is worth a word; the default
                // one unset is the ordinary case of a local server without keys.
                _ if a.api_key_env.is_some() => {
                    tracing::warn!("--api-key-env {var}: the variable is unset or empty, so no API key is sent")
                }
                _ => {}
            }
            if let Some(t) = template {
                builder = builder.template(t);
            }
            if let Some(dir) = &cache {
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
    Ok(kailin_core::read_jsonl_unique(&a.input, |r: &CptRecord| &r.id)?)
}

#[allow(clippy::print_stderr)]
fn summary(answered: usize, elapsed: Duration, stats: &serde_json::Value) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    eprintln!("{answered} records in {secs:.1} s ({:.2} answers/s); {stats}", answered as f64 / secs);
}
