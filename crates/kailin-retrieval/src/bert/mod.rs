//! A BERT encoder (`BertModel`) on burn: embeddings, post-norm transformer layers, and
//! Hugging Face safetensors loading.

mod attention;
mod config;
mod embeddings;
mod layer;
mod model;
mod native;
mod weights;

pub use config::BertConfig;
pub use model::Bert;
pub(crate) use native::NativeBert;
pub use weights::{BERT_EXPORT_NAMES, BERT_NAME_MAP};
