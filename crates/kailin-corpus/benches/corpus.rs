//! `cargo bench -p kailin-corpus`: reader throughput on the real PubMed XML samples
//! (decompressed in memory first: this measures XML parsing, not gzip).
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

use std::io::Read;
use std::path::PathBuf;

use divan::Bencher;
use divan::counter::BytesCount;
use kailin_corpus::PubmedReader;

fn main() {
    divan::main();
}

/// All PubMed XML samples, decompressed and concatenated as separate documents.
fn pubmed_xml() -> Vec<Vec<u8>> {
    let dir = std::env::var_os("KAILIN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
        .join("pubmed-xml");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("note: {} absent: nothing to benchmark", dir.display());
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(std::fs::File::open(f).unwrap()).read_to_end(&mut out).unwrap();
            out
        })
        .collect()
}

#[divan::bench(sample_count = 30)]
fn pubmed_xml_parse(b: Bencher<'_, '_>) {
    let docs = pubmed_xml();
    let bytes: usize = docs.iter().map(Vec::len).sum();
    b.counter(BytesCount::new(bytes)).bench_local(|| {
        let mut n = 0;
        for d in &docs {
            let reader = PubmedReader::from_reader(d.as_slice(), "bench.xml");
            n += reader.map(|a| a.unwrap().headings.len()).sum::<usize>();
        }
        n
    });
}
