//! The three objectives' losses, on tensors: masked next-token cross-entropy (CPT, SFT) and
//! the DPO loss with its metrics.

use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, log_softmax};

/// Log-probability of each target token.
///
/// Shapes: `logits` `[batch, seq, vocab]`, `targets` `[batch, seq]` → `[batch, seq]`.
pub fn token_logprobs<B: Backend>(logits: Tensor<B, 3>, targets: Tensor<B, 2, Int>) -> Tensor<B, 2> {
    let [batch, seq, _] = logits.dims();
    log_softmax(logits, 2).gather(2, targets.unsqueeze_dim::<3>(2)).reshape([batch, seq])
}

/// Summed negative log-likelihood of the target tokens whose weight is 1 (weights are 0 or 1:
/// prompt tokens and padding weigh 0), divided by `normaliser` (the number of weighted tokens
/// of the whole optimiser step, so that accumulated micro-batches add up to the step's mean).
///
/// Shapes: `logits` `[batch, seq, vocab]`, `targets` and `weights` `[batch, seq]` → `[1]`.
pub fn lm_loss<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
    weights: Tensor<B, 2>,
    normaliser: f64,
) -> Tensor<B, 1> {
    (token_logprobs(logits, targets) * weights).sum().neg().div_scalar(normaliser.max(1.0))
}

/// Summed log-probability of each sequence's weighted target tokens (DPO's `log π(y|x)`).
///
/// Shapes: `logits` `[batch, seq, vocab]`, `targets` and `weights` `[batch, seq]` → `[batch]`.
pub fn sequence_logprobs<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
    weights: Tensor<B, 2>,
) -> Tensor<B, 1> {
    let [batch, _] = weights.dims();
    (token_logprobs(logits, targets) * weights).sum_dim(1).reshape([batch])
}

/// The DPO loss of a batch of pairs and what it says about them.
#[derive(Debug, Clone)]
pub struct DpoOutput<B: Backend> {
    /// `mean(-log σ(β·[(log πθ(yw|x) − log πref(yw|x)) − (log πθ(yl|x) − log πref(yl|x))]))`, `[1]`.
    pub loss: Tensor<B, 1>,
    /// Implicit rewards of the chosen completions, `β·(log πθ(yw|x) − log πref(yw|x))`, `[pairs]`.
    pub chosen_rewards: Tensor<B, 1>,
    /// Implicit rewards of the rejected completions, `[pairs]`.
    pub rejected_rewards: Tensor<B, 1>,
}

