//! Direct preference optimisation: the policy against a frozen reference, on (prompt,
//! chosen, rejected) triples. m-KAILIN optimises its general question generator this way.
//!
//! The reference's log-probabilities are computed once, before the first step (the policy as
//! it starts *is* the reference), and can be cached in a file, so the reference model never
//! stays in memory.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use kailin_core::AtomicFile;
use kailin_lm::Llama;
use serde::{Deserialize, Serialize};

use crate::encode::{Encoded, PairRows, Row};
use crate::error::{Error, Result};
use crate::loss::{dpo_loss, sequence_logprobs};
use crate::native::NativeRows;
use crate::trainer::{
    BatchTensors, MicroLoss, NativeLoss, Objective, Progress, TrainOptions, TrainReport, train as run,
};
use kailin_core::Fnv64;

/// DPO's own options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpoOptions {
    /// β, the strength of the pull towards the reference.
    pub beta: f64,
    /// Weight α of the chosen completions' negative log-likelihood per token, added to the
    /// DPO loss (`L = L_DPO + α·NLL(chosen)/|chosen|`, as RPO, Pang et al. 2024): DPO alone
    /// lowers the likelihood of the chosen completions too and, pushed hard on few pairs,
    /// drifts off their form (a question writer that stops writing questions); the NLL term
    /// holds it there. 0 is DPO as the paper trains it.
    pub nll: f64,
    /// File caching the reference log-probabilities (read when it matches the data and
    /// `reference_id`, else computed and written).
    pub reference_cache: Option<PathBuf>,
    /// Names the reference model in the cache (e.g. its path), so that a cache of another
    /// model is not reused.
    pub reference_id: String,
}

impl Default for DpoOptions {
    fn default() -> Self {
        DpoOptions { beta: 0.1, nll: 0.0, reference_cache: None, reference_id: String::new() }
    }
}

/// A pair with the reference's log-probabilities of its chosen and rejected completions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScoredPair {
    rows: PairRows,
    reference: [f64; 2],
}

struct Dpo {
    beta: f64,
    nll: f64,
}

/// Whether `x` is 0 (what a serialised objective leaves out, so that keys made before a
/// setting existed still match).
pub(crate) fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// The rows of `pairs`: `[chosen…, rejected…]`.
fn pair_rows<'a>(pairs: &[&'a PairRows]) -> Vec<&'a Row> {
    pairs.iter().map(|p| &p.chosen).chain(pairs.iter().map(|p| &p.rejected)).collect()
}

/// Sequence log-probabilities of the completions of `pairs`: `[chosen…, rejected…]`.
fn pair_logprobs<B: Backend>(model: &Llama<B>, pairs: &[&PairRows]) -> Result<(Tensor<B, 1>, usize)> {
    let device = model.devices().first().cloned().unwrap_or_default();
    let rows = pair_rows(pairs);
    let batch = BatchTensors::<B>::new(&rows, &device);
    let logits = batch.logits(model)?;
    Ok((sequence_logprobs(logits, batch.targets, batch.weights), batch.tokens))
}

fn host(t: Tensor<impl Backend, 1>) -> Result<Vec<f64>> {
    t.into_data().convert::<f64>().to_vec::<f64>().map_err(|e| Error::Backend(format!("{e:?}")))
}

/// The DPO loss (plus the NLL term) of a micro-batch from its sequence log-probabilities, on
/// the host: the loss divided as [`Objective::loss`] divides it, the metric sums, and the
/// loss's derivative with respect to each chosen and rejected log-probability.
struct HostDpo {
    loss: f64,
    metrics: Vec<(&'static str, f64)>,
    d_chosen: Vec<f64>,
    d_rejected: Vec<f64>,
}

impl Dpo {
    fn host(&self, items: &[&ScoredPair], chosen: &[f64], rejected: &[f64], normaliser: f64) -> HostDpo {
        let pairs = (normaliser as usize).max(1) as f64;
        let nll_scale = normaliser.max(1.0);
        let (mut dpo, mut nll, mut sums) = (0.0, 0.0, [0.0; 5]);
        let (mut d_chosen, mut d_rejected) = (Vec::with_capacity(items.len()), Vec::with_capacity(items.len()));
        for ((item, &c), &r) in items.iter().zip(chosen).zip(rejected) {
            let (cr, rr) = (self.beta * (c - item.reference[0]), self.beta * (r - item.reference[1]));
            let z = cr - rr;
            // −log σ(z), stably; its derivative is −σ(−z).
            dpo += (-z).max(0.0) + (-z.abs()).exp().ln_1p();
            let pull = 1.0 / (1.0 + z.exp());
            let len = f64::from(item.rows.chosen.weights.iter().sum::<f32>().max(1.0));
            nll -= c / len;
            d_chosen.push(-pull * self.beta / pairs - self.nll / (len * nll_scale));
            d_rejected.push(pull * self.beta / pairs);
            sums[0] += cr;
            sums[1] += rr;
            sums[2] += z;
            sums[3] += f64::from(u8::from(cr > rr));
            sums[4] += c / len;
        }
        let names =
            ["chosen_reward", "rejected_reward", "reward_margin", "preference_accuracy", "chosen_logprob_per_token"];
        let loss = dpo / pairs + self.nll * nll / nll_scale;
        HostDpo { loss, metrics: names.into_iter().zip(sums).collect(), d_chosen, d_rejected }
    }
}

impl Objective for Dpo {
    type Item = ScoredPair;

