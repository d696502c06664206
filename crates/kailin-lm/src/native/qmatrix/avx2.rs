//! AVX2 + FMA kernels for the repacked blocks ([`Packed::Q4`], [`Packed::Q8`]): one weight row
//! against 1–4 activation rows, the row's blocks unpacked once for all of them. Every
//! activation row goes through the same operations in the same order whatever their number.

use std::arch::x86_64::*;

use super::{ActRow, ActRows, Packed, prefetch_ahead};

#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY (callers): AVX is enabled on every function that inlines this.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
    }
}

/// Weight rows `w` (`w.len() / row_bytes` rows laid out as `packed`, not [`Packed::File`])
/// against activation rows `acts` (1 to 4 of them): `out[k·stride + j]` is weight row `j`
/// times activation row `acts.start + k`.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn band(
    packed: Packed,
    w: &[u8],
    row_bytes: usize,
    q: &ActRows,
    acts: std::ops::Range<usize>,
    out: &mut [f32],
    stride: usize,
) {
    let r0 = acts.start;
    // SAFETY: the caller's CPU has the kernels' features.
    unsafe {
        match (packed, acts.len()) {
            (Packed::Q4, 1) => rows::<1, true>(w, row_bytes, q, r0, out, stride),
            (Packed::Q4, 2) => rows::<2, true>(w, row_bytes, q, r0, out, stride),
            (Packed::Q4, 3) => rows::<3, true>(w, row_bytes, q, r0, out, stride),
            (Packed::Q4, 4) => rows::<4, true>(w, row_bytes, q, r0, out, stride),
            (Packed::Q8, 1) => rows::<1, false>(w, row_bytes, q, r0, out, stride),
            (Packed::Q8, 2) => rows::<2, false>(w, row_bytes, q, r0, out, stride),
            (Packed::Q8, 3) => rows::<3, false>(w, row_bytes, q, r0, out, stride),
            (Packed::Q8, 4) => rows::<4, false>(w, row_bytes, q, r0, out, stride),
            (packed, n) => unreachable!("no AVX2 kernel for {packed:?} × {n} rows"),
        }
    }
}

/// Blocks whose scale products are made at once, in a buffer on the stack.
const CHUNK: usize = 64;

/// `R` activation rows against one weight row of [`Packed::Q4`] (`Q4 = true`) or
/// [`Packed::Q8`] blocks. The blocks' scales times the activations' are made for a chunk of
/// blocks at a time (vectorised, outside the block loop); the Q4 minimums' part is one
/// vectorised dot with the activations' block sums. Each row keeps two accumulators (even
/// and odd blocks), so that one row alone is not one serial chain of FMAs.
#[target_feature(enable = "avx2,fma")]
unsafe fn rows<const R: usize, const Q4: bool>(
    band: &[u8],
    row_bytes: usize,
    q: &ActRows,
    r0: usize,
    out: &mut [f32],
    stride: usize,
) {
    let bb = if Q4 { 24 } else { 36 };
    let nb = row_bytes / bb;
    let a: [ActRow<'_>; R] = std::array::from_fn(|k| q.row(r0 + k));
    for a in &a {
        assert!(a.d.len() >= nb && a.ds.len() >= nb && a.q.len() >= nb * 32);
    }
    let width = band.len() / row_bytes;
    assert!(row_bytes == nb * bb && band.len() == width * row_bytes);
    assert!(width == 0 || out.len() >= (R - 1) * stride + width);
    // SAFETY: AVX2 and FMA (the caller); every read is within the lengths just checked: each
    // row holds `nb` f32 scales, (Q4) `nb` f32 minimums, then `nb` blocks of 16 or 32 bytes.
    unsafe {
        let mask = _mm256_set1_epi16(0x0f);
        let mut sc = [[0f32; CHUNK]; R];
        for (j, w) in band.chunks_exact(row_bytes).enumerate() {
            prefetch_ahead(w.as_ptr(), row_bytes);
            let scales = w.as_ptr().cast::<f32>();
            let quants = w.as_ptr().add(if Q4 { 8 * nb } else { 4 * nb });
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for c0 in (0..nb).step_by(CHUNK) {
                let len = CHUNK.min(nb - c0);
                for (sc, a) in sc.iter_mut().zip(&a) {
                    for (i, s) in sc[..len].iter_mut().enumerate() {
                        *s = scales.add(c0 + i).read_unaligned() * *a.d.get_unchecked(c0 + i);
                    }
                }
                for b in c0..c0 + len {
                    let i = b - c0;
                    let (w0, w1) = if Q4 {
                        let v = _mm256_cvtepu8_epi16(_mm_loadu_si128(quants.add(16 * b).cast()));
                        (_mm256_and_si256(v, mask), _mm256_srli_epi16::<4>(v))
                    } else {
                        let blk = quants.add(32 * b);
                        (
                            _mm256_cvtepi8_epi16(_mm_loadu_si128(blk.cast())),
                            _mm256_cvtepi8_epi16(_mm_loadu_si128(blk.add(16).cast())),
                        )
                    };
                    for k in 0..R {
                        let x = a[k].q.as_ptr().add(b * 32);
                        let p = _mm256_add_epi32(
                            _mm256_madd_epi16(w0, _mm256_loadu_si256(x.cast())),
                            _mm256_madd_epi16(w1, _mm256_loadu_si256(x.add(16).cast())),
                        );
                        let s = _mm256_broadcast_ss(&sc[k][i]);
                        acc[k][b & 1] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(p), acc[k][b & 1]);
                    }
                }
            }
            for k in 0..R {
                let mut total = hsum(_mm256_add_ps(acc[k][0], acc[k][1]));
                if Q4 {
                    // Σ m_b · d_b·Σq_b over the blocks: eight at a time, then the rest.
                    let mins = scales.add(nb);
                    let mut v = _mm256_setzero_ps();
                    let whole = nb / 8 * 8;
                    for b in (0..whole).step_by(8) {
                        v = _mm256_fmadd_ps(_mm256_loadu_ps(mins.add(b)), _mm256_loadu_ps(a[k].ds.as_ptr().add(b)), v);
                    }
                    total += hsum(v);
                    for b in whole..nb {
                        total += mins.add(b).read_unaligned() * *a[k].ds.get_unchecked(b);
                    }
                }
                *out.get_unchecked_mut(k * stride + j) = total;
            }
        }
    }
}
