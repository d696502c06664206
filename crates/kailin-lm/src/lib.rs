//! The language-model runtime of kailin.
//!
//! So far: GGUF v3 model files, parsed with every count, length and offset checked against
//! the bytes present ([`Gguf`]), and dequantisation of F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K,
//! Q5_K and Q6_K tensors to `f32` ([`dequantize`]). The Llama-family decoder on burn, the
//! tokenizer and generation build on these.
#![deny(missing_docs)]

mod error;
mod gguf;
mod llama;
mod quant;

pub use crate::{
    error::{Error, Result},
    gguf::{Gguf, TensorInfo, Value},
    llama::{Llama, LlamaConfig},
    quant::{GgmlType, dequantize, f16_to_f32},
};
