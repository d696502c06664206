//! AVX-512 (F, BW, VNNI) kernel for the repacked 4-bit blocks ([`Packed::Q4`]): as `avx2`'s,
//! one weight row against 1–4 activation rows with the row's blocks unpacked once for all of
//! them, but two blocks at a time in 512-bit registers, and each block's integer dot product
//! one `vpdpwssd` per half instead of two `madd`s and an add. A row of an odd number of blocks
//! takes its last block through the 256-bit form of the same steps. Every activation row goes
//! through the same operations in the same order whatever their number.

use std::arch::x86_64::*;

use super::{ActRow, ActRows, prefetch_ahead};

/// Whether this CPU runs this kernel.
pub(super) fn available() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
    })
}

/// Weight rows `w` (`w.len() / row_bytes` rows of [`Packed::Q4`](super::Packed::Q4) blocks)
/// against activation rows `acts` (1 to 4): `out[k·stride + j]` is weight row `j` times
/// activation row `acts.start + k`.
///
/// # Safety
/// The CPU must have what [`available`] checks.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
pub(super) unsafe fn band_q4(
    w: &[u8],
    row_bytes: usize,
    q: &ActRows,
    acts: std::ops::Range<usize>,
    out: &mut [f32],
    stride: usize,
) {
    let r0 = acts.start;
    // SAFETY: the caller's CPU has the kernel's features.
    unsafe {
        match acts.len() {
            1 => rows::<1>(w, row_bytes, q, r0, out, stride),
            2 => rows::<2>(w, row_bytes, q, r0, out, stride),
            3 => rows::<3>(w, row_bytes, q, r0, out, stride),
            4 => rows::<4>(w, row_bytes, q, r0, out, stride),
            n => unreachable!("no AVX-512 kernel for {n} rows"),
        }
    }
}

