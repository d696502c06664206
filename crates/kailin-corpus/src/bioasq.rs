//! BioASQ Task B golden batches (`{"questions": [...]}`).

use std::path::Path;

use kailin_core::{Document, Question};
use serde::Deserialize;

use crate::error::{Error, Result, Skipped};

/// A snippet: gold evidence text and the PMID it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// The text.
    pub text: String,
    /// PMID of its document.
    pub pmid: String,
}

impl Snippet {
    /// The snippet as a retrievable document: its trimmed text, id `bioasq-snippet-` and the
    /// text's stable hash (the same text has the same id in every batch), source `bioasq`, no
    /// headings (a MeSH-guided consumer extracts its terms).
    pub fn document(&self) -> Document {
        let text = self.text.trim();
        Document {
            id: format!("bioasq-snippet-{}", kailin_core::Fnv64::new().bytes(text.as_bytes()).hex()),
            text: text.to_owned(),
            source: "bioasq".into(),
            ..Default::default()
        }
    }
}

/// Every distinct snippet of `questions` (by trimmed text, the first occurrence kept; empty
/// ones left out), in order.
pub fn unique_snippets<'a>(questions: impl IntoIterator<Item = &'a BioasqQuestion>) -> Vec<&'a Snippet> {
    let mut seen = std::collections::HashSet::new();
    questions
        .into_iter()
        .flat_map(|q| &q.snippets)
        .filter(|s| !s.text.trim().is_empty() && seen.insert(s.text.trim()))
        .collect()
}

/// One BioASQ question.
#[derive(Debug, Clone, PartialEq)]
pub struct BioasqQuestion {
    /// BioASQ id.
    pub id: String,
    /// The question.
    pub body: String,
    /// `factoid`, `yesno`, `list` or `summary`.
    pub kind: String,
    /// PMIDs of the relevant documents.
    pub documents: Vec<String>,
    /// Gold snippets.
    pub snippets: Vec<Snippet>,
    /// Ideal (paragraph) answers.
    pub ideal_answer: Vec<String>,
    /// Exact answer as given (a string, a list, or a list of synonym lists); `Null` for
    /// summary questions.
    pub exact_answer: serde_json::Value,
}

impl BioasqQuestion {
    /// The question as a gold record.
    pub fn question(&self) -> Question {
        Question {
            id: format!("bioasq-{}", self.id),
            text: self.body.clone(),
            doc_id: self.documents.first().cloned(),
            kind: Some(self.kind.clone()),
            provenance: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(expecting = "a BioASQ file (an object with a \"questions\" list)")]
struct RawFile {
    questions: Vec<RawQuestion>,
}

#[derive(Deserialize)]
#[serde(expecting = "a BioASQ question (an object with id, body, type, …)")]
struct RawQuestion {
    id: Option<String>,
    body: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    documents: Vec<String>,
    #[serde(default)]
    snippets: Vec<RawSnippet>,
    #[serde(default)]
    ideal_answer: OneOrMany,
    #[serde(default)]
    exact_answer: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(expecting = "a BioASQ snippet (an object with text and document)")]
struct RawSnippet {
    #[serde(default)]
    text: String,
    #[serde(default)]
    document: String,
}

#[derive(Deserialize, Default)]
#[serde(untagged, expecting = "a string or a list of strings")]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
    #[default]
    None,
}

/// The PMID at the end of a PubMed URL (`http://www.ncbi.nlm.nih.gov/pubmed/28293123`), or the
/// string itself when it is already one.
pub fn pmid_of(url: &str) -> String {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url).to_owned()
}

/// Reads one golden batch file. With `skip_bad`, questions without an id, body or type are
/// skipped and listed in the returned summary.
pub fn read_bioasq(path: impl AsRef<Path>, skip_bad: bool) -> Result<(Vec<BioasqQuestion>, Skipped)> {
    let path = path.as_ref();
    read_bioasq_from(crate::pubmedqa::open(path)?, path, skip_bad)
}

/// [`read_bioasq`] from any reader; `name` stands for the file in errors.
pub fn read_bioasq_from(
    reader: impl std::io::Read,
    name: impl AsRef<Path>,
    skip_bad: bool,
) -> Result<(Vec<BioasqQuestion>, Skipped)> {
    let path = name.as_ref();
    let raw: RawFile = crate::pubmedqa::read_json(reader, path)?;
    let mut out = Vec::with_capacity(raw.questions.len());
    let mut skipped = Skipped::default();
    for (i, q) in raw.questions.into_iter().enumerate() {
        let (Some(id), Some(body), Some(kind)) = (q.id, q.body, q.kind) else {
            skipped.handle(skip_bad, Error::parse(path, 0, format!("question #{} has no id, body or type", i + 1)))?;
            continue;
        };
        out.push(BioasqQuestion {
            id,
            body,
            kind,
            documents: q.documents.iter().map(|d| pmid_of(d)).collect(),
            snippets: q.snippets.into_iter().map(|s| Snippet { pmid: pmid_of(&s.document), text: s.text }).collect(),
            ideal_answer: match q.ideal_answer {
                OneOrMany::One(s) => vec![s],
                OneOrMany::Many(v) => v,
                OneOrMany::None => Vec::new(),
            },
            exact_answer: q.exact_answer,
        });
    }
    Ok((out, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question(snippets: &[&str]) -> BioasqQuestion {
        BioasqQuestion {
            id: "q".into(),
            body: "Is it?".into(),
            kind: "yesno".into(),
            documents: vec![],
            snippets: snippets.iter().map(|t| Snippet { text: (*t).into(), pmid: "1".into() }).collect(),
            ideal_answer: vec![],
            exact_answer: serde_json::Value::Null,
        }
    }

    #[test]
    fn snippets_are_kept_once_by_trimmed_text_with_stable_ids() {
        let qs = [question(&["A b.", " ", "C d."]), question(&["A b. ", "E f."])];
        let unique: Vec<&str> = unique_snippets(&qs).iter().map(|s| s.text.as_str()).collect();
        assert_eq!(unique, ["A b.", "C d.", "E f."]);
        let (a, b) = (qs[0].snippets[0].document(), qs[1].snippets[0].document());
        assert_eq!((a.id.clone(), a.text.as_str(), a.source.as_str()), (b.id, "A b.", "bioasq"));
        assert!(a.id.starts_with("bioasq-snippet-") && a.mesh.is_empty());
        assert_ne!(a.id, qs[0].snippets[2].document().id);
    }
}
