//! Device selection for binaries. Libraries stay generic over `B: Backend`; a binary that
//! picks burn's CUDA backend (feature `cuda`) gets its device here, checked.

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