/// DPO (Rafailov et al., 2023) on sequence log-probabilities.
///
/// Shapes: every input `[pairs]` (the policy's with gradients, the reference's constant).
/// The loss is summed over the pairs and divided by `pairs_in_step` (the pairs of the whole
/// optimiser step), so accumulated micro-batches add up to the step's mean.
pub fn dpo_loss<B: Backend>(
    policy_chosen: Tensor<B, 1>,
    policy_rejected: Tensor<B, 1>,
    reference_chosen: Tensor<B, 1>,
    reference_rejected: Tensor<B, 1>,
    beta: f64,
    pairs_in_step: usize,
) -> DpoOutput<B> {
    let chosen_rewards = (policy_chosen - reference_chosen).mul_scalar(beta);
    let rejected_rewards = (policy_rejected - reference_rejected).mul_scalar(beta);
    let loss = log_sigmoid(chosen_rewards.clone() - rejected_rewards.clone())
        .sum()
        .neg()
        .div_scalar(pairs_in_step.max(1) as f64);
    DpoOutput { loss, chosen_rewards: chosen_rewards.detach(), rejected_rewards: rejected_rewards.detach() }
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};

    use super::*;

    type A = Autodiff<Flex>;

    fn t1(v: &[f32]) -> Tensor<A, 1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Default::default())
    }

    fn values(t: Tensor<Flex, 1>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap_or_default()
    }

    #[test]
    fn dpo_with_policy_equal_to_reference_is_ln_2() {
        let lp = [-12.5f32, -3.25, -40.0];
        let lr = [-13.0f32, -9.5, -41.0];
        let out = dpo_loss(t1(&lp), t1(&lr), t1(&lp), t1(&lr), 0.1, 3);
        let loss = out.loss.into_scalar();
        assert!((f64::from(loss) - std::f64::consts::LN_2).abs() < 1e-7, "{loss}");
    }

    #[test]
    fn dpo_loss_and_gradients_equal_a_hand_computation() {
        let (pc, pr, rc, rr) = ([-10.0f32, -4.0], [-12.0f32, -3.0], [-11.0f32, -5.0], [-11.5f32, -2.0]);
        let beta = 0.5;
        let policy_chosen = t1(&pc).require_grad();
        let policy_rejected = t1(&pr).require_grad();
        let out = dpo_loss(policy_chosen.clone(), policy_rejected.clone(), t1(&rc), t1(&rr), beta, 2);
        let grads = out.loss.clone().backward();
        let mut want_loss = 0.0;
        let (mut want_gc, mut want_gr) = (vec![], vec![]);
        for i in 0..2 {
            let z = beta * ((f64::from(pc[i]) - f64::from(rc[i])) - (f64::from(pr[i]) - f64::from(rr[i])));
            let sig = 1.0 / (1.0 + (-z).exp());
            want_loss += -sig.ln() / 2.0;
            // d/dz −log σ(z) = −(1 − σ(z)); dz/dπc = β, dz/dπr = −β; averaged over 2 pairs.
            want_gc.push(-(1.0 - sig) * beta / 2.0);
            want_gr.push((1.0 - sig) * beta / 2.0);
        }
        let loss = f64::from(out.loss.into_scalar());
        assert!((loss - want_loss).abs() < 1e-6, "{loss} vs {want_loss}");
        let gc = values(policy_chosen.grad(&grads).unwrap_or_else(|| Tensor::zeros([2], &Default::default())));
        let gr = values(policy_rejected.grad(&grads).unwrap_or_else(|| Tensor::zeros([2], &Default::default())));
        for i in 0..2 {
            assert!((f64::from(gc[i]) - want_gc[i]).abs() < 1e-6, "chosen {i}: {} vs {}", gc[i], want_gc[i]);
            assert!((f64::from(gr[i]) - want_gr[i]).abs() < 1e-6, "rejected {i}: {} vs {}", gr[i], want_gr[i]);
        }
        let rewards = values(out.chosen_rewards.inner());
        assert!((rewards[0] - 0.5).abs() < 1e-6 && (rewards[1] - 0.5).abs() < 1e-6, "{rewards:?}");
    }

    #[test]
    fn masked_positions_get_no_gradient_and_the_loss_is_the_weighted_mean() {
        let device = Default::default();
        let vocab = 5;
        let raw: Vec<f32> = (0..2 * 3 * vocab).map(|i| ((i * 7 % 11) as f32) / 3.0 - 1.5).collect();
        let logits = Tensor::<A, 3>::from_data(TensorData::new(raw.clone(), [2, 3, vocab]), &device).require_grad();
        let targets = Tensor::<A, 2, Int>::from_data(TensorData::new(vec![1i64, 4, 0, 2, 2, 3], [2, 3]), &device);
        let w = [0.0f32, 1.0, 1.0, 0.0, 0.0, 1.0];
        let weights = Tensor::<A, 2>::from_data(TensorData::new(w.to_vec(), [2, 3]), &device);
        let loss = lm_loss(logits.clone(), targets, weights, 3.0);
        let grads = loss.clone().backward();
        let g = logits.grad(&grads).map(|g| g.into_data().to_vec::<f32>().unwrap_or_default()).unwrap_or_default();
        assert_eq!(g.len(), raw.len());
        let tgt = [1usize, 4, 0, 2, 2, 3];
        let mut want = 0.0;
        for pos in 0..6 {
            let row = &raw[pos * vocab..(pos + 1) * vocab];
            let lse = row.iter().map(|&x| f64::from(x).exp()).sum::<f64>().ln();
            let grad_row = &g[pos * vocab..(pos + 1) * vocab];
            if w[pos] == 0.0 {
                assert!(grad_row.iter().all(|&x| x == 0.0), "masked position {pos} has gradient {grad_row:?}");
            } else {
                want += (lse - f64::from(row[tgt[pos]])) / 3.0;
                assert!(grad_row.iter().any(|&x| x != 0.0), "position {pos} has no gradient");
            }
        }
        let got = f64::from(loss.into_scalar());
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
