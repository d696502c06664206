//! What contexts are retrieved from: the retrieval corpus (`retrieval.corpus`, apart from the
//! documents questions are written for), decontaminated against PubMedQA's test split and the
//! held-out BioASQ batches; the shared encoder's store of it; the configured retriever.

use std::collections::HashSet;
use std::path::PathBuf;

use kailin_core::Document;
use kailin_corpus::{Contamination, Decontaminator};
use kailin_retrieval::{AnyRetriever, DenseRetriever};
use serde_json::json;

use super::Models;
use crate::config::RetrieverKind;
use crate::engine::{Lib, Progress, Run};
use crate::error::{Error, Result};
use crate::files::{fingerprint, ingest_with, listing, need, read_records};
use crate::summary::{RetrievalCorpusSummary, StoreSummary};

/// The documents contexts come from, and their dense store (none with BM25).
#[derive(Debug, Clone)]
pub(crate) struct Retrieval {
    pub(crate) docs: Vec<Document>,
    pub(crate) store: Option<PathBuf>,
}

/// One `retrieval.corpus` entry, resolved.
enum Entry {
    Generation,
    Pubmedqa(PathBuf),
    Bioasq,
    Path(PathBuf),
}

const ALLOWED: &str =
    "\"generation\", \"pubmedqa\", \"bioasq\", or a file or directory (relative to data.dir, or absolute)";

