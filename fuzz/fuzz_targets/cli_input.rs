//! The command line and the `--pairs` / `--sets` readers of `kailin mesh`: any bytes give a
//! parsed command, parsed lines or a typed error, never a panic. The first byte picks what the
//! rest is: command-line arguments (one per line), a pairs file or a sets file.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

fn mesh() -> &'static kailin_mesh::Mesh {
    static MESH: OnceLock<kailin_mesh::Mesh> = OnceLock::new();
    MESH.get_or_init(|| {
        kailin_mesh::read_tsv(include_str!("../../fixtures/mesh/mini.tsv"), "mini.tsv").expect("the fixture loads")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let lines: Vec<(usize, String)> =
        text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r').to_owned())).collect();
    match mode % 3 {
        0 => {
            let args: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();
            let _ = kailin_cli::fuzzing::parse_args(&args);
        }
        1 => {
            let _ = kailin_cli::fuzzing::parse_pairs(mesh(), &lines, Path::new("fuzz.tsv"));
        }
        _ => {
            let _ = kailin_cli::fuzzing::parse_sets(mesh(), &lines, Path::new("fuzz.tsv"));
        }
    }
});
