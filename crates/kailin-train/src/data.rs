//! Datasets in the JSON Lines shapes of `kailin-corpus` (and of TRL, LLaMA-Factory, axolotl):
//! `{"text"}` for CPT, `{"prompt","completion"}` or `{"messages"}` for SFT,
//! `{"prompt","chosen","rejected"}` for DPO. Every record is checked on reading; errors name
//! the file and line.

use std::path::{Path, PathBuf};

use kailin_core::JsonlReader;
pub use kailin_core::{ChatExample, CompletionExample, DpoExample, Message, RetrievalPair, TextExample};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A record and the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lined<T> {
    /// 1-based line number in its file.
    pub line: u64,
    /// The record.
    pub record: T,
}

/// A dataset read from one JSON Lines file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset<T> {
    /// The file.
    pub path: PathBuf,
    /// Its records, in file order.
    pub records: Vec<Lined<T>>,
}

/// An SFT record in either shape.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    untagged,
    expecting = "an SFT record: {\"prompt\", \"completion\"} or {\"messages\": [{\"role\", \"content\"}, …]}"
)]
pub enum SftExample {
    /// `{"messages": [...]}`: the last message is the assistant's answer, trained on.
    Chat(ChatExample),
    /// `{"prompt", "completion"}`.
    Completion(CompletionExample),
}

fn read<T: DeserializeOwned>(path: &Path, check: impl Fn(&T) -> Option<String>) -> Result<Dataset<T>> {
    let mut records = Vec::new();
    let mut reader = JsonlReader::<T>::open(path)?;
    while let Some(record) = reader.next() {
        let record = record?;
        let line = reader.line();
        if let Some(reason) = check(&record) {
            return Err(Error::BadRecord { path: path.to_owned(), line, reason });
        }
        records.push(Lined { line, record });
    }
    if records.is_empty() {
        return Err(Error::EmptyDataset { path: path.to_owned() });
    }
    Ok(Dataset { path: path.to_owned(), records })
}

fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// Reads a CPT dataset (`{"text"}` per line). Errors: unreadable file, a line of another
/// shape, an empty text, no records.
pub fn read_text_dataset(path: impl AsRef<Path>) -> Result<Dataset<TextExample>> {
    read(path.as_ref(), |r: &TextExample| blank(&r.text).then(|| "empty \"text\"".to_owned()))
}

/// Reads an SFT dataset (`{"prompt","completion"}` or `{"messages"}` per line). Errors: as
/// [`read_text_dataset`]; an empty completion; a conversation that does not end with an
/// assistant message.
pub fn read_sft_dataset(path: impl AsRef<Path>) -> Result<Dataset<SftExample>> {
    read(path.as_ref(), |r: &SftExample| match r {
        SftExample::Completion(c) if blank(&c.completion) => Some("empty \"completion\"".to_owned()),
        SftExample::Chat(c) => match c.messages.last() {
            None => Some("no messages".to_owned()),
            Some(m) if m.role != "assistant" => {
                Some(format!("the last message is from \"{}\", not the assistant: nothing to learn", m.role))
            }
            Some(m) if blank(&m.content) => Some("empty assistant message".to_owned()),
            Some(_) => None,
        },
        SftExample::Completion(_) => None,
    })
}

/// Reads a DPO dataset (`{"prompt","chosen","rejected"}` per line). Errors: as
/// [`read_text_dataset`]; an empty prompt or completion; a chosen equal to its rejected (the
/// pair carries no preference).
pub fn read_dpo_dataset(path: impl AsRef<Path>) -> Result<Dataset<DpoExample>> {
    read(path.as_ref(), |r: &DpoExample| {
        if blank(&r.prompt) {
            Some("empty \"prompt\"".to_owned())
        } else if blank(&r.chosen) || blank(&r.rejected) {
            Some("empty \"chosen\" or \"rejected\"".to_owned())
        } else if r.chosen == r.rejected {
            Some("\"chosen\" equals \"rejected\": the pair states no preference".to_owned())
        } else {
            None
        }
    })
}

/// Reads retrieval pairs (`{"query","positive","negatives"}` per line, `negatives`
/// optional). Errors: as [`read_text_dataset`]; an empty query, positive or negative; a
/// negative equal to the positive.
pub fn read_pairs_dataset(path: impl AsRef<Path>) -> Result<Dataset<RetrievalPair>> {
    read(path.as_ref(), |r: &RetrievalPair| {
        if blank(&r.query) {
            Some("empty \"query\"".to_owned())
        } else if blank(&r.positive) {
            Some("empty \"positive\"".to_owned())
        } else if let Some(i) = r.negatives.iter().position(|n| blank(n)) {
            Some(format!("empty negative {i}"))
        } else if r.negatives.iter().any(|n| n.trim() == r.positive.trim()) {
            Some("a negative equals the positive".to_owned())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("data.jsonl");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        (dir, path)
    }

    #[test]
    fn both_sft_shapes_are_read_with_their_lines() {
        let (_d, p) = file(concat!(
            "{\"prompt\":\"Q?\",\"completion\":\"A.\"}\n",
            "\n",
            "{\"messages\":[{\"role\":\"user\",\"content\":\"Q?\"},{\"role\":\"assistant\",\"content\":\"A.\"}]}\n",
        ));
        let d = read_sft_dataset(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.records.len(), 2);
        assert!(matches!(d.records[0].record, SftExample::Completion(_)));
        assert!(matches!(d.records[1].record, SftExample::Chat(_)));
        assert_eq!(d.records[1].line, 3);
    }

    #[test]
    fn bad_records_are_named_by_file_and_line() {
        let (_d, p) = file(
            "{\"prompt\":\"P\",\"chosen\":\"a\",\"rejected\":\"b\"}\n{\"prompt\":\"P\",\"chosen\":\"x\",\"rejected\":\"x\"}\n",
        );
        let err = read_dpo_dataset(&p).unwrap_err();
        assert!(matches!(&err, Error::BadRecord { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("data.jsonl:2"), "{err}");

        let (_d, p) = file("\n\n");
        assert!(matches!(read_text_dataset(&p), Err(Error::EmptyDataset { .. })));

        let (_d, p) = file("{\"text\":\"ok\"}\n{\"txt\":\"typo\"}\n");
        let err = read_text_dataset(&p).unwrap_err();
        assert!(err.to_string().contains(":2"), "{err}");

        let (_d, p) = file("{\"messages\":[{\"role\":\"user\",\"content\":\"Q?\"}]}\n");
        assert!(matches!(read_sft_dataset(&p), Err(Error::BadRecord { line: 1, .. })));

        let missing = read_text_dataset("/nonexistent/data.jsonl").unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/data.jsonl"), "{missing}");
    }
}
