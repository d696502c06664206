//! The JSON readers: PubMedQA, BioASQ and our own JSONL records.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = kailin_corpus::read_pubmedqa_from(data, "fuzz.json", true);
    let _ = kailin_corpus::read_bioasq_from(data, "fuzz.json", true);
    for record in kailin_core::JsonlReader::<kailin_core::Document, _>::new(data, "fuzz.jsonl").take(10_000) {
        let _ = record;
    }
});
