//! Choosing the next token from logits: greedy, or sampled with temperature, top-k and top-p,
//! from a seeded generator (the same seed gives the same tokens).

use kailin_core::SplitMix64;

/// A next-token sampler.
#[derive(Debug, Clone)]
pub struct Sampler {
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
    rng: SplitMix64,
}

impl Sampler {
    /// Always the most likely token (the first, on ties).
    pub fn greedy() -> Self {
        Sampler { temperature: 0.0, top_k: None, top_p: None, rng: SplitMix64::new(0) }
    }

    /// Sampling at `temperature` (0 means greedy) from a generator seeded with `seed`.
    pub fn new(temperature: f32, seed: u64) -> Self {
        Sampler { temperature: temperature.max(0.0), top_k: None, top_p: None, rng: SplitMix64::new(seed) }
    }

    /// Keep only the `k` most likely tokens.
    pub fn top_k(mut self, k: usize) -> Self {
        self.top_k = Some(k.max(1));
        self
    }

    /// Keep the smallest set of most likely tokens whose probability reaches `p` (nucleus).
    pub fn top_p(mut self, p: f32) -> Self {
        self.top_p = Some(p.clamp(0.0, 1.0));
        self
    }

    /// The next token. NaN logits count as impossible; `logits` must not be empty.
    pub fn sample(&mut self, logits: &[f32]) -> usize {
        let score = |i: usize| if logits[i].is_nan() { f32::NEG_INFINITY } else { logits[i] };
        let argmax = (0..logits.len()).fold(0, |best, i| if score(i) > score(best) { i } else { best });
        if self.temperature == 0.0 || self.top_k == Some(1) {
            return argmax;
        }
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
        if let Some(k) = self.top_k {
            order.truncate(k);
        }
        let top = f64::from(score(order[0]));
        let mut probs: Vec<f64> =
            order.iter().map(|&i| ((f64::from(score(i)) - top) / f64::from(self.temperature)).exp()).collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if let Some(p) = self.top_p {
            let mut cum = 0.0;
            let keep = probs.iter().take_while(|&&q| {
                let inside = cum < f64::from(p);
                cum += q;
                inside
            });
            let n = keep.count().max(1);
            order.truncate(n);
            probs.truncate(n);
            let total: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|q| *q /= total);
        }
        let mut u = self.rng.next_f64();
        for (&i, &p) in order.iter().zip(&probs) {
            if u < p {
                return i;
            }
            u -= p;
        }
        order[order.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_top_k_one_take_the_argmax() {
        let logits = [0.1, 2.0, f32::NAN, 1.9];
        assert_eq!(Sampler::greedy().sample(&logits), 1);
        assert_eq!(Sampler::new(5.0, 3).top_k(1).sample(&logits), 1);
    }

    #[test]
    fn seeded_and_distributed_as_the_softmax() {
        let logits = [0.0f32, 3f32.ln()]; // probabilities 1/4, 3/4
        let draw = |seed| {
            let mut s = Sampler::new(1.0, seed);
            (0..4000).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7), "same seed, same tokens");
        assert_ne!(draw(7), draw(8));
        let ones = draw(7).iter().filter(|&&t| t == 1).count() as f64 / 4000.0;
        assert!((ones - 0.75).abs() < 0.03, "{ones}");
    }

    #[test]
    fn nucleus_keeps_the_head() {
        let logits = [0.6f32.ln(), 0.3f32.ln(), 0.1f32.ln()];
        let mut s = Sampler::new(1.0, 1).top_p(0.5);
        assert!((0..200).all(|_| s.sample(&logits) == 0));
        let mut s = Sampler::new(1.0, 1).top_p(0.85);
        let picks: Vec<usize> = (0..400).map(|_| s.sample(&logits)).collect();
        assert!(picks.contains(&1) && !picks.contains(&2), "the tail beyond 0.85 is cut");
    }
}