    fn weight(&self, _: &ScoredPair) -> f64 {
        1.0
    }

    fn fingerprint(&self, item: &ScoredPair, h: &mut Fnv64) {
        item.rows.chosen.fingerprint(h);
        item.rows.rejected.fingerprint(h);
        item.reference.iter().for_each(|r| {
            h.bytes(&r.to_le_bytes());
        });
    }

    fn loss<B: Backend>(&self, model: &Llama<B>, items: &[&ScoredPair], normaliser: f64) -> Result<MicroLoss<B>> {
        let n = items.len();
        let device = model.devices().first().cloned().unwrap_or_default();
        let pairs: Vec<&PairRows> = items.iter().map(|i| &i.rows).collect();
        let (lp, tokens) = pair_logprobs(model, &pairs)?;
        let reference = |k: usize| {
            let v: Vec<f32> = items.iter().map(|i| i.reference[k] as f32).collect();
            Tensor::<B, 1>::from_data(TensorData::new(v, [n]), &device)
        };
        let chosen_lp = lp.clone().slice_dim(0, 0..n);
        let out = dpo_loss(
            chosen_lp.clone(),
            lp.slice_dim(0, n..2 * n),
            reference(0),
            reference(1),
            self.beta,
            normaliser as usize,
        );
        let lengths: Vec<f32> = items.iter().map(|i| i.rows.chosen.weights.iter().sum::<f32>().max(1.0)).collect();
        let per_token: f64 =
            host(chosen_lp.clone().detach())?.iter().zip(&lengths).map(|(lp, len)| lp / f64::from(*len)).sum();
        let mut loss = out.loss;
        if self.nll != 0.0 {
            // Each chosen completion's mean per-token NLL, summed over the pairs and divided
            // like the DPO term, so accumulated micro-batches add up to the step's mean.
            let lengths = Tensor::<B, 1>::from_data(TensorData::new(lengths, [n]), &device);
            let nll = chosen_lp.neg().div(lengths).sum().div_scalar(normaliser.max(1.0));
            loss = loss + nll.mul_scalar(self.nll);
        }
        let (chosen, rejected) = (host(out.chosen_rewards)?, host(out.rejected_rewards)?);
        let margin: f64 = chosen.iter().zip(&rejected).map(|(c, r)| c - r).sum();
        let correct = chosen.iter().zip(&rejected).filter(|(c, r)| c > r).count() as f64;
        let metrics = vec![
            ("chosen_reward", chosen.iter().sum()),
            ("rejected_reward", rejected.iter().sum()),
            ("reward_margin", margin),
            ("preference_accuracy", correct),
            ("chosen_logprob_per_token", per_token),
        ];
        Ok(MicroLoss { loss, metrics, tokens })
    }

