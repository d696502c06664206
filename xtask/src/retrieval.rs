//! `cargo xtask bench retrieval`: exact search side by side with FAISS `IndexFlatIP` on the
//! same random vectors and threads, encoder throughput, and retrieval quality on BioASQ
//! (`retrieval_quality.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use kailin_retrieval::{ExactSearch, Vectors};
use ndarray::Array2;
use ndarray_npy::WriteNpyExt;

/// Options of the benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct RetrievalBench {
    /// Searched vectors (random unit vectors).
    #[arg(long, default_value_t = 1_000_000)]
    vectors: usize,
    /// Queries.
    #[arg(long, default_value_t = 1_000)]
    queries: usize,
    /// Dimension.
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// Hits per query.
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// Threads, for both engines.
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
    /// Skip the BioASQ quality evaluation (and the encoder throughput).
    #[arg(long)]
    speed_only: bool,
    /// Encoder directory (default: all-MiniLM-L6-v2 from the model cache).
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// A fine-tuned encoder (`kailin retrieve train`'s output) to compare with the general
    /// one, dense and fused with BM25.
    #[arg(long)]
    pub(crate) domain_model: Option<PathBuf>,
    /// Skip the search-speed comparison (quality only).
    #[arg(long, conflicts_with = "speed_only")]
    quality_only: bool,
    /// Working directory for the vector files.
    #[arg(long, default_value = "target/bench-retrieval")]
    out: PathBuf,
    /// Also time `kailin retrieve search` end to end (process start, opening and mapping the
    /// store, search, output) against FAISS's search, three alternating runs each.
    #[arg(long)]
    cli: bool,
    /// The Python with faiss (default: python3).
    #[arg(long, env = "KAILIN_FAISS_PYTHON", default_value = "python3")]
    faiss_python: PathBuf,
}

/// Seeded random unit rows.
fn unit_rows(rows: usize, dim: usize, seed: u64) -> Array2<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut a = Array2::from_shape_fn((rows, dim), |_| {
        // xorshift64*, then a uniform in [-1, 1)
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    });
    for mut row in a.rows_mut() {
        let norm = row.dot(&row).sqrt().max(1e-12);
        row /= norm;
    }
    a
}

fn write_npy(path: &Path, a: &Array2<f32>) -> Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path).with_context(|| path.display().to_string())?);
    a.write_npy(file).with_context(|| format!("writing {}", path.display()))
}

pub(crate) fn bench(data: &Path, opts: &RetrievalBench) -> Result<()> {
    std::fs::create_dir_all(&opts.out)?;
    if !opts.quality_only {
        speed(opts)?;
    }
    if !opts.speed_only {
        crate::retrieval_quality::quality(data, opts)?;
    }
    Ok(())
}

fn speed(o: &RetrievalBench) -> Result<()> {
    println!(
        "## Exact top-{} search: {} queries x {} vectors, dim {}, {} threads",
        o.k, o.queries, o.vectors, o.dim, o.threads
    );
    let base = unit_rows(o.vectors, o.dim, 1);
    let queries = unit_rows(o.queries, o.dim, 2);
    let engine = ExactSearch::new(o.threads)?;
    let mut best = f64::INFINITY;
    let mut hits = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        hits = engine.search(queries.view(), &[Vectors::F32(base.view())], o.k)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    let gflops = 2.0 * o.queries as f64 * o.vectors as f64 * o.dim as f64 / best / 1e9;
    println!("kailin ExactSearch: best of 3 {best:.3} s ({gflops:.0} GFLOP/s)");
    // Recall against a brute force on the first queries: every score by ndarray's own product,
    // ranked by a full sort.
    let check = o.queries.min(20);
    let scores = base.dot(&queries.slice(ndarray::s![..check, ..]).t()); // [vectors, check]
    let mut found = 0;
    for (q, got) in hits.iter().enumerate().take(check) {
        let mut all: Vec<(f32, u64)> = scores.column(q).iter().enumerate().map(|(r, &s)| (s, r as u64)).collect();
        all.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let truth: Vec<u64> = all[..o.k].iter().map(|t| t.1).collect();
        found += got.iter().filter(|h| truth.contains(&h.row)).count();
    }
    println!("recall@{} against brute force on {check} queries: {:.4}", o.k, found as f64 / (check * o.k) as f64);
    // FAISS on the same vectors and threads.
    let (base_path, query_path, faiss_out) =
        (o.out.join("base.npy"), o.out.join("queries.npy"), o.out.join("faiss.json"));
    write_npy(&base_path, &base)?;
    write_npy(&query_path, &queries)?;
    drop(base);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/faiss_flat.py");
    let status = Command::new(&o.faiss_python)
        .arg(&script)
        .args(["--base", &base_path.display().to_string(), "--queries", &query_path.display().to_string()])
        .args(["--k", &o.k.to_string(), "--threads", &o.threads.to_string(), "--out", &faiss_out.display().to_string()])
        .status()
        .context("running python3")?;
    if !status.success() {
        println!("FAISS: not run (`pip install faiss-cpu` first); see the script's message above");
        return Ok(());
    }
    let faiss: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&faiss_out)?)?;
    let seconds = faiss["seconds"].as_f64().context("faiss.json: seconds")?;
    let ids: Vec<Vec<u64>> = serde_json::from_value(faiss["ids"].clone())?;
    let agree: usize = hits.iter().zip(&ids).map(|(h, f)| h.iter().filter(|h| f.contains(&h.row)).count()).sum();
    println!("FAISS IndexFlatIP ({}): best of 3 {seconds:.3} s", faiss["version"].as_str().unwrap_or("?"));
    println!("time ratio kailin / FAISS: {:.2}", best / seconds);
    println!("agreement with FAISS's top-{}: {:.4}", o.k, agree as f64 / (hits.len() * o.k) as f64);
    if o.cli {
        cli_search(o, &base_path, &query_path, &script)?;
    }
    Ok(())
}

