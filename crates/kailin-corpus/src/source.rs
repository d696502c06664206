//! One entry point over every reader: detect a file's format and stream its documents.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use kailin_core::{Document, JsonlReader, Question};

use crate::error::{Error, Result, Skipped};
use crate::{PubmedReader, PubtatorReader, read_bioasq, read_pubmedqa};

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// PubMed / MEDLINE XML, plain or `.gz`.
    PubmedXml,
    /// PubTator.
    Pubtator,
    /// PubMedQA (`ori_pqal.json`).
    Pubmedqa,
    /// A BioASQ golden batch.
    Bioasq,
    /// JSON Lines of `kailin_core::Document`.
    Jsonl,
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "pubmed" | "pubmed-xml" | "xml" => Source::PubmedXml,
            "pubtator" => Source::Pubtator,
            "pubmedqa" => Source::Pubmedqa,
            "bioasq" => Source::Bioasq,
            "jsonl" | "documents" => Source::Jsonl,
            other => return Err(format!("unknown format {other:?} (pubmed, pubtator, pubmedqa, bioasq, jsonl)")),
        })
    }
}

/// Guesses a file's format from its first bytes.
pub fn detect_source(path: impl AsRef<Path>) -> Result<Source> {
    let path = path.as_ref();
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .map_err(|source| Error::Io { path: path.to_owned(), source })?;
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Source::PubmedXml);
    }
    let text = String::from_utf8_lossy(&head);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    let first_line = t.lines().next().unwrap_or("");
    Ok(if t.starts_with('<') {
        Source::PubmedXml
    } else if first_line.contains("|t|") || first_line.contains("|a|") {
        Source::Pubtator
    } else if t.starts_with('{') && t[1..].trim_start().starts_with("\"questions\"") {
        Source::Bioasq
    } else if keyed_by_pmid(t) {
        Source::Pubmedqa
    } else if t.starts_with('{') {
        // Decided by the first key, never by where the first line ends (a record longer than
        // the bytes looked at is still JSON Lines).
        Source::Jsonl
    } else {
        return Err(Error::parse(path, 1, "cannot tell the format: pass it explicitly"));
    })
}

/// `{"12345": {` — a JSON object keyed by PMID, as PubMedQA ships.
fn keyed_by_pmid(t: &str) -> bool {
    let Some(rest) = t.strip_prefix('{').map(str::trim_start).and_then(|r| r.strip_prefix('"')) else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0
        && rest[digits..]
            .strip_prefix('"')
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix(':'))
            .is_some_and(|r| r.trim_start().starts_with('{'))
}

/// The documents of a file of any [`Source`] (BioASQ has questions, not documents: it yields
/// none; see [`questions`]).
pub struct DocumentStream {
    inner: Box<dyn Iterator<Item = Result<Document>>>,
    skipped: std::rc::Rc<std::cell::RefCell<Skipped>>,
}

impl std::fmt::Debug for DocumentStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentStream").field("skipped", &self.skipped.borrow().len()).finish()
    }
}

impl DocumentStream {
    /// Opens `path` as `source`; with `skip_bad`, malformed records are skipped and listed.
    pub fn open(path: impl AsRef<Path>, source: Source, skip_bad: bool) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let skipped = std::rc::Rc::new(std::cell::RefCell::new(Skipped::default()));
        let inner: Box<dyn Iterator<Item = Result<Document>>> = match source {
            Source::PubmedXml => {
                let mut reader = PubmedReader::open(&path)?.skip_bad(skip_bad);
                let sk = skipped.clone();
                Box::new(std::iter::from_fn(move || {
                    let next = reader.next();
                    if reader.skipped().len() != sk.borrow().len() {
                        *sk.borrow_mut() = reader.skipped().clone();
                    }
                    next.map(|r| r.map(|a| a.document))
                }))
            }
            Source::Pubtator => {
                let mut reader = PubtatorReader::open(&path)?.skip_bad(skip_bad);
                let sk = skipped.clone();
                Box::new(std::iter::from_fn(move || {
                    let next = reader.next();
                    if reader.skipped().len() != sk.borrow().len() {
                        *sk.borrow_mut() = reader.skipped().clone();
                    }
                    next.map(|r| r.map(|d| d.document))
                }))
            }
            Source::Pubmedqa => {
                let (records, sk) = read_pubmedqa(&path, skip_bad)?;
                *skipped.borrow_mut() = sk;
                Box::new(records.into_iter().map(|r| Ok(r.document())))
            }
            Source::Bioasq => Box::new(std::iter::empty()),
            Source::Jsonl => {
                let reader = JsonlReader::<Document>::open(&path)?;
                let sk = skipped.clone();
                Box::new(reader.filter_map(move |r| match r {
                    Ok(d) => Some(Ok(d)),
                    Err(e) => match sk.borrow_mut().handle(skip_bad, e.into()) {
                        Ok(()) => None,
                        Err(e) => Some(Err(e)),
                    },
                }))
            }
        };
        Ok(DocumentStream { inner, skipped })
    }

    /// Records skipped so far.
    pub fn skipped(&self) -> Skipped {
        self.skipped.borrow().clone()
    }
}

