//! `kailin question generate|train|score` on a tiny model and a tiny BioASQ directory, and
//! `kailin answer` against a fault-injecting OpenAI-compatible server on 127.0.0.1 (killed
//! and resumed) and on a tiny local model.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
#[path = "../../kailin-answer/tests/common/fault_server.rs"]
mod fault_server;

use common::{kailin_timed, tiny_llama};
use fault_server::FaultServer;

fn kailin(args: &[&str]) -> Output {
    let run = kailin_timed(args, b"", Duration::from_secs(300));
    assert!(!run.timed_out, "timed out: {args:?}");
    run.output
}

fn ok(args: &[&str]) -> Output {
    let out = kailin(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn questions_are_generated_filtered_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    tiny_llama(&model);
    let docs = dir.path().join("docs.jsonl");
    std::fs::write(
        &docs,
        concat!(
            "{\"id\": \"d1\", \"title\": \"aspirin\", \"text\": \"aspirin inhibit cox .\"}\n",
            "{\"id\": \"d2\", \"text\": \"   \"}\n",
            "{\"id\": \"d3\", \"text\": \"statins lower ldl .\"}\n",
        ),
    )
    .unwrap();
    let (out, stats) = (dir.path().join("q.jsonl"), dir.path().join("stats.json"));
    let run = ok(&[
        "question",
        "generate",
        "--model",
        s(&model),
        "--documents",
        s(&docs),
        "--out",
        s(&out),
        "--n",
        "3",
        "--max-new",
        "6",
        "--seed",
        "7",
        "--stats",
        s(&stats),
    ]);
    let stats: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let t = &stats["tally"];
    // Six first samples, and each filtered one drawn again (up to 3 times) with a derived seed.
    let (generated, resampled) = (t["generated"].as_u64().unwrap(), t["resampled"].as_u64().unwrap());
    assert_eq!((t["documents"].as_u64(), t["empty_documents"].as_u64()), (Some(3), Some(1)));
    assert!(generated == 6 + resampled && resampled <= 18, "{t}");
    let filtered: u64 =
        ["empty", "not_a_question", "copies_document", "duplicates"].iter().map(|k| t[k].as_u64().unwrap()).sum();
    assert_eq!(t["kept"].as_u64().unwrap() + filtered, generated);
    let questions = lines(&out);
    assert_eq!(questions.len() as u64, t["kept"].as_u64().unwrap());
    for q in &questions {
        assert!(["d1", "d3"].contains(&q["doc_id"].as_str().unwrap()));
        assert!(q["text"].as_str().unwrap().ends_with('?'));
        assert!(q["provenance"]["detail"].as_str().unwrap().starts_with("prompt=question@"));
    }
    let said = format!("3 documents (1 empty, skipped): {generated} generations");
    assert!(String::from_utf8_lossy(&run.stderr).contains(&said), "{}", String::from_utf8_lossy(&run.stderr));
    // The same seed gives the same questions.
    let again = dir.path().join("q2.jsonl");
    ok(&[
        "question",
        "generate",
        "--model",
        s(&model),
        "--documents",
        s(&docs),
        "--out",
        s(&again),
        "--n",
        "3",
        "--max-new",
        "6",
        "--seed",
        "7",
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}

fn bioasq_dir(root: &Path) -> std::path::PathBuf {
    let dir = root.join("bioasq/Task1");
    std::fs::create_dir_all(&dir).unwrap();
    let q = |id: &str, body: &str, snippet: &str| {
        serde_json::json!({"id": id, "body": body, "type": "yesno", "documents": ["http://x/pubmed/1"],
            "snippets": [{"text": snippet, "document": "http://x/pubmed/1"}]})
    };
    let a = serde_json::json!({"questions": [q("1", "does aspirin inhibit cox ?", "aspirin inhibit cox ."),
        q("2", "does statins lower ldl ?", "statins lower ldl ."), q("3", "what does insulin lower ?", "insulin lower glucose .")]});
    let b = serde_json::json!({"questions": [q("4", "what does aspirin inhibit ?", "aspirin inhibit cox on it .")]});
    std::fs::write(dir.join("1B1_golden.json"), a.to_string()).unwrap();
    std::fs::write(dir.join("1B2_golden.json"), b.to_string()).unwrap();
    root.join("bioasq")
}

#[test]
fn question_train_writes_the_split_and_a_loadable_generator_for_both_agents() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    tiny_llama(&model);
    let bioasq = bioasq_dir(dir.path());
    let abstracts = dir.path().join("abstracts.jsonl");
    std::fs::write(&abstracts, "{\"id\": \"a1\", \"text\": \"aspirin inhibit cox . statins lower ldl .\"}\n").unwrap();
    let (general, domain) = (dir.path().join("general"), dir.path().join("domain"));
    let common = [
        "--bioasq",
        s(&bioasq),
        "--held-out",
        "1B2_golden.json",
        "--max-len",
        "64",
        "--batch-size",
        "2",
        "--lr",
        "1e-3",
    ];
    let mut args = vec!["question", "train", "--base", s(&model), "--out", s(&general)];
    args.extend(common);
    ok(&args);
    let data = general.join("data");
    assert_eq!(lines(&data.join("train.jsonl")).len(), 3);
    assert_eq!(lines(&data.join("held_out_questions.jsonl"))[0]["text"], "what does aspirin inhibit ?");
    assert_eq!(lines(&data.join("held_out_documents.jsonl"))[0]["id"], "bioasq-4");
    assert!(lines(&data.join("train.jsonl"))[0]["prompt"].as_str().unwrap().starts_with("aspirin inhibit cox ."));
    assert!(general.join("model.safetensors").exists() && !general.join("cpt").exists());
    let mut args = vec!["question", "train", "--base", s(&model), "--out", s(&domain), "--domain-cpt", s(&abstracts)];
    args.extend(common);
    ok(&args);
    assert!(domain.join("cpt/model.safetensors").exists() && domain.join("model.safetensors").exists());
    // Both load as generators.
    for agent in [&general, &domain] {
        let out = dir.path().join("q.jsonl");
        ok(&[
            "question",
            "generate",
            "--model",
            s(agent),
            "--documents",
            s(&data.join("held_out_documents.jsonl")),
            "--out",
            s(&out),
            "--max-new",
            "4",
        ]);
    }
    // A held-out batch that does not exist is refused by name.
    let bad = kailin(&[
        "question",
        "train",
        "--base",
        s(&model),
        "--out",
        s(&dir.path().join("x")),
        "--bioasq",
        s(&bioasq),
        "--held-out",
        "9B9_golden.json",
    ]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("9B9_golden.json"));
}

#[test]
fn question_score_measures_rouge_and_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, rows: &[(&str, &str)]| {
        let p = dir.path().join(name);
        let text: String = rows
            .iter()
            .enumerate()
            .map(|(i, (doc, q))| {
                format!("{}\n", serde_json::json!({"id": format!("{name}{i}"), "text": q, "doc_id": doc}))
            })
            .collect();
        std::fs::write(&p, text).unwrap();
        p
    };
    let gold = write("g", &[("d1", "What does aspirin inhibit?"), ("d2", "Is X safe?")]);
    let a = write("a", &[("d1", "What does aspirin inhibit?"), ("d1", "Why?")]);
    let b = write("b", &[("d1", "what does aspirin inhibit")]);
    let out = ok(&["question", "score", "--questions", s(&a), "--gold", s(&gold), "--other", s(&b)]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // d1: candidates score 1 and 0 (mean 0.5, best 1); d2 has none: 0. Over 2 gold documents.
    assert_eq!((v["rouge_l_mean"].as_f64(), v["rouge_l_best"].as_f64()), (Some(0.25), Some(0.5)));
    assert_eq!((v["cross_pairs"].as_u64(), v["identical_share"].as_f64()), (Some(2), Some(0.5)));
    let nodoc = write("n", &[]);
    std::fs::write(&nodoc, "{\"id\": \"x\", \"text\": \"q?\"}\n").unwrap();
    let bad = kailin(&["question", "score", "--questions", s(&nodoc)]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("has no doc_id"));
}

fn cpt_records(path: &Path, cases: &[&str]) -> Vec<String> {
    let mut text = String::new();
    let mut ids = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let id = format!("r{i:03}");
        text.push_str(&format!(
            "{}\n",
            serde_json::json!({"id": id, "question": format!("Question {id}? [case:{case}]"),
                "context": {"doc_ids": ["d"], "text": "aspirin inhibit cox ."}, "provenance": {"agent": "test"}})
        ));
        ids.push(id);
    }
    std::fs::write(path, text).unwrap();
    ids
}

#[test]
fn answers_through_a_flaky_endpoint_are_complete_and_in_order() {
    let server = FaultServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("cpt.jsonl"), dir.path().join("sft.jsonl"));
    let ids = cpt_records(&input, &["ok", "e500x2", "r429", "malformed", "drop", "nousage"]);
    let url = server.base_url();
    let run =
        ok(&["answer", "--input", s(&input), "--out", s(&out), "--endpoint", &url, "--model", "m", "--timeout", "2"]);
    let got: Vec<String> = lines(&out).iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(got, ids);
    assert!(lines(&out).iter().all(|r| r["answer"].as_str().unwrap().starts_with("answer to")));
    assert!(out.with_extension("jsonl.cache").is_dir());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("\"retries\":5") && err.contains("\"answered\":6"), "{err}");
    // A rerun finds everything written: no request.
    let before = server.requests();
    ok(&["answer", "--input", s(&input), "--out", s(&out), "--endpoint", &url, "--model", "m"]);
    assert_eq!((server.requests(), lines(&out).len()), (before, 6));

    // A key the server refuses: a fast failure that does not show the key.
    let bad_in = dir.path().join("bad.jsonl");
    cpt_records(&bad_in, &["auth"]);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kailin"));
    cmd.args([
        "answer",
        "--input",
        s(&bad_in),
        "--out",
        s(&dir.path().join("bad_out.jsonl")),
        "--endpoint",
        &url,
        "--model",
        "m",
    ]);
    let res = cmd.env("OPENAI_API_KEY", "sk-do-not-print").output().unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success() && err.contains("refused the API key") && !err.contains("sk-do-not-print"), "{err}");
    // An output from another input is refused, not appended to.
    let other = dir.path().join("other.jsonl");
    cpt_records(&other, &["ok", "ok"]);
    std::fs::write(&other, std::fs::read_to_string(&other).unwrap().replace("r000", "zzz")).unwrap();
    let res = kailin(&["answer", "--input", s(&other), "--out", s(&out), "--endpoint", &url, "--model", "m"]);
    assert!(String::from_utf8_lossy(&res.stderr).contains("does not match the input's record 1"));
    assert_eq!(lines(&out).len(), 6);
}

