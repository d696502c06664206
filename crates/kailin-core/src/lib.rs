//! Shared record types of the kailin pipeline and their JSON Lines I/O.
//!
//! Every stage of m-KAILIN reads and writes these records: [`Document`]s (abstracts with MeSH
//! headings), [`Question`]s, [`Context`]s, [`PreferencePair`]s for DPO, and the [`CptRecord`]
//! and [`SftRecord`] datasets. Every generated record carries its [`Provenance`]. Files are
//! JSON Lines, read in constant memory ([`JsonlReader`], errors name file and line) and
//! written atomically ([`JsonlWriter`], [`AtomicFile`]). The crate depends on serde only.
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
mod jsonl;
mod records;

pub use crate::{
    error::{Error, Result},
    jsonl::{AtomicFile, JsonlReader, JsonlWriter, read_jsonl, write_jsonl},
    records::{Candidate, Context, CptRecord, Document, PreferencePair, Provenance, Question, SftRecord},
};
