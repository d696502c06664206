//! The method's outputs: the final questions with their top-k contexts (the CPT dataset),
//! and their answers (the SFT dataset).

use std::path::{Path, PathBuf};

use kailin_core::{CptRecord, Document, SftRecord};
use kailin_evaluator::Corpus;
use serde_json::json;

use super::Models;
use super::agents::{Agent, generator};
use super::retrieval::Retrieval;
use crate::engine::{Lib, Run};
use crate::error::Result;
use crate::files::{read_records, write_records};
use crate::summary::{CptSummary, SftSummary};

impl Run<'_> {
    /// The final questions (greedy, one per document) from `writer`, with their contexts.
    pub(crate) fn cpt_dataset<B: burn::prelude::Backend>(
        &mut self,
        models: &Models,
        retrieval: &Retrieval,
        writer: &Agent,
        docs: &[Document],
        device: &B::Device,
    ) -> Result<(Vec<CptRecord>, PathBuf)> {
        let r = self.config.retrieval.clone();
        let config = self.config.clone();
        let inputs =
            json!({ "generator": writer.identity(self, &config), "questions": config.questions, "retrieval": r });
        let dir = self.out.join("stages/cpt");
        let retriever = self.retriever::<B>(models, retrieval, device)?;
        let out_dir = self.out.clone();
        let after = ["corpus", "dpo", "retrieval-corpus", "store"];
        let (_, dir) = self.per_document("cpt", dir, &after, inputs, docs.len(), |tmp, range, progress| {
            let g = generator::<B>(&config, &out_dir, writer, "question-generator/optimised", 7, true, device)?;
            let part = &docs[range];
            let total = part.len() as u64;
            let mut questions = Vec::new();
            let mut tally = kailin_question::Tally::default();
            for chunk in part.chunks(super::WINDOW * config.questions.batch_size) {
                let out = g.generate(chunk, 1).lib()?;
                questions.extend(out.questions);
                tally.add(&out.tally);
                progress(tally.documents, total, "documents");
            }
            write_records(&tmp.join("questions.jsonl"), &questions)?;
            let corpus = Corpus::new(retrieval.docs.iter().cloned()).lib()?;
            let made = kailin_evaluator::cpt_records(&retriever, &corpus, &questions, r.k, r.exclude_source).lib()?;
            write_records(&tmp.join("cpt.jsonl"), &made.records)?;
            Ok(CptSummary { questions: tally, records: made.records.len(), served: g.served_stats() })
        })?;
        Ok((read_records(&dir.join("cpt.jsonl"))?, dir))
    }

    /// The answer agent (the base model, or the served `answer` role) completes the CPT
    /// dataset: the SFT dataset.
    pub(crate) fn sft_dataset<B: burn::prelude::Backend>(
        &mut self,
        base: &Path,
        cpt: &[CptRecord],
        device: &B::Device,
    ) -> Result<(Vec<SftRecord>, PathBuf)> {
        let a = self.config.answers.clone();
        let backend = self.config.backends.answer.clone();
        let model = if backend.served() { crate::backends::identity("answer", &backend) } else { self.key_path(base) };
        let inputs = json!({ "answers": a, "model": model, "seed": self.config.run.seed });
        let dir = self.out.join("stages/sft");
        let base = base.to_owned();
        let max_positions = self.config.models.max_positions;
        let seed = self.config.run.seed;
        let out_dir = self.out.clone();
        let (_, dir) = self.per_document("sft", dir, &["cpt"], inputs, cpt.len(), |tmp, range, progress| {
            // What the answer agent sees of each context: at most answers.context_chars.
            let shown: Vec<CptRecord> = cpt[range]
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.context.text = kailin_core::cut_chars(&r.context.text, a.context_chars).to_owned();
                    r
                })
                .collect();
            let answerer = if backend.served() {
                let client = crate::backends::client("answer", &backend, &out_dir)?;
                let mut options = kailin_answer::OpenAiOptions::new(&backend.endpoint, &backend.model);
                (options.max_tokens, options.seed) = (a.max_new, Some(seed));
                Answerer::Served(Box::new(kailin_answer::OpenAiClient::on(
                    client,
                    options,
                    kailin_answer::default_template(),
                )))
            } else {
                let (llama, _, tok) = kailin_lm::load::<B>(&base, max_positions, device).lib()?;
                let options = kailin_answer::LocalOptions {
                    max_new: a.max_new,
                    temperature: 0.0,
                    seed,
                    batch_size: a.batch_size,
                    system: None,
                };
                let local = kailin_answer::LocalAnswerer::new(llama, tok, base.display().to_string(), options).lib()?;
                Answerer::Local(Box::new(local))
            };
            let agent: &dyn kailin_answer::AnswerGenerator = match &answerer {
                Answerer::Served(c) => &**c,
                Answerer::Local(l) => &**l,
            };
            let mut out = Vec::with_capacity(shown.len());
            let total = shown.len() as u64;
            let chunk =
                if backend.served() { backend.concurrency.max(a.batch_size) } else { super::WINDOW * a.batch_size };
            let write = |r: SftRecord| -> kailin_answer::Result<()> {
                out.push(r);
                Ok(())
            };
            kailin_answer::answer_all(agent, &shown, 1, chunk, write, |done| progress(done as u64, total, "records"))
                .lib()?;
            write_records(&tmp.join("sft.jsonl"), &out)?;
            let served = match &answerer {
                Answerer::Served(c) => Some(crate::backends::stats("answer", &backend, c.served())),
                Answerer::Local(_) => None,
            };
            Ok(SftSummary { records: out.len(), served: served.into_iter().collect() })
        })?;
        Ok((read_records(&dir.join("sft.jsonl"))?, dir))
    }
}

/// The answer agent a run uses.
enum Answerer<B: burn::prelude::Backend> {
    Served(Box<kailin_answer::OpenAiClient>),
    Local(Box<kailin_answer::LocalAnswerer<B>>),
}
