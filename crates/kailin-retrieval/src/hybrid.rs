//! Dense and lexical retrieval fused by reciprocal rank.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::retriever::{Retrieved, Retriever};

/// Reciprocal-rank fusion (Cormack, Clarke & Büttcher, 2009) of a dense and a lexical
/// retriever: each asked for its best `depth` documents, a document scores
/// `Σ 1 / (rrf_k + rank)` over the lists it is in (rank from 1), and the best `k` by that
/// score are returned (ties to the better dense rank, then to the id). Scores of the two
/// engines are never compared, so neither needs normalising.
#[derive(Debug)]
pub struct HybridRetriever<D, S> {
    dense: D,
    sparse: S,
    depth: usize,
    rrf_k: f32,
}

impl<D, S> HybridRetriever<D, S> {
    /// Fuses `dense` and `sparse` with the usual constant (`rrf_k` = 60), each list 100 deep.
    pub fn new(dense: D, sparse: S) -> Self {
        HybridRetriever { dense, sparse, depth: 100, rrf_k: 60.0 }
    }

    /// How many documents each engine is asked for (at least the `k` of a search).
    pub fn depth(mut self, depth: usize) -> Self {
        self.depth = depth.max(1);
        self
    }

    /// The fusion constant: larger flattens the weight of the first ranks.
    ///
    /// Errors: a constant that is negative or not finite.
    pub fn rrf_k(mut self, rrf_k: f32) -> Result<Self> {
        if !(rrf_k.is_finite() && rrf_k >= 0.0) {
            return Err(Error::Invalid(format!("rrf_k {rrf_k}: must be a finite number ≥ 0")));
        }
        self.rrf_k = rrf_k;
        Ok(self)
    }

    /// The dense engine.
    pub fn dense(&self) -> &D {
        &self.dense
    }
}

impl<D: Retriever<Error = Error>, S: Retriever<Error = Error>> Retriever for HybridRetriever<D, S> {
    type Error = Error;

    fn retrieve(&self, queries: &[&str], k: usize) -> Result<Vec<Vec<Retrieved>>> {
        let depth = self.depth.max(k);
        let dense = self.dense.retrieve(queries, depth)?;
        let sparse = self.sparse.retrieve(queries, depth)?;
        Ok(dense.iter().zip(&sparse).map(|(d, s)| fuse(d, s, k, self.rrf_k)).collect())
    }
}

/// The best `k` of two ranked lists by reciprocal rank.
fn fuse(dense: &[Retrieved], sparse: &[Retrieved], k: usize, rrf_k: f32) -> Vec<Retrieved> {
    // id → (fused score, dense rank or usize::MAX)
    let mut scores: HashMap<&str, (f32, usize)> = HashMap::new();
    for (rank, hit) in dense.iter().enumerate() {
        let e = scores.entry(hit.id.as_str()).or_insert((0.0, rank));
        e.0 += 1.0 / (rrf_k + rank as f32 + 1.0);
    }
    for (rank, hit) in sparse.iter().enumerate() {
        let e = scores.entry(hit.id.as_str()).or_insert((0.0, usize::MAX));
        e.0 += 1.0 / (rrf_k + rank as f32 + 1.0);
    }
    let mut fused: Vec<(&str, f32, usize)> = scores.into_iter().map(|(id, (s, r))| (id, s, r)).collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)).then(a.0.cmp(b.0)));
    fused.into_iter().take(k).map(|(id, score, _)| Retrieved { id: id.to_owned(), score }).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A retriever that returns fixed lists, whatever the query.
    struct Fixed(Vec<&'static str>);

    impl Retriever for Fixed {
        type Error = Error;
        fn retrieve(&self, queries: &[&str], k: usize) -> Result<Vec<Vec<Retrieved>>> {
            let list =
                self.0.iter().take(k).map(|id| Retrieved { id: (*id).to_owned(), score: 1.0 }).collect::<Vec<_>>();
            Ok(queries.iter().map(|_| list.clone()).collect())
        }
    }

    #[test]
    fn documents_both_engines_rank_high_come_first() {
        let hybrid = HybridRetriever::new(Fixed(vec!["a", "b", "c", "d"]), Fixed(vec!["c", "e", "a", "f"]));
        let got = hybrid.retrieve(&["q", "r"], 3).unwrap();
        let ids: Vec<&str> = got[0].iter().map(|h| h.id.as_str()).collect();
        // a: 1/61 + 1/63; c: 1/63 + 1/61 (tie: a's better dense rank first); then b (1/62) over e (1/62, no dense rank).
        assert_eq!(ids, ["a", "c", "b"]);
        assert_eq!(got[1], got[0]);
        assert!((got[0][0].score - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-7);
        // With depth 1 each engine gives one document: only those two can come back.
        let shallow = HybridRetriever::new(Fixed(vec!["a", "b"]), Fixed(vec!["c", "e"])).depth(1);
        assert_eq!(shallow.retrieve(&["q"], 1).unwrap()[0].len(), 1);
        assert_eq!(shallow.retrieve(&["q"], 4).unwrap()[0].len(), 4, "depth is at least k");
        assert!(HybridRetriever::new(Fixed(vec![]), Fixed(vec![])).rrf_k(-1.0).is_err());
    }
}