    fn native<B: AutodiffBackend>(
        &self,
        model: &Llama<B::InnerBackend>,
        trained: Option<&Llama<B>>,
        items: &[&ScoredPair],
        normaliser: f64,
    ) -> Result<Option<NativeLoss>> {
        let pairs: Vec<&PairRows> = items.iter().map(|i| &i.rows).collect();
        let rows = pair_rows(&pairs);
        let Some(pass) = NativeRows::forward(model, &rows)? else { return Ok(None) };
        let lp = pass.row_logprobs();
        let n = items.len();
        let out = self.host(items, &lp[..n], &lp[n..], normaliser);
        let tokens = rows.iter().map(|r| r.ids.len().saturating_sub(1)).sum();
        let d: Vec<f64> = out.d_chosen.into_iter().chain(out.d_rejected).collect();
        let grads = trained.map(|m| pass.backward(m, &d)).transpose()?;
        Ok(Some(NativeLoss { loss: out.loss, metrics: out.metrics, tokens, grads }))
    }
}

/// Sequence log-probabilities `[chosen, rejected]` of each pair under `model`, in batches of
/// `batch_size` pairs.
pub fn reference_logprobs<B: Backend>(
    model: &Llama<B>,
    pairs: &[PairRows],
    batch_size: usize,
) -> Result<Vec<[f64; 2]>> {
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(batch_size.max(1)) {
        let refs: Vec<&PairRows> = chunk.iter().collect();
        let values = match NativeRows::forward(model, &pair_rows(&refs))? {
            Some(pass) => pass.row_logprobs(),
            None => host(pair_logprobs(model, &refs)?.0)?,
        };
        let n = chunk.len();
        out.extend((0..n).map(|i| [values[i], values[n + i]]));
    }
    Ok(out)
}

#[derive(Debug, Serialize, Deserialize)]
struct Cache {
    reference_id: String,
    digest: String,
    logprobs: Vec<[f64; 2]>,
}

/// FNV-1a over the token ids and weights of the pairs: names the data a cache belongs to.
fn digest(pairs: &[PairRows]) -> String {
    let mut h = Fnv64::new();
    for p in pairs {
        p.chosen.fingerprint(&mut h);
        p.rejected.fingerprint(&mut h);
    }
    h.hex()
}

fn read_cache(path: &Path, reference_id: &str, digest: &str, n: usize) -> Option<Vec<[f64; 2]>> {
    let text = std::fs::read_to_string(path).ok()?;
    let cache: Cache = serde_json::from_str(&text).ok()?;
    let fits = cache.reference_id == reference_id && cache.digest == digest && cache.logprobs.len() == n;
    if !fits {
        tracing::warn!(path = %path.display(), "reference cache is for other data or another model: recomputing");
    }
    fits.then_some(cache.logprobs)
}

fn write_cache(path: &Path, cache: &Cache) -> Result<()> {
    let io = |source| Error::Io { path: path.to_owned(), source };
    let mut file = AtomicFile::create(path)?;
    let text = serde_json::to_string(cache).map_err(|e| io(std::io::Error::other(e)))?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.commit()?;
    Ok(())
}

/// Trains the policy `model` with DPO on `data` (from [`encode_pairs`](crate::encode_pairs));
/// the reference is `model` as given. `eval` pairs give the evaluation loss. Logged per step:
/// loss, chosen and rejected rewards, reward margin, preference accuracy; `on_step` sees every
/// optimiser step.
pub fn train<B: AutodiffBackend>(
    model: Llama<B>,
    data: &Encoded<PairRows>,
    eval: &[PairRows],
    opts: &TrainOptions,
    dpo: &DpoOptions,
    on_step: impl FnMut(&Progress<'_>),
) -> Result<(Llama<B>, TrainReport)> {
    if !(dpo.beta.is_finite() && dpo.beta > 0.0) {
        return Err(Error::Options(format!("DPO's beta must be a positive number, not {}", dpo.beta)));
    }
    if !(dpo.nll.is_finite() && dpo.nll >= 0.0) {
        return Err(Error::Options(format!("DPO's NLL weight must be 0 or a positive number, not {}", dpo.nll)));
    }
    let reference = model.valid();
    // The training pairs' reference values may come from (and go to) the cache.
    let score = |pairs: &[PairRows], cache: Option<&Path>| -> Result<Vec<ScoredPair>> {
        let digest = digest(pairs);
        let logprobs = match cache.and_then(|p| read_cache(p, &dpo.reference_id, &digest, pairs.len())) {
            Some(l) => l,
            None => {
                let l = reference_logprobs(&reference, pairs, opts.batch_size)?;
                if let Some(path) = cache {
                    write_cache(path, &Cache { reference_id: dpo.reference_id.clone(), digest, logprobs: l.clone() })?;
                }
                l
            }
        };
        Ok(pairs.iter().cloned().zip(logprobs).map(|(rows, reference)| ScoredPair { rows, reference }).collect())
    };
    let (train_items, eval_items) = (score(&data.items, dpo.reference_cache.as_deref())?, score(eval, None)?);
    drop(reference);
    let (model, mut report) =
        run(model, &Dpo { beta: dpo.beta, nll: dpo.nll }, &train_items, &eval_items, opts, on_step)?;
    report.truncated = data.truncated;
    Ok((model, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::testing::both_paths_agree;

    fn pair(prompt: &[u32], chosen: &[u32], rejected: &[u32], reference: [f64; 2]) -> ScoredPair {
        let row = |completion: &[u32]| {
            let ids: Vec<u32> = prompt.iter().chain(completion).copied().collect();
            let weights = (1..ids.len()).map(|j| if j < prompt.len() { 0.0 } else { 1.0 }).collect();
            Row { ids, weights, segments: None }
        };
        ScoredPair { rows: PairRows { chosen: row(chosen), rejected: row(rejected) }, reference }
    }

    #[test]
    fn the_cpu_kernels_compute_burns_loss_metrics_and_gradients_with_and_without_the_nll_term() {
        let items = [
            pair(&[1, 4, 5, 6], &[20, 21, 2], &[30, 2], [-9.0, -7.5]),
            pair(&[1, 8], &[40, 41, 42, 43, 2], &[50, 51, 2], [-14.0, -10.0]),
        ];
        let refs: Vec<&ScoredPair> = items.iter().collect();
        for nll in [0.0, 1.0] {
            both_paths_agree(&Dpo { beta: 0.5, nll }, &refs, 2.0);
        }
    }
}
