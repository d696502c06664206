//! The CPT dataset of m-KAILIN: each final question with the top-k contexts the shared
//! retriever finds for it — the same retrieval the evaluator judged the question by.

use kailin_core::{CptRecord, Question};
use kailin_retrieval::Retriever;

use crate::corpus::{Corpus, context_of};
use crate::error::{Error, Result};

/// What [`cpt_records`] made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CptRecords {
    /// One record per non-empty question, in question order.
    pub records: Vec<CptRecord>,
    /// Questions left out because their text is empty.
    pub empty_questions: usize,
}

/// The CPT records of `questions`: each question (trimmed) with the texts of its top `k`
/// documents in `corpus` under `retriever`, its own document left out when `exclude_source`
/// (`k + 1` retrieved, then cut); retrieved in chunks of 64 queries. Provenance is the
/// question's.
///
/// Errors: [`Error::Retrieval`]; [`Error::MissingContext`] when the retriever returns a
/// document the corpus lacks.
pub fn cpt_records<R: Retriever>(
    retriever: &R,
    corpus: &Corpus,
    questions: &[Question],
    k: usize,
    exclude_source: bool,
) -> Result<CptRecords> {
    let kept: Vec<&Question> = questions.iter().filter(|q| !q.text.trim().is_empty()).collect();
    let mut out = CptRecords { records: Vec::with_capacity(kept.len()), empty_questions: questions.len() - kept.len() };
    let extra = usize::from(exclude_source);
    for chunk in kept.chunks(64) {
        let texts: Vec<&str> = chunk.iter().map(|q| q.text.trim()).collect();
        let hits = retriever.retrieve(&texts, k + extra).map_err(|e| Error::Retrieval(Box::new(e)))?;
        for (q, hits) in chunk.iter().zip(hits) {
            let ids = hits
                .iter()
                .map(|h| h.id.as_str())
                .filter(|id| !(exclude_source && Some(*id) == q.doc_id.as_deref()))
                .take(k);
            out.records.push(CptRecord {
                id: q.id.clone(),
                question: q.text.trim().to_owned(),
                context: context_of(corpus, ids)?,
                provenance: q.provenance.clone().unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kailin_core::Document;
    use kailin_retrieval::Bm25Retriever;

    #[test]
    fn questions_get_their_top_k_without_their_own_document() {
        let docs = vec![
            Document {
                id: "a".into(),
                title: "Aspirin".into(),
                text: "aspirin inhibits cox".into(),
                ..Default::default()
            },
            Document { id: "b".into(), text: "aspirin and platelets".into(), ..Default::default() },
            Document { id: "c".into(), text: "levodopa in parkinson".into(), ..Default::default() },
        ];
        let retriever = Bm25Retriever::build(docs.iter().map(|d| (d.id.as_str(), d.text.clone()))).unwrap();
        let corpus = Corpus::new(docs).unwrap();
        let q = |id: &str, text: &str| Question {
            id: id.into(),
            doc_id: Some("a".into()),
            text: text.into(),
            ..Default::default()
        };
        let out =
            cpt_records(&retriever, &corpus, &[q("1", " What does aspirin inhibit? "), q("2", "  ")], 1, true).unwrap();
        assert_eq!(out.empty_questions, 1);
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].question, "What does aspirin inhibit?");
        assert_eq!(out.records[0].context.doc_ids, ["b"]);
        let all = cpt_records(&retriever, &corpus, &[q("1", "aspirin")], 2, false).unwrap();
        assert_eq!(all.records[0].context.doc_ids.len(), 2);
        assert!(
            all.records[0].context.text.contains("Aspirin\naspirin inhibits cox"),
            "{}",
            all.records[0].context.text
        );
    }
}