#[test]
fn a_killed_answer_run_resumes_without_loss_duplicates_or_repeated_requests() {
    let server = FaultServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("cpt.jsonl"), dir.path().join("sft.jsonl"));
    let ids = cpt_records(&input, &["slow"; 40]);
    let url = server.base_url();
    let args =
        ["answer", "--input", s(&input), "--out", s(&out), "--endpoint", &url, "--model", "m", "--concurrency", "2"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_kailin"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::fs::read_to_string(&out).map_or(0, |t| t.lines().count()) < 10 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let written_before = std::fs::read_to_string(&out).unwrap().lines().count();
    let requests_before = server.requests();
    assert!(written_before < 40, "killed too late to test anything");
    ok(&args);
    let records = lines(&out);
    let got: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(got, ids, "each record once, in input order");
    // Every record was requested once, except those in flight at the kill (at most the
    // concurrency, their answers not yet cached).
    let total = server.requests();
    assert!((40..=42).contains(&total), "{total} requests ({requests_before} before the kill)");
    for id in &ids[..written_before] {
        assert_eq!(server.arrivals(&format!("Question {id}?")).len(), 1, "{id} requested again");
    }
}

#[test]
fn a_local_model_answers_each_record() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    tiny_llama(&model);
    let (input, out) = (dir.path().join("cpt.jsonl"), dir.path().join("sft.jsonl"));
    let ids = cpt_records(&input, &["ok", "ok", "ok"]);
    ok(&[
        "answer",
        "--input",
        s(&input),
        "--out",
        s(&out),
        "--model",
        s(&model),
        "--max-tokens",
        "4",
        "--batch-size",
        "2",
    ]);
    let records = lines(&out);
    assert_eq!(records.iter().map(|r| r["id"].as_str().unwrap()).collect::<Vec<_>>(), ids);
    assert_eq!(records[0]["provenance"]["agent"], "answer-agent");
    assert!(records[0]["provenance"]["detail"].as_str().unwrap().contains("backend=local"));
    // Duplicate ids are refused by line.
    std::fs::write(
        &input,
        format!("{0}{0}", std::fs::read_to_string(&input).unwrap().lines().next().unwrap().to_owned() + "\n"),
    )
    .unwrap();
    let res = kailin(&["answer", "--input", s(&input), "--out", s(&dir.path().join("o2.jsonl")), "--model", s(&model)]);
    assert!(String::from_utf8_lossy(&res.stderr).contains(":2: id \"r000\" repeats line 1"));
}

