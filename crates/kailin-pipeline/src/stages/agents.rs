//! The question agents: BioASQ SFT for both, the domain agent continually pre-trained on the
//! corpus first; a served agent is used as served (no fine-tuning). Every training stage of
//! the run goes through [`Run::train`].

use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use kailin_core::{Document, TextExample};
use serde_json::json;

use crate::config::{Config, TrainSettings};
use crate::engine::{Lib, RERUN, Run, boxed, failed};
use crate::error::{Error, Result};
use crate::files::{need, write_records};
use crate::summary::TrainSummary;

/// Where a question agent runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Agent {
    /// A model directory or file of this run.
    Local(PathBuf),
    /// A served role (`question-general`…).
    Served(&'static str),
}

impl Agent {
    /// What stage keys hold of it: the path (as [`Run::key_path`] names it), or the served identity.
    pub(crate) fn identity(&self, run: &Run<'_>, config: &Config) -> serde_json::Value {
        match self {
            Agent::Local(p) => run.key_path(p),
            Agent::Served(role) => {
                config.backends.role(role).map_or(json!(role), |b| crate::backends::identity(role, b))
            }
        }
    }

    /// Its local weights, if any.
    pub(crate) fn local(&self) -> Option<&Path> {
        match self {
            Agent::Local(p) => Some(p),
            Agent::Served(_) => None,
        }
    }
}

/// The data a training stage writes into its directory before training.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prepared {
    /// The training file.
    pub(crate) data: PathBuf,
    /// The held-out file, if any.
    pub(crate) eval: Option<PathBuf>,
    /// Training records.
    pub(crate) records: usize,
    /// Held-out records.
    pub(crate) eval_records: usize,
    /// Evaluate about this many times over the run (0: after the last step only).
    pub(crate) evaluations: u64,
    /// What the report should say about the held-out data (e.g. why there is none).
    pub(crate) note: Option<String>,
}

impl Prepared {
    /// Training data alone.
    pub(crate) fn data(data: PathBuf, records: usize) -> Self {
        Prepared { data, records, ..Default::default() }
    }
}