/// `kailin retrieve search --query-vectors` end to end, alternating with FAISS's search (one
/// timed search per run, its index built before the clock starts): the medians of three runs.
fn cli_search(o: &RetrievalBench, base: &Path, queries: &Path, script: &Path) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo).args(["build", "--release", "-p", "kailin-cli"]).current_dir(&root).status()?;
    anyhow::ensure!(built.success(), "building kailin (release) failed");
    let kailin = root.join("target/release/kailin");
    let store = o.out.join("store");
    if store.exists() {
        std::fs::remove_dir_all(&store)?;
    }
    let s = |p: &Path| p.display().to_string();
    let imported =
        Command::new(&kailin).args(["retrieve", "import", "--vectors", &s(base), "--out", &s(&store)]).status()?;
    anyhow::ensure!(imported.success(), "kailin retrieve import failed");
    // The import's 1.5 GB of dirty pages written back before the clock starts, not during
    // the first search (the store stays in the page cache, as FAISS's index stays in memory).
    if Command::new("sync").status().map(|s| !s.success()).unwrap_or(true) {
        eprintln!("`sync` did not run: the first search may share the disk with the import's write-back");
    }
    let faiss_out = o.out.join("faiss-1.json");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for run in 1..=3 {
        let t = Instant::now();
        let searched = Command::new(&kailin)
            .args(["retrieve", "search", "--store", &s(&store), "--query-vectors", &s(queries)])
            .args(["--k", &o.k.to_string(), "--threads", &o.threads.to_string()])
            .stdout(std::process::Stdio::null())
            .status()?;
        ours.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(searched.success(), "kailin retrieve search failed");
        let status = Command::new(&o.faiss_python)
            .arg(script)
            .args(["--base", &s(base), "--queries", &s(queries), "--runs", "1"])
            .args(["--k", &o.k.to_string(), "--threads", &o.threads.to_string(), "--out", &s(&faiss_out)])
            .status()?;
        anyhow::ensure!(status.success(), "the FAISS script failed");
        let faiss: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&faiss_out)?)?;
        theirs.push(faiss["seconds"].as_f64().context("faiss: seconds")?);
        println!(
            "run {run}: kailin retrieve search end to end {:.3} s, FAISS search {:.3} s",
            ours[run - 1],
            theirs[run - 1]
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut ours), median(&mut theirs));
    println!("medians: kailin retrieve search {a:.3} s end to end, FAISS {b:.3} s search only: ratio {:.2}", a / b);
    Ok(())
}

pub(crate) fn bar(n: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(n as u64).with_message(what.to_owned());
    if let Ok(style) = ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} [{elapsed} < {eta}]") {
        bar.set_style(style);
    }
    bar
}

/// Every question of the BioASQ golden batches under `data/bioasq`, files in path order.
pub(crate) fn bioasq_questions(data: &Path) -> Result<(usize, Vec<kailin_corpus::BioasqQuestion>)> {
    let dir = data.join("bioasq");
    let files = kailin_corpus::input_files(&dir, Some(kailin_corpus::Source::Bioasq))
        .with_context(|| format!("{} (BioASQ golden batches)", dir.display()))?
        .files;
    let mut questions = Vec::new();
    for f in &files {
        questions.extend(kailin_corpus::read_bioasq(f, true)?.0);
    }
    Ok((files.len(), questions))
}
