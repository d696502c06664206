//! Checkpoints: stopping after step k and resuming gives the losses of the uninterrupted run
//! (full fine-tuning, and LoRA with dropout); a checkpoint of another model, options or data is
//! refused; a non-finite loss keeps the last good checkpoint; no temporary is left behind.
#![allow(clippy::unwrap_used)]

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use kailin_lm::{Llama, LlamaConfig, LoraConfig};
use kailin_train::*;

type A = Autodiff<Flex>;

/// burn's CPU backend has one random generator per process (seeded, then drawn from by lazy
/// initialisation and dropout): the tests of this file take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn model(width: usize) -> Llama<A> {
    A::seed(&Default::default(), 7);
    LlamaConfig::new(64, width, 64, 2, 4, 2).init::<A>(64, &Default::default())
}

/// Twelve rows of pseudo-text.
fn rows() -> Encoded<Row> {
    let items = (0..12)
        .map(|r| {
            let ids: Vec<u32> = (0..17).map(|i| ((r * 31 + i * 7) % 60) as u32 + 3).collect();
            Row { weights: vec![1.0; 16], ids, segments: None }
        })
        .collect();
    Encoded { items, truncated: 0 }
}

fn opts() -> TrainOptions {
    // 3 steps per epoch (batch 2 × accumulation 2), 3 epochs: resuming crosses an epoch.
    TrainOptions { epochs: 3, batch_size: 2, grad_accum: 2, lr: 5e-3, warmup_steps: 2, ..Default::default() }
}

fn losses(report: &TrainReport) -> Vec<(u64, f64)> {
    report.steps.iter().map(|s| (s.step, s.loss)).collect()
}

fn resumes_exactly(start: impl Fn() -> Llama<A>) {
    let _turn = serial();
    let (_, whole) = cpt::train(start(), &rows(), &[], &opts(), |_| ()).unwrap();
    assert_eq!(whole.steps.len(), 9);
    let dir = tempfile::tempdir().unwrap();
    let ck = CheckpointOptions::new(dir.path(), 2);
    // Stop after step 4 (mid-epoch: the epoch's second of three steps).
    let first = TrainOptions { checkpoint: Some(ck.clone()), stop_after: Some(4), ..opts() };
    let (_, part) = cpt::train(start(), &rows(), &[], &first, |_| ()).unwrap();
    assert_eq!(losses(&part), losses(&whole)[..4]);
    assert_eq!(latest_checkpoint(dir.path()).unwrap().unwrap(), dir.path().join("step-000004"));
    // Resume from a fresh start model: steps 5..9 as in the uninterrupted run.
    let rest = TrainOptions { checkpoint: Some(ck), ..opts() };
    let (_, resumed) = cpt::train(start(), &rows(), &[], &rest, |_| ()).unwrap();
    assert_eq!(losses(&resumed), losses(&whole), "the report carries steps 1..4 over and adds 5..9");
    // Two kept (steps 8 and 9), nothing half-written or temporary.
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["latest", "step-000008", "step-000009"]);
}

#[test]
fn stopping_and_resuming_gives_the_uninterrupted_losses() {
    resumes_exactly(|| model(32));
}

#[test]
fn lora_with_dropout_resumes_exactly_too() {
    resumes_exactly(|| model(32).with_lora(&LoraConfig::new(4).with_dropout(0.1)).unwrap());
}

#[test]
fn a_checkpoint_of_another_model_options_or_data_is_refused() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let ck = CheckpointOptions::new(dir.path(), 1);
    let first = TrainOptions { checkpoint: Some(ck.clone()), stop_after: Some(1), ..opts() };
    cpt::train(model(32), &rows(), &[], &first, |_| ()).unwrap();
    let resume = TrainOptions { checkpoint: Some(ck), ..opts() };
    let err = cpt::train(model(48), &rows(), &[], &resume, |_| ()).unwrap_err();
    assert!(matches!(&err, Error::Checkpoint { reason, .. } if reason.contains("another model")), "{err}");
    let err = cpt::train(model(32).with_lora(&LoraConfig::new(2)).unwrap(), &rows(), &[], &resume, |_| ()).unwrap_err();
    assert!(matches!(&err, Error::Checkpoint { reason, .. } if reason.contains("another model")), "{err}");
    let other = TrainOptions { lr: 1e-3, ..resume.clone() };
    let err = cpt::train(model(32), &rows(), &[], &other, |_| ()).unwrap_err();
    assert!(matches!(&err, Error::Checkpoint { reason, .. } if reason.contains("options")), "{err}");
    let mut data = rows();
    data.items[0].ids[3] = 9;
    let err = cpt::train(model(32), &data, &[], &resume, |_| ()).unwrap_err();
    assert!(matches!(&err, Error::Checkpoint { reason, .. } if reason.contains("data")), "{err}");
    // A `latest` naming something else is an error, not a silent fresh start.
    std::fs::write(dir.path().join("latest"), "../elsewhere").unwrap();
    let err = cpt::train(model(32), &rows(), &[], &resume, |_| ()).unwrap_err();
    assert!(matches!(&err, Error::Checkpoint { .. }), "{err}");
}

#[test]
fn a_non_finite_loss_keeps_the_last_good_checkpoint() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let ck = CheckpointOptions::new(dir.path(), 1);
    // A learning rate that blows the weights up within a few steps.
    let wild = TrainOptions { lr: 1e30, max_grad_norm: None, checkpoint: Some(ck), ..opts() };
    let err = cpt::train(model(32), &rows(), &[], &wild, |_| ()).unwrap_err();
    let Error::NonFinite { step, .. } = err else { panic!("{err}") };
    let latest = latest_checkpoint(dir.path()).unwrap().unwrap();
    assert_eq!(latest, dir.path().join(format!("step-{:06}", step - 1)));
    assert!(latest.join("model.safetensors").is_file() && latest.join("optimizer.safetensors").is_file());
}
