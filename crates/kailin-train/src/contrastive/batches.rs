//! An epoch's batches: pairs in a seeded order, no two of a batch sharing a query or a
//! positive (their passages would be each other's false negatives).

use std::collections::{HashSet, VecDeque};

/// Splits `order` (indices of pairs) into batches of at most `size`: each pair goes into the
/// first batch, in order, where neither its query nor its positive is taken yet. Batches of
/// one pair (nothing to contrast) are dropped and counted.
///
/// `query[i]` and `positive[i]` identify pair `i`'s texts (any key that is equal for equal
/// texts).
pub(crate) fn pack(order: &[usize], size: usize, query: &[u64], positive: &[u64]) -> (Vec<Vec<usize>>, usize) {
    let mut pending: VecDeque<usize> = order.iter().copied().collect();
    let (mut batches, mut dropped) = (Vec::new(), 0);
    while !pending.is_empty() {
        let (mut batch, mut queries, mut positives) = (Vec::with_capacity(size), HashSet::new(), HashSet::new());
        let mut rest = VecDeque::with_capacity(pending.len());
        while let Some(i) = pending.pop_front() {
            if batch.len() < size && !queries.contains(&query[i]) && !positives.contains(&positive[i]) {
                queries.insert(query[i]);
                positives.insert(positive[i]);
                batch.push(i);
            } else {
                rest.push_back(i);
            }
            if batch.len() == size {
                rest.extend(pending.drain(..));
            }
        }
        pending = rest;
        if batch.len() < 2 {
            dropped += batch.len();
        } else {
            batches.push(batch);
        }
    }
    (batches, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_distinct_queries_and_positives_and_keep_every_pair_they_can() {
        // Pairs 0-3 share query 1; pairs 4 and 5 share positive 9.
        let query = [1, 1, 1, 1, 2, 3, 4, 5];
        let positive = [10, 11, 12, 13, 9, 9, 14, 15];
        let order: Vec<usize> = (0..8).collect();
        let (batches, dropped) = pack(&order, 3, &query, &positive);
        for b in &batches {
            assert!(b.len() >= 2 && b.len() <= 3);
            let q: HashSet<_> = b.iter().map(|&i| query[i]).collect();
            let p: HashSet<_> = b.iter().map(|&i| positive[i]).collect();
            assert_eq!((q.len(), p.len()), (b.len(), b.len()), "{b:?}");
        }
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort_unstable();
        // Query 1's four pairs need four batches; the last two hold it alone and are dropped.
        assert_eq!(seen.len() + dropped, 8);
        assert_eq!(dropped, 2);
        assert_eq!(batches[0], vec![0, 4, 6]);
    }
}
