//! Branch-free numeric loops that the compiler vectorises, shared by the crates' CPU kernels
//! (the encoder's and the decoder's). Each is `#[inline(always)]`, so inside a caller's
//! function compiled with `#[target_feature(enable = "avx2,fma")]` it is compiled for AVX2
//! too; [`avx2_fma`] tells a caller whether it may call such a function.

/// `e^x`, within 3e-7 relative, for `x` clamped to [-87, 88].
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // k = round(x / ln 2) by the 1.5·2²³ trick (no rounding instruction needed).
    const MAGIC: f32 = 12_582_912.0;
    let kf = (x * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    let r = x - kf * 0.693_145_75 - kf * 1.428_606_8e-6;
    // e^r for |r| ≤ ln2/2: Taylor to r⁷ (error below 3e-8).
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let bits = ((kf as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

/// Sum with eight running lanes (a plain float sum is a serial chain the compiler may not
/// reorder, which also keeps any loop around it from vectorising).
#[inline(always)]
pub fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// `Σ a[i]·b[i]` with eight running lanes (see [`sum`]); `b` at least as long as `a`.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let b = &b[..a.len()];
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// The largest value (`-∞` for none), with eight running lanes.
#[inline(always)]
pub fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] = acc[i].max(c[i]);
        }
    }
    acc.iter().chain(rest).fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// Softmax of `row · scale` (`scale` > 0), in place.
#[inline(always)]
pub fn softmax(row: &mut [f32], scale: f32) {
    let shift = max(row) * scale;
    for v in row.iter_mut() {
        *v = exp(*v * scale - shift);
    }
    let inv = 1.0 / sum(row);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Whether this CPU runs AVX2 and FMA: what a caller checks before calling its own
/// `#[target_feature(enable = "avx2,fma")]` copy of a loop.
pub fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_softmax_and_dot_are_accurate() {
        let mut worst = 0f64;
        for i in -80_000..=80_000 {
            let x = i as f32 / 1000.0;
            let e = (super::exp(x) as f64 - (x as f64).exp()).abs() / (x as f64).exp();
            worst = worst.max(e);
        }
        assert!(worst < 3e-7, "exp relative error {worst}");
        let row: Vec<f32> = (0..21).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.9).collect();
        let mut got = row.clone();
        super::softmax(&mut got, 0.5);
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v) * 0.5));
        let z: f64 = row.iter().map(|&v| (f64::from(v) * 0.5 - m).exp()).sum();
        for (g, &v) in got.iter().zip(&row) {
            assert!((f64::from(*g) - (f64::from(v) * 0.5 - m).exp() / z).abs() < 1e-6);
        }
        let want: f64 = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        assert!((f64::from(super::dot(&row, &row)) - want).abs() < 1e-4);
        assert_eq!(super::max(&row), 5.0 * 0.9);
    }
}
