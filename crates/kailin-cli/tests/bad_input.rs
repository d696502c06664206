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
    let pqa = fixture("data").display().to_string();
    let fixture_bioasq = fixture("data/bioasq").display().to_string();
    let cands = w.path("ok-cands.jsonl");
    std::fs::write(&cands, "{\"doc_id\": \"1\", \"questions\": [\"aspirin\", \"cox\"]}\n").unwrap();
    let retrieval_pairs = w.path("ok-retrieval-pairs.jsonl");
    std::fs::write(
        &retrieval_pairs,
        "{\"query\": \"aspirin cox\", \"positive\": \"aspirin\"}\n{\"query\": \"liver gene\", \"positive\": \"liver\"}\n",
    )
    .unwrap();
    let labels = w.path("ok-labels.jsonl");
    std::fs::write(
        &labels,
        "{\"doc_id\": \"1\", \"questions\": [\"a\", \"b\"], \"preferred\": 0, \"scores\": [1.0, 0.5], \
         \"outcome\": \"preferred\", \"contexts\": [[], []], \"explanation\": {\"kind\": \"none\"}}\n",
    )
    .unwrap();
    // `kailin evaluate ARGS… --out OUT`; BM25 unless a store is under test.
    let evaluate = |args: &[&str]| {
        let mut all = vec!["evaluate"];
        all.extend(args);
        all.extend(["--out", &out]);
        s(&all)
    };
    let bm25 = ["--retriever", "bm25"];
    let rule = |corpus: &str, mesh: &str, cands: &str| {
        evaluate(&[&["rule", "--corpus", corpus, "--mesh", mesh, "--candidates", cands], &bm25[..]].concat())
    };
    let learned = |evaluator: &str, corpus: &str, cands: &str| {
        evaluate(
            &[&["learned", "--evaluator", evaluator, "--corpus", corpus, "--candidates", cands], &bm25[..]].concat(),
        )
    };
    let judge_out = w.path("judge-out");
    let question_out = w.path("question-out");
    let bioasq = w.path("bioasq");
    std::fs::create_dir_all(&bioasq).unwrap();
    let batch = |id: &str| {
        format!(
            "{{\"questions\": [{{\"id\": \"{id}\", \"body\": \"does aspirin inhibit cox ?\", \"type\": \"yesno\", \
             \"snippets\": [{{\"text\": \"aspirin inhibit cox .\", \"document\": \"http://x/pubmed/1\"}}]}}]}}"
        )
    };
    std::fs::write(Path::new(&bioasq).join("1B1_golden.json"), batch("1")).unwrap();
    std::fs::write(Path::new(&bioasq).join("1B2_golden.json"), batch("2")).unwrap();
    let questions = w.path("ok-questions.jsonl");
    std::fs::write(&questions, "{\"id\": \"q\", \"text\": \"does aspirin inhibit cox ?\", \"doc_id\": \"1\"}\n")
        .unwrap();
    let cpt = w.path("ok-cpt.jsonl");
    std::fs::write(
        &cpt,
        "{\"id\": \"r\", \"question\": \"does aspirin inhibit cox ?\", \"context\": {\"doc_ids\": [\"1\"], \"text\": \"aspirin\"}, \
         \"provenance\": {\"agent\": \"t\"}}\n",
    )
    .unwrap();
    vec![
        (rule("{IN}", &mesh, &cands), false),
        (rule(&docs, "{IN}", &cands), false),
        (rule(&docs, &mesh, "{IN}"), false),
        (
            evaluate(&[
                "rule",
                "--corpus",
                &docs,
                "--mesh",
                &mesh,
                "--candidates",
                &cands,
                "--store",
                "{IN}",
                "--model",
                bert,
            ]),
            false,
        ),
        (learned("{IN}", &docs, &cands), false),
        (learned(llama, "{IN}", &cands), false),
        (learned(llama, &docs, "{IN}"), false),
        (
            s(&["evaluate", "train", "--labels", "{IN}", "--corpus", &docs, "--model", llama, "--out", &judge_out]),
            false,
        ),
        (
            s(&["evaluate", "train", "--labels", &labels, "--corpus", "{IN}", "--model", llama, "--out", &judge_out]),
            false,
        ),
        (s(&["evaluate", "pairs", "--labels", "{IN}", "--corpus", &docs, "--out", &out]), false),
        (
            s(&[
                "evaluate",
                "pairs",
                "--labels",
                &labels,
                "--corpus",
                "{IN}",
                "--out",
                &out,
                "--dpo",
                &w.path("dpo.jsonl"),
            ]),
            false,
        ),
        (s(&["question", "generate", "--model", llama, "--documents", "{IN}", "--out", &out]), false),
        (s(&["question", "generate", "--model", "{IN}", "--documents", &docs, "--out", &out]), false),
        (s(&["question", "train", "--base", llama, "--out", &question_out, "--bioasq", "{IN}"]), false),
        (
            s(&[
                "question",
                "train",
                "--base",
                llama,
                "--out",
                &question_out,
                "--bioasq",
                &bioasq,
                "--held-out",
                "1B2_golden.json",
                "--domain-cpt",
                "{IN}",
            ]),
            false,
        ),
        (s(&["question", "score", "--questions", "{IN}"]), false),
        (s(&["question", "score", "--questions", &questions, "--gold", "{IN}", "--other", "{IN}"]), false),
        (s(&["answer", "--input", "{IN}", "--out", &out, "--model", llama]), false),
        (s(&["answer", "--input", &cpt, "--out", &w.path("sft.jsonl"), "--model", "{IN}"]), false),
        (s(&["eval", "pubmedqa", "--model", "{IN}", "--data", &pqa, "--out", &w.path("eval")]), false),
        (s(&["eval", "pubmedqa", "--model", llama, "--data", "{IN}", "--out", &w.path("eval")]), false),
        (s(&["eval", "bioasq", "--model", "{IN}", "--data", &fixture_bioasq, "--out", &w.path("eval-b")]), false),
        (s(&["eval", "bioasq", "--model", llama, "--data", "{IN}", "--out", &w.path("eval-b")]), false),
        (s(&["eval", "compare", "--a", "{IN}", "--b", "{IN}"]), false),
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
        (s(&["train", "sft", "--model", llama, "--data", "{IN}", "--out", &w.path("train-sft")]), false),
        (s(&["train", "cpt", "--model", llama, "--data", "{IN}", "--out", &w.path("train-cpt")]), false),
        (s(&["train", "dpo", "--model", llama, "--data", "{IN}", "--out", &w.path("train-dpo")]), false),
        (s(&["train", "sft", "--model", "{IN}", "--data", &docs, "--out", &w.path("train-sft")]), false),
        (s(&["retrieve", "build", "--model", bert, "--corpus", "{IN}", "--out", &store]), false),
        (s(&["retrieve", "build", "--model", "{IN}", "--corpus", &docs, "--out", &store]), false),
        (s(&["retrieve", "import", "--vectors", "{IN}", "--out", &store]), false),
        (s(&["retrieve", "search", "--store", "{IN}", "--query-vectors", "{IN}"]), false),
        (s(&["retrieve", "search", "--store", &store, "--model", bert]), true),
        (s(&["retrieve", "train", "--base", bert, "--pairs", "{IN}", "--out", &w.path("encoder")]), false),
        (s(&["retrieve", "train", "--base", "{IN}", "--pairs", &retrieval_pairs, "--out", &w.path("encoder")]), false),
        (s(&["retrieve", "train", "--base", bert, "--bioasq", "{IN}", "--out", &w.path("encoder")]), false),
        (s(&["retrieve", "train", "--base", bert, "--pubmedqa", "{IN}", "--out", &w.path("encoder")]), false),
        (s(&["run", "--preset", "tiny", "--config", "{IN}", "--out", &w.path("run-config")]), false),
        (
            s(&[
                "run",
                "--preset",
                "tiny",
                "--set",
                "run.ablations=[]",
                "--set",
                "data.corpus={IN}",
                "--out",
                &w.path("run-corpus"),
            ]),
            false,
        ),
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

/// Outputs a user could give by mistake: a directory, a FIFO, a symbolic link to a file outside
/// the run, one path for two outputs. Each is refused or written through, and the files behind
/// them keep their content (a FIFO stays a FIFO, a link stays a link).
#[test]
fn outputs_are_never_clobbered() {
    let w = World::new();
    let mesh = fixture("mesh/mini.tsv").display().to_string();
    let docs = w.path("ok-docs.jsonl");
    std::fs::write(&docs, "{\"id\": \"1\", \"title\": \"Aspirin\", \"text\": \"Aspirin inhibits cox.\"}\n").unwrap();
    let outdir = w.path("an-output-dir");
    std::fs::create_dir(&outdir).unwrap();
    let fifo = w.path("a-fifo");
    let made_fifo = std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success());
    let link = w.path("a-link");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&w.sentinel, &link).unwrap();
    let mut failures = Vec::new();
    let mut outs = vec![outdir.clone(), link.clone()];
    if made_fifo {
        outs.push(fifo.clone());
    }
    for out in &outs {
        for args in [
            s(&["mesh", "cache", "--mesh", &mesh, "--out", out]),
            s(&["data", "convert", "--input", &docs, "--to", "documents", "--out", out]),
            s(&["data", "decontaminate", "--input", &docs, "--against", &docs, "--out", out]),
        ] {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = kailin_timed(&argv, b"", Duration::from_secs(60));
            let code = run.output.status.code();
            if run.timed_out || !matches!(code, Some(0..=2)) {
                failures.push(format!("kailin {}: exit {code:?}, timed out {}", args.join(" "), run.timed_out));
            }
        }
    }
    // The symbolic link was followed: the sentinel now holds what the last run wrote, and the
    // link is still a link. Everything else kept its kind.
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(std::path::Path::new(&outdir).is_dir());
    #[cfg(unix)]
    if made_fifo {
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    }
    // Two outputs, one path: refused before anything is written.
    let same = w.path("same.jsonl");
    let run = kailin_timed(
        &["data", "decontaminate", "--input", &docs, "--against", &docs, "--out", &same, "--report", &same],
        b"",
        Duration::from_secs(60),
    );
    assert_eq!(run.output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.output.stderr).contains("same file"));
    assert!(!std::path::Path::new(&same).exists());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Numbers out of range are refused when the command line is parsed, naming the range.
