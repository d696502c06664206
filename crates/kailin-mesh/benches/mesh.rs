//! `cargo bench -p kailin-mesh`: load, similarity and extraction throughput.
//!
//! Reads the complete MeSH 2024 TSV and real abstracts (BC5CDR titles + abstracts) from
//! `$KAILIN_DATA` or `../shared/data`; falls back to the small fixtures in `fixtures/` (and
//! says so) when the data is absent. Figures go to `docs/benchmarks.md`.
#![allow(missing_docs, clippy::print_stderr, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use divan::Bencher;
use divan::counter::{BytesCount, ItemsCount};
use kailin_mesh::{Aggregate, DescriptorId, Extractor, Lca, Measure, Mesh, Scratch, Similarity};

fn main() {
    divan::main();
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn data_dir() -> PathBuf {
    std::env::var_os("KAILIN_DATA").map(PathBuf::from).unwrap_or_else(|| root().join("../shared/data"))
}

fn tsv_path() -> PathBuf {
    let real = data_dir().join("mesh/mesh2024.tsv");
    if real.exists() {
        real
    } else {
        eprintln!("note: {} absent, benchmarking the fixture hierarchy", real.display());
        root().join("fixtures/mesh/mini.tsv")
    }
}

fn mesh() -> &'static Mesh {
    static MESH: OnceLock<Mesh> = OnceLock::new();
    MESH.get_or_init(|| Mesh::load(tsv_path()).unwrap())
}

fn cache_path() -> &'static PathBuf {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("kailin-mesh-bench-{}.cache", std::process::id()));
        mesh().save_cache(&path).unwrap();
        path
    })
}

/// Abstract text, one document per line: BC5CDR's 1,000 titles + abstracts, or the fixture.
fn abstracts() -> &'static Vec<String> {
    static TEXT: OnceLock<Vec<String>> = OnceLock::new();
    TEXT.get_or_init(|| {
        let real = data_dir().join("bc5cdr/CDR_TrainingSet.PubTator.txt");
        match std::fs::read_to_string(&real) {
            Ok(s) => s
                .lines()
                .filter_map(|l| l.split_once("|a|").or_else(|| l.split_once("|t|")).map(|(_, t)| t.to_owned()))
                .collect(),
            Err(_) => {
                eprintln!("note: {} absent, benchmarking the fixture abstracts", real.display());
                std::fs::read_to_string(root().join("fixtures/text/abstracts.txt"))
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect()
            }
        }
    })
}

fn random_pairs(n: usize) -> Vec<(DescriptorId, DescriptorId)> {
    let ids: Vec<DescriptorId> = mesh().ids().collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ids[(state % ids.len() as u64) as usize]
    };
    (0..n).map(|_| (next(), next())).collect()
}

const PAIRS: usize = 1 << 20;

#[divan::bench(sample_count = 20)]
fn load_tsv(b: Bencher<'_, '_>) {
    let path = tsv_path();
    b.bench(|| Mesh::load(&path).unwrap());
}

#[divan::bench(sample_count = 50)]
fn load_cache(b: Bencher<'_, '_>) {
    let path = cache_path();
    b.bench(|| Mesh::load(path).unwrap());
}

#[divan::bench(sample_count = 20)]
fn resnik_pairs(b: Bencher<'_, '_>) {
    let pairs = random_pairs(PAIRS);
    let ic = mesh().intrinsic_ic();
    b.counter(ItemsCount::new(PAIRS)).bench(|| pairs.iter().map(|&(x, y)| ic.resnik(x, y)).sum::<f64>());
}

#[divan::bench(sample_count = 20)]
fn lin_pairs(b: Bencher<'_, '_>) {
    let pairs = random_pairs(PAIRS);
    let sim = Similarity::new(mesh()).measure(Measure::Lin);
    b.counter(ItemsCount::new(PAIRS)).bench(|| pairs.iter().map(|&(x, y)| sim.pair(x, y)).sum::<f64>());
}

#[divan::bench(sample_count = 10)]
fn tree_lca_pairs(b: Bencher<'_, '_>) {
    let pairs = random_pairs(PAIRS / 16);
    let sim = Similarity::new(mesh()).lca(Lca::Tree);
    b.counter(ItemsCount::new(pairs.len())).bench(|| pairs.iter().map(|&(x, y)| sim.pair(x, y)).sum::<f64>());
}

/// Set similarity of 10-term document sets against 10-term context sets (100 pairs each).
#[divan::bench(sample_count = 20)]
fn set_similarity_10x10(b: Bencher<'_, '_>) {
    let pairs = random_pairs(10 * 1000);
    let sets: Vec<Vec<DescriptorId>> = pairs.chunks(5).map(|c| c.iter().flat_map(|&(x, y)| [x, y]).collect()).collect();
    let sim = Similarity::new(mesh());
    b.counter(ItemsCount::new(sets.len() / 2))
        .bench(|| sets.chunks(2).map(|s| sim.set_score(&s[0], &s[1], Aggregate::Mean).score).sum::<f64>());
}

#[divan::bench(sample_count = 5)]
fn extractor_build(b: Bencher<'_, '_>) {
    b.bench(|| Extractor::new(mesh()).unwrap());
}

/// Extraction throughput over the abstracts with one of the extractor's entry points.
fn bench_extraction(b: Bencher<'_, '_>, run: fn(&Extractor, &str, &mut Scratch, &mut Vec<kailin_mesh::Match>)) {
    let ex = Extractor::new(mesh()).unwrap();
    let docs = abstracts();
    let bytes: usize = docs.iter().map(String::len).sum();
    let (mut scratch, mut out) = (Scratch::default(), Vec::new());
    b.counter(BytesCount::new(bytes)).bench_local(|| {
        let mut n = 0;
        for d in docs {
            run(&ex, d, &mut scratch, &mut out);
            n += out.len();
        }
        n
    });
}

/// `Extractor::extract_with`: longest non-overlapping spans.
#[divan::bench(sample_count = 20)]
fn extract_spans(b: Bencher<'_, '_>) {
    bench_extraction(b, Extractor::extract_with);
}

/// `Extractor::extract_all_with`: spans plus nested chemicals (what `descriptors()` uses).
#[divan::bench(sample_count = 20)]
fn extract_descriptor_sets(b: Bencher<'_, '_>) {
    bench_extraction(b, Extractor::extract_all_with);
}
