//! Hugging Face export (written, reloaded, identical logits; config round trip) and LoRA
//! adapters (start equal to the base, freeze it, merge exactly, export merged).
#![allow(clippy::unwrap_used)]

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::prelude::*;
use kailin_lm::{Error, Llama, LlamaConfig, LoraConfig, RopeScaling};

mod common;
use common::weight;

type B = Flex;

fn model<B: Backend>(config: &LlamaConfig) -> Llama<B> {
    Llama::from_weights(config, 32, &Default::default(), |name, shape| Ok(weight(name, shape.iter().product())))
        .unwrap()
}

fn logits<B: Backend>(model: &Llama<B>) -> Vec<f32> {
    let ids: Vec<i64> = vec![1, 5, 2, 9, 4, 3, 3, 0, 12, 7];
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [2, 5]), &Default::default());
    model.forward(tokens).unwrap().into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn configs() -> Vec<LlamaConfig> {
    vec![
        LlamaConfig::new(13, 8, 12, 2, 2, 1).with_rope_theta(10000.0).with_tie_embeddings(true),
        LlamaConfig::new(13, 12, 20, 2, 3, 3)
            .with_tie_embeddings(false)
            .with_attention_bias(true)
            .with_rope_theta(500.0),
        LlamaConfig::new(13, 8, 12, 1, 2, 2)
            .with_tie_embeddings(false)
            .with_rope_scaling(Some(RopeScaling::new(8.0, 1.0, 4.0, 16))),
    ]
}

#[test]
fn export_then_reload_gives_identical_logits_and_config() {
    for config in configs() {
        let original = model::<B>(&config);
        let dir = tempfile::tempdir().unwrap();
        original.save_hf_dir(&config, dir.path()).unwrap();
        let (reloaded, read) = Llama::<B>::from_hf_dir(dir.path(), 32, &Default::default()).unwrap();
        assert_eq!(read, config, "config.json round trip");
        assert_eq!(logits(&reloaded), logits(&original), "{config:?}");
        // Nothing but the two files (no temporary left behind).
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["config.json", "model.safetensors"]);
    }
}

#[test]
fn hf_tensors_use_hugging_face_names_and_layout() {
    let config = LlamaConfig::new(13, 12, 20, 1, 3, 1).with_tie_embeddings(false).with_attention_bias(true);
    let tensors = model::<B>(&config).hf_tensors().unwrap();
    let find = |n: &str| tensors.iter().find(|t| t.0 == n).unwrap_or_else(|| panic!("{n} missing"));
    // [out, in] as in PyTorch, values as given to the loader.
    let k = find("model.layers.0.self_attn.k_proj.weight");
    assert_eq!(k.1, [4, 12]);
    assert_eq!(k.2, weight("model.layers.0.self_attn.k_proj.weight", 48));
    assert_eq!(find("lm_head.weight").1, [13, 12]);
    assert_eq!(find("model.layers.0.self_attn.q_proj.bias").1, [12]);
    assert_eq!(tensors.len(), 1 + 7 + 3 + 2 + 1 + 1);
}

#[test]
fn lora_starts_equal_trains_alone_and_merges_exactly() {
    type A = Autodiff<Flex>;
    let config = LlamaConfig::new(13, 8, 12, 2, 2, 1).with_rope_theta(10000.0);
    let base = model::<A>(&config);
    let before = logits(&base);
    let adapted = base.with_lora(&LoraConfig::new(2).with_alpha(4.0)).unwrap();
    assert!(adapted.lora_attached());
    // B starts at zero: the adapted model computes what the base computed.
    assert_eq!(logits(&adapted), before);

    // Only the adapters receive gradients: 2 matrices × 7 projections × 2 blocks.
    let tokens = Tensor::<A, 2, Int>::from_data(TensorData::new(vec![1i64, 5, 2, 9], [1, 4]), &Default::default());
    let grads = adapted.forward(tokens.clone()).unwrap().sum().backward();
    let grads = GradientsParams::from_grads(grads, &adapted);
    assert_eq!(grads.len(), 2 * 7 * 2);
    // Rank 2 per block: q 8→8, k 8→4, v 8→4, o 8→8, gate 8→12, up 8→12, down 12→8.
    let per_block: usize =
        [(8, 8), (8, 4), (8, 4), (8, 8), (8, 12), (8, 12), (12, 8)].iter().map(|(i, o)| 2 * (i + o)).sum();
    assert_eq!(adapted.num_params() - model::<A>(&config).num_params(), 2 * per_block);

    // One plain gradient step on every adapter matrix makes B non-zero.
    let mut grads = grads;
    let stepped = adapted.map(&mut Step { grads: &mut grads });
    let trained = logits(&stepped);
    assert!(max_diff(&trained, &before) > 1e-3, "the step changed nothing");

    // Merged: a plain model with the same logits; exported: the same again.
    let merged = stepped.clone().valid().merge_lora();
    assert!(!merged.lora_attached());
    assert!(max_diff(&logits(&merged), &trained) < 1e-5);
    let dir = tempfile::tempdir().unwrap();
    stepped.valid().save_hf_dir(&config, dir.path()).unwrap();
    let (reloaded, _) = Llama::<B>::from_hf_dir(dir.path(), 32, &Default::default()).unwrap();
    assert!(max_diff(&logits(&reloaded), &trained) < 1e-5);
}

/// `p ← p − 0.5·∇p` on every parameter with a gradient.
struct Step<'a> {
    grads: &'a mut GradientsParams,
}

impl burn::module::ModuleMapper<Autodiff<Flex>> for Step<'_> {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<Tensor<Autodiff<Flex>, D>>,
    ) -> burn::module::Param<Tensor<Autodiff<Flex>, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<Flex, D>(id) else {
            return burn::module::Param::from_mapped_value(id, tensor, mapper);
        };
        let updated = tensor.inner().sub(grad.mul_scalar(0.5));
        burn::module::Param::from_mapped_value(id, Tensor::from_inner(updated).require_grad(), mapper)
    }
}

#[test]
fn bad_lora_settings_are_errors() {
    let config = LlamaConfig::new(13, 8, 12, 1, 2, 1);
    let lora = |c: LoraConfig| model::<B>(&config).with_lora(&c).map(|_| ()).unwrap_err();
    assert!(matches!(lora(LoraConfig::new(0)), Error::Lora(m) if m.contains("rank")));
    assert!(matches!(lora(LoraConfig::new(2).with_dropout(1.0)), Error::Lora(m) if m.contains("dropout")));
    let err = lora(LoraConfig::new(2).with_targets(vec!["qkv".into()]));
    assert!(matches!(&err, Error::Lora(m) if m.contains("\"qkv\"")), "{err}");
    let twice = model::<B>(&config).with_lora(&LoraConfig::new(2)).unwrap().with_lora(&LoraConfig::new(2));
    assert!(matches!(twice.map(|_| ()).unwrap_err(), Error::Lora(m) if m.contains("already")));
}