/// Everything a run leaves: stdout, stderr, and every file under `dir`.
fn everything(run: &Output, dir: &Path) -> String {
    let mut all = String::from_utf8_lossy(&run.stdout).into_owned();
    all.push_str(&String::from_utf8_lossy(&run.stderr));
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                all.push_str(&String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default()));
            }
        }
    }
    all
}

/// The key in any form a leak could take: as is, across a line break, hex-encoded.
fn leaks(all: &str, key: &str) -> bool {
    let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    let joined: String = all.split(['\n', '\r']).map(str::trim).collect();
    all.contains(key) || joined.contains(key) || all.to_lowercase().contains(&hex) || all.contains(&key[3..])
}

#[test]
fn the_api_key_never_leaves_the_process_whatever_the_log_level() {
    const KEY: &str = "sk-leak-test-7f3a9c2e51";
    let server = FaultServer::start();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let input = dir.path().join("cpt.jsonl");
    cpt_records(&input, &["echo500", "ok"]);
    let url = server.base_url();
    let answer = |out: &str, log: Option<&str>, input: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kailin"));
        cmd.args(["answer", "--input", s(input), "--out", s(&work.join(out)), "--endpoint", &url, "--model", "m"]);
        match log {
            Some(level) => cmd.args(["--log", level]).env_remove("RUST_LOG"),
            None => cmd.env("RUST_LOG", "trace"),
        };
        cmd.env("OPENAI_API_KEY", KEY).output().unwrap()
    };
    // A server that echoes the Authorization header in a 500 (retried, then answered), traced.
    let run = answer("a.jsonl", Some("trace"), &input);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("<redacted>"), "the echo is shown, redacted: {err}");
    assert!(!leaks(&everything(&run, &work), KEY), "the key leaked: {err}");
    // The same with RUST_LOG=trace, and a 401 whose body echoes the key: an error, redacted.
    let refused = dir.path().join("refused.jsonl");
    cpt_records(&refused, &["echo401"]);
    let run = answer("b.jsonl", None, &refused);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && err.contains("refused the API key") && err.contains("<redacted>"), "{err}");
    assert!(!leaks(&everything(&run, &work), KEY), "the key leaked: {err}");

    // Credentials in the URL are refused without being shown.
    let with_password = format!("http://user:hunter2-secret@{}/v1", server.addr);
    let run = kailin(&[
        "answer",
        "--input",
        s(&input),
        "--out",
        s(&work.join("c.jsonl")),
        "--endpoint",
        &with_password,
        "--model",
        "m",
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && err.contains("--api-key-env") && !err.contains("hunter2"), "{err}");
    // A named key variable that is unset: a warning.
    let run = kailin(&[
        "answer",
        "--input",
        s(&input),
        "--out",
        s(&work.join("d.jsonl")),
        "--endpoint",
        &url,
        "--model",
        "m",
        "--api-key-env",
        "KAILIN_TEST_UNSET_KEY",
    ]);
    assert!(String::from_utf8_lossy(&run.stderr).contains("KAILIN_TEST_UNSET_KEY: the variable is unset or empty"));
}

