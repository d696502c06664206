//! The documents contexts are retrieved from, looked up by id, and the MeSH terms of a
//! document.

use kailin_core::{Context, Document};
use kailin_mesh::{DescriptorId, Extractor, Mesh};
use kailin_retrieval::Retriever;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::{Error, Result};
use crate::judgement::{ContextDoc, Item};

/// The retrievable documents, by id: what a store or BM25 index was built from.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    docs: Vec<Document>,
    index: FxHashMap<String, u32>,
}

impl Corpus {
    /// Indexes `docs` by id.
    ///
    /// Errors: [`Error::EmptyId`], [`Error::DuplicateDocument`] (contexts would be ambiguous).
    pub fn new(docs: impl IntoIterator<Item = Document>) -> Result<Self> {
        let mut out = Corpus::default();
        for doc in docs {
            out.push(doc)?;
        }
        Ok(out)
    }

    /// Adds one document.
    ///
    /// Errors: as [`Corpus::new`].
    pub fn push(&mut self, doc: Document) -> Result<()> {
        let n = self.docs.len();
        if doc.id.is_empty() {
            return Err(Error::EmptyId { record: n + 1 });
        }
        if let Some(&first) = self.index.get(&doc.id) {
            return Err(Error::DuplicateDocument { id: doc.id, first: first as usize + 1, second: n + 1 });
        }
        let row = u32::try_from(n).map_err(|_| Error::Options("a corpus holds at most 2^32 documents".into()))?;
        self.index.insert(doc.id.clone(), row);
        self.docs.push(doc);
        Ok(())
    }

    /// The document with this id.
    pub fn get(&self, id: &str) -> Option<&Document> {
        self.index.get(id).map(|&i| &self.docs[i as usize])
    }

    /// Position of the document with this id.
    pub(crate) fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).map(|&i| i as usize)
    }

    /// Every document, in insertion order.
    pub fn documents(&self) -> &[Document] {
        &self.docs
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}

/// Where a document's MeSH terms come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TermSource {
    /// The record's own headings (`Document::mesh`: UIs or names) when it has any, otherwise
    /// terms extracted from title and text (default: NLM's indexing where it exists, and
    /// still terms for snippets and fresh abstracts).
    #[default]
    HeadingsElseExtraction,
    /// The record's headings only.
    Headings,
    /// Terms extracted from title and text only.
    Extraction,
    /// Both, merged.
    Union,
}

/// The MeSH check tags: descriptors NLM adds to almost every citation (species, sex, age
/// groups, pregnancy). They say who was studied, not what about, and match between any two
/// human studies, so by default they take no part in the similarity.
pub const CHECK_TAGS: &[&str] = &[
    "D006801", // Humans
    "D000818", // Animals
    "D008297", // Male
    "D005260", // Female
    "D007231", // Infant, Newborn
    "D007223", // Infant
    "D002675", // Child, Preschool
    "D002648", // Child
    "D000293", // Adolescent
    "D055815", // Young Adult
    "D000328", // Adult
    "D008875", // Middle Aged
    "D000368", // Aged
    "D000369", // Aged, 80 and over
    "D011247", // Pregnancy
];

/// A document's terms: descriptor ids in the hierarchy, ascending, and the headings that named
/// nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DocTerms {
    pub(crate) ids: Vec<DescriptorId>,
    pub(crate) unresolved: Vec<String>,
}

/// Finds documents' terms in one hierarchy.
#[derive(Debug)]
pub(crate) struct TermFinder<'m> {
    mesh: &'m Mesh,
    extractor: Option<Extractor>,
    source: TermSource,
    ignored: FxHashSet<DescriptorId>,
}

impl<'m> TermFinder<'m> {
    pub(crate) fn new(mesh: &'m Mesh, source: TermSource, ignore: &[DescriptorId]) -> Result<Self> {
        let extractor = match source {
            TermSource::Headings => None,
            _ => Some(Extractor::new(mesh)?),
        };
        Ok(TermFinder { mesh, extractor, source, ignored: ignore.iter().copied().collect() })
    }

    pub(crate) fn terms(&self, doc: &Document) -> DocTerms {
        let mut out = DocTerms::default();
        let headings =
            matches!(self.source, TermSource::Headings | TermSource::Union | TermSource::HeadingsElseExtraction);
        if headings {
            for h in &doc.mesh {
                match self.mesh.by_ui(h.trim()).or_else(|| self.mesh.by_term(h.trim())) {
                    Some(d) => out.ids.push(d),
                    None => out.unresolved.push(h.clone()),
                }
            }
        }
        let extract = match self.source {
            TermSource::Headings => false,
            TermSource::HeadingsElseExtraction => doc.mesh.is_empty(),
            TermSource::Extraction | TermSource::Union => true,
        };
        if let (true, Some(x)) = (extract, &self.extractor) {
            out.ids.extend(x.descriptors(&doc.title));
            out.ids.extend(x.descriptors(&doc.text));
        }
        out.ids.retain(|d| !self.ignored.contains(d) && self.mesh.descriptor(*d).in_hierarchy());
        out.ids.sort_unstable();
        out.ids.dedup();
        out
    }
}

/// The contexts of every non-empty question of `items`, in one retrieval: `k` hits each, the
/// item's own document left out when `exclude_source` (k + 1 retrieved, then cut). `None`
/// stands for an empty question.
pub(crate) fn retrieve_contexts<R: Retriever>(
    retriever: &R,
    items: &[Item<'_>],
    k: usize,
    exclude_source: bool,
) -> Result<Vec<[Option<Vec<ContextDoc>>; 2]>> {
    let queries: Vec<&str> =
        items.iter().flat_map(|it| it.questions).map(str::trim).filter(|q| !q.is_empty()).collect();
    let extra = usize::from(exclude_source);
    let mut hits = retriever.retrieve(&queries, k + extra).map_err(|e| Error::Retrieval(Box::new(e)))?.into_iter();
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let mut pair: [Option<Vec<ContextDoc>>; 2] = [None, None];
        for (side, q) in it.questions.iter().enumerate() {
            if q.trim().is_empty() {
                continue;
            }
            let mut found = hits.next().unwrap_or_default();
            if exclude_source {
                found.retain(|h| h.id != it.doc.id);
            }
            found.truncate(k);
            pair[side] =
                Some(found.into_iter().map(|h| ContextDoc { doc_id: h.id, retrieval_score: h.score }).collect());
        }
        out.push(pair);
    }
    Ok(out)
}

/// The context of a candidate: its documents' ids in rank order and their texts (title and
/// text), one paragraph each.
///
/// Errors: [`Error::MissingContext`] for an id the corpus lacks.
pub fn context_of<'i>(corpus: &Corpus, ids: impl IntoIterator<Item = &'i str>) -> Result<Context> {
    let mut out = Context::default();
    for id in ids {
        let doc = corpus.get(id).ok_or_else(|| Error::MissingContext { id: id.to_owned() })?;
        if !out.text.is_empty() {
            out.text.push_str("\n\n");
        }
        if !doc.title.is_empty() {
            out.text.push_str(&doc.title);
            out.text.push('\n');
        }
        out.text.push_str(&doc.text);
        out.doc_ids.push(id.to_owned());
    }
    Ok(out)
}
