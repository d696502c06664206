//! The question-generation agents of m-KAILIN: write candidate questions from a document.
//!
//! - [`QuestionGenerator`]: the seam. Documents in, up to `n` candidate questions per
//!   document out, as `kailin-core` [`Question`](kailin_core::Question) records with their
//!   `doc_id` and provenance (agent, model, seed, prompt version), and a [`Tally`] of what was
//!   skipped and filtered.
//! - [`LocalGenerator`]: a `kailin-lm` model; the prompt is a Jinja template
//!   ([`QUESTION_TEMPLATE`] by default, any file through [`PromptTemplate`]) rendered as the
//!   user turn of the model's chat template; batched sampling with a seed per document and
//!   sample (a question never depends on its batch); each generation cleaned
//!   ([`clean_question`]) and checked ([`check_question`]): empty, not one sentence ending in
//!   `?`, a copy of the document, or a repeat of a kept question — filtered and counted.
//! - [`ServedGenerator`]: the same agent on any OpenAI-compatible server (`kailin-lm`'s
//!   [`ServedModel`](kailin_lm::ServedModel)), one request per document and sample.
//! - [`FixedGenerator`]: given questions, filtered the same way; for tests and replays.
//! - BioASQ fine-tuning data (Eq. 1): [`split_bioasq`] keeps [`HELD_OUT_BATCHES`] out (and
//!   drops training questions that repeat them), [`sft_example`] makes the SFT pairs that
//!   `kailin-train` learns. The two agents of the method differ in their starting model: the
//!   domain agent is continually pre-trained on abstracts before this fine-tuning, the general
//!   one is not.
//! - Measures: [`rouge_l`] against a gold question, [`Tally::well_formed`].
//!
//! ```
//! use kailin_core::Document;
//! use kailin_question::{FixedGenerator, QuestionGenerator};
//!
//! let doc = Document { id: "d1".into(), text: "Aspirin irreversibly inhibits platelet cyclooxygenase in adults.".into(), ..Default::default() };
//! let agent = FixedGenerator::new("general").with("d1", [
//!     "Question: What does aspirin inhibit? It inhibits COX.", // cleaned to the question
//!     "What does aspirin inhibit?",                             // a repeat: filtered
//!     "Aspirin irreversibly inhibits platelet cyclooxygenase in adults?", // a copy: filtered
//! ]);
//! let out = agent.generate(&[doc], 3)?;
//! assert_eq!(out.questions.len(), 1);
//! assert_eq!(out.questions[0].text, "What does aspirin inhibit?");
//! assert_eq!((out.tally.duplicates, out.tally.copies_document), (1, 1));
//! # Ok::<(), kailin_question::Error>(())
//! ```
#![deny(missing_docs)]

mod bioasq;
mod error;
mod filter;
mod generator;
mod served;

pub use crate::{
    bioasq::{
        BioasqSplit, HELD_OUT_BATCHES, bioasq_document, bioasq_files, read_bioasq_batches, sft_data, sft_example,
        split_bioasq,
    },
    error::{Error, Result},
    filter::{Rejection, Tally, check_question, clean_question, rouge_l, words},
    generator::{
        FixedGenerator, Generated, GenerationOptions, LocalGenerator, PromptFields, QUESTION_TEMPLATE,
        QuestionGenerator, default_template, render_prompt,
    },
    served::ServedGenerator,
};
pub use kailin_lm::PromptTemplate;