impl Run<'_> {
    /// The retrieval-corpus stage over the corpus stage's `docs`; returns the kept documents.
    pub(crate) fn retrieval_corpus(&mut self, docs: &[Document]) -> Result<Vec<Document>> {
        let c = self.config.data.clone();
        let names = self.config.retrieval.corpus.clone();
        let held: Vec<String> = self.config.agents.held_out.clone();
        let bioasq_dir = c.dir.join(&c.bioasq);
        let mut entries = Vec::new();
        let mut files = Vec::new();
        for name in &names {
            entries.push(match name.as_str() {
                "generation" => Entry::Generation,
                "pubmedqa" => {
                    let p = c.dir.join("pubmedqa/ori_pqal.json");
                    need(&p, "PubMedQA PQA-L (retrieval.corpus \"pubmedqa\")", "point data.dir at the data directory")?;
                    files.push(fingerprint(&p)?);
                    Entry::Pubmedqa(p)
                }
                "bioasq" => {
                    need(&bioasq_dir, "the BioASQ golden batches (retrieval.corpus \"bioasq\")", "set data.bioasq")?;
                    Entry::Bioasq
                }
                path => {
                    let p = c.dir.join(path);
                    need(&p, &format!("retrieval.corpus entry {path:?}"), &format!("allowed: {ALLOWED}"))?;
                    files.push(listing(&p)?);
                    Entry::Path(p)
                }
            });
        }
        // The held-out batches are read whatever the entries: a path may hold their abstracts.
        let held_batches = !held.is_empty() && bioasq_dir.is_dir();
        let read_batches = held_batches || entries.iter().any(|e| matches!(e, Entry::Bioasq));
        if read_batches {
            files.push(listing(&bioasq_dir)?);
        }
        let inputs = json!({
            "corpus": names, "held_out": held, "ngram": c.decontaminate_ngram, "strict": c.strict, "files": files,
        });
        let dir = self.out.join("stages/retrieval-corpus");
        let (_, dir) = self.stage("retrieval-corpus", dir, &["corpus"], inputs, |tmp, progress| {
            let items = kailin_eval::load_test_set(&c.dir).lib()?;
            let batches = if read_batches {
                kailin_question::read_bioasq_batches(&bioasq_dir).map_err(|e| Error::Config {
                    key: "data.bioasq".into(),
                    message: format!("{}: {e}", bioasq_dir.display()),
                })?
            } else {
                Vec::new()
            };
            if let Some(h) = held.iter().find(|h| held_batches && !batches.iter().any(|(f, _)| f == *h)) {
                let known: Vec<&str> = batches.iter().map(|(f, _)| f.as_str()).collect();
                return Err(Error::Config {
                    key: "agents.held_out".into(),
                    message: format!("no batch {h:?} under {}; the batches are {known:?}", bioasq_dir.display()),
                });
            }
            let (held_qs, train_qs): (Vec<_>, Vec<_>) = batches.into_iter().partition(|(f, _)| held.contains(f));
            let mut admit = Admit {
                test: kailin_eval::test_split_gate(&items, c.decontaminate_ngram),
                held: held_out_gate(held_qs.iter().flat_map(|(_, qs)| qs), c.decontaminate_ngram),
                seen: HashSet::new(),
                writer: kailin_core::JsonlWriter::create(tmp.join("documents.jsonl")).lib()?,
                summary: RetrievalCorpusSummary::default(),
                progress,
            };
            for (name, entry) in names.iter().zip(&entries) {
                match entry {
                    Entry::Generation => {
                        for d in docs {
                            admit.one(name, d.clone(), &[])?;
                        }
                    }
                    Entry::Pubmedqa(p) => {
                        let (records, _) = kailin_corpus::read_pubmedqa(p, false).lib()?;
                        for r in &records {
                            admit.one(name, r.document(), &[])?;
                        }
                    }
                    Entry::Bioasq => {
                        for s in kailin_corpus::unique_snippets(train_qs.iter().flat_map(|(_, qs)| qs)) {
                            admit.one(name, s.document(), &[&s.pmid])?;
                        }
                    }
                    Entry::Path(p) => {
                        let what = format!("{name:?} ({})", p.display());
                        let report = ingest_with(p, c.strict, "retrieval.corpus", &what, |d| {
                            admit.one(name, d, &[]).map(|()| true)
                        })?;
                        admit.summary.ingest.insert(name.clone(), report);
                    }
                }
            }
            admit.writer.finish().lib()?;
            if admit.summary.documents == 0 {
                return Err(Error::Config {
                    key: "retrieval.corpus".into(),
                    message: format!("no document is left after decontamination ({} read)", admit.summary.read),
                });
            }
            Ok(admit.summary)
        })?;
        read_records(&dir.join("documents.jsonl"))
    }

    /// The dense store of the retrieval corpus `docs` (the retriever of the evaluator and of
    /// the contexts, alone or fused with BM25); none with BM25 alone.
    pub(crate) fn store<B: burn::prelude::Backend>(
        &mut self,
        models: &Models,
        docs: Vec<Document>,
        device: &B::Device,
    ) -> Result<Retrieval> {
        if self.config.retrieval.kind == RetrieverKind::Bm25 {
            return Ok(Retrieval { docs, store: None });
        }
        let inputs = json!({ "encoder": self.key_path(&models.encoder), "batch": self.config.retrieval.batch_size });
        let dir = self.out.join("stages/store");
        let batch = self.config.retrieval.batch_size;
        let encoder_path = models.encoder.clone();
        // A domain encoder's weights are what its stage's key says they are.
        let after: &[&str] =
            if self.keys.contains_key("encoder") { &["retrieval-corpus", "encoder"] } else { &["retrieval-corpus"] };
        let (_, dir) = self.stage("store", dir, after, inputs, |tmp, progress| {
            let encoder =
                kailin_retrieval::EncoderBuilder::new(&encoder_path).batch_size(batch).build::<B>(device).lib()?;
            let texts = docs.iter().map(|d| Ok::<_, std::io::Error>((d.id.clone(), d.retrieval_text())));
            let total = docs.len() as u64;
            let store = kailin_retrieval::build_store(
                &encoder,
                kailin_retrieval::StoreBuilder::new(tmp.join("store"), encoder.dim()),
                texts,
                |n| progress(n, total, "documents"),
            )
            .lib()?;
            Ok(StoreSummary { documents: store.len(), dim: encoder.dim() })
        })?;
        Ok(Retrieval { docs, store: Some(dir.join("store")) })
    }

    /// The configured retriever over the retrieval corpus (the store's, when dense or hybrid).
    pub(crate) fn retriever<B: burn::prelude::Backend>(
        &self,
        models: &Models,
        retrieval: &Retrieval,
        device: &B::Device,
    ) -> Result<AnyRetriever<B>> {
        Ok(match &retrieval.store {
            Some(dir) => {
                let encoder = kailin_retrieval::EncoderBuilder::new(&models.encoder)
                    .batch_size(self.config.retrieval.batch_size)
                    .build::<B>(device)
                    .lib()?;
                let store = kailin_retrieval::Store::open(dir).lib()?;
                let dense = DenseRetriever::new(encoder, store, kailin_retrieval::ExactSearch::new(0).lib()?).lib()?;
                if self.config.retrieval.kind == RetrieverKind::Hybrid {
                    let docs = retrieval.docs.iter().map(|d| (d.id.as_str(), d.retrieval_text()));
                    let bm25 = kailin_retrieval::Bm25Retriever::build(docs).lib()?;
                    AnyRetriever::Hybrid(Box::new(kailin_retrieval::HybridRetriever::new(dense, bm25)))
                } else {
                    AnyRetriever::Dense(Box::new(dense))
                }
            }
            None => AnyRetriever::bm25(retrieval.docs.iter().map(|d| (d.id.as_str(), d.retrieval_text()))).lib()?,
        })
    }
}

