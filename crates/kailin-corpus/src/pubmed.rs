//! PubMed / MEDLINE XML (`PubmedArticleSet`, plain or gzip), streamed article by article.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use kailin_core::Document;
use quick_xml::events::{BytesStart, Event};

use crate::error::{Error, Result, Skipped};

/// A MeSH heading of a citation: the descriptor, and whether it is a major topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshHeading {
    /// Descriptor UI (`D009369`).
    pub ui: String,
    /// Descriptor name.
    pub name: String,
    /// `MajorTopicYN="Y"` on the descriptor.
    pub major: bool,
}

/// One citation: the [`Document`] (id = PMID, title, abstract sections joined with their
/// labels, `mesh` = heading UIs, publication year, source `pubmed`) and its MeSH headings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubmedArticle {
    /// The document record.
    pub document: Document,
    /// MeSH headings with their major-topic flags.
    pub headings: Vec<MeshHeading>,
}

/// Elements the reader tracks; all others are `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    PubmedArticle,
    MedlineCitation,
    Pmid,
    Article,
    Journal,
    JournalIssue,
    PubDate,
    Year,
    MedlineDate,
    ArticleTitle,
    Abstract,
    AbstractText,
    MeshHeadingList,
    MeshHeading,
    DescriptorName,
    DeleteCitation,
    Other,
}

fn tag(name: &[u8]) -> Tag {
    match name {
        b"PubmedArticle" => Tag::PubmedArticle,
        b"MedlineCitation" => Tag::MedlineCitation,
        b"PMID" => Tag::Pmid,
        b"DeleteCitation" => Tag::DeleteCitation,
        b"Article" => Tag::Article,
        b"Journal" => Tag::Journal,
        b"JournalIssue" => Tag::JournalIssue,
        b"PubDate" => Tag::PubDate,
        b"Year" => Tag::Year,
        b"MedlineDate" => Tag::MedlineDate,
        b"ArticleTitle" => Tag::ArticleTitle,
        b"Abstract" => Tag::Abstract,
        b"AbstractText" => Tag::AbstractText,
        b"MeshHeadingList" => Tag::MeshHeadingList,
        b"MeshHeading" => Tag::MeshHeading,
        b"DescriptorName" => Tag::DescriptorName,
        _ => Tag::Other,
    }
}

/// What the text being captured will become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Pmid,
    Year,
    MedlineDate,
    Title,
    AbstractText,
    Descriptor,
}

/// The article being assembled.
#[derive(Debug, Default)]
struct Draft {
    pmid: String,
    title: String,
    sections: Vec<String>,
    year: Option<u16>,
    headings: Vec<MeshHeading>,
    /// Attributes of the element being captured (label, UI, major flag).
    label: Option<String>,
    ui: String,
    major: bool,
    offset: u64,
}

/// Streams the citations of a PubMed XML file in constant memory.
///
/// ```no_run
/// use kailin_corpus::PubmedReader;
/// for article in PubmedReader::open("pubmed24n0001.xml.gz")? {
///     let article = article?;
///     println!("{} {}", article.document.id, article.document.title);
/// }
/// # Ok::<(), kailin_corpus::Error>(())
/// ```
pub struct PubmedReader<R = Box<dyn BufRead>> {
    xml: quick_xml::Reader<R>,
    path: PathBuf,
    buf: Vec<u8>,
    stack: Vec<Tag>,
    skip_bad: bool,
    skipped: Skipped,
    deleted: Vec<String>,
    done: bool,
}

impl<R> std::fmt::Debug for PubmedReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubmedReader").field("path", &self.path).field("skipped", &self.skipped.len()).finish()
    }
}

impl PubmedReader {
    /// Opens a `PubmedArticleSet` file, plain or gzip-compressed (detected).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |source| Error::Io { path: path.to_owned(), source };
        let mut file = BufReader::with_capacity(1 << 17, File::open(path).map_err(io)?);
        let gz = file.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn BufRead> = if gz {
            Box::new(BufReader::with_capacity(1 << 17, flate2::bufread::MultiGzDecoder::new(file)))
        } else {
            Box::new(file)
        };
        Ok(Self::from_reader(reader, path))
    }
}

