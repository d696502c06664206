//! Readers on the invented files in `fixtures/corpus/`, and on broken input.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;

use kailin_corpus::{Error, PubmedReader, PubtatorReader, read_bioasq, read_pubmedqa, read_pubmedqa_test_ids};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/corpus").join(name)
}

#[test]
fn pubmed_fields() {
    let articles: Vec<_> = PubmedReader::open(fixture("articles.xml")).unwrap().map(Result::unwrap).collect();
    assert_eq!(articles.len(), 2);
    let a = &articles[0].document;
    assert_eq!(a.id, "90000001", "the article's PMID, not the cited one");
    assert_eq!(a.title, "Levodopa and dyskinesia in early Parkinson disease.");
    assert_eq!(
        a.text,
        "BACKGROUND: Levodopa remains the main therapy of Parkinson disease.\nRESULTS: Dyskinesias appeared in 12 of 40 patients & resolved."
    );
    assert_eq!(a.mesh, ["D900013", "D900022"]);
    assert_eq!(a.year, Some(2019));
    assert!(articles[0].headings[0].major && !articles[0].headings[1].major);
    let b = &articles[1].document;
    assert_eq!((b.year, b.text.as_str(), b.mesh.len()), (Some(1998), "", 0), "MedlineDate year; no abstract");
}

#[test]
fn pubmed_gzip_truncation_and_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let xml = std::fs::read(fixture("articles.xml")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&xml).unwrap();
    let gz = gz.finish().unwrap();
    let full = dir.path().join("a.xml.gz");
    std::fs::write(&full, &gz).unwrap();
    assert_eq!(PubmedReader::open(&full).unwrap().count(), 2);
    let cut = dir.path().join("cut.xml.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let results: Vec<_> = PubmedReader::open(&cut).unwrap().collect();
    assert!(results.last().unwrap().is_err(), "a truncated .gz ends in an error, never silently");
    // A citation without a PMID: an error naming the place, or skipped and counted.
    let no_pmid = dir.path().join("nopmid.xml");
    let text = String::from_utf8(xml).unwrap().replacen("<PMID Version=\"1\">90000002</PMID>", "", 1);
    std::fs::write(&no_pmid, text).unwrap();
    let err = PubmedReader::open(&no_pmid).unwrap().find_map(Result::err).unwrap();
    assert!(matches!(&err, Error::Xml { .. }) && err.to_string().contains("nopmid.xml: byte "), "{err}");
    let mut reader = PubmedReader::open(&no_pmid).unwrap().skip_bad(true);
    assert_eq!(reader.by_ref().map(Result::unwrap).count(), 1);
    assert_eq!(reader.skipped().len(), 1);
}

#[test]
fn pubtator_documents_and_skip_bad() {
    let strict: Vec<_> = PubtatorReader::open(fixture("docs.pubtator")).unwrap().collect();
    assert_eq!(strict.len(), 3);
    let err = strict[2].as_ref().unwrap_err().to_string();
    assert!(err.contains("docs.pubtator:13:") && err.contains("notanumber"), "{err}");
    let d = strict[1].as_ref().unwrap();
    assert_eq!(d.document.mesh, ["D900024", "D900022"]);
    assert_eq!(d.relations.len(), 1);
    let mut reader = PubtatorReader::open(fixture("docs.pubtator")).unwrap().skip_bad(true);
    let ok: Vec<_> = reader.by_ref().map(Result::unwrap).collect();
    assert_eq!(ok.len(), 2);
    assert_eq!(reader.skipped().len(), 1);
}

#[test]
fn pubmedqa_and_bioasq() {
    let (recs, _) = read_pubmedqa(fixture("pubmedqa.json"), false).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!((recs[0].year, recs[1].year), (Some(2020), None));
    assert_eq!(recs[0].document().text.lines().count(), 2);
    assert_eq!(read_pubmedqa_test_ids(fixture("pubmedqa_test.json")).unwrap().len(), 1);
    let (qs, _) = read_bioasq(fixture("bioasq.json"), false).unwrap();
    assert_eq!(qs[0].documents, ["90000001"]);
    assert_eq!(qs[0].snippets[0].pmid, "90000001");
    assert_eq!(qs[1].ideal_answer, ["Yes, it is."], "a single string is one answer");
    assert_eq!(qs[1].exact_answer, serde_json::json!("yes"));
    // Malformed JSON names the file and line.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"questions\": [\n{\"id\": }]}").unwrap();
    let err = read_bioasq(&bad, false).unwrap_err().to_string();
    assert!(err.contains("bad.json:2:"), "{err}");
}
