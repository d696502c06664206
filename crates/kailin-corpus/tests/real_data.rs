//! Counts on the real files in `$KAILIN_DATA` or `../shared/data`: ignored by default, run by
//! CI with `--include-ignored` (they fail, naming the file, when the data is absent).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use kailin_corpus::PubmedReader;

fn data(rel: &str) -> PathBuf {
    let dir = std::env::var_os("KAILIN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let path = dir.join(rel);
    assert!(path.exists(), "{} not found: set KAILIN_DATA to the data directory", path.display());
    path
}

#[test]
#[ignore = "needs the real data: $KAILIN_DATA or ../shared/data"]
fn pubmed_xml_counts() {
    let dir = data("pubmed-xml");
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

#[test]
#[ignore = "needs the real data: $KAILIN_DATA or ../shared/data"]
fn pubmedqa_counts_and_test_split() {
    let (pqal, truth) = (data("pubmedqa/ori_pqal.json"), data("pubmedqa/test_ground_truth.json"));
    let (records, skipped) = kailin_corpus::read_pubmedqa(&pqal, false).unwrap();
    assert_eq!(records.len(), 1000);
    assert!(skipped.is_empty());
    let test = kailin_corpus::read_pubmedqa_test_ids(&truth).unwrap();
    assert_eq!(test.len(), 500);
    assert_eq!(records.iter().filter(|r| test.contains(&r.pmid)).count(), 500, "the test split is inside PQA-L");
    for r in &records {
        assert!(["yes", "no", "maybe"].contains(&r.final_decision.as_str()), "{}", r.final_decision);
        assert_eq!(r.contexts.len(), r.labels.len());
        assert!(!r.question.is_empty() && !r.long_answer.is_empty());
    }
    assert_eq!(records.iter().filter(|r| r.year.is_none()).count(), 58, "records whose YEAR is null");
}

#[test]
#[ignore = "needs the real data: $KAILIN_DATA or ../shared/data"]
fn bioasq_counts() {
    let dir = data("bioasq");
    let mut files = Vec::new();
    for task in std::fs::read_dir(&dir).unwrap() {
        for f in std::fs::read_dir(task.unwrap().path()).unwrap() {
            let f = f.unwrap().path();
            if f.to_string_lossy().ends_with("_golden.json") {
                files.push(f);
            }
        }
    }
    let (mut total, mut snippets) = (0, 0);
    let mut kinds = std::collections::BTreeMap::new();
    for f in &files {
        let (qs, skipped) = kailin_corpus::read_bioasq(f, false).unwrap();
        assert!(skipped.is_empty());
        total += qs.len();
        for q in qs {
            *kinds.entry(q.kind.clone()).or_insert(0) += 1;
            snippets += q.snippets.len();
            assert!(q.documents.iter().all(|d| d.bytes().all(|b| b.is_ascii_digit())), "PMIDs: {:?}", q.documents);
            assert!(!q.ideal_answer.is_empty(), "question {} lost its ideal answer", q.id);
            assert!(q.exact_answer.is_null() == (q.kind == "summary"), "{}: exact answer {:?}", q.kind, q.exact_answer);
        }
    }
    assert_eq!(files.len(), 21, "batches 7B1-5, 8B1-5, 9B1-5, 10B1-6");
    assert_eq!(total, 1983);
    assert_eq!(kinds.values().sum::<usize>(), 1983);
    assert_eq!(kinds.get("yesno"), Some(&532));
    assert_eq!(snippets, 18_646);
}

#[test]
#[ignore = "needs the real data: $KAILIN_DATA or ../shared/data"]
fn bc5cdr_counts_and_offsets() {
    let path = data("bc5cdr/CDR_TrainingSet.PubTator.txt");
    let mut docs = 0;
    let mut mentions = 0;
    for doc in kailin_corpus::PubtatorReader::open(&path).unwrap() {
        let doc = doc.unwrap();
        docs += 1;
        let text: Vec<char> = format!("{} {}", doc.document.title, doc.document.text).chars().collect();
        for m in &doc.mentions {
            let span: String = text[m.start..m.end].iter().collect();
            assert_eq!(span, m.text, "document {}", doc.document.id);
            mentions += 1;
        }
    }
    assert_eq!(docs, 1000);
    assert!(mentions > 9_000, "{mentions} mentions");
}
