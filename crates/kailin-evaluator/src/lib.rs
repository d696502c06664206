//! The MeSH-guided question evaluator of m-KAILIN: of two question–context pairs written
//! from one document, prefer the pair whose context is closer to the document in the MeSH
//! hierarchy.
//!
//! - [`Evaluator`]: the seam. Two candidate questions of one document in ([`Item`]), a
//!   [`Judgement`] out: the preferred candidate or none (with the [`Outcome`] saying why: a
//!   tie, no MeSH terms, an empty question), both scores, the retrieved contexts and an
//!   [`Explanation`].
//! - [`RuleEvaluator`]: the cold-start rule (Eq. 4–5). Each question's top-k contexts come
//!   from any [`Retriever`](kailin_retrieval::Retriever) over a [`Corpus`] (dense by default,
//!   or BM25, a lexical baseline); the terms of document and contexts
//!   come from their MeSH headings or from extraction ([`TermSource`]); each candidate scores
//!   the mean of its contexts' set similarity with the document (`kailin-mesh`: Resnik over the
//!   most informative common ancestor, mean of all pairs or best-match average). The
//!   explanation lists the terms on each side and the pairs that contributed most, with their
//!   common ancestor.
//! - [`PairwiseJudge`]: a language model asked "document, pair A, pair B: which fits better?"
//!   in both orders; fine-tuned on the rule's labels by [`train_judge`] it is the learned
//!   evaluator (Eq. 6), with the base model the no-MeSH ablation.
//! - [`Label`], [`preference_pair`]: judgements as label lines and as `kailin-core`
//!   [`PreferencePair`](kailin_core::PreferencePair)s (whose DPO form is
//!   [`DpoExample::new`](kailin_core::DpoExample::new)); pairs without preference are dropped
//!   and counted ([`Tally`]).
//!
//! ```
//! use kailin_core::Document;
//! use kailin_evaluator::{Corpus, Evaluator, Explanation, IcSource, Item, RuleEvaluator, RuleOptions};
//! use kailin_mesh::Mesh;
//! use kailin_retrieval::Bm25Retriever;
//!
//! let mesh = Mesh::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/mesh/mini.tsv"))?;
//! let doc = |id: &str, text: &str, mesh: &[&str]| Document {
//!     id: id.into(), text: text.into(), mesh: mesh.iter().map(|s| s.to_string()).collect(), ..Default::default()
//! };
//! let corpus = Corpus::new([
//!     doc("d", "Levodopa in Parkinson disease.", &["Parkinson Disease", "Levodopa"]),
//!     doc("c1", "Dopamine in Alzheimer disease.", &["Alzheimer Disease", "Dopamine"]),
//!     doc("c2", "Asthma in winter.", &["Asthma"]),
//! ])?;
//! let bm25 = Bm25Retriever::build(corpus.documents().iter().map(|d| (d.id.as_str(), d.text.as_str())))?;
//! // Intrinsic IC: in a three-document corpus, corpus IC cannot tell a term from its parent.
//! let options = RuleOptions { k: 1, exclude_source: true, ic: IcSource::Intrinsic, ..Default::default() };
//! let rule = RuleEvaluator::new(&mesh, &corpus, bm25, options)?;
//! let item = Item { doc: corpus.get("d").unwrap(), questions: ["Does asthma worsen in winter?", "Is dopamine low in Alzheimer disease?"] };
//! let judgement = &rule.evaluate(&[item])?[0];
//! assert_eq!(judgement.preferred, Some(1)); // a neurodegeneration context is closer
//! let Explanation::Rule(why) = &judgement.explanation else { unreachable!() };
//! let best = &why.candidates[1].top_pairs[0];
//! assert_eq!(best.mica.as_ref().unwrap().name, "Neurodegenerative Diseases"); // Parkinson × Alzheimer
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod corpus;
mod cpt;
mod error;
mod judge;
mod judgement;
mod preference;
mod rule;
mod served_judge;

pub use crate::{
    corpus::{CHECK_TAGS, Corpus, TermSource, context_of},
    cpt::{CptRecords, cpt_records},
    error::{Error, Result},
    judge::{JUDGE_INSTRUCTION, JudgeOptions, PairwiseJudge, judge_examples, judge_prompt, train_judge},
    judgement::{
        CandidateExplanation, ContextDoc, ContextTerms, Evaluator, Explanation, Item, Judgement, ModelExplanation,
        Outcome, RuleExplanation, Term, TermPair,
    },
    preference::{Label, Tally, preference_pair},
    rule::{IcSource, Pooling, RuleEvaluator, RuleOptions},
    served_judge::ServedJudge,
};
