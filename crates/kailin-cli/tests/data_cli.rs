//! The `kailin data …` commands on the invented corpus fixtures.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/corpus").join(name).display().to_string()
}

fn kailin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kailin")).args(args).output().expect("kailin runs")
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn stats_of_each_format() {
    let v: serde_json::Value =
        serde_json::from_str(&ok(&kailin(&["data", "stats", &fixture("articles.xml")]))).unwrap();
    assert_eq!((v["documents"].as_u64(), v["with_text_and_mesh"].as_u64()), (Some(2), Some(1)));
    assert_eq!((v["years"]["min"].as_u64(), v["years"]["max"].as_u64()), (Some(1998), Some(2019)));
    let v: serde_json::Value = serde_json::from_str(&ok(&kailin(&["data", "stats", &fixture("bioasq.json")]))).unwrap();
    assert_eq!(v["questions"], 2);
    let strict = kailin(&["data", "stats", &fixture("docs.pubtator")]);
    assert!(!strict.status.success(), "a broken document fails without --skip-bad");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&kailin(&["data", "stats", "--skip-bad", &fixture("docs.pubtator")]))).unwrap();
    assert_eq!((v["documents"].as_u64(), v["skipped"].as_u64()), (Some(2), Some(1)));
}

#[test]
fn shards_concatenate_to_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all.jsonl");
    ok(&kailin(&[
        "data",
        "convert",
        "--input",
        &fixture("pubmedqa.json"),
        "--to",
        "documents",
        "--out",
        all.to_str().unwrap(),
    ]));
    let mut parts = Vec::new();
    for i in 0..3 {
        let p = dir.path().join(format!("s{i}.jsonl"));
        let shard = format!("{i}/3");
        ok(&kailin(&[
            "data",
            "convert",
            "--input",
            &fixture("pubmedqa.json"),
            "--to",
            "documents",
            "--shard",
            &shard,
            "--out",
            p.to_str().unwrap(),
        ]));
        parts.extend(lines(&p));
    }
    let mut whole = lines(&all);
    let key = |v: &serde_json::Value| v["id"].as_str().unwrap().to_owned();
    whole.sort_by_key(key);
    parts.sort_by_key(key);
    assert_eq!(whole.len(), 2);
    assert_eq!(parts, whole);
    let bad = kailin(&[
        "data",
        "convert",
        "--input",
        &fixture("pubmedqa.json"),
        "--to",
        "documents",
        "--shard",
        "3/3",
        "--out",
        "x",
    ]);
    assert!(!bad.status.success());
}

#[test]
fn dedup_drops_near_duplicate_questions() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("b.json");
    let q = |id: &str, body: &str| serde_json::json!({"id": id, "body": body, "type": "yesno", "documents": [], "snippets": [], "ideal_answer": ["x"], "exact_answer": "yes"});
    let body =
        "Is levodopa the most effective symptomatic treatment for motor symptoms of Parkinson disease in adults?";
    let file = serde_json::json!({"questions": [q("1", body), q("2", &body.to_uppercase()), q("3", "Is asthma more common in cities than in the countryside today?")]});
    std::fs::write(&src, file.to_string()).unwrap();
    let out = dir.path().join("q.jsonl");
    let o = kailin(&[
        "data",
        "convert",
        "--input",
        src.to_str().unwrap(),
        "--to",
        "questions",
        "--dedup",
        "0.8",
        "--out",
        out.to_str().unwrap(),
    ]);
    ok(&o);
    let ids: Vec<String> = lines(&out).iter().map(|v| v["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["bioasq-1", "bioasq-3"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 near-duplicates dropped"));
}

