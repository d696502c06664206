//! Project automation. Run `cargo xtask --help`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod eval;

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "kailin project automation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
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
        Cmd::EvalExtraction { data, verbose } => eval::run(&data, verbose),
    }
}