impl Run<'_> {
    /// A training stage: `data` (written by `prepare` into the stage's directory) from
    /// `model` into `models/NAME/`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn train<A: AutodiffBackend>(
        &mut self,
        name: &str,
        after: &[&str],
        inputs: serde_json::Value,
        objective: kailin_train::Objective,
        model: &Path,
        settings: TrainSettings,
        prepare: impl FnOnce(&Path) -> Result<Prepared>,
        device: &A::Device,
    ) -> Result<PathBuf> {
        let seed = self.config.run.seed;
        let dir = self.out.join("models").join(name);
        let inputs = json!({ "inputs": inputs, "model": self.key_path(model), "settings": settings, "objective": objective, "seed": seed });
        let model = model.to_owned();
        let (_, dir) = self.stage(name, dir, after, inputs, |tmp, progress| {
            let prepared = prepare(tmp)?;
            let steps = (prepared.records.div_ceil(settings.batch_size.max(1)) * settings.epochs) as u64;
            let eval_every = (prepared.evaluations > 0).then(|| steps.div_ceil(prepared.evaluations).max(1));
            let job = kailin_train::Job {
                objective,
                model,
                data: prepared.data.clone(),
                eval: prepared.eval.clone(),
                out: tmp.to_owned(),
                lora: (settings.lora_rank > 0).then(|| kailin_lm::LoraConfig::new(settings.lora_rank)),
                max_len: settings.max_len,
                overlong: kailin_train::Overlong::Truncate,
                options: kailin_train::TrainOptions {
                    epochs: settings.epochs,
                    lr: settings.lr,
                    batch_size: settings.batch_size,
                    seed,
                    max_grad_norm: Some(1.0),
                    eval_every,
                    ..Default::default()
                },
            };
            let outcome = kailin_train::run_job::<A>(&job, device, |p| progress(p.log.step, p.last, "steps")).lib()?;
            Ok(TrainSummary::of(&prepared, &outcome.report))
        })?;
        Ok(dir)
    }

    /// The two question agents, `(general, domain)`.
    pub(crate) fn agents<A: AutodiffBackend>(
        &mut self,
        base: &Path,
        docs: &[Document],
        device: &A::Device,
    ) -> Result<(Agent, Agent)> {
        let a = self.config.agents.clone();
        let b = self.config.backends.clone();
        let served = |on: bool, role| on.then_some(Agent::Served(role));
        let (sg, sd) = (
            served(b.question_general.served(), "question-general"),
            served(b.question_domain.served(), "question-domain"),
        );
        if !a.prepare || (sg.is_some() && sd.is_some()) {
            let local = || Agent::Local(base.to_owned());
            return Ok((sg.unwrap_or_else(local), sd.unwrap_or_else(local)));
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
        let settings = a.settings();
        let inputs = json!({ "train": train, "eval": eval });
        let sft = |train: &[kailin_core::CompletionExample], eval: &[kailin_core::CompletionExample]| {
            let (train, eval) = (train.to_vec(), eval.to_vec());
            move |tmp: &Path| -> Result<Prepared> {
                let (t, e) = (tmp.join("data/train.jsonl"), tmp.join("data/eval.jsonl"));
                std::fs::create_dir_all(tmp.join("data"))
                    .map_err(|source| Error::Io { path: tmp.join("data"), source })?;
                write_records(&t, &train)?;
                write_records(&e, &eval)?;
                Ok(Prepared {
                    eval: (!eval.is_empty()).then_some(e),
                    eval_records: eval.len(),
                    ..Prepared::data(t, train.len())
                })
            }
        };
        let general = match sg {
            Some(s) => s,
            None => Agent::Local(self.train::<A>(
                "agent-general",
                &[],
                inputs.clone(),
                kailin_train::Objective::Sft,
                base,
                settings,
                sft(&train, &eval),
                device,
            )?),
        };
        if let Some(s) = sd {
            return Ok((general, s));
        }
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
            base,
            settings,
            |tmp| {
                let t = tmp.join("cpt.jsonl");
                write_records(&t, &texts)?;
                Ok(Prepared::data(t, texts.len()))
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
        Ok((general, Agent::Local(domain)))
    }
}

/// A question generator of `agent` with the configured options: greedy for the final
/// questions, sampling for the candidates. `n_seed` separates the agents' seeds.
pub(crate) fn generator<B: burn::prelude::Backend>(
    config: &Config,
    out: &Path,
    agent: &Agent,
    name: &str,
    n_seed: u64,
    greedy: bool,
    device: &B::Device,
) -> Result<Box<dyn Generator>> {
    let q = &config.questions;
    let options = kailin_question::GenerationOptions {
        temperature: if greedy { 0.0 } else { q.temperature },
        top_p: (!greedy && q.top_p < 1.0).then_some(q.top_p),
        top_k: None,
        max_new: q.max_new,
        seed: config.run.seed.wrapping_add(n_seed),
        batch_size: q.batch_size,
        max_document_chars: q.max_document_chars,
        resample: q.resample,
        // The final (greedy) questions are resampled at the candidates' temperature.
        resample_temperature: q.temperature,
    };
    Ok(match agent {
        Agent::Local(model) => {
            let (llama, _, tok) = kailin_lm::load::<B>(model, config.models.max_positions, device).lib()?;
            Box::new(
                kailin_question::LocalGenerator::new(llama, tok, model.display().to_string(), options)
                    .lib()?
                    .with_agent(name),
            )
        }
        Agent::Served(role) => {
            let b = config
                .backends
                .role(role)
                .ok_or_else(|| Error::Config { key: format!("backends.{role}"), message: "no such role".into() })?;
            let client = crate::backends::client(role, b, out)?;
            Box::new(Served {
                role,
                backend: b.clone(),
                inner: kailin_question::ServedGenerator::new(client, options).lib()?.with_agent(name),
            })
        }
    })
}

/// A question generator with, when served, its counters.
pub(crate) trait Generator: kailin_question::QuestionGenerator {
    /// The served role's work so far (none for a local model).
    fn served_stats(&self) -> Vec<crate::summary::RoleStats>;
}

impl<B: burn::prelude::Backend> Generator for kailin_question::LocalGenerator<B> {
    fn served_stats(&self) -> Vec<crate::summary::RoleStats> {
        Vec::new()
    }
}

/// A served generator and its role.
struct Served {
    role: &'static str,
    backend: crate::config::BackendConfig,
    inner: kailin_question::ServedGenerator,
}

impl kailin_question::QuestionGenerator for Served {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn generate(&self, documents: &[Document], n: usize) -> kailin_question::Result<kailin_question::Generated> {
        self.inner.generate(documents, n)
    }
}

impl Generator for Served {
    fn served_stats(&self) -> Vec<crate::summary::RoleStats> {
        vec![crate::backends::stats(self.role, &self.backend, self.inner.served())]
    }
}
