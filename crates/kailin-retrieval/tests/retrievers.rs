//! The retrieval engines behind the `Retriever` trait, and building a store from a document
//! stream (with an interruption and a resumption).
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use kailin_retrieval::{
    Bm25Retriever, DenseRetriever, Error, ExactSearch, Retriever, Store, StoreBuilder, build_store,
};

fn docs() -> Vec<(String, String)> {
    [
        ("d0", "the gene binds a protein"),
        ("d1", "liver cells"),
        ("d2", "the protein binds the liver cell"),
        ("d3", "a gene"),
        ("d4", "cells cells cells"),
    ]
    .iter()
    .map(|(i, t)| (i.to_string(), t.to_string()))
    .collect()
}

#[derive(Debug, thiserror::Error)]
#[error("stream broke at document {0}")]
struct Broken(usize);

#[test]
fn an_interrupted_build_resumes_to_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let encoder = common::encoder(dir.path(), "tiny");
    let whole = build_store(
        &encoder,
        StoreBuilder::new(dir.path().join("whole"), common::H),
        docs().into_iter().map(Ok::<_, Broken>),
        |_| {},
    )
    .unwrap();
    // Shards of two rows; the stream breaks at document 3 (after one complete shard: the
    // build flushes every 256 documents, so the two rows of the first shard are written when
    // the writer fills, and the third row is pending when the error arrives).
    let out = dir.path().join("resumed");
    let broken = docs().into_iter().enumerate().map(|(i, d)| if i == 3 { Err(Broken(i)) } else { Ok(d) });
    let err = build_store(&encoder, StoreBuilder::new(&out, common::H).shard_rows(2), broken, |_| {}).unwrap_err();
    assert!(matches!(err, Error::Input(_)), "{err}");
    let unfinished = Store::open(&out).unwrap_err().to_string();
    assert!(unfinished.contains("has not finished"), "{unfinished}");
    let stored = Store::open_partial(&out).unwrap().len();
    assert!(stored < 5, "the interrupted build is partial ({stored} rows)");
    // Edited texts under the same ids are not taken for the stored ones.
    let edited = docs().into_iter().map(|(id, text)| Ok::<_, Broken>((id, format!("{text} liver"))));
    let err =
        build_store(&encoder, StoreBuilder::new(dir.path().join("whole"), common::H), edited, |_| {}).unwrap_err();
    assert!(err.to_string().contains("has changed since it was encoded"), "{err}");
    assert_eq!(Store::open(dir.path().join("whole")).unwrap().len(), 5, "a refused run leaves the store as it was");
    let mut progress = Vec::new();
    let resumed = build_store(
        &encoder,
        StoreBuilder::new(&out, common::H).shard_rows(2),
        docs().into_iter().map(Ok::<_, Broken>),
        |n| progress.push(n),
    )
    .unwrap();
    assert_eq!(progress.last(), Some(&5));
    assert_eq!(resumed.len(), 5);
    let engine = ExactSearch::new(1).unwrap();
    let query = encoder.encode(&["protein binds"]).unwrap();
    let (a, b) = (whole.search(&engine, query.view(), 5).unwrap(), resumed.search(&engine, query.view(), 5).unwrap());
    let ids =
        |s: &Store, h: &[kailin_retrieval::Hit]| h.iter().map(|h| s.id(h.row).unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(ids(&whole, &a[0]), ids(&resumed, &b[0]));
    // Another stream, or another encoder, cannot resume it.
    let other = docs().into_iter().rev().map(Ok::<_, Broken>);
    let err = build_store(&encoder, StoreBuilder::new(&out, common::H).shard_rows(2), other, |_| {}).unwrap_err();
    assert!(matches!(err, Error::ResumeMismatch { row: 0, .. }), "{err}");
    let stranger = common::encoder(dir.path(), "another");
    let err = build_store(
        &stranger,
        StoreBuilder::new(&out, common::H).shard_rows(2),
        docs().into_iter().map(Ok::<_, Broken>),
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, Error::EncoderMismatch { .. }), "{err}");
}

#[test]
fn dense_retriever_ranks_by_the_stores_vectors_and_refuses_other_encoders() {
    let dir = tempfile::tempdir().unwrap();
    let encoder = common::encoder(dir.path(), "tiny");
    let store = build_store(
        &encoder,
        StoreBuilder::new(dir.path().join("s"), common::H),
        docs().into_iter().map(Ok::<_, Broken>),
        |_| {},
    )
    .unwrap();
    // The best match of a document's own text is that document.
    let expected: Vec<Vec<f32>> = {
        let v = encoder.encode(&docs().iter().map(|d| d.1.as_str()).collect::<Vec<_>>()).unwrap();
        v.rows().into_iter().map(|r| r.to_vec()).collect()
    };
    let retriever = DenseRetriever::new(encoder, store, ExactSearch::new(1).unwrap()).unwrap();
    let owned = docs();
    let texts: Vec<&str> = owned.iter().map(|d| d.1.as_str()).collect();
    let got = retriever.retrieve(&texts, 2).unwrap();
    for (i, hits) in got.iter().enumerate() {
        assert_eq!(hits[0].id, format!("d{i}"), "query {i}: {hits:?}");
        let self_score: f32 = expected[i].iter().map(|x| x * x).sum();
        assert!((hits[0].score - self_score).abs() < 1e-4);
        assert!(hits[0].score >= hits[1].score);
    }
    let store = Store::open(dir.path().join("s")).unwrap();
    let err =
        DenseRetriever::new(common::encoder(dir.path(), "another"), store, ExactSearch::new(1).unwrap()).unwrap_err();
    assert!(matches!(err, Error::EncoderMismatch { .. }), "{err}");
}

#[test]
fn bm25_prefers_documents_sharing_rare_terms() {
    let bm25 = Bm25Retriever::build(docs()).unwrap();
    assert_eq!(bm25.len(), 5);
    let got = bm25.retrieve(&["Which (gene) binds: \"protein\"?", "liver", "nothing-matches-this"], 3).unwrap();
    assert_eq!(got[0][0].id, "d0", "{:?}", got[0]);
    let liver: Vec<&str> = got[1].iter().map(|r| r.id.as_str()).collect();
    assert_eq!(liver.len(), 2);
    assert!(liver.contains(&"d1") && liver.contains(&"d2"), "{liver:?}");
    assert!(got[1][0].score >= got[1][1].score);
    assert!(got[2].is_empty());
    assert!(bm25.retrieve(&["gene"], 0).unwrap()[0].is_empty());
}

#[test]
fn bm25_breaks_ties_the_same_way_on_every_build() {
    // Many documents with equal scores: with several indexing threads their order among ties
    // depended on which thread took which document.
    let docs: Vec<(String, String)> =
        (0..3000).map(|i| (format!("t{i}"), format!("aspirin relieves headache, note {}", i % 7))).collect();
    let top = |bm25: &Bm25Retriever| -> Vec<String> {
        bm25.retrieve(&["aspirin headache"], 50).unwrap()[0].iter().map(|r| r.id.clone()).collect()
    };
    let first = top(&Bm25Retriever::build(docs.clone()).unwrap());
    for _ in 0..4 {
        assert_eq!(top(&Bm25Retriever::build(docs.clone()).unwrap()), first);
    }
}
