//! `kailin train …` through the binary on a tiny model written here (a Hugging Face directory
//! with a word-level tokenizer): SFT exports a model that loads back; DPO with LoRA stops,
//! resumes from its checkpoint and exports; bad data is a clear error.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use burn::backend::Flex;
use kailin_lm::{Llama, Tokenizer};

mod common;
use common::{WORDS, tiny_llama as tiny_model};

fn kailin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kailin")).args(args).output().expect("kailin runs")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn losses(out: &Path) -> Vec<f64> {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    report["steps"].as_array().unwrap().iter().map(|s| s["loss"].as_f64().unwrap()).collect()
}

#[test]
fn sft_trains_and_exports_a_model_that_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    tiny_model(&model);
    let data = tmp.path().join("sft.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\": \"what does aspirin inhibit ?\", \"completion\": \"cox .\"}\n\
         {\"messages\": [{\"role\": \"user\", \"content\": \"what does insulin lower ?\"}, {\"role\": \"assistant\", \"content\": \"glucose .\"}]}\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let args = ["train", "sft", "--model", model.to_str().unwrap(), "--data", data.to_str().unwrap()];
    let stdout = ok(&kailin(
        &[
            &args[..],
            &["--out", out.to_str().unwrap(), "--epochs", "20", "--lr", "3e-2", "--batch-size", "2", "--max-len", "32"],
        ]
        .concat(),
    ));
    assert!(stdout.contains("trained model written to"), "{stdout}");
    let l = losses(&out);
    assert_eq!(l.len(), 20);
    assert!(l[19] < l[0] / 2.0, "loss {} -> {}", l[0], l[19]);
    for f in ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "checkpoints/latest"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let (_, config) = Llama::<Flex>::from_hf_dir(&out, 64, &Default::default()).unwrap();
    assert_eq!(config.vocab_size, WORDS.len());
    let tok = Tokenizer::from_hf_dir(&out).unwrap();
    assert_eq!(tok.encode("aspirin inhibit cox", true).unwrap(), [1, 8, 9, 10]);
}

#[test]
fn dpo_with_lora_stops_resumes_and_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    tiny_model(&model);
    let data = tmp.path().join("dpo.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\": \"abstract on aspirin\", \"chosen\": \"what does aspirin inhibit ?\", \"rejected\": \"why ?\"}\n\
         {\"prompt\": \"abstract on statins\", \"chosen\": \"what does statins lower ?\", \"rejected\": \"no\"}\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let base = [
        "train",
        "dpo",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--lora-rank",
        "2",
        "--epochs",
        "6",
        "--lr",
        "5e-2",
        "--batch-size",
        "2",
        "--checkpoint-every",
        "2",
        "--beta",
        "0.1",
    ];
    let stdout = ok(&kailin(&[&base[..], &["--stop-after", "3"]].concat()));
    assert!(stdout.contains("stopped"), "{stdout}");
    assert!(!out.join("model.safetensors").exists(), "no export before the run is complete");
    assert_eq!(losses(&out).len(), 3);
    assert!((losses(&out)[0] - std::f64::consts::LN_2).abs() < 1e-5);
    ok(&kailin(&base));
    let l = losses(&out);
    assert_eq!(l.len(), 6, "steps 1..3 carried over, 4..6 added");
    assert!(l[5] < l[0], "{l:?}");
    assert!(out.join("model.safetensors").is_file() && out.join("reference_logprobs.json").is_file());
    Llama::<Flex>::from_hf_dir(&out, 64, &Default::default()).unwrap();

    // Held-out pairs: their loss and DPO's implicit-reward metrics.
    let evaluated = tmp.path().join("evaluated");
    let mut args = base.to_vec();
    args[7] = evaluated.to_str().unwrap();
    let stdout = ok(&kailin(&[&args[..], &["--eval", data.to_str().unwrap()]].concat()));
    assert!(stdout.contains("eval loss ") && stdout.contains(", preference_accuracy "), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(evaluated.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["eval_metrics"].as_array().map(Vec::len), report["evals"].as_array().map(Vec::len));
}

#[test]
fn bad_data_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    tiny_model(&model);
    let data = tmp.path().join("dpo.jsonl");
    std::fs::write(&data, "{\"prompt\": \"abstract\", \"chosen\": \"yes\", \"rejected\": \"yes\"}\n").unwrap();
    let out = tmp.path().join("out");
    let run = |kind: &str| {
        kailin(&[
            "train",
            kind,
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.join(kind).to_str().unwrap(),
        ])
    };
    let err = run("dpo");
    assert!(!err.status.success());
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(stderr.contains("dpo.jsonl:1") && stderr.contains("chosen"), "{stderr}");
    std::fs::write(&data, "").unwrap();
    let stderr = String::from_utf8_lossy(&run("cpt").stderr).into_owned();
    assert!(stderr.contains("no records"), "{stderr}");
}
