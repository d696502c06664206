//! Dense retrieval for kailin: the context-retrieval agent's engine.
//!
//! - [`Encoder`]: a BERT encoder on burn ([`Bert`], generic over the backend) loaded from a
//!   Hugging Face directory (safetensors through burn's store with [`BERT_NAME_MAP`];
//!   `tokenizer.json` or `vocab.txt`), CLS or mean [`Pooling`], optional L2 normalisation,
//!   length-sorted batches with dynamic padding.
//! - [`Store`]: sharded, append-only, memory-mapped f32/f16 vectors with their ids and the
//!   encoder's identity ([`StoreBuilder`] → [`StoreWriter`], resumable; [`import_npy`] for
//!   precomputed embeddings).
//! - [`ExactSearch`]: exact top-k by inner product, a blocked GEMM with the selection fused
//!   per block, over threads; [`search_backend`] does the same on any burn backend (GPU).
//! - [`Retriever`]: the seam other engines plug into ([`DenseRetriever`], [`Bm25Retriever`],
//!   and [`HybridRetriever`], the two fused by reciprocal rank).
//! - Training support: [`Encoder::embed_ids`] (burn's differentiable path, for contrastive
//!   fine-tuning in `kailin-train`) and [`Encoder::save_dir`] (a sentence-transformers model
//!   directory).
//!
//! ```
//! use kailin_retrieval::{ExactSearch, StoreBuilder};
//! use ndarray::array;
//!
//! let dir = tempfile::tempdir()?;
//! let mut writer = StoreBuilder::new(dir.path(), 2).shard_rows(2).build()?;
//! for (id, v) in [("a", [1.0, 0.0]), ("b", [0.0, 1.0]), ("c", [0.6, 0.8])] {
//!     writer.push(id, &v)?;
//! }
//! let store = writer.finish()?;
//! let hits = store.search(&ExactSearch::new(1)?, array![[0.0f32, 1.0]].view(), 2)?;
//! let ids: Vec<_> = hits[0].iter().map(|h| store.id(h.row).unwrap()).collect();
//! assert_eq!(ids, ["b", "c"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod backend_search;
mod bert;
mod build;
mod encoder;
mod error;
mod exact;
mod export;
mod hybrid;
mod npy;
mod retriever;
mod store;
mod tokenizer;
mod topk;

pub use crate::{
    backend_search::search_backend,
    bert::{BERT_EXPORT_NAMES, BERT_NAME_MAP, Bert, BertConfig},
    build::build_store,
    encoder::{Encoder, EncoderBuilder, Pooling},
    error::{Error, Result},
    exact::{ExactSearch, Vectors},
    hybrid::HybridRetriever,
    npy::{NpyMatrix, import_npy},
    retriever::{AnyRetriever, Bm25Retriever, DenseRetriever, Retrieved, Retriever},
    store::{Dtype, MANIFEST, Store, StoreBuilder, StoreWriter},
    tokenizer::BertTokenizer,
    topk::{Hit, TopK, merge_hits},
};
