//! With `--features cuda`: a machine without a usable GPU gets a clear error, not a panic.
#![cfg(feature = "cuda")]
#![allow(clippy::print_stderr)]

#[test]
fn cuda_device_is_ok_or_a_clear_error() {
    assert!(kailin_lm::cuda_compiled());
    match kailin_lm::cuda_device(0) {
        Ok(_) => eprintln!("a usable CUDA device 0 is present"),
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("CUDA device 0 is not usable"), "{text}");
            eprintln!("as expected without a GPU: {text}");
        }
    }
}
