//! An interrupted process removes the temporaries of its unfinished writers. (A test binary of
//! its own: the registry is process-wide.)
#![allow(clippy::unwrap_used)]

use std::io::Write;

use kailin_core::{AtomicDir, AtomicFile, remove_live_temporaries, write_atomic};

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn an_interrupted_process_can_remove_its_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = AtomicFile::create(dir.path().join("a.jsonl")).unwrap();
    f.write_all(b"half").unwrap();
    let d = AtomicDir::create(dir.path().join("ckpt")).unwrap();
    std::fs::write(d.path().join("x"), b"1").unwrap();
    assert_eq!(names(dir.path()).len(), 2);
    assert_eq!(remove_live_temporaries(), 2);
    assert!(names(dir.path()).is_empty());
    drop((f, d));
    // Finished writers are no longer listed.
    write_atomic(dir.path().join("b"), b"x").unwrap();
    assert_eq!(remove_live_temporaries(), 0);
    assert_eq!(names(dir.path()), ["b"]);
}