/// The held-out BioASQ batches as a gate: their documents' PMIDs and snippets' ids excluded,
/// their questions and snippets as evaluation text.
fn held_out_gate<'a>(
    questions: impl Iterator<Item = &'a kailin_corpus::BioasqQuestion>,
    ngram: usize,
) -> Decontaminator {
    let mut gate = Decontaminator::new(ngram.max(1));
    for q in questions {
        gate.exclude_ids(q.documents.iter().cloned());
        gate.exclude_ids(q.snippets.iter().flat_map(|s| [s.pmid.clone(), s.document().id]));
        if ngram > 0 {
            let snippets: Vec<&str> = q.snippets.iter().map(|s| s.text.as_str()).collect();
            gate.add_eval_text(&q.id, &format!("{} {}", q.body, snippets.join(" ")));
        }
    }
    gate
}

/// Admits documents into the retrieval corpus, counting what it leaves out and why.
struct Admit<'p> {
    test: Decontaminator,
    held: Decontaminator,
    seen: HashSet<String>,
    writer: kailin_core::JsonlWriter<Document>,
    summary: RetrievalCorpusSummary,
    progress: Progress<'p>,
}

impl Admit<'_> {
    /// `d` from entry `name`; `also` are more ids it stands for (a snippet's PMID).
    fn one(&mut self, name: &str, d: Document, also: &[&str]) -> Result<()> {
        let s = &mut self.summary;
        s.read += 1;
        let texts = [d.title.as_str(), d.text.as_str()];
        let held = |gate: &Decontaminator| {
            gate.check(&d.id, &texts).is_some() || also.iter().any(|id| gate.check(id, &[]).is_some())
        };
        match self.test.check(&d.id, &texts).or_else(|| also.iter().find_map(|id| self.test.check(id, &[]))) {
            Some(Contamination::Id) => s.test_split += 1,
            Some(_) => s.overlapping_test_text += 1,
            None if held(&self.held) => s.held_out_bioasq += 1,
            None if d.text.trim().is_empty() => s.empty += 1,
            None if !self.seen.insert(d.id.clone()) => s.duplicate_ids += 1,
            None => {
                self.writer.write(&d).lib()?;
                s.documents += 1;
                *s.by_source.entry(name.to_owned()).or_default() += 1;
                if s.documents.is_multiple_of(1000) {
                    (self.progress)(s.documents as u64, 0, "documents");
                }
            }
        }
        Ok(())
    }
}
