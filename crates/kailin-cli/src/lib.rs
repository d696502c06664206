//! The `kailin` command: thin subcommands over the kailin crates (argument parsing, file
//! reading, output formatting, exit codes; every algorithm lives in a library crate).
//!
//! This library is the binary's implementation; the binary calls [`main`]. It is a library so
//! that the fuzz targets can reach the command line's parsing and input readers
//! ([`fuzzing`]); it is not meant as an API.
#![deny(missing_docs)]

use clap::{Parser, Subcommand};

mod answer;
mod args;
mod data;
mod eval;
mod evaluate;
mod lm;
mod mesh;
mod progress;
mod question;
mod retrieve;
mod retrieve_train;
mod run;
mod train;

pub use crate::run::{RunArgs, config_of, run_pipeline};

/// Distil biomedical QA training data from the literature (m-KAILIN).
#[derive(Debug, Parser)]
#[command(name = "kailin", version, about)]
struct Cli {
    /// Log filter (RUST_LOG syntax), e.g. `debug` or `kailin_mesh=debug`; logs go to stderr,
    /// with every secret redacted (the HTTP library's own logs stay at warnings, whatever the
    /// filter says: its traces would show request headers).
    #[arg(long, global = true, env = "RUST_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The whole m-KAILIN loop: corpus, question agents, candidates, evaluator labels, DPO,
    /// the CPT and SFT datasets, the target model and its control, PubMedQA, report.md.
    /// Resumable (finished stages are reused), sharded, each role local or served.
    Run(Box<run::RunArgs>),
    /// The MeSH hierarchy: info, similarity, extraction, cache.
    #[command(subcommand)]
    Mesh(mesh::MeshCmd),
    /// Corpora: statistics, conversion to training formats, decontamination.
    #[command(subcommand)]
    Data(data::DataCmd),
    /// Language models: generate, score.
    #[command(subcommand)]
    Lm(lm::LmCmd),
    /// Dense retrieval: build, import and search embedding stores.
    #[command(subcommand)]
    Retrieve(retrieve::RetrieveCmd),
    /// Training: continued pre-training, supervised fine-tuning, DPO (full or LoRA).
    #[command(subcommand)]
    Train(train::TrainCmd),
    /// The evaluator: the MeSH rule, the learned evaluator and its training, preference pairs.
    #[command(subcommand)]
    Evaluate(evaluate::EvaluateCmd),
    /// The question agents: generate candidate questions, fine-tune on BioASQ, measure.
    #[command(subcommand)]
    Question(question::QuestionCmd),
    /// The answer agent: CPT records (question + context) to SFT records (+ answer), with a
    /// local model or any OpenAI-compatible server.
    Answer(answer::AnswerArgs),
    /// Benchmarks of a model: PubMedQA.
    #[command(subcommand)]
    Eval(eval::EvalCmd),
}

/// Runs the `kailin` command on the process's arguments; the exit code to return.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Interrupted (Ctrl-C, SIGTERM), the process ends without unwinding: remove what its
    // writers had not finished, so no half-written file is left beside the user's.
    let _ = ctrlc::set_handler(|| {
        kailin_core::remove_live_temporaries();
        std::process::exit(130);
    });
    init_logs(&cli.log);
    let result = match cli.cmd {
        Cmd::Run(a) => run::run_pipeline(&a),
        Cmd::Mesh(cmd) => mesh::run(cmd),
        Cmd::Data(cmd) => data::run(cmd),
        Cmd::Lm(cmd) => lm::run(cmd),
        Cmd::Retrieve(cmd) => retrieve::run(cmd),
        Cmd::Train(cmd) => train::run(cmd),
        Cmd::Evaluate(cmd) => evaluate::run(cmd),
        Cmd::Question(cmd) => question::run(cmd),
        Cmd::Answer(a) => answer::run(a),
        Cmd::Eval(cmd) => eval::run(cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`kailin … | head`) is not an error worth a message.
            let broken_pipe = |c: &(dyn std::error::Error + 'static)| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    || c.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind)
                        == Some(std::io::ErrorKind::BrokenPipe)
            };
            if e.chain().any(broken_pipe) {
                return std::process::ExitCode::SUCCESS;
            }
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {}", kailin_core::redact(&render(&e)));
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stderr through the one redaction point ([`kailin_core::RedactingWriter`]), filtered
/// by `filter`; the HTTP and TLS libraries' own events never below warnings (their traces
/// dump request headers, the API key with them).
fn init_logs(filter: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, filter::LevelFilter, filter::Targets};
    let env = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "warn".into());
    // The most verbose level the filter lets through, as the default here too: it becomes the
    // subscriber's level hint and the `log` crate's maximum, so that a library's trace-level
    // `log` calls (the tokenizer's, per text) are dropped where they are made instead of each
    // going through the filter (a fifth of an encoder training's time at `warn`).
    let most = env.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let wire = Targets::new()
        .with_default(most)
        .with_target("ureq", LevelFilter::WARN.min(most))
        .with_target("ureq_proto", LevelFilter::WARN.min(most))
        .with_target("rustls", LevelFilter::WARN.min(most));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(|| kailin_core::RedactingWriter::new(std::io::stderr()))
        .with_filter(env)
        .with_filter(wire);
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// An error as one line: each cause once (a cause whose text the message already holds, as
/// when an error prints its own source, is left out), newlines folded, and any one cause cut to
/// a short excerpt (a parser may quote kilobytes of input).
fn render(e: &anyhow::Error) -> String {
    const MAX: usize = 300;
    let mut msg = String::new();
    for cause in e.chain() {
        let mut text = cause.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() || msg.contains(&text) {
            continue;
        }
        text = kailin_core::cut_chars_marked(&text, MAX);
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}

/// Entry points for the fuzz targets (not an API).
#[doc(hidden)]
pub mod fuzzing {
    use clap::Parser;

    /// Parses a command line (without running it): an error or a command, never a panic.
    pub fn parse_args(args: &[String]) -> bool {
        super::Cli::try_parse_from(std::iter::once("kailin".to_owned()).chain(args.iter().cloned())).is_ok()
    }

    pub use crate::mesh::{Pair, SetPair, parse_pairs, parse_sets};
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn errors_are_one_line_with_each_cause_once() {
        // An error that prints its own source, under a context: the source is not repeated.
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)");
        let e = anyhow::Error::new(kailin_core::Error::Io { path: "x.jsonl".into(), source: io }).context("reading x");
        assert_eq!(render(&e), "reading x: x.jsonl: No such file or directory (os error 2)");
        // Newlines folded; a long cause cut to an excerpt.
        let e = anyhow::anyhow!("line one\nline two {}", "y".repeat(5000));
        let r = render(&e);
        assert!(
            !r.contains('\n') && r.starts_with("line one line two yyy") && r.ends_with('…') && r.len() < 400,
            "{r}"
        );
    }
}
