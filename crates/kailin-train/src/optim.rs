//! AdamW with decoupled weight decay, clipping by the global gradient norm, and the warmup +
//! cosine learning-rate schedule.
//!
//! Written here rather than taken from `burn-optim`: burn's optimiser keys its state by
//! run-time parameter ids (new ones each time a model is loaded, so its state cannot follow a
//! checkpoint onto a reloaded model) and clips each tensor's gradient on its own, where the
//! usual (and PyTorch's) clipping scales all gradients by one global norm. Here the state is
//! keyed by each parameter's path in the module (`blocks.3.attn.qkv.weight`).

use std::collections::BTreeMap;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

/// AdamW's hyper-parameters (Loshchilov & Hutter, 2019).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the second moment's square root.
    pub epsilon: f64,
    /// Decoupled weight decay (times the learning rate).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weight_decay: 0.0 }
    }
}

/// Moments of one parameter, flattened.
#[derive(Debug, Clone)]
pub(crate) struct Moments<B: Backend> {
    pub(crate) first: Tensor<B, 1>,
    pub(crate) second: Tensor<B, 1>,
}

/// AdamW's state: the step count and each trained parameter's moments, by path.
#[derive(Debug, Clone)]
pub struct AdamW<B: AutodiffBackend> {
    config: AdamWConfig,
    steps: u64,
    pub(crate) moments: BTreeMap<String, Moments<B::InnerBackend>>,
}

impl<B: AutodiffBackend> AdamW<B> {
    /// A fresh optimiser.
    pub fn new(config: AdamWConfig) -> Self {
        AdamW { config, steps: 0, moments: BTreeMap::new() }
    }

    /// Optimiser steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Puts back a checkpoint's state: the step count and the moments by parameter path.
    pub(crate) fn restore(&mut self, steps: u64, moments: BTreeMap<String, Moments<B::InnerBackend>>) {
        self.steps = steps;
        self.moments = moments;
    }

    /// One update of every parameter that has a gradient in `grads`, each gradient first
    /// multiplied by `grad_scale` (see [`clip_scale`]).
    pub fn step<M: AutodiffModule<B>>(&mut self, module: M, grads: GradientsParams, lr: f64, grad_scale: f64) -> M {
        self.steps += 1;
        let mut mapper = Mapper { optim: self, grads, lr, grad_scale, path: Vec::new() };
        module.map(&mut mapper)
    }
}

struct Mapper<'a, B: AutodiffBackend> {
    optim: &'a mut AdamW<B>,
    grads: GradientsParams,
    lr: f64,
    grad_scale: f64,
    path: Vec<String>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Mapper<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let c = self.optim.config;
        let t = self.optim.steps as i32;
        let shape = tensor.shape();
        let n = shape.num_elements();
        let grad = grad.reshape([n]).mul_scalar(self.grad_scale);
        let value = tensor.inner().reshape([n]);
        let name = self.path.join(".");
        let (first, second) = match self.optim.moments.remove(&name) {
            Some(m) => (
                m.first.mul_scalar(c.beta1) + grad.clone().mul_scalar(1.0 - c.beta1),
                m.second.mul_scalar(c.beta2) + grad.clone().powi_scalar(2).mul_scalar(1.0 - c.beta2),
            ),
            None => (grad.clone().mul_scalar(1.0 - c.beta1), grad.powi_scalar(2).mul_scalar(1.0 - c.beta2)),
        };
        let first_hat = first.clone().div_scalar(1.0 - c.beta1.powi(t));
        let second_hat = second.clone().div_scalar(1.0 - c.beta2.powi(t));
        let update = first_hat / second_hat.sqrt().add_scalar(c.epsilon);
        let value = value.clone().mul_scalar(1.0 - self.lr * c.weight_decay) - update.mul_scalar(self.lr);
        self.optim.moments.insert(name, Moments { first, second });
        let tensor = Tensor::from_inner(value.reshape(shape)).require_grad();
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// The global L2 norm of the gradients of `module`'s parameters.
pub fn grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(module: &M, grads: &GradientsParams) -> f64 {
    struct Norm<'a, B: Backend> {
        grads: &'a GradientsParams,
        sum: Option<Tensor<B, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Norm<'_, B::InnerBackend> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
                let s = g.powi_scalar(2).sum();
                self.sum = Some(match self.sum.take() {
                    Some(acc) => acc + s,
                    None => s,
                });
            }
        }
    }
    let mut v = Norm::<B::InnerBackend> { grads, sum: None };
    module.visit(&mut v);
    v.sum.map_or(0.0, |s| s.into_scalar().elem::<f64>().sqrt())
}

