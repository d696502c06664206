//! The cold-start rule (m-KAILIN Eq. 4–5): each question's top-k contexts are scored by the
//! MeSH similarity of their terms to the document's; the higher score wins.

use kailin_mesh::{Aggregate, DescriptorId, InformationContent, Mesh, Similarity};
use kailin_retrieval::Retriever;
use rustc_hash::FxHashMap;

use crate::corpus::{CHECK_TAGS, Corpus, DocTerms, TermFinder, TermSource, retrieve_contexts};
use crate::error::{Error, Result};
use crate::judgement::{
    CandidateExplanation, ContextDoc, ContextTerms, Evaluator, Explanation, Item, Judgement, Outcome, RuleExplanation,
    Term, TermPair,
};

/// How a candidate's k contexts make one score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooling {
    /// The mean, over the contexts that have terms, of each context's set similarity with the
    /// document (default).
    #[default]
    MeanOfContexts,
    /// One set similarity between the document and the union of the contexts' terms.
    Union,
}

/// Which information content the pair scores use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IcSource {
    /// The hierarchy's intrinsic IC (needs no annotated corpus).
    Intrinsic,
    /// Corpus IC from the terms of the evaluator's corpus (default: a term every context
    /// shares, like a study design, says little about closeness).
    #[default]
    Corpus,
}

/// Options of the rule. The defaults (best-match average, corpus IC, check tags left out,
/// headings else extraction, mean over the contexts) are the configuration measured best on
/// PubMedQA PQA-L (`docs/benchmarks.md`, "kailin-evaluator"); the paper's literal Eq. 4 is
/// `aggregate: Aggregate::Mean, ic: IcSource::Intrinsic`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleOptions {
    /// Contexts per question (the paper's k = 4).
    pub k: usize,
    /// Leave the document itself out of its questions' contexts.
    pub exclude_source: bool,
    /// Aggregation of pair scores between two term sets (best-match average; the mean of all
    /// pairs is Eq. 4's).
    pub aggregate: Aggregate,
    /// How the k contexts make one score.
    pub pooling: Pooling,
    /// Scores closer than this are a tie (no label).
    pub margin: f64,
    /// Where terms come from.
    pub terms: TermSource,
    /// Which IC the pair scores use.
    pub ic: IcSource,
    /// Leave MeSH check tags ([`CHECK_TAGS`]) out of every term set.
    pub ignore_check_tags: bool,
    /// Term pairs listed per candidate in the explanation.
    pub top_pairs: usize,
}

impl Default for RuleOptions {
    fn default() -> Self {
        RuleOptions {
            k: 4,
            exclude_source: false,
            aggregate: Aggregate::BestMatch,
            pooling: Pooling::MeanOfContexts,
            margin: 0.0,
            terms: TermSource::HeadingsElseExtraction,
            ic: IcSource::Corpus,
            ignore_check_tags: true,
            top_pairs: 3,
        }
    }
}

impl RuleOptions {
    fn check(&self) -> Result<()> {
        if self.k == 0 {
            return Err(Error::Options("k must be at least 1".into()));
        }
        if !(self.margin.is_finite() && self.margin >= 0.0) {
            return Err(Error::Options(format!("margin must be a finite number ≥ 0, not {}", self.margin)));
        }
        Ok(())
    }
}

/// The MeSH-guided rule evaluator over a retriever and the corpus it searches (see the crate
/// example).
#[derive(Debug)]
pub struct RuleEvaluator<'a, R> {
    mesh: &'a Mesh,
    corpus: &'a Corpus,
    retriever: R,
    options: RuleOptions,
    finder: TermFinder<'a>,
    /// The terms of every corpus document, by position.
    corpus_terms: Vec<DocTerms>,
    corpus_ic: Option<InformationContent>,
}

/// A candidate's retrieval, terms and score, before the explanation is written.
struct Scored {
    contexts: Vec<ContextDoc>,
    /// Per context: its position in the corpus and its similarity (None without terms).
    sims: Vec<(usize, Option<f64>)>,
    score: Option<f64>,
}

impl<'a, R: Retriever> RuleEvaluator<'a, R> {
    /// The rule over `retriever`, which searches `corpus` (a store or index built from it).
    /// Finds every corpus document's terms once, here.
    ///
    /// Errors: an option out of range; the term extractor cannot be built.
    pub fn new(mesh: &'a Mesh, corpus: &'a Corpus, retriever: R, options: RuleOptions) -> Result<Self> {
        options.check()?;
        let ignore: Vec<DescriptorId> = if options.ignore_check_tags {
            CHECK_TAGS.iter().filter_map(|ui| mesh.by_ui(ui)).collect()
        } else {
            Vec::new()
        };
        let finder = TermFinder::new(mesh, options.terms, &ignore)?;
        let corpus_terms: Vec<DocTerms> = corpus.documents().iter().map(|d| finder.terms(d)).collect();
        let corpus_ic = match options.ic {
            IcSource::Intrinsic => None,
            IcSource::Corpus => Some(InformationContent::from_annotations(
                mesh,
                corpus_terms.iter().flat_map(|t| t.ids.iter().map(|&d| (d, 1))),
                mesh.intrinsic_ic().ancestry(),
            )?),
        };
        Ok(RuleEvaluator { mesh, corpus, retriever, options, finder, corpus_terms, corpus_ic })
    }

    /// The options in use.
    pub fn options(&self) -> &RuleOptions {
        &self.options
    }

