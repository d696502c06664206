//! Loading a BERT checkpoint from Hugging Face safetensors through burn's store.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn_store::{
    ApplyError, BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};

use super::{Bert, BertConfig};
use crate::error::{Error, Result};

/// How Hugging Face BERT tensor names map onto this crate's module paths (regular expression,
/// replacement). An optional `bert.` prefix (checkpoints saved from `BertFor…` heads, such as
/// BiomedBERT's) is dropped; the pooler and the MLM head are not used.
pub const BERT_NAME_MAP: &[(&str, &str)] = &[
    (r"^(?:bert\.)?embeddings\.word_embeddings\.weight$", "embeddings.word.weight"),
    (r"^(?:bert\.)?embeddings\.position_embeddings\.weight$", "embeddings.position.weight"),
    (r"^(?:bert\.)?embeddings\.token_type_embeddings\.weight$", "embeddings.token_type.weight"),
    (r"^(?:bert\.)?embeddings\.LayerNorm\.(?:weight|gamma)$", "embeddings.norm.gamma"),
    (r"^(?:bert\.)?embeddings\.LayerNorm\.(?:bias|beta)$", "embeddings.norm.beta"),
    (
        r"^(?:bert\.)?encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.(weight|bias)$",
        "layers.$1.attention.$2.$3",
    ),
    (r"^(?:bert\.)?encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)$", "layers.$1.attention.output.$2"),
    (
        r"^(?:bert\.)?encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.(?:weight|gamma)$",
        "layers.$1.attention_norm.gamma",
    ),
    (
        r"^(?:bert\.)?encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.(?:bias|beta)$",
        "layers.$1.attention_norm.beta",
    ),
    (r"^(?:bert\.)?encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)$", "layers.$1.ffn.up.$2"),
    (r"^(?:bert\.)?encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)$", "layers.$1.ffn.down.$2"),
    (r"^(?:bert\.)?encoder\.layer\.(\d+)\.output\.LayerNorm\.(?:weight|gamma)$", "layers.$1.ffn_norm.gamma"),
    (r"^(?:bert\.)?encoder\.layer\.(\d+)\.output\.LayerNorm\.(?:bias|beta)$", "layers.$1.ffn_norm.beta"),
];

/// The inverse of [`BERT_NAME_MAP`] for export: this crate's module paths (after burn's
/// PyTorch adapter has renamed layer norms' `gamma`/`beta` to `weight`/`bias`) onto Hugging
/// Face BERT names, without a prefix (as sentence-transformers saves them). A test holds the
/// two tables to each other: every exported name loads back onto the path it came from.
pub const BERT_EXPORT_NAMES: &[(&str, &str)] = &[
    (r"^embeddings\.word\.weight$", "embeddings.word_embeddings.weight"),
    (r"^embeddings\.position\.weight$", "embeddings.position_embeddings.weight"),
    (r"^embeddings\.token_type\.weight$", "embeddings.token_type_embeddings.weight"),
    (r"^embeddings\.norm\.(weight|bias)$", "embeddings.LayerNorm.$1"),
    (r"^layers\.(\d+)\.attention\.(query|key|value)\.(weight|bias)$", "encoder.layer.$1.attention.self.$2.$3"),
    (r"^layers\.(\d+)\.attention\.output\.(weight|bias)$", "encoder.layer.$1.attention.output.dense.$2"),
    (r"^layers\.(\d+)\.attention_norm\.(weight|bias)$", "encoder.layer.$1.attention.output.LayerNorm.$2"),
    (r"^layers\.(\d+)\.ffn\.up\.(weight|bias)$", "encoder.layer.$1.intermediate.dense.$2"),
    (r"^layers\.(\d+)\.ffn\.down\.(weight|bias)$", "encoder.layer.$1.output.dense.$2"),
    (r"^layers\.(\d+)\.ffn_norm\.(weight|bias)$", "encoder.layer.$1.output.LayerNorm.$2"),
];