/// The factor that brings a gradient of global norm `norm` down to `max_norm` (1 when it is
/// already within it, or when there is no limit).
pub fn clip_scale(norm: f64, max_norm: Option<f64>) -> f64 {
    match max_norm {
        Some(max) if norm > max => max / (norm + 1e-6),
        _ => 1.0,
    }
}

/// Learning rate at optimiser step `step` (0-based) of `total`: linear warmup over `warmup`
/// steps to `peak`, then cosine decay to `peak · min_ratio` at the last step.
pub fn learning_rate(step: u64, total: u64, warmup: u64, peak: f64, min_ratio: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let decay = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / decay as f64).min(1.0);
    let min = peak * min_ratio;
    min + (peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use burn::nn::{Linear, LinearConfig};

    use super::*;

    type A = Autodiff<Flex>;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let lr = |s| learning_rate(s, 100, 10, 1.0, 0.1);
        assert!((lr(0) - 0.1).abs() < 1e-12 && (lr(9) - 1.0).abs() < 1e-12);
        assert!((lr(10) - 1.0).abs() < 1e-12);
        assert!((lr(55) - 0.55).abs() < 1e-12, "{}", lr(55));
        assert!((lr(100) - 0.1).abs() < 1e-12);
        assert!((10..100).all(|s| lr(s + 1) <= lr(s) + 1e-12), "not decaying after the warmup");
        assert!((0..9).all(|s| lr(s + 1) > lr(s)), "not warming up");
    }

    #[test]
    fn adamw_matches_a_hand_computation_over_two_steps() {
        let device = Default::default();
        let mut layer: Linear<A> = LinearConfig::new(2, 1).with_bias(false).init(&device);
        let w0 = [0.5f32, -1.0];
        layer.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w0.to_vec(), [2, 1]), &device));
        let config = AdamWConfig { beta1: 0.9, beta2: 0.99, epsilon: 1e-8, weight_decay: 0.1 };
        let mut optim = AdamW::<A>::new(config);
        let x = Tensor::<A, 2>::from_data(TensorData::new(vec![1.0f32, 2.0], [1, 2]), &device);
        let (lr, mut w) = (0.01f64, [f64::from(w0[0]), f64::from(w0[1])]);
        let (mut m, mut v) = ([0.0f64; 2], [0.0f64; 2]);
        for t in 1..=2 {
            // loss = (x·w)², dloss/dw = 2(x·w)x
            let y = layer.forward(x.clone());
            let grads = GradientsParams::from_grads(y.powi_scalar(2).sum().backward(), &layer);
            assert!(
                (grad_norm(&layer, &grads) - {
                    let s = 2.0 * (w[0] + 2.0 * w[1]);
                    (s * s + 4.0 * s * s).sqrt()
                })
                .abs()
                    < 1e-4
            );
            layer = optim.step(layer, grads, lr, 1.0);
            let s = 2.0 * (w[0] + 2.0 * w[1]);
            for i in 0..2 {
                let g = s * [1.0, 2.0][i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.99 * v[i] + 0.01 * g * g;
                let (mh, vh) = (m[i] / (1.0 - 0.9f64.powi(t)), v[i] / (1.0 - 0.99f64.powi(t)));
                w[i] = w[i] * (1.0 - lr * 0.1) - lr * mh / (vh.sqrt() + 1e-8);
            }
            let got = layer.weight.val().into_data().to_vec::<f32>().unwrap_or_default();
            for i in 0..2 {
                assert!((f64::from(got[i]) - w[i]).abs() < 1e-5, "step {t} weight {i}: {} vs {}", got[i], w[i]);
            }
        }
        assert_eq!(optim.steps(), 2);
        assert_eq!(optim.moments.keys().cloned().collect::<Vec<_>>(), ["weight"]);
    }

    #[test]
    fn clipping_scales_down_only_above_the_limit() {
        assert_eq!(clip_scale(0.5, Some(1.0)), 1.0);
        assert!((clip_scale(4.0, Some(1.0)) - 0.25).abs() < 1e-6);
        assert_eq!(clip_scale(1e9, None), 1.0);
    }
}
