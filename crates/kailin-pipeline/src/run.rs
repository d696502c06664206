//! The stages of m-KAILIN, wired from the kailin crates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use kailin_core::{
    ChatExample, Context, CptRecord, Document, DpoExample, JsonlReader, Provenance, Question, SftRecord, TextExample,
};
use kailin_evaluator::{Corpus, Evaluator, Item, Label};
use kailin_retrieval::{Bm25Retriever, DenseRetriever, Retrieved, Retriever};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{AggregateKind, Config, DeviceKind, EvaluatorKind, RetrieverKind};
use crate::error::{Error, Result};
use crate::stage;

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
    pub summary: serde_json::Value,
}

/// The pipeline's run: the configuration, the output directory, the stages so far.
pub(crate) struct Run<'e> {
    pub(crate) config: Config,
    pub(crate) out: PathBuf,
    pub(crate) rows: Vec<StageRow>,
    /// Other runs' roots whose finished stages this run may reuse (an ablation reuses the
    /// main run's stages before the one it changes).
    reuse: Vec<PathBuf>,
    /// This process's shard of the per-document stages, `(index, count)`.
    pub(crate) shard: Option<(usize, usize)>,
    /// Stop before this stage (when it is not finished).
    pub(crate) until: Option<String>,
    keys: BTreeMap<String, String>,
    /// The models' digests (`Models::identity`), part of every key; null in unit tests.
    pub(crate) identity: serde_json::Value,
    on_event: &'e mut dyn FnMut(Event<'_>),
}

/// Reads a finished stage's file (a JSON Lines dataset).
fn read_records<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    JsonlReader::<T>::open(path).and_then(|r| r.collect::<kailin_core::Result<Vec<T>>>()).map_err(stage::core_io(path))
}

fn write_records<'a, T: Serialize + 'a>(path: &Path, records: impl IntoIterator<Item = &'a T>) -> Result<u64> {
    kailin_core::write_jsonl(path, records).map_err(stage::core_io(path))
}

/// A stage's failure with what it read and what to do.
fn failed(stage: &str, input: impl std::fmt::Display, fix: &str) -> impl FnOnce(Error) -> Error {
    let (stage, input, fix) = (stage.to_owned(), input.to_string(), fix.to_owned());
    move |e| match e {
        e @ Error::Stage { .. } => e,
        e => Error::Stage { stage, input, fix, source: Box::new(e) },
    }
}

fn boxed(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Lib(Box::new(e))
}

/// Turns a library's error into a stage error (the stage and input are filled by [`failed`]).
trait Lib<T> {
    fn lib(self) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Lib<T> for std::result::Result<T, E> {
    fn lib(self) -> Result<T> {
        self.map_err(boxed)
    }
}

const RERUN: &str = "Fix it and rerun the same command: finished stages are kept";

impl<'e> Run<'e> {
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

    fn key_of(&self, stage: &str) -> String {
        self.keys.get(stage).cloned().unwrap_or_default()
    }