#[test]
fn decontaminate_by_id_and_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.jsonl");
    let corpus = [
        serde_json::json!({"id": "90000021", "text": "A copy of the evaluation abstract."}),
        serde_json::json!({"id": "1", "text": "Here Levodopa was given to forty invented patients with early Parkinson disease for twelve weeks in this made up trial, again."}),
        serde_json::json!({"id": "2", "text": "An unrelated abstract about asthma in towns and cities."}),
    ];
    std::fs::write(&docs, corpus.iter().map(|v| format!("{v}\n")).collect::<String>()).unwrap();
    let (clean, report) = (dir.path().join("clean.jsonl"), dir.path().join("removed.jsonl"));
    ok(&kailin(&[
        "data",
        "decontaminate",
        "--input",
        docs.to_str().unwrap(),
        "--against",
        &fixture("pubmedqa.json"),
        "--split",
        &fixture("pubmedqa_test.json"),
        "--out",
        clean.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]));
    let kept: Vec<String> = lines(&clean).iter().map(|v| v["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kept, ["2"], "document 2 overlaps only the non-test record 90000022");
    let removed = lines(&report);
    assert_eq!(removed[0]["reason"], "evaluation id");
    assert!(
        removed[1]["reason"].as_str().unwrap().contains("levodopa was given to forty invented patients"),
        "{}",
        removed[1]
    );
}

#[test]
fn decontaminate_against_bioasq_snippets_and_documents() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.jsonl");
    let corpus = [
        serde_json::json!({"id": "90000001", "text": "The evaluation document itself."}),
        serde_json::json!({"id": "5", "text": "As reviewed, levodopa remains the main therapy of parkinson disease today."}),
        serde_json::json!({"id": "6", "text": "Nothing in common here at all."}),
    ];
    std::fs::write(&docs, corpus.iter().map(|v| format!("{v}\n")).collect::<String>()).unwrap();
    let clean = dir.path().join("clean.jsonl");
    ok(&kailin(&[
        "data",
        "decontaminate",
        "--input",
        docs.to_str().unwrap(),
        "--against",
        &fixture("bioasq.json"),
        "--ngram",
        "6",
        "--out",
        clean.to_str().unwrap(),
    ]));
    let kept: Vec<String> = lines(&clean).iter().map(|v| v["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kept, ["6"]);
}

#[test]
fn dpo_needs_documents_and_distinct_questions() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.jsonl");
    std::fs::write(&docs, "{\"id\":\"9\",\"title\":\"T\",\"text\":\"Abstract.\"}\n").unwrap();
    let pair = |c: &str, r: &str| {
        serde_json::json!({"doc_id": "9", "chosen": {"question": c, "context": {"doc_ids": [], "text": ""}},
            "rejected": {"question": r, "context": {"doc_ids": [], "text": ""}}, "score_chosen": 1.0, "score_rejected": 0.0,
            "provenance": {"agent": "evaluator/rule"}})
    };
    let pairs = dir.path().join("pairs.jsonl");
    std::fs::write(&pairs, format!("{}\n", pair("Good?", "Bad?"))).unwrap();
    let out = dir.path().join("dpo.jsonl");
    let args = |p: &PathBuf| {
        vec![
            "data".to_owned(),
            "convert".into(),
            "--input".into(),
            p.display().to_string(),
            "--from".into(),
            "pairs".into(),
            "--to".into(),
            "dpo".into(),
            "--documents".into(),
            docs.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ]
    };
    ok(&Command::new(env!("CARGO_BIN_EXE_kailin")).args(args(&pairs)).output().unwrap());
    let v = &lines(&out)[0];
    assert_eq!((v["chosen"].as_str(), v["rejected"].as_str()), (Some("Good?"), Some("Bad?")));
    std::fs::write(&pairs, format!("{}\n", pair("Same?", "Same?"))).unwrap();
    std::fs::remove_file(&out).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kailin")).args(args(&pairs)).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("equal"));
    assert!(!out.exists(), "a failed conversion leaves no output file");
}

#[test]
fn a_directory_stands_for_its_files_of_one_format() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("b")).unwrap();
    std::fs::copy(fixture("articles.xml"), d.join("a.xml")).unwrap();
    std::fs::copy(fixture("articles.xml"), d.join("b/c.xml")).unwrap();
    std::fs::write(d.join("readme.txt"), "plain words").unwrap();
    let o = kailin(&["data", "stats", d.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!((v["documents"].as_u64(), v["files"].as_u64()), (Some(4), Some(2)));
    assert_eq!(v["unread"][0]["why"], "not a recognised format");
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("reading 2 pubmed files under") && said.contains("not read:"), "{said}");

    // Conversion reads the same files, in path order.
    let outputs = tempfile::tempdir().unwrap();
    let out = outputs.path().join("docs.jsonl");
    ok(&kailin(&[
        "data",
        "convert",
        "--input",
        d.to_str().unwrap(),
        "--to",
        "documents",
        "--out",
        out.to_str().unwrap(),
    ]));
    let docs = lines(&out);
    assert_eq!(docs.len(), 4);
    assert_eq!(docs[0]["id"], docs[2]["id"], "a.xml, then b/c.xml");

    // Several formats: a clear error until one is named.
    std::fs::copy(fixture("bioasq.json"), d.join("q.json")).unwrap();
    let o = kailin(&["data", "stats", d.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("several formats (1 bioasq, 2 pubmed)"), "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&kailin(&["data", "stats", "--format", "bioasq", d.to_str().unwrap()]))).unwrap();
    assert_eq!(v["questions"], 2);

    // An empty directory: one clear line.
    let empty = tempfile::tempdir().unwrap();
    let o = kailin(&["data", "stats", empty.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("an empty directory") && err.lines().count() == 1, "{err}");
}
