//! PubMedQA (`ori_pqal.json`: PMID → record) and its official test split.

use std::collections::BTreeSet;
use std::path::Path;

use kailin_core::{Document, Question};
use serde::Deserialize;

use crate::error::{Error, Result, Skipped};

/// One PubMedQA record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubmedqaRecord {
    /// The PMID.
    pub pmid: String,
    /// The question (the article's title, as a question).
    pub question: String,
    /// Abstract sections without the conclusion.
    pub contexts: Vec<String>,
    /// Section labels, parallel to `contexts`.
    pub labels: Vec<String>,
    /// MeSH headings by name.
    pub meshes: Vec<String>,
    /// Publication year.
    pub year: Option<u16>,
    /// The conclusion (the long answer).
    pub long_answer: String,
    /// `yes`, `no` or `maybe`.
    pub final_decision: String,
}

impl PubmedqaRecord {
    /// The record as a document: contexts joined, MeSH names, year; source `pubmedqa`.
    pub fn document(&self) -> Document {
        Document {
            id: self.pmid.clone(),
            title: String::new(),
            text: self.contexts.join("\n"),
            mesh: self.meshes.clone(),
            year: self.year,
            source: "pubmedqa".into(),
        }
    }

    /// The record's question (a gold question, without provenance).
    pub fn question(&self) -> Question {
        Question {
            id: format!("pubmedqa-{}", self.pmid),
            text: self.question.clone(),
            doc_id: Some(self.pmid.clone()),
            kind: Some("yesno".into()),
            provenance: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", expecting = "a PubMedQA record (an object with QUESTION, CONTEXTS, …)")]
struct Raw {
    question: Option<String>,
    #[serde(default)]
    contexts: Vec<String>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    meshes: Vec<String>,
    year: Option<String>,
    #[serde(default)]
    long_answer: String,
    #[serde(rename = "final_decision")]
    final_decision: Option<String>,
}

/// Parses a whole JSON document from `reader` (a leading byte-order mark skipped); errors name
/// `path` and the line.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(mut reader: impl std::io::Read, path: &Path) -> Result<T> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(|source| Error::Io { path: path.to_owned(), source })?;
    let body = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&bytes);
    serde_json::from_slice(body)
        .map_err(|e| Error::parse(path, e.line() as u64, format!("malformed JSON: {}", kailin_core::json_message(&e))))
}

pub(crate) fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_owned(), source })
}

/// Reads `ori_pqal.json` (a JSON object keyed by PMID), in PMID order. With `skip_bad`,
/// records without a question or decision are skipped and listed in the returned summary.
pub fn read_pubmedqa(path: impl AsRef<Path>, skip_bad: bool) -> Result<(Vec<PubmedqaRecord>, Skipped)> {
    let path = path.as_ref();
    read_pubmedqa_from(open(path)?, path, skip_bad)
}

/// [`read_pubmedqa`] from any reader; `name` stands for the file in errors.
pub fn read_pubmedqa_from(
    reader: impl std::io::Read,
    name: impl AsRef<Path>,
    skip_bad: bool,
) -> Result<(Vec<PubmedqaRecord>, Skipped)> {
    let path = name.as_ref();
    let raw: std::collections::BTreeMap<String, Raw> = read_json(reader, path)?;
    let mut out = Vec::with_capacity(raw.len());
    let mut skipped = Skipped::default();
    for (pmid, r) in raw {
        let (Some(question), Some(final_decision)) = (r.question, r.final_decision) else {
            skipped.handle(skip_bad, Error::parse(path, 0, format!("record {pmid}: no QUESTION or final_decision")))?;
            continue;
        };
        let year = r.year.as_deref().and_then(|y| y.trim().parse().ok());
        out.push(PubmedqaRecord {
            pmid,
            question,
            contexts: r.contexts,
            labels: r.labels,
            meshes: r.meshes,
            year,
            long_answer: r.long_answer,
            final_decision,
        });
    }
    Ok((out, skipped))
}

/// Reads the official test split (`test_ground_truth.json`: PMID → label): its PMIDs.
pub fn read_pubmedqa_test_ids(path: impl AsRef<Path>) -> Result<BTreeSet<String>> {
    let path = path.as_ref();
    let raw: std::collections::BTreeMap<String, String> = read_json(open(path)?, path)?;
    Ok(raw.into_keys().collect())
}
