//! `cargo xtask bench encoder`: the sentence encoder side by side with sentence-transformers
//! (PyTorch, CPU) on the same texts and threads, in one run: texts per second, the ratio, and
//! the largest difference between the two engines' vectors.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::backend::Flex;
use kailin_retrieval::EncoderBuilder;
use ndarray::Array2;

/// Options of the benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct EncoderBench {
    /// PubMedQA abstracts (the first of PQA-L, contexts joined).
    #[arg(long, default_value_t = 300)]
    abstracts: usize,
    /// BioASQ snippets (the first unique ones, batches in name order).
    #[arg(long, default_value_t = 1_000)]
    snippets: usize,
    /// Texts per forward pass, both engines.
    #[arg(long, default_value_t = 32, value_parser = crate::cli::at_least_one())]
    encoder_batch: usize,
    /// Threads, both engines.
    #[arg(long, default_value_t = 2, value_parser = crate::cli::at_least_one())]
    encoder_threads: usize,
    /// Also time burn's own forward pass (the encoder's path before its CPU kernels).
    #[arg(long)]
    with_burn: bool,
    /// The Python with sentence-transformers (default: python3).
    #[arg(long, env = "KAILIN_ST_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// The encoder directory (default: all-MiniLM-L6-v2 from the model cache), e.g. one
    /// `kailin retrieve train` wrote: sentence-transformers loads the same directory.
    #[arg(long)]
    encoder_dir: Option<PathBuf>,
}

/// The two text sets of issue 18.
fn text_sets(data: &Path, o: &EncoderBench) -> Result<Vec<(&'static str, Vec<String>)>> {
    let pqal = data.join("pubmedqa/ori_pqal.json");
    let (records, _) = kailin_corpus::read_pubmedqa(&pqal, false).with_context(|| pqal.display().to_string())?;
    let abstracts: Vec<String> = records.iter().take(o.abstracts).map(|r| r.document().text).collect();
    let (_, questions) = crate::retrieval::bioasq_questions(data)?;
    let mut seen = std::collections::HashSet::new();
    let snippets: Vec<String> = questions
        .iter()
        .flat_map(|q| q.snippets.iter().map(|s| s.text.trim().to_owned()))
        .filter(|t| !t.is_empty() && seen.insert(t.clone()))
        .take(o.snippets)
        .collect();
    Ok(vec![("PubMedQA abstracts", abstracts), ("BioASQ snippets", snippets)])
}

pub(crate) fn bench(data: &Path, o: &EncoderBench) -> Result<()> {
    let model = o.encoder_dir.clone().unwrap_or_else(|| crate::models::models_dir().join("all-minilm-l6-v2"));
    anyhow::ensure!(
        model.join("model.safetensors").exists(),
        "{} missing: run `cargo xtask fetch-models`",
        model.display()
    );
    rayon::ThreadPoolBuilder::new().num_threads(o.encoder_threads).build_global().ok();
    let out = PathBuf::from("target/bench-encoder");
    std::fs::create_dir_all(&out)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/st_encode.py");
    println!("{}, {} threads, batches of {}", model.display(), o.encoder_threads, o.encoder_batch);
    for (name, texts) in text_sets(data, o)? {
        let texts_path = out.join(format!("{}.json", name.replace(' ', "-")));
        std::fs::write(&texts_path, serde_json::to_string(&texts)?)?;
        let encoder = EncoderBuilder::new(&model).batch_size(o.encoder_batch).build::<Flex>(&Default::default())?;
        // One warm-up batch, as for the peer.
        encoder.encode(&texts[..texts.len().min(8)])?;
        let started = Instant::now();
        let ours = encoder.encode(&texts)?;
        let secs = started.elapsed().as_secs_f64();
        let n = texts.len() as f64;
        println!("\n{name}: {} texts", texts.len());
        println!("  kailin (CPU kernels)      {secs:8.2} s  {:8.1} texts/s", n / secs);
        if o.with_burn {
            let burn = EncoderBuilder::new(&model)
                .batch_size(o.encoder_batch)
                .native(false)
                .build::<Flex>(&Default::default())?;
            let started = Instant::now();
            let theirs = burn.encode(&texts)?;
            let b = started.elapsed().as_secs_f64();
            println!(
                "  kailin (burn flex)        {b:8.2} s  {:8.1} texts/s  max |Δ| to the kernels {:.2e}",
                n / b,
                max_diff(&ours, &theirs)
            );
        }
        let vectors = out.join(format!("{}-st.npy", name.replace(' ', "-")));
        let status = Command::new(&o.python)
            .arg(&script)
            .args(["--model", &model.display().to_string(), "--texts", &texts_path.display().to_string()])
            .args(["--threads", &o.encoder_threads.to_string(), "--batch", &o.encoder_batch.to_string()])
            .args(["--out", &vectors.display().to_string()])
            .status();
        let st_json = vectors.with_extension("json");
        if !matches!(status, Ok(s) if s.success()) || !st_json.exists() {
            println!(
                "  sentence-transformers: not run (`pip install sentence-transformers`, or --python); see the message above"
            );
            continue;
        }
        let st: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&st_json)?)?;
        let st_secs = st["seconds"].as_f64().context("seconds")?;
        let st_vectors: Array2<f32> = ndarray_npy::read_npy(&vectors)?;
        println!(
            "  sentence-transformers {} (PyTorch {}) {st_secs:6.2} s  {:8.1} texts/s",
            st["version"].as_str().unwrap_or("?"),
            st["torch"].as_str().unwrap_or("?"),
            n / st_secs
        );
        println!("  ratio (kailin ÷ sentence-transformers throughput): {:.2}", st_secs / secs);
        println!("  max |Δ| between the engines' vectors: {:.2e}", max_diff(&ours, &st_vectors));
    }
    Ok(())
}

fn max_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    if a.dim() != b.dim() {
        return f32::INFINITY;
    }
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
