//! The answer agent of m-KAILIN: complete question + context into question + context +
//! answer, turning a CPT dataset into an SFT dataset.
//!
//! - [`AnswerGenerator`]: the seam. `kailin-core` [`CptRecord`](kailin_core::CptRecord)s in,
//!   one [`Answer`] (or error) per record out, in input order.
//! - [`LocalAnswerer`]: a `kailin-lm` model, batched, greedy by default.
//! - [`OpenAiClient`]: any OpenAI-compatible chat-completions server (vLLM, llama.cpp's
//!   server, Ollama, hosted APIs) through `kailin-lm`'s [`ServedModel`](kailin_lm::ServedModel),
//!   the one client every served role shares: base URL and model from options or the
//!   environment (`OPENAI_BASE_URL`, `OPENAI_API_KEY`; the key is never printed or logged),
//!   timeouts, retries with backoff and jitter honouring `Retry-After`, fail-fast 401/403,
//!   lenient parsing, token accounting ([`ClientStats`]) and a [`ResponseCache`] keyed by the
//!   request, so a rerun or a resumed run sends no request already answered.
//! - [`answer_all`]: a dataset through any agent, in chunks, written in input order, each
//!   record once, stopping at the first failure with an error naming the record.
//! - The prompt is a Jinja template ([`ANSWER_TEMPLATE`] by default), versioned in each
//!   record's provenance.
//!
//! ```
//! use kailin_answer::{FnAnswerer, answer_all};
//! use kailin_core::{Context, CptRecord};
//!
//! let records = vec![CptRecord {
//!     id: "r1".into(),
//!     question: "Does aspirin inhibit COX?".into(),
//!     context: Context { doc_ids: vec!["d1".into()], text: "Aspirin inhibits COX-1.".into() },
//!     ..Default::default()
//! }];
//! let agent = FnAnswerer::new("echo", |r: &CptRecord| Ok(format!("Yes: {}", r.context.text)));
//! let mut sft = Vec::new();
//! answer_all(&agent, &records, 1, 8, |r| { sft.push(r); Ok(()) }, |_done| ())?;
//! assert_eq!(sft[0].answer, "Yes: Aspirin inhibits COX-1.");
//! assert_eq!(sft[0].provenance.agent, "echo");
//! # Ok::<(), kailin_answer::Error>(())
//! ```
#![deny(missing_docs)]

mod answer;
mod drive;
mod error;
mod local;
mod openai;

pub use crate::{
    answer::{
        ANSWER_TEMPLATE, Answer, AnswerFields, AnswerGenerator, FnAnswerer, default_template, render_prompt, sft_record,
    },
    drive::{answer_all, answerable},
    error::{Error, Result},
    local::{LocalAnswerer, LocalOptions},
    openai::{OpenAiClient, OpenAiClientBuilder, OpenAiOptions},
};
pub use kailin_lm::{ClientStats, PromptTemplate, ResponseCache, Usage};
