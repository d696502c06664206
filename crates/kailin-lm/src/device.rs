//! Device selection for binaries. Libraries stay generic over `B: Backend`; a binary that
//! picks burn's CUDA backend (feature `cuda`) gets its device here, checked, and one that picks
//! the CPU backend its threads.

use std::sync::OnceLock;

#[cfg(feature = "cuda")]
use crate::error::{Error, Result};

/// The CUDA device `index`, verified usable.
///
/// burn 0.21's CUDA runtime panics at its first operation when the driver library (`libcuda`)
/// or a GPU is missing. This runs one tiny operation under `catch_unwind` and turns that panic
/// into [`Error::Device`], so a binary can report it instead of crashing.
#[cfg(feature = "cuda")]
pub fn cuda_device(index: usize) -> Result<burn::backend::cuda::CudaDevice> {
    use burn::backend::Cuda;
    use burn::prelude::*;
    let device = burn::backend::cuda::CudaDevice::new(index);
    let probe = device.clone();
    let outcome = std::panic::catch_unwind(move || Tensor::<Cuda, 1>::zeros([1], &probe).into_data());
    match outcome {
        Ok(_) => Ok(device),
        Err(payload) => Err(Error::Device(format!(
            "CUDA device {index} is not usable (is an NVIDIA driver installed and a GPU visible?): {}",
            panic_message(&*payload)
        ))),
    }
}

/// The text of a panic payload.
#[cfg(feature = "cuda")]
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown failure".to_owned())
}

/// Whether the `cuda` feature was compiled in.
pub fn cuda_compiled() -> bool {
    cfg!(feature = "cuda")
}

/// Runs `work` on a rayon pool of one thread per core, one of whose threads carries `work`
/// itself: how a binary should drive inference on burn's CPU backend (`flex`).
///
/// flex multi-threads its large matrix products through rayon. Called from an ordinary thread
/// (a binary's `main`), every such product parks the caller and hands the work to rayon's
/// global pool, whose threads, one per core, then contend with the caller for the cores between
/// products. Inside this pool a product is shared by the pool's threads alone: on 2 cores,
/// SmolLM2-135M decoded a batch of 16 about a fifth faster (docs/benchmarks.md, "Generation
/// speed"). Training measured mixed (LoRA faster, full fine-tuning slower; same section), so
/// `kailin train` does not use it. The pool (`RAYON_NUM_THREADS` threads, else one per core)
/// is built at the first call and reused; if it cannot be built, `work` runs on the calling
/// thread. It is meant for the CPU backend: kailin's binaries call it only there.
pub fn on_cpu_threads<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("kailin-cpu-{i}"))
            // The size of a main thread's stack: the work would otherwise have run on one.
            .stack_size(8 << 20)
            .build()
            .map_err(|e| tracing::warn!("no CPU thread pool ({e}); running on the calling thread"))
            .ok()
    });
    match pool {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_on_a_pool_thread_and_returns_its_value() {
        let name = on_cpu_threads(|| std::thread::current().name().map(str::to_owned));
        assert!(name.as_deref().is_some_and(|n| n.starts_with("kailin-cpu-")), "ran on {name:?}");
        // Nested calls run in place instead of deadlocking.
        assert_eq!(on_cpu_threads(|| on_cpu_threads(|| 7)), 7);
    }
}
