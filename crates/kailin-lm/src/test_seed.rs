//! The unit tests' random models, the same on every run.

use std::sync::{Mutex, PoisonError};

use burn::backend::Flex;
use burn::prelude::Backend;

/// burn's random numbers on `Flex` come from one process-wide generator.
static RANDOM: Mutex<()> = Mutex::new(());

/// Runs `f` with that generator seeded with `seed`, holding a lock so that no other
/// test's draws interleave: a model built inside is the same on every run, so a test
/// cannot pass or fail by the luck of its weights.
pub(crate) fn seeded<T>(seed: u64, f: impl FnOnce() -> T) -> T {
    let _draws = RANDOM.lock().unwrap_or_else(PoisonError::into_inner);
    Flex::seed(&Default::default(), seed);
    f()
}
