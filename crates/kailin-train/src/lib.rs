//! Trainers of kailin on burn: continued pre-training ([`cpt`]), supervised fine-tuning
//! ([`sft`]) and direct preference optimisation ([`dpo`]) of a `kailin-lm` [`Llama`], generic
//! over burn's autodiff backends (`Autodiff<Flex>` on the CPU, `Autodiff<Cuda>` with the
//! `cuda` feature).
//!
//! Datasets are JSON Lines in `kailin-core`'s training shapes ([`read_text_dataset`],
//! [`read_sft_dataset`], [`read_dpo_dataset`]), encoded into token rows whose every predicted
//! token carries a weight ([`encode_texts`] packs texts, optionally isolated from each other;
//! [`encode_sft`] and [`encode_pairs`] weigh prompt tokens 0). One loop serves the three
//! objectives: seeded shuffling, gradient accumulation, global-norm clipping, [`AdamW`] on a
//! warmup + cosine schedule, periodic evaluation, and a typed stop on a non-finite loss;
//! it reports every step to a callback ([`Progress`]) and draws nothing itself.
//! Full fine-tuning, or LoRA through `kailin-lm` ([`Llama::with_lora`], merged for export by
//! [`Llama::merge_lora`] and written by [`Llama::save_hf_dir`]). [`CheckpointOptions`] makes a
//! run write checkpoints it can resume from exactly (same losses as an uninterrupted run).
//!
//! [`train_encoder`] fine-tunes a `kailin-retrieval` sentence encoder on question–passage
//! pairs ([`RetrievalPair`]) with a symmetric InfoNCE loss ([`info_nce`]) over in-batch and
//! hard negatives ([`mine_bm25_negatives`]): the paper's domain embedding, written back with
//! `Encoder::save_dir`.
//!
//! The losses are plain tensor functions, usable alone:
//!
//! ```
//! use burn::backend::Flex;
//! use burn::prelude::*;
//! use kailin_train::dpo_loss;
//!
//! let t = |v: [f32; 2]| Tensor::<Flex, 1>::from_data(TensorData::new(v.to_vec(), [2]), &Default::default());
//! // A policy that still equals its reference: the loss is ln 2.
//! let out = dpo_loss(t([-12.0, -3.5]), t([-13.0, -9.0]), t([-12.0, -3.5]), t([-13.0, -9.0]), 0.1, 2);
//! assert!((out.loss.into_scalar() - std::f32::consts::LN_2).abs() < 1e-6);
//! ```
//!
//! [`Llama`]: kailin_lm::Llama
//! [`Llama::with_lora`]: kailin_lm::Llama::with_lora
//! [`Llama::merge_lora`]: kailin_lm::Llama::merge_lora
//! [`Llama::save_hf_dir`]: kailin_lm::Llama::save_hf_dir
#![deny(missing_docs)]

mod budget;
mod checkpoint;
mod contrastive;
pub mod cpt;
mod data;
pub mod dpo;
mod encode;
mod error;
mod job;
mod lm;
mod loss;
mod native;
mod optim;
pub mod sft;
mod trainer;

pub use crate::{
    budget::{count_tokens, to_token_budget},
    checkpoint::{CheckpointOptions, latest_checkpoint},
    contrastive::{
        EncoderProgress, EncoderTrainOptions, EncoderTrainReport, InfoNce, PreparedPairs, dedup_pairs, info_nce,
        mine_bm25_negatives, prepare_pairs, sample_pairs, train_encoder,
    },
    data::{
        ChatExample, CompletionExample, Dataset, DpoExample, Lined, Message, RetrievalPair, SftExample, TextExample,
        read_dpo_dataset, read_pairs_dataset, read_sft_dataset, read_text_dataset,
    },
    dpo::DpoOptions,
    encode::{
        Encoded, Overlong, Packing, PairRows, Row, TextEncoder, encode_pairs, encode_sft, encode_texts,
        prompt_completion_ids,
    },
    error::{Error, Result},
    job::{Job, JobOutcome, Objective, check_resumable, run_job},
    loss::{DpoOutput, dpo_loss, lm_loss, sequence_logprobs, token_logprobs},
    optim::{AdamW, AdamWConfig, clip_scale, grad_norm, learning_rate},
    trainer::{Progress, StepLog, TrainOptions, TrainReport},
};
