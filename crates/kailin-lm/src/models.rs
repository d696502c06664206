//! Where the default models live. Nothing here downloads: `cargo xtask fetch-models` fills the
//! directory (and resolves it the same way).

use std::path::PathBuf;

/// The model cache: `$KAILIN_MODELS`, else `$XDG_CACHE_HOME/kailin/models`, else
/// `~/.cache/kailin/models`; `None` when none of these variables is set.
pub fn models_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KAILIN_MODELS") {
        return Some(dir.into());
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|cache| cache.join("kailin/models"))
}

/// The default SmolLM2-135M-Instruct GGUF file inside [`models_dir`].
pub fn smollm2_gguf() -> Option<PathBuf> {
    models_dir().map(|d| d.join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"))
}

/// Loads a model and its tokenizer from `path`: a GGUF file, or a Hugging Face directory
/// (`config.json`, safetensors, `tokenizer.json`). `max_positions` bounds prompt plus
/// generated tokens.
pub fn load<B: burn::prelude::Backend>(
    path: impl AsRef<std::path::Path>,
    max_positions: usize,
    device: &B::Device,
) -> crate::Result<(crate::Llama<B>, crate::LlamaConfig, crate::Tokenizer)> {
    let path = path.as_ref();
    if path.is_dir() {
        let (model, config) = crate::Llama::from_hf_dir(path, max_positions, device)?;
        return Ok((model, config, crate::Tokenizer::from_hf_dir(path)?));
    }
    let gguf = crate::Gguf::open(path)?;
    let (model, config) = crate::Llama::from_gguf(&gguf, max_positions, device)?;
    Ok((model, config, crate::Tokenizer::from_gguf(&gguf)?))
}

/// What identifies a model's weights and tokenizer, for what records the model it was made
/// from (checkpoints, resumable outputs, stage keys): a GGUF file's digest, or for a Hugging
/// Face directory the digests of its `config.json`, tokenizer files and safetensors (not its
/// checkpoints or reports), by name. Two copies of one model have the same digest; a model
/// changed in place gets another.
pub fn model_digest(path: impl AsRef<std::path::Path>) -> crate::Result<String> {
    let path = path.as_ref();
    if !path.is_dir() {
        return Ok(kailin_core::digest_file(path)?);
    }
    Ok(kailin_core::digest_dir(path, |n| {
        n == "config.json"
            || n == "tokenizer.json"
            || n == "tokenizer_config.json"
            || n == "model.safetensors.index.json"
            || n.ends_with(".safetensors")
    })?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn a_model_directory_digest_changes_with_its_weights_not_its_reports() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        std::fs::write(dir.path().join("model.safetensors"), "a").unwrap();
        let first = super::model_digest(dir.path()).unwrap();
        std::fs::write(dir.path().join("report.json"), "{}").unwrap();
        assert_eq!(super::model_digest(dir.path()).unwrap(), first);
        std::fs::write(dir.path().join("model.safetensors"), "b").unwrap();
        assert_ne!(super::model_digest(dir.path()).unwrap(), first);
        assert!(super::model_digest(dir.path().join("missing.gguf")).is_err());
    }
}
