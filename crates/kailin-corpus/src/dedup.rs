//! Near-duplicate detection with MinHash and locality-sensitive hashing.

use std::collections::HashMap;

use crate::ngram::{ngram_hashes, words};

/// Number of MinHash functions.
const PERMUTATIONS: usize = 128;

/// Keeps the first of each group of near-identical texts: Jaccard similarity of their word
/// 3-gram sets, estimated with 128 MinHash values, at least the threshold.
#[derive(Debug, Clone)]
pub struct Deduplicator {
    threshold: f64,
    bands: usize,
    rows: usize,
    buckets: HashMap<(usize, u64), Vec<u32>>,
    kept: Vec<(String, Vec<u64>)>,
}

impl Deduplicator {
    /// Near-duplicates are texts with estimated Jaccard similarity `>= threshold` (in `(0, 1]`,
    /// e.g. 0.8). Bands and rows are chosen so candidates are found near the threshold.
    pub fn new(threshold: f64) -> Self {
        let threshold = threshold.clamp(0.01, 1.0);
        // Pick rows r (bands b = 128 / r) with (1/b)^(1/r) closest to the threshold.
        let rows = [1, 2, 4, 8, 16, 32]
            .into_iter()
            .min_by(|&a, &b| {
                let t = |r: usize| (1.0 / (PERMUTATIONS / r) as f64).powf(1.0 / r as f64);
                (t(a) - threshold).abs().total_cmp(&(t(b) - threshold).abs())
            })
            .unwrap_or(4);
        Deduplicator { threshold, bands: PERMUTATIONS / rows, rows, buckets: HashMap::new(), kept: Vec::new() }
    }

    fn signature(text: &str) -> Vec<u64> {
        let ws = words(text);
        let shingles: Vec<u64> = ngram_hashes(&ws, 3.min(ws.len().max(1))).map(|(_, h)| h).collect();
        (0..PERMUTATIONS as u64)
            .map(|k| {
                let seed = (k + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                shingles
                    .iter()
                    .map(|&s| (s ^ seed).wrapping_mul(0xBF58_476D_1CE4_E5B9).rotate_left(31))
                    .min()
                    .unwrap_or(u64::MAX)
            })
            .collect()
    }

    /// Offers a text: `None` if kept (it is new), or the id of the earlier text it duplicates.
    pub fn insert(&mut self, id: &str, text: &str) -> Option<String> {
        let sig = Self::signature(text);
        let mut candidates: Vec<u32> = Vec::new();
        for b in 0..self.bands {
            let band = &sig[b * self.rows..(b + 1) * self.rows];
            let key = band.iter().fold(b as u64, |acc, &v| acc.rotate_left(7) ^ v);
            if let Some(list) = self.buckets.get(&(b, key)) {
                candidates.extend(list);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        for c in candidates {
            let (other, other_sig) = &self.kept[c as usize];
            let same = sig.iter().zip(other_sig).filter(|(a, b)| a == b).count();
            if same as f64 / PERMUTATIONS as f64 >= self.threshold {
                return Some(other.clone());
            }
        }
        let index = self.kept.len() as u32;
        for b in 0..self.bands {
            let band = &sig[b * self.rows..(b + 1) * self.rows];
            let key = band.iter().fold(b as u64, |acc, &v| acc.rotate_left(7) ^ v);
            self.buckets.entry((b, key)).or_default().push(index);
        }
        self.kept.push((id.to_owned(), sig));
        None
    }

    /// Number of texts kept.
    pub fn kept(&self) -> usize {
        self.kept.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_duplicates_are_caught_distinct_texts_kept() {
        let base = "Levodopa remains the most effective symptomatic treatment for Parkinson disease, \
                    but long term use is complicated by motor fluctuations and dyskinesias in many patients.";
        // One changed word touches 2 of 26 word 3-grams: true Jaccard about 0.86.
        let mut d = Deduplicator::new(0.7);
        assert_eq!(d.insert("a", base), None);
        assert_eq!(d.insert("b", &base.replace("many", "most")), Some("a".into()), "one word changed");
        assert_eq!(d.insert("c", &base.to_uppercase()), Some("a".into()), "case only");
        assert_eq!(
            d.insert("d", "Statins lower cholesterol and reduce cardiovascular events in adults with diabetes."),
            None
        );
        assert_eq!(d.kept(), 2);
    }
}
