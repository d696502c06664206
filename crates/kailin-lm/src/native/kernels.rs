//! The decoder's row passes: projections by faer's GEMM, and RMSNorm, RoPE, SiLU·up, residual
//! adds and softmax as loops compiled twice (baseline and AVX2+FMA, chosen at run time).

use rayon::prelude::*;

use super::Proj;

/// Rows per parallel task of the element-wise passes.
pub(super) const ROWS_PER_TASK: usize = 32;

/// Up to this many rows, a projection whose file's blocks are at hand multiplies them (on
/// 16-bit activations) instead of its f32 copy: a decoding step of up to this many sequences.
/// The blocks are read and unpacked once for four rows at a time; a row's integer work does
/// not shrink with more rows, so larger batches multiply in f32, the blocks unpacked in
/// registers band by band ([`TILED_ROWS`]).
pub(super) const QUANTISED_ROWS: usize = 4;

/// Up to this many rows (a batch's decoding step), a product with quantised weights unpacks
/// them band by band ([`QMatrix::product_tiled`](super::QMatrix::product_tiled)); more (a
/// prompt pass) are one GEMM over the f32 copy, unless the blocks multiply side by side on
/// integer activations ([`QMatrix::batches_in_bytes`](super::QMatrix::batches_in_bytes)).
pub(super) const TILED_ROWS: usize = 64;

/// Whether `rows` rows multiply `q`'s blocks band by band.
pub(super) fn tiled(q: &super::QMatrix, rows: usize) -> bool {
    rows <= TILED_ROWS || q.batches_in_bytes()
}

/// `dst = x · W + b` for `rows` rows, on all the pool's threads.
pub(super) fn matmul(dst: &mut [f32], x: &[f32], p: &Proj, rows: usize) {
    match &p.q {
        Some(q) if rows <= QUANTISED_ROWS => q.product(dst, x, p.b.as_deref(), rows),
        Some(q) if tiled(q, rows) => q.product_tiled(dst, x, p.b.as_deref(), rows),
        _ => product(dst, x, &p.wt, p.b.as_deref(), rows, p.input, p.output),
    }
}

/// `dst = x · wtᵀ + b` for `rows` rows of `x` `[rows, input]`, `wt` `[output, input]`
/// row-major; one row as a dot product per output (the weights streamed once, outputs split
/// over the threads), more as one faer GEMM.
pub(super) fn product(
    dst: &mut [f32],
    x: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    rows: usize,
    input: usize,
    output: usize,
) {
    let dst = &mut dst[..rows * output];
    if rows == 1 {
        let x = &x[..input];
        dst.par_chunks_mut(64).enumerate().for_each(|(i, out)| {
            let first = i * 64;
            simd::dots(out, x, &wt[first * input..(first + out.len()) * input]);
            if let Some(b) = bias {
                simd::add(out, &b[first..first + out.len()]);
            }
        });
        return;
    }
    let a = faer::MatRef::from_row_major_slice(&x[..rows * input], rows, input);
    let w = faer::MatRef::from_row_major_slice(wt, output, input).transpose();
    let d = faer::MatMut::from_row_major_slice_mut(&mut *dst, rows, output);
    faer::linalg::matmul::matmul(d, faer::Accum::Replace, a, w, 1.0, faer::Par::rayon(0));
    if let Some(b) = bias {
        dst.par_chunks_mut(output * ROWS_PER_TASK).for_each(|rows| {
            for row in rows.chunks_exact_mut(output) {
                simd::add(row, b);
            }
        });
    }
}

/// RMSNorm: row by row of width `gamma.len()`, `dst = src / √(mean(src²) + eps) · gamma`.
pub(super) fn rms_norm_rows(dst: &mut [f32], src: &[f32], gamma: &[f32], eps: f32) {
    let w = gamma.len();
    let (dst, src) = (&mut dst[..src.len()], src);
    dst.par_chunks_mut(w * ROWS_PER_TASK).zip(src.par_chunks(w * ROWS_PER_TASK)).for_each(|(ds, ss)| {
        for (d, s) in ds.chunks_exact_mut(w).zip(ss.chunks_exact(w)) {
            simd::rms_norm(d, s, gamma, eps);
        }
    });
}

/// `x += y`, element by element.
pub(super) fn add_into(x: &mut [f32], y: &[f32]) {
    let y = &y[..x.len()];
    x.par_chunks_mut(4096).zip(y.par_chunks(4096)).for_each(|(x, y)| simd::add(x, y));
}

