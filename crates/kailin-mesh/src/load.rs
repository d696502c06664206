//! Readers for the three MeSH source formats, and format detection.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use quick_xml::events::Event;
use rustc_hash::FxHashMap;

use crate::builder::MeshBuilder;
use crate::error::{Error, Result};
use crate::mesh::Mesh;

/// The on-disk formats [`Mesh::load`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// NLM descriptor XML (`descYYYY.xml`), plain or gzip-compressed.
    Xml,
    /// NLM ASCII tree file (`mtreesYYYY.bin`): `Name;TreeNumber` lines.
    Mtrees,
    /// `UI<TAB>name<TAB>entry|terms<TAB>tree|numbers[<TAB>ignored…]` lines.
    Tsv,
    /// This crate's binary cache ([`Mesh::save_cache`]).
    Cache,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Guesses the format from the first bytes of a file.
pub fn detect_format(path: impl AsRef<Path>) -> Result<Format> {
    let path = path.as_ref();
    let mut head = Vec::with_capacity(4096);
    File::open(path).and_then(|f| f.take(4096).read_to_end(&mut head)).map_err(|e| Error::io(path, e))?;
    if head.starts_with(crate::cache::MAGIC) {
        return Ok(Format::Cache);
    }
    if head.starts_with(&GZIP_MAGIC) {
        return Ok(Format::Xml);
    }
    let text = String::from_utf8_lossy(&head);
    let first = text.trim_start_matches('\u{feff}').trim_start();
    if first.starts_with('<') {
        return Ok(Format::Xml);
    }
    let line = first.lines().next().unwrap_or("");
    if line.contains('\t') {
        Ok(Format::Tsv)
    } else if line.contains(';') {
        Ok(Format::Mtrees)
    } else {
        Err(Error::UnknownFormat { path: path.to_owned() })
    }
}

pub(crate) fn load(path: &Path) -> Result<Mesh> {
    let format = detect_format(path)?;
    let started = std::time::Instant::now();
    let mesh = match format {
        Format::Cache => return crate::cache::load(path),
        Format::Tsv => read_tsv(&read_text(path)?, &path.display().to_string())?,
        Format::Mtrees => read_mtrees(&read_text(path)?, &path.display().to_string())?,
        Format::Xml => read_xml_file(path)?,
    };
    tracing::debug!(?format, path = %path.display(), elapsed = ?started.elapsed(), "loaded MeSH");
    Ok(mesh)
}

/// Reads a whole file as UTF-8, naming the line of the first invalid byte.
fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        Error::parse(&path.display().to_string(), line, format!("invalid UTF-8 at byte {at}"))
    })
}

fn split_list(field: &str) -> impl Iterator<Item = &str> {
    field.split('|').map(str::trim).filter(|s| !s.is_empty())
}

/// Parses the TSV layout: `UI<TAB>name<TAB>entry|terms<TAB>tree|numbers[<TAB>…]`.
pub fn read_tsv(text: &str, origin: &str) -> Result<Mesh> {
    let mut b = MeshBuilder::new().origin(origin);
    for (i, line) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let mut cols = line.split('\t');
        let (Some(ui), Some(name), Some(entries), Some(trees)) = (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            let n = line.split('\t').count();
            return Err(Error::parse(
                origin,
                line_no,
                format!("expected at least 4 tab-separated columns (UI, name, entry terms, tree numbers), found {n}"),
            ));
        };
        let ui = ui.trim_start_matches('\u{feff}').trim();
        if ui.is_empty() || name.trim().is_empty() {
            return Err(Error::parse(origin, line_no, "empty descriptor UI or name"));
        }
        let owned = |field: &str| split_list(field).map(str::to_owned).collect();
        b.add_at(line_no, ui.to_owned(), name.trim().to_owned(), owned(entries), owned(trees));
    }
    b.build()
}

/// Parses NLM's ASCII tree file: `Name;TreeNumber` lines. The file carries no UIs, so each
/// descriptor's UI is its name.
pub fn read_mtrees(text: &str, origin: &str) -> Result<Mesh> {
    let mut b = MeshBuilder::new().origin(origin);
    let mut index: FxHashMap<&str, usize> = FxHashMap::default();
    for (i, line) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.strip_suffix('\r').unwrap_or(line).trim_start_matches('\u{feff}');
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, tree)) = line.rsplit_once(';') else {
            return Err(Error::parse(origin, line_no, "expected `Name;TreeNumber`"));
        };
        let (name, tree) = (name.trim(), tree.trim());
        if name.is_empty() || tree.is_empty() {
            return Err(Error::parse(origin, line_no, "empty name or tree number"));
        }
        match index.get(name) {
            Some(&d) => b.push_tree_number(d, tree.to_owned()),
            None => {
                index.insert(name, index.len());
                b.add_at(line_no, name.to_owned(), name.to_owned(), Vec::new(), vec![tree.to_owned()]);
            }
        }
    }
    b.build()
}

