//! The embedding store: round trips, resumption, imports, and files that disagree.
#![allow(missing_docs, clippy::unwrap_used)]

use kailin_retrieval::{Dtype, Error, ExactSearch, MANIFEST, Store, StoreBuilder, import_npy};
use ndarray::{Array2, array};
use ndarray_npy::WriteNpyExt;

fn rows(n: usize, dim: usize) -> Array2<f32> {
    Array2::from_shape_fn((n, dim), |(r, c)| ((r * 31 + c * 7) % 17) as f32 / 17.0 - 0.5)
}

fn write_npy(path: &std::path::Path, a: &Array2<f32>) {
    a.write_npy(std::fs::File::create(path).unwrap()).unwrap();
}

#[test]
fn rows_ids_and_search_survive_shards_and_f16() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows(10, 4);
    for dtype in [Dtype::F32, Dtype::F16] {
        let path = dir.path().join(format!("{dtype:?}"));
        let mut w = StoreBuilder::new(&path, 4).dtype(dtype).shard_rows(3).build().unwrap();
        for (i, r) in data.rows().into_iter().enumerate() {
            w.push(&format!("doc{i}"), r.as_slice().unwrap()).unwrap();
        }
        let store = w.finish().unwrap();
        assert_eq!((store.len(), store.shard_count(), store.dim()), (10, 4, 4));
        assert_eq!(store.id(0), Some("doc0"));
        assert_eq!(store.id(9), Some("doc9"));
        assert_eq!(store.id(10), None);
        // Scores and ranking against a brute force over the same rows.
        let hits = store.search(&ExactSearch::new(2).unwrap(), data.view(), 3).unwrap();
        for (q, hits) in hits.iter().enumerate() {
            let mut scores: Vec<(f32, u64)> = (0..10).map(|r| (data.row(q).dot(&data.row(r)), r as u64)).collect();
            scores.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let tol = if dtype == Dtype::F16 { 2e-3 } else { 1e-6 };
            for (h, (s, _)) in hits.iter().zip(&scores) {
                assert!((h.score - s).abs() < tol, "{dtype:?} query {q}");
            }
            if dtype == Dtype::F32 {
                assert_eq!(
                    hits.iter().map(|h| h.row).collect::<Vec<_>>(),
                    scores.iter().take(3).map(|s| s.1).collect::<Vec<_>>()
                );
            }
        }
    }
}

#[test]
fn an_interrupted_import_resumes_without_rewriting_finished_shards() {
    let dir = tempfile::tempdir().unwrap();
    let (npy, ids) = (dir.path().join("v.npy"), dir.path().join("ids.txt"));
    let data = rows(10, 3);
    write_npy(&npy, &data);
    std::fs::write(&ids, (0..10).map(|i| format!("pmid{i}\n")).collect::<String>()).unwrap();
    let out = dir.path().join("store");
    // "Interrupt" after 7 rows: two complete shards of 3; the 7th row is pending and lost.
    {
        let mut w = StoreBuilder::new(&out, 3).shard_rows(3).build().unwrap();
        for i in 0..7 {
            w.push(&format!("pmid{i}"), data.row(i).as_slice().unwrap()).unwrap();
        }
    }
    let first = std::fs::metadata(out.join("shard-00000.vec")).unwrap().modified().unwrap();
    let mut seen = Vec::new();
    let store = import_npy(&npy, Some(&ids), StoreBuilder::new(&out, 3).shard_rows(3), |n| seen.push(n)).unwrap();
    assert_eq!(seen.first(), Some(&7), "the six stored rows are skipped, row 7 is redone");
    assert_eq!(store.len(), 10);
    assert_eq!(store.id(6), Some("pmid6"));
    assert_eq!(std::fs::metadata(out.join("shard-00000.vec")).unwrap().modified().unwrap(), first);
    // Resuming with other ids is refused.
    std::fs::write(&ids, (0..10).map(|i| format!("other{i}\n")).collect::<String>()).unwrap();
    let err = import_npy(&npy, Some(&ids), StoreBuilder::new(&out, 3).shard_rows(3), |_| {}).unwrap_err();
    assert!(matches!(err, Error::ResumeMismatch { row: 0, .. }), "{err}");
}