/// `act = silu(gate) · up` row by row, where a row of `gate_up` is `[gate (ff) | up (ff)]`.
pub(super) fn silu_mul_rows(act: &mut [f32], gate_up: &[f32], ff: usize) {
    let rows = gate_up.len() / (2 * ff);
    let act = &mut act[..rows * ff];
    act.par_chunks_mut(ff * ROWS_PER_TASK).zip(gate_up.par_chunks(2 * ff * ROWS_PER_TASK)).for_each(|(a, g)| {
        for (a, g) in a.chunks_exact_mut(ff).zip(g.chunks_exact(2 * ff)) {
            let (gate, up) = g.split_at(ff);
            simd::silu_mul(a, gate, up);
        }
    });
}

/// One row of [`silu_mul_rows`]: `act = silu(gate) · up`.
pub(super) fn silu_mul(act: &mut [f32], gate: &[f32], up: &[f32]) {
    simd::silu_mul(act, gate, up);
}

/// RoPE on one head in place, in the rotate-half layout: `(x[i], x[i + d/2])` turned by the
/// angle whose cosine and sine are `cos[i]`, `sin[i]`.
pub(super) fn rope(head: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = head.len() / 2;
    let (a, b) = head.split_at_mut(half);
    for (((a, b), &c), &s) in a.iter_mut().zip(b.iter_mut()).zip(cos).zip(sin) {
        let (x, y) = (*a, *b);
        *a = x * c - y * s;
        *b = y * c + x * s;
    }
}

/// The transpose of [`rope`] (the rotation by the opposite angle): what a gradient goes back
/// through.
pub(super) fn rope_inverse(head: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = head.len() / 2;
    let (a, b) = head.split_at_mut(half);
    for (((a, b), &c), &s) in a.iter_mut().zip(b.iter_mut()).zip(cos).zip(sin) {
        let (x, y) = (*a, *b);
        *a = x * c + y * s;
        *b = y * c - x * s;
    }
}

/// `ln Σ e^row`: the normaliser of a row of logits.
pub(super) fn log_sum_exp(row: &[f32]) -> f32 {
    simd::log_sum_exp(row)
}

/// A row of logits `z` (normaliser `lse`) becomes the gradient of `c·log softmax(z)[t]` with
/// respect to it: `c·(onehot(t) − softmax(z))`.
pub(super) fn log_softmax_grad(z: &mut [f32], lse: f32, c: f32, t: usize) {
    simd::scaled_softmax_neg(z, lse, c);
    z[t] += c;
}

/// The gradients of `gate` and `up` from that of `act = silu(gate)·up`, one row:
/// `d gate = d act·up·σ(gate)·(1 + gate·(1 − σ(gate)))`, `d up = d act·silu(gate)`.
pub(super) fn silu_mul_back(dgate: &mut [f32], dup: &mut [f32], dact: &[f32], gate: &[f32], up: &[f32]) {
    simd::silu_mul_back(dgate, dup, dact, gate, up);
}

/// `out[j] = x · rows[j]`, `rows` `[out.len(), x.len()]` row-major.
pub(super) fn dots(out: &mut [f32], x: &[f32], rows: &[f32]) {
    simd::dots(out, x, rows);
}

/// `out = Σ_t p[t]·rows[t]`, `rows` `[p.len(), out.len()]` row-major.
pub(super) fn weighted_rows(out: &mut [f32], p: &[f32], rows: &[f32]) {
    simd::weighted_rows(out, p, rows);
}

/// [`weighted_rows`] for several heads over the same rows: `out[j] = Σ_t p[j][t]·rows[t]`,
/// `out` `[heads, d]`, `p` `[heads, rows]`; the same values as each head's `weighted_rows`
/// (each element a product then a sum, rows in turn), each row read once for every head.
pub(super) fn weighted_rows_heads(out: &mut [f32], p: &[f32], rows: &[f32], d: usize) {
    let (heads, n) = (out.len() / d, rows.len() / d);
    #[cfg(target_arch = "x86_64")]
    if d.is_multiple_of(16) && d <= 128 && heads <= 4 && wide::available() {
        // SAFETY: `available()`: the CPU has AVX-512F; the shapes are checked above.
        unsafe { wide::weighted_rows_heads(out, &p[..heads * n], rows, d) };
        return;
    }
    for (out, p) in out.chunks_exact_mut(d).zip(p.chunks_exact(n)) {
        weighted_rows(out, p, rows);
    }
}

/// Kernels for AVX-512F, chosen at run time.
#[cfg(target_arch = "x86_64")]
mod wide {
    use std::arch::x86_64::*;

