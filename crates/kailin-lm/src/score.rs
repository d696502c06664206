//! Log-probability of a continuation given a prompt: what DPO and the evaluator need.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::error::{Error, Result};
use crate::llama::Llama;

/// The log-probability of a continuation: per token and summed.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// `log p(continuation[i] | prompt, continuation[..i])` for each token.
    pub per_token: Vec<f64>,
    /// Their sum: `log p(continuation | prompt)`.
    pub total: f64,
}

/// Scores `(prompt, continuation)` pairs in one batch. Sequences are right-padded to the
/// longest; under causal attention the padding cannot influence the scored positions, so each
/// result equals scoring its pair alone.
pub fn score<B: Backend>(model: &Llama<B>, pairs: &[(Vec<u32>, Vec<u32>)]) -> Result<Vec<Score>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    if let Some((i, _)) = pairs.iter().enumerate().find(|(_, (p, c))| p.is_empty() || c.is_empty()) {
        return Err(Error::EmptyScore { pair: i });
    }
    let device = model.devices().into_iter().next().unwrap_or_default();
    let longest = pairs.iter().map(|(p, c)| p.len() + c.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(pairs.len() * longest);
    for (p, c) in pairs {
        let n = p.len() + c.len();
        ids.extend(p.iter().chain(c).map(|&t| i64::from(t)));
        ids.extend(std::iter::repeat_n(0i64, longest - n));
    }
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [pairs.len(), longest]), &device);
    let logits = model.forward(tokens)?;
    let [_, _, vocab] = logits.dims();
    let logp = log_softmax(logits, 2).into_data().to_vec::<f32>().unwrap_or_default();
    Ok(pairs
        .iter()
        .enumerate()
        .map(|(b, (p, c))| {
            // The token at position p.len() + i is predicted at position p.len() + i - 1.
            let per_token: Vec<f64> = c
                .iter()
                .enumerate()
                .map(|(i, &t)| f64::from(logp[(b * longest + p.len() + i - 1) * vocab + t as usize]))
                .collect();
            Score { total: per_token.iter().sum(), per_token }
        })
        .collect())
}
