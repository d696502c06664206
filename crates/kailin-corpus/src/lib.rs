//! Biomedical corpora in, clean training data out.
//!
//! Streaming readers for the formats the field already uses, each error naming the file and
//! the line or byte offset at fault:
//!
//! - PubMed / MEDLINE XML ([`PubmedReader`], plain or `.gz`): PMID, title, labelled abstract
//!   sections, MeSH headings with major-topic flags, publication year.
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

mod error;
mod pubmed;

pub use crate::{
    error::{Error, Result, Skipped},
    pubmed::{MeshHeading, PubmedArticle, PubmedReader},
};
