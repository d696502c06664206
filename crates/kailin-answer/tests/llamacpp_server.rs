//! The client against a real OpenAI-compatible server: llama.cpp's (llama-cpp-python's
//! `llama_cpp.server`) serving the SmolLM2 GGUF on 127.0.0.1, started and stopped here.
//!
//! Needs `$KAILIN_LLAMACPP_PYTHON`, a Python with `llama-cpp-python[server]` (`.ci/run`
//! installs one into `~/.cache/kailin/llamacpp-venv`; see there for the build flags these
//! CPUs need), and the GGUF from `cargo xtask fetch-models`. Without the Python it says so and
//! passes: the install is optional where it cannot be built.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kailin_answer::{OpenAiClient, answer_all};
use kailin_core::{Context, CptRecord};

/// The server process, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs llama-cpp-python[server] ($KAILIN_LLAMACPP_PYTHON) and the SmolLM2 GGUF (cargo xtask fetch-models)"]
fn answers_come_back_from_a_llama_cpp_server() {
    let Some(python) = std::env::var_os("KAILIN_LLAMACPP_PYTHON") else {
        eprintln!("SKIPPED: $KAILIN_LLAMACPP_PYTHON is not set (a Python with llama-cpp-python[server])");
        return;
    };
    let gguf = kailin_lm::smollm2_gguf().expect("the SmolLM2 GGUF: run `cargo xtask fetch-models`");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(&python)
        .args(["-m", "llama_cpp.server", "--host", "127.0.0.1", "--port", &port.to_string(), "--n_ctx", "2048"])
        .args(["--n_threads", "2", "--model"])
        .arg(&gguf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the llama.cpp server starts");
    let _server = Server(child);
    let base = format!("http://127.0.0.1:{port}/v1");
    let started = Instant::now();
    loop {
        if ureq::get(&format!("{base}/models")).call().is_ok() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the llama.cpp server did not come up in 120 s");
        std::thread::sleep(Duration::from_millis(250));
    }
    let records: Vec<CptRecord> = [
        ("Does aspirin inhibit cyclooxygenase?", "Aspirin irreversibly inhibits cyclooxygenase-1 in platelets."),
        ("Do statins lower LDL cholesterol?", "Statins inhibit HMG-CoA reductase and lower LDL cholesterol."),
        ("What does insulin lower?", "Insulin lowers blood glucose by promoting its uptake."),
        ("Is metformin used in type 2 diabetes?", "Metformin is the first-line drug for type 2 diabetes."),
    ]
    .iter()
    .enumerate()
    .map(|(i, (q, c))| CptRecord {
        id: format!("r{i}"),
        question: (*q).into(),
        context: Context { doc_ids: vec![format!("d{i}")], text: (*c).into() },
        ..Default::default()
    })
    .collect();
    let cache = tempfile::tempdir().unwrap();
    let client = OpenAiClient::builder(&base, "smollm2")
        .configure(|o| {
            o.served.concurrency = 2;
            o.max_tokens = 48;
            o.served.timeout = Duration::from_secs(120);
        })
        .cache(cache.path())
        .build()
        .unwrap();
    let t = Instant::now();
    let mut out = Vec::new();
    answer_all(
        &client,
        &records,
        1,
        4,
        |r| {
            out.push(r);
            Ok(())
        },
        |_| (),
    )
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(out.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r0", "r1", "r2", "r3"]);
    assert!(out.iter().all(|r| !r.answer.trim().is_empty()), "{out:?}");
    let stats = client.stats();
    assert_eq!((stats.answered, stats.retries), (4, 0), "{stats:?}");
    assert!(stats.completion_tokens > 0, "llama.cpp reports usage: {stats:?}");
    eprintln!("llama.cpp server: 4 answers in {secs:.1} s ({:.2} answers/s); {stats:?}", 4.0 / secs);
    for r in &out {
        eprintln!("  {} -> {}", r.question, r.answer.replace('\n', " "));
    }
}
