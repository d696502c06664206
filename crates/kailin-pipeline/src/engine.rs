//! The stage engine: each stage keyed by a hash of its inputs, its configuration and its
//! upstream stages' keys; a finished stage with the same key is reused, here or in a run
//! this one reuses; a per-document stage can be computed in shards and merged; a plan says,
//! without running anything, which stages would run and why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::stage;
use crate::summary::StageSummary;

/// What the pipeline reports while it runs (the binary draws bars from it).
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// A stage starts.
    Start {
        /// The stage.
        stage: &'a str,
    },
    /// A stage's work so far.
    Progress {
        /// The stage.
        stage: &'a str,
        /// Units done.
        done: u64,
        /// Units in all.
        total: u64,
        /// What a unit is (`documents`, `steps`…).
        unit: &'a str,
    },
    /// A stage ended.
    Done {
        /// The stage.
        stage: &'a str,
        /// Seconds it took (0 when cached).
        seconds: f64,
        /// Whether its cached output was reused.
        cached: bool,
    },
}

/// One stage's row of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRow {
    /// The stage.
    pub stage: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Its key (the hash of its inputs and configuration).
    pub key: String,
    /// Seconds it took when it ran.
    pub seconds: f64,
    /// Whether this run reused it.
    pub cached: bool,
    /// Its summary (counts, losses, metrics).
    pub summary: StageSummary,
}

/// One stage of a plan ([`plan`](crate::plan)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRow {
    /// The stage.
    pub stage: String,
    /// Whether a run would reuse its finished output.
    pub cached: bool,
    /// Why it would run: the settings or inputs that changed, the upstream stages that
    /// rerun, or that it never ran; empty when cached.
    pub why: String,
}

/// The pipeline's run: the configuration, the output directory, the stages so far.
pub(crate) struct Run<'e> {
    pub(crate) config: Config,
    pub(crate) out: PathBuf,
    pub(crate) rows: Vec<StageRow>,
    /// With `plan`, what each stage would do; nothing runs.
    pub(crate) plan: Option<Vec<PlanRow>>,
    /// In a plan, the stages (directory and key) it says will run; an ablation's plan is
    /// given the main run's, which it will reuse.
    pub(crate) planned: Vec<(PathBuf, String)>,
    /// Other runs' roots whose finished stages this run may reuse (an ablation reuses the
    /// main run's stages before the one it changes).
    pub(crate) reuse: Vec<PathBuf>,
    /// This process's shard of the per-document stages, `(index, count)`.
    pub(crate) shard: Option<(usize, usize)>,
    /// Stop before this stage (when it is not finished).
    pub(crate) until: Option<String>,
    pub(crate) keys: BTreeMap<String, String>,
    /// The models' digests, part of every key; null in unit tests.
    pub(crate) identity: serde_json::Value,
    pub(crate) on_event: &'e mut dyn FnMut(Event<'_>),
}

/// A stage's failure with what it read and what to do.
pub(crate) fn failed(stage: &str, input: impl std::fmt::Display, fix: &str) -> impl FnOnce(Error) -> Error {
    let (stage, input, fix) = (stage.to_owned(), input.to_string(), fix.to_owned());
    move |e| match e {
        e @ Error::Stage { .. } => e,
        e => Error::Stage { stage, input, fix, source: Box::new(e) },
    }
}

/// A library's error, boxed.
pub(crate) fn boxed(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Lib(Box::new(e))
}

/// Turns a library's error into a stage error (the stage and input are filled by [`failed`]).
pub(crate) trait Lib<T> {
    fn lib(self) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Lib<T> for std::result::Result<T, E> {
    fn lib(self) -> Result<T> {
        self.map_err(boxed)
    }
}

/// What a failed stage's message says to do.
pub(crate) const RERUN: &str = "Fix it and rerun the same command: finished stages are kept";

/// Progress of a stage's body: `(done, total, unit)`.
pub(crate) type Progress<'p> = &'p mut dyn FnMut(u64, u64, &str);

impl<'e> Run<'e> {
    /// How a stage key names the model at `path`: relative to its run when it is one of this
    /// run's or of a run it reuses (`run:models/dpo`: the upstream stage's key already says
    /// which weights it holds, so a moved or copied run keeps its finished stages), else as
    /// given.
    pub(crate) fn key_path(&self, path: &Path) -> serde_json::Value {
        let inside = std::iter::once(&self.out).chain(&self.reuse).find_map(|root| path.strip_prefix(root).ok());
        match inside {
            Some(rel) => serde_json::Value::from(format!("run:{}", rel.display())),
            None => serde_json::Value::from(path.display().to_string()),
        }
    }

    pub(crate) fn new(
        config: Config,
        out: PathBuf,
        reuse: Vec<PathBuf>,
        on_event: &'e mut dyn FnMut(Event<'_>),
    ) -> Self {
        Run {
            config,
            out,
            rows: Vec::new(),
            plan: None,
            planned: Vec::new(),
            reuse,
            shard: None,
            until: None,
            keys: BTreeMap::new(),
            identity: serde_json::Value::Null,
            on_event,
        }
    }

