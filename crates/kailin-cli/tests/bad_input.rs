//! Every subcommand against a shared table of hostile inputs and options, as a user could give
//! them: a missing path, a directory, an empty file, random bytes, a truncated file, invalid
//! UTF-8, one 10 MB line, JSON of the wrong types, special files and one path for two outputs,
//! numbers out of range. For each run: exit 0, or a non-zero exit with a one-line message;
//! never a panic (101), an abort (134), a signal or a run past the time limit; and no file
//! outside the outputs touched. New subcommands join the table.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::{fixture, kailin_timed, tiny_bert, tiny_llama};

/// What a hostile input is made of.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    Missing,
    Directory,
    Empty,
    RandomBytes,
    Truncated,
    InvalidUtf8,
    LongLine,
    WrongJsonTypes,
}

const HOSTILE: [Hostile; 8] = [
    Hostile::Missing,
    Hostile::Directory,
    Hostile::Empty,
    Hostile::RandomBytes,
    Hostile::Truncated,
    Hostile::InvalidUtf8,
    Hostile::LongLine,
    Hostile::WrongJsonTypes,
];

struct World {
    dir: tempfile::TempDir,
    /// A file no run may touch, with its content.
    sentinel: PathBuf,
    inputs: Vec<(Hostile, PathBuf)>,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let sentinel = dir.path().join("sentinel.txt");
        std::fs::write(&sentinel, b"untouched\n").unwrap();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let random: Vec<u8> = (0..8192)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let docs = std::fs::read(fixture("corpus/documents.jsonl")).unwrap_or_else(|_| {
            b"{\"id\": \"1\", \"title\": \"Aspirin\", \"text\": \"Aspirin inhibits cox in the liver.\"}\n".to_vec()
        });
        let long: Vec<u8> = "aspirin inhibits cox ".repeat(500_000).into_bytes();
        let inputs = HOSTILE
            .iter()
            .map(|&h| {
                let path = dir.path().join(format!("input-{h:?}"));
                match h {
                    Hostile::Missing => {}
                    Hostile::Directory => std::fs::create_dir(&path).unwrap(),
                    Hostile::Empty => std::fs::write(&path, b"").unwrap(),
                    Hostile::RandomBytes => std::fs::write(&path, &random).unwrap(),
                    Hostile::Truncated => std::fs::write(&path, &docs[..docs.len() / 2 + 7]).unwrap(),
                    Hostile::InvalidUtf8 => {
                        std::fs::write(&path, b"{\"id\": \"1\", \"text\": \"caf\xe9 \xff\xfe\"}\n").unwrap()
                    }
                    Hostile::LongLine => std::fs::write(&path, &long).unwrap(),
                    Hostile::WrongJsonTypes => {
                        std::fs::write(&path, b"{\"id\": 5, \"text\": [\"x\"], \"messages\": 3, \"questions\": {}}\n")
                            .unwrap()
                    }
                }
                (h, path)
            })
            .collect();
        World { dir, sentinel, inputs }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// Runs one case and checks the contract; returns a description of a violation, if any.
fn check(world: &World, args: &[String], stdin: &[u8]) -> Option<String> {
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = kailin_timed(&argv, stdin, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    let code = run.output.status.code();
    let what = format!("kailin {}", args.join(" "));
    if run.timed_out {
        return Some(format!("{what}: still running after 120 s"));
    }
    let sentinel = std::fs::read(&world.sentinel).unwrap_or_default();
    if sentinel != b"untouched\n" {
        return Some(format!("{what}: touched a file outside its outputs"));
    }
    if let Ok(log) = std::env::var("KAILIN_BAD_INPUT_LOG") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let _ = writeln!(f, "{what}\n  -> exit {code:?}: {}", stderr.lines().last().unwrap_or(""));
    }
    match code {
        Some(0) => None,
        Some(1 | 2) => {
            let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
            if stderr.contains("panicked") {
                Some(format!("{what}: panicked: {stderr}"))
            } else if errors.len() != 1 {
                Some(format!("{what}: expected one error line, got: {stderr}"))
            } else if errors[0].len() > 600 {
                Some(format!("{what}: a {}-byte error message", errors[0].len()))
            } else {
                None
            }
        }
        other => Some(format!("{what}: exit {other:?} (a panic, abort or signal): {stderr}")),
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

/// Every subcommand with one input slot `{IN}` (a path argument) or stdin (`-` marks it).
fn input_cases(w: &World, models: &Models) -> Vec<(Vec<String>, bool)> {
    let mesh = fixture("mesh/mini.tsv").display().to_string();
    let pairs = w.path("ok-pairs.tsv");
    std::fs::write(&pairs, "D900003\tD900004\n").unwrap();
    let docs = w.path("ok-docs.jsonl");
    std::fs::write(&docs, "{\"id\": \"1\", \"title\": \"Aspirin\", \"text\": \"Aspirin inhibits cox.\"}\n").unwrap();
    let out = w.path("out.jsonl");
    let store = w.path("store");
    let (llama, bert) = (models.llama.as_str(), models.bert.as_str());
    vec![
        (s(&["mesh", "info", "--mesh", "{IN}"]), false),
        (s(&["mesh", "sim", "--mesh", &mesh, "--pairs", "{IN}"]), false),
        (s(&["mesh", "sim", "--mesh", "{IN}", "--pairs", &pairs]), false),
        (s(&["mesh", "set-sim", "--mesh", &mesh, "--sets", "{IN}"]), false),
        (s(&["mesh", "extract", "--mesh", &mesh]), true),
        (s(&["mesh", "extract", "--mesh", "{IN}"]), false),
        (s(&["mesh", "cache", "--mesh", "{IN}", "--out", &w.path("out.cache")]), false),
        (s(&["data", "stats", "{IN}"]), false),
        (s(&["data", "stats", "--format", "bioasq", "{IN}"]), false),
        (s(&["data", "stats", "--format", "pubmedqa", "{IN}"]), false),
        (s(&["data", "stats", "--format", "pubtator", "{IN}"]), false),
        (s(&["data", "stats", "--format", "pubmed-xml", "{IN}"]), false),
        (s(&["data", "convert", "--input", "{IN}", "--to", "documents", "--out", &out]), false),
        (s(&["data", "convert", "--input", "{IN}", "--from", "bioasq", "--to", "questions", "--out", &out]), false),
        (s(&["data", "convert", "--input", "{IN}", "--from", "sft", "--to", "chat", "--out", &out]), false),
        (
            s(&[
                "data",
                "convert",
                "--input",
                "{IN}",
                "--from",
                "pairs",
                "--to",
                "dpo",
                "--documents",
                &docs,
                "--out",
                &out,
            ]),
            false,
        ),
        (s(&["data", "decontaminate", "--input", "{IN}", "--against", &docs, "--out", &out]), false),
        (s(&["data", "decontaminate", "--input", &docs, "--against", "{IN}", "--out", &out]), false),
        (s(&["lm", "generate", "--model", "{IN}", "--prompt", "what"]), false),
        (s(&["lm", "score", "--model", "{IN}", "--prompt", "what", "--continuation", "aspirin"]), false),
        (s(&["train", "sft", "--model", llama, "--data", "{IN}", "--out", &w.path("train-out")]), false),
        (s(&["train", "cpt", "--model", llama, "--data", "{IN}", "--out", &w.path("train-out")]), false),
        (s(&["train", "dpo", "--model", llama, "--data", "{IN}", "--out", &w.path("train-out")]), false),
        (s(&["train", "sft", "--model", "{IN}", "--data", &docs, "--out", &w.path("train-out")]), false),
        (s(&["retrieve", "build", "--model", bert, "--corpus", "{IN}", "--out", &store]), false),
        (s(&["retrieve", "build", "--model", "{IN}", "--corpus", &docs, "--out", &store]), false),
        (s(&["retrieve", "import", "--vectors", "{IN}", "--out", &store]), false),
        (s(&["retrieve", "search", "--store", "{IN}", "--query-vectors", "{IN}"]), false),
        (s(&["retrieve", "search", "--store", &store, "--model", bert]), true),
    ]
}

struct Models {
    llama: String,
    bert: String,
}

#[test]
fn every_subcommand_survives_every_hostile_input() {
    let w = World::new();
    let models = Models { llama: w.path("llama"), bert: w.path("bert") };
    tiny_llama(Path::new(&models.llama));
    tiny_bert(Path::new(&models.bert));
    let mut failures = Vec::new();
    let mut runs = 0;
    for (template, on_stdin) in input_cases(&w, &models) {
        for (hostile, path) in &w.inputs {
            let (args, stdin) = if on_stdin {
                if matches!(hostile, Hostile::Missing | Hostile::Directory) {
                    continue;
                }
                (template.clone(), std::fs::read(path).unwrap())
            } else {
                let p = path.display().to_string();
                (template.iter().map(|a| a.replace("{IN}", &p)).collect(), Vec::new())
            };
            runs += 1;
            failures.extend(check(&w, &args, &stdin));
        }
    }
    assert!(failures.is_empty(), "{} of {runs} runs broke the contract:\n{}", failures.len(), failures.join("\n"));
}
