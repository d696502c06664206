//! JSON Lines: a streaming reader with line-numbered errors, an atomic writer, and a
//! resumable appender.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::fs::AtomicFile;

/// Reads records of type `T`, one JSON object per line, in constant memory. Blank lines are
/// skipped; every error names the file and line.
#[derive(Debug)]
pub struct JsonlReader<T, R = BufReader<File>> {
    reader: R,
    path: PathBuf,
    line: u64,
    buf: Vec<u8>,
    /// Set after a read error: the reader then ends (a failing read is not retried forever).
    failed: bool,
    _record: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> JsonlReader<T> {
    /// Opens `path` (a directory is refused here, not at the first read).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |source| Error::Io { path: path.to_owned(), source };
        if path.is_dir() {
            return Err(io(std::io::Error::other("is a directory; give a JSON Lines file")));
        }
        let file = File::open(path).map_err(io)?;
        Ok(Self::new(BufReader::with_capacity(1 << 16, file), path))
    }
}

impl<T: DeserializeOwned, R: BufRead> JsonlReader<T, R> {
    /// Reads from any buffered reader; `name` stands for the file in errors.
    pub fn new(reader: R, name: impl Into<PathBuf>) -> Self {
        JsonlReader { reader, path: name.into(), line: 0, buf: Vec::new(), failed: false, _record: PhantomData }
    }

    /// The line number of the last record returned.
    pub fn line(&self) -> u64 {
        self.line
    }
}

impl<T: DeserializeOwned, R: BufRead> Iterator for JsonlReader<T, R> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.failed {
            return None;
        }
        loop {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => self.line += 1,
                Err(source) => {
                    self.failed = true;
                    return Some(Err(Error::Io { path: self.path.clone(), source }));
                }
            }
            let Ok(mut text) = std::str::from_utf8(&self.buf) else {
                return Some(Err(Error::Utf8 { path: self.path.clone(), line: self.line }));
            };
            // A byte-order mark (written by some editors) before the first record is skipped.
            if self.line == 1 {
                text = text.strip_prefix('\u{feff}').unwrap_or(text);
            }
            if text.trim().is_empty() {
                continue;
            }
            return Some(serde_json::from_str(text).map_err(|source| Error::Json {
                path: self.path.clone(),
                line: self.line,
                source,
            }));
        }
    }
}

/// Writes records as JSON Lines, atomically (see [`AtomicFile`]).
#[derive(Debug)]
pub struct JsonlWriter<T> {
    file: AtomicFile,
    count: u64,
    _record: PhantomData<fn(&T)>,
}

impl<T: Serialize> JsonlWriter<T> {
    /// Starts writing `dest`.
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        Ok(JsonlWriter { file: AtomicFile::create(dest)?, count: 0, _record: PhantomData })
    }

    /// Appends one record.
    pub fn write(&mut self, record: &T) -> Result<()> {
        let written = serde_json::to_writer(&mut self.file, record)
            .map_err(std::io::Error::from)
            .and_then(|()| self.file.write_all(b"\n"));
        written.map_err(|source| Error::Io { path: self.file.path().to_owned(), source })?;
        self.count += 1;
        Ok(())
    }

    /// Number of records written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Commits the file; returns the number of records.
    pub fn finish(self) -> Result<u64> {
        let n = self.count;
        self.file.commit()?;
        Ok(n)
    }
}

/// Appends records to a file a run can be killed in and resumed on: each record is one
/// `write` of a whole line, [`sync`](Self::sync) makes the lines so far durable, and
/// [`resume`](Self::resume) reads back the complete lines of an earlier run, cutting off a
/// last line that the kill left incomplete. Not atomic as a whole, by design: finished
/// records survive a crash.
#[derive(Debug)]
pub struct JsonlAppender<T> {
    file: File,
    path: PathBuf,
    count: u64,
    cut: u64,
    _record: PhantomData<fn(&T)>,
}

