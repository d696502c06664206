//! `kailin evaluate …` through the binary, on the fixture hierarchy, a small corpus and tiny
//! models written by the test: one label line per candidates line, in order, with the
//! contract's shape; skips counted, never dropped; a store of another encoder refused; labels
//! to preference pairs and DPO examples; the learned evaluator trained and used end to end.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

mod common;
use common::{fixture, kailin_timed, tiny_bert, tiny_llama};

fn kailin(args: &[&str]) -> Output {
    let run = kailin_timed(args, b"", Duration::from_secs(300));
    assert!(!run.timed_out, "kailin {args:?} timed out");
    run.output
}

fn ok(out: &Output) {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

const CORPUS: &str = r#"{"id": "d", "title": "Levodopa", "text": "Levodopa in parkinson disease", "mesh": ["Parkinson Disease", "Levodopa"]}
{"id": "near", "text": "dopamine in alzheimer disease", "mesh": ["Alzheimer Disease", "Dopamine"]}
{"id": "far", "text": "asthma in winter", "mesh": ["Asthma"]}
{"id": "none", "text": "the committee report", "mesh": []}
"#;

const CANDIDATES: &str = r#"{"doc_id": "d", "questions": ["is asthma worse in winter", "is dopamine low in alzheimer disease"]}
{"doc_id": "ghost", "questions": ["a", "b"]}
{"doc_id": "d", "questions": ["", "is dopamine low in alzheimer disease"]}
{"doc_id": "d", "questions": ["is dopamine low in alzheimer disease", "is asthma worse in winter"]}
"#;

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("corpus.jsonl"), CORPUS).unwrap();
        std::fs::write(dir.path().join("cands.jsonl"), CANDIDATES).unwrap();
        Files { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

/// `kailin evaluate rule` over the test's corpus and candidates, with the fixture hierarchy.
fn rule(f: &Files, out: &str, extra: &[&str]) -> Output {
    let mesh = fixture("mesh/mini.tsv");
    let (corpus, cands, out) = (f.path("corpus.jsonl"), f.path("cands.jsonl"), f.path(out));
    let mut args = vec!["evaluate", "rule", "--corpus", p(&corpus), "--mesh", p(&mesh)];
    args.extend(["--candidates", p(&cands), "--out", p(&out)]);
    args.extend(extra);
    kailin(&args)
}

/// The same with BM25, one context, the source left out.
fn rule_bm25(f: &Files, out: &str, extra: &[&str]) -> Output {
    let mut args = vec!["--retriever", "bm25", "--k", "1", "--exclude-source"];
    args.extend(extra);
    rule(f, out, &args)
}

#[test]
fn rule_labels_one_line_per_candidates_line() {
    let f = Files::new();
    // Intrinsic IC: in a four-document corpus, corpus IC cannot tell a term from its parent.
    let out = rule_bm25(&f, "labels.jsonl", &["--ic", "intrinsic"]);
    ok(&out);
    let labels = read_lines(&f.path("labels.jsonl"));
    assert_eq!(labels.len(), 4);
    for (l, id) in labels.iter().zip(["d", "ghost", "d", "d"]) {
        assert_eq!(l["doc_id"], id);
        for key in ["preferred", "scores", "explanation"] {
            assert!(l.get(key).is_some(), "{key} missing: {l}");
        }
        assert_eq!(l["scores"].as_array().unwrap().len(), 2);
    }
    assert_eq!(labels[0]["preferred"], 1);
    assert_eq!(labels[3]["preferred"], 0);
    assert_eq!(labels[0]["explanation"]["kind"], "rule");
    let top = &labels[0]["explanation"]["candidates"][1]["top_pairs"][0];
    assert_eq!(top["mica"]["name"], "Neurodegenerative Diseases");
    for (i, outcome) in [(1, "unknown_document"), (2, "empty_question")] {
        assert_eq!(labels[i]["outcome"], outcome);
        assert!(labels[i]["preferred"].is_null());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("4 items: 2 preferred, 1 empty_question, 1 unknown_document"), "{stderr}");
}

#[test]
fn labels_become_preference_pairs_and_dpo_examples() {
    let f = Files::new();
    ok(&rule_bm25(&f, "labels.jsonl", &["--agg", "bma"]));
    let (labels, corpus, pairs, dpo) =
        (f.path("labels.jsonl"), f.path("corpus.jsonl"), f.path("pairs.jsonl"), f.path("dpo.jsonl"));
    let out = kailin(&[
        "evaluate",
        "pairs",
        "--labels",
        p(&labels),
        "--corpus",
        p(&corpus),
        "--out",
        p(&pairs),
        "--dpo",
        p(&dpo),
    ]);
    ok(&out);
    let pairs = read_lines(&pairs);
    assert_eq!(pairs.len(), 2);
    assert_eq!(pairs[0]["chosen"]["question"], "is dopamine low in alzheimer disease");
    assert_eq!(pairs[0]["chosen"]["context"]["doc_ids"][0], "near");
    let dpo = read_lines(&dpo);
    assert_eq!(dpo.len(), 2);
    assert!(dpo[0]["prompt"].as_str().unwrap().contains("Levodopa in parkinson disease"));
    assert_eq!(dpo[0]["rejected"], "is asthma worse in winter");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 labels without preference dropped"));
}

#[test]
fn dense_rule_refuses_a_store_of_another_encoder() {
    let f = Files::new();
    let (bert, other, store) = (f.path("bert"), f.path("other-bert"), f.path("store"));
    tiny_bert(&bert);
    tiny_bert(&other);
    std::fs::write(other.join("sentence_bert_config.json"), r#"{"max_seq_length": 16}"#).unwrap();
    let corpus = f.path("corpus.jsonl");
    ok(&kailin(&["retrieve", "build", "--model", p(&bert), "--corpus", p(&corpus), "--out", p(&store)]));
    let labels = f.path("labels.jsonl");
    let args = |model: &Path| rule(&f, "labels.jsonl", &["--store", p(&store), "--model", p(model)]);
    ok(&args(&bert));
    assert_eq!(read_lines(&labels).len(), 4);
    std::fs::remove_file(&labels).unwrap();
    let out = args(&other);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("encoder"), "{stderr}");
    assert!(!labels.exists());
    // Dense retrieval without a store is a clear error.
    let out = rule(&f, "labels.jsonl", &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --store"));
}

#[test]
fn the_learned_evaluator_trains_on_rule_labels_and_labels_alike() {
    let f = Files::new();
    ok(&rule_bm25(&f, "labels.jsonl", &[]));
    let (llama, judge, corpus, labels) =
        (f.path("llama"), f.path("judge"), f.path("corpus.jsonl"), f.path("labels.jsonl"));
    tiny_llama(&llama);
    let out = kailin(&[
        "evaluate",
        "train",
        "--labels",
        p(&labels),
        "--corpus",
        p(&corpus),
        "--model",
        p(&llama),
        "--out",
        p(&judge),
        "--epochs",
        "2",
        "--lr",
        "1e-3",
        "--max-len",
        "256",
    ]);
    ok(&out);
    assert!(judge.join("model.safetensors").is_file());
    // Two preferred labels, each shown in both orders.
    assert_eq!(std::fs::read_to_string(judge.join("judge-examples.jsonl")).unwrap().lines().count(), 4);
    let cands = f.path("cands.jsonl");
    for (model, out) in [(&judge, "learned.jsonl"), (&llama, "plain.jsonl")] {
        let run = kailin(&[
            "evaluate",
            "learned",
            "--evaluator",
            p(model),
            "--corpus",
            p(&corpus),
            "--candidates",
            p(&cands),
            "--out",
            p(&f.path(out)),
            "--retriever",
            "bm25",
            "--k",
            "1",
        ]);
        ok(&run);
        let labels = read_lines(&f.path(out));
        assert_eq!(labels.len(), 4);
        assert_eq!(labels[0]["explanation"]["kind"], "model");
        let [a, b] = [labels[0]["scores"][0].as_f64().unwrap(), labels[0]["scores"][1].as_f64().unwrap()];
        assert!((a + b - 1.0).abs() < 1e-9 && (0.0..=1.0).contains(&a));
        assert_eq!(labels[1]["outcome"], "unknown_document");
        assert_eq!(labels[2]["outcome"], "empty_question");
    }
}

#[test]
fn bad_candidate_lines_name_file_and_line() {
    let f = Files::new();
    std::fs::write(f.path("cands.jsonl"), "{\"doc_id\": \"d\", \"questions\": [\"one\"]}\n").unwrap();
    let out = rule_bm25(&f, "labels.jsonl", &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cands.jsonl:1"), "{stderr}");
    assert!(!f.path("labels.jsonl").exists());
    // A corpus with one id twice.
    std::fs::write(f.path("corpus.jsonl"), format!("{CORPUS}{{\"id\": \"far\", \"text\": \"again\"}}\n")).unwrap();
    std::fs::write(f.path("cands.jsonl"), CANDIDATES).unwrap();
    let out = rule_bm25(&f, "labels.jsonl", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"far\" appears twice"), "{stderr}");
}
