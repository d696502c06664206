//! LoRA: a trainable low-rank update `(α / r)·A·B` beside a frozen projection.

use burn::config::Config;
use burn::module::{ModuleVisitor, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use burn::tensor::Distribution;

use super::LORA_TARGETS;
use crate::error::{Error, Result};

/// LoRA hyper-parameters (Hu et al., 2021): each targeted projection `x·W` becomes
/// `x·W + (alpha / rank)·dropout(x)·A·B` with `A` `[in, rank]` drawn uniformly in
/// `±1/√in` and `B` `[rank, out]` zero, so the adapted model starts equal to the base.
#[derive(Config, Debug, PartialEq)]
pub struct LoraConfig {
    /// Rank of the update.
    pub rank: usize,
    /// Scale numerator: the update is multiplied by `alpha / rank`.
    #[config(default = 16.0)]
    pub alpha: f64,
    /// Dropout probability on the adapter's input (training only).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Which projections of every block get an adapter: names from [`LORA_TARGETS`] (`q`, `k`,
    /// `v`, `o` of attention; `gate`, `up`, `down` of the MLP).
    #[config(default = "LORA_TARGETS.iter().map(|s| (*s).to_owned()).collect()")]
    pub targets: Vec<String>,
}

impl LoraConfig {
    /// Checks the hyper-parameters.
    pub fn check(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::Lora(reason));
        if self.rank == 0 {
            return bad("the rank must be at least 1".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad(format!("alpha must be a positive number, not {}", self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be within 0..1, not {}", self.dropout));
        }
        if self.targets.is_empty() {
            return bad("no target projection named".into());
        }
        if let Some(t) = self.targets.iter().find(|t| !LORA_TARGETS.contains(&t.as_str())) {
            return bad(format!("unknown target projection {t:?} (one of {})", LORA_TARGETS.join(", ")));
        }
        Ok(())
    }

    /// Whether projection `name` is targeted.
    pub(crate) fn targets(&self, name: &str) -> bool {
        self.targets.iter().any(|t| t == name)
    }

    /// A fresh adapter for a projection from `input` to `output` features.
    pub fn init<B: Backend>(&self, input: usize, output: usize, device: &B::Device) -> Lora<B> {
        let bound = 1.0 / (input as f64).sqrt();
        Lora {
            a: Param::from_tensor(Tensor::random([input, self.rank], Distribution::Uniform(-bound, bound), device)),
            b: Param::from_tensor(Tensor::zeros([self.rank, output], device)),
            dropout: DropoutConfig::new(self.dropout).init(),
            scale: self.alpha / self.rank as f64,
        }
    }
}

/// For a module visitor: whether it is inside a LoRA adapter (a module named `lora`), by the
/// depth of the modules it has entered since.
#[derive(Debug, Default)]
pub(crate) struct InAdapter(usize);

impl InAdapter {
    pub(crate) fn enter(&mut self, name: &str) {
        if name == "lora" || self.0 > 0 {
            self.0 += 1;
        }
    }

    pub(crate) fn exit(&mut self) {
        self.0 = self.0.saturating_sub(1);
    }

    pub(crate) fn inside(&self) -> bool {
        self.0 > 0
    }
}

/// A LoRA adapter: `A` `[in, rank]`, `B` `[rank, out]`, and the scale `alpha / rank`.
#[derive(Module, Debug)]
pub struct Lora<B: Backend> {
    pub(crate) a: Param<Tensor<B, 2>>,
    pub(crate) b: Param<Tensor<B, 2>>,
    dropout: Dropout,
    pub(crate) scale: f64,
}

impl<B: Backend> Lora<B> {
    /// The adapter's contribution to its projection's output.
    ///
    /// Shapes: `x` `[rows, in]` → `[rows, out]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.dropout.forward(x).matmul(self.a.val()).matmul(self.b.val()).mul_scalar(self.scale)
    }

    /// The update of the projection's weight, `[in, out]`: `scale·A·B`.
    pub fn delta(&self) -> Tensor<B, 2> {
        self.a.val().matmul(self.b.val()).mul_scalar(self.scale)
    }
}

impl<B: Backend> super::Llama<B> {
    /// Freezes every weight of the model and attaches a fresh LoRA adapter to the projections
    /// `config` targets in every block: afterwards only the adapters train, and the model
    /// computes exactly what it computed before until they do.
    ///
    /// Errors: [`Error::Lora`] for bad hyper-parameters, or when adapters are already attached.
    pub fn with_lora(self, config: &LoraConfig) -> Result<Self> {
        config.check()?;
        if self.lora_attached() {
            return Err(Error::Lora("adapters are already attached (merge them first)".into()));
        }
        let mut model = self.no_grad();
        for block in &mut model.blocks {
            for (weight, proj) in block.projections_mut() {
                if weight.short().is_some_and(|name| config.targets(name)) {
                    let [input, output] = proj.weight.dims();
                    proj.lora = Some(config.init(input, output, &proj.weight.device()));
                }
            }
        }
        Ok(model)
    }

    /// Whether a training forward pass draws random numbers (LoRA dropout above 0): a trainer
    /// that wants reproducible steps seeds the backend's generator for such a model.
    pub fn is_stochastic(&self) -> bool {
        self.adapters().any(|l| l.dropout.prob > 0.0)
    }

    /// Whether the weights that train (that require gradients) are exactly LoRA adapters',
    /// every other weight frozen: the case whose gradients
    /// [`Tape::backward`](crate::Tape::backward) computes.
    pub fn trains_adapters_only(&self) -> bool {
        struct Trainable {
            depth: InAdapter,
            adapters: usize,
            others: usize,
        }
        impl<B: Backend> ModuleVisitor<B> for Trainable {
            fn enter_module(&mut self, name: &str, _container_type: &str) {
                self.depth.enter(name);
            }
            fn exit_module(&mut self, _name: &str, _container_type: &str) {
                self.depth.exit();
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                if param.val().is_require_grad() {
                    if self.depth.inside() { self.adapters += 1 } else { self.others += 1 }
                }
            }
        }
        let mut t = Trainable { depth: InAdapter::default(), adapters: 0, others: 0 };
        self.visit(&mut t);
        t.adapters > 0 && t.others == 0
    }

    /// Whether any projection carries a LoRA adapter.
    pub fn lora_attached(&self) -> bool {
        self.adapters().next().is_some()
    }

    /// Folds every LoRA adapter into its projection's weight (`W + (α/r)·A·B`) and removes the
    /// adapters: a plain model that computes what the adapted one computed (without dropout).
    pub fn merge_lora(mut self) -> Self {
        for block in &mut self.blocks {
            for (_, proj) in block.projections_mut() {
                let owned = std::mem::replace(proj, super::Linear::plain(proj.weight.clone(), None));
                *proj = owned.merged();
            }
        }
        self
    }

    /// Every attached adapter.
    fn adapters(&self) -> impl Iterator<Item = &Lora<B>> {
        self.blocks.iter().flat_map(|b| b.projections().into_iter().filter_map(|(_, p)| p.lora.as_ref()))
    }
}
