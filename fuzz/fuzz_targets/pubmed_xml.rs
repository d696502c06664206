//! PubMed XML: any bytes give articles or a typed error, never a panic or a hang.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for article in kailin_corpus::PubmedReader::from_reader(data, "fuzz.xml").take(10_000) {
        let _ = article;
    }
});
