//! Every record type survives a JSONL round trip; bad lines are located; writes are atomic.
#![allow(clippy::unwrap_used)]

use std::io::Write;

use kailin_core::{
    AtomicFile, Candidate, Context, CptRecord, Document, Error, JsonlReader, JsonlWriter, PreferencePair, Provenance,
    Question, SftRecord, read_jsonl, write_jsonl,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn roundtrip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(records: &[T]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.jsonl");
    assert_eq!(write_jsonl(&path, records).unwrap(), records.len() as u64);
    assert_eq!(read_jsonl::<T>(&path).unwrap(), records);
}

fn provenance() -> Provenance {
    Provenance {
        agent: "question-generator/general".into(),
        model: Some("smollm2-135m".into()),
        seed: Some(7),
        detail: Some("template v1, k=4".into()),
    }
}

fn context() -> Context {
    Context { doc_ids: vec!["123".into(), "456".into()], text: "Levodopa… «ünïcode» \"quotes\"\nnewline".into() }
}

#[test]
fn every_record_type_round_trips() {
    roundtrip(&[
        Document {
            id: "29890001".into(),
            title: "A title".into(),
            text: "An abstract.".into(),
            mesh: vec!["D009369".into(), "Humans".into()],
            year: Some(2018),
            source: "pubmed".into(),
        },
        Document { id: "x".into(), text: String::new(), ..Default::default() },
    ]);
    roundtrip(&[
        Question {
            id: "q1".into(),
            text: "Why?".into(),
            doc_id: Some("1".into()),
            kind: Some("yesno".into()),
            provenance: Some(provenance()),
        },
        Question { id: "q2".into(), text: "Gold".into(), ..Default::default() },
    ]);
    roundtrip(&[context()]);
    roundtrip(&[PreferencePair {
        doc_id: "1".into(),
        chosen: Candidate { question: "Q1".into(), context: context() },
        rejected: Candidate { question: "Q2".into(), context: Context::default() },
        score_chosen: 0.8125,
        score_rejected: -1.5e-3,
        provenance: provenance(),
    }]);
    roundtrip(&[CptRecord { id: "c".into(), question: "Q".into(), context: context(), provenance: provenance() }]);
    roundtrip(&[SftRecord {
        id: "s".into(),
        question: "Q".into(),
        context: context(),
        answer: "yes".into(),
        provenance: provenance(),
    }]);
}

#[test]
fn errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, b"{\"id\":\"1\",\"text\":\"a\"}\n\n{\"id\":\"2\"}\n{\"id\":\"3\",\"text\":\"\xff\"}\n")
        .unwrap();
    let got: Vec<_> = JsonlReader::<Document>::open(&path).unwrap().collect();
    assert_eq!(got.len(), 3, "blank lines are skipped");
    assert!(got[0].is_ok());
    match &got[1] {
        Err(e @ Error::Json { line: 3, .. }) => assert!(e.to_string().contains("bad.jsonl:3:"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(got[2], Err(Error::Utf8 { line: 4, .. })));
    assert!(matches!(JsonlReader::<Document>::open(dir.path().join("missing")), Err(Error::Io { .. })));
}

#[test]
fn unfinished_writes_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    {
        let mut w = JsonlWriter::<Document>::create(&path).unwrap();
        w.write(&Document::default()).unwrap();
        // Dropped without finish(): as if the run were killed.
    }
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no temporary file left behind");
    let mut f = AtomicFile::create(&path).unwrap();
    f.write_all(b"{}\n").unwrap();
    assert!(!path.exists(), "invisible until committed");
    f.commit().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
}
