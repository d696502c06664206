//! GGUF: any bytes give a model file or a typed error, never a panic or a huge allocation;
//! every tensor of a file that parses can be dequantised.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(g) = kailin_lm::Gguf::from_bytes(data.to_vec(), "fuzz.gguf") {
        let names: Vec<String> = g.tensors().iter().map(|t| t.name.clone()).collect();
        for name in names {
            let _ = g.dequantize(&name);
        }
    }
});