#[test]
fn options_out_of_range_are_refused_with_their_range() {
    let w = World::new();
    let docs = w.path("ok-docs.jsonl");
    std::fs::write(&docs, "{\"id\": \"1\", \"text\": \"x\"}\n").unwrap();
    let (m, out) = (w.path("no-model"), w.path("out"));
    // `kailin evaluate SUB ARGS…` with one valid file as corpus and candidates.
    let evaluate = |args: &[&str]| {
        let mut all = vec!["evaluate", args[0], "--corpus", &docs, "--candidates", &docs, "--out", &out];
        all.extend(&args[1..]);
        s(&all)
    };
    // `kailin question generate|… ARGS…` and `kailin answer ARGS…` with valid paths.
    let question = |args: &[&str]| {
        let mut all = vec!["question", args[0], "--model", &m, "--documents", &docs, "--out", &out];
        all.extend(&args[1..]);
        s(&all)
    };
    let answer = |args: &[&str]| {
        let mut all = vec!["answer", "--input", &docs, "--out", &out, "--model", &m];
        all.extend(args);
        s(&all)
    };
    let cases: Vec<Vec<String>> = vec![
        s(&["lm", "generate", "--model", &m, "--prompt", "x", "--temperature", "-1"]),
        s(&["lm", "generate", "--model", &m, "--prompt", "x", "--temperature", "NaN"]),
        s(&["lm", "generate", "--model", &m, "--prompt", "x", "--top-p", "1.5"]),
        s(&["lm", "generate", "--model", &m, "--prompt", "x", "--top-p", "0"]),
        s(&["lm", "generate", "--model", &m, "--prompt", "x", "--top-k", "0"]),
        s(&["lm", "generate", "--model", &m, "--prompt", "x", "--max-new", "0"]),
        s(&["lm", "generate", "--model", &m, "--prompt", "x", "--max-positions", "1000000000"]),
        s(&["lm", "generate", "--model", &m, "--prompt", "x", "--max-positions", "18446744073709551615"]),
        s(&["retrieve", "search", "--store", &out, "--query-vectors", &docs, "--k", "0"]),
        s(&["retrieve", "search", "--store", &out, "--query-vectors", &docs, "--threads", "100000"]),
        s(&["retrieve", "build", "--model", &m, "--corpus", &docs, "--out", &out, "--batch-size", "0"]),
        s(&["retrieve", "build", "--model", &m, "--corpus", &docs, "--out", &out, "--commit-every", "-1"]),
        s(&["retrieve", "build", "--model", &m, "--corpus", &docs, "--out", &out, "--shard-rows", "0"]),
        s(&["retrieve", "train", "--base", &m, "--pairs", &docs, "--out", &out, "--batch-size", "0"]),
        s(&["retrieve", "train", "--base", &m, "--pairs", &docs, "--out", &out, "--lr", "0"]),
        s(&["retrieve", "train", "--base", &m, "--pairs", &docs, "--out", &out, "--warmup", "1.5"]),
        s(&["retrieve", "train", "--base", &m, "--pairs", &docs, "--out", &out, "--warmup", "1"]),
        s(&["retrieve", "train", "--base", &m, "--pairs", &docs, "--out", &out, "--batch-size", "1"]),
        s(&["retrieve", "train", "--base", &m, "--pairs", &docs, "--out", &out, "--max-tokens", "2"]),
        s(&["retrieve", "train", "--base", &m, "--pairs", &docs, "--out", &out, "--limit", "0"]),
        s(&["retrieve", "train", "--base", &m, "--pairs", &docs, "--out", &out, "--temperature", "-1"]),
        s(&["retrieve", "train", "--base", &m, "--pairs", &docs, "--out", &out, "--epochs", "0"]),
        s(&["data", "decontaminate", "--input", &docs, "--against", &docs, "--out", &out, "--ngram", "0"]),
        s(&["data", "convert", "--input", &docs, "--to", "documents", "--out", &out, "--dedup", "1.5"]),
        s(&["data", "convert", "--input", &docs, "--to", "documents", "--out", &out, "--dedup", "-0.1"]),
        s(&["data", "convert", "--input", &docs, "--to", "documents", "--out", &out, "--shard", "3/2"]),
        s(&["train", "sft", "--model", &m, "--data", &docs, "--out", &out, "--max-grad-norm", "-1"]),
        s(&["train", "sft", "--model", &m, "--data", &docs, "--out", &out, "--eval-every", "0"]),
        s(&["train", "sft", "--model", &m, "--data", &docs, "--out", &out, "--stop-after", "0"]),
        s(&["train", "sft", "--model", &m, "--data", &docs, "--out", &out, "--lr", "0"]),
        s(&["train", "sft", "--model", &m, "--data", &docs, "--out", &out, "--epochs", "0"]),
        s(&["train", "sft", "--model", &m, "--data", &docs, "--out", &out, "--lora-dropout", "1"]),
        s(&["train", "dpo", "--model", &m, "--data", &docs, "--out", &out, "--beta", "-0.1"]),
        s(&["evaluate", "rule", "--corpus", &docs, "--mesh", &m, "--candidates", &docs, "--out", &out, "--k", "0"]),
        evaluate(&["rule", "--mesh", &m, "--k", "0"]),
        evaluate(&["rule", "--mesh", &m, "--margin", "-1"]),
        evaluate(&["learned", "--evaluator", &m, "--margin", "1.5"]),
        evaluate(&["learned", "--evaluator", &m, "--batch-size", "0"]),
        evaluate(&["learned", "--evaluator", &m, "--context-words", "0"]),
        s(&["evaluate", "train", "--labels", &docs, "--corpus", &docs, "--model", &m, "--out", &out, "--epochs", "0"]),
        question(&["generate", "--n", "0"]),
        question(&["generate", "--temperature", "-1"]),
        question(&["generate", "--top-p", "0"]),
        question(&["generate", "--max-new", "0"]),
        question(&["generate", "--batch-size", "0"]),
        question(&["generate", "--max-document-chars", "0"]),
        question(&["generate", "--resample", "1000"]),
        question(&["generate", "--resample-temperature", "-1"]),
        s(&["question", "train", "--base", &m, "--out", &out, "--limit", "0"]),
        s(&["question", "train", "--base", &m, "--out", &out, "--eval-limit", "0"]),
        s(&["question", "train", "--base", &m, "--out", &out, "--cpt-epochs", "0"]),
        s(&["question", "score", "--questions", &docs, "--near", "1.5"]),
        answer(&["--concurrency", "0"]),
        answer(&["--timeout", "0"]),
        answer(&["--max-tokens", "0"]),
        answer(&["--temperature", "-1"]),
        answer(&["--batch-size", "0"]),
        answer(&["--max-retries", "1000"]),
        answer(&["--max-retry-after", "-1"]),
        s(&["eval", "pubmedqa", "--model", &m, "--out", &out, "--batch-size", "0"]),
        s(&["eval", "pubmedqa", "--model", &m, "--out", &out, "--limit", "0"]),
        s(&["eval", "pubmedqa", "--model", &m, "--out", &out, "--max-positions", "1"]),
        s(&["eval", "pubmedqa", "--model", &m, "--out", &out, "--setting", "reasoning-free"]),
        s(&["eval", "pubmedqa", "--model", &m, "--out", &out, "--style", "fancy"]),
        s(&["eval", "bioasq", "--model", &m, "--data", &out, "--out", &out, "--limit", "0"]),
        s(&["eval", "bioasq", "--model", &m, "--data", &out, "--out", &out, "--batch-size", "0"]),
    ];
    let mut failures = Vec::new();
    for args in cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = kailin_timed(&argv, b"", Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&run.output.stderr);
        // clap's usage errors exit with 2 and name the option.
        if run.output.status.code() != Some(2) || !stderr.contains("--") {
            failures.push(format!("kailin {}: exit {:?}: {stderr}", args.join(" "), run.output.status.code()));
        }
    }
    assert!(!std::path::Path::new(&out).exists(), "nothing is written for a refused command");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The safety table: for every subcommand with inputs and outputs — an output that is one of
