//! Every block layout, block by block, in plain integer arithmetic: the reference the AVX2
//! kernels are tested against, and the path on CPUs without them and for the K-quants.

use super::{ActRows, Packed, QK, f16_at, f32_at};
use crate::quant::{GgmlType, scale_min_k4};

/// `Σ w[i]·x[i]` over 32 unsigned weights and 32 signed activations, per half.
#[inline(always)]
fn idot(w: &[u8; 32], x: &[i16]) -> [i32; 2] {
    let half = |h: usize| (h * 16..h * 16 + 16).map(|i| i32::from(w[i]) * i32::from(x[i])).sum::<i32>();
    [half(0), half(1)]
}

/// One weight row (its blocks' bytes, laid out as `packed`) against activation row `r`.
pub(super) fn dot(packed: Packed, w: &[u8], rows: &ActRows, r: usize) -> f32 {
    let a = rows.row(r);
    let (d, sums, x) = (a.d, a.sums, a.q);
    let mut acc = 0f32;
    let mut u = [0u8; 32];
    match packed {
        Packed::Q4 => {
            let nb = w.len() / 24;
            for b in 0..nb {
                let qs = &w[8 * nb + 16 * b..][..16];
                for i in 0..16 {
                    (u[i], u[i + 16]) = (qs[i] & 0xf, qs[i] >> 4);
                }
                let [p, q] = idot(&u, &x[b * QK..]);
                acc += f32_at(w, 4 * b) * d[b] * (p + q) as f32 + f32_at(w, 4 * (nb + b)) * a.ds[b];
            }
        }
        Packed::Q8 => {
            let nb = w.len() / 36;
            for b in 0..nb {
                let dot: i32 = w[4 * nb + 32 * b..][..32]
                    .iter()
                    .zip(&x[b * QK..(b + 1) * QK])
                    .map(|(&w, &x)| i32::from(w as i8) * i32::from(x))
                    .sum();
                acc += f32_at(w, 4 * b) * d[b] * dot as f32;
            }
        }
        Packed::File(kind @ (GgmlType::Q4K | GgmlType::Q5K)) => {
            let bb = kind.block_bytes();
            for (sb, blk) in w.chunks_exact(bb).enumerate() {
                let (dw, dmin, scales) = (f16_at(blk, 0), f16_at(blk, 2), &blk[4..16]);
                let (qh, qs) =
                    if kind == GgmlType::Q4K { (&blk[..0], &blk[16..144]) } else { (&blk[16..48], &blk[48..176]) };
                for chunk in 0..4 {
                    let q = &qs[32 * chunk..32 * chunk + 32];
                    for (j, shift) in [(2 * chunk, 0), (2 * chunk + 1, 4)] {
                        for i in 0..32 {
                            let high = if qh.is_empty() { 0 } else { ((qh[i] >> j) & 1) << 4 };
                            u[i] = ((q[i] >> shift) & 0xf) | high;
                        }
                        let b = sb * 8 + j;
                        let (sc, m) = scale_min_k4(j, scales);
                        let [p, q] = idot(&u, &x[b * QK..]);
                        acc += dw * sc * d[b] * (p + q) as f32 - dmin * m * d[b] * (sums[b][0] + sums[b][1]) as f32;
                    }
                }
            }
        }
        Packed::File(GgmlType::Q6K) => {
            for (sb, blk) in w.chunks_exact(210).enumerate() {
                let (ql, qh, sc, dw) = (&blk[..128], &blk[128..192], &blk[192..208], f16_at(blk, 208));
                for half in 0..2 {
                    let (ql, qh, sc) = (&ql[64 * half..], &qh[32 * half..], &sc[8 * half..]);
                    // The four 32-element runs of this half: (low bits, their shift, high bits' shift).
                    for (k, (off, shift, hshift)) in
                        [(0, 0, 0), (32, 0, 2), (0, 4, 4), (32, 4, 6)].into_iter().enumerate()
                    {
                        for l in 0..32 {
                            u[l] = ((ql[l + off] >> shift) & 0xf) | (((qh[l] >> hshift) & 3) << 4);
                        }
                        let b = sb * 8 + half * 4 + k;
                        let dot = idot(&u, &x[b * QK..]);
                        for h in 0..2 {
                            let s = dw * f32::from(sc[2 * k + h] as i8);
                            acc += s * d[b] * (dot[h] - 32 * sums[b][h]) as f32;
                        }
                    }
                }
            }
        }
        Packed::File(kind) => unreachable!("QMatrix::new repacks or refuses {kind:?}"),
    }
    acc
}
