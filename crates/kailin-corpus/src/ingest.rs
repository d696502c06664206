//! A user's corpus as one stream of documents: a file or a directory of PubMed XML (baseline
//! and update files), PubTator, PubMedQA or Document JSONL; each id once, its last version,
//! withdrawn citations left out; corrupt files listed and skipped (or refused).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kailin_core::Document;
use serde::{Deserialize, Serialize};

use crate::PubmedReader;
use crate::error::{Error, Result};
use crate::source::{DocumentStream, InputFiles, Source, input_files};

/// Settings of [`ingest`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestOptions {
    /// Refuse the corpus when a file cannot be read or is corrupt, or a record is malformed
    /// (otherwise the file or record is listed with why and skipped).
    pub strict: bool,
}

/// What [`ingest`] read and left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReport {
    /// The format read.
    pub format: String,
    /// Files read whole.
    pub files: usize,
    /// Files under the directory not read, each with why (another format, not readable).
    pub unread: Vec<(PathBuf, String)>,
    /// Files that failed part-way (corrupt, truncated), each with why; none of their
    /// documents is used.
    pub failed: Vec<(PathBuf, String)>,
    /// Malformed records skipped inside files that were otherwise read.
    pub skipped_records: usize,
    /// Records read from the files read whole.
    pub records: u64,
    /// Records replaced by a later version of the same id.
    pub replaced: u64,
    /// Ids withdrawn by a later `DeleteCitation`.
    pub deleted: u64,
    /// Documents handed on.
    pub documents: u64,
}

/// One file's documents and the ids its `DeleteCitation`s withdraw.
fn read_file(
    path: &Path,
    source: Source,
    skip_bad: bool,
    mut each: impl FnMut(Document) -> Result<bool>,
) -> Result<(Vec<String>, usize)> {
    if source == Source::PubmedXml {
        let mut reader = PubmedReader::open(path)?.skip_bad(skip_bad);
        for article in reader.by_ref() {
            if !each(article?.document)? {
                break;
            }
        }
        return Ok((reader.deleted().to_vec(), reader.skipped().len()));
    }
    let mut stream = DocumentStream::open(path, source, skip_bad)?;
    for doc in stream.by_ref() {
        if !each(doc?)? {
            break;
        }
    }
    Ok((Vec::new(), stream.skipped().len()))
}

/// The documents of `path` (a file, or a directory of files of one format, read in path
/// order), handed to `emit` in file order until it returns `false`: each id once, in the
/// place and version of its last occurrence, none whose last event is a `DeleteCitation`.
///
/// Two passes over the files: the first validates each file and indexes where each id last
/// occurs (an index of ids, about 60 bytes per citation; documents are never held), the
/// second hands on the documents. A file that cannot be read, or fails part-way, is listed in
/// [`IngestReport::failed`] and none of its documents is used — or, with `strict`, ends the
/// ingest with its error.
///
/// Errors: an empty directory, or one with no file of a recognised format ([`Error::Input`]);
/// a BioASQ file (questions, not documents); with `strict`, the first bad file or record;
/// `emit`'s error.
pub fn ingest(
    path: &Path,
    options: &IngestOptions,
    mut emit: impl FnMut(Document) -> Result<bool>,
) -> Result<IngestReport> {
    let InputFiles { source, files, unread } = input_files(path, None)?;
    if source == Source::Bioasq {
        return Err(Error::Input {
            path: path.to_owned(),
            message:
                "BioASQ batches hold questions, not documents: give PubMed XML, PubTator, PubMedQA or Document JSONL"
                    .into(),
        });
    }
    if options.strict
        && let Some((file, why)) = unread.first()
    {
        return Err(Error::Input { path: file.clone(), message: format!("not read ({why}); strict corpus reading") });
    }
    let mut report = IngestReport { format: source.name().to_owned(), unread, ..Default::default() };
    let mut last: HashMap<String, (u32, u32)> = HashMap::new();
    let mut good = Vec::new();
    for (f, file) in files.iter().enumerate() {
        let mut ids = Vec::new();
        let read = read_file(file, source, !options.strict, |d| {
            ids.push(d.id);
            Ok(true)
        });
        match read {
            Ok((deleted, skipped)) => {
                report.files += 1;
                report.skipped_records += skipped;
                report.records += ids.len() as u64;
                for (ordinal, id) in ids.into_iter().enumerate() {
                    if last.insert(id, (f as u32, ordinal as u32)).is_some() {
                        report.replaced += 1;
                    }
                }
                for id in deleted {
                    if last.remove(&id).is_some() {
                        report.deleted += 1;
                    }
                }
                good.push(f);
            }
            Err(e) if options.strict => return Err(e),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "corpus file skipped");
                report.failed.push((file.clone(), e.to_string()));
            }
        }
    }
    'files: for f in good {
        let mut ordinal = 0u32;
        let mut stop = false;
        read_file(&files[f], source, !options.strict, |d| {
            let here = (f as u32, ordinal);
            ordinal += 1;
            if last.get(&d.id) == Some(&here) {
                report.documents += 1;
                if !emit(d)? {
                    stop = true;
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        if stop {
            break 'files;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article(pmid: &str, title: &str) -> String {
        format!(
            "<PubmedArticle><MedlineCitation><PMID>{pmid}</PMID><Article><ArticleTitle>{title}</ArticleTitle>\
             <Abstract><AbstractText>Text of {pmid}.</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle>"
        )
    }

    #[test]
    fn later_versions_replace_earlier_ones_and_deletions_withdraw() {
        let dir = tempfile::tempdir().unwrap();
        let set = |body: String| format!("<PubmedArticleSet>{body}</PubmedArticleSet>");
        std::fs::write(
            dir.path().join("a-0001.xml"),
            set(article("1", "one") + &article("2", "two") + &article("3", "three")),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a-0002.xml"),
            set(article("2", "two, revised") + "<DeleteCitation><PMID Version=\"1\">3</PMID></DeleteCitation>"),
        )
        .unwrap();
        std::fs::write(dir.path().join("a-0003.xml"), "<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>9")
            .unwrap();
        std::fs::write(dir.path().join("notes.bin"), [0u8, 1, 2]).unwrap();
        let mut docs = Vec::new();
        let report = ingest(dir.path(), &IngestOptions::default(), |d| {
            docs.push((d.id, d.title));
            Ok(true)
        })
        .unwrap();
        assert_eq!(docs, [("1".to_owned(), "one".to_owned()), ("2".into(), "two, revised".into())]);
        assert_eq!((report.files, report.records, report.replaced, report.deleted, report.documents), (2, 4, 1, 1, 2));
        assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
        assert!(report.failed[0].0.ends_with("a-0003.xml"));
        assert_eq!(report.unread.len(), 1);
        // Strict: the corrupt file (or the unread one) refuses the corpus.
        assert!(ingest(dir.path(), &IngestOptions { strict: true }, |_| Ok(true)).is_err());
        // A limit stops the second pass.
        let mut n = 0;
        ingest(dir.path(), &IngestOptions::default(), |_| {
            n += 1;
            Ok(false)
        })
        .unwrap();
        assert_eq!(n, 1);
        let empty = tempfile::tempdir().unwrap();
        assert!(ingest(empty.path(), &IngestOptions::default(), |_| Ok(true)).is_err());
    }
}
