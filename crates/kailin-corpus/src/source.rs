//! One entry point over every reader: detect a file's format and stream its documents; a
//! directory stands for the files under it.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
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

impl Source {
    /// The format's name as the command line spells it (`pubmed`, `bioasq`, …).
    pub fn name(self) -> &'static str {
        match self {
            Source::PubmedXml => "pubmed",
            Source::Pubtator => "pubtator",
            Source::Pubmedqa => "pubmedqa",
            Source::Bioasq => "bioasq",
            Source::Jsonl => "jsonl",
        }
    }
}

/// What an input path stands for: the file itself, or the files of one format under a
/// directory ([`input_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFiles {
    /// The format of the files read.
    pub source: Source,
    /// The files read, in order (a directory's in path order, subdirectories included).
    pub files: Vec<PathBuf>,
    /// Files under a directory left unread, each with why (not a recognised format, or
    /// another format than the one read); nothing is passed over silently.
    pub unread: Vec<(PathBuf, String)>,
}

/// The files `path` stands for. A file is itself, of the format `source` or, when that is
/// `None`, the one [`detect_source`] finds. A directory stands for every file under it
/// (recursively, in path order) of that format; where `source` is `None` the files must agree
/// on one. Files of no recognised format, or of another format than the one read, are listed
/// in [`InputFiles::unread`].
///
/// Errors: [`Error::Io`] (the path cannot be read), [`Error::Parse`] (a file whose format
/// cannot be told, given alone), [`Error::Input`] (a directory with no readable file, or with
/// files of several formats and `source` `None`).
pub fn input_files(path: impl AsRef<Path>, source: Option<Source>) -> Result<InputFiles> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
    if !meta.is_dir() {
        let source = match source {
            Some(s) => s,
            None => detect_file(path)?,
        };
        return Ok(InputFiles { source, files: vec![path.to_owned()], unread: Vec::new() });
    }
    let mut all = Vec::new();
    walk(path, &mut all)?;
    if all.is_empty() {
        return Err(Error::Input { path: path.to_owned(), message: "an empty directory: no file to read".into() });
    }
    let mut found = Vec::with_capacity(all.len());
    let mut unread = Vec::new();
    for file in all {
        match detect_file(&file) {
            Ok(s) => found.push((file, s)),
            Err(Error::Parse { .. }) => unread.push((file, "not a recognised format".to_owned())),
            Err(Error::Io { source, .. }) => unread.push((file, format!("not readable: {source}"))),
            Err(e) => unread.push((file, e.to_string())),
        }
    }
    let source = match source {
        Some(s) => s,
        None => {
            let mut formats: BTreeMap<&str, (Source, usize)> = BTreeMap::new();
            for (_, s) in &found {
                formats.entry(s.name()).or_insert((*s, 0)).1 += 1;
            }
            match formats.len() {
                0 => {
                    return Err(Error::Input {
                        path: path.to_owned(),
                        message: format!("none of its {} files is of a recognised format", unread.len()),
                    });
                }
                1 => formats.into_values().next().map_or(Source::Jsonl, |(s, _)| s),
                _ => {
                    let counts: Vec<String> = formats.iter().map(|(n, (_, c))| format!("{c} {n}")).collect();
                    return Err(Error::Input {
                        path: path.to_owned(),
                        message: format!(
                            "its files are of several formats ({}): name the one to read (--format) or separate them",
                            counts.join(", ")
                        ),
                    });
                }
            }
        }
    };
    let mut files = Vec::with_capacity(found.len());
    for (file, s) in found {
        if s == source {
            files.push(file);
        } else {
            unread.push((file, format!("{}, not {}", s.name(), source.name())));
        }
    }
    if files.is_empty() {
        return Err(Error::Input {
            path: path.to_owned(),
            message: format!("no file under it is {} ({} files, none read)", source.name(), unread.len()),
        });
    }
    unread.sort();
    Ok(InputFiles { source, files, unread })
}

/// Every file under `dir`, recursively, in path order (hidden entries left out).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| Error::Io { path: dir.to_owned(), source };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io)?;
    entries.sort();
    for entry in entries {
        if entry.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')) {
            continue;
        }
        if entry.is_dir() {
            walk(&entry, out)?;
        } else {
            out.push(entry);
        }
    }
    Ok(())
}

/// Guesses the format of a file, or the one format of the files under a directory
/// ([`input_files`]).
pub fn detect_source(path: impl AsRef<Path>) -> Result<Source> {
    Ok(input_files(path, None)?.source)
}

