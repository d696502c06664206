//! Helpers shared by the kailin examples (data paths, formatting). Not a library to depend on.

use std::path::PathBuf;

/// The shared data directory: `$KAILIN_DATA`, else `../shared/data` beside the repository.
pub fn data_dir() -> PathBuf {
    std::env::var_os("KAILIN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
}

/// MeSH 2024 from the data directory if present, else the hand-made fixture hierarchy.
pub fn default_mesh_path() -> PathBuf {
    let real = data_dir().join("mesh/mesh2024.tsv");
    if real.exists() { real } else { PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/mesh/mini.tsv") }
}

/// `s` cut to at most `n` characters, with an ellipsis when cut.
pub fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { s.chars().take(n - 1).chain(['…']).collect() }
}