    /// The key of stage `name` (recorded for the stages after it).
    fn key_for(&mut self, name: &str, after: &[&str], inputs: &serde_json::Value) -> String {
        let upstream: BTreeMap<&str, String> = after.iter().map(|s| (*s, self.key_of(s))).collect();
        let mut key_inputs = json!({ "inputs": inputs, "after": upstream, "version": 1 });
        // The models' digests: a model changed in place (same path) reruns what it made.
        if !self.identity.is_null() {
            key_inputs["models"] = self.identity.clone();
        }
        let key = stage::key(name, &key_inputs);
        self.keys.insert(name.to_owned(), key.clone());
        key
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
    fn finish<T: Serialize + Clone>(
        &mut self,
        name: &str,
        key: String,
        marker: stage::Marker<T>,
        dir: PathBuf,
        cached: bool,
    ) -> (T, PathBuf) {
        (self.on_event)(Event::Done { stage: name, seconds: if cached { 0.0 } else { marker.seconds }, cached });
        self.rows.push(StageRow {
            stage: name.to_owned(),
            dir: dir.clone(),
            key,
            seconds: marker.seconds,
            cached,
            summary: serde_json::to_value(&marker.summary).unwrap_or_default(),
        });
        (marker.summary, dir)
    }

    /// Runs (or reuses) one stage writing into `dir`; `inputs` is what its key hashes (the
    /// upstream stages named in `after` are added).
    fn stage<T: Serialize + serde::de::DeserializeOwned + Clone>(
        &mut self,
        name: &str,
        dir: PathBuf,
        after: &[&str],
        inputs: serde_json::Value,
        body: impl FnOnce(&Path, &mut dyn FnMut(u64, u64, &str)) -> Result<T>,
    ) -> Result<(T, PathBuf)> {
        let key = self.key_for(name, after, &inputs);
        (self.on_event)(Event::Start { stage: name });
        if let Some((m, found)) = self.find::<T>(&dir, &key) {
            return Ok(self.finish(name, key, m, found, true));
        }
        self.may_run(name, false)?;
        tracing::info!(stage = name, dir = %dir.display(), "running");
        let on_event = &mut *self.on_event;
        let mut progress =
            |done: u64, total: u64, unit: &str| on_event(Event::Progress { stage: name, done, total, unit });
        let marker = stage::run(name, &dir, &key, |tmp| body(tmp, &mut progress)).map_err(failed(
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
    #[allow(clippy::too_many_arguments)]
    fn per_document<T: Serialize + serde::de::DeserializeOwned + Clone>(
        &mut self,
        name: &str,
        dir: PathBuf,
        after: &[&str],
        inputs: serde_json::Value,
        units: usize,
        body: impl FnOnce(&Path, std::ops::Range<usize>, &mut dyn FnMut(u64, u64, &str)) -> Result<T>,
    ) -> Result<(T, PathBuf)> {
        let key = self.key_for(name, after, &inputs);
        (self.on_event)(Event::Start { stage: name });
        if let Some((m, found)) = self.find::<T>(&dir, &key) {
            return Ok(self.finish(name, key, m, found, true));
        }
        self.may_run(name, true)?;
        let parts_root = dir.with_file_name(format!("{name}.shards")).join(&key);
        if let Some(parts) = stage::complete_sharding(&parts_root, &key) {
            tracing::info!(stage = name, shards = parts.len(), "merging shards");
            let marker = stage::run(name, &dir, &key, |tmp| stage::merge_parts::<T>(&parts, tmp)).map_err(failed(
                name,
                parts_root.display(),
                RERUN,
            ))?;
            return Ok(self.finish(name, key, marker, dir, false));
        }
        let on_event = &mut *self.on_event;
        let mut progress =
            |done: u64, total: u64, unit: &str| on_event(Event::Progress { stage: name, done, total, unit });
        match self.shard {
            None => {
                let marker = stage::run(name, &dir, &key, |tmp| body(tmp, 0..units, &mut progress)).map_err(failed(
                    name,
                    upstream_text(after),
                    RERUN,
                ))?;
                Ok(self.finish(name, key, marker, dir, false))
            }
            Some((i, n)) => {
                let part = parts_root.join(format!("{i}-of-{n}"));
                if stage::finished::<T>(&part, &key).is_none() {
                    let range = i * units / n..(i + 1) * units / n;
                    stage::run(name, &part, &key, |tmp| body(tmp, range, &mut progress)).map_err(failed(
                        name,
                        upstream_text(after),
                        RERUN,
                    ))?;
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

/// "the outputs of A, B" for a stage's error.
fn upstream_text(after: &[&str]) -> String {
    if after.is_empty() { "its inputs".to_owned() } else { format!("the outputs of {}", after.join(", ")) }
}

/// A file's fingerprint for a stage key: its length and a hash of its bytes.
fn fingerprint(path: &Path) -> Result<String> {
    kailin_core::digest_file(path).map_err(Error::from_core)
}

fn need(path: &Path, what: &str, fix: &str) -> Result<()> {
    if path.exists() {
        Ok(())
    } else {
        Err(Error::Missing { what: what.into(), path: path.to_owned(), fix: fix.into() })
    }
}

/// The model paths a run starts from.
#[derive(Debug, Clone)]
pub(crate) struct Models {
    pub(crate) base: PathBuf,
    pub(crate) encoder: PathBuf,
    /// The models' digests, part of every stage's key.
    pub(crate) identity: serde_json::Value,
}

/// Summary of the corpus stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CorpusSummary {
    read: usize,
    test_split: usize,
    overlapping_test_text: usize,
    duplicate_ids: usize,
    empty: usize,
    documents: usize,
}

/// Summary of a training stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainSummary {
    records: usize,
    steps: usize,
    loss_first: Option<f64>,
    loss_last: Option<f64>,
    eval_loss: Option<f64>,
    tokens: usize,
    seconds: f64,
    /// `(step, loss, DPO reward margin)` of every step, for the plots.
    curve: Vec<(u64, f64, Option<f64>)>,
}

impl TrainSummary {
    fn of(records: usize, r: &kailin_train::TrainReport) -> Self {
        let margin = |s: &kailin_train::StepLog| s.metrics.iter().find(|(k, _)| k.contains("margin")).map(|(_, v)| *v);
        TrainSummary {
            records,
            steps: r.steps.len(),
            loss_first: r.steps.first().map(|s| s.loss),
            loss_last: r.steps.last().map(|s| s.loss),
            eval_loss: r.evals.last().map(|e| e.1),
            tokens: r.tokens,
            seconds: r.seconds,
            curve: r.steps.iter().map(|s| (s.step, s.loss, margin(s))).collect(),
        }
    }
}

/// Summary of the candidates stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CandidatesSummary {
    general: kailin_question::Tally,
    domain: kailin_question::Tally,
    /// Documents whose first kept questions from the two agents are identical, of those
    /// where both kept one.
    identical_first: usize,
    both_kept: usize,
}

/// Summary of the labelling stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LabelSummary {
    items: usize,
    outcomes: BTreeMap<String, usize>,
    pairs: usize,
    /// Score gap of every preference pair.
    margins: Vec<f64>,
    evaluator: String,
}

fn lora(rank: usize) -> Option<kailin_lm::LoraConfig> {
    (rank > 0).then(|| kailin_lm::LoraConfig::new(rank))
}

impl Run<'_> {
    fn device_check(&self) -> Result<()> {
        if self.config.run.device == DeviceKind::Cuda && !kailin_lm::cuda_compiled() {
            return Err(Error::Config {
                key: "run.device".into(),
                message: "\"cuda\" needs a build with CUDA (the `cuda` feature); allowed here: \"cpu\"".into(),
            });
        }
        Ok(())
    }

    /// Ingest: PQA-L records outside the official test split (and sharing no word n-gram with
    /// it), plus the extra files; limited.
    fn corpus(&mut self) -> Result<Vec<Document>> {
        let c = self.config.data.clone();
        let pqa = c.dir.join("pubmedqa/ori_pqal.json");
        let test = c.dir.join("pubmedqa/test_ground_truth.json");
        let fix = "point data.dir (--data or $KAILIN_DATA) at the data directory";
        need(&test, "the PubMedQA test split", fix)?;
        let mut fingerprints = vec![fingerprint(&test)?];
        if c.corpus == "pubmedqa" {
            need(&pqa, "PubMedQA PQA-L", fix)?;
            fingerprints.push(fingerprint(&pqa)?);
        }
        for p in &c.extra_corpus {
            need(p, "an extra corpus file", "fix data.extra_corpus")?;
            fingerprints.push(fingerprint(p)?);
        }
        let inputs = json!({ "data": c, "files": fingerprints });
        let dir = self.out.join("stages/corpus");
        let (_, dir) = self.stage("corpus", dir, &[], inputs, |tmp, _| {
            let items = kailin_eval::load_test_set(&c.dir).lib()?;
            let mut gate = kailin_corpus::Decontaminator::new(c.decontaminate_ngram.max(1));
            gate.exclude_ids(items.iter().map(|i| i.pmid.clone()));
            if c.decontaminate_ngram > 0 {
                for i in &items {
                    gate.add_eval_text(&i.pmid, &format!("{} {}", i.question, i.contexts.join(" ")));
                }
            }
            let mut all: Vec<Document> = Vec::new();
            if c.corpus == "pubmedqa" {
                let (records, _) = kailin_corpus::read_pubmedqa(&pqa, false).lib()?;
                all.extend(records.iter().map(kailin_corpus::PubmedqaRecord::document));
            }
            for p in &c.extra_corpus {
                all.extend(read_records::<Document>(p)?);
            }
            let mut s = CorpusSummary {
                read: all.len(),
                test_split: 0,
                overlapping_test_text: 0,
                duplicate_ids: 0,
                empty: 0,
                documents: 0,
            };
            let mut seen = std::collections::HashSet::new();
            let mut kept = Vec::new();
            for d in all {
                match gate.check(&d.id, &[&d.title, &d.text]) {
                    Some(kailin_corpus::Contamination::Id) => s.test_split += 1,
                    Some(_) => s.overlapping_test_text += 1,
                    None if d.text.trim().is_empty() && d.title.trim().is_empty() => s.empty += 1,
                    None if !seen.insert(d.id.clone()) => s.duplicate_ids += 1,
                    None => kept.push(d),
                }
                if c.corpus_limit > 0 && kept.len() == c.corpus_limit {
                    break;
                }
            }
            if kept.is_empty() {
                return Err(Error::Config {
                    key: "data.corpus".into(),
                    message: format!("no document is left after decontamination ({} read)", s.read),
                });
            }
            s.documents = kept.len();
            write_records(&tmp.join("documents.jsonl"), &kept)?;
            Ok(s)
        })?;
        read_records(&dir.join("documents.jsonl"))
    }

    /// A training stage: `data` (already written by `prepare` into the stage's directory)
    /// from `model` into the stage's directory.
    #[allow(clippy::too_many_arguments)]
    fn train<A: AutodiffBackend>(
        &mut self,
        name: &str,
        after: &[&str],
        inputs: serde_json::Value,
        objective: kailin_train::Objective,
        model: &Path,
        settings: (usize, f64, usize, usize, usize),
        prepare: impl FnOnce(&Path) -> Result<(PathBuf, Option<PathBuf>, usize)>,
        device: &A::Device,
    ) -> Result<PathBuf> {
        let (epochs, lr, rank, batch, max_len) = settings;
        let seed = self.config.run.seed;
        let dir = self.out.join("models").join(name);
        let inputs = json!({ "inputs": inputs, "model": model, "settings": [epochs, lr, rank, batch, max_len], "objective": objective, "seed": seed });
        let model = model.to_owned();
        let (_, dir) = self.stage(name, dir, after, inputs, |tmp, progress| {
            let (data, eval, records) = prepare(tmp)?;
            let job = kailin_train::Job {
                objective,
                model,
                data,
                eval,
                out: tmp.to_owned(),
                lora: lora(rank),
                max_len,
                overlong: kailin_train::Overlong::Truncate,
                options: kailin_train::TrainOptions {
                    epochs,
                    lr,
                    batch_size: batch,
                    seed,
                    max_grad_norm: Some(1.0),
                    ..Default::default()
                },
            };
            let outcome = kailin_train::run_job::<A>(&job, device, |p| progress(p.log.step, p.last, "steps")).lib()?;
            Ok(TrainSummary::of(records, &outcome.report))
        })?;
        Ok(dir)
    }

    /// The two question agents: BioASQ SFT for both, the domain agent continually
    /// pre-trained on the corpus first.
    fn agents<A: AutodiffBackend>(
        &mut self,
        models: &Models,
        docs: &[Document],
        device: &A::Device,
    ) -> Result<(PathBuf, PathBuf)> {
        let a = self.config.agents.clone();
        if !a.prepare {
            return Ok((models.base.clone(), models.base.clone()));
        }
        let bioasq = self.config.data.dir.join(&self.config.data.bioasq);
        need(&bioasq, "the BioASQ golden batches", "set data.bioasq (under data.dir)")?;
        let batches = kailin_question::read_bioasq_batches(&bioasq)
            .map_err(|e| failed("agent-general", bioasq.display(), "give the golden batches' directory")(boxed(e)))?;
        let held: Vec<&str> = a.held_out.iter().map(String::as_str).collect();
        let split = kailin_question::split_bioasq(&batches, &held)
            .map_err(|e| failed("agent-general", bioasq.display(), "fix agents.held_out")(boxed(e)))?;
        let limit = if a.bioasq_limit == 0 { usize::MAX } else { a.bioasq_limit };
        let template = kailin_question::default_template();
        let (train, eval) =
            kailin_question::sft_data(&split, &template, limit, 20, self.config.questions.max_document_chars)
                .map_err(|e| failed("agent-general", bioasq.display(), RERUN)(boxed(e)))?;
        let settings = (a.epochs, a.lr, a.lora_rank, a.batch_size, a.max_len);
        let inputs = json!({ "train": train, "eval": eval });
        let sft = |train: &[kailin_core::CompletionExample], eval: &[kailin_core::CompletionExample]| {
            let (train, eval) = (train.to_vec(), eval.to_vec());
            move |tmp: &Path| -> Result<(PathBuf, Option<PathBuf>, usize)> {
                let (t, e) = (tmp.join("data/train.jsonl"), tmp.join("data/eval.jsonl"));
                std::fs::create_dir_all(tmp.join("data"))
                    .map_err(|source| Error::Io { path: tmp.join("data"), source })?;
                write_records(&t, &train)?;
                write_records(&e, &eval)?;
                Ok((t, (!eval.is_empty()).then_some(e), train.len()))
            }
        };
        let general = self.train::<A>(
            "agent-general",
            &[],
            inputs.clone(),
            kailin_train::Objective::Sft,
            &models.base,
            settings,
            sft(&train, &eval),
            device,
        )?;
        if !a.distinct {
            return Ok((general.clone(), general));
        }
        let n = if a.domain_cpt_docs == 0 { docs.len() } else { a.domain_cpt_docs.min(docs.len()) };
        let texts: Vec<TextExample> = docs[..n].iter().map(TextExample::from_document).collect();
        let cpt = self.train::<A>(
            "agent-domain-cpt",
            &["corpus"],
            json!({ "documents": n }),
            kailin_train::Objective::Cpt,
            &models.base,
            settings,
            |tmp| {
                let t = tmp.join("cpt.jsonl");
                write_records(&t, &texts)?;
                Ok((t, None, texts.len()))
            },
            device,
        )?;
        let domain = self.train::<A>(
            "agent-domain",
            &["agent-domain-cpt"],
            inputs,
            kailin_train::Objective::Sft,
            &cpt,
            settings,
            sft(&train, &eval),
            device,
        )?;
        Ok((general, domain))
    }
}

/// A question generator on `model` with the configured options.
fn make_generator<B: burn::prelude::Backend>(
    config: &Config,
    model: &Path,
    agent: &str,
    n_seed: u64,
    greedy: bool,
    device: &B::Device,
) -> Result<kailin_question::LocalGenerator<B>> {
    let q = &config.questions;
    let (llama, _, tok) = kailin_lm::load::<B>(model, config.models.max_positions, device).lib()?;
    let options = kailin_question::GenerationOptions {
        temperature: if greedy { 0.0 } else { q.temperature },
        top_p: (!greedy && q.top_p < 1.0).then_some(q.top_p),
        top_k: None,
        max_new: q.max_new,
        seed: config.run.seed.wrapping_add(n_seed),
        batch_size: q.batch_size,
        max_document_chars: q.max_document_chars,
    };
    Ok(kailin_question::LocalGenerator::new(llama, tok, model.display().to_string(), options).lib()?.with_agent(agent))
}

impl Run<'_> {
    /// Candidate questions from both agents.
    fn candidates<B: burn::prelude::Backend>(
        &mut self,
        agents: &(PathBuf, PathBuf),
        docs: &[Document],
        device: &B::Device,
    ) -> Result<(Vec<Question>, Vec<Question>)> {
        let config = self.config.clone();
        let q = config.questions.clone();
        let inputs = json!({ "questions": q, "agents": agents, "seed": config.run.seed });
        let after: Vec<&str> = ["corpus", "agent-general", "agent-domain"].into_iter().collect();
        let dir = self.out.join("stages/candidates");
        let (_, dir) = self.per_document("candidates", dir, &after, inputs, docs.len(), |tmp, range, progress| {
            let docs = &docs[range];
            let total = docs.len() as u64 * 2;
            let mut out = Vec::new();
            let mut tallies = Vec::new();
            for (i, (model, agent)) in
                [(&agents.0, "question-generator/general"), (&agents.1, "question-generator/domain")]
                    .into_iter()
                    .enumerate()
            {
                let generator = make_generator::<B>(&config, model, agent, i as u64, false, device)?;
                let mut questions = Vec::new();
                let mut tally = kailin_question::Tally::default();
                let per_call = (q.batch_size / q.n).max(1);
                for chunk in docs.chunks(per_call) {
                    let g = kailin_question::QuestionGenerator::generate(&generator, chunk, q.n).lib()?;
                    questions.extend(g.questions);
                    tally.add(&g.tally);
                    progress(tally.documents + i as u64 * docs.len() as u64, total, "documents");
                }
                let name = if i == 0 { "general.jsonl" } else { "domain.jsonl" };
                write_records(&tmp.join(name), &questions)?;
                out.push(questions);
                tallies.push(tally);
            }
            fn first(qs: &[Question]) -> BTreeMap<&str, &str> {
                let mut m: BTreeMap<&str, &str> = BTreeMap::new();
                for q in qs {
                    if let Some(d) = q.doc_id.as_deref() {
                        m.entry(d).or_insert(q.text.as_str());
                    }
                }
                m
            }
            let (g, d) = (first(&out[0]), first(&out[1]));
            let both: Vec<(&str, &str)> = g.iter().filter_map(|(doc, q)| d.get(doc).map(|o| (*q, *o))).collect();
            Ok(CandidatesSummary {
                general: tallies[0],
                domain: tallies[1],
                identical_first: both.iter().filter(|(a, b)| a.trim().eq_ignore_ascii_case(b.trim())).count(),
                both_kept: both.len(),
            })
        })?;
        Ok((read_records(&dir.join("general.jsonl"))?, read_records(&dir.join("domain.jsonl"))?))
    }

    /// The dense store of the corpus (the retriever of the evaluator and of the contexts).
    fn store<B: burn::prelude::Backend>(
        &mut self,
        models: &Models,
        docs: &[Document],
        device: &B::Device,
    ) -> Result<Option<PathBuf>> {
        if self.config.retrieval.kind != RetrieverKind::Dense {
            return Ok(None);
        }
        let inputs = json!({ "encoder": models.encoder, "batch": self.config.retrieval.batch_size });
        let dir = self.out.join("stages/store");
        let batch = self.config.retrieval.batch_size;
        let encoder_path = models.encoder.clone();
        let (_, dir) = self.stage("store", dir, &["corpus"], inputs, |tmp, progress| {
            let encoder =
                kailin_retrieval::EncoderBuilder::new(&encoder_path).batch_size(batch).build::<B>(device).lib()?;
            let texts = docs.iter().map(|d| Ok::<_, std::io::Error>((d.id.clone(), doc_text(d))));
            let total = docs.len() as u64;
            let store = kailin_retrieval::build_store(
                &encoder,
                kailin_retrieval::StoreBuilder::new(tmp.join("store"), encoder.dim()),
                texts,
                |n| progress(n, total, "documents"),
            )
            .lib()?;
            Ok(json!({ "documents": store.len(), "dim": encoder.dim() }))
        })?;
        Ok(Some(dir.join("store")))
    }

    fn retriever<B: burn::prelude::Backend>(
        &self,
        models: &Models,
        store: Option<&Path>,
        docs: &[Document],
        device: &B::Device,
    ) -> Result<AnyRetriever<B>> {
        Ok(match store {
            Some(dir) => {
                let encoder = kailin_retrieval::EncoderBuilder::new(&models.encoder)
                    .batch_size(self.config.retrieval.batch_size)
                    .build::<B>(device)
                    .lib()?;
                let store = kailin_retrieval::Store::open(dir).lib()?;
                AnyRetriever::Dense(Box::new(
                    DenseRetriever::new(encoder, store, kailin_retrieval::ExactSearch::new(0).lib()?).lib()?,
                ))
            }
            None => AnyRetriever::Bm25(Bm25Retriever::build(docs.iter().map(|d| (d.id.as_str(), doc_text(d)))).lib()?),
        })
    }
}

/// `text` cut to at most `chars` bytes, at a character boundary.
fn cut(text: &str, chars: usize) -> &str {
    let end = (0..=chars.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    &text[..end]
}

/// What the encoder and BM25 read of a document.
fn doc_text(d: &Document) -> String {
    format!("{} {}", d.title, d.text).trim().to_owned()
}

/// The configured retriever.
pub(crate) enum AnyRetriever<B: burn::prelude::Backend> {
    Dense(Box<DenseRetriever<B>>),
    Bm25(Bm25Retriever),
}

impl<B: burn::prelude::Backend> Retriever for AnyRetriever<B> {
    type Error = kailin_retrieval::Error;

    fn retrieve(&self, queries: &[&str], k: usize) -> kailin_retrieval::Result<Vec<Vec<Retrieved>>> {
        match self {
            AnyRetriever::Dense(r) => r.retrieve(queries, k),
            AnyRetriever::Bm25(r) => r.retrieve(queries, k),
        }
    }
}

impl Run<'_> {
    /// Pairs the agents' candidates per document (i-th with i-th), labels them, and makes the
    /// preference dataset.
    #[allow(clippy::too_many_arguments)]
    fn labels<B: burn::prelude::Backend>(
        &mut self,
        models: &Models,
        store: Option<&Path>,
        docs: &[Document],
        candidates: &(Vec<Question>, Vec<Question>),
        device: &B::Device,
    ) -> Result<PathBuf> {
        let e = self.config.evaluator.clone();
        let r = self.config.retrieval.clone();
        let mesh_path = self.config.data.dir.join(&self.config.data.mesh);
        need(&mesh_path, "the MeSH file", "set data.mesh (under data.dir)")?;
        let inputs = json!({ "evaluator": e, "retrieval": r, "mesh": fingerprint(&mesh_path)? });
        let dir = self.out.join("stages/labels");
        let after = ["corpus", "candidates", "store"];
        let retriever = self.retriever::<B>(models, store, docs, device)?;
        let base = models.base.clone();
        let max_positions = self.config.models.max_positions;
        let (_, dir) = self.per_document("labels", dir, &after, inputs, docs.len(), |tmp, range, progress| {
            let corpus = Corpus::new(docs.iter().cloned()).lib()?;
            let part = &docs[range];
            let by_doc = |qs: &[Question]| {
                let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for q in qs {
                    if let Some(d) = &q.doc_id {
                        m.entry(d.clone()).or_default().push(q.text.clone());
                    }
                }
                m
            };
            let (g, d) = (by_doc(&candidates.0), by_doc(&candidates.1));
            let mut pairs: Vec<(&Document, [String; 2])> = Vec::new();
            for doc in part {
                if let (Some(a), Some(b)) = (g.get(&doc.id), d.get(&doc.id)) {
                    for (x, y) in a.iter().zip(b) {
                        pairs.push((doc, [x.clone(), y.clone()]));
                    }
                }
            }
            let items: Vec<Item<'_>> =
                pairs.iter().map(|(doc, q)| Item { doc, questions: [q[0].as_str(), q[1].as_str()] }).collect();
            let total = items.len() as u64;
            let judge_all = |ev: &dyn Fn(&[Item<'_>]) -> Result<Vec<kailin_evaluator::Judgement>>,
                             progress: &mut dyn FnMut(u64, u64, &str)| {
                let mut out = Vec::with_capacity(items.len());
                for chunk in items.chunks(64) {
                    out.extend(ev(chunk)?);
                    progress(out.len() as u64, total, "pairs");
                }
                Ok::<_, Error>(out)
            };
            let (judgements, evaluator) = match e.kind {
                EvaluatorKind::Rule => {
                    let mesh = kailin_mesh::Mesh::load(&mesh_path).lib()?;
                    let options = kailin_evaluator::RuleOptions {
                        k: r.k,
                        exclude_source: r.exclude_source,
                        aggregate: match e.aggregate {
                            AggregateKind::Mean => kailin_mesh::Aggregate::Mean,
                            AggregateKind::Bma => kailin_mesh::Aggregate::BestMatch,
                        },
                        margin: e.margin,
                        ..Default::default()
                    };
                    let rule = kailin_evaluator::RuleEvaluator::new(&mesh, &corpus, &retriever, options).lib()?;
                    (judge_all(&|c| rule.evaluate(c).lib(), progress)?, "rule (MeSH)".to_owned())
                }
                EvaluatorKind::LlmJudge => {
                    let (llama, _, tok) = kailin_lm::load::<B>(&base, max_positions, device).lib()?;
                    let options = kailin_evaluator::JudgeOptions {
                        k: r.k,
                        exclude_source: r.exclude_source,
                        margin: e.margin,
                        ..Default::default()
                    };
                    let name = format!("llm-judge/{}", base.display());
                    let judge =
                        kailin_evaluator::PairwiseJudge::new(llama, tok, &corpus, &retriever, options, name).lib()?;
                    (judge_all(&|c| judge.evaluate(c).lib(), progress)?, "llm-judge (no MeSH)".to_owned())
                }
            };
            let provenance = Provenance { agent: format!("evaluator/{evaluator}"), ..Default::default() };
            let mut labels = Vec::with_capacity(pairs.len());
            let mut dpo = Vec::new();
            let mut prefs = Vec::new();
            let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
            for ((doc, q), j) in pairs.iter().zip(judgements) {
                *outcomes.entry(j.outcome.as_str().to_owned()).or_default() += 1;
                let label = Label { doc_id: doc.id.clone(), questions: q.clone(), judgement: j };
                if let Some(pair) = kailin_evaluator::preference_pair(&label, &corpus, &provenance).lib()? {
                    dpo.push(DpoExample::new(&pair, doc));
                    prefs.push(pair);
                }
                labels.push(label);
            }
            write_records(&tmp.join("labels.jsonl"), &labels)?;
            write_records(&tmp.join("preference_pairs.jsonl"), &prefs)?;
            write_records(&tmp.join("preference.jsonl"), &dpo)?;
            Ok(LabelSummary {
                items: labels.len(),
                outcomes,
                pairs: prefs.len(),
                margins: prefs.iter().map(|p| p.score_chosen - p.score_rejected).collect(),
                evaluator,
            })
        })?;
        Ok(dir)
    }

    /// Writes the final questions (greedy, one per document) with the optimised generator,
    /// retrieves their contexts: the CPT dataset.
    fn cpt_dataset<B: burn::prelude::Backend>(
        &mut self,
        models: &Models,
        store: Option<&Path>,
        generator: &Path,
        docs: &[Document],
        device: &B::Device,
    ) -> Result<(Vec<CptRecord>, PathBuf)> {
        let r = self.config.retrieval.clone();
        let inputs = json!({ "generator": generator, "questions": self.config.questions, "retrieval": r });
        let dir = self.out.join("stages/cpt");
        let retriever = self.retriever::<B>(models, store, docs, device)?;
        let model = generator.to_owned();
        let config = self.config.clone();
        let after = ["corpus", "dpo", "store"];
        let (_, dir) = self.per_document("cpt", dir, &after, inputs, docs.len(), |tmp, range, progress| {
            let g = make_generator::<B>(&config, &model, "question-generator/optimised", 7, true, device)?;
            let part = &docs[range];
            let total = part.len() as u64;
            let mut questions = Vec::new();
            let mut tally = kailin_question::Tally::default();
            for chunk in part.chunks(config.questions.batch_size) {
                let out = kailin_question::QuestionGenerator::generate(&g, chunk, 1).lib()?;
                questions.extend(out.questions);
                tally.add(&out.tally);
                progress(tally.documents, total, "documents");
            }
            write_records(&tmp.join("questions.jsonl"), &questions)?;
            let corpus = Corpus::new(docs.iter().cloned()).lib()?;
            let mut records = Vec::with_capacity(questions.len());
            for chunk in questions.chunks(64) {
                let texts: Vec<&str> = chunk.iter().map(|q| q.text.as_str()).collect();
                let extra = usize::from(r.exclude_source);
                let hits = retriever.retrieve(&texts, r.k + extra).lib()?;
                for (q, hits) in chunk.iter().zip(hits) {
                    let ids: Vec<&str> = hits
                        .iter()
                        .map(|h| h.id.as_str())
                        .filter(|id| !(r.exclude_source && Some(*id) == q.doc_id.as_deref()))
                        .take(r.k)
                        .collect();
                    let context: Context = kailin_evaluator::context_of(&corpus, ids).lib()?;
                    records.push(CptRecord {
                        id: q.id.clone(),
                        question: q.text.clone(),
                        context,
                        provenance: q.provenance.clone().unwrap_or_default(),
                    });
                }
            }
            write_records(&tmp.join("cpt.jsonl"), &records)?;
            Ok(json!({ "questions": tally, "records": records.len() }))
        })?;
        Ok((read_records(&dir.join("cpt.jsonl"))?, dir))
    }

    /// The answer agent completes the CPT dataset: the SFT dataset.
    fn sft_dataset<B: burn::prelude::Backend>(
        &mut self,
        answerer: &Path,
        cpt: &[CptRecord],
        device: &B::Device,
    ) -> Result<(Vec<SftRecord>, PathBuf)> {
        let a = self.config.answers.clone();
        let inputs = json!({ "answers": a, "model": answerer, "seed": self.config.run.seed });
        let dir = self.out.join("stages/sft");
        let answerer = answerer.to_owned();
        let max_positions = self.config.models.max_positions;
        let seed = self.config.run.seed;
        let (_, dir) = self.per_document("sft", dir, &["cpt"], inputs, cpt.len(), |tmp, range, progress| {
            let cpt = &cpt[range];
            let (llama, _, tok) = kailin_lm::load::<B>(&answerer, max_positions, device).lib()?;
            let options = kailin_answer::LocalOptions {
                max_new: a.max_new,
                temperature: 0.0,
                seed,
                batch_size: a.batch_size,
                system: None,
            };
            let agent = kailin_answer::LocalAnswerer::new(llama, tok, answerer.display().to_string(), options).lib()?;
            let shown: Vec<CptRecord> = cpt
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    if r.context.text.len() > a.context_chars {
                        let cut =
                            (0..=a.context_chars).rev().find(|&i| r.context.text.is_char_boundary(i)).unwrap_or(0);
                        r.context.text.truncate(cut);
                    }
                    r
                })
                .collect();
            let mut out = Vec::with_capacity(shown.len());
            let total = shown.len() as u64;
            kailin_answer::answer_all(
                &agent,
                &shown,
                1,
                a.batch_size,
                |r| {
                    out.push(r);
                    Ok(())
                },
                |done| progress(done as u64, total, "records"),
            )
            .lib()?;
            write_records(&tmp.join("sft.jsonl"), &out)?;
            Ok(json!({ "records": out.len() }))
        })?;
        Ok((read_records(&dir.join("sft.jsonl"))?, dir))
    }
}

/// The token count of texts under `tok` (for the control's same budget).
fn tokens(tok: &kailin_lm::Tokenizer, texts: impl IntoIterator<Item = String>) -> Result<usize> {
    let mut n = 0;
    for t in texts {
        n += tok.encode(&t, false).lib()?.len();
    }
    Ok(n)
}

/// PQA-L's records outside the test split as SFT chats: the evaluation's prompt, the
/// decision and the long answer.
fn pubmedqa_train_chats(data: &Path) -> Result<Vec<ChatExample>> {
    let test = kailin_corpus::read_pubmedqa_test_ids(data.join("pubmedqa/test_ground_truth.json")).lib()?;
    let (records, _) = kailin_corpus::read_pubmedqa(data.join("pubmedqa/ori_pqal.json"), false).lib()?;
    Ok(records
        .into_iter()
        .filter(|r| !test.contains(&r.pmid))
        .filter_map(|r| {
            let decision = kailin_eval::Decision::parse(&r.final_decision)?;
            let item = kailin_eval::TestItem {
                pmid: r.pmid.clone(),
                question: r.question.clone(),
                contexts: r.contexts.clone(),
                year: r.year,
                meshes: r.meshes.clone(),
                truth: decision,
            };
            let user = kailin_eval::user_turn(&item, kailin_eval::Setting::ReasoningRequired);
            let answer = format!("{}. {}", decision.as_str(), r.long_answer).trim().to_owned();
            Some(ChatExample {
                messages: vec![
                    kailin_core::Message { role: "user".into(), content: user },
                    kailin_core::Message { role: "assistant".into(), content: answer },
                ],
            })
        })
        .collect())
}

/// Takes items from `pool` in order, cycling, until their tokens reach `budget` (at least one).
fn to_budget<T: Clone>(pool: &[T], budget: usize, size: impl Fn(&T) -> usize) -> Vec<T> {
    let mut out = Vec::new();
    let mut n = 0;
    if pool.is_empty() {
        return out;
    }
    for item in pool.iter().cycle() {
        if n >= budget.max(1) {
            break;
        }
        n += size(item).max(1);
        out.push(item.clone());
    }
    out
}

/// Stage outputs the report needs.
#[derive(Debug, Clone)]
pub(crate) struct Trained {
    /// `(name, model dir)` of every model evaluated.
    pub(crate) models: Vec<(String, PathBuf)>,
}

impl Run<'_> {
    /// The target model (CPT on the CPT dataset, then SFT on the SFT dataset) and the
    /// same-budget control.
    fn targets<A: AutodiffBackend>(
        &mut self,
        models: &Models,
        docs: &[Document],
        cpt: &[CptRecord],
        sft: &[SftRecord],
        device: &A::Device,
    ) -> Result<Trained> {
        let t = self.config.target.clone();
        let data = self.config.data.dir.clone();
        // The contexts cut to target.context_chars, so that a long context cannot push the
        // question out of the training window.
        let texts: Vec<TextExample> = cpt
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.context.text = cut(&r.context.text, t.context_chars).to_owned();
                TextExample::new(&r)
            })
            .collect();
        let mut chats: Vec<ChatExample> = sft
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.context.text = cut(&r.context.text, t.context_chars).to_owned();
                ChatExample::new(&r)
            })
            .collect();
        if t.pubmedqa_train {
            chats.extend(pubmedqa_train_chats(&data)?);
        }
        if texts.is_empty() || chats.is_empty() {
            return Err(Error::Stage {
                stage: "target-cpt".into(),
                input: format!("{} CPT and {} SFT records", texts.len(), chats.len()),
                fix: "the generator kept no question: look at stages/candidates and stages/cpt (questions.n, \
                      questions.max_new, agents.*)"
                    .into(),
                source: "nothing to train the target model on".into(),
            });
        }
        let cpt_settings = (t.cpt_epochs, t.lr, t.lora_rank, t.batch_size, t.max_len);
        let sft_settings = (t.sft_epochs, t.lr, t.lora_rank, t.batch_size, t.max_len);
        let write_texts = |texts: Vec<TextExample>| {
            move |tmp: &Path| -> Result<(PathBuf, Option<PathBuf>, usize)> {
                let p = tmp.join("cpt.jsonl");
                write_records(&p, &texts)?;
                Ok((p, None, texts.len()))
            }
        };
        let write_chats = |chats: Vec<ChatExample>| {
            move |tmp: &Path| -> Result<(PathBuf, Option<PathBuf>, usize)> {
                let p = tmp.join("sft.jsonl");
                write_records(&p, &chats)?;
                Ok((p, None, chats.len()))
            }
        };
        let inputs = json!({ "pubmedqa_train": t.pubmedqa_train, "context_chars": t.context_chars });
        let target_cpt = self.train::<A>(
            "target-cpt",
            &["cpt"],
            inputs.clone(),
            kailin_train::Objective::Cpt,
            &models.base,
            cpt_settings,
            write_texts(texts.clone()),
            device,
        )?;
        let target = self.train::<A>(
            "target",
            &["target-cpt", "sft"],
            inputs,
            kailin_train::Objective::Sft,
            &target_cpt,
            sft_settings,
            write_chats(chats.clone()),
            device,
        )?;
        let mut trained = Trained { models: vec![("kailin".into(), target)] };
        if t.control {
            // The same token budget without kailin's data: raw abstracts for CPT, PQA-L's
            // training half for SFT.
            let (_, _, tok) =
                kailin_lm::load::<A::InnerBackend>(&models.base, self.config.models.max_positions, device).lib()?;
            let cpt_budget = tokens(&tok, texts.iter().map(|t| t.text.clone()))?;
            let chat_text =
                |c: &ChatExample| c.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join(" ");
            let sft_budget = tokens(&tok, chats.iter().map(chat_text))?;
            let raw: Vec<TextExample> = docs.iter().map(TextExample::from_document).collect();
            let sizes: Vec<usize> = raw.iter().map(|t| tok.encode(&t.text, false).map_or(1, |v| v.len())).collect();
            let sized: Vec<(TextExample, usize)> = raw.into_iter().zip(sizes).collect();
            let control_texts: Vec<TextExample> =
                to_budget(&sized, cpt_budget, |(_, n)| *n).into_iter().map(|(t, _)| t).collect();
            let pool = pubmedqa_train_chats(&data)?;
            let pool_sized: Vec<(ChatExample, usize)> = pool
                .into_iter()
                .map(|c| (tok.encode(&chat_text(&c), false).map_or(1, |v| v.len()), c))
                .map(|(n, c)| (c, n))
                .collect();
            let control_chats: Vec<ChatExample> =
                to_budget(&pool_sized, sft_budget, |(_, n)| *n).into_iter().map(|(c, _)| c).collect();
            let budget = json!({ "cpt_tokens": cpt_budget, "sft_tokens": sft_budget });
            let control_cpt = self.train::<A>(
                "control-cpt",
                &["corpus", "target-cpt"],
                budget.clone(),
                kailin_train::Objective::Cpt,
                &models.base,
                cpt_settings,
                write_texts(control_texts),
                device,
            )?;
            let control = self.train::<A>(
                "control",
                &["control-cpt"],
                budget,
                kailin_train::Objective::Sft,
                &control_cpt,
                sft_settings,
                write_chats(control_chats),
                device,
            )?;
            trained.models.push(("control".into(), control));
        }
        Ok(trained)
    }

    /// PubMedQA for every model and setting.
    fn evaluate<B: burn::prelude::Backend>(
        &mut self,
        models: &[(String, PathBuf)],
        device: &B::Device,
    ) -> Result<Vec<(String, kailin_eval::Setting, kailin_eval::Report, PathBuf)>> {
        let e = self.config.eval.clone();
        let data = self.config.data.dir.clone();
        let mut items = kailin_eval::load_test_set(&data)
            .map_err(|err| failed("eval", data.display(), "point data.dir at the data directory")(boxed(err)))?;
        if e.limit > 0 {
            items.truncate(e.limit);
        }
        let mut out = Vec::new();
        for (name, model) in models {
            let after = match name.as_str() {
                "kailin" => vec!["target"],
                "control" => vec!["control"],
                _ => vec![],
            };
            for &setting in &e.settings {
                let stage = format!("eval-{name}-{}", setting.as_str());
                let inputs = json!({ "model": model, "setting": setting, "limit": e.limit, "batch": e.batch_size, "test": fingerprint(&data.join("pubmedqa/test_ground_truth.json"))? });
                let dir = self.out.join("stages").join(&stage);
                let max_positions = self.config.models.max_positions;
                let (report, dir) = self.stage(&stage, dir, &after, inputs, |tmp, progress| {
                    let (llama, _, tok) = kailin_lm::load::<B>(model, max_positions, device).lib()?;
                    let options =
                        kailin_eval::PredictOptions { setting, batch_size: e.batch_size, ..Default::default() };
                    let total = items.len() as u64;
                    let predictions =
                        kailin_eval::predict(&llama, &tok, &items, &options, |d, _| progress(d as u64, total, "items"))
                            .lib()?;
                    let report = kailin_eval::report(&items, &predictions, setting).lib()?;
                    let official = serde_json::to_vec_pretty(&kailin_eval::official_predictions(&predictions)).lib()?;
                    kailin_core::write_atomic(tmp.join("pubmedqa.json"), &official).map_err(stage::core_io(tmp))?;
                    write_records(&tmp.join("predictions.jsonl"), &predictions)?;
                    Ok(report)
                })?;
                out.push((name.clone(), setting, report, dir.join("pubmedqa.json")));
            }
        }
        Ok(out)
    }
}

