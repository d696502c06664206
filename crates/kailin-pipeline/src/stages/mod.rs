//! The stages of m-KAILIN in order, each a call into the library that owns the step:
//! corpus → retrieval corpus → domain encoder (`models.encoder = "domain"`) → agents → candidates
//! → store → labels → DPO (and its check) → CPT dataset → SFT dataset → target and control →
//! PubMedQA.

mod agents;
mod corpus;
mod datasets;
mod dpo;
mod encoder;
mod labels;
mod retrieval;
mod targets;

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;

pub(crate) use self::agents::{Agent, Prepared};
pub(crate) use self::targets::Evaluated;
use crate::engine::Run;
use crate::error::{Error, Result};

/// Prompts handed to a local generator per call, in batches: the generator keeps its
/// `batch_size` sequences decoding and refills a finished one's slot from the same call
/// (continuous batching); progress is reported per call.
pub(crate) const WINDOW: usize = 4;

/// The model paths a run starts from.
#[derive(Debug, Clone)]
pub(crate) struct Models {
    pub(crate) base: PathBuf,
    pub(crate) encoder: PathBuf,
    /// The models' digests, part of every stage's key.
    pub(crate) identity: serde_json::Value,
}

/// What the stages produced, for the report.
#[derive(Debug, Clone)]
pub(crate) struct Results {
    pub(crate) labels: PathBuf,
    pub(crate) cpt: PathBuf,
    pub(crate) sft: PathBuf,
    /// What wrote the final questions (a model path, or a served role's model).
    pub(crate) generator: String,
    pub(crate) evals: Vec<Evaluated>,
    /// Whether DPO ran, and if not, why.
    pub(crate) dpo: Result<(), String>,
}

/// Runs the whole loop on `A` (training) and its inner backend (inference) on `device`.
pub(crate) fn run_all<A: AutodiffBackend>(run: &mut Run<'_>, models: &Models, device: &A::Device) -> Result<Results> {
    type B<A> = <A as AutodiffBackend>::InnerBackend;
    if run.config.run.device == crate::config::DeviceKind::Cuda && !kailin_lm::cuda_compiled() {
        return Err(Error::Config {
            key: "run.device".into(),
            message: "\"cuda\" needs a build with CUDA (the `cuda` feature); allowed here: \"cpu\"".into(),
        });
    }
    let docs = run.corpus()?;
    let contexts = run.retrieval_corpus(&docs)?;
    let models = &run.domain_encoder::<A>(models, device)?;
    let agents = run.agents::<A>(&models.base, &docs, device)?;
    let candidates = run.candidates::<B<A>>(&agents, &docs, device)?;
    let retrieval = run.store::<B<A>>(models, contexts, device)?;
    let (labels, labels_dir) = run.labels::<B<A>>(models, &retrieval, &docs, &candidates, device)?;
    let dpo = run.dpo::<A>(&labels, &labels_dir, &agents.0, device)?;
    if let (Ok(after), Some(before)) = (&dpo, agents.0.local()) {
        run.dpo_check::<B<A>>(models, &retrieval, &docs, before, after, device)?;
    }
    let writer = match (&dpo, run.config.backends.question_final.served()) {
        (_, true) => Agent::Served("question-final"),
        (Ok(dir), false) => Agent::Local(dir.clone()),
        (Err(why), false) => {
            tracing::warn!(why = %why, "no DPO: the general agent writes the final questions");
            run.keys.insert("dpo".into(), format!("skipped:{}", run.key_of("agent-general")));
            agents.0.clone()
        }
    };
    let generator = match &writer {
        Agent::Local(p) => p.display().to_string(),
        Agent::Served(role) => {
            run.config.backends.role(role).map_or_else(String::new, |b| format!("{} ({role})", b.model))
        }
    };
    let (cpt, cpt_dir) = run.cpt_dataset::<B<A>>(models, &retrieval, &writer, &docs, device)?;
    let (sft, sft_dir) = run.sft_dataset::<B<A>>(&models.base, &cpt, device)?;
    let mut evaluated = run.targets::<A>(models, &docs, &retrieval.docs, &cpt, &sft, device)?;
    if run.config.eval.base {
        evaluated.insert(0, ("base".into(), models.base.clone()));
    }
    let evals = run.evaluate::<B<A>>(&evaluated, device)?;
    Ok(Results {
        labels: labels_dir,
        cpt: cpt_dir.join("cpt.jsonl"),
        sft: sft_dir.join("sft.jsonl"),
        generator,
        evals,
        dpo: dpo.map(|_| ()),
    })
}
