//! Loading a Llama-family model from Hugging Face safetensors files through burn's store.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use burn::prelude::*;
use burn::tensor::DType;
use burn_store::{
    ApplyError, KeyRemapper, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore, TensorSnapshot,
};

use super::{Llama, LlamaConfig, hf_name_map};
use crate::error::{Error, Result};

/// Widens f16/bf16/f64 tensors to f32 as they are read.
#[derive(Debug, Clone, Copy)]
struct ToF32;

impl ModuleAdapter for ToF32 {
    fn adapt(&self, snapshot: &TensorSnapshot) -> TensorSnapshot {
        if !matches!(snapshot.dtype, DType::F16 | DType::BF16 | DType::F64) {
            return snapshot.clone();
        }
        let data = snapshot.clone_data_fn();
        TensorSnapshot::from_closure(
            Rc::new(move || Ok(data()?.convert_dtype(DType::F32))),
            DType::F32,
            snapshot.shape.clone(),
            snapshot.path_stack.clone().unwrap_or_default(),
            snapshot.container_stack.clone().unwrap_or_default(),
            snapshot.tensor_id.unwrap_or_default(),
        )
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(*self)
    }
}

/// The safetensors files of a Hugging Face model directory: `model.safetensors`, or the
/// shards named by `model.safetensors.index.json`.
pub(crate) fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&index).map_err(|source| Error::Io { path: index.clone(), error: source })?;
    let bad = |message: String| Error::Config { origin: index.display().to_string(), message };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| bad("no weight_map object".into()))?;
    let mut files = BTreeSet::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| bad(format!("weight_map[{tensor:?}] is not a file name")))?;
        // A shard name is a plain file name inside the directory, nothing else.
        if file.is_empty() || file.contains(['/', '\\']) || file == ".." {
            return Err(bad(format!("weight_map[{tensor:?}] = {file:?} is not a file in the model directory")));
        }
        files.insert(dir.join(file));
    }
    if files.is_empty() {
        return Err(bad("weight_map is empty".into()));
    }
    Ok(files.into_iter().collect())
}

impl<B: Backend> Llama<B> {
    /// Loads a Hugging Face model directory: `config.json` (see
    /// [`LlamaConfig::from_hf_file`]) and `model.safetensors` or the shards of
    /// `model.safetensors.index.json` (f32, f16 or bf16).
    pub fn from_hf_dir(dir: impl AsRef<Path>, max_positions: usize, device: &B::Device) -> Result<(Self, LlamaConfig)> {
        let dir = dir.as_ref();
        let config = LlamaConfig::from_hf_file(dir.join("config.json"))?;
        let model = Self::from_safetensors(&config, &safetensors_files(dir)?, max_positions, device)?;
        Ok((model, config))
    }

    /// Loads weights in Hugging Face naming ([`Weight`](super::Weight)) from one or more safetensors
    /// files (the shards of one checkpoint) into a model of `config`. Every weight the
    /// architecture needs must be present exactly once with its shape; tensors the
    /// architecture does not use (e.g. `lm_head.weight` of a tied model) are ignored.
    pub fn from_safetensors(
        config: &LlamaConfig,
        files: &[PathBuf],
        max_positions: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let mut stores = Vec::with_capacity(files.len());
        for file in files {
            if !file.is_file() {
                let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no such safetensors file");
                return Err(Error::Io { path: file.clone(), error: source });
            }
            // Memory-mapped; the safetensors crate checks the untrusted header (lengths,
            // offsets, overlaps) before any tensor is read.
            stores.push((file.display().to_string(), SafetensorsStore::from_file(file)));
        }
        load(config, stores, max_positions, device)
    }

    /// [`from_safetensors`](Self::from_safetensors) for one safetensors file held in memory.
    pub fn from_safetensors_bytes(
        config: &LlamaConfig,
        bytes: Vec<u8>,
        max_positions: usize,
        device: &B::Device,
    ) -> Result<Self> {
        load(config, vec![("<memory>".into(), SafetensorsStore::from_bytes(Some(bytes)))], max_positions, device)
    }
}

fn load<B: Backend>(
    config: &LlamaConfig,
    stores: Vec<(String, SafetensorsStore)>,
    max_positions: usize,
    device: &B::Device,
) -> Result<Llama<B>> {
    let mut model = config.init::<B>(max_positions, device);
    // Hugging Face names onto module paths; linear weights are also transposed from PyTorch's
    // `[out, in]` to burn's `[in, out]`, and f16/bf16 values widened to f32.
    let remap = KeyRemapper::from_patterns(hf_name_map())
        .map_err(|e| Error::Config { origin: "the weight-name table".into(), message: e.to_string() })?;
    let mut applied = BTreeSet::new();
    let mut wanted = BTreeSet::new();
    for (origin, store) in stores {
        let mut store = store
            .with_from_adapter(PyTorchToBurnAdapter.chain(ToF32))
            .remap(remap.clone())
            .validate(false)
            .allow_partial(true);
        let result = model
            .load_from(&mut store)
            .map_err(|e| Error::Safetensors { origin: origin.clone(), message: e.to_string() })?;
        if let Some(e) = result.errors.first() {
            return Err(match e {
                ApplyError::ShapeMismatch { path, expected, found } => Error::Shape {
                    tensor: format!("{origin}: {path}"),
                    expected: expected.clone().into(),
                    got: found.num_elements(),
                },
                other => Error::Safetensors { origin, message: other.to_string() },
            });
        }
        for path in result.applied {
            if !applied.insert(path.clone()) {
                return Err(Error::Safetensors { origin, message: format!("{path} is stored in two files") });
            }
        }
        wanted.extend(result.missing.into_iter().map(|(path, _)| path));
    }
    if let Some(missing) = wanted.difference(&applied).next() {
        return Err(Error::MissingTensor(missing.clone()));
    }
    Ok(model)
}