    /// A finished stage with `key` at `dir` or at the same place in a reused run.
    fn find<T: serde::de::DeserializeOwned>(&self, dir: &Path, key: &str) -> Option<(stage::Marker<T>, PathBuf)> {
        if let Some(m) = stage::finished(dir, key) {
            return Some((m, dir.to_owned()));
        }
        let rel = dir.strip_prefix(&self.out).ok()?;
        self.reuse.iter().find_map(|root| stage::finished(&root.join(rel), key).map(|m| (m, root.join(rel))))
    }

    /// The key of a stage already keyed (empty for one that did not run).
    pub(crate) fn key_of(&self, stage: &str) -> String {
        self.keys.get(stage).cloned().unwrap_or_default()
    }

    /// What the key of stage `name` hashes, and the key (recorded for the stages after it).
    fn key_for(&mut self, name: &str, after: &[&str], inputs: &serde_json::Value) -> (serde_json::Value, String) {
        let upstream: BTreeMap<&str, String> = after.iter().map(|s| (*s, self.key_of(s))).collect();
        let mut key_inputs = json!({ "inputs": inputs, "after": upstream, "version": 1 });
        // The models' digests: a model changed in place (same path) reruns what it made.
        if !self.identity.is_null() {
            key_inputs["models"] = self.identity.clone();
        }
        let key = stage::key(name, &key_inputs);
        self.keys.insert(name.to_owned(), key.clone());
        (key_inputs, key)
    }

    /// Stops before an unfinished stage when asked to (`until`), and refuses to run a stage
    /// that is not per-document in a shard process.
    fn may_run(&self, name: &str, per_document: bool) -> Result<()> {
        let until = self.until.as_deref();
        if until == Some(name) || (until == Some("eval") && name.starts_with("eval-")) {
            return Err(Error::Stopped {
                stage: name.to_owned(),
                message: format!("stopped before stage {name}, as asked"),
            });
        }
        if let (Some((i, n)), false) = (self.shard, per_document) {
            return Err(Error::NotReady {
                stage: name.to_owned(),
                message: format!(
                    "shard {i}/{n}: stage {name} is not per-document; run it once without --shard \
                     (with --until the next per-document stage), then run the shards"
                ),
            });
        }
        Ok(())
    }

    /// Records a stage's row and returns its summary and directory.
    fn finish<T: Into<StageSummary> + Clone>(
        &mut self,
        name: &str,
        key: String,
        marker: stage::Marker<T>,
        dir: PathBuf,
        cached: bool,
    ) -> (T, PathBuf) {
        (self.on_event)(Event::Done { stage: name, seconds: if cached { 0.0 } else { marker.seconds }, cached });
        if let Some(plan) = &mut self.plan {
            plan.push(PlanRow { stage: name.to_owned(), cached: true, why: String::new() });
        }
        self.rows.push(StageRow {
            stage: name.to_owned(),
            dir: dir.clone(),
            key,
            seconds: marker.seconds,
            cached,
            summary: marker.summary.clone().into(),
        });
        (marker.summary, dir)
    }

    /// In a plan, a stage that would run: why, and its earlier output as a stand-in (so the
    /// stages after it can be keyed), or [`Error::Planned`] when it never ran.
    fn planned<T: serde::de::DeserializeOwned>(
        &mut self,
        name: &str,
        dir: &Path,
        key: &str,
        key_inputs: &serde_json::Value,
    ) -> Result<(T, PathBuf)> {
        // A stage a reused run's plan will make with this key: reused from there.
        let rel = dir.strip_prefix(&self.out).ok();
        let there = rel.and_then(|rel| {
            self.reuse.iter().map(|root| root.join(rel)).find(|d| self.planned.iter().any(|(p, k)| p == d && k == key))
        });
        if let Some(there) = there {
            if let Some(plan) = &mut self.plan {
                plan.push(PlanRow { stage: name.to_owned(), cached: true, why: String::new() });
            }
            return match stage::read_marker::<T>(&there) {
                Some(m) => Ok((m.summary, there)),
                None => Err(Error::Planned { stage: name.to_owned() }),
            };
        }
        self.planned.push((dir.to_owned(), key.to_owned()));
        let earlier = stage::read_marker::<T>(dir);
        let why = match &earlier {
            Some(m) if !m.inputs.is_null() => {
                let mut changed = Vec::new();
                stage::differences(&m.inputs, key_inputs, "", &mut changed);
                if changed.is_empty() { "its inputs changed".to_owned() } else { changed.join("; ") }
            }
            Some(_) => "its earlier output has no record of its inputs".to_owned(),
            None => "it has not run".to_owned(),
        };
        if let Some(plan) = &mut self.plan {
            plan.push(PlanRow { stage: name.to_owned(), cached: false, why });
        }
        match earlier {
            Some(m) => Ok((m.summary, dir.to_owned())),
            None => Err(Error::Planned { stage: name.to_owned() }),
        }
    }

