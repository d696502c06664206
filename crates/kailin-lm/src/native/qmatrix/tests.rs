//! The blocks' products against dequantise-then-multiply, the AVX2 kernels against the
//! portable loops, batches against rows alone.

use super::*;

/// Random-looking blocks of `kind` with sane scales (f16 ≈ 0.01–0.03).
fn blocks(kind: GgmlType, rows: usize, cols: usize, seed: u64) -> QMatrix {
    let n = rows * cols / kind.block_len() * kind.block_bytes();
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut data: Vec<u8> = (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect();
    // f16 0x2000–0x27ff is 0.0078–0.03: put one wherever a block keeps an f16 scale.
    let halves: &[usize] = match kind {
        GgmlType::Q4_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q6K => &[208],
        _ => &[],
    };
    for blk in data.chunks_exact_mut(kind.block_bytes()) {
        for &h in halves {
            blk[h + 1] = 0x20 | (blk[h + 1] & 0x07);
        }
    }
    QMatrix::new(kind, rows, cols, data).unwrap()
}

impl QMatrix {
    /// Random-looking blocks of `kind` (see `blocks`): weights for the model's tests.
    pub(crate) fn random(kind: GgmlType, rows: usize, cols: usize, seed: u64) -> Self {
        blocks(kind, rows, cols, seed)
    }
}

#[test]
fn quantised_products_equal_dequantise_then_multiply_within_the_activations_rounding() {
    let kinds = [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K];
    // One row (written in place) and several (by bands).
    for (kind, n) in kinds.into_iter().flat_map(|k| [(k, 1), (k, 3)]) {
        let (rows, cols) = (70, 512);
        let m = blocks(kind, rows, cols, kind as u64 + 7);
        let w = m.dequantized();
        let x: Vec<f32> = (0..n * cols).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 2.0).collect();
        let bias: Vec<f32> = (0..rows).map(|i| i as f32 / 50.0).collect();
        for fast in [false, true] {
            if fast && !fast_kernels() {
                continue;
            }
            let mut got = vec![f32::NAN; n * rows];
            if fast {
                m.product(&mut got, &x, Some(&bias), n);
            } else {
                let q = ActRows::new(&x, n, cols);
                for r in 0..n {
                    for o in 0..rows {
                        got[r * rows + o] = portable::dot(m.packed, m.row(o), &q, r) + bias[o];
                    }
                }
            }
            for r in 0..n {
                for o in 0..rows {
                    let wr = &w[o * cols..(o + 1) * cols];
                    let xr = &x[r * cols..(r + 1) * cols];
                    let exact: f64 =
                        wr.iter().zip(xr).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>() + f64::from(bias[o]);
                    // The activations' rounding: at most half a step (amax/32767 ≤
                    // 1/32767) per element, times |w|; a sum of 512 such errors.
                    let scale: f64 = wr.iter().map(|&a| f64::from(a).abs()).sum::<f64>() / 32767.0;
                    let err = (f64::from(got[r * rows + o]) - exact).abs();
                    assert!(
                        err < 0.5 * scale + 1e-5 * exact.abs().max(1.0),
                        "{kind:?} fast {fast}: row {r} out {o}: {} vs {exact} ({scale})",
                        got[r * rows + o]
                    );
                }
            }
        }
    }
}

#[test]
fn fast_and_portable_kernels_agree_to_rounding() {
    if !fast_kernels() {
        return;
    }
    // 256 columns: whole pairs of blocks; 96 and 2,112: an odd block left (AVX-512), and more
    // blocks than one chunk of scales (2,112 = 66 blocks).
    let shapes =
        [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0].into_iter().flat_map(|k| [(k, 256), (k, 96), (k, 2112)]);
    for (kind, cols) in shapes {
        let m = blocks(kind, 8, cols, 3);
        let x: Vec<f32> = (0..3 * cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let q = ActRows::new(&x, 3, cols);
        for o in 0..8 {
            for r in 0..3 {
                let want = portable::dot(m.packed, m.row(o), &q, r);
                let close = |got: f32| (got - want).abs() <= 1e-5 * (1.0 + want.abs());
                // The best kernel for this CPU, one and three rows at once.
                let (mut one, mut three) = ([0f32], [0f32; 3]);
                m.band(o..o + 1, &q, r, 1, &mut one, 0);
                m.band(o..o + 1, &q, 0, 3, &mut three, 1);
                assert!(close(one[0]) && close(three[r]), "{kind:?} × {cols}: {one:?} {three:?} vs {want}");
                assert_eq!(one[0], three[r], "{kind:?}: a row alone equals it among others");
                // And AVX2's, which a CPU with AVX-512 would not run otherwise.
                #[cfg(target_arch = "x86_64")]
                {
                    let mut a = [0f32];
                    // SAFETY: `fast_kernels()` checked above.
                    unsafe { super::avx2::band(m.packed, m.row(o), m.row_bytes, &q, r..r + 1, &mut a, 0) };
                    assert!(close(a[0]), "{kind:?} × {cols} (AVX2): {a:?} vs {want}");
                }
            }
        }
    }
}

#[test]
fn bad_shapes_and_types_are_refused_and_rows_reorder_and_stack() {
    assert!(QMatrix::new(GgmlType::F32, 1, 32, vec![0; 128]).is_err());
    assert!(QMatrix::new(GgmlType::Q8_0, 1, 48, vec![0; 51]).is_err());
    assert!(QMatrix::new(GgmlType::Q8_0, 2, 32, vec![0; 34]).is_err());
    let m = blocks(GgmlType::Q8_0, 3, 32, 1);
    let r = m.reordered(&[2, 0, 1]);
    assert_eq!(r.dequantized()[..32], m.dequantized()[64..]);
    let s = QMatrix::stacked(&[&m, &r]).unwrap();
    assert_eq!(s.rows(), 6);
    assert_eq!(s.dequantized()[96..], r.dequantized()[..]);
    assert!(QMatrix::stacked(&[&m, &blocks(GgmlType::Q4_0, 3, 32, 1)]).is_none());
}

/// `product` of the `n` rows of `x` at once (returned), asserted equal bit for bit to each
/// row's product alone.
fn each_row_alone_equals_the_batch(
    kind: GgmlType,
    rows: usize,
    cols: usize,
    n: usize,
    x: &[f32],
    product: impl Fn(&mut [f32], &[f32], usize),
) -> Vec<f32> {
    let mut all = vec![f32::NAN; n * rows];
    product(&mut all, x, n);
    for r in 0..n {
        let mut one = vec![f32::NAN; rows];
        product(&mut one, &x[r * cols..(r + 1) * cols], 1);
        assert_eq!(one, all[r * rows..(r + 1) * rows], "{kind:?} row {r}");
    }
    all
}

#[test]
fn a_batchs_rows_equal_the_rows_alone_bit_for_bit() {
    for kind in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q6K] {
        let (rows, cols, n) = (70, 256, 7);
        let m = blocks(kind, rows, cols, 11);
        let x: Vec<f32> = (0..n * cols).map(|i| ((i as f32) * 0.61).cos() * (1.0 + (i % 5) as f32)).collect();
        each_row_alone_equals_the_batch(kind, rows, cols, n, &x, |dst, x, n| m.product(dst, x, None, n));
    }
}