impl<B: Backend> Bert<B> {
    /// Writes the weights as a Hugging Face BERT `model.safetensors` (f32, PyTorch layouts,
    /// names per [`BERT_EXPORT_NAMES`], `format: pt` metadata as `transformers` requires):
    /// what [`from_safetensors`](Self::from_safetensors), `transformers` and
    /// sentence-transformers load. The file is written in place: callers that need it whole
    /// or not at all write into a `kailin-core` `AtomicDir`.
    ///
    /// Errors: the file cannot be written.
    pub fn save_safetensors(&self, file: &Path) -> Result<()> {
        let remap = KeyRemapper::from_patterns(BERT_EXPORT_NAMES.to_vec())
            .map_err(|e| Error::Weight { tensor: "BERT_EXPORT_NAMES".into(), message: e.to_string() })?;
        let mut store = SafetensorsStore::from_file(file)
            .with_to_adapter(BurnToPyTorchAdapter)
            .remap(remap)
            .metadata("format", "pt");
        self.save_into(&mut store)
            .map_err(|e| Error::Weight { tensor: file.display().to_string(), message: e.to_string() })
    }

    /// Loads `config.json` and `model.safetensors` from a Hugging Face model directory.
    ///
    /// Errors: see [`BertConfig::from_hf_file`] and [`Bert::from_safetensors`].
    pub fn from_hf_dir(dir: impl AsRef<Path>, device: &B::Device) -> Result<(Self, BertConfig)> {
        let dir = dir.as_ref();
        let config = BertConfig::from_hf_file(dir.join("config.json"))?;
        let model = Self::from_safetensors(&config, &dir.join("model.safetensors"), device)?;
        Ok((model, config))
    }

    /// A model of `config`'s sizes with the weights of a safetensors file (f32; names per
    /// [`BERT_NAME_MAP`]).
    ///
    /// Errors: a missing or malformed file, a weight of the wrong shape, or one missing.
    pub fn from_safetensors(config: &BertConfig, file: &Path, device: &B::Device) -> Result<Self> {
        if !file.is_file() {
            let error = std::io::Error::new(std::io::ErrorKind::NotFound, "no such safetensors file");
            return Err(Error::Io { path: file.to_path_buf(), error });
        }
        load(config, file.to_path_buf(), SafetensorsStore::from_file(file), device)
    }

    /// Like [`from_safetensors`](Self::from_safetensors), from bytes in memory.
    ///
    /// Errors: as for [`from_safetensors`](Self::from_safetensors).
    pub fn from_safetensors_bytes(config: &BertConfig, bytes: Vec<u8>, device: &B::Device) -> Result<Self> {
        load(config, "<memory>".into(), SafetensorsStore::from_bytes(Some(bytes)), device)
    }
}

fn load<B: Backend>(
    config: &BertConfig,
    origin: PathBuf,
    store: SafetensorsStore,
    device: &B::Device,
) -> Result<Bert<B>> {
    let mut model = config.init::<B>(device);
    let remap = KeyRemapper::from_patterns(BERT_NAME_MAP.to_vec())
        .map_err(|e| Error::Weight { tensor: "BERT_NAME_MAP".into(), message: e.to_string() })?;
    let mut store = store.with_from_adapter(PyTorchToBurnAdapter).remap(remap).validate(false).allow_partial(true);
    let origin = origin.display().to_string();
    let result =
        model.load_from(&mut store).map_err(|e| Error::Weight { tensor: origin.clone(), message: e.to_string() })?;
    if let Some(e) = result.errors.first() {
        return Err(match e {
            ApplyError::ShapeMismatch { path, expected, found } => Error::Weight {
                tensor: format!("{origin}: {path}"),
                message: format!("expected shape {expected:?}, found {found:?}"),
            },
            other => Error::Weight { tensor: origin.clone(), message: other.to_string() },
        });
    }
    let applied: BTreeSet<String> = result.applied.into_iter().collect();
    if let Some((missing, _)) = result.missing.iter().find(|(path, _)| !applied.contains(path)) {
        return Err(Error::Weight { tensor: missing.clone(), message: format!("missing from {origin}") });
    }
    // The PyTorch→burn adapter transposes weights lazily: a transposed view is copied to a
    // contiguous layout on every product. Make each weight contiguous once, here.
    for layer in &mut model.layers {
        let a = &mut layer.attention;
        for linear in [&mut a.query, &mut a.key, &mut a.value, &mut a.output, &mut layer.ffn.up, &mut layer.ffn.down] {
            linear.weight = linear.weight.clone().map(|w| {
                let device = w.device();
                Tensor::from_data(w.into_data(), &device)
            });
        }
    }
    Ok(model)
}
