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
    if let Some(native) = crate::native::native(model)? {
        return native.score(pairs);
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
    let logp = log_softmax(logits, 2).into_data().to_vec::<f32>().map_err(|e| Error::Backend(format!("{e:?}")))?;
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

/// `log p(token | prompt)` of each of `tokens` as the next token after each prompt: one forward
/// pass for several one-token answers (a judge's "A" / "B", a label's "yes" / "no"). Prompts
/// are right-padded; only each prompt's last position goes through the output projection and
/// the softmax ([`Llama::forward_at`]).
///
/// Errors: [`Error::EmptyScore`] for an empty prompt; [`Error::TokenOutOfRange`] for a token
/// outside the vocabulary.
pub fn next_token_logprobs<B: Backend>(
    model: &Llama<B>,
    prompts: &[Vec<u32>],
    tokens: &[u32],
) -> Result<Vec<Vec<f64>>> {
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(Error::EmptyScore { pair: i });
    }
    let vocab = model.vocab_size();
    if let Some(&t) = tokens.iter().find(|&&t| t as usize >= vocab) {
        return Err(Error::TokenOutOfRange { token: i64::from(t), vocab });
    }
    if let Some(native) = crate::native::native(model)? {
        return native.next_token_logprobs(prompts, tokens);
    }
    let device = model.devices().into_iter().next().unwrap_or_default();
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(prompts.len() * longest);
    for p in prompts {
        ids.extend(p.iter().map(|&t| i64::from(t)));
        ids.extend(std::iter::repeat_n(0i64, longest - p.len()));
    }
    let batch = prompts.len();
    let tokens_in = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, longest]), &device);
    let last: Vec<usize> = prompts.iter().map(|p| p.len() - 1).collect();
    let logits = model.forward_at(tokens_in, &last)?;
    let [_, vocab] = logits.dims();
    let logp = log_softmax(logits, 1).into_data().to_vec::<f32>().map_err(|e| Error::Backend(format!("{e:?}")))?;
    Ok((0..batch).map(|b| tokens.iter().map(|&t| f64::from(logp[b * vocab + t as usize])).collect()).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn next_token_logprobs_agree_with_scoring_each_continuation() {
        let config = crate::LlamaConfig::new(40, 16, 32, 2, 2, 1);
        let model = crate::test_seed::seeded(5, || config.init::<Flex>(64, &Default::default()));
        let prompts = vec![vec![1, 5, 7, 9], vec![3], vec![2, 2, 30, 31, 4, 6]];
        let tokens = [11, 12, 39];
        let got = next_token_logprobs(&model, &prompts, &tokens).unwrap();
        for (p, row) in prompts.iter().zip(&got) {
            for (&t, &lp) in tokens.iter().zip(row) {
                let want = score(&model, &[(p.clone(), vec![t])]).unwrap()[0].total;
                assert!((lp - want).abs() < 1e-4, "{lp} vs {want}");
            }
        }
        assert!(matches!(next_token_logprobs(&model, &[vec![]], &[1]), Err(Error::EmptyScore { pair: 0 })));
        assert!(next_token_logprobs(&model, &[vec![1]], &[40]).is_err());
    }
}