#[test]
fn tiled_products_equal_dequantise_then_multiply_within_the_activations_rounding() {
    let kinds = [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K];
    // 300 rows: two whole bands and a partial one.
    let (rows, cols) = (300, 256);
    for (kind, n) in kinds.into_iter().flat_map(|k| [(k, 5), (k, 16), (k, 37)]) {
        let m = blocks(kind, rows, cols, kind as u64 + 3);
        let w = m.dequantized();
        let x: Vec<f32> = (0..n * cols).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 2.0).collect();
        let bias: Vec<f32> = (0..rows).map(|i| i as f32 / 50.0 - 3.0).collect();
        let mut got = vec![f32::NAN; n * rows];
        m.product_tiled(&mut got, &x, Some(&bias), n);
        // Where the side-by-side kernel runs, the activations are two terms of bytes: each
        // value rounded by at most half a step of its block's `amax/(127·254)`, times its weight.
        let bytes = m.lanes().is_some();
        for r in 0..n {
            let xr = &x[r * cols..(r + 1) * cols];
            let half_step: Vec<f64> = xr
                .chunks_exact(QK)
                .flat_map(|b| {
                    let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                    std::iter::repeat_n(if bytes { f64::from(amax) / (2.0 * 127.0 * 254.0) } else { 0.0 }, QK)
                })
                .collect();
            for o in 0..rows {
                let wr = &w[o * cols..(o + 1) * cols];
                let terms = wr.iter().zip(xr).map(|(&a, &b)| f64::from(a) * f64::from(b));
                let exact = terms.clone().sum::<f64>() + f64::from(bias[o]);
                let size = terms.map(f64::abs).sum::<f64>() + f64::from(bias[o]).abs();
                let rounding: f64 = wr.iter().zip(&half_step).map(|(&a, h)| f64::from(a).abs() * h).sum();
                let err = (f64::from(got[r * rows + o]) - exact).abs();
                assert!(
                    err <= rounding + 1e-5 * size.max(1.0),
                    "{kind:?} × {n} rows: row {r} out {o}: {} vs {exact}",
                    got[r * rows + o]
                );
            }
        }
    }
}

#[test]
fn tiled_rows_side_by_side_equal_the_rows_alone_bit_for_bit() {
    // The repacked layouts' kernel (where this CPU has it) computes each output of each row
    // from that row's bytes alone, in a fixed order: neither the rows beside it nor the cut of
    // the outputs changes it.
    if !lanes::available() {
        return;
    }
    for kind in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
        let (rows, cols, n) = (200, 96, 21);
        let m = blocks(kind, rows, cols, 5);
        let x: Vec<f32> = (0..n * cols).map(|i| ((i as f32) * 0.37).sin() * (1.0 + (i % 3) as f32)).collect();
        let all =
            each_row_alone_equals_the_batch(kind, rows, cols, n, &x, |dst, x, n| m.product_tiled(dst, x, None, n));
        let (mut band, range) = (vec![f32::NAN; n * 48], 32..80);
        // SAFETY: `band` holds `n` rows of 48 = `range.len()` outputs.
        unsafe { m.tile_range(band.as_mut_ptr(), 48, &m.batch_rows(&x, n), range.clone()) };
        for r in 0..n {
            assert_eq!(
                band[r * 48..(r + 1) * 48],
                all[r * rows + range.start..r * rows + range.end],
                "{kind:?} row {r}"
            );
        }
    }
}
