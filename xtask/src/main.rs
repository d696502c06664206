//! Project automation. Run `cargo xtask --help`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cli;
mod encoder;
mod eval;
mod evaluator;
mod lm;
mod lm_bench;
mod models;
mod pipeline;
mod retrieval;
mod retrieval_quality;

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "kailin project automation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The m-KAILIN loop end to end: datasets, the DPO-optimised generator, the target model
    /// and its PubMedQA evaluation, report.md and metrics.json.
    FullPipeline(kailin_cli::RunArgs),
    /// Download the default models (SmolLM2-135M-Instruct GGUF, all-MiniLM-L6-v2) into the
    /// model cache ($KAILIN_MODELS, default ~/.cache/kailin/models), checking their SHA-256.
    FetchModels {
        /// Cache directory (default: $KAILIN_MODELS, else ~/.cache/kailin/models).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Benchmarks (`cargo bench`) of one crate, then its quality evaluation where it has one.
    Bench {
        /// The crate: `mesh`, `corpus`, `lm` (the language model against llama.cpp, same file
        /// and threads; its divan benchmarks: `cargo bench -p kailin-lm`), `train`, `retrieval` (exact search against FAISS,
        /// encoder throughput, BioASQ retrieval quality), `encoder` (the sentence encoder
        /// against sentence-transformers), `cli` (the `kailin` command's batch paths end to
        /// end) or `evaluator` (the MeSH rule on PubMedQA PQA-L: sanity across options, and
        /// speed).
        #[arg(default_value = "mesh")]
        krate: String,
        /// Data directory (default: ../shared/data, or $KAILIN_DATA).
        #[arg(long, env = "KAILIN_DATA", default_value = "../shared/data")]
        data: PathBuf,
        /// Options of the benchmarks that take some.
        #[command(flatten)]
        options: Box<Benches>,
    },
    /// Perplexity of the default model (or --model FILE.gguf) on the first N PubMedQA abstracts.
    Perplexity {
        /// Data directory holding pubmedqa/ (default: ../shared/data, or $KAILIN_DATA).
        #[arg(long, env = "KAILIN_DATA", default_value = "../shared/data")]
        data: PathBuf,
        /// A GGUF model (default: SmolLM2-135M-Instruct from the model cache).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Number of abstracts.
        #[arg(long, default_value_t = 100)]
        n: usize,
    },
    /// Compare next-token logits and decoding speed with llama.cpp (needs llama-cpp-python).
    LlamacppCheck {
        /// A GGUF model (default: SmolLM2-135M-Instruct from the model cache).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Where to write the comparison.
        #[arg(long, default_value = "target/llamacpp-check.json")]
        out: PathBuf,
    },
    /// MeSH term extraction quality on BC5CDR (precision/recall, for docs/benchmarks.md).
    EvalExtraction {
        /// Data directory holding mesh/ and bc5cdr/ (default: ../shared/data, or $KAILIN_DATA).
        #[arg(long, env = "KAILIN_DATA", default_value = "../shared/data")]
        data: PathBuf,
        /// Also list the most frequent false positives and negatives.
        #[arg(long)]
        verbose: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::FullPipeline(a) => pipeline::run(&a),
        Cmd::Bench { krate, data, options } => bench(&krate, &data, &options),
        Cmd::FetchModels { dir } => models::fetch(&dir.unwrap_or_else(models::models_dir)),
        Cmd::EvalExtraction { data, verbose } => eval::run(&data, verbose),
        Cmd::Perplexity { data, model, n } => lm::perplexity(&data, &model, n),
        Cmd::LlamacppCheck { model, out } => lm::llamacpp_check(&model, &out),
    }
}

/// The options of the benchmarks that take some.
#[derive(Debug, clap::Args)]
struct Benches {
    /// Options of `bench retrieval`.
    #[command(flatten)]
    retrieval: retrieval::RetrievalBench,
    /// Options of `bench evaluator`.
    #[command(flatten)]
    evaluator: evaluator::EvaluatorBench,
    /// Options of `bench encoder`.
    #[command(flatten)]
    encoder: encoder::EncoderBench,
    /// Options of `bench cli`.
    #[command(flatten)]
    cli: cli::CliBench,
    /// Options of `bench lm`.
    #[command(flatten)]
    lm: lm_bench::LmBench,
}

fn bench(krate: &str, data: &std::path::Path, o: &Benches) -> Result<()> {
    let package = match krate {
        "retrieval" | "kailin-retrieval" => return retrieval::bench(data, &o.retrieval),
        "evaluator" | "kailin-evaluator" => return evaluator::bench(data, &o.evaluator),
        "encoder" => return encoder::bench(data, &o.encoder),
        "cli" | "kailin-cli" => return cli::bench(&std::path::absolute(data)?, &o.cli),
        "mesh" | "kailin-mesh" => "kailin-mesh",
        "corpus" | "kailin-corpus" => "kailin-corpus",
        "lm" | "kailin-lm" => return lm_bench::bench(&std::path::absolute(data)?, &o.lm),
        "train" | "kailin-train" => "kailin-train",
        other => {
            anyhow::bail!(
                "no benchmarks for {other:?} yet (known: mesh, corpus, lm, retrieval, encoder, cli, train, evaluator)"
            )
        }
    };
    // Benchmarks run from their crate's directory: hand them an absolute path.
    let data = &std::path::absolute(data)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo).args(["bench", "-p", package]).env("KAILIN_DATA", data).status()?;
    anyhow::ensure!(status.success(), "cargo bench -p {package} failed");
    if package == "kailin-mesh" { eval::run(data, false) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    /// clap's own checks of the command line (unique names across the flattened benchmark
    /// options, say), which it otherwise makes only when a command is parsed.
    #[test]
    fn the_command_line_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
