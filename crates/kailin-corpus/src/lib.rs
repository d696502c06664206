//! Biomedical corpora in, clean training data out.
//!
//! Streaming readers for the formats the field already uses, each error naming the file and
//! the line or byte offset at fault:
//!
//! - PubMed / MEDLINE XML ([`PubmedReader`], plain or `.gz`): PMID, title, labelled abstract
//!   sections, MeSH headings with major-topic flags, publication year;
//! - PubTator ([`PubtatorReader`]): documents with their mention annotations and relations;
//! - PubMedQA ([`read_pubmedqa`], [`read_pubmedqa_test_ids`] for the official test split);
//! - BioASQ golden batches ([`read_bioasq`]): questions, snippets, ideal and exact answers.
//!
//! PubMed XML and PubTator stream in constant memory; PubMedQA and BioASQ ship as single JSON
//! documents (megabytes) and are read whole. With `skip_bad`, a malformed record is skipped
//! and listed in a [`Skipped`] summary instead of failing the file.
//!
//! [`ingest`] reads a user's corpus — a file or a directory of any of these — as one stream,
//! each id once in its last version, PubMed's `DeleteCitation`s applied, corrupt files listed
//! and skipped.
//!
//! Records come out as [`kailin_core`] types.
//!
//! ```
//! use kailin_corpus::PubmedReader;
//! let xml = r#"<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article>
//!   <ArticleTitle>Levodopa in <i>Parkinson</i> disease.</ArticleTitle>
//!   <Abstract><AbstractText Label="AIM">Test &amp; see.</AbstractText></Abstract></Article>
//!   <MeshHeadingList><MeshHeading><DescriptorName UI="D010300" MajorTopicYN="Y">Parkinson Disease</DescriptorName>
//!   </MeshHeading></MeshHeadingList></MedlineCitation></PubmedArticle></PubmedArticleSet>"#;
//! let mut reader = PubmedReader::from_reader(xml.as_bytes(), "inline.xml");
//! let article = reader.next().unwrap()?;
//! assert_eq!(article.document.title, "Levodopa in Parkinson disease.");
//! assert_eq!(article.document.text, "AIM: Test & see.");
//! assert_eq!(article.document.mesh, ["D010300"]);
//! assert!(article.headings[0].major);
//! # Ok::<(), kailin_corpus::Error>(())
//! ```
#![deny(missing_docs)]

mod bioasq;
mod decontaminate;
mod dedup;
mod error;
mod ingest;
mod ngram;
mod pairs;
mod pubmed;
mod pubmedqa;
mod pubtator;
mod shard;
mod source;

pub use crate::{
    bioasq::{BioasqQuestion, Snippet, pmid_of, read_bioasq, read_bioasq_from, unique_snippets},
    decontaminate::{Contamination, Decontaminator},
    dedup::Deduplicator,
    error::{Error, Result, Skipped},
    ingest::{IngestOptions, IngestReport, ingest},
    pairs::{BioasqPairs, HeldOutQuery, bioasq_pairs, pubmedqa_pairs},
    pubmed::{MeshHeading, PubmedArticle, PubmedReader},
    pubmedqa::{PubmedqaRecord, read_pubmedqa, read_pubmedqa_from, read_pubmedqa_test_ids},
    pubtator::{Mention, PubtatorDocument, PubtatorReader, Relation},
    shard::{Shard, shard_of},
    source::{DocumentStream, InputFiles, Source, Stats, detect_source, input_files, questions},
};
