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
    ///
    /// The tokens are walked most likely first (ties by index), as a sort of the whole
    /// vocabulary would order them, but put in that order only as far as the draw reaches: a
    /// draw rarely goes past the first few dozen, and sorting 49k logits per token cost more
    /// than a batch's decoding step (docs/benchmarks.md).
    pub fn sample(&mut self, logits: &[f32]) -> usize {
        let score = |i: usize| if logits[i].is_nan() { f32::NEG_INFINITY } else { logits[i] };
        let argmax = (0..logits.len()).fold(0, |best, i| if score(i) > score(best) { i } else { best });
        if self.temperature == 0.0 || self.top_k == Some(1) {
            return argmax;
        }
        let candidates = self.top_k.map_or(logits.len(), |k| k.min(logits.len()));
        let mut order = Descending::new(logits.len(), score);
        let top = f64::from(score(argmax));
        let temperature = f64::from(self.temperature);
        let weight = |i: usize| ((f64::from(score(i)) - top) / temperature).exp();
        let total: f64 = match self.top_k {
            Some(_) => (0..candidates).map(|j| weight(order.at(j))).sum(),
            None => (0..logits.len()).map(weight).sum(),
        };
        let prob = |i: usize| weight(i) / total;
        let mut u = self.rng.next_f64();
        let kept = match self.top_p {
            Some(p) => {
                // The smallest head whose probability reaches p, renormalised.
                let (mut cum, mut n) = (0.0, 0);
                while n < candidates && cum < f64::from(p) {
                    cum += prob(order.at(n));
                    n += 1;
                }
                let n = n.max(1);
                let head: f64 = (0..n).map(|j| prob(order.at(j))).sum();
                return order.draw(n, &mut u, |i| prob(i) / head);
            }
            None => candidates,
        };
        order.draw(kept, &mut u, prob)
    }
}

/// Token ids most likely first (ties by index), ordered lazily: [`at`](Self::at)`(j)` sorts
/// only as far as position `j` (and some way beyond, so that the work stays linear).
struct Descending<F> {
    order: Vec<usize>,
    sorted: usize,
    score: F,
}

impl<F: Fn(usize) -> f32> Descending<F> {
    fn new(len: usize, score: F) -> Self {
        Descending { order: (0..len).collect(), sorted: 0, score }
    }

    /// The token at position `j` (below the vocabulary's size).
    fn at(&mut self, j: usize) -> usize {
        if j >= self.sorted {
            let score = &self.score;
            let cmp = |a: &usize, b: &usize| score(*b).total_cmp(&score(*a)).then(a.cmp(b));
            let upto = (j + 1).max(2 * self.sorted).max(64).min(self.order.len());
            let rest = &mut self.order[self.sorted..];
            let take = upto - self.sorted;
            if take < rest.len() {
                rest.select_nth_unstable_by(take - 1, cmp);
            }
            rest[..take].sort_unstable_by(cmp);
            self.sorted = upto;
        }
        self.order[j]
    }

    /// Walks the first `n` tokens with probabilities `prob`, taking `u` off each, and
    /// returns the one where `u` falls (the last if it never does).
    fn draw(&mut self, n: usize, u: &mut f64, prob: impl Fn(usize) -> f64) -> usize {
        for j in 0..n {
            let i = self.at(j);
            let p = prob(i);
            if *u < p {
                return i;
            }
            *u -= p;
        }
        self.at(n - 1)
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

    /// The sampler as it was: the whole vocabulary sorted for every draw.
    fn sorted_draw(s: &mut Sampler, logits: &[f32]) -> usize {
        let score = |i: usize| if logits[i].is_nan() { f32::NEG_INFINITY } else { logits[i] };
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
        if let Some(k) = s.top_k {
            order.truncate(k);
        }
        let top = f64::from(score(order[0]));
        let mut probs: Vec<f64> =
            order.iter().map(|&i| ((f64::from(score(i)) - top) / f64::from(s.temperature)).exp()).collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if let Some(p) = s.top_p {
            let mut cum = 0.0;
            let n = probs
                .iter()
                .take_while(|&&q| {
                    let inside = cum < f64::from(p);
                    cum += q;
                    inside
                })
                .count()
                .max(1);
            order.truncate(n);
            probs.truncate(n);
            let total: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|q| *q /= total);
        }
        let mut u = s.rng.next_f64();
        for (&i, &p) in order.iter().zip(&probs) {
            if u < p {
                return i;
            }
            u -= p;
        }
        order[order.len() - 1]
    }

    #[test]
    fn draws_equal_a_full_sorts() {
        // Logits like a model's (a few likely tokens, a long tail, ties, NaN), every setting.
        let mut rng = SplitMix64::new(5);
        let mut logits: Vec<f32> = (0..5000).map(|_| (rng.next_f64() * 12.0 - 10.0) as f32).collect();
        logits[17] = 6.0;
        logits[4000] = 6.0;
        logits[99] = 5.5;
        logits[3] = f32::NAN;
        for (t, k, p) in
            [(0.7, None, Some(0.95)), (1.0, None, None), (1.3, Some(40), None), (0.7, Some(500), Some(0.9))]
        {
            for seed in 0..300 {
                let make = || {
                    let s = Sampler::new(t, seed);
                    let s = if let Some(k) = k { s.top_k(k) } else { s };
                    if let Some(p) = p { s.top_p(p) } else { s }
                };
                let (mut a, mut b) = (make(), make());
                for _ in 0..3 {
                    assert_eq!(a.sample(&logits), sorted_draw(&mut b, &logits), "t {t} k {k:?} p {p:?} seed {seed}");
                }
            }
        }
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
