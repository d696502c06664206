//! An encoder written back as a model directory in sentence-transformers' layout: what
//! [`EncoderBuilder`](crate::EncoderBuilder), `kailin retrieve build --model` and Python's
//! sentence-transformers load.

use std::path::{Path, PathBuf};

use burn::prelude::*;

use crate::encoder::{Encoder, Pooling};
use crate::error::{Error, Result};

/// The source directory's files an export keeps as they are: the BERT configuration and the
/// tokenizer's files. Weights are written anew; pooling, normalisation and window are written
/// from the encoder's own settings.
const KEPT: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "config_sentence_transformers.json",
];

impl<B: Backend> Encoder<B> {
    /// The directory the encoder was loaded from; `None` when made from parts.
    pub fn source_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Writes the encoder as a model directory `out`, whole or not at all (`kailin-core`'s
    /// `AtomicDir`; an existing directory there is replaced): the loaded directory's
    /// configuration and tokenizer files, `model.safetensors` with the current weights
    /// ([`Bert::save_safetensors`](crate::Bert::save_safetensors)), and sentence-transformers'
    /// `modules.json`, `1_Pooling/config.json` (this encoder's pooling) and
    /// `sentence_bert_config.json` (its window).
    ///
    /// Errors: an encoder made with [`from_parts`](Self::from_parts) (no directory to take
    /// the tokenizer and configuration from), `out` being the directory it was loaded from,
    /// or a file that cannot be read or written.
    pub fn save_dir(&self, out: &Path) -> Result<PathBuf> {
        let Some(dir) = self.source_dir() else {
            return Err(Error::Invalid(
                "this encoder was made from parts: it has no directory to take its tokenizer and configuration from"
                    .into(),
            ));
        };
        if let (Ok(a), Ok(b)) = (dir.canonicalize(), out.canonicalize())
            && a == b
        {
            return Err(Error::Invalid(format!("{} is the directory the encoder was loaded from", out.display())));
        }
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
        }
        let tmp = kailin_core::AtomicDir::create(out)?;
        let into = tmp.path();
        for name in KEPT {
            let from = dir.join(name);
            if from.is_file() {
                let bytes = std::fs::read(&from).map_err(Error::io(&from))?;
                write(&into.join(name), &bytes)?;
            } else if *name == "config.json" {
                return Err(Error::io(&from)(std::io::Error::new(std::io::ErrorKind::NotFound, "no config.json")));
            }
        }
        self.bert().save_safetensors(&into.join("model.safetensors"))?;
        let mut modules = vec![
            serde_json::json!({"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}),
            serde_json::json!({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}),
        ];
        if self.normalizes() {
            modules.push(
                serde_json::json!({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}),
            );
            let normalize = into.join("2_Normalize");
            std::fs::create_dir_all(&normalize).map_err(Error::io(&normalize))?;
        }
        write_json(&into.join("modules.json"), &serde_json::Value::Array(modules))?;
        let pooling = into.join("1_Pooling");
        std::fs::create_dir_all(&pooling).map_err(Error::io(&pooling))?;
        let (cls, mean) = (self.pooling() == Pooling::Cls, self.pooling() == Pooling::Mean);
        write_json(
            &pooling.join("config.json"),
            &serde_json::json!({
                "word_embedding_dimension": self.dim(),
                "pooling_mode_cls_token": cls,
                "pooling_mode_mean_tokens": mean,
                "pooling_mode_max_tokens": false,
                "pooling_mode_mean_sqrt_len_tokens": false,
            }),
        )?;
        write_json(
            &into.join("sentence_bert_config.json"),
            &serde_json::json!({"max_seq_length": self.max_len(), "do_lower_case": false}),
        )?;
        Ok(tmp.commit()?)
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(Error::io(path))
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Invalid(e.to_string()))?;
    write(path, text.as_bytes())
}
