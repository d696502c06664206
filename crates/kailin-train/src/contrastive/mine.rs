//! Hard negatives: passages a lexical engine ranks high for a query that are not its own.

use std::collections::{HashMap, HashSet};

use kailin_core::RetrievalPair;
use kailin_retrieval::{Bm25Retriever, Retriever};

use crate::error::Result;

/// Tops up every pair's `negatives` to `per_pair` with the passages BM25 ranks highest for
/// its query among all the pairs' positives, skipping the query's own positives (any pair
/// with the same query) and negatives it already has; returns how many were added (a query
/// whose words no other passage holds gets none). Queries are searched once each.
///
/// Errors: the index cannot be built or searched.
pub fn mine_bm25_negatives(pairs: &mut [RetrievalPair], per_pair: usize) -> Result<usize> {
    if per_pair == 0 || pairs.is_empty() {
        return Ok(0);
    }
    let mut passages: Vec<String> = Vec::new();
    let mut row: HashMap<String, usize> = HashMap::new();
    let mut own: HashMap<String, HashSet<usize>> = HashMap::new();
    for p in pairs.iter() {
        let r = *row.entry(p.positive.clone()).or_insert_with(|| {
            passages.push(p.positive.clone());
            passages.len() - 1
        });
        own.entry(p.query.clone()).or_default().insert(r);
    }
    let bm25 = Bm25Retriever::build(passages.iter().enumerate().map(|(i, t)| (i.to_string(), t.as_str())))?;
    let queries: Vec<&str> = own.keys().map(String::as_str).collect();
    let widest = own.values().map(HashSet::len).max().unwrap_or(0);
    let mut found: HashMap<&str, Vec<usize>> = HashMap::new();
    for chunk in queries.chunks(256) {
        let hits = bm25.retrieve(chunk, per_pair + widest)?;
        for (q, hits) in chunk.iter().zip(hits) {
            let mine = &own[*q];
            let ranked = hits.iter().filter_map(|h| h.id.parse::<usize>().ok()).filter(|r| !mine.contains(r));
            found.insert(q, ranked.collect());
        }
    }
    let mut added = 0;
    for p in pairs.iter_mut() {
        let Some(ranked) = found.get(p.query.as_str()) else { continue };
        for &r in ranked {
            if p.negatives.len() >= per_pair {
                break;
            }
            if !p.negatives.contains(&passages[r]) {
                p.negatives.push(passages[r].clone());
                added += 1;
            }
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pair(q: &str, p: &str) -> RetrievalPair {
        RetrievalPair { query: q.into(), positive: p.into(), negatives: vec![] }
    }

    #[test]
    fn negatives_are_lexically_close_and_never_the_querys_own() {
        let mut pairs = vec![
            pair("which gene causes cystic fibrosis", "CFTR mutations cause cystic fibrosis."),
            pair("which gene causes cystic fibrosis", "The CFTR gene is on chromosome 7."),
            pair("what treats gout", "Allopurinol lowers uric acid in gout."),
            pair("what is a cystic lesion", "A cystic lesion is a fluid-filled sac; fibrosis may follow."),
        ];
        let added = mine_bm25_negatives(&mut pairs, 1).unwrap();
        // "what treats gout" shares no word with another passage: BM25 finds it none.
        assert_eq!(added, 3);
        assert!(pairs[2].negatives.is_empty());
        for p in pairs.iter().filter(|p| !p.negatives.is_empty()) {
            let own: Vec<&str> = pairs.iter().filter(|o| o.query == p.query).map(|o| o.positive.as_str()).collect();
            assert!(!own.contains(&p.negatives[0].as_str()), "{p:?}");
        }
        assert_eq!(pairs[0].negatives[0], "A cystic lesion is a fluid-filled sac; fibrosis may follow.");
        // Already topped up: nothing more.
        assert_eq!(mine_bm25_negatives(&mut pairs, 1).unwrap(), 0);
    }
}
