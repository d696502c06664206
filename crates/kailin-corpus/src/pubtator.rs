//! PubTator (`PMID|t|title`, `PMID|a|abstract`, tab-separated mentions and relations), streamed
//! document by document.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use kailin_core::Document;

use crate::error::{Error, Result, Skipped};

/// An annotated mention. Offsets are in characters of `title + " " + abstract`, as in PubTator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// First character.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    /// The mention text.
    pub text: String,
    /// Entity type (`Chemical`, `Disease`…).
    pub kind: String,
    /// Normalised ids (`D009270`; composite mentions carry several, `-1` means none).
    pub ids: Vec<String>,
}

/// A relation line (`PMID<TAB>CID<TAB>D008750<TAB>D007022`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Relation type (`CID`).
    pub kind: String,
    /// The related ids.
    pub ids: Vec<String>,
}

/// One PubTator document: the [`Document`] (`mesh` = the distinct ids of its mentions, in
/// order of appearance; source `pubtator`), its mentions and relations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubtatorDocument {
    /// The document record.
    pub document: Document,
    /// Mentions, in file order.
    pub mentions: Vec<Mention>,
    /// Relations, in file order.
    pub relations: Vec<Relation>,
}

/// Streams a PubTator file.
#[derive(Debug)]
pub struct PubtatorReader<R = BufReader<File>> {
    reader: R,
    path: PathBuf,
    line: u64,
    pending: Option<String>,
    skip_bad: bool,
    skipped: Skipped,
}

impl PubtatorReader {
    /// Opens a PubTator file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        Ok(Self::from_reader(BufReader::new(file), path))
    }
}

impl<R: BufRead> PubtatorReader<R> {
    /// Reads from any buffered reader; `name` stands for the file in errors.
    pub fn from_reader(reader: R, name: impl Into<PathBuf>) -> Self {
        PubtatorReader {
            reader,
            path: name.into(),
            line: 0,
            pending: None,
            skip_bad: false,
            skipped: Skipped::default(),
        }
    }

    /// Skip (and count) malformed documents instead of failing.
    pub fn skip_bad(mut self, on: bool) -> Self {
        self.skip_bad = on;
        self
    }

    /// Documents skipped so far.
    pub fn skipped(&self) -> &Skipped {
        &self.skipped
    }

    fn next_line(&mut self) -> Result<Option<String>> {
        if let Some(l) = self.pending.take() {
            return Ok(Some(l));
        }
        let mut buf = Vec::new();
        let n =
            self.reader.read_until(b'\n', &mut buf).map_err(|source| Error::Io { path: self.path.clone(), source })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        let text = String::from_utf8(buf).map_err(|_| Error::parse(&self.path, self.line, "not UTF-8 text"))?;
        Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()))
    }

    /// Reads the lines of one document (up to a blank line or the next title line).
    fn next_document(&mut self) -> Result<Option<PubtatorDocument>> {
        let mut lines: Vec<(u64, String)> = Vec::new();
        while let Some(line) = self.next_line()? {
            if line.trim().is_empty() {
                if lines.is_empty() {
                    continue;
                }
                break;
            }
            if line.contains("|t|") && !lines.is_empty() {
                self.pending = Some(line);
                self.line -= 1;
                break;
            }
            lines.push((self.line, line));
        }
        if lines.is_empty() {
            return Ok(None);
        }
        self.parse(&lines).map(Some)
    }

    fn parse(&self, lines: &[(u64, String)]) -> Result<PubtatorDocument> {
        let bad = |line: u64, m: String| Error::parse(&self.path, line, m);
        let (first, head) = &lines[0];
        let Some((pmid, title)) = head.split_once("|t|") else {
            return Err(bad(*first, "expected a `PMID|t|title` line".into()));
        };
        if pmid.is_empty() {
            return Err(bad(*first, "title line without a PMID".into()));
        }
        let mut doc =
            Document { id: pmid.to_owned(), title: title.to_owned(), source: "pubtator".into(), ..Document::default() };
        let (mut mentions, mut relations) = (Vec::new(), Vec::new());
        for (no, line) in &lines[1..] {
            if let Some((id, text)) = line.split_once("|a|") {
                if id != pmid {
                    return Err(bad(*no, format!("abstract of {id} inside document {pmid}")));
                }
                doc.text = text.to_owned();
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            if cols[0] != pmid {
                return Err(bad(*no, format!("line of {} inside document {pmid}", cols[0])));
            }
            if cols.len() >= 6 {
                let offset =
                    |s: &str| s.parse::<usize>().map_err(|_| bad(*no, format!("offset {s:?} is not a number")));
                let (start, end) = (offset(cols[1])?, offset(cols[2])?);
                if end < start {
                    return Err(bad(*no, format!("mention ends ({end}) before it starts ({start})")));
                }
                let ids: Vec<String> = cols[5].split('|').map(str::to_owned).collect();
                for id in &ids {
                    if id != "-1" && !doc.mesh.contains(id) {
                        doc.mesh.push(id.clone());
                    }
                }
                mentions.push(Mention { start, end, text: cols[3].to_owned(), kind: cols[4].to_owned(), ids });
            } else if cols.len() >= 3 {
                relations.push(Relation {
                    kind: cols[1].to_owned(),
                    ids: cols[2..].iter().map(|s| (*s).to_owned()).collect(),
                });
            } else {
                return Err(bad(*no, "expected a mention (6 columns) or a relation (3 or more)".into()));
            }
        }
        Ok(PubtatorDocument { document: doc, mentions, relations })
    }
}

impl<R: BufRead> Iterator for PubtatorReader<R> {
    type Item = Result<PubtatorDocument>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_document() {
                Ok(doc) => return doc.map(Ok),
                Err(e @ Error::Io { .. }) => return Some(Err(e)),
                Err(e) => {
                    if let Err(e) = self.skipped.handle(self.skip_bad, e) {
                        return Some(Err(e));
                    }
                }
            }
        }
    }
}