#[test]
fn bad_imports_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("v.npy");
    write_npy(&npy, &rows(4, 3));
    let ids = dir.path().join("ids.txt");
    std::fs::write(&ids, "a\nb\nc\n").unwrap();
    let err = import_npy(&npy, Some(&ids), StoreBuilder::new(dir.path().join("s1"), 3), |_| {}).unwrap_err();
    assert!(matches!(err, Error::IdCount { expected: 4, got: 3, .. }), "{err}");
    // f64 array, 1-D array, truncated file.
    let f64_path = dir.path().join("f64.npy");
    array![[1.0f64, 2.0]].write_npy(std::fs::File::create(&f64_path).unwrap()).unwrap();
    let one_d = dir.path().join("1d.npy");
    array![1.0f32, 2.0].write_npy(std::fs::File::create(&one_d).unwrap()).unwrap();
    let bytes = std::fs::read(&npy).unwrap();
    let cut = dir.path().join("cut.npy");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    for bad in [&f64_path, &one_d, &cut] {
        let err = import_npy(bad, None, StoreBuilder::new(dir.path().join("s2"), 2), |_| {}).unwrap_err();
        assert!(matches!(err, Error::Npy { .. }), "{}: {err}", bad.display());
    }
    // Dimension differs from an existing store's.
    StoreBuilder::new(dir.path().join("s3"), 5).build().unwrap();
    let err = import_npy(&npy, None, StoreBuilder::new(dir.path().join("s3"), 3), |_| {}).unwrap_err();
    assert!(matches!(err, Error::Dimension { .. }), "{err}");
}

#[test]
fn stores_whose_files_disagree_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let mut w = StoreBuilder::new(&out, 2).shard_rows(2).encoder("enc-A").build().unwrap();
    for i in 0..4 {
        w.push(&format!("d{i}"), &[i as f32, 1.0]).unwrap();
    }
    let store = w.finish().unwrap();
    assert!(store.check_encoder("enc-A").is_ok());
    assert!(matches!(store.check_encoder("enc-B"), Err(Error::EncoderMismatch { .. })));
    // Another encoder cannot append either.
    let err = StoreBuilder::new(&out, 2).encoder("enc-B").build().unwrap_err();
    assert!(matches!(err, Error::EncoderMismatch { .. }), "{err}");
    // A truncated vector file.
    let vec1 = out.join("shard-00001.vec");
    let good = std::fs::read(&vec1).unwrap();
    std::fs::write(&vec1, &good[..good.len() - 4]).unwrap();
    assert!(matches!(Store::open(&out), Err(Error::Store { .. })));
    std::fs::write(&vec1, &good).unwrap();
    // An id file with a missing line.
    std::fs::write(out.join("shard-00000.ids"), "d0\n").unwrap();
    assert!(matches!(Store::open(&out), Err(Error::IdCount { expected: 2, got: 1, .. })));
    // A manifest pointing outside the store, and no manifest at all.
    std::fs::write(out.join("shard-00000.ids"), "d0\nd1\n").unwrap();
    let manifest = std::fs::read_to_string(out.join(MANIFEST)).unwrap();
    std::fs::write(out.join(MANIFEST), manifest.replace("shard-00000.ids", "../x.ids")).unwrap();
    assert!(matches!(Store::open(&out), Err(Error::Store { .. })));
    assert!(matches!(Store::open(dir.path()), Err(Error::Store { .. })));
    // Bad rows are refused with their row named, and nothing already pushed is lost.
    let mut w = StoreBuilder::new(dir.path().join("t"), 2).build().unwrap();
    w.push("ok", &[1.0, 2.0]).unwrap();
    assert!(matches!(w.push("x", &[1.0]), Err(Error::Dimension { .. })));
    assert!(matches!(w.push("y", &[f32::NAN, 0.0]), Err(Error::Invalid(_))));
    assert!(matches!(w.push("two\nlines", &[0.0, 0.0]), Err(Error::BadId { row: 1, .. })));
    assert_eq!(w.finish().unwrap().len(), 1);
}
