//! `kailin lm …` through the binary, on the real SmolLM2 GGUF when it has been fetched
//! (`cargo xtask fetch-models`); the error paths need no model.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn kailin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kailin")).args(args).output().expect("kailin runs")
}

/// The fetched SmolLM2 GGUF (the tests that use it are ignored by default; `--include-ignored`
/// runs them, and without the model they fail saying how to fetch it).
fn model() -> String {
    let path = kailin_lm::smollm2_gguf().filter(|p| p.exists());
    path.map(|p| p.display().to_string()).expect("SmolLM2 not found: run `cargo xtask fetch-models`")
}

#[test]
#[ignore = "needs the SmolLM2 model: cargo xtask fetch-models"]
fn generate_and_score_with_smollm2() {
    let m = model();
    let out = kailin(&["lm", "generate", "--model", &m, "--prompt", "What is the capital of France?", "--chat"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "The capital of France is Paris.\n");
    let score = |c: &str| -> f64 {
        let out = kailin(&["lm", "score", "--model", &m, "--prompt", "The capital of France is", "--continuation", c]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
    };
    let (paris, berlin) = (score(" Paris"), score(" Berlin"));
    assert!(paris < 0.0 && paris > berlin + 3.0, "Paris {paris}, Berlin {berlin}");
    // Seeded sampling is reproducible.
    let sample = || {
        kailin(&[
            "lm",
            "generate",
            "--model",
            &m,
            "--prompt",
            "Aspirin is",
            "--max-new",
            "12",
            "--temperature",
            "0.8",
            "--seed",
            "3",
        ])
        .stdout
    };
    assert_eq!(sample(), sample());
}

#[test]
fn bad_model_paths_and_devices_are_clear_errors() {
    let out = kailin(&["lm", "generate", "--model", "/no/such/model.gguf", "--prompt", "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/model.gguf") && err.contains("No such file"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"GGUF\x03\x00\x00\x00").unwrap();
    let out = kailin(&["lm", "score", "--model", junk.to_str().unwrap(), "--prompt", "a", "--continuation", "b"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid GGUF"), "{}", String::from_utf8_lossy(&out.stderr));
    if !cfg!(feature = "cuda") {
        let out = kailin(&["lm", "generate", "--model", "x", "--prompt", "x", "--device", "cuda"]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("without CUDA"));
    }
}
