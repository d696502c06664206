//! A store build killed (SIGKILL) at an arbitrary moment loses at most what it encoded since
//! its last commit; the unfinished store is refused by plain searches, searched with
//! `--partial`, locked against a second writer while the first runs, and a rerun completes it
//! to exactly the store a build without interruption writes.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{kailin_timed, tiny_bert};

fn manifest_rows(store: &std::path::Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(store.join("store.json")) else { return 0 };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { return 0 };
    v["shards"].as_array().map_or(0, |s| s.iter().map(|e| e["rows"].as_u64().unwrap_or(0)).sum())
}

#[test]
fn a_killed_build_resumes_to_the_uninterrupted_store() {
    let dir = tempfile::tempdir().unwrap();
    let bert = dir.path().join("bert");
    tiny_bert(&bert);
    let words = ["aspirin", "cox", "liver", "gene", "the", "genes"];
    let corpus = dir.path().join("docs.jsonl");
    let mut text = String::new();
    for i in 0..6000 {
        let body: Vec<&str> = (0..8).map(|j| words[(i * 7 + j * 3) % words.len()]).collect();
        text.push_str(&format!("{{\"id\": \"d{i}\", \"title\": \"\", \"text\": \"{}\"}}\n", body.join(" ")));
    }
    std::fs::write(&corpus, text).unwrap();
    let (killed, clean) = (dir.path().join("killed"), dir.path().join("clean"));
    let build = |out: &std::path::Path| {
        let (b, c, o) = (bert.to_str().unwrap(), corpus.to_str().unwrap(), out.to_str().unwrap());
        vec![
            "retrieve",
            "build",
            "--model",
            b,
            "--corpus",
            c,
            "--out",
            o,
            "--commit-every",
            "0",
            "--shard-rows",
            "100000",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<String>>()
    };
    let args = build(&killed);
    let mut child = Command::new(env!("CARGO_BIN_EXE_kailin"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first commits, then kill it mid-build.
    let started = Instant::now();
    while manifest_rows(&killed) < 512 && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    // A second writer is refused while the first holds the store.
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let second = kailin_timed(&argv, b"", Duration::from_secs(60));
    let finished_first = child.try_wait().unwrap().is_some();
    child.kill().unwrap();
    child.wait().unwrap();
    let committed = manifest_rows(&killed);
    assert!(committed >= 512, "the build committed as it went ({committed} rows)");
    assert!(!finished_first && committed < 6000, "killed mid-build ({committed} of 6000 rows committed)");
    assert_eq!(second.output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.output.stderr).contains("another process"));
    // Unfinished: a plain search refuses it, --partial searches the committed rows.
    let q = dir.path().join("q");
    std::fs::write(&q, "aspirin cox\n").unwrap();
    let (k, b) = (killed.to_str().unwrap(), bert.to_str().unwrap());
    let plain =
        kailin_timed(&["retrieve", "search", "--store", k, "--model", b], b"aspirin cox\n", Duration::from_secs(60));
    assert_eq!(plain.output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&plain.output.stderr).contains("has not finished"));
    let partial = kailin_timed(
        &["retrieve", "search", "--store", k, "--model", b, "--partial"],
        b"aspirin cox\n",
        Duration::from_secs(60),
    );
    assert!(partial.output.status.success(), "{}", String::from_utf8_lossy(&partial.output.stderr));
    // Resume, and build the same corpus without interruption.
    for out in [&killed, &clean] {
        let args = build(out);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = kailin_timed(&argv, b"", Duration::from_secs(300));
        assert!(run.output.status.success(), "{}", String::from_utf8_lossy(&run.output.stderr));
    }
    let read_all = |store: &std::path::Path| {
        let mut names: Vec<_> = std::fs::read_dir(store)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("shard-"))
            .collect();
        names.sort();
        let (mut ids, mut vectors) = (Vec::new(), Vec::new());
        for n in names {
            let bytes = std::fs::read(store.join(&n)).unwrap();
            if n.ends_with(".ids") {
                ids.extend_from_slice(&bytes);
            } else if n.ends_with(".vec") {
                vectors.extend_from_slice(&bytes);
            }
        }
        (ids, vectors)
    };
    assert!(read_all(&killed) == read_all(&clean), "the resumed store holds exactly the uninterrupted one's rows");
    assert_eq!(manifest_rows(&killed), 6000);
    // No temporary file is left in either.
    for store in [&killed, &clean] {
        let tmp = std::fs::read_dir(store)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        assert_eq!(tmp, 0);
    }
}
