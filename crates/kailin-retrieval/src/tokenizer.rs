//! WordPiece tokenisation for BERT encoders, through the `tokenizers` crate: from a model's
//! `tokenizer.json`, or built from a bare `vocab.txt` the way `BertTokenizer` does.

use std::path::Path;

use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};

/// A BERT tokenizer: text → `[CLS] … [SEP]` ids, never padded (batches are padded by the
/// encoder), truncated at a maximum length.
#[derive(Debug, Clone)]
pub struct BertTokenizer {
    inner: tokenizers::Tokenizer,
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

impl BertTokenizer {
    /// From a Hugging Face `tokenizer.json`. Padding stored in the file is turned off (some
    /// models, all-MiniLM-L6-v2 among them, pad every input to a fixed length there).
    ///
    /// Errors: a missing or malformed file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut inner =
            tokenizers::Tokenizer::from_file(path).map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        inner.with_padding(None);
        Ok(BertTokenizer { inner })
    }

    /// From a WordPiece `vocab.txt` (one token per line; `[CLS]`, `[SEP]`, `[UNK]` among
    /// them), with BERT's normalisation (`lowercase` for uncased models) and pre-tokenisation.
    ///
    /// Errors: a missing file, or one without the special tokens.
    pub fn from_vocab(path: impl AsRef<Path>, lowercase: bool) -> Result<Self> {
        let path = path.as_ref();
        let file = path.to_str().ok_or_else(|| Error::Tokenizer(format!("{}: path is not UTF-8", path.display())))?;
        let model = WordPiece::from_file(file)
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        let special = |t: &str| -> Result<(String, u32)> {
            use tokenizers::Model;
            let id =
                model.token_to_id(t).ok_or_else(|| Error::Tokenizer(format!("{}: no {t} token", path.display())))?;
            Ok((t.to_owned(), id))
        };
        let (sep, cls) = (special("[SEP]")?, special("[CLS]")?);
        let mut inner = tokenizers::Tokenizer::new(model);
        inner.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase))).map_err(tok_err)?;
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner.with_post_processor(Some(BertProcessing::new(sep, cls)));
        Ok(BertTokenizer { inner })
    }

    /// From a model directory: `tokenizer.json` if present, else `vocab.txt` (lower-cased
    /// unless `tokenizer_config.json` says `do_lower_case: false`).
    ///
    /// Errors: neither file, or a malformed one.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Self::from_file(json);
        }
        let lowercase = std::fs::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("do_lower_case").and_then(serde_json::Value::as_bool))
            .unwrap_or(true);
        Self::from_vocab(dir.join("vocab.txt"), lowercase)
    }

    /// Truncates encodings to `max_len` tokens (special tokens included).
    ///
    /// Errors: a length too short to hold `[CLS]` and `[SEP]`.
    pub fn set_max_len(&mut self, max_len: usize) -> Result<()> {
        if max_len < 3 {
            return Err(Error::Invalid(format!("maximum length {max_len}: at least 3 tokens are needed")));
        }
        self.inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(tok_err)?;
        Ok(())
    }

    /// Token ids of `text` with `[CLS]` and `[SEP]`, truncated to the maximum length, and
    /// whether it was truncated.
    ///
    /// Errors: the tokenizer fails.
    pub fn encode(&self, text: &str) -> Result<(Vec<u32>, bool)> {
        // Only the text up to the window can count: tokenise a prefix that surely fills it, so
        // a megabyte line costs what a window does (same ids: see `window_prefix`).
        let max_len = self.inner.get_truncation().map(|t| t.max_length);
        let text = max_len.map_or(text, |n| window_prefix(text, n));
        let encoding = self.inner.encode(text, true).map_err(tok_err)?;
        let truncated = !encoding.get_overflowing().is_empty();
        Ok((encoding.get_ids().to_vec(), truncated))
    }

    /// The id of `token`, if in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

/// The start of `text` that holds `n` whitespace-separated chunks with a letter or digit, or
/// all of it. Each such chunk becomes at least one token (BERT's normaliser keeps letters and
/// digits, and its pre-tokeniser never joins chunks across whitespace), so the prefix already
/// fills a window of `n` tokens: truncated to the window, it gives the ids the whole text
/// would, and it overflows exactly when the whole text does.
fn window_prefix(text: &str, n: usize) -> &str {
    if text.len() <= 4 * n {
        return text;
    }
    let mut chunks = 0;
    let mut in_chunk_with_alnum = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_chunk_with_alnum {
                chunks += 1;
                if chunks == n {
                    return &text[..i];
                }
            }
            in_chunk_with_alnum = false;
        } else if c.is_alphanumeric() {
            in_chunk_with_alnum = true;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn long_texts_give_the_ids_of_the_whole_text() {
        let dir = tempfile::tempdir().unwrap();
        let vocab = dir.path().join("vocab.txt");
        std::fs::write(&vocab, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\ncell\ngene\n##s\n.\n,").unwrap();
        let mut tok = BertTokenizer::from_vocab(&vocab, true).unwrap();
        tok.set_max_len(8).unwrap();
        let texts = [
            "the cell ".repeat(50),
            format!("{} genes", " \t\n".repeat(400)),
            format!("{}the", ". , ".repeat(300)),
            format!("THE Cell{} genes the", "\u{0301} ".repeat(200)),
            "x".repeat(5000),
            "the".to_owned(),
        ];
        for text in texts {
            let whole = tok.inner.encode(text.as_str(), true).unwrap();
            let (ids, cut) = tok.encode(&text).unwrap();
            assert_eq!(ids, whole.get_ids(), "{text:.40?}");
            assert_eq!(cut, !whole.get_overflowing().is_empty(), "{text:.40?}");
        }
        assert_eq!(window_prefix(&"a b ".repeat(100), 3), "a b a");
    }
}
