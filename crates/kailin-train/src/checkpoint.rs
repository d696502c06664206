//! Checkpoints for exact resumption: the model's weights and AdamW's moments by parameter
//! path, the step, the position in the data, and what the run was (options, data digest,
//! parameter shapes), so that a checkpoint of another model or run is refused.
//!
//! Layout of a checkpoint directory `DIR/step-000042/`: `model.safetensors` (burn's parameter
//! paths and layouts), `optimizer.safetensors` (`PATH.m` and `PATH.v` per trained parameter)
//! and `state.json`. It is written under a temporary name and renamed when complete, then
//! `DIR/latest` is pointed at it: a crash leaves at worst a stray temporary directory, never a
//! half-written checkpoint under a real name.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn_store::{ModuleSnapshot, SafetensorsStore};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optim::{AdamW, Moments};
use crate::trainer::{TrainOptions, TrainReport};

/// Where a run writes checkpoints, how often, and whether it resumes from them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointOptions {
    /// The run's checkpoint directory.
    pub dir: PathBuf,
    /// Write one every this many optimiser steps (and after the last step).
    pub every: u64,
    /// Checkpoints kept; older ones are deleted once a newer one is complete.
    pub keep: usize,
    /// Resume from the newest checkpoint in `dir`, when there is one.
    pub resume: bool,
}

impl CheckpointOptions {
    /// Checkpoints in `dir` every `every` steps, the last two kept, resuming when possible.
    pub fn new(dir: impl Into<PathBuf>, every: u64) -> Self {
        CheckpointOptions { dir: dir.into(), every, keep: 2, resume: true }
    }
}

/// Where a run stands: what a checkpoint restores besides the tensors. `O` is what shapes
/// the run's trajectory (the language-model trainer's [`TrainOptions`], the encoder trainer's
/// options), `R` its report so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "O: Serialize, R: Serialize", deserialize = "O: Deserialize<'de>, R: Deserialize<'de>"))]
pub(crate) struct RunState<O = TrainOptions, R = TrainReport> {
    /// Layout version of the checkpoint.
    pub(crate) format: u32,
    /// Optimiser steps done.
    pub(crate) step: u64,
    /// The epoch and the number of its steps done (the next step starts there).
    pub(crate) epoch: usize,
    pub(crate) position: usize,
    /// The options that shape the run (those that may change on resumption cleared).
    pub(crate) options: O,
    /// Digest of the training items.
    pub(crate) data: String,
    /// What the starting model was ([`TrainOptions::base_model`]).
    #[serde(default)]
    pub(crate) base: Option<String>,
    /// Every parameter's path and shape.
    pub(crate) parameters: Vec<(String, Vec<usize>)>,
    /// The report so far.
    pub(crate) report: R,
}

pub(crate) const FORMAT: u32 = 1;

impl RunState {
    /// The options as far as they decide the trajectory (resumption may change the others).
    pub(crate) fn trajectory(opts: &TrainOptions) -> TrainOptions {
        TrainOptions { checkpoint: None, stop_after: None, eval_every: None, base_model: None, ..opts.clone() }
    }
}

/// Every float parameter's path and shape, in visiting order.
pub(crate) fn parameters<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, Vec<usize>)> {
    struct Shapes {
        path: Vec<String>,
        out: Vec<(String, Vec<usize>)>,
    }
    impl<B: Backend> ModuleVisitor<B> for Shapes {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_owned());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.out.push((self.path.join("."), param.lazy_shape().dims::<D>().to_vec()));
        }
    }
    let mut v = Shapes { path: Vec::new(), out: Vec::new() };
    module.visit(&mut v);
    v.out
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_owned(), source }
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.to_owned(), reason: reason.into() }
}

fn host(t: Tensor<impl Backend, 1>) -> Result<Vec<f32>> {
    t.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| Error::Backend(format!("{e:?}")))
}

