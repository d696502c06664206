//! `kailin`: command-line access to the kailin crates.

use clap::{Parser, Subcommand};

mod data;
mod lm;
mod mesh;
mod progress;
mod retrieve;
mod train;

/// Distil biomedical QA training data from the literature (m-KAILIN).
#[derive(Debug, Parser)]
#[command(name = "kailin", version, about)]
struct Cli {
    /// Log filter (RUST_LOG syntax), e.g. `debug` or `kailin_mesh=debug`; logs go to stderr.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.cmd {
        Cmd::Mesh(cmd) => mesh::run(cmd),
        Cmd::Data(cmd) => data::run(cmd),
        Cmd::Lm(cmd) => lm::run(cmd),
        Cmd::Retrieve(cmd) => retrieve::run(cmd),
        Cmd::Train(cmd) => train::run(cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`kailin … | head`) is not an error worth a message.
            if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
                return std::process::ExitCode::SUCCESS;
            }
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
