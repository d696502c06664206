//! GGUF: any bytes give a model file or a typed error, never a panic or a huge allocation;
//! every tensor of a file that parses can be dequantised, and a model and tokenizer built from
//! it are built or refused (metadata that disagrees with the tensors, from the seed's edits).
#![no_main]

use burn::backend::Flex;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(g) = kailin_lm::Gguf::from_bytes(data.to_vec(), "fuzz.gguf") {
        let names: Vec<String> = g.tensors().iter().map(|t| t.name.clone()).collect();
        for name in names {
            let _ = g.dequantize(&name);
        }
        let _ = kailin_lm::Llama::<Flex>::from_gguf(&g, 32, &Default::default());
        let _ = kailin_lm::Tokenizer::from_gguf(&g);
    }
});