    /// The retriever.
    pub fn retriever(&self) -> &R {
        &self.retriever
    }

    fn similarity(&self) -> Similarity<'_> {
        match &self.corpus_ic {
            Some(ic) => Similarity::with_ic(self.mesh, ic),
            None => Similarity::new(self.mesh),
        }
    }

    fn term(&self, d: DescriptorId) -> Term {
        let desc = self.mesh.descriptor(d);
        Term { ui: desc.ui().to_owned(), name: desc.name().to_owned() }
    }

    fn score(&self, doc: &[DescriptorId], contexts: Vec<ContextDoc>) -> Result<Scored> {
        let sim = self.similarity();
        let agg = self.options.aggregate;
        let mut sims = Vec::with_capacity(contexts.len());
        for c in &contexts {
            let pos = self.corpus.position(&c.doc_id).ok_or_else(|| Error::UnknownContext { id: c.doc_id.clone() })?;
            let terms = &self.corpus_terms[pos].ids;
            let s = (!doc.is_empty() && !terms.is_empty()).then(|| sim.set_score(doc, terms, agg).score);
            sims.push((pos, s));
        }
        let score = match self.options.pooling {
            Pooling::MeanOfContexts => {
                let (sum, n) = sims.iter().filter_map(|&(_, s)| s).fold((0.0, 0usize), |(a, n), s| (a + s, n + 1));
                (n > 0).then(|| sum / n as f64)
            }
            Pooling::Union => {
                let mut all: Vec<DescriptorId> =
                    sims.iter().flat_map(|&(pos, _)| self.corpus_terms[pos].ids.iter().copied()).collect();
                all.sort_unstable();
                all.dedup();
                (!doc.is_empty() && !all.is_empty()).then(|| sim.set_score(doc, &all, agg).score)
            }
        };
        Ok(Scored { contexts, sims, score })
    }

    /// The contexts' terms and the pairs that contributed most.
    fn explain(&self, doc: &[DescriptorId], scored: &Scored) -> CandidateExplanation {
        let sim = self.similarity();
        let mut pairs: FxHashMap<(DescriptorId, DescriptorId), f64> = FxHashMap::default();
        let contexts = scored
            .contexts
            .iter()
            .zip(&scored.sims)
            .map(|(c, &(pos, similarity))| {
                let terms = &self.corpus_terms[pos].ids;
                for &a in doc {
                    for &b in terms {
                        pairs.entry((a, b)).or_insert_with(|| sim.pair(a, b));
                    }
                }
                ContextTerms {
                    doc_id: c.doc_id.clone(),
                    terms: terms.iter().map(|&d| self.term(d)).collect(),
                    similarity,
                }
            })
            .collect();
        let mut ranked: Vec<((DescriptorId, DescriptorId), f64)> = pairs.into_iter().collect();
        ranked.sort_by(|(pa, a), (pb, b)| b.total_cmp(a).then(pa.cmp(pb)));
        let top_pairs = ranked
            .into_iter()
            .take(self.options.top_pairs)
            .map(|((a, b), score)| {
                let why = sim.explain(a, b);
                TermPair { document: self.term(a), context: self.term(b), mica: why.lca.map(|d| self.term(d)), score }
            })
            .collect();
        CandidateExplanation { contexts, top_pairs }
    }
}

impl<R: Retriever> Evaluator for RuleEvaluator<'_, R> {
    type Error = Error;

    fn evaluate(&self, items: &[Item<'_>]) -> Result<Vec<Judgement>> {
        let retrieved = retrieve_contexts(&self.retriever, items, self.options.k, self.options.exclude_source)?;
        let mut out = Vec::with_capacity(items.len());
        for (it, found) in items.iter().zip(retrieved) {
            // A corpus document's terms were found when the evaluator was built.
            let computed;
            let doc = match self.corpus.position(&it.doc.id) {
                Some(p) if self.corpus.documents()[p] == *it.doc => &self.corpus_terms[p],
                _ => {
                    computed = self.finder.terms(it.doc);
                    &computed
                }
            };
            let [a, b] = found;
            let (Some(a), Some(b)) = (a, b) else {
                out.push(Judgement::skipped(Outcome::EmptyQuestion));
                continue;
            };
            let scored = [self.score(&doc.ids, a)?, self.score(&doc.ids, b)?];
            let scores = [scored[0].score, scored[1].score];
            let (preferred, outcome) = match scores {
                [Some(x), Some(y)] if (x - y).abs() <= self.options.margin => (None, Outcome::Tie),
                [Some(x), Some(y)] => (Some(usize::from(y > x)), Outcome::Preferred),
                _ => (None, Outcome::NoTerms),
            };
            let explanation = RuleExplanation {
                document_terms: doc.ids.iter().map(|&d| self.term(d)).collect(),
                unresolved: doc.unresolved.clone(),
                candidates: [self.explain(&doc.ids, &scored[0]), self.explain(&doc.ids, &scored[1])],
            };
            let contexts = scored.map(|s| s.contexts);
            out.push(Judgement { preferred, scores, outcome, contexts, explanation: Explanation::Rule(explanation) });
        }
        Ok(out)
    }

    fn name(&self) -> String {
        let agg = match self.options.aggregate {
            Aggregate::Mean => "mean",
            Aggregate::BestMatch => "bma",
        };
        format!("rule/{agg}")
    }
}