impl<R: BufRead> PubmedReader<R> {
    /// Reads from any buffered reader; `name` stands for the file in errors.
    pub fn from_reader(reader: R, name: impl Into<PathBuf>) -> Self {
        let mut xml = quick_xml::Reader::from_reader(reader);
        xml.config_mut().check_end_names = true;
        PubmedReader {
            xml,
            path: name.into(),
            buf: Vec::with_capacity(1 << 12),
            stack: Vec::with_capacity(32),
            skip_bad: false,
            skipped: Skipped::default(),
            deleted: Vec::new(),
            done: false,
        }
    }

    /// Skip (and count in [`skipped`](Self::skipped)) citations without a PMID instead of
    /// failing. Malformed XML still ends the file with an error: a parser cannot find the next
    /// citation reliably after it.
    pub fn skip_bad(mut self, on: bool) -> Self {
        self.skip_bad = on;
        self
    }

    /// Citations skipped so far.
    pub fn skipped(&self) -> &Skipped {
        &self.skipped
    }

    /// The PMIDs the file's `DeleteCitation` elements have named so far (PubMed's update
    /// files withdraw citations of earlier files this way).
    pub fn deleted(&self) -> &[String] {
        &self.deleted
    }

    fn error(&self, offset: u64, message: impl Into<String>) -> Error {
        Error::Xml { path: self.path.clone(), byte: offset, message: message.into() }
    }

    /// Reads up to the end of the next citation.
    fn next_article(&mut self) -> Result<Option<PubmedArticle>> {
        let mut draft: Option<Draft> = None;
        let mut field: Option<(Field, usize)> = None;
        let mut deleting = false;
        let mut text = String::new();
        loop {
            let offset = self.xml.buffer_position();
            self.buf.clear();
            let event = match self.xml.read_event_into(&mut self.buf) {
                Ok(e) => e,
                Err(e) => return Err(self.error(offset, format!("malformed XML: {e}"))),
            };
            match event {
                Event::Start(e) => {
                    let name = e.local_name();
                    if self.stack.is_empty() && !name.as_ref().starts_with("Pubmed") {
                        let name = name.as_ref().chars().take(40).collect::<String>();
                        return Err(self.error(
                            offset,
                            format!("not PubMed XML: the root element is <{name}>, not <PubmedArticleSet>"),
                        ));
                    }
                    let t = tag(name.as_ref().as_bytes());
                    self.stack.push(t);
                    if self.stack.ends_with(&[Tag::DeleteCitation, Tag::Pmid]) {
                        deleting = true;
                        text.clear();
                        continue;
                    }
                    if t == Tag::PubmedArticle {
                        draft = Some(Draft { offset, ..Draft::default() });
                        continue;
                    }
                    let (Some(d), None) = (draft.as_mut(), field) else { continue };
                    if let Some(f) = field_of(&self.stack) {
                        if f == Field::AbstractText {
                            d.label = attr(&e, "Label");
                        } else if f == Field::Descriptor {
                            d.ui = attr(&e, "UI").unwrap_or_default();
                            d.major = attr(&e, "MajorTopicYN").as_deref() == Some("Y");
                        }
                        field = Some((f, self.stack.len()));
                        text.clear();
                    }
                }
                Event::Text(t) if field.is_some() || deleting => text.push_str(&t.xml10_content()),
                Event::Text(t) if self.stack.is_empty() && !t.as_ref().trim().is_empty() => {
                    return Err(self.error(offset, "not PubMed XML: text outside any element"));
                }
                Event::CData(t) if field.is_some() => text.push_str(&t.xml10_content()),
                Event::GeneralRef(r) if field.is_some() => match resolve(&r) {
                    Some(s) => text.push_str(&s),
                    None => {
                        let name = r.xml10_content().into_owned();
                        return Err(self.error(offset, format!("unknown entity &{name};")));
                    }
                },
                Event::End(_) => {
                    let depth = self.stack.len();
                    let t = self.stack.pop();
                    if deleting {
                        deleting = false;
                        let pmid = text.trim();
                        if !pmid.is_empty() {
                            self.deleted.push(pmid.to_owned());
                        }
                        text.clear();
                        continue;
                    }
                    if let (Some((f, at)), Some(d)) = (field, draft.as_mut())
                        && at == depth
                    {
                        finish_field(d, f, std::mem::take(&mut text));
                        field = None;
                    }
                    if t == Some(Tag::PubmedArticle)
                        && let Some(d) = draft.take()
                    {
                        match self.build(d) {
                            Ok(article) => return Ok(Some(article)),
                            Err(e) => self.skipped.handle(self.skip_bad, e)?,
                        }
                    }
                }
                Event::Eof => {
                    if !self.stack.is_empty() {
                        return Err(self.error(offset, "truncated input: end of file inside an open element"));
                    }
                    return Ok(None);
                }
                _ => {}
            }
        }
    }

