//! The language-model runtime of kailin.
//!
//! So far: GGUF v3 model files, parsed with every count, length and offset checked against
//! the bytes present ([`Gguf`]); dequantisation of F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K,
//! Q5_K and Q6_K tensors to `f32` ([`dequantize`]); and the Llama-family decoder on burn
//! ([`Llama`], generic over the backend), built from weights by Hugging Face name or straight
//! from a GGUF file. The tokenizer, KV cache and generation come next.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use burn::prelude::*;
//! use kailin_lm::{Gguf, Llama};
//!
//! let gguf = Gguf::open("SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let device = Default::default();
//! let (model, config) = Llama::<Flex>::from_gguf(&gguf, 2048, &device)?;
//! let tokens = Tensor::<Flex, 2, Int>::from_data(TensorData::new(vec![1i64, 4093, 198], [1, 3]), &device);
//! let logits = model.forward(tokens)?; // [1, 3, vocab]
//! assert_eq!(logits.dims(), [1, 3, config.vocab_size]);
//! # Ok::<(), kailin_lm::Error>(())
//! ```
#![deny(missing_docs)]

#[cfg(feature = "cuda")]
pub use crate::device::cuda_device;

mod chat;
mod complete;
mod device;
mod error;
mod generate;
mod gguf;
mod llama;
mod models;
mod quant;
mod sampler;
mod score;
mod tokenizer;

pub use crate::{
    chat::{ChatMessage, ChatTemplate},
    complete::{Completion, CompletionOptions, FinishReason, chat_prompt, complete},
    device::cuda_compiled,
    error::{Error, Result},
    generate::{generate, generate_batch},
    gguf::{Gguf, TensorInfo, Value},
    llama::{HF_NAME_MAP, KvCache, Llama, LlamaConfig, RopeScaling},
    models::{load, models_dir, smollm2_gguf},
    quant::{GgmlType, dequantize, f16_to_f32},
    sampler::Sampler,
    score::{Score, score},
    tokenizer::Tokenizer,
};
