//! The models a run starts from: resolved from the configuration, with their digests (part
//! of every stage's key, so a model changed in place reruns what it made).

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::stages;
use crate::tiny::{TINY_WORDS, tiny_bert_vocab, write_tiny_bert, write_tiny_llama};

/// The models a configuration names, resolved: `smollm2` and `minilm` from the model cache
/// (`kailin_lm::models_dir`), `tiny` written under `out/models/`, anything else a path. With
/// `models.encoder = "domain"` the encoder is `encoder.base`, the one the run's `encoder` stage
/// fine-tunes.
///
/// Errors: [`Error::Missing`] with the fix (fetch the models, or correct the path).
pub fn resolve_models(config: &Config, out: &Path) -> Result<(PathBuf, PathBuf)> {
    let cache = kailin_lm::models_dir().unwrap_or_else(|| PathBuf::from(".cache/kailin/models"));
    let fetch = "run `cargo xtask fetch-models` (or set $KAILIN_MODELS to the model cache)";
    let base = match config.models.base.as_str() {
        "smollm2" => kailin_lm::smollm2_gguf().unwrap_or_else(|| cache.join("smollm2-135m-instruct")),
        "tiny" => {
            let dir = out.join("models/tiny-llama");
            if !dir.join("config.json").exists() {
                write_tiny_llama(&dir, TINY_WORDS, true, 256)?;
            }
            dir
        }
        path => PathBuf::from(path),
    };
    let named = match config.models.encoder.as_str() {
        "domain" => config.encoder.base.as_str(),
        other => other,
    };
    let encoder = match named {
        "minilm" => cache.join("all-minilm-l6-v2"),
        "tiny" => {
            let dir = out.join("models/tiny-bert");
            if !dir.join("config.json").exists() {
                write_tiny_bert(&dir, &tiny_bert_vocab(), 128)?;
            }
            dir
        }
        path => PathBuf::from(path),
    };
    let encoder_key =
        if config.models.encoder == "domain" { "the encoder (encoder.base)" } else { "the encoder (models.encoder)" };
    for (what, path) in [("the base model (models.base)", &base), (encoder_key, &encoder)] {
        if !path.exists() {
            return Err(Error::Missing { what: what.into(), path: path.clone(), fix: fetch.into() });
        }
    }
    Ok((base, encoder))
}

/// The models and their digests.
pub(crate) fn models(config: &Config, out: &Path) -> Result<stages::Models> {
    let (base, encoder) = resolve_models(config, out)?;
    let identity = serde_json::json!({
        "base": kailin_lm::model_digest(&base).map_err(|e| Error::Lib(Box::new(e)))?,
        "encoder": encoder_digest(&encoder)?,
    });
    Ok(stages::Models { base, encoder, identity })
}

/// The encoder directory's digest (its configuration, vocabulary and weights).
fn encoder_digest(dir: &Path) -> Result<String> {
    kailin_core::digest_dir(dir, |n| n.ends_with(".json") || n.ends_with(".safetensors") || n == "vocab.txt")
        .map_err(Error::from_core)
}