impl<T: Serialize + DeserializeOwned> JsonlAppender<T> {
    /// Opens `path` for appending (creating it), and returns the records already in it. A
    /// last line without its newline (a write cut short) is removed from the file; any
    /// complete line that is not a `T` is an error naming it.
    ///
    /// The file is locked for the life of the appender: a second process appending to the same
    /// file is refused ([`Error::Refused`]) instead of interleaving its records.
    pub fn resume(path: impl AsRef<Path>) -> Result<(Self, Vec<T>)> {
        let path = path.as_ref().to_owned();
        let io = |source| Error::Io { path: path.clone(), source };
        crate::outputs::check_output_file("the output", &path)?;
        let file = std::fs::OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Refused {
                    path,
                    reason: "is being written by another process; wait for it to finish, or give another output".into(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(io)?;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete < bytes.len() {
            file.set_len(complete as u64).map_err(io)?;
        }
        let cut = (bytes.len() - complete) as u64;
        let records: Vec<T> = JsonlReader::new(&bytes[..complete], path.clone()).collect::<Result<_>>()?;
        let count = records.len() as u64;
        Ok((JsonlAppender { file, path, count, cut, _record: PhantomData }, records))
    }

    /// Appends one record as one line.
    pub fn write(&mut self, record: &T) -> Result<()> {
        let mut line =
            serde_json::to_vec(record).map_err(|e| Error::Io { path: self.path.clone(), source: e.into() })?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(|source| Error::Io { path: self.path.clone(), source })?;
        self.count += 1;
        Ok(())
    }

    /// Makes what was written durable.
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|source| Error::Io { path: self.path.clone(), source })
    }

    /// Records in the file (those resumed included).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Removes every record (a run that starts over).
    pub fn clear(&mut self) -> Result<()> {
        self.file.set_len(0).map_err(|source| Error::Io { path: self.path.clone(), source })?;
        self.count = 0;
        Ok(())
    }

    /// Bytes of an incomplete last line that [`resume`](Self::resume) removed.
    pub fn cut_bytes(&self) -> u64 {
        self.cut
    }
}

/// Writes all `records` to `dest` atomically; returns how many.
pub fn write_jsonl<'a, T: Serialize + 'a>(
    dest: impl AsRef<Path>,
    records: impl IntoIterator<Item = &'a T>,
) -> Result<u64> {
    let mut w = JsonlWriter::create(dest)?;
    for r in records {
        w.write(r)?;
    }
    w.finish()
}

/// Reads all records of `path` into memory, refusing a record whose id (`id` of it) repeats an
/// earlier one's ([`Error::Duplicate`], naming both lines): for inputs whose ids name outputs.
pub fn read_jsonl_unique<T: DeserializeOwned>(path: impl AsRef<Path>, id: impl Fn(&T) -> &str) -> Result<Vec<T>> {
    let path = path.as_ref();
    let mut records = Vec::new();
    let mut lines: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut reader = JsonlReader::<T>::open(path)?;
    while let Some(r) = reader.next() {
        let r = r?;
        if let Some(first) = lines.insert(id(&r).to_owned(), reader.line()) {
            return Err(Error::Duplicate { path: path.to_owned(), line: reader.line(), id: id(&r).to_owned(), first });
        }
        records.push(r);
    }
    Ok(records)
}

/// Reads all records of `path` into memory (for small files; stream with [`JsonlReader`]).
pub fn read_jsonl<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<Vec<T>> {
    JsonlReader::open(path)?.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_appender_resumes_after_a_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let (mut a, old) = JsonlAppender::<u32>::resume(&path).unwrap();
        assert!(old.is_empty());
        a.write(&1).unwrap();
        a.write(&2).unwrap();
        a.sync().unwrap();
        drop(a);
        // A kill in the middle of the third line.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"3").unwrap();
        let (mut a, old) = JsonlAppender::<u32>::resume(&path).unwrap();
        assert_eq!((old, a.cut_bytes(), a.count()), (vec![1, 2], 1, 2));
        a.write(&3).unwrap();
        drop(a);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n2\n3\n");
        std::fs::write(&path, "1\nx\n").unwrap();
        let err = JsonlAppender::<u32>::resume(&path).unwrap_err().to_string();
        assert!(err.contains(":2:"), "{err}");
        // One appender at a time.
        std::fs::write(&path, "1\n").unwrap();
        let (held, _) = JsonlAppender::<u32>::resume(&path).unwrap();
        let err = JsonlAppender::<u32>::resume(&path).unwrap_err().to_string();
        assert!(err.contains("another process"), "{err}");
        drop(held);
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_errors_name_the_line_not_a_column() {
        let text = "\u{feff}{\"a\": 1}\n\n{\"a\": \"x\"}\n";
        let mut r = JsonlReader::<std::collections::BTreeMap<String, u32>, &[u8]>::new(text.as_bytes(), "f.jsonl");
        assert_eq!(r.next().unwrap().unwrap()["a"], 1);
        let err = r.next().unwrap().unwrap_err().to_string();
        assert!(err.starts_with("f.jsonl:3: invalid type") && !err.contains("column"), "{err}");
    }
}
