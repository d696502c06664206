//! What the CLI's integration tests share: running the binary (bounded in time) and tiny
//! models written by the test (a Llama with a word-level tokenizer, a BERT with a WordPiece
//! vocabulary).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A fixture file of the repository.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(rel)
}

/// How a run of the binary ended.
#[derive(Debug)]
pub struct Run {
    pub output: Output,
    /// Killed after the time limit.
    pub timed_out: bool,
}

/// Runs `kailin ARGS` with `stdin`, killed after `limit`. Its output is read as it comes (a
/// child writing more than a pipe holds must not stall).
pub fn kailin_timed(args: &[&str], stdin: &[u8], limit: Duration) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kailin"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kailin runs");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // A writer thread: a child that never reads stdin must not block the test.
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            timed_out = true;
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = feeder.join();
    let output = Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() };
    Run { output, timed_out }
}

pub const WORDS: &[&str] = &[
    "<unk>",
    "<s>",
    "</s>",
    "user",
    "assistant",
    ":",
    "what",
    "does",
    "aspirin",
    "inhibit",
    "cox",
    "statins",
    "lower",
    "ldl",
    "insulin",
    "glucose",
    "yes",
    "no",
    "why",
    "abstract",
    "on",
    "?",
    ".",
    "it",
    "A",
    "B",
    "maybe",
];

/// A tiny Llama and a word-level tokenizer over [`WORDS`] with a plain chat template, as a
/// model directory (the pipeline's tiny-model writer).
pub fn tiny_llama(dir: &Path) {
    kailin_pipeline::write_tiny_llama(dir, WORDS, false, 64).unwrap();
}

/// A tiny one-layer BERT (hidden 8) with a WordPiece `vocab.txt`, as a model directory.
pub fn tiny_bert(dir: &Path) {
    let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "aspirin", "cox", "liver", "gene", "the", "##s"];
    kailin_pipeline::write_tiny_bert(dir, &vocab, 32).unwrap();
}
