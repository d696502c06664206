//! Counts on the real files in `$KAILIN_DATA` or `../shared/data`; each test skips with a
//! message when the data is absent.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::PathBuf;

use kailin_corpus::PubmedReader;

fn data(rel: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("KAILIN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let path = dir.join(rel);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: {} not found (set KAILIN_DATA)", path.display());
        None
    }
}

#[test]
fn pubmed_xml_counts() {
    let Some(dir) = data("pubmed-xml") else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let (mut citations, mut complete, mut with_year) = (0, 0, 0);
    for f in &files {
        for article in PubmedReader::open(f).unwrap() {
            let a = article.unwrap();
            citations += 1;
            assert!(
                !a.document.id.is_empty() && a.document.id.bytes().all(|b| b.is_ascii_digit()),
                "PMID {:?}",
                a.document.id
            );
            complete += usize::from(!a.document.text.is_empty() && !a.headings.is_empty());
            with_year += usize::from(a.document.year.is_some());
            for h in &a.headings {
                assert!(h.ui.starts_with('D') && !h.name.is_empty(), "{h:?}");
            }
        }
    }
    assert_eq!(citations, 319);
    assert_eq!(complete, 123);
    assert_eq!(with_year, 319, "every citation has a PubDate year or MedlineDate");
}
