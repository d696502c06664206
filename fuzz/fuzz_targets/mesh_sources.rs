//! The MeSH source formats (TSV, ASCII trees, descriptor XML) on arbitrary text.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kailin_mesh::read_tsv(text, "fuzz.tsv");
        let _ = kailin_mesh::read_mtrees(text, "fuzz.bin");
    }
    let _ = kailin_mesh::read_xml(data, "fuzz.xml");
});
