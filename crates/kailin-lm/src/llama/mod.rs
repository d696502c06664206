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
mod names;
mod rope;
mod safetensors_weights;
mod step;

pub(crate) use self::{
    attention::Attention, block::Block, linear::Linear, lora::InAdapter, mlp::Mlp, names::gguf_name, rope::Rope,
    step::Step,
};
pub use self::{
    cache::KvCache,
    config::{LlamaConfig, RopeScaling},
    export::HfTensor,
    gguf_weights::{QkOrder, reorder_qk_rows},
    lora::{Lora, LoraConfig},
    model::Llama,
    names::{LORA_TARGETS, Part, Weight, hf_name_map},
};