/// Blocks whose scale products are made at once, in a buffer on the stack.
const CHUNK: usize = 64;

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn rows<const R: usize>(band: &[u8], row_bytes: usize, q: &ActRows, r0: usize, out: &mut [f32], stride: usize) {
    let nb = row_bytes / 24;
    let a: [ActRow<'_>; R] = std::array::from_fn(|k| q.row(r0 + k));
    for a in &a {
        assert!(a.d.len() >= nb && a.ds.len() >= nb && a.q.len() >= nb * 32);
    }
    let width = band.len() / row_bytes;
    assert!(row_bytes == nb * 24 && band.len() == width * row_bytes);
    assert!(width == 0 || out.len() >= (R - 1) * stride + width);
    // SAFETY: the features (the caller); every read is within the lengths just checked: each
    // row holds `nb` f32 scales, `nb` f32 minimums, then `nb` blocks of 16 bytes; the scale
    // buffer is read 8 floats from an index below CHUNK, within its CHUNK + 8.
    unsafe {
        let mask = _mm512_set1_epi16(0x0f);
        let mask256 = _mm256_set1_epi16(0x0f);
        // Lanes 0–7 take a pair's first scale, lanes 8–15 its second.
        let pair = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        let mut sc = [[0f32; CHUNK + 8]; R];
        for (j, w) in band.chunks_exact(row_bytes).enumerate() {
            prefetch_ahead(w.as_ptr(), row_bytes);
            let scales = w.as_ptr().cast::<f32>();
            let quants = w.as_ptr().add(8 * nb);
            let mut acc = [[_mm512_setzero_ps(); 2]; R];
            let mut tail = [_mm256_setzero_ps(); R];
            for c0 in (0..nb).step_by(CHUNK) {
                let len = CHUNK.min(nb - c0);
                for (sc, a) in sc.iter_mut().zip(&a) {
                    for (i, s) in sc[..len].iter_mut().enumerate() {
                        *s = scales.add(c0 + i).read_unaligned() * *a.d.get_unchecked(c0 + i);
                    }
                }
                let pairs = len / 2 * 2;
                for i in (0..pairs).step_by(2) {
                    let b = c0 + i;
                    // Blocks b and b + 1: low nibbles (elements 0–15 of each), high (16–31).
                    let v = _mm512_cvtepu8_epi16(_mm256_loadu_si256(quants.add(16 * b).cast()));
                    let (w0, w1) = (_mm512_and_si512(v, mask), _mm512_srli_epi16::<4>(v));
                    for k in 0..R {
                        let x = a[k].q.as_ptr().add(b * 32);
                        let (xa, xb) = (_mm512_loadu_si512(x.cast()), _mm512_loadu_si512(x.add(32).cast()));
                        // Elements 0–15 of both blocks, then 16–31 of both.
                        let lo = _mm512_shuffle_i64x2::<0x44>(xa, xb);
                        let hi = _mm512_shuffle_i64x2::<0xEE>(xa, xb);
                        let p = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(_mm512_setzero_si512(), w0, lo), w1, hi);
                        let s = _mm512_permutexvar_ps(pair, _mm512_castps256_ps512(_mm256_loadu_ps(&sc[k][i])));
                        acc[k][(i / 2) & 1] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(p), acc[k][(i / 2) & 1]);
                    }
                }
                if pairs < len {
                    let (i, b) = (pairs, c0 + pairs);
                    let v = _mm256_cvtepu8_epi16(_mm_loadu_si128(quants.add(16 * b).cast()));
                    let (w0, w1) = (_mm256_and_si256(v, mask256), _mm256_srli_epi16::<4>(v));
                    for k in 0..R {
                        let x = a[k].q.as_ptr().add(b * 32);
                        let p = _mm256_dpwssd_epi32(_mm256_setzero_si256(), w0, _mm256_loadu_si256(x.cast()));
                        let p = _mm256_dpwssd_epi32(p, w1, _mm256_loadu_si256(x.add(16).cast()));
                        tail[k] = _mm256_fmadd_ps(_mm256_set1_ps(sc[k][i]), _mm256_cvtepi32_ps(p), tail[k]);
                    }
                }
            }
            for k in 0..R {
                let mut total = _mm512_reduce_add_ps(_mm512_add_ps(acc[k][0], acc[k][1]));
                total += _mm512_reduce_add_ps(_mm512_zextps256_ps512(tail[k]));
                // Σ m_b · d_b·Σq_b over the blocks: sixteen at a time, then the rest.
                let mins = scales.add(nb);
                let mut v = _mm512_setzero_ps();
                let whole = nb / 16 * 16;
                for b in (0..whole).step_by(16) {
                    v = _mm512_fmadd_ps(_mm512_loadu_ps(mins.add(b)), _mm512_loadu_ps(a[k].ds.as_ptr().add(b)), v);
                }
                total += _mm512_reduce_add_ps(v);
                for b in whole..nb {
                    total += mins.add(b).read_unaligned() * *a[k].ds.get_unchecked(b);
                }
                *out.get_unchecked_mut(k * stride + j) = total;
            }
        }
    }
}

/// One row of [`Packed::Q4`](super::Packed::Q4) blocks (`nb` of them) as f32, into `out`
/// (`32·nb` values): `w = d·q + m`, sixteen at a time.
///
/// # Safety
/// The CPU must have what [`available`] checks.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
pub(super) unsafe fn dequantize_q4(row: &[u8], nb: usize, out: &mut [f32]) {
    assert!(row.len() >= 24 * nb && out.len() >= 32 * nb);
    // SAFETY: the features (the caller); reads and writes within the lengths just checked.
    unsafe {
        let (d, m, qs) = (row.as_ptr().cast::<f32>(), row.as_ptr().add(4 * nb).cast::<f32>(), row.as_ptr().add(8 * nb));
        let mask = _mm512_set1_epi32(0x0f);
        for b in 0..nb {
            let v = _mm512_cvtepu8_epi32(_mm_loadu_si128(qs.add(16 * b).cast()));
            let (scale, min) = (_mm512_set1_ps(d.add(b).read_unaligned()), _mm512_set1_ps(m.add(b).read_unaligned()));
            let lo = _mm512_cvtepi32_ps(_mm512_and_si512(v, mask));
            let hi = _mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(v));
            let o = out.as_mut_ptr().add(32 * b);
            _mm512_storeu_ps(o, _mm512_fmadd_ps(scale, lo, min));
            _mm512_storeu_ps(o.add(16), _mm512_fmadd_ps(scale, hi, min));
        }
    }
}