/// Guesses a file's format from its first bytes.
fn detect_file(path: &Path) -> Result<Source> {
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
    /// Opens `path` as `source`; with `skip_bad`, malformed records are skipped and listed. A
    /// directory yields the documents of its files of that format in turn ([`input_files`]).
    pub fn open(path: impl AsRef<Path>, source: Source, skip_bad: bool) -> Result<Self> {
        let path = path.as_ref();
        if !path.is_dir() {
            return Self::open_file(path, source, skip_bad);
        }
        Self::from_inputs(&input_files(path, Some(source))?, skip_bad)
    }

    /// The documents of files already listed by [`input_files`], in turn (so that a caller
    /// who has the list does not walk the directory again).
    pub fn from_inputs(inputs: &InputFiles, skip_bad: bool) -> Result<Self> {
        match inputs.files.as_slice() {
            [one] => Self::open_file(one, inputs.source, skip_bad),
            files => Ok(Self::chain(files.to_vec(), inputs.source, skip_bad)),
        }
    }

    /// The documents of `files` in turn, each opened when the one before it ends.
    fn chain(files: Vec<PathBuf>, source: Source, skip_bad: bool) -> Self {
        let skipped = std::rc::Rc::new(std::cell::RefCell::new(Skipped::default()));
        let sk = skipped.clone();
        let mut files = files.into_iter();
        let mut current: Option<DocumentStream> = None;
        // Records skipped in the files already finished.
        let mut done = 0;
        let inner = std::iter::from_fn(move || {
            loop {
                if let Some(stream) = current.as_mut() {
                    let next = stream.next();
                    let inner = stream.skipped.borrow();
                    if done + inner.len() != sk.borrow().len() {
                        let mut all = sk.borrow_mut();
                        all.records.truncate(done);
                        all.records.extend(inner.records.iter().cloned());
                    }
                    if next.is_some() {
                        return next;
                    }
                    done += inner.len();
                    drop(inner);
                    current = None;
                }
                let file = files.next()?;
                match Self::open_file(&file, source, skip_bad) {
                    Ok(s) => current = Some(s),
                    Err(e) => return Some(Err(e)),
                }
            }
        });
        DocumentStream { inner: Box::new(inner), skipped }
    }

    fn open_file(path: &Path, source: Source, skip_bad: bool) -> Result<Self> {
        let path = path.to_owned();
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

/// The gold questions of a PubMedQA or BioASQ file, or of the files of that format under a
/// directory, in turn.
pub fn questions(path: impl AsRef<Path>, source: Source, skip_bad: bool) -> Result<(Vec<Question>, Skipped)> {
    let path = path.as_ref();
    if path.is_dir() {
        let (mut all, mut skipped) = (Vec::new(), Skipped::default());
        for file in input_files(path, Some(source))?.files {
            let (q, s) = questions_of_file(&file, source, skip_bad)?;
            all.extend(q);
            skipped.records.extend(s.records);
        }
        return Ok((all, skipped));
    }
    questions_of_file(path, source, skip_bad)
}

fn questions_of_file(path: &Path, source: Source, skip_bad: bool) -> Result<(Vec<Question>, Skipped)> {
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

    #[test]
    fn directories_stand_for_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("b")).unwrap();
        std::fs::write(d.join("b/2.jsonl"), "{\"id\": \"3\", \"text\": \"c\"}\n").unwrap();
        std::fs::write(
            d.join("a.jsonl"),
            "{\"id\": \"1\", \"text\": \"a\"}\nnot json\n{\"id\": \"2\", \"text\": \"b\"}\n",
        )
        .unwrap();
        std::fs::write(d.join("readme.txt"), "plain words").unwrap();
        std::fs::write(d.join(".hidden"), "ignored").unwrap();
        let inputs = input_files(d, None).unwrap();
        assert_eq!(inputs.source, Source::Jsonl);
        assert_eq!(inputs.files, vec![d.join("a.jsonl"), d.join("b/2.jsonl")]);
        assert_eq!(inputs.unread.len(), 1);
        assert_eq!(inputs.unread[0].0, d.join("readme.txt"));
        assert_eq!(detect_source(d).unwrap(), Source::Jsonl);

        // Documents in path order; a bad record is skipped and listed once, across files.
        let mut stream = DocumentStream::open(d, Source::Jsonl, true).unwrap();
        let ids: Vec<String> = stream.by_ref().map(|r| r.unwrap().id).collect();
        assert_eq!(ids, ["1", "2", "3"]);
        assert_eq!(stream.skipped().len(), 1);
        // Without skip_bad the bad record is an error naming its file.
        let err = DocumentStream::open(d, Source::Jsonl, false).unwrap().find_map(Result::err).unwrap();
        assert!(err.to_string().contains("a.jsonl"), "{err}");

        // Another format named: its files are read, the others listed.
        std::fs::write(d.join("q.json"), "{\"questions\": []}").unwrap();
        let err = input_files(d, None).unwrap_err().to_string();
        assert!(err.contains("several formats") && err.contains("1 bioasq") && err.contains("2 jsonl"), "{err}");
        let bioasq = input_files(d, Some(Source::Bioasq)).unwrap();
        assert_eq!(bioasq.files, vec![d.join("q.json")]);
        assert_eq!(bioasq.unread.len(), 3);
        assert_eq!(questions(d, Source::Bioasq, false).unwrap().0.len(), 0);
        let err = input_files(d, Some(Source::Pubtator)).unwrap_err().to_string();
        assert!(err.contains("no file under it is pubtator"), "{err}");

        // Nothing readable, or nothing at all: clear errors.
        let only_text = tempfile::tempdir().unwrap();
        std::fs::write(only_text.path().join("notes.txt"), "plain words").unwrap();
        let err = input_files(only_text.path(), None).unwrap_err().to_string();
        assert!(err.contains("none of its 1 files is of a recognised format"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = detect_source(empty.path()).unwrap_err().to_string();
        assert!(err.contains("an empty directory"), "{err}");
    }
}
