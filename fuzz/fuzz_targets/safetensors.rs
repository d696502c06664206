//! safetensors: any bytes give a model or a typed error through `Llama::from_safetensors_bytes`
//! (burn's store over the safetensors crate), never a panic or a huge allocation.
#![no_main]

use burn::backend::Flex;
use kailin_lm::{Llama, LlamaConfig};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The architecture of the seed (fuzz/seeds/safetensors/tiny.safetensors): 1 layer, hidden 4.
    let config = LlamaConfig::new(5, 4, 6, 1, 2, 1);
    let _ = Llama::<Flex>::from_safetensors_bytes(&config, data.to_vec(), 4, &Default::default());
});
