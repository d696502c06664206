//! PubTator: any bytes give documents or a typed error, with and without skip-bad.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for skip in [false, true] {
        let reader = kailin_corpus::PubtatorReader::from_reader(data, "fuzz.pubtator").skip_bad(skip);
        for doc in reader.take(10_000) {
            let _ = doc;
        }
    }
});
