//! The workspace's invariants that a test can check (docs/ARCHITECTURE.md), as rust-analyzer's
//! `tidy` does: read the sources and manifests, fail naming the file.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The workspace's crates: `(name, directory, manifest)`.
fn crates() -> Vec<(String, PathBuf, toml::Table)> {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(root().join("crates")).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.extend([root().join("examples"), root().join("xtask")]);
    dirs.sort();
    dirs.into_iter()
        .map(|d| {
            let manifest: toml::Table =
                toml::from_str(&std::fs::read_to_string(d.join("Cargo.toml")).unwrap()).unwrap();
            let name = manifest["package"]["name"].as_str().unwrap().to_owned();
            (name, d, manifest)
        })
        .collect()
}

/// The crates that are libraries for others (not the binary, the examples or xtask).
fn is_library(name: &str) -> bool {
    name.starts_with("kailin-") && name != "kailin-cli" && name != "kailin-examples"
}

#[test]
fn no_library_crate_draws_progress_bars() {
    for (name, _, manifest) in crates().into_iter().filter(|(n, ..)| is_library(n)) {
        let deps = manifest.get("dependencies").and_then(|d| d.as_table()).cloned().unwrap_or_default();
        assert!(!deps.contains_key("indicatif"), "{name} depends on indicatif: libraries report through callbacks");
    }
}

#[test]
fn no_crate_has_a_feature_that_only_passes_another_through() {
    for (name, dir, manifest) in crates() {
        let Some(features) = manifest.get("features").and_then(|f| f.as_table()) else { continue };
        let sources: String = ["src", "tests", "benches", "examples"]
            .iter()
            .flat_map(|d| rust_files(&dir.join(d)))
            .chain(rust_files(&dir).into_iter().filter(|p| p.parent() == Some(dir.as_path())))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        for feature in features.keys().filter(|f| *f != "default") {
            assert!(
                sources.contains(&format!("feature = \"{feature}\"")),
                "{name}: feature {feature:?} is used by no code of its own (it only passes another crate's through)"
            );
        }
    }
}

#[test]
fn only_kailin_core_renames_a_temporary_into_place() {
    for (name, dir, _) in crates().into_iter().filter(|(n, ..)| n != "kailin-core" && n != "xtask") {
        for file in rust_files(&dir.join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            for needle in ["fs::rename(", ".persist(", "persist_noclobber("] {
                assert!(
                    !text.contains(needle),
                    "{name}: {} calls {needle}: atomic writes go through kailin-core (write_atomic, AtomicFile, AtomicDir)",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn the_pipeline_calls_libraries_and_defines_no_method_step() {
    let src = root().join("crates/kailin-pipeline/src");
    // What the method's steps are made of: each lives in the library that owns it.
    let steps = [
        (".retrieve(", "retrieval (kailin-retrieval, kailin-evaluator::cpt_records)"),
        ("context_of(", "contexts (kailin-evaluator::cpt_records)"),
        ("enum AnyRetriever", "the retriever choice (kailin-retrieval::AnyRetriever)"),
        ("is_char_boundary", "text cutting (kailin_core::cut_chars)"),
        ("chars().take(", "text cutting (kailin_core::cut_chars)"),
        ("kailin_lm::complete", "generation (kailin-question, kailin-answer)"),
        ("next_token_logprobs", "judging (kailin-evaluator)"),
        (".encode(", "tokenising (kailin-train::count_tokens)"),
        ("Decision::parse", "PubMedQA data (kailin-eval)"),
        ("format!(\"{} {}\", d.title", "the text a retriever reads (Document::retrieval_text)"),
    ];
    for file in rust_files(&src) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (needle, owner) in steps {
            assert!(!text.contains(needle), "{}: {needle:?} is a method step; it belongs to {owner}", file.display());
        }
        let lines = text.lines().count();
        assert!(lines <= 420, "{}: {lines} lines; the pipeline's files stay short (about 400 at most)", file.display());
    }
}
