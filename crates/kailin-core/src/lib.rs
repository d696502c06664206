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
//! refused), the stable hash ([`Fnv64`], [`digest_file`]), the seeded generator
//! ([`SplitMix64`]), the output-path check and run directories ([`check_outputs`], [`RunDir`]:
//! an output never replaces an input or a stranger's files, and two runs never share a
//! directory), and the redaction of secrets ([`register_secret`], [`redact`],
//! [`RedactingWriter`]), and the vectorisable numeric loops of the CPU kernels ([`simd`]). It
//! depends on serde, serde_json, thiserror and tempfile only.
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
mod outputs;
mod records;
mod rng;
mod secret;
pub mod simd;
mod text;
mod training;

pub use crate::{
    error::{Error, Result, json_message},
    fs::{
        AtomicDir, AtomicFile, remove_live_temporaries, remove_stale_temporaries, remove_stale_temporaries_in,
        write_atomic, write_atomic_with,
    },
    hash::{Fnv64, digest_dir, digest_file, fnv1a},
    jsonl::{JsonlAppender, JsonlReader, JsonlWriter, read_jsonl, read_jsonl_unique, write_jsonl},
    outputs::{
        RUN_LOCK, RUN_MARKER, RunDir, RunDirOptions, RunMarker, Sharing, check_output_file, check_outputs,
        describe_path, lock_file, resolve,
    },
    records::{Candidate, Context, CptRecord, Document, PreferencePair, Provenance, Question, SftRecord},
    rng::SplitMix64,
    secret::{REDACTED, RedactingWriter, redact, register_secret, strip_url_credentials},
    text::{cut_chars, cut_chars_at_word, cut_chars_marked},
    training::{
        ChatExample, CompletionExample, DpoExample, Message, QUESTION_INSTRUCTION, RetrievalPair, TextExample,
        question_prompt, question_with_context,
    },
};