    fn build(&self, d: Draft) -> Result<PubmedArticle> {
        if d.pmid.is_empty() {
            return Err(self.error(d.offset, "citation without a MedlineCitation/PMID"));
        }
        let document = Document {
            id: d.pmid,
            title: d.title,
            text: d.sections.join("\n"),
            mesh: d.headings.iter().map(|h| h.ui.clone()).collect(),
            year: d.year,
            source: "pubmed".to_owned(),
        };
        Ok(PubmedArticle { document, headings: d.headings })
    }
}

impl<R: BufRead> Iterator for PubmedReader<R> {
    type Item = Result<PubmedArticle>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_article() {
            Ok(Some(a)) => Some(Ok(a)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The field an element (the top of `stack`) holds, by its path under `PubmedArticle`.
fn field_of(stack: &[Tag]) -> Option<Field> {
    use Tag::*;
    let article = stack.iter().position(|&t| t == PubmedArticle)?;
    let path = &stack[article + 1..];
    match path {
        [MedlineCitation, Pmid] => Some(Field::Pmid),
        [MedlineCitation, Article, ArticleTitle] => Some(Field::Title),
        [MedlineCitation, Article, Abstract, AbstractText] => Some(Field::AbstractText),
        [MedlineCitation, Article, Journal, JournalIssue, PubDate, Year] => Some(Field::Year),
        [MedlineCitation, Article, Journal, JournalIssue, PubDate, MedlineDate] => Some(Field::MedlineDate),
        [MedlineCitation, MeshHeadingList, MeshHeading, DescriptorName] => Some(Field::Descriptor),
        _ => None,
    }
}

fn finish_field(d: &mut Draft, f: Field, text: String) {
    let text = text.trim();
    match f {
        Field::Pmid => d.pmid = text.to_owned(),
        Field::Title => d.title = text.to_owned(),
        Field::AbstractText => {
            if !text.is_empty() {
                d.sections.push(match d.label.take() {
                    Some(label) if !label.is_empty() => format!("{label}: {text}"),
                    _ => text.to_owned(),
                });
            }
        }
        // `1975`, or a MedlineDate such as `1998 Dec-1999 Jan`: the first four-digit year.
        Field::Year | Field::MedlineDate => {
            d.year = d.year.or_else(|| {
                text.as_bytes()
                    .windows(4)
                    .find(|w| w.iter().all(u8::is_ascii_digit))
                    .and_then(|w| std::str::from_utf8(w).ok()?.parse().ok())
            })
        }
        Field::Descriptor => d.headings.push(MeshHeading {
            ui: std::mem::take(&mut d.ui),
            name: text.to_owned(),
            major: std::mem::take(&mut d.major),
        }),
    }
}

fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned()))
}

/// The text of an entity or character reference.
pub(crate) fn resolve(r: &quick_xml::events::BytesRef<'_>) -> Option<String> {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Some(c.to_string());
    }
    Some(
        match r.xml10_content().as_ref() {
            "amp" => "&",
            "lt" => "<",
            "gt" => ">",
            "quot" => "\"",
            "apos" => "'",
            _ => return None,
        }
        .to_owned(),
    )
}