    /// Whether this CPU runs them.
    pub(super) fn available() -> bool {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| std::is_x86_feature_detected!("avx512f"))
    }

    /// [`super::weighted_rows_heads`] for `d` a multiple of 16 up to 128 and up to 4 heads.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weighted_rows_heads(out: &mut [f32], p: &[f32], rows: &[f32], d: usize) {
        const HEADS: usize = 4;
        const CHUNKS: usize = 8;
        let (heads, chunks) = (out.len() / d, d / 16);
        let n = p.len() / heads;
        assert!(heads <= HEADS && chunks <= CHUNKS && rows.len() >= n * d && p.len() == heads * n);
        let mut acc = [[_mm512_setzero_ps(); CHUNKS]; HEADS];
        for t in 0..n {
            // SAFETY: row `t` holds `d = 16·chunks` values (checked above).
            let row = unsafe { rows.as_ptr().add(t * d) };
            for (j, acc) in acc.iter_mut().enumerate().take(heads) {
                let w = _mm512_set1_ps(p[j * n + t]);
                for (c, acc) in acc.iter_mut().enumerate().take(chunks) {
                    // SAFETY: as above.
                    let v = unsafe { _mm512_loadu_ps(row.add(16 * c)) };
                    *acc = _mm512_add_ps(*acc, _mm512_mul_ps(w, v));
                }
            }
        }
        for (j, acc) in acc.iter().enumerate().take(heads) {
            for (c, acc) in acc.iter().enumerate().take(chunks) {
                // SAFETY: `out` holds `heads · d` values (its length defines `heads`).
                unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(j * d + 16 * c), *acc) };
            }
        }
    }
}

/// Softmax of `row · scale` in place.
pub(super) fn softmax(row: &mut [f32], scale: f32) {
    simd::softmax(row, scale);
}

/// The loops, each compiled for the baseline and for AVX2+FMA.
mod simd {
    use kailin_core::simd::{avx2_fma, exp, sum};