/// Runs the whole loop on `A` (training) and its inner backend (inference) on `device`.
pub(crate) fn run_all<A: AutodiffBackend>(
    run: &mut Run<'_>,
    models: &Models,
    device: &A::Device,
) -> Result<crate::report::Results> {
    type B<A> = <A as AutodiffBackend>::InnerBackend;
    run.device_check()?;
    let docs = run.corpus()?;
    let agents = run.agents::<A>(models, &docs, device)?;
    let candidates = run.candidates::<B<A>>(&agents, &docs, device)?;
    let store = run.store::<B<A>>(models, &docs, device)?;
    let labels = run.labels::<B<A>>(models, store.as_deref(), &docs, &candidates, device)?;
    let pairs = std::fs::read_to_string(labels.join("preference.jsonl")).map(|t| t.lines().count()).unwrap_or(0);
    let generator = if run.config.dpo.enabled && pairs > 0 {
        let d = run.config.dpo.clone();
        let preference = labels.join("preference.jsonl");
        run.train::<A>(
            "dpo",
            &["labels", "agent-general"],
            json!({ "beta": d.beta }),
            kailin_train::Objective::Dpo { beta: d.beta },
            &agents.0,
            (d.epochs, d.lr, d.lora_rank, d.batch_size, d.max_len),
            |tmp| {
                let p = tmp.join("preference.jsonl");
                std::fs::copy(&preference, &p).map_err(|source| Error::Io { path: preference.clone(), source })?;
                Ok((p, None, pairs))
            },
            device,
        )?
    } else {
        tracing::warn!(pairs, enabled = run.config.dpo.enabled, "no DPO: the general agent writes the final questions");
        run.keys.insert("dpo".into(), format!("skipped:{}", run.key_of("agent-general")));
        agents.0.clone()
    };
    let (cpt, cpt_dir) = run.cpt_dataset::<B<A>>(models, store.as_deref(), &generator, &docs, device)?;
    let (sft, sft_dir) = run.sft_dataset::<B<A>>(&models.base, &cpt, device)?;
    let trained = run.targets::<A>(models, &docs, &cpt, &sft, device)?;
    let mut evaluated = trained.models.clone();
    if run.config.eval.base {
        evaluated.insert(0, ("base".into(), models.base.clone()));
    }
    let evals = run.evaluate::<B<A>>(&evaluated, device)?;
    Ok(crate::report::Results {
        labels,
        cpt: cpt_dir.join("cpt.jsonl"),
        sft: sft_dir.join("sft.jsonl"),
        generator,
        evals,
        dpo_ran: generator_is_dpo(&run.rows),
    })
}

fn generator_is_dpo(rows: &[StageRow]) -> bool {
    rows.iter().any(|r| r.stage == "dpo")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_cycle_the_pool_until_reached() {
        let pool = [3usize, 5, 2];
        assert_eq!(to_budget(&pool, 9, |n| *n), vec![3, 5, 2]);
        assert_eq!(to_budget(&pool, 12, |n| *n), vec![3, 5, 2, 3]);
        assert_eq!(to_budget(&pool, 0, |n| *n), vec![3]);
        assert!(to_budget::<usize>(&[], 10, |n| *n).is_empty());
    }
}
