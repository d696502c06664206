//! `kailin retrieve …` through the binary: import and search precomputed vectors (no model
//! needed), and build and search text with the real all-MiniLM-L6-v2 when it has been fetched.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use ndarray::array;
use ndarray_npy::WriteNpyExt;

fn kailin(args: &[&str], stdin: &[u8]) -> Output {
    common::kailin_timed(args, stdin, std::time::Duration::from_secs(300)).output
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn import_then_search_query_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let (vectors, ids, queries, store) =
        (dir.path().join("v.npy"), dir.path().join("ids.txt"), dir.path().join("q.npy"), dir.path().join("store"));
    array![[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.6, 0.8], [0.0, 0.0, 1.0]]
        .write_npy(std::fs::File::create(&vectors).unwrap())
        .unwrap();
    array![[0.0f32, 0.0, 1.0], [0.9, 0.1, 0.0]].write_npy(std::fs::File::create(&queries).unwrap()).unwrap();
    std::fs::write(&ids, "PMID1\nPMID2\nPMID3\nPMID4\n").unwrap();
    let out = kailin(
        &["retrieve", "import", "--vectors", p(&vectors), "--ids", p(&ids), "--out", p(&store), "--shard-rows", "3"],
        b"",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got =
        lines(&kailin(&["retrieve", "search", "--store", p(&store), "--query-vectors", p(&queries), "--k", "2"], b""));
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["row"], 0);
    assert_eq!(got[0]["hits"][0]["id"], "PMID4");
    assert_eq!(got[0]["hits"][1]["id"], "PMID3");
    assert!((got[0]["hits"][1]["score"].as_f64().unwrap() - 0.8).abs() < 1e-6);
    assert_eq!(got[1]["hits"][0]["id"], "PMID1");
    // Query vectors of another dimension, and an id file of another length, are refused.
    let bad = dir.path().join("bad.npy");
    array![[1.0f32, 0.0]].write_npy(std::fs::File::create(&bad).unwrap()).unwrap();
    let out = kailin(&["retrieve", "search", "--store", p(&store), "--query-vectors", p(&bad)], b"");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dimension 2, expected 3"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&ids, "PMID1\n").unwrap();
    let out = kailin(
        &["retrieve", "import", "--vectors", p(&vectors), "--ids", p(&ids), "--out", p(&dir.path().join("s2"))],
        b"",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 ids for 4 vectors"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fetched all-MiniLM-L6-v2 (its tests are ignored by default; see `lm_cli.rs`).
fn minilm() -> PathBuf {
    let dir = kailin_lm::models_dir().map(|d| d.join("all-minilm-l6-v2"));
    dir.filter(|d| d.join("model.safetensors").is_file())
        .expect("all-MiniLM-L6-v2 not found: run `cargo xtask fetch-models`")
}

#[test]
#[ignore = "needs the all-MiniLM-L6-v2 model: cargo xtask fetch-models"]
fn build_and_search_text_with_minilm() {
    let model = minilm();
    let dir = tempfile::tempdir().unwrap();
    let (corpus, store) = (dir.path().join("docs.jsonl"), dir.path().join("store"));
    let docs = [
        ("p1", "Aspirin and myocardial infarction", "Low-dose aspirin reduced heart attacks in adults."),
        ("p2", "CFTR mutations", "Cystic fibrosis is caused by mutations in the CFTR gene."),
        ("p3", "Road budgets", "The council approved funds to repair roads."),
    ];
    let mut text = String::new();
    for (id, title, body) in docs {
        text.push_str(&serde_json::json!({ "id": id, "title": title, "text": body }).to_string());
        text.push('\n');
    }
    std::fs::write(&corpus, text).unwrap();
    let out = kailin(&["retrieve", "build", "--model", p(&model), "--corpus", p(&corpus), "--out", p(&store)], b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let queries = b"Which gene is mutated in cystic fibrosis?\nDoes aspirin prevent heart attacks?\n";
    let got = lines(&kailin(&["retrieve", "search", "--store", p(&store), "--model", p(&model), "--k", "1"], queries));
    assert_eq!(got[0]["query"], "Which gene is mutated in cystic fibrosis?");
    assert_eq!(got[0]["hits"][0]["id"], "p2");
    assert_eq!(got[1]["hits"][0]["id"], "p1");
    // Not UTF-8: an error naming the line. An empty line: its own output line, with no hits.
    let out = kailin(&["retrieve", "search", "--store", p(&store), "--model", p(&model)], b"fine\n\xff\xfe\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2: not UTF-8"));
    let got = lines(&kailin(&["retrieve", "search", "--store", p(&store), "--model", p(&model)], b"fine\n\nmore\n"));
    assert_eq!(got.len(), 3, "one output line per input line");
    assert_eq!((got[1]["query"].as_str(), got[1]["hits"].as_array().map(Vec::len)), (Some(""), Some(0)));
    assert_eq!(got[2]["query"], "more");

    // A directory of document files builds the same store as their concatenation.
    let (docs_dir, store2) = (dir.path().join("docs"), dir.path().join("store2"));
    std::fs::create_dir_all(docs_dir.join("more")).unwrap();
    let all = std::fs::read_to_string(&corpus).unwrap();
    let (first, last) = all.split_at(all.match_indices('\n').nth(1).unwrap().0 + 1);
    std::fs::write(docs_dir.join("a.jsonl"), first).unwrap();
    std::fs::write(docs_dir.join("more/b.jsonl"), last).unwrap();
    std::fs::write(docs_dir.join("notes.txt"), "not a corpus").unwrap();
    let out = kailin(&["retrieve", "build", "--model", p(&model), "--corpus", p(&docs_dir), "--out", p(&store2)], b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not read:"), "the unread file is named");
    let again =
        lines(&kailin(&["retrieve", "search", "--store", p(&store2), "--model", p(&model), "--k", "3"], queries));
    let once = lines(&kailin(&["retrieve", "search", "--store", p(&store), "--model", p(&model), "--k", "3"], queries));
    assert_eq!(again, once);
}

#[test]
fn train_writes_an_encoder_that_build_loads_and_resumes_from_its_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (base, out) = (dir.path().join("base"), dir.path().join("encoder"));
    common::tiny_bert(&base);
    let pairs = dir.path().join("pairs.jsonl");
    let records = [
        r#"{"query": "aspirin cox", "positive": "aspirin the cox gene"}"#,
        r#"{"query": "liver gene", "positive": "the liver genes", "negatives": ["aspirin"]}"#,
        r#"{"query": "cox liver", "positive": "cox in the liver"}"#,
        r#"{"query": "aspirin cox", "positive": "aspirin the cox gene"}"#,
    ];
    std::fs::write(&pairs, records.join("\n")).unwrap();
    let bioasq = common::fixture("data/bioasq").display().to_string();
    let pubmedqa = common::fixture("data/pubmedqa/ori_pqal.json").display().to_string();
    let args = |extra: &[&str]| {
        let mut a = vec!["retrieve", "train", "--base", p(&base), "--out", p(&out), "--pairs", p(&pairs)];
        a.extend(["--bioasq", &bioasq, "--held-out", "1B2*", "--pubmedqa", &pubmedqa]);
        a.extend(["--epochs", "2", "--batch-size", "2", "--lr", "1e-3", "--hard-negatives", "1"]);
        a.extend(extra);
        a.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>()
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        kailin(&refs, b"")
    };
    // Stopped part-way: a checkpoint, no encoder yet; the rerun goes on from it.
    let first = run(&["--stop-after", "1", "--checkpoint-every", "1"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let said = String::from_utf8_lossy(&first.stderr);
    assert!(said.contains("1 duplicate pairs skipped") && said.contains("stopped after step 1"), "{said}");
    assert!(!out.exists() && dir.path().join("encoder.checkpoints/latest").is_file());
    let second = run(&[]);
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    for file in
        ["model.safetensors", "config.json", "vocab.txt", "modules.json", "1_Pooling/config.json", "kailin-train.json"]
    {
        assert!(out.join(file).is_file(), "{file}");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("kailin-train.json")).unwrap()).unwrap();
    assert!(summary["steps"].as_u64().unwrap() >= 2, "{summary}");
    // The exported encoder builds a store.
    let docs = dir.path().join("docs.jsonl");
    std::fs::write(&docs, "{\"id\": \"1\", \"text\": \"aspirin cox\"}\n{\"id\": \"2\", \"text\": \"liver gene\"}\n")
        .unwrap();
    let store = dir.path().join("store");
    let built = kailin(&["retrieve", "build", "--model", p(&out), "--corpus", p(&docs), "--out", p(&store)], b"");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    // Searched by the store's encoder and BM25 fused: an empty line finds nothing, "liver
    // gene" finds its own document first (BM25 alone ranks it first; dense agrees or ties).
    let hybrid =
        ["retrieve", "search", "--store", p(&store), "--model", p(&out), "--hybrid", "--corpus", p(&docs), "--k", "2"];
    let found = lines(&kailin(&hybrid, b"liver gene\n\n"));
    assert_eq!(found.len(), 2);
    assert_eq!(found[0]["hits"].as_array().unwrap().len(), 2);
    assert_eq!(found[0]["hits"][0]["id"], "2");
    assert!(found[1]["hits"].as_array().unwrap().is_empty());
    // A corpus other than the store's is refused.
    let other = dir.path().join("other.jsonl");
    std::fs::write(&other, "{\"id\": \"1\", \"text\": \"aspirin\"}\n").unwrap();
    let refused = kailin(
        &["retrieve", "search", "--store", p(&store), "--model", p(&out), "--hybrid", "--corpus", p(&other)],
        b"x\n",
    );
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("store holds 2 rows"));
    // A held-out glob that matches no batch is refused, naming it.
    let bad = kailin(
        &[
            "retrieve",
            "train",
            "--base",
            p(&base),
            "--out",
            p(&dir.path().join("x")),
            "--bioasq",
            &bioasq,
            "--held-out",
            "9B*",
        ],
        b"",
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("9B*"), "{}", String::from_utf8_lossy(&bad.stderr));
}
