//! The symmetric InfoNCE loss over in-batch negatives.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// The loss and what it saw, for one batch.
#[derive(Debug, Clone)]
pub struct InfoNce<B: Backend> {
    /// The mean of the two directions' cross-entropies.
    pub loss: Tensor<B, 1>,
    /// Share of queries whose own positive scored highest among the batch's passages.
    pub accuracy: Tensor<B, 1>,
}

/// Symmetric InfoNCE (CLIP's, and sentence-transformers' multiple-negatives ranking loss made
/// symmetric): query `i`'s positive is passage `i`; every other passage in the batch, and
/// the hard negatives after the `n` positives, are its negatives. The query → passage
/// cross-entropy runs over all passages; the passage → query one over the `n` queries for
/// each positive. Scores are inner products divided by `temperature` (vectors normalised
/// by the caller: cosine similarities).
///
/// Shapes: `queries` `[n, dim]`, `passages` `[n + negatives, dim]` → scalars.
pub fn info_nce<B: Backend>(queries: Tensor<B, 2>, passages: Tensor<B, 2>, temperature: f64) -> InfoNce<B> {
    let [n, _] = queries.dims();
    let device = queries.device();
    let scores = queries.matmul(passages.clone().transpose()).div_scalar(temperature);
    let diagonal = Tensor::<B, 2>::eye(n, &device);
    let q_to_p = log_softmax(scores.clone(), 1);
    let own = q_to_p.slice_dim(1, 0..n).mul(diagonal.clone()).sum().div_scalar(n as f64);
    let p_to_q = log_softmax(scores.clone().slice_dim(1, 0..n).transpose(), 1);
    let back = p_to_q.mul(diagonal).sum().div_scalar(n as f64);
    let loss = own.add(back).div_scalar(-2.0);
    let best = scores.argmax(1).reshape([n]);
    let rows = Tensor::<B, 1, Int>::arange(0..n as i64, &device);
    let accuracy = best.equal(rows).float().mean();
    InfoNce { loss, accuracy }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use burn::backend::Flex;

    use super::*;

    fn t(rows: &[[f32; 2]]) -> Tensor<Flex, 2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), 2]), &Default::default())
    }

    /// The loss by hand in f64: both directions' cross-entropies, averaged.
    fn by_hand(q: &[[f32; 2]], p: &[[f32; 2]], tau: f64) -> f64 {
        let s = |i: usize, j: usize| {
            (f64::from(q[i][0]) * f64::from(p[j][0]) + f64::from(q[i][1]) * f64::from(p[j][1])) / tau
        };
        let n = q.len();
        let lse = |v: Vec<f64>| {
            let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
        };
        let forward: f64 = (0..n).map(|i| lse((0..p.len()).map(|j| s(i, j)).collect()) - s(i, i)).sum();
        let backward: f64 = (0..n).map(|j| lse((0..n).map(|i| s(i, j)).collect()) - s(j, j)).sum();
        (forward + backward) / (2.0 * n as f64)
    }

    #[test]
    fn equals_the_loss_by_hand_with_and_without_hard_negatives() {
        let q = [[0.6, 0.8], [1.0, 0.0], [0.0, -1.0]];
        for p in [vec![[0.8, 0.6], [0.9, 0.1], [0.3, -0.9]], vec![[0.8, 0.6], [0.9, 0.1], [0.3, -0.9], [0.7, 0.7]]] {
            let out = info_nce(t(&q), t(&p), 0.05);
            let got = f64::from(out.loss.into_scalar());
            let want = by_hand(&q, &p, 0.05);
            assert!((got - want).abs() < 1e-4 * want.abs().max(1.0), "{got} vs {want}");
        }
        // Queries on their own positives: a small loss, every query right.
        let out = info_nce(t(&q), t(&q), 0.05);
        assert!(f64::from(out.loss.into_scalar()) < 0.01);
        assert_eq!(out.accuracy.into_scalar(), 1.0);
        // Swapped positives: every query wrong.
        let out = info_nce(t(&q[..2]), t(&[q[1], q[0]]), 0.05);
        assert_eq!(out.accuracy.into_scalar(), 0.0);
    }
}
