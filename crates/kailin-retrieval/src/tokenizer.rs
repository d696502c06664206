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
        let encoding = self.inner.encode(text, true).map_err(tok_err)?;
        let truncated = !encoding.get_overflowing().is_empty();
        Ok((encoding.get_ids().to_vec(), truncated))
    }

    /// The id of `token`, if in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}