    /// A stage's start: keyed, announced, and reused (or, in a plan, looked at) when it can be.
    fn begin<T: serde::de::DeserializeOwned + Clone + Into<StageSummary>>(
        &mut self,
        name: &str,
        dir: &Path,
        after: &[&str],
        inputs: &serde_json::Value,
    ) -> Begun<T> {
        let (key_inputs, key) = self.key_for(name, after, inputs);
        (self.on_event)(Event::Start { stage: name });
        if let Some((m, found)) = self.find::<T>(dir, &key) {
            return Begun::Reused(Ok(self.finish(name, key, m, found, true)));
        }
        if self.plan.is_some() {
            return Begun::Reused(self.planned(name, dir, &key, &key_inputs));
        }
        Begun::Run { key_inputs, key }
    }

    /// Runs (or reuses) one stage writing into `dir`; `inputs` is what its key hashes (the
    /// upstream stages named in `after` are added).
    pub(crate) fn stage<T: Serialize + serde::de::DeserializeOwned + Clone + Into<StageSummary>>(
        &mut self,
        name: &str,
        dir: PathBuf,
        after: &[&str],
        inputs: serde_json::Value,
        body: impl FnOnce(&Path, Progress<'_>) -> Result<T>,
    ) -> Result<(T, PathBuf)> {
        let (key_inputs, key) = match self.begin(name, &dir, after, &inputs) {
            Begun::Reused(found) => return found,
            Begun::Run { key_inputs, key } => (key_inputs, key),
        };
        self.may_run(name, false)?;
        tracing::info!(stage = name, dir = %dir.display(), "running");
        let on_event = &mut *self.on_event;
        let mut progress =
            |done: u64, total: u64, unit: &str| on_event(Event::Progress { stage: name, done, total, unit });
        let marker = stage::run(name, &dir, &key, &key_inputs, |tmp| body(tmp, &mut progress)).map_err(failed(
            name,
            upstream_text(after),
            RERUN,
        ))?;
        Ok(self.finish(name, key, marker, dir, false))
    }

    /// A per-document stage over `units` items (documents or records): whole, or, in a shard
    /// process, this shard's contiguous part into `DIR.shards/KEY/I-of-N/` (then the process
    /// stops); when every part of a sharding exists, they are merged (files concatenated in
    /// shard order, summaries added) instead of computing the stage. `body` gets the range of
    /// units to do.
    pub(crate) fn per_document<T: Serialize + serde::de::DeserializeOwned + Clone + Into<StageSummary>>(
        &mut self,
        name: &str,
        dir: PathBuf,
        after: &[&str],
        inputs: serde_json::Value,
        units: usize,
        body: impl FnOnce(&Path, std::ops::Range<usize>, Progress<'_>) -> Result<T>,
    ) -> Result<(T, PathBuf)> {
        let (key_inputs, key) = match self.begin(name, &dir, after, &inputs) {
            Begun::Reused(found) => return found,
            Begun::Run { key_inputs, key } => (key_inputs, key),
        };
        self.may_run(name, true)?;
        let parts_root = dir.with_file_name(format!("{name}.shards")).join(&key);
        if let Some(parts) = stage::complete_sharding(&parts_root, &key) {
            tracing::info!(stage = name, shards = parts.len(), "merging shards");
            let marker = stage::run(name, &dir, &key, &key_inputs, |tmp| stage::merge_parts::<T>(&parts, tmp))
                .map_err(failed(name, parts_root.display(), RERUN))?;
            return Ok(self.finish(name, key, marker, dir, false));
        }
        let on_event = &mut *self.on_event;
        let mut progress =
            |done: u64, total: u64, unit: &str| on_event(Event::Progress { stage: name, done, total, unit });
        match self.shard {
            None => {
                let marker = stage::run(name, &dir, &key, &key_inputs, |tmp| body(tmp, 0..units, &mut progress))
                    .map_err(failed(name, upstream_text(after), RERUN))?;
                Ok(self.finish(name, key, marker, dir, false))
            }
            Some((i, n)) => {
                let part = parts_root.join(format!("{i}-of-{n}"));
                if stage::finished::<T>(&part, &key).is_none() {
                    let range = i * units / n..(i + 1) * units / n;
                    stage::run(name, &part, &key, &key_inputs, |tmp| body(tmp, range, &mut progress))
                        .map_err(failed(name, upstream_text(after), RERUN))?;
                }
                Err(Error::Stopped {
                    stage: name.to_owned(),
                    message: format!(
                        "shard {i}/{n} of stage {name} done ({}); when every shard is done, run without --shard to merge them and go on",
                        part.display()
                    ),
                })
            }
        }
    }
}

/// How a stage starts: with its outcome already known (reused, or planned), or to run.
enum Begun<T> {
    Reused(Result<(T, PathBuf)>),
    Run { key_inputs: serde_json::Value, key: String },
}

/// "the outputs of A, B" for a stage's error.
fn upstream_text(after: &[&str]) -> String {
    if after.is_empty() { "its inputs".to_owned() } else { format!("the outputs of {}", after.join(", ")) }
}
