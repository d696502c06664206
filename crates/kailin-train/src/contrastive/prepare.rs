//! The pairs a run trains on: duplicates dropped, a seeded sample under a budget, hard
//! negatives mined — the same steps for every caller.

use kailin_core::RetrievalPair;

use super::mine::mine_bm25_negatives;
use crate::error::Result;

/// The pairs [`prepare_pairs`] made, and what it did to them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreparedPairs {
    /// The pairs to train on.
    pub pairs: Vec<RetrievalPair>,
    /// Pairs given.
    pub given: usize,
    /// Duplicates dropped ([`dedup_pairs`]).
    pub duplicates: usize,
    /// Pairs left out by the budget ([`sample_pairs`]).
    pub over_budget: usize,
    /// Hard negatives mined with BM25.
    pub mined: usize,
}

/// Drops duplicate pairs, keeps a sample of at most `limit` (seeded; `None`: all), then tops
/// up each pair's negatives to `hard_negatives` with BM25 ([`mine_bm25_negatives`]).
///
/// Errors: the BM25 index cannot be built or searched.
pub fn prepare_pairs(
    pairs: Vec<RetrievalPair>,
    limit: Option<usize>,
    hard_negatives: usize,
    seed: u64,
) -> Result<PreparedPairs> {
    let given = pairs.len();
    let (pairs, duplicates) = dedup_pairs(pairs);
    let unique = pairs.len();
    let mut pairs = match limit {
        Some(limit) => sample_pairs(pairs, limit, seed),
        None => pairs,
    };
    let over_budget = unique - pairs.len();
    let mined = mine_bm25_negatives(&mut pairs, hard_negatives)?;
    Ok(PreparedPairs { pairs, given, duplicates, over_budget, mined })
}

/// At most `limit` of `pairs`, drawn without replacement with `seed` and kept in their
/// order (all of them when there are no more): a budget spread over every source, where
/// taking the first `limit` would keep only the first source's.
pub fn sample_pairs(pairs: Vec<RetrievalPair>, limit: usize, seed: u64) -> Vec<RetrievalPair> {
    if pairs.len() <= limit {
        return pairs;
    }
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    kailin_core::SplitMix64::new(seed).shuffle(&mut order);
    let mut keep = vec![false; pairs.len()];
    for &i in &order[..limit] {
        keep[i] = true;
    }
    pairs.into_iter().zip(keep).filter_map(|(p, k)| k.then_some(p)).collect()
}

/// Keeps the first of each set of equal pairs (same query, positive and negatives, after
/// trimming); with the number dropped.
pub fn dedup_pairs(pairs: Vec<RetrievalPair>) -> (Vec<RetrievalPair>, usize) {
    let mut seen = std::collections::HashSet::new();
    let before = pairs.len();
    let kept: Vec<RetrievalPair> = pairs
        .into_iter()
        .filter(|p| {
            let key = (
                p.query.trim().to_owned(),
                p.positive.trim().to_owned(),
                p.negatives.iter().map(|n| n.trim().to_owned()).collect::<Vec<_>>(),
            );
            seen.insert(key)
        })
        .collect();
    let dropped = before - kept.len();
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn numbered(n: usize) -> Vec<RetrievalPair> {
        (0..n).map(|i| RetrievalPair { query: format!("q{i}"), positive: format!("p{i}"), negatives: vec![] }).collect()
    }

    #[test]
    fn preparing_drops_duplicates_then_samples() {
        let mut pairs = numbered(10);
        pairs.push(pairs[3].clone());
        let p = prepare_pairs(pairs, Some(4), 0, 1).unwrap();
        assert_eq!((p.given, p.duplicates, p.over_budget, p.mined, p.pairs.len()), (11, 1, 6, 0, 4));
        let all = prepare_pairs(numbered(10), None, 0, 1).unwrap();
        assert_eq!((all.over_budget, all.pairs.len()), (0, 10));
    }

    #[test]
    fn a_sample_is_seeded_in_order_and_spread() {
        let a = sample_pairs(numbered(1000), 100, 7);
        assert_eq!(a.len(), 100);
        assert_eq!(a, sample_pairs(numbered(1000), 100, 7));
        assert_ne!(a, sample_pairs(numbered(1000), 100, 8));
        let index = |p: &RetrievalPair| p.query[1..].parse::<usize>().unwrap();
        assert!(a.windows(2).all(|w| index(&w[0]) < index(&w[1])), "kept in order");
        // Drawn from the whole list, not its head: some from the last half.
        assert!(a.iter().filter(|p| index(p) >= 500).count() > 20);
        assert_eq!(sample_pairs(numbered(5), 100, 7).len(), 5);
    }
}
