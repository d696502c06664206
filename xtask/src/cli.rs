//! `cargo xtask bench cli`: the `kailin` command's batch paths end to end (process start,
//! loading MeSH from its binary cache, reading, scoring or extracting, writing), on inputs the
//! benchmark writes itself: `mesh sim` over random descriptor pairs, `mesh set-sim` over random
//! descriptor sets, `mesh extract` over BC5CDR's abstracts repeated.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Result, ensure};

/// Options of the benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct CliBench {
    /// Descriptor pairs for `mesh sim`.
    #[arg(long, default_value_t = 10_000_000)]
    pairs: usize,
    /// Set pairs (5 × 5 terms) for `mesh set-sim`.
    #[arg(long, default_value_t = 1_000_000)]
    set_pairs: usize,
    /// Megabytes of text for `mesh extract`.
    #[arg(long, default_value_t = 100)]
    extract_mb: usize,
    /// Runs of each command (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = at_least_one())]
    runs: usize,
}

/// clap's parser of a count of at least one.
pub(crate) fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

/// The median of `runs` timed runs of `kailin ARGS < stdin > /dev/null`.
fn time(kailin: &Path, args: &[&str], stdin: Option<&Path>, runs: usize) -> Result<f64> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let input = match stdin {
            Some(p) => Stdio::from(std::fs::File::open(p)?),
            None => Stdio::null(),
        };
        let started = Instant::now();
        let status = Command::new(kailin).args(args).stdin(input).stdout(Stdio::null()).status()?;
        times.push(started.elapsed().as_secs_f64());
        ensure!(status.success(), "kailin {} failed", args.join(" "));
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

pub(crate) fn bench(data: &Path, o: &CliBench) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "-p", "kailin-cli"])
        .current_dir(&root)
        .status()?;
    ensure!(status.success(), "building kailin (release) failed");
    let kailin = root.join("target/release/kailin");
    let out = root.join("target/bench-cli");
    std::fs::create_dir_all(&out)?;
    let tsv = data.join("mesh/mesh2024.tsv");
    let cache = out.join("mesh.cache");
    let cache_s = cache.display().to_string();
    let st = Command::new(&kailin)
        .args(["mesh", "cache", "--mesh", &tsv.display().to_string(), "--out", &cache_s])
        .status()?;
    ensure!(st.success(), "kailin mesh cache failed");
    let mesh = kailin_mesh::Mesh::load(&cache)?;
    let uis: Vec<&str> = mesh.ids().map(|d| mesh.descriptor(d).ui()).collect();
    let mut rng = kailin_core::SplitMix64::new(18);
    let mut pick = || uis[rng.below(uis.len() as u64) as usize];

    let pairs = out.join("pairs.tsv");
    let mut text = String::with_capacity(o.pairs * 16);
    for _ in 0..o.pairs {
        let (a, b) = (pick(), pick());
        text.push_str(a);
        text.push('\t');
        text.push_str(b);
        text.push('\n');
    }
    std::fs::write(&pairs, &text)?;
    let pairs_s = pairs.display().to_string();
    let base = time(&kailin, &["mesh", "info", "--mesh", &cache_s], None, o.runs)?;
    println!("kailin mesh info (process start + cache load): {base:.3} s (median of {})", o.runs);
    let s = time(&kailin, &["mesh", "sim", "--mesh", &cache_s, "--pairs", &pairs_s], None, o.runs)?;
    println!(
        "kailin mesh sim, {} pairs ({:.0} MB): {s:.3} s end to end = {:.2} M pairs/s",
        o.pairs,
        text.len() as f64 / 1e6,
        o.pairs as f64 / s / 1e6
    );

    let sets = out.join("sets.tsv");
    let mut text = String::new();
    for _ in 0..o.set_pairs {
        let l: Vec<&str> = (0..5).map(|_| pick()).collect();
        let r: Vec<&str> = (0..5).map(|_| pick()).collect();
        text.push_str(&l.join(","));
        text.push('\t');
        text.push_str(&r.join(","));
        text.push('\n');
    }
    std::fs::write(&sets, &text)?;
    let s =
        time(&kailin, &["mesh", "set-sim", "--mesh", &cache_s, "--sets", &sets.display().to_string()], None, o.runs)?;
    println!(
        "kailin mesh set-sim, {} set pairs of 5 × 5: {s:.3} s end to end = {:.2} M set pairs/s = {:.1} M term pairs/s",
        o.set_pairs,
        o.set_pairs as f64 / s / 1e6,
        25.0 * o.set_pairs as f64 / s / 1e6
    );

    let bc5 = data.join("bc5cdr/CDR_TrainingSet.PubTator.txt");
    let mut abstracts = String::new();
    for doc in kailin_corpus::DocumentStream::open(&bc5, kailin_corpus::Source::Pubtator, false)? {
        abstracts.push_str(doc?.text.trim());
        abstracts.push('\n');
    }
    ensure!(!abstracts.is_empty(), "no BC5CDR training abstracts under {}", bc5.display());
    let docs = out.join("abstracts.txt");
    let want = o.extract_mb << 20;
    let mut text = String::with_capacity(want + abstracts.len());
    while text.len() < want {
        text.push_str(&abstracts);
    }
    std::fs::write(&docs, &text)?;
    let s = time(&kailin, &["mesh", "extract", "--mesh", &cache_s], Some(&docs), o.runs)?;
    println!(
        "kailin mesh extract, {:.0} MB of BC5CDR abstracts (repeated): {s:.3} s end to end = {:.1} MB/s",
        text.len() as f64 / 1e6,
        text.len() as f64 / 1e6 / s
    );
    Ok(())
}