fn read_xml_file(path: &Path) -> Result<Mesh> {
    let origin = path.display().to_string();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let gz = reader.fill_buf().map_err(|e| Error::io(path, e))?.starts_with(&GZIP_MAGIC);
    if gz {
        let inner = BufReader::with_capacity(1 << 16, flate2::bufread::MultiGzDecoder::new(reader));
        read_xml(inner, &origin)
    } else {
        read_xml(reader, &origin)
    }
}

/// A `BufRead` that counts the lines it has handed out, for error messages.
struct LineCounting<R> {
    inner: R,
    line: u64,
}

impl<R: BufRead> Read for LineCounting<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.line += out[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for LineCounting<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            let amt = amt.min(buf.len());
            self.line += buf[..amt].iter().filter(|&&b| b == b'\n').count() as u64;
        }
        self.inner.consume(amt);
    }
}

/// Parses NLM descriptor XML (`DescriptorRecordSet`) from a reader. Entry terms are the terms
/// of the preferred concept other than the preferred name.
pub fn read_xml(reader: impl BufRead, origin: &str) -> Result<Mesh> {
    let mut xml = quick_xml::Reader::from_reader(LineCounting { inner: reader, line: 1 });
    xml.config_mut().check_end_names = true;
    let mut b = MeshBuilder::new().origin(origin);
    let mut buf = Vec::new();
    // Element names from DescriptorRecord down; empty outside a record.
    let mut path: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut text = String::new();
    let mut preferred_concept = false;
    let mut rec = (String::new(), String::new(), Vec::<String>::new(), Vec::<String>::new(), 0u64);
    let err = |line: u64, m: String| Error::parse(origin, line, m);
    loop {
        let event = xml.read_event_into(&mut buf);
        let line = xml.get_ref().line;
        match event {
            Err(e) => return Err(err(line, format!("malformed XML: {e}"))),
            Ok(Event::Start(e)) => {
                depth += 1;
                let name = e.local_name().as_ref().to_owned();
                if path.is_empty() && name != "DescriptorRecord" {
                    continue;
                }
                if name == "DescriptorRecord" && !path.is_empty() {
                    return Err(err(line, "nested <DescriptorRecord>".into()));
                }
                if name == "DescriptorRecord" {
                    rec = (String::new(), String::new(), Vec::new(), Vec::new(), line);
                }
                if name == "Concept" {
                    preferred_concept = e
                        .try_get_attribute("PreferredConceptYN")
                        .ok()
                        .flatten()
                        .is_some_and(|a| a.value.as_ref() == "Y");
                }
                path.push(name);
                text.clear();
            }
            Ok(Event::Text(t)) if !path.is_empty() => text.push_str(&t.xml10_content()),
            Ok(Event::CData(t)) if !path.is_empty() => text.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(r)) if !path.is_empty() => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    _ => match r.xml10_content().as_ref() {
                        "amp" => Some("&".into()),
                        "lt" => Some("<".into()),
                        "gt" => Some(">".into()),
                        "quot" => Some("\"".into()),
                        "apos" => Some("'".into()),
                        _ => None,
                    },
                };
                match resolved {
                    Some(s) => text.push_str(&s),
                    None => {
                        return Err(err(line, format!("unknown entity &{};", r.xml10_content())));
                    }
                }
            }
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                if path.is_empty() {
                    continue;
                }
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                let value = text.trim();
                match p.as_slice() {
                    ["DescriptorRecord", "DescriptorUI"] => rec.0 = value.to_owned(),
                    ["DescriptorRecord", "DescriptorName", "String"] => rec.1 = value.to_owned(),
                    ["DescriptorRecord", "TreeNumberList", "TreeNumber"] => rec.3.push(value.to_owned()),
                    ["DescriptorRecord", "ConceptList", "Concept", "TermList", "Term", "String"]
                        if preferred_concept =>
                    {
                        rec.2.push(value.to_owned())
                    }
                    ["DescriptorRecord"] => {
                        let (ui, name, mut entries, trees, at) = std::mem::take(&mut rec);
                        if ui.is_empty() || name.is_empty() {
                            return Err(err(at, "<DescriptorRecord> without DescriptorUI or DescriptorName".into()));
                        }
                        entries.retain(|e| e != &name);
                        b.add_at(at, ui, name, entries, trees);
                    }
                    _ => {}
                }
                path.pop();
                text.clear();
            }
            Ok(Event::Eof) => {
                if depth > 0 || !path.is_empty() {
                    return Err(err(line, "truncated XML: end of input inside an open element".into()));
                }
                break;
            }
            Ok(_) => {}
        }
        buf.clear();
    }
    b.build()
}
