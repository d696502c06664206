//! Checks with the real all-MiniLM-L6-v2 (from `cargo xtask fetch-models`): ignored by default,
//! run by CI with `--include-ignored`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::PathBuf;

use burn::backend::Flex;
use kailin_retrieval::{EncoderBuilder, Pooling};

fn model_dir() -> PathBuf {
    find_model_dir().expect("all-MiniLM-L6-v2 not found: run `cargo xtask fetch-models`")
}

fn find_model_dir() -> Option<PathBuf> {
    let base = std::env::var_os("KAILIN_MODELS").map(PathBuf::from).or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(cache.join("kailin/models"))
    })?;
    let dir = base.join("all-minilm-l6-v2");
    dir.join("model.safetensors").is_file().then_some(dir)
}

#[test]
#[ignore = "needs the all-MiniLM-L6-v2 model: cargo xtask fetch-models"]
fn paraphrases_score_higher_than_unrelated_sentences() {
    let dir = model_dir();
    let encoder = EncoderBuilder::new(&dir).build::<Flex>(&Default::default()).unwrap();
    // The sentence-transformers configuration of the directory: mean pooling, L2, 256 tokens.
    assert_eq!(encoder.pooling(), Pooling::Mean);
    assert_eq!(encoder.dim(), 384);
    let texts = [
        "Aspirin lowers the risk of heart attack.",
        "Taking aspirin reduces the chance of myocardial infarction.",
        "The committee approved the new budget for road repairs.",
        "What gene is mutated in cystic fibrosis?",
        "Cystic fibrosis is caused by mutations in the CFTR gene.",
        "Rainfall was heavy across the northern valleys last spring.",
    ];
    let v = encoder.encode(&texts).unwrap();
    let cos = |a: usize, b: usize| v.row(a).dot(&v.row(b));
    for i in 0..texts.len() {
        assert!((v.row(i).dot(&v.row(i)) - 1.0).abs() < 1e-4, "row {i} is not unit length");
    }
    eprintln!(
        "paraphrase {:.3}, unrelated {:.3}, qa {:.3}, unrelated {:.3}",
        cos(0, 1),
        cos(0, 2),
        cos(3, 4),
        cos(3, 5)
    );
    assert!(cos(0, 1) > 0.6, "paraphrase similarity {}", cos(0, 1));
    assert!(cos(0, 1) > cos(0, 2) + 0.4);
    assert!(cos(3, 4) > cos(3, 5) + 0.3);
    assert!(cos(0, 2) < 0.3 && cos(3, 5) < 0.3, "unrelated sentences must not look alike (padding trap)");
    // Batching does not change a vector.
    let alone = encoder.encode(&[texts[4]]).unwrap();
    assert!(alone.row(0).iter().zip(v.row(4)).all(|(a, b)| (a - b).abs() < 1e-5));
}

#[test]
#[ignore = "needs the all-MiniLM-L6-v2 model: cargo xtask fetch-models"]
fn cpu_kernels_give_burns_vectors() {
    let dir = model_dir();
    let mut encoder = EncoderBuilder::new(&dir).batch_size(3).build::<Flex>(&Default::default()).unwrap();
    assert!(encoder.is_native());
    let long = "Cystic fibrosis transmembrane conductance regulator mutations impair chloride transport. ".repeat(30);
    let texts = [
        "Aspirin lowers the risk of heart attack.",
        long.as_str(),
        "BRCA1",
        "What gene is mutated in cystic fibrosis?",
    ];
    let ours = encoder.encode(&texts).unwrap();
    encoder.set_native(false).unwrap();
    let burn = encoder.encode(&texts).unwrap();
    let worst = ours.iter().zip(&burn).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    eprintln!("max |Δ| between the CPU kernels and burn: {worst:.2e}");
    assert!(worst <= 1e-4, "max |Δ| {worst}");
}

#[test]
#[ignore = "needs the all-MiniLM-L6-v2 model: cargo xtask fetch-models"]
fn minilm_exported_and_loaded_back_gives_the_same_vectors() {
    let dir = model_dir();
    let out = tempfile::tempdir().unwrap();
    let encoder = EncoderBuilder::new(&dir).build::<Flex>(&Default::default()).unwrap();
    let export = encoder.save_dir(&out.path().join("minilm")).unwrap();
    let again = EncoderBuilder::new(&export).build::<Flex>(&Default::default()).unwrap();
    assert_eq!((again.pooling(), again.normalizes(), again.max_len()), (Pooling::Mean, true, 256));
    let texts = ["Aspirin lowers the risk of heart attack.", "What gene is mutated in cystic fibrosis?"];
    assert_eq!(encoder.encode(&texts).unwrap(), again.encode(&texts).unwrap());
}