    macro_rules! dispatch {
        ($(#[$doc:meta])* fn $name:ident / $fast:ident ($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn $fast($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }

            $(#[$doc])*
            pub(crate) fn $name($($arg: $ty),*) $(-> $ret)? {
                #[cfg(target_arch = "x86_64")]
                if avx2_fma() {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { $fast($($arg),*) };
                }
                body($($arg),*)
            }
        };
    }

    pub(super) use self::add::add;
    pub(super) use self::dots::dots;
    pub(super) use self::grad::scaled_softmax_neg;
    pub(super) use self::lse::log_sum_exp;
    pub(super) use self::rms::rms_norm;
    pub(super) use self::silu::silu_mul;
    pub(super) use self::silu_back::silu_mul_back;
    pub(super) use self::soft::softmax;
    pub(super) use self::weighted::weighted_rows;

    mod add {
        use super::*;
        dispatch! {
            /// `x += y`.
            fn add / add_avx2(x: &mut [f32], y: &[f32]) {
                for (x, y) in x.iter_mut().zip(y) {
                    *x += y;
                }
            }
        }
    }

    mod dots {
        use super::*;
        dispatch! {
            /// `out[j] = x · rows[j]`, `rows` `[out.len(), x.len()]` row-major.
            fn dots / dots_avx2(out: &mut [f32], x: &[f32], rows: &[f32]) {
                for (o, row) in out.iter_mut().zip(rows.chunks_exact(x.len())) {
                    *o = kailin_core::simd::dot(x, row);
                }
            }
        }
    }

    mod weighted {
        use super::*;
        dispatch! {
            /// `out = Σ_t p[t]·rows[t]`, `rows` `[p.len(), out.len()]` row-major, rows in turn.
            fn weighted_rows / weighted_rows_avx2(out: &mut [f32], p: &[f32], rows: &[f32]) {
                out.fill(0.0);
                for (&p, row) in p.iter().zip(rows.chunks_exact(out.len())) {
                    for (o, v) in out.iter_mut().zip(row) {
                        *o += p * v;
                    }
                }
            }
        }
    }

    mod lse {
        use super::*;
        dispatch! {
            /// `ln Σ e^row` (`-∞` for an empty row).
            fn log_sum_exp / log_sum_exp_avx2(row: &[f32]) -> f32 {
                let m = kailin_core::simd::max(row);
                if !m.is_finite() {
                    return m;
                }
                let mut acc = [0f32; 8];
                let chunks = row.chunks_exact(8);
                let rest: f32 = chunks.remainder().iter().map(|&v| exp(v - m)).sum();
                for c in chunks {
                    for i in 0..8 {
                        acc[i] += exp(c[i] - m);
                    }
                }
                m + (acc.iter().sum::<f32>() + rest).ln()
            }
        }
    }

    mod rms {
        use super::*;
        dispatch! {
            /// `dst = src / √(mean(src²) + eps) · gamma`.
            fn rms_norm / rms_norm_avx2(dst: &mut [f32], src: &[f32], gamma: &[f32], eps: f32) {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s * s;
                }
                let inv = 1.0 / (sum(dst) / src.len() as f32 + eps).sqrt();
                for ((d, s), g) in dst.iter_mut().zip(src).zip(gamma) {
                    *d = s * inv * g;
                }
            }
        }
    }

    mod silu {
        use super::*;
        dispatch! {
            /// `act = gate / (1 + e^−gate) · up`.
            fn silu_mul / silu_mul_avx2(act: &mut [f32], gate: &[f32], up: &[f32]) {
                for ((a, &g), &u) in act.iter_mut().zip(gate).zip(up) {
                    *a = g / (1.0 + exp(-g)) * u;
                }
            }
        }
    }

    mod silu_back {
        use super::*;
        dispatch! {
            /// `dgate = dact·up·σ·(1 + gate·(1 − σ))`, `dup = dact·gate·σ`, with `σ = σ(gate)`.
            fn silu_mul_back / silu_mul_back_avx2(dgate: &mut [f32], dup: &mut [f32], dact: &[f32], gate: &[f32], up: &[f32]) {
                let rows = dgate.iter_mut().zip(dup.iter_mut()).zip(dact).zip(gate).zip(up);
                for ((((dg, du), &da), &g), &u) in rows {
                    let s = 1.0 / (1.0 + exp(-g));
                    *dg = da * u * s * (1.0 + g * (1.0 - s));
                    *du = da * g * s;
                }
            }
        }
    }

    mod soft {
        use super::*;
        dispatch! {
            /// Softmax of `row · scale`, in place.
            fn softmax / softmax_avx2(row: &mut [f32], scale: f32) {
                kailin_core::simd::softmax(row, scale);
            }
        }
    }

    mod grad {
        use super::*;
        dispatch! {
            /// `z = −c·e^(z − lse)`, in place.
            fn scaled_softmax_neg / scaled_softmax_neg_avx2(z: &mut [f32], lse: f32, c: f32) {
                for v in z.iter_mut() {
                    *v = -c * exp(*v - lse);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_rows_of_several_heads_equal_each_heads_alone_bit_for_bit() {
        for (heads, d, n) in [(3, 64, 37), (1, 16, 1), (4, 128, 5), (2, 24, 9), (5, 32, 3)] {
            let rows: Vec<f32> = (0..n * d).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 3.0).collect();
            let p: Vec<f32> = (0..heads * n).map(|i| (i * 104_729 % 997) as f32 / 997.0).collect();
            let mut got = vec![f32::NAN; heads * d];
            weighted_rows_heads(&mut got, &p, &rows, d);
            for j in 0..heads {
                let mut want = vec![f32::NAN; d];
                weighted_rows(&mut want, &p[j * n..(j + 1) * n], &rows);
                assert_eq!(got[j * d..(j + 1) * d], want[..], "{heads} heads of {d}, {n} rows: head {j}");
            }
        }
    }

    fn proj(input: usize, output: usize, bias: bool) -> Proj {
        let wt = (0..input * output).map(|i| ((i * 37 % 101) as f32 - 50.0) / 70.0).collect();
        let b = bias.then(|| (0..output).map(|i| i as f32 / 10.0 - 1.0).collect());
        Proj { wt, b, input, output, q: None }
    }

    fn reference(x: &[f32], p: &Proj, rows: usize) -> Vec<f64> {
        let mut out = vec![0f64; rows * p.output];
        for r in 0..rows {
            for c in 0..p.output {
                let mut acc = p.b.as_ref().map_or(0.0, |b| f64::from(b[c]));
                for k in 0..p.input {
                    acc += f64::from(x[r * p.input + k]) * f64::from(p.wt[c * p.input + k]);
                }
                out[r * p.output + c] = acc;
            }
        }
        out
    }

    #[test]
    fn matmul_matches_f64_for_one_row_and_many_with_and_without_bias() {
        for (rows, bias) in [(1, true), (1, false), (5, true), (3, false)] {
            let p = proj(19, 150, bias);
            let x: Vec<f32> = (0..rows * 19).map(|i| ((i * 13 % 17) as f32 - 8.0) / 9.0).collect();
            let mut got = vec![f32::NAN; rows * 150];
            matmul(&mut got, &x, &p, rows);
            for (g, w) in got.iter().zip(reference(&x, &p, rows)) {
                assert!((f64::from(*g) - w).abs() < 1e-4, "{g} vs {w} (rows {rows}, bias {bias})");
            }
        }
    }

    #[test]
    fn norm_rope_and_silu_match_plain_formulas() {
        let src: Vec<f32> = (0..22).map(|i| (i as f32 - 9.5) / 3.0).collect();
        let gamma: Vec<f32> = (0..11).map(|i| 0.5 + i as f32 / 10.0).collect();
        let mut dst = vec![0f32; 22];
        rms_norm_rows(&mut dst, &src, &gamma, 1e-5);
        for (row, out) in src.chunks(11).zip(dst.chunks(11)) {
            let ms: f64 = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / 11.0;
            for ((&s, &g), &d) in row.iter().zip(&gamma).zip(out) {
                let want = f64::from(s) / (ms + 1e-5).sqrt() * f64::from(g);
                assert!((f64::from(d) - want).abs() < 1e-5);
            }
        }
        let mut head = vec![1.0, 2.0, 3.0, 4.0];
        let angle = [0.3f32, -1.1];
        let (cos, sin): (Vec<f32>, Vec<f32>) = angle.iter().map(|a| (a.cos(), a.sin())).unzip();
        rope(&mut head, &cos, &sin);
        let want = [
            1.0 * 0.3f32.cos() - 3.0 * 0.3f32.sin(),
            2.0 * (-1.1f32).cos() - 4.0 * (-1.1f32).sin(),
            3.0 * 0.3f32.cos() + 1.0 * 0.3f32.sin(),
            4.0 * (-1.1f32).cos() + 2.0 * (-1.1f32).sin(),
        ];
        for (g, w) in head.iter().zip(want) {
            assert!((g - w).abs() < 1e-6);
        }
        let gate_up: Vec<f32> = (0..18).map(|i| (i as f32 - 9.0) / 2.0).collect();
        let mut act = vec![0f32; 9];
        silu_mul_rows(&mut act, &gate_up, 9);
        for (i, a) in act.iter().enumerate() {
            let g = f64::from(gate_up[i]);
            let want = g / (1.0 + (-g).exp()) * f64::from(gate_up[9 + i]);
            assert!((f64::from(*a) - want).abs() < 1e-5, "{a} vs {want}");
        }
        let row: Vec<f32> = (0..37).map(|i| (i * 11 % 23) as f32 / 2.0 - 6.0).collect();
        let want = row.iter().map(|&v| f64::from(v).exp()).sum::<f64>().ln();
        assert!((f64::from(log_sum_exp(&row)) - want).abs() < 1e-5);
    }

    /// The element-wise backward passes against their derivatives in f64, on rows longer
    /// than a vector and not a multiple of it.
    #[test]
    fn backward_loops_match_their_derivatives() {
        let f = |i: usize, m: usize| ((i * m % 29) as f32 - 14.0) / 3.0;
        let gate: Vec<f32> = (0..37).map(|i| f(i, 7)).collect();
        let up: Vec<f32> = (0..37).map(|i| f(i, 11)).collect();
        let dact: Vec<f32> = (0..37).map(|i| f(i, 5) / 4.0).collect();
        let (mut dgate, mut dup) = (vec![f32::NAN; 37], vec![f32::NAN; 37]);
        silu_mul_back(&mut dgate, &mut dup, &dact, &gate, &up);
        for i in 0..37 {
            let (g, u, d) = (f64::from(gate[i]), f64::from(up[i]), f64::from(dact[i]));
            let s = 1.0 / (1.0 + (-g).exp());
            let (want_g, want_u) = (d * u * (s + g * s * (1.0 - s)), d * g * s);
            assert!((f64::from(dgate[i]) - want_g).abs() < 1e-5 * want_g.abs().max(1.0), "d gate {i}");
            assert!((f64::from(dup[i]) - want_u).abs() < 1e-5 * want_u.abs().max(1.0), "d up {i}");
        }
        let z: Vec<f32> = (0..37).map(|i| f(i, 13)).collect();
        let lse = log_sum_exp(&z);
        let mut grad = z.clone();
        log_softmax_grad(&mut grad, lse, -0.5, 4);
        let norm: f64 = z.iter().map(|&v| f64::from(v).exp()).sum();
        for (i, (&g, &v)) in grad.iter().zip(&z).enumerate() {
            let want = -0.5 * (f64::from(u8::from(i == 4)) - f64::from(v).exp() / norm);
            assert!((f64::from(g) - want).abs() < 1e-6, "d z {i}: {g} vs {want}");
        }
    }
}