/// its inputs (directly or through a link), a stranger's non-empty directory, a file or a link
/// where a directory belongs, a directory another run holds, a resume from another base model,
/// contradictory records. Each is refused with a non-zero exit and a one-line message, and
/// nothing is overwritten.
#[test]
fn no_output_replaces_an_input_or_a_strangers_files() {
    let w = World::new();
    let (llama, bert) = (w.path("llama"), w.path("bert"));
    tiny_llama(Path::new(&llama));
    tiny_bert(Path::new(&bert));
    let mesh = w.path("mesh.tsv");
    std::fs::copy(fixture("mesh/mini.tsv"), &mesh).unwrap();
    let docs = w.path("docs.jsonl");
    std::fs::write(&docs, "{\"id\": \"1\", \"title\": \"Aspirin\", \"text\": \"Aspirin inhibits cox.\"}\n").unwrap();
    let cands = w.path("cands.jsonl");
    std::fs::write(&cands, "{\"doc_id\": \"1\", \"questions\": [\"aspirin\", \"cox\"]}\n").unwrap();
    let labels = w.path("labels.jsonl");
    std::fs::write(
        &labels,
        "{\"doc_id\": \"1\", \"questions\": [\"a\", \"b\"], \"preferred\": 0, \"scores\": [1.0, 0.5], \
         \"outcome\": \"preferred\", \"contexts\": [[{\"doc_id\": \"1\", \"retrieval_score\": 1.0}], []], \"explanation\": {\"kind\": \"none\"}}\n",
    )
    .unwrap();
    let cpt = w.path("cpt.jsonl");
    std::fs::write(
        &cpt,
        "{\"id\": \"r\", \"question\": \"does aspirin inhibit cox ?\", \"context\": {\"doc_ids\": [\"1\"], \"text\": \"aspirin\"}, \
         \"provenance\": {\"agent\": \"t\"}}\n",
    )
    .unwrap();
    let sft = w.path("sft-data.jsonl");
    std::fs::write(&sft, "{\"prompt\": \"what does aspirin inhibit\", \"completion\": \"cox\"}\n").unwrap();
    let bioasq = w.path("bioasq");
    std::fs::create_dir_all(&bioasq).unwrap();
    for id in ["1", "2"] {
        std::fs::write(
            Path::new(&bioasq).join(format!("1B{id}_golden.json")),
            format!(
                "{{\"questions\": [{{\"id\": \"{id}\", \"body\": \"does aspirin inhibit cox ?\", \"type\": \"yesno\", \
                 \"snippets\": [{{\"text\": \"aspirin inhibit cox .\", \"document\": \"http://x/pubmed/1\"}}]}}]}}"
            ),
        )
        .unwrap();
    }
    let pqa = fixture("data").display().to_string();
    let link = w.path("link-to-docs");
    std::os::unix::fs::symlink(&docs, &link).unwrap();
    let stranger = w.path("stranger");
    std::fs::create_dir(&stranger).unwrap();
    std::fs::write(Path::new(&stranger).join("report.md"), "mine\n").unwrap();
    let file = w.path("a-file");
    std::fs::write(&file, "mine\n").unwrap();
    let file_link = w.path("link-to-file");
    std::os::unix::fs::symlink(&file, &file_link).unwrap();
    let dangling = w.path("dangling");
    std::os::unix::fs::symlink(w.path("nowhere"), &dangling).unwrap();
    let busy = w.path("busy");
    let held = kailin_core::RunDir::open(
        Path::new(&busy),
        &kailin_core::RunDirOptions {
            flag: "--out",
            command: "kailin train sft",
            force: false,
            sharing: kailin_core::Sharing::Exclusive,
        },
    )
    .unwrap();
    let protected = [&mesh, &docs, &cands, &labels, &cpt, &sft, &file];
    let before: Vec<Vec<u8>> = protected.iter().map(|p| std::fs::read(p).unwrap()).collect();

    // (case, args, what the message must say)
    let train = |out: &str| s(&["train", "sft", "--model", &llama, "--data", &sft, "--out", out]);
    let dir_outputs = |out: &str| -> Vec<Vec<String>> {
        vec![
            train(out),
            s(&["train", "cpt", "--model", &llama, "--data", &cpt, "--out", out]),
            s(&["evaluate", "train", "--labels", &labels, "--corpus", &docs, "--model", &llama, "--out", out]),
            s(&[
                "question",
                "train",
                "--base",
                &llama,
                "--out",
                out,
                "--bioasq",
                &bioasq,
                "--held-out",
                "1B2_golden.json",
            ]),
            s(&["eval", "pubmedqa", "--model", &llama, "--data", &pqa, "--out", out]),
            s(&[
                "answer",
                "--input",
                &cpt,
                "--out",
                &w.path("o.jsonl"),
                "--model",
                "m",
                "--endpoint",
                "http://127.0.0.1:9/v1",
                "--cache",
                out,
            ]),
        ]
    };
    let rule_into = |out: &str| {
        s(&[
            "evaluate",
            "rule",
            "--corpus",
            &docs,
            "--mesh",
            &mesh,
            "--candidates",
            &cands,
            "--retriever",
            "bm25",
            "--out",
            out,
        ])
    };
    let mut cases: Vec<(Vec<String>, &str)> = vec![
        (rule_into(&cands), "same file as the input --candidates"),
        (rule_into(&docs), "same file as the input --corpus"),
        (
            s(&[
                "evaluate",
                "learned",
                "--evaluator",
                &llama,
                "--corpus",
                &docs,
                "--candidates",
                &cands,
                "--retriever",
                "bm25",
                "--out",
                &cands,
            ]),
            "same file",
        ),
        (
            s(&["evaluate", "pairs", "--labels", &labels, "--corpus", &docs, "--out", &labels]),
            "same file as the input --labels",
        ),
        (
            s(&[
                "evaluate",
                "pairs",
                "--labels",
                &labels,
                "--corpus",
                &docs,
                "--out",
                &w.path("p.jsonl"),
                "--dpo",
                &docs,
            ]),
            "same file as the input --corpus",
        ),
        (
            s(&["question", "generate", "--model", &llama, "--documents", &docs, "--out", &docs]),
            "same file as the input --documents",
        ),
        (
            s(&["question", "generate", "--model", &llama, "--documents", &docs, "--out", &link]),
            "same file as the input --documents",
        ),
        (
            s(&[
                "question",
                "generate",
                "--model",
                &llama,
                "--documents",
                &docs,
                "--out",
                &w.path("q.jsonl"),
                "--stats",
                &docs,
            ]),
            "same file",
        ),
        (s(&["answer", "--input", &cpt, "--out", &cpt, "--model", &llama]), "same file as the input --input"),
        (
            s(&["data", "convert", "--input", &docs, "--to", "documents", "--out", &link]),
            "same file as the input --input",
        ),
        (
            s(&[
                "data",
                "decontaminate",
                "--input",
                &docs,
                "--against",
                &cands,
                "--out",
                &w.path("k.jsonl"),
                "--report",
                &cands,
            ]),
            "same file",
        ),
        (s(&["mesh", "cache", "--mesh", &mesh, "--out", &mesh]), "same file as the input --mesh"),
        (
            s(&["retrieve", "build", "--model", &bert, "--corpus", &docs, "--out", &docs]),
            "same file as the input --corpus",
        ),
        (
            s(&["eval", "pubmedqa", "--model", &llama, "--data", &pqa, "--out", &llama]),
            "same file as the input --model",
        ),
        (
            s(&["eval", "bioasq", "--model", &llama, "--data", &bioasq, "--out", &llama]),
            "same file as the input --model",
        ),
        (train(&sft), "same file as the input --data"),
        (train(&busy), "in use by"),
        // Records that contradict themselves.
    ];
    for args in dir_outputs(&stranger) {
        cases.push((args, "not made by kailin"));
    }
    cases.push((s(&["retrieve", "build", "--model", &bert, "--corpus", &docs, "--out", &stranger]), "holds no store"));
    cases.push((s(&["retrieve", "build", "--model", &bert, "--corpus", &docs, "--out", &dangling]), "dangling"));
    for (target, says) in
        [(&file, "is a file"), (&file_link, "symbolic link to a file"), (&dangling, "dangling symbolic link")]
    {
        for args in dir_outputs(target) {
            cases.push((args, says));
        }
    }
    let contradictory = [
        ("\"preferred\": 5, \"scores\": [1.0, 0.5], \"outcome\": \"preferred\"", "preferred is 5"),
        ("\"preferred\": 1, \"scores\": [1.0, 0.5], \"outcome\": \"tie\"", "contradicts preferred 1"),
        ("\"preferred\": null, \"scores\": [1.0, 0.5], \"outcome\": \"preferred\"", "without a preferred question"),
        ("\"preferred\": 0, \"scores\": [null, 0.5], \"outcome\": \"preferred\"", "needs both scores"),
    ];
    for (i, (fields, says)) in contradictory.iter().enumerate() {
        let bad = w.path(&format!("bad-labels-{i}.jsonl"));
        std::fs::write(
            &bad,
            format!("\n{{\"doc_id\": \"1\", \"questions\": [\"a\", \"b\"], {fields}, \"contexts\": [[], []], \"explanation\": {{\"kind\": \"none\"}}}}\n"),
        )
        .unwrap();
        cases.push((
            s(&["evaluate", "pairs", "--labels", &bad, "--corpus", &docs, "--out", &w.path("pairs.jsonl")]),
            says,
        ));
        cases.push((
            s(&["evaluate", "train", "--labels", &bad, "--corpus", &docs, "--model", &llama, "--out", &w.path("jt")]),
            says,
        ));
    }
    let dup = w.path("dup-docs.jsonl");
    std::fs::write(&dup, format!("{0}{0}", std::fs::read_to_string(&docs).unwrap())).unwrap();
    cases.push((
        s(&["question", "generate", "--model", &llama, "--documents", &dup, "--out", &w.path("q2.jsonl")]),
        ":2: id \"1\" repeats line 1",
    ));
    let empty = w.path("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    cases.push((
        s(&["data", "convert", "--input", &empty, "--from", "jsonl", "--to", "documents", "--out", &w.path("c.jsonl")]),
        "holds no records",
    ));
    cases.push((
        s(&["data", "convert", "--input", &docs, "--from", "cpt", "--to", "text", "--out", &w.path("c.jsonl")]),
        "missing field",
    ));

    let mut failures = Vec::new();
    for (args, says) in &cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = kailin_timed(&argv, b"", Duration::from_secs(120));
        let stderr = String::from_utf8_lossy(&run.output.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        if run.output.status.success() || errors.len() != 1 || !errors[0].contains(says) {
            failures.push(format!(
                "kailin {}: exit {:?}, wanted one error saying {says:?}: {stderr}",
                args.join(" "),
                run.output.status.code()
            ));
        }
    }
    let after: Vec<Vec<u8>> = protected.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(after == before, "an input was changed");
    assert_eq!(std::fs::read_dir(&stranger).unwrap().count(), 1, "the stranger's directory was written into");
    assert_eq!(std::fs::read_to_string(Path::new(&stranger).join("report.md")).unwrap(), "mine\n");
    assert!(!Path::new(&w.path("nowhere")).exists(), "the dangling link's target was created");
    assert!(!Path::new(&w.path("pairs.jsonl")).exists() && !Path::new(&w.path("c.jsonl")).exists());
    drop(held);
    assert!(failures.is_empty(), "{} of {} cases:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// A trained model's directory records the model it started from: a rerun from another base
/// model (of the same shape) is refused before anything is written, --force starts over.
#[test]
fn a_resume_from_another_base_model_is_refused_before_anything_is_written() {
    let w = World::new();
    let (a, b) = (w.path("a"), w.path("b"));
    tiny_llama(Path::new(&a));
    tiny_llama(Path::new(&b));
    // b: the same shapes, other weights (one byte of the last tensor changed).
    let weights = Path::new(&b).join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x01;
    std::fs::write(&weights, bytes).unwrap();
    let docs = w.path("docs.jsonl");
    std::fs::write(&docs, "{\"id\": \"1\", \"title\": \"Aspirin\", \"text\": \"Aspirin inhibits cox.\"}\n").unwrap();
    let labels = w.path("labels.jsonl");
    std::fs::write(
        &labels,
        "{\"doc_id\": \"1\", \"questions\": [\"what does aspirin inhibit\", \"cox\"], \"preferred\": 0, \"scores\": [1.0, 0.5], \
         \"outcome\": \"preferred\", \"contexts\": [[{\"doc_id\": \"1\", \"retrieval_score\": 1.0}], []], \"explanation\": {\"kind\": \"none\"}}\n",
    )
    .unwrap();
    let out = w.path("judge");
    let train = |model: &str, extra: &[&str]| {
        let mut args =
            vec!["evaluate", "train", "--labels", &labels, "--corpus", &docs, "--model", model, "--out", &out];
        args.extend(extra);
        kailin_timed(&args, b"", Duration::from_secs(120))
    };
    let first = train(&a, &["--stop-after", "1", "--max-len", "64"]);
    assert!(first.output.status.success(), "{}", String::from_utf8_lossy(&first.output.stderr));
    let examples = Path::new(&out).join("judge-examples.jsonl");
    let written = std::fs::metadata(&examples).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let again = train(&b, &["--max-len", "64"]);
    let err = String::from_utf8_lossy(&again.output.stderr);
    assert!(!again.output.status.success() && err.contains("another starting point"), "{err}");
    assert_eq!(std::fs::metadata(&examples).unwrap().modified().unwrap(), written, "refused before writing");
    // Other options on resume: refused, the option named.
    let lr = train(&a, &["--max-len", "64", "--lr", "0.5"]);
    let err = String::from_utf8_lossy(&lr.output.stderr);
    assert!(!lr.output.status.success() && err.contains("lr 0.00002 there, 0.5 now"), "{err}");
    let forced = train(&b, &["--max-len", "64", "--force"]);
    assert!(forced.output.status.success(), "{}", String::from_utf8_lossy(&forced.output.stderr));
}
