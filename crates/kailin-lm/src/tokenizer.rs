//! Text ↔ token ids: Hugging Face `tokenizers` built from a `tokenizer.json` or from a GGUF
//! file's `tokenizer.ggml.*` metadata, with the special tokens and chat template that come with
//! the model.

use std::path::Path;

use serde_json::{Value as Json, json};

use crate::chat::ChatTemplate;
use crate::error::{Error, Result};
use crate::gguf::{Gguf, GgufValue};

/// A model's tokenizer, its special tokens and its chat template.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    template: Option<ChatTemplate>,
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

/// Llama 3's pre-tokenisation pattern (digits in groups of up to three).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's: Llama 3's with single digits.
const QWEN2_PATTERN: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

impl Tokenizer {
    /// Loads a Hugging Face model directory's `tokenizer.json`, with the special tokens and
    /// chat template of its `tokenizer_config.json` when present.
    pub fn from_hf_dir(dir: impl AsRef<Path>) -> Result<Tokenizer> {
        let dir = dir.as_ref();
        let file = dir.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&file).map_err(|e| tok_err(format!("{}: {e}", file.display())))?;
        let config_path = dir.join("tokenizer_config.json");
        let config: Json = match std::fs::read_to_string(&config_path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| Error::Config { origin: config_path.display().to_string(), message: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Json::Null,
            Err(source) => return Err(Error::Io { path: config_path, error: source }),
        };
        // A special token is a string, or an object with a "content" field.
        let token = |key: &str| match config.get(key) {
            Some(Json::String(s)) => Some(s.clone()),
            Some(Json::Object(o)) => o.get("content").and_then(Json::as_str).map(str::to_owned),
            _ => None,
        };
        let (bos_text, eos_text) = (token("bos_token"), token("eos_token"));
        let bos = bos_text.as_deref().and_then(|t| inner.token_to_id(t));
        let eos = eos_text.as_deref().and_then(|t| inner.token_to_id(t));
        let add_bos = config.get("add_bos_token").and_then(Json::as_bool).unwrap_or(false);
        let template = match config.get("chat_template") {
            Some(Json::String(source)) => Some(ChatTemplate::new(source, bos_text, eos_text)?),
            // A list of named templates: take "default".
            Some(Json::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Json::as_str) == Some("default"))
                .and_then(|t| t.get("template").and_then(Json::as_str))
                .map(|source| ChatTemplate::new(source, bos_text, eos_text))
                .transpose()?,
            _ => None,
        };
        Ok(Tokenizer { inner, bos, eos, add_bos, template })
    }

    /// Writes `tokenizer.json` and a `tokenizer_config.json` (special tokens, `add_bos_token`,
    /// chat template) into `dir`, created if missing: what [`Tokenizer::from_hf_dir`] and
    /// `transformers` read. Each file is written whole or not at all.
    pub fn save_hf_dir(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|error| Error::Io { path: dir.to_owned(), error })?;
        let text = self.inner.to_string(false).map_err(tok_err)?;
        kailin_core::write_atomic(dir.join("tokenizer.json"), text.as_bytes())?;
        let token = |id: Option<u32>| id.and_then(|i| self.inner.id_to_token(i));
        let mut config = json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": self.add_bos,
            "bos_token": token(self.bos),
            "eos_token": token(self.eos),
        });
        if let Some(template) = &self.template {
            config["chat_template"] = json!(template.source());
        }
        let text = serde_json::to_string_pretty(&config).map_err(tok_err)?;
        Ok(kailin_core::write_atomic(dir.join("tokenizer_config.json"), text.as_bytes())?)
    }

    /// Builds the tokenizer described by a GGUF file's metadata: byte-level BPE
    /// (`tokenizer.ggml.model = gpt2`) with its tokens, merges and token types, the
    /// pre-tokenizer named by `tokenizer.ggml.pre` (`default`/`gpt-2`, `smollm`, `llama-bpe`,
    /// `qwen2`), special ids, and `tokenizer.chat_template`.
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer> {
        let meta = |key: &str| g.get(key);
        let model = meta("tokenizer.ggml.model").and_then(GgufValue::as_str).unwrap_or("");
        if model != "gpt2" {
            return Err(tok_err(format!(
                "tokenizer.ggml.model {model:?} is not supported (byte-level BPE, \"gpt2\", is)"
            )));
        }
        let strings = |key: &str| -> Result<Vec<&str>> {
            let list = meta(key).and_then(GgufValue::as_array).ok_or_else(|| tok_err(format!("{key} missing")))?;
            list.iter().map(|v| v.as_str().ok_or_else(|| tok_err(format!("{key} holds a non-string")))).collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?;
        let types: Vec<u64> = meta("tokenizer.ggml.token_type")
            .and_then(GgufValue::as_array)
            .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(1)).collect())
            .unwrap_or_default();
        let mut vocab = serde_json::Map::with_capacity(tokens.len());
        let mut added = Vec::new();
        for (id, &token) in tokens.iter().enumerate() {
            vocab.insert(token.to_owned(), json!(id));
            // 3: control (special), 4: user-defined.
            let kind = types.get(id).copied().unwrap_or(1);
            if kind == 3 || kind == 4 {
                added.push(json!({"id": id, "content": token, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": kind == 3}));
            }
        }
        let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
        let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
        let pre = meta("tokenizer.ggml.pre").and_then(GgufValue::as_str).unwrap_or("default");
        let pre_tokenizer = match pre {
            "default" | "gpt-2" | "gpt2" => byte_level(true),
            "smollm" => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
            "llama-bpe" | "llama3" => {
                json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_PATTERN), byte_level(false)]})
            }
            "qwen2" => json!({"type": "Sequence", "pretokenizers": [split(QWEN2_PATTERN), byte_level(false)]}),
            other => return Err(tok_err(format!("tokenizer.ggml.pre {other:?} is not supported"))),
        };
        let spec = json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
            "normalizer": null, "pre_tokenizer": pre_tokenizer, "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merges},
        });
        let inner: tokenizers::Tokenizer = spec.to_string().parse().map_err(tok_err)?;
        let id = |key: &str| {
            meta(key)
                .and_then(GgufValue::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .filter(|&v| (v as usize) < tokens.len())
        };
        let (bos, eos) = (id("tokenizer.ggml.bos_token_id"), id("tokenizer.ggml.eos_token_id"));
        let text = |id: Option<u32>| id.map(|i| tokens[i as usize].to_owned());
        let add_bos = matches!(meta("tokenizer.ggml.add_bos_token"), Some(GgufValue::Bool(true)));
        let template = meta("tokenizer.chat_template")
            .and_then(GgufValue::as_str)
            .map(|source| ChatTemplate::new(source, text(bos), text(eos)))
            .transpose()?;
        Ok(Tokenizer { inner, bos, eos, add_bos, template })
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`) become their
    /// ids. With `add_bos`, the beginning-of-sequence token is prepended when the model asks
    /// for it (`add_bos_token`).
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>> {
        let encoding = self.inner.encode_fast(text, false).map_err(tok_err)?;
        let mut ids = Vec::with_capacity(encoding.len() + 1);
        if add_bos && self.add_bos {
            ids.extend(self.bos);
        }
        ids.extend_from_slice(encoding.get_ids());
        Ok(ids)
    }

    /// The text of `ids`; special tokens are left out when `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(tok_err)
    }

    /// The id of a token written as it is in the vocabulary (e.g. `<|im_end|>`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Number of ids (vocabulary and added tokens).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The beginning-of-sequence id, if the model has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence id, if the model has one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// The model's chat template, if it ships one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    /// The ids that end a generation: end-of-sequence, and the end-of-turn markers of common
    /// chat formats present in the vocabulary (`<|im_end|>`, `<|eot_id|>`, `<|end|>`).
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.eos.into_iter().collect();
        for marker in ["<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>"] {
            if let Some(id) = self.token_id(marker).filter(|id| !ids.contains(id)) {
                ids.push(id);
            }
        }
        ids
    }
}
/// The text of a growing token sequence, released piece by piece for streaming: each
/// [`push`](Self::push) returns what the new token adds, holding back a multi-byte character
/// split across tokens until its last byte arrives (the whole sequence is decoded each time, so
/// tokenizers whose pieces depend on their neighbours decode exactly as [`Tokenizer::decode`]).
#[derive(Debug)]
pub struct TextStream<'t> {
    tokenizer: &'t Tokenizer,
    skip_special: bool,
    ids: Vec<u32>,
    text: String,
    released: usize,
}

impl<'t> TextStream<'t> {
    /// An empty stream; special tokens are left out of the text when `skip_special`.
    pub fn new(tokenizer: &'t Tokenizer, skip_special: bool) -> Self {
        TextStream { tokenizer, skip_special, ids: Vec::new(), text: String::new(), released: 0 }
    }

    /// Adds a token; returns the text it completes (empty while a character is incomplete).
    pub fn push(&mut self, id: u32) -> Result<&str> {
        self.ids.push(id);
        self.text = self.tokenizer.decode(&self.ids, self.skip_special)?;
        let start = self.released;
        let whole = self.text.len() > start && self.text.is_char_boundary(start) && !self.text.ends_with('\u{FFFD}');
        if !whole {
            return Ok("");
        }
        self.released = self.text.len();
        Ok(&self.text[start..])
    }

    /// Everything decoded so far, released or not.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The tokens so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The text not yet released (what a stream ending on an incomplete character still owes).
    pub fn rest(&self) -> &str {
        self.text.get(self.released..).unwrap_or("")
    }
}
