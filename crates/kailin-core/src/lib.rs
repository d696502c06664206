//! Shared record types of the kailin pipeline and their JSON Lines I/O.
//!
//! Every stage of m-KAILIN reads and writes these records: [`Document`]s (abstracts with MeSH
//! headings), [`Question`]s, [`Context`]s, [`PreferencePair`]s for DPO, and the [`CptRecord`]
//! and [`SftRecord`] datasets. Every generated record carries its [`Provenance`]. Files are
//! JSON Lines, read in constant memory ([`JsonlReader`], errors name file and line) and
//! written atomically ([`JsonlWriter`]). The shapes training tools read ([`DpoExample`],
//! [`ChatExample`], [`CompletionExample`], [`TextExample`]) and the prompts that fill them are
//! records too.
//!
//! It is also the one home of the mechanisms every crate shares, so each exists once: the
//! atomic writer ([`AtomicFile`], [`AtomicDir`], [`write_atomic`]: a unique temporary name
//! beside the destination, renamed on commit, removed on error; non-regular destinations
//! refused), the stable hash ([`Fnv64`]) and the seeded generator ([`SplitMix64`]). It depends
//! on serde, serde_json, thiserror and tempfile only.
//!
//! ```
//! use kailin_core::{Document, read_jsonl, write_jsonl};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("docs.jsonl");
//! let doc = Document { id: "1".into(), text: "Levodopa in Parkinson disease.".into(), ..Default::default() };
//! write_jsonl(&path, [&doc])?;
//! assert_eq!(read_jsonl::<Document>(&path)?, vec![doc]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod error;
mod fs;
mod hash;
mod jsonl;
mod records;
mod rng;
mod training;

pub use crate::{
    error::{Error, Result},
    fs::{
        AtomicDir, AtomicFile, remove_live_temporaries, remove_stale_temporaries, remove_stale_temporaries_in,
        write_atomic, write_atomic_with,
    },
    hash::{Fnv64, fnv1a},
    jsonl::{JsonlAppender, JsonlReader, JsonlWriter, read_jsonl, write_jsonl},
    records::{Candidate, Context, CptRecord, Document, PreferencePair, Provenance, Question, SftRecord},
    rng::SplitMix64,
    training::{
        ChatExample, CompletionExample, DpoExample, Message, QUESTION_INSTRUCTION, TextExample, question_prompt,
        question_with_context,
    },
};
