//! The language-model runtime of kailin: Llama-family decoders (Llama 2/3, Mistral, Qwen2,
//! SmolLM) on burn, generic over the backend (`Flex` on the CPU, `Cuda` with the `cuda`
//! feature).
//!
//! - Weights from Hugging Face directories ([`Llama::from_hf_dir`]: `config.json` and
//!   safetensors, single or sharded, f32/f16/bf16, through burn's store and [`hf_name_map`]) or
//!   from GGUF files ([`Gguf`], parsed with every count, length and offset checked;
//!   [`dequantize`] for F32…Q6_K; [`Llama::from_gguf`]).
//! - [`Tokenizer`] from `tokenizer.json` or GGUF metadata, and the model's [`ChatTemplate`].
//! - [`generate_batch`] (KV cache, left-padded batches, [`Sampler`] per sequence, stop tokens,
//!   streaming; [`generate_continuous`] refills finished sequences' slots with waiting
//!   prompts), [`complete`] for text with stop strings, and [`score`] for log-probabilities.
//!   On `Flex` these three run on the crate's own CPU kernels (packed prompts, fused
//!   projections, per-sequence KV caches; `KAILIN_LM_KERNELS=burn` keeps burn's ops), with the
//!   same results as burn's path; a GGUF model's decoding steps (up to 4 sequences) multiply
//!   the file's own quantised blocks (equal to the f32 products to rounding), and identical prompts or a
//!   prefix common to a call's prompts run once. LoRA training runs there too: [`training_pass`] keeps a
//!   [`Tape`] whose [`backward`](Tape::backward) gives the adapters' gradients of any loss of
//!   the scored log-probabilities (what `kailin-train` uses on `Flex`).
//! - [`PromptTemplate`]: an agent's prompt as a Jinja file, versioned by its content.
//! - [`ServedModel`]: the same roles on any OpenAI-compatible server (vLLM, SGLang,
//!   llama.cpp's server, Ollama, hosted APIs): retries, a response cache, token accounting
//!   and a preflight of the server's model list.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use kailin_lm::{ChatMessage, CompletionOptions};
//!
//! let device = Default::default();
//! // A GGUF file or a Hugging Face directory.
//! let (model, _config, tokenizer) = kailin_lm::load::<Flex>("SmolLM2-135M-Instruct.Q4_1.gguf", 2048, &device)?;
//! let prompt = kailin_lm::chat_prompt(&tokenizer, &[ChatMessage::user("What is the capital of France?")])?;
//! let answers = kailin_lm::complete(&model, &tokenizer, &[prompt], &CompletionOptions::default())?;
//! assert_eq!(answers[0].text, "The capital of France is Paris.");
//! // log p(" Paris" | "The capital of France is")
//! let (p, c) = (tokenizer.encode("The capital of France is", true)?, tokenizer.encode(" Paris", false)?);
//! let logp = kailin_lm::score(&model, &[(p, c)])?[0].total;
//! # let _ = logp;
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
mod native;
mod prompt;
mod quant;
mod sampler;
mod score;
mod served;
#[cfg(test)]
mod test_seed;
mod tokenizer;

pub use crate::{
    chat::{ChatMessage, ChatTemplate},
    complete::{Completion, CompletionOptions, FinishReason, chat_prompt, complete, complete_with},
    device::{cuda_compiled, on_cpu_threads},
    error::{Error, Result},
    generate::{every_token, generate, generate_batch, generate_continuous},
    gguf::{Gguf, GgufTensorInfo, GgufValue},
    llama::{
        HfTensor, KvCache, LORA_TARGETS, Llama, LlamaConfig, Lora, LoraConfig, Part, QkOrder, RopeScaling, Weight,
        hf_name_map, reorder_qk_rows,
    },
    models::{load, model_digest, models_dir, smollm2_gguf},
    native::{LoraGradient, Tape, TrainSequence, training_pass},
    prompt::PromptTemplate,
    quant::{GgmlType, dequantize, f16_to_f32},
    sampler::Sampler,
    score::{Score, next_token_logprobs, score},
    served::{
        ChatRequest, ClientStats, Hints, Reply, ResponseCache, ServedModel, ServedModelBuilder, ServedOptions, Usage,
    },
    tokenizer::{TextStream, Tokenizer},
};
