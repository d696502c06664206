//! Bounded top-k selection: the `k` best (row, score) pairs of a stream of scores, and the
//! merge of several such lists (per block, per thread, per shard, per machine).

/// One search result: a row of the searched vectors (global across shards) and its score.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    /// Row of the vector in the store (or in the searched matrix).
    pub row: u64,
    /// Inner product with the query.
    pub score: f32,
}

/// Whether `a` ranks before `b`: higher score first, then lower row (so results are
/// deterministic whatever the blocking, threading or shard order).
#[inline]
fn before(a: &Hit, b: &Hit) -> bool {
    a.score > b.score || (a.score == b.score && a.row < b.row)
}

/// The best `k` hits seen so far, best first. NaN scores are never kept.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    hits: Vec<Hit>,
}

impl TopK {
    /// An empty list keeping at most `k` hits.
    pub fn new(k: usize) -> Self {
        TopK { k, hits: Vec::with_capacity(k + 1) }
    }

    /// The score a new hit must reach to enter (−∞ until the list is full; +∞ when `k` is 0).
    #[inline]
    pub fn threshold(&self) -> f32 {
        match self.k.checked_sub(1) {
            None => f32::INFINITY,
            Some(_) if self.hits.len() < self.k => f32::NEG_INFINITY,
            Some(last) => self.hits[last].score,
        }
    }

    /// Offers one hit.
    #[inline]
    pub fn push(&mut self, hit: Hit) {
        if self.k == 0 || hit.score.is_nan() {
            return;
        }
        if self.hits.len() == self.k && !before(&hit, &self.hits[self.k - 1]) {
            return;
        }
        let at = self.hits.partition_point(|h| before(h, &hit));
        self.hits.insert(at, hit);
        self.hits.truncate(self.k);
    }

    /// Offers the scores of consecutive rows `first_row..first_row + scores.len()`. Most
    /// scores lose to the threshold: they are rejected sixteen at a time by their maximum
    /// (a vectorised comparison) before any insertion is tried.
    pub fn push_row(&mut self, first_row: u64, scores: &[f32]) {
        const LANES: usize = 16;
        let mut chunks = scores.chunks_exact(LANES);
        let mut row = first_row;
        for chunk in chunks.by_ref() {
            let max = chunk.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
            // `>=`: a tie with the threshold may still enter by a lower row.
            if max >= self.threshold() {
                for (i, &score) in chunk.iter().enumerate() {
                    self.push(Hit { row: row + i as u64, score });
                }
            }
            row += LANES as u64;
        }
        for (i, &score) in chunks.remainder().iter().enumerate() {
            self.push(Hit { row: row + i as u64, score });
        }
    }

    /// Merges another list into this one.
    pub fn merge(&mut self, other: &TopK) {
        for &hit in &other.hits {
            self.push(hit);
        }
    }

    /// The hits, best first.
    pub fn hits(&self) -> &[Hit] {
        &self.hits
    }

    /// The hits, best first.
    pub fn into_hits(self) -> Vec<Hit> {
        self.hits
    }
}

/// Merges per-part result lists (one list of per-query hits per part: shards, machines) into
/// the best `k` per query. Every part must answer the same queries.
pub fn merge_hits(parts: &[Vec<Vec<Hit>>], k: usize) -> Vec<Vec<Hit>> {
    let queries = parts.iter().map(Vec::len).max().unwrap_or(0);
    (0..queries)
        .map(|q| {
            let mut top = TopK::new(k);
            for part in parts {
                for &hit in part.get(q).map_or(&[][..], Vec::as_slice) {
                    top.push(hit);
                }
            }
            top.into_hits()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(scores: &[f32], k: usize) -> Vec<Hit> {
        let mut all: Vec<Hit> = scores.iter().enumerate().map(|(r, &s)| Hit { row: r as u64, score: s }).collect();
        all.retain(|h| !h.score.is_nan());
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        all.truncate(k);
        all
    }

    #[test]
    fn push_row_equals_a_full_sort_with_ties_and_nan() {
        // Pseudo-random scores with many ties (rounded to tenths) and a few NaN.
        let mut x = 12345u64;
        let scores: Vec<f32> = (0..1000)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                if i % 97 == 0 { f32::NAN } else { ((x >> 40) % 21) as f32 / 10.0 }
            })
            .collect();
        for k in [0, 1, 4, 10, 37, 2000] {
            let mut top = TopK::new(k);
            top.push_row(0, &scores);
            assert_eq!(top.hits(), brute(&scores, k).as_slice(), "k = {k}");
        }
    }

    #[test]
    fn split_and_merged_equals_whole() {
        let scores: Vec<f32> = (0..500).map(|i| ((i * 7919) % 503) as f32).collect();
        let mut parts = Vec::new();
        for (c, chunk) in scores.chunks(77).enumerate() {
            let mut top = TopK::new(5);
            top.push_row((c * 77) as u64, chunk);
            parts.push(vec![top.into_hits()]);
        }
        assert_eq!(merge_hits(&parts, 5), vec![brute(&scores, 5)]);
    }
}