/// Writes a checkpoint of `model`, `optim` and `state` into `opts.dir`, then prunes old ones.
pub(crate) fn save<B: AutodiffBackend, M: AutodiffModule<B>, O: Serialize, R: Serialize>(
    opts: &CheckpointOptions,
    model: &M,
    optim: &AdamW<B>,
    state: &RunState<O, R>,
) -> Result<PathBuf> {
    let dir = &opts.dir;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = format!("step-{:06}", state.step);
    let target = dir.join(&name);
    // What a run killed while writing this step left behind (it may be hundreds of MB).
    kailin_core::remove_stale_temporaries(&target)?;
    let tmp = kailin_core::AtomicDir::create(&target)?;
    write_into(tmp.path(), model, optim, state)?;
    tmp.commit()?;
    kailin_core::write_atomic(dir.join("latest"), name.as_bytes())?;
    prune(dir, opts.keep.max(1))?;
    tracing::info!(checkpoint = %target.display(), step = state.step, "checkpoint written");
    Ok(target)
}

fn write_into<B: AutodiffBackend, M: AutodiffModule<B>, O: Serialize, R: Serialize>(
    tmp: &Path,
    model: &M,
    optim: &AdamW<B>,
    state: &RunState<O, R>,
) -> Result<()> {
    let weights = tmp.join("model.safetensors");
    let mut store = SafetensorsStore::from_file(&weights);
    model.valid().save_into(&mut store).map_err(|e| bad(&weights, e.to_string()))?;
    sync(&weights)?;
    let mut moments = Vec::with_capacity(optim.moments.len() * 2);
    for (path, m) in &optim.moments {
        moments.push((format!("{path}.m"), host(m.first.clone())?));
        moments.push((format!("{path}.v"), host(m.second.clone())?));
    }
    let views = moments
        .iter()
        .map(|(name, v)| {
            TensorView::new(Dtype::F32, vec![v.len()], bytemuck::cast_slice(v))
                .map(|view| (name.clone(), view))
                .map_err(|e| bad(tmp, e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("adamw_steps".to_owned(), optim.steps().to_string())]);
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| bad(tmp, e.to_string()))?;
    kailin_core::write_atomic(tmp.join("optimizer.safetensors"), &bytes)?;
    let text = serde_json::to_string_pretty(state).map_err(|e| bad(tmp, e.to_string()))?;
    Ok(kailin_core::write_atomic(tmp.join("state.json"), text.as_bytes())?)
}

fn sync(path: &Path) -> Result<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(io(path))
}

/// Deletes all but the newest `keep` complete checkpoints.
fn prune(dir: &Path, keep: usize) -> Result<()> {
    let mut steps: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("step-")))
        .collect();
    steps.sort();
    for old in steps.iter().rev().skip(keep) {
        std::fs::remove_dir_all(old).map_err(io(old))?;
    }
    Ok(())
}

/// The newest complete checkpoint of `dir` (what `latest` names), if any.
pub fn latest_checkpoint(dir: impl AsRef<Path>) -> Result<Option<PathBuf>> {
    let dir = dir.as_ref();
    let pointer = dir.join("latest");
    let name = match std::fs::read_to_string(&pointer) {
        Ok(name) => name,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&pointer)(e)),
    };
    let name = name.trim();
    if !name.starts_with("step-") || name.contains(['/', '\\']) {
        return Err(bad(&pointer, format!("names {name:?}, not a checkpoint of this directory")));
    }
    let path = dir.join(name);
    if !path.join("state.json").is_file() {
        return Err(bad(&path, "named by `latest` but missing or incomplete"));
    }
    Ok(Some(path))
}

/// Refuses the checkpoint at `path` when the starting point it recorded (`there`) is not this
/// run's (`now`): its weights came from another model, objective or adapter.
pub(crate) fn check_start(path: &Path, there: Option<&str>, now: Option<&str>) -> Result<()> {
    if there == now {
        return Ok(());
    }
    Err(bad(
        path,
        format!(
            "it continues a run from another starting point ({} there, {} now): start in another directory, or remove its checkpoints",
            there.unwrap_or("not recorded"),
            now.unwrap_or("not recorded")
        ),
    ))
}