impl Iterator for DocumentStream {
    type Item = Result<Document>;
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

/// The gold questions of a PubMedQA or BioASQ file.
pub fn questions(path: impl AsRef<Path>, source: Source, skip_bad: bool) -> Result<(Vec<Question>, Skipped)> {
    let path = path.as_ref();
    match source {
        Source::Pubmedqa => read_pubmedqa(path, skip_bad).map(|(r, s)| (r.iter().map(|r| r.question()).collect(), s)),
        Source::Bioasq => read_bioasq(path, skip_bad).map(|(r, s)| (r.iter().map(|q| q.question()).collect(), s)),
        _ => Err(Error::parse(path, 0, "only PubMedQA and BioASQ files hold questions")),
    }
}

/// Counts over a stream of documents: what `kailin data stats` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Documents seen.
    pub documents: usize,
    /// Documents with a non-empty text.
    pub with_text: usize,
    /// Documents with at least one MeSH heading.
    pub with_mesh: usize,
    /// Documents with both.
    pub with_text_and_mesh: usize,
    /// Documents by publication year.
    pub years: BTreeMap<u16, usize>,
    /// Documents per MeSH heading.
    pub mesh: HashMap<String, usize>,
    /// Total characters of text.
    pub text_chars: usize,
}

impl Stats {
    /// Counts one document.
    pub fn add(&mut self, d: &Document) {
        self.documents += 1;
        let (text, mesh) = (!d.text.trim().is_empty(), !d.mesh.is_empty());
        self.with_text += usize::from(text);
        self.with_mesh += usize::from(mesh);
        self.with_text_and_mesh += usize::from(text && mesh);
        if let Some(y) = d.year {
            *self.years.entry(y).or_default() += 1;
        }
        for m in &d.mesh {
            *self.mesh.entry(m.clone()).or_default() += 1;
        }
        self.text_chars += d.text.chars().count();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection() {
        let dir = tempfile::tempdir().unwrap();
        let check = |name: &str, text: &str, want: Source| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            assert_eq!(detect_source(&p).unwrap(), want, "{name}");
        };
        check("a.json", "{\"123\": {\"QUESTION\": \"q\"}}", Source::Pubmedqa);
        check("b.jsonl", "{\"id\": \"1\", \"text\": \"t\"}\n", Source::Jsonl);
        check("c.json", "{\n  \"questions\": []}", Source::Bioasq);
        check("d.txt", "1|t|Title\n1|a|Abstract\n", Source::Pubtator);
        check("e.xml", "<?xml version=\"1.0\"?><PubmedArticleSet/>", Source::PubmedXml);
        // A first record longer than the bytes looked at is still JSON Lines.
        let long = format!("{{\"id\": \"1\", \"text\": \"{}\"}}\n", "word ".repeat(5000));
        check("g.jsonl", &long, Source::Jsonl);
        check("h.json", "{\n    \"21645374\": {\n \"QUESTION\": \"q\"}}", Source::Pubmedqa);
        let p = dir.path().join("f.txt");
        std::fs::write(&p, "plain words").unwrap();
        assert!(detect_source(&p).is_err());
    }
}
