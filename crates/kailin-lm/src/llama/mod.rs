//! The Llama-family decoder (Llama 2/3, Mistral, Qwen2, SmolLM) on burn, generic over the
//! backend.

mod attention;
mod block;
mod cache;
mod config;
mod export;
mod gguf_weights;
mod linear;
mod lora;
mod mlp;
mod model;
mod rope;
mod safetensors_weights;
mod step;

pub(crate) use self::export::write_atomic;
pub(crate) use self::{attention::Attention, block::Block, linear::Linear, mlp::Mlp, rope::Rope, step::Step};
pub use self::{
    cache::KvCache,
    config::{LlamaConfig, RopeScaling},
    export::HfTensor,
    lora::{LORA_TARGETS, Lora, LoraConfig},
    model::Llama,
    safetensors_weights::HF_NAME_MAP,
};