/// Restores `model` and `optim` from the checkpoint at `path`, after checking that it belongs
/// to this model (parameter paths and shapes), these options and this data.
pub(crate) fn load<B, M, O, R>(
    path: &Path,
    model: M,
    optim: &mut AdamW<B>,
    expected: &RunState<O, R>,
) -> Result<(M, RunState<O, R>)>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Serialize + for<'de> Deserialize<'de> + PartialEq,
    R: for<'de> Deserialize<'de>,
{
    let state_path = path.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(io(&state_path))?;
    let state: RunState<O, R> = serde_json::from_str(&text).map_err(|e| bad(&state_path, e.to_string()))?;
    if state.format != FORMAT {
        return Err(bad(&state_path, format!("layout version {} (this build reads {FORMAT})", state.format)));
    }
    if state.parameters != expected.parameters {
        let difference = state
            .parameters
            .iter()
            .zip(&expected.parameters)
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("it has {} {:?} where this model has {} {:?}", a.0, a.1, b.0, b.1))
            .unwrap_or_else(|| {
                format!("it has {} parameters, this model {}", state.parameters.len(), expected.parameters.len())
            });
        return Err(bad(path, format!("it is a checkpoint of another model: {difference}")));
    }
    check_start(path, state.base.as_deref(), expected.base.as_deref())?;
    if state.options != expected.options {
        let (old, new) = (serde_json::to_value(&state.options), serde_json::to_value(&expected.options));
        let changed: Vec<String> = match (old, new) {
            (Ok(serde_json::Value::Object(old)), Ok(serde_json::Value::Object(new))) => new
                .iter()
                .filter(|(k, v)| old.get(*k) != Some(*v))
                .map(|(k, v)| format!("{k} {} there, {v} now", old.get(k).map_or("unset".into(), |o| o.to_string())))
                .collect(),
            _ => Vec::new(),
        };
        return Err(bad(
            path,
            format!(
                "it was written with other training options ({}): the run could not continue exactly",
                if changed.is_empty() { "they differ".to_owned() } else { changed.join("; ") }
            ),
        ));
    }
    if state.data != expected.data {
        return Err(bad(path, "it was written for other training data (digest differs)"));
    }
    let weights = path.join("model.safetensors");
    let mut store = SafetensorsStore::from_file(&weights);
    let mut model = model;
    let applied = model.load_from(&mut store).map_err(|e| bad(&weights, e.to_string()))?;
    if let Some(e) = applied.errors.first() {
        return Err(bad(&weights, e.to_string()));
    }
    if let Some((missing, _)) = applied.missing.first() {
        return Err(bad(&weights, format!("{missing} is missing")));
    }
    let moments_path = path.join("optimizer.safetensors");
    let bytes = std::fs::read(&moments_path).map_err(io(&moments_path))?;
    let (_, metadata) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(&moments_path, e.to_string()))?;
    let steps = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get("adamw_steps"))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| bad(&moments_path, "no adamw_steps"))?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(&moments_path, e.to_string()))?;
    let device = model.devices().first().cloned().unwrap_or_default();
    let read = |name: &str| -> Result<Tensor<B::InnerBackend, 1>> {
        let view = tensors.tensor(name).map_err(|e| bad(&moments_path, format!("{name}: {e}")))?;
        if view.dtype() != Dtype::F32 || view.shape().len() != 1 {
            return Err(bad(&moments_path, format!("{name} is not a flat f32 tensor")));
        }
        let values: Vec<f32> =
            view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let n = values.len();
        Ok(Tensor::from_data(TensorData::new(values, [n]), &device))
    };
    let mut moments = BTreeMap::new();
    for name in tensors.names() {
        if let Some(param) = name.strip_suffix(".m") {
            let wanted: usize = expected
                .parameters
                .iter()
                .find(|(p, _)| p == param)
                .map(|(_, shape)| shape.iter().product())
                .ok_or_else(|| bad(&moments_path, format!("moments of {param}, which this model does not have")))?;
            let (first, second) = (read(name)?, read(&format!("{param}.v"))?);
            if first.dims()[0] != wanted || second.dims()[0] != wanted {
                return Err(bad(&moments_path, format!("moments of {param} have the wrong size")));
            }
            moments.insert(param.to_owned(), Moments { first, second });
        }
    }
    optim.restore(steps, moments);
    Ok((model, state))
}