#[test]
fn a_server_asking_for_a_long_wait_is_an_error_not_a_stall() {
    let server = FaultServer::start();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cpt.jsonl");
    cpt_records(&input, &["r429long"]);
    let started = Instant::now();
    let run = kailin(&[
        "answer",
        "--input",
        s(&input),
        "--out",
        s(&dir.path().join("o.jsonl")),
        "--endpoint",
        &server.base_url(),
        "--model",
        "m",
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && err.contains("wait 86400 s") && err.contains("--max-retry-after"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert_eq!(server.requests(), 1, "not retried");
}

#[test]
fn an_answer_run_with_other_settings_is_refused_on_resume_or_started_over_with_force() {
    let server = FaultServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("cpt.jsonl"), dir.path().join("sft.jsonl"));
    let mut with_empty = String::new();
    cpt_records(&input, &["ok", "ok"]);
    with_empty.push_str(&std::fs::read_to_string(&input).unwrap());
    with_empty.push_str("{\"id\": \"empty\", \"question\": \" \", \"context\": {\"doc_ids\": [], \"text\": \"\"}, \"provenance\": {\"agent\": \"t\"}}\n");
    std::fs::write(&input, with_empty).unwrap();
    let url = server.base_url();
    let base = ["answer", "--input", s(&input), "--out", s(&out), "--endpoint", &url];
    let run = ok(&[&base[..], &["--model", "m"]].concat());
    assert!(String::from_utf8_lossy(&run.stderr).contains("1 records without a question or a context skipped"));
    assert_eq!(lines(&out).len(), 2, "the empty record is skipped, not answered");
    for (flag, value, named) in [("--model", "m2", "model"), ("--temperature", "0.5", "temperature")] {
        let mut args = base.to_vec();
        args.extend([flag, value]);
        if flag != "--model" {
            args.extend(["--model", "m"]);
        }
        let run = kailin(&args);
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success() && err.contains("other settings") && err.contains(named), "{err}");
        assert_eq!(lines(&out).len(), 2, "nothing changed");
    }
    // A question edited in the input: the earlier answer is not passed off as its answer.
    let edited = std::fs::read_to_string(&input).unwrap().replace("Question r000?", "Question r000 edited?");
    let edited_path = dir.path().join("edited.jsonl");
    std::fs::write(&edited_path, edited).unwrap();
    let run = kailin(&["answer", "--input", s(&edited_path), "--out", s(&out), "--endpoint", &url, "--model", "m"]);
    assert!(String::from_utf8_lossy(&run.stderr).contains("another question or context"));
    // --force starts over with the new settings.
    ok(&[&base[..], &["--model", "m2", "--force"]].concat());
    let records = lines(&out);
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r["provenance"]["model"] == "m2"));
    // Two runs on one output at once: the second is refused while the first holds it.
    let holder = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
    holder.lock().unwrap();
    let run = kailin(&[&base[..], &["--model", "m2"]].concat());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("another process"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    drop(holder);
}
