//! The repacked 4-bit and 8-bit blocks ([`Packed::Q4`], [`Packed::Q8`]) a second time, sixteen
//! output rows side by side ([`Lanes`]), for products of more than four rows (a batch's
//! decoding step, a prompt pass) on integer activations: one 512-bit register holds four
//! inputs' weights of sixteen outputs as bytes, and one `vpdpbusd` (AVX-512 VNNI) multiplies
//! them by four bytes of one activation row, broadcast, and adds them up — 64 products an
//! instruction, where an f32 FMA does 16, at the same rate here (two a cycle). Nothing is
//! unpacked to memory and nothing is packed again per call.
//!
//! Each activation row's block of 32 is two terms of bytes ([`quantise`]: a coarse one as
//! ggml's `Q8_0`, and what it left at 1/254 of its step), which round the activations as
//! finely as the 16-bit ones of `QMatrix::product` (up to four rows) do: bytes alone changed
//! SmolLM2's greedy answers (docs/benchmarks.md). A block's integer dot products are exact,
//! then scaled in f32 in a fixed order (blocks in turn), so a row's values do not depend on
//! how many rows share the call, how the outputs are cut, or the thread count.

use super::{Packed, QMatrix, f32_at};

/// Output rows side by side.
pub(super) const LANES: usize = 16;

/// Activation rows multiplied at once (the kernel's accumulators).
pub(super) const MAX_ROWS: usize = 16;

/// Values per block (activations and weights alike).
const QK: usize = 32;

/// Bytes of a group's block before its quantised values: sixteen f32 scales, then sixteen
/// f32 minimums (4-bit) or sixteen `i32` corrections (8-bit; see [`Lanes`]).
const HEAD: usize = 2 * 4 * LANES;

/// A matrix's blocks in groups of [`LANES`] output rows: group `g` holds, for each block `b`
/// in turn, the sixteen rows' scales, then (4-bit) their minimums or (8-bit) `−128` times the
/// sum of their quantised values, then the values four inputs at a time: for each quad `t`,
/// sixteen rows' four bytes, one 32-bit lane each. 4-bit: a row's byte `p` holds element `p`
/// in its low nibble and `p + 16` in its high one (as its block does), so quad `t` holds
/// elements `4t..4t + 4` low and `16 + 4t..` high; 8-bit: quad `t` holds elements `4t..4t + 4`.
/// Rows past the matrix's last (its last group's padding) are zeros.
#[derive(Debug, Clone)]
pub(super) struct Lanes {
    packed: Packed,
    nb: usize,
    groups: usize,
    data: Vec<u8>,
}

impl Lanes {
    /// `m`'s blocks side by side; `None` for a layout without such a kernel (the K-quants).
    pub(super) fn new(m: &QMatrix) -> Option<Self> {
        let nb = m.cols / QK;
        let (block, values) = (shape(m.packed)?, values(m.packed));
        let groups = m.rows.div_ceil(LANES);
        let mut data = vec![0u8; groups * nb * block];
        // A repacked row: its `nb` scales, (4-bit) `nb` minimums, then its quantised values.
        let scalars = if m.packed == Packed::Q4 { 2 } else { 1 };
        for (o, row) in m.data.chunks_exact(m.row_bytes).enumerate() {
            let (g, j) = (o / LANES, o % LANES);
            let quants = &row[4 * scalars * nb..];
            for b in 0..nb {
                let at = (g * nb + b) * block;
                let q = &quants[b * values..(b + 1) * values];
                data[at + 4 * j..][..4].copy_from_slice(&row[4 * b..4 * b + 4]);
                let second = match m.packed {
                    Packed::Q4 => f32_at(row, 4 * (nb + b)).to_le_bytes(),
                    _ => (-128 * q.iter().map(|&v| i32::from(v as i8)).sum::<i32>()).to_le_bytes(),
                };
                data[at + 4 * (LANES + j)..][..4].copy_from_slice(&second);
                for (t, quad) in q.chunks_exact(4).enumerate() {
                    data[at + HEAD + t * 4 * LANES + 4 * j..][..4].copy_from_slice(quad);
                }
            }
        }
        Some(Lanes { packed: m.packed, nb, groups, data })
    }

    /// Group `g`'s blocks.
    fn group(&self, g: usize) -> &[u8] {
        let len = self.nb * shape(self.packed).unwrap_or_default();
        &self.data[g * len..(g + 1) * len]
    }
}

/// Bytes of one group's block in a layout with this kernel; `None` for the others.
fn shape(packed: Packed) -> Option<usize> {
    matches!(packed, Packed::Q4 | Packed::Q8).then(|| HEAD + LANES * values(packed))
}

/// Bytes of quantised values per row and block.
fn values(packed: Packed) -> usize {
    if packed == Packed::Q4 { QK / 2 } else { QK }
}

/// Whether this CPU runs [`tile`].
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
                && std::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A batch's activation rows for [`tile`], each block of 32 as two terms of bytes
/// ([`quantise`]), cut into chunks of at most [`MAX_ROWS`] rows (as even as can be: more rows
/// per weight unpacked); within a chunk, block by block, each row's 64 bytes (the coarse
/// term's 32, then the fine term's; signed against 4-bit weights, which are unsigned; offset
/// by 128 against 8-bit ones, which are signed: `vpdpbusd` multiplies unsigned bytes by signed
/// ones), its two scales, and the sum of its values as the terms give them.
#[derive(Debug)]
pub(super) struct Bytes {
    nb: usize,
    /// `(first row, rows)` of each chunk; chunk `c`'s bytes start at `first · nb · 64`, its
    /// scalars at `first · nb`.
    chunks: Vec<(usize, usize)>,
    q: Vec<u8>,
    scales: Vec<[f32; 2]>,
    sum: Vec<f32>,
}

/// Bytes of one row's block in [`Bytes`]: two terms of 32.
const TERMS: usize = 2 * QK;

/// Above this many rows, [`Bytes::new`] quantises on the pool's threads (not for a decoding
/// step's few rows, made on a team's leading thread while its helpers wait).
const PARALLEL_ROWS: usize = 64;

impl Bytes {
    /// The `n` rows of `x` `[n, cols]` for `lanes`' kernel; more than [`PARALLEL_ROWS`] (a
    /// prompt pass) on the pool's threads, chunk by chunk.
    pub(super) fn new(lanes: &Lanes, x: &[f32], n: usize) -> Self {
        use rayon::prelude::*;
        let nb = lanes.nb;
        let offset = if lanes.packed == Packed::Q8 { 0x80 } else { 0 };
        let count = n.div_ceil(MAX_ROWS);
        let (mut chunks, mut r0) = (Vec::with_capacity(count), 0);
        for c in 0..count {
            let len = (n - r0) / (count - c);
            chunks.push((r0, len));
            r0 += len;
        }
        let mut q = vec![0u8; n * nb * TERMS];
        let (mut scales, mut sum) = (vec![[0f32; 2]; n * nb], vec![0f32; n * nb]);
        // Each chunk's own parts of the three arrays.
        let mut parts = Vec::with_capacity(count);
        let (mut q_rest, mut s_rest, mut sum_rest) = (&mut q[..], &mut scales[..], &mut sum[..]);
        for &(r0, len) in &chunks {
            let (q_part, q_tail) = std::mem::take(&mut q_rest).split_at_mut(len * nb * TERMS);
            let (s_part, s_tail) = std::mem::take(&mut s_rest).split_at_mut(len * nb);
            let (sum_part, sum_tail) = std::mem::take(&mut sum_rest).split_at_mut(len * nb);
            let x = &x[r0 * nb * QK..(r0 + len) * nb * QK];
            parts.push(Filling { x, len, q: q_part, scales: s_part, sum: sum_part });
            (q_rest, s_rest, sum_rest) = (q_tail, s_tail, sum_tail);
        }
        let fill = |Filling { x, len, q, scales, sum }: Filling<'_>| {
            for (k, row) in x.chunks_exact(nb * QK).enumerate() {
                for (b, block) in row.chunks_exact(QK).enumerate() {
                    let at = b * len + k;
                    let (s, sums) = quantise(block, offset, &mut q[at * TERMS..(at + 1) * TERMS]);
                    scales[at] = s;
                    sum[at] = s[0] * sums[0] as f32 + s[1] * sums[1] as f32;
                }
            }
        };
        if n > PARALLEL_ROWS {
            parts.into_par_iter().for_each(fill);
        } else {
            parts.into_iter().for_each(fill);
        }
        Bytes { nb, chunks, q, scales, sum }
    }
}

/// One chunk's rows of [`Bytes::new`] and its parts of the arrays it fills.
struct Filling<'a> {
    x: &'a [f32],
    len: usize,
    q: &'a mut [u8],
    scales: &'a mut [[f32; 2]],
    sum: &'a mut [f32],
}

/// One block of 32 activations as two terms of bytes, `x ≈ s₀·a + s₁·b`: `a` is `x/s₀`
/// rounded (`s₀ = amax/127`), `b` what `a` left, `(x − s₀·a)/s₁` rounded (`s₁ = s₀/254`),
/// both to the nearest, ties to even, within ±127; so `x` is rounded to `amax/32258` — the
/// precision of the 16-bit activations of `QMatrix::product` (8-bit ones changed a greedy
/// answer; docs/benchmarks.md) — at twice the bytes' integer work, which is half that of
/// 16-bit words. Each byte `xor offset` into `out` (`a`'s 32, then `b`'s); returns the two
/// scales and the sums of `a` and `b`.
fn quantise(block: &[f32], offset: u8, out: &mut [u8]) -> ([f32; 2], [i32; 2]) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: `available()`: the CPU has the kernel's features; 32 values in, 64 out.
        return unsafe { avx512::quantise(block, offset, out) };
    }
    quantise_portable(block, offset, out)
}

/// [`quantise`] without SIMD.
fn quantise_portable(block: &[f32], offset: u8, out: &mut [u8]) -> ([f32; 2], [i32; 2]) {
    let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
    let (s, inv) = scales(amax);
    let mut sums = [0i32; 2];
    let (coarse, fine) = out.split_at_mut(QK);
    for ((c, f), &v) in coarse.iter_mut().zip(fine).zip(block) {
        let a = (v * inv[0]).round_ties_even();
        let b = ((-a).mul_add(s[0], v) * inv[1]).round_ties_even().clamp(-127.0, 127.0);
        sums[0] += a as i32;
        sums[1] += b as i32;
        *c = (a as i8 as u8) ^ offset;
        *f = (b as i8 as u8) ^ offset;
    }
    (s, sums)
}

/// A block's two scales (`amax/127`, and that over 254) and their inverses (0 for a block of
/// zeros).
fn scales(amax: f32) -> ([f32; 2], [f32; 2]) {
    let s = amax / 127.0;
    let fine = s / 254.0;
    ([s, fine], if s > 0.0 { [1.0 / s, 1.0 / fine] } else { [0.0; 2] })
}

/// Outputs `range` (starting at a multiple of [`LANES`]) of `lanes`' matrix times the rows of
/// `x`: output `range.start + j` of row `k` written at `out + k·stride + j`.
///
/// # Safety
/// The CPU must have what [`available`] checks; `out` must be valid for writes there, for
/// every row and `j < range.len()`.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn tile(lanes: &Lanes, x: &Bytes, range: std::ops::Range<usize>, out: *mut f32, stride: usize) {
    assert!(range.start.is_multiple_of(LANES) && x.nb == lanes.nb);
    assert!(range.end <= lanes.groups * LANES);
    let nb = x.nb;
    for &(r0, len) in &x.chunks {
        let rows = Chunk {
            q: &x.q[r0 * nb * TERMS..(r0 + len) * nb * TERMS],
            scales: &x.scales[r0 * nb..(r0 + len) * nb],
            sum: &x.sum[r0 * nb..(r0 + len) * nb],
        };
        // SAFETY: the caller's CPU and `out` (rows `r0..r0 + len`); `rows` holds `len` rows of
        // `nb` blocks, and `range` lies within the groups (checked above).
        unsafe { rows_at_once(lanes, &rows, len, range.clone(), out.add(r0 * stride), stride) };
    }
}

/// One chunk of [`Bytes`]: block by block, each row's bytes and scalars.
struct Chunk<'a> {
    q: &'a [u8],
    scales: &'a [[f32; 2]],
    sum: &'a [f32],
}

/// `avx512::rows` for `len` (1 to [`MAX_ROWS`]) rows.
#[cfg(target_arch = "x86_64")]
unsafe fn rows_at_once(
    lanes: &Lanes,
    x: &Chunk<'_>,
    len: usize,
    range: std::ops::Range<usize>,
    out: *mut f32,
    stride: usize,
) {
    macro_rules! dispatch {
        ($($r:literal)*) => {
            match len {
                $($r => avx512::rows::<$r>(lanes, x, range, out, stride),)*
                _ => unreachable!("{len} rows at once"),
            }
        };
    }
    // SAFETY: the caller's.
    unsafe { dispatch!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16) }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Chunk, HEAD, LANES, Lanes, Packed, QK, TERMS, shape};

    /// `body` for each row `k` below `R` (at most [`MAX_ROWS`](super::MAX_ROWS)), written out
    /// row by row so that the accumulators stay in registers.
    macro_rules! each_row {
        ($r:ident, $k:ident, $body:block) => {
            each_row!(@ $r, $k, $body, 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
        };
        (@ $r:ident, $k:ident, $body:block, $($n:literal)*) => {
            $(
                if $n < $r {
                    let $k: usize = $n;
                    $body
                }
            )*
        };
    }

    /// Four bytes of `p` as one 32-bit value in every lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn quad(p: *const u8) -> __m512i {
        // SAFETY: the caller's: four readable bytes.
        _mm512_set1_epi32(unsafe { p.cast::<i32>().read_unaligned() })
    }

    /// [`super::quantise`].
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantise(block: &[f32], offset: u8, out: &mut [u8]) -> ([f32; 2], [i32; 2]) {
        assert!(block.len() >= QK && out.len() >= TERMS);
        // SAFETY: 32 values of `block` (checked above).
        let x = unsafe { [_mm512_loadu_ps(block.as_ptr()), _mm512_loadu_ps(block.as_ptr().add(16))] };
        let (s, inv) = super::scales(_mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x[0]), _mm512_abs_ps(x[1]))));
        let flip = _mm_set1_epi8(offset as i8);
        let (s0, inv0, inv1) = (_mm512_set1_ps(s[0]), _mm512_set1_ps(inv[0]), _mm512_set1_ps(inv[1]));
        let (lo, hi) = (_mm512_set1_ps(-127.0), _mm512_set1_ps(127.0));
        let mut sums = [_mm512_setzero_si512(); 2];
        for (h, x) in x.into_iter().enumerate() {
            let a = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(x, inv0));
            let rest = _mm512_mul_ps(_mm512_fnmadd_ps(a, s0, x), inv1);
            let b = _mm512_max_ps(lo, _mm512_min_ps(hi, rest));
            for (t, v) in [a, b].into_iter().enumerate() {
                let v = _mm512_cvtps_epi32(v);
                sums[t] = _mm512_add_epi32(sums[t], v);
                let bytes = _mm_xor_si128(_mm512_cvtepi32_epi8(v), flip);
                // SAFETY: 16 bytes of `out` from `32·t + 16·h` (checked above).
                unsafe { _mm_storeu_si128(out.as_mut_ptr().add(QK * t + 16 * h).cast(), bytes) };
            }
        }
        (s, [_mm512_reduce_add_epi32(sums[0]), _mm512_reduce_add_epi32(sums[1])])
    }

    /// `R` rows (block by block, see [`Chunk`]) against the groups of outputs `range`: output
    /// `range.start + j` of row `k` written at `out + k·stride + j` (writable: the caller's).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
    pub(super) unsafe fn rows<const R: usize>(
        lanes: &Lanes,
        x: &Chunk<'_>,
        range: std::ops::Range<usize>,
        out: *mut f32,
        stride: usize,
    ) {
        let nb = lanes.nb;
        assert!(x.q.len() >= nb * TERMS * R && x.scales.len() >= nb * R && x.sum.len() >= nb * R);
        let block_bytes = shape(lanes.packed).unwrap_or_default();
        for g in range.start / LANES..range.end.div_ceil(LANES) {
            let first = g * LANES;
            let valid = (range.end - first).min(LANES);
            let lanes_mask = if valid == LANES { u16::MAX } else { (1u16 << valid) - 1 };
            let group = lanes.group(g);
            // SAFETY: the features and `out` (the caller); `group` holds `nb` blocks of
            // `block_bytes`, `x` `nb` blocks of `R` rows (checked above).
            unsafe {
                let mut acc = [_mm512_setzero_ps(); R];
                let w = group.as_ptr();
                match lanes.packed {
                    Packed::Q4 => {
                        let nibble = _mm512_set1_epi8(0x0f);
                        for b in 0..nb {
                            let blk = w.add(b * block_bytes);
                            let (d, m) = (_mm512_loadu_ps(blk.cast()), _mm512_loadu_ps(blk.add(64).cast()));
                            let mut wq = [_mm512_setzero_si512(); 8];
                            for t in 0..4 {
                                let v = _mm512_loadu_si512(blk.add(HEAD + 64 * t).cast());
                                wq[t] = _mm512_and_si512(v, nibble);
                                wq[4 + t] = _mm512_and_si512(_mm512_srli_epi16::<4>(v), nibble);
                            }
                            let a = x.q.as_ptr().add(b * TERMS * R);
                            let (s, sum) = (x.scales.as_ptr().add(b * R), x.sum.as_ptr().add(b * R));
                            each_row!(R, k, {
                                let acc = &mut acc[k];
                                let a = a.add(TERMS * k);
                                let (mut i, mut j) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                                for (t, wq) in wq.iter().enumerate() {
                                    i = _mm512_dpbusd_epi32(i, *wq, quad(a.add(4 * t)));
                                    j = _mm512_dpbusd_epi32(j, *wq, quad(a.add(QK + 4 * t)));
                                }
                                let [s0, s1] = *s.add(k);
                                let f = _mm512_mul_ps(_mm512_cvtepi32_ps(i), _mm512_set1_ps(s0));
                                let f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(j), _mm512_set1_ps(s1), f);
                                *acc = _mm512_fmadd_ps(f, d, *acc);
                                *acc = _mm512_fmadd_ps(m, _mm512_set1_ps(*sum.add(k)), *acc);
                            });
                        }
                    }
                    _ => {
                        for b in 0..nb {
                            let blk = w.add(b * block_bytes);
                            let (d, c) = (_mm512_loadu_ps(blk.cast()), _mm512_loadu_si512(blk.add(64).cast()));
                            let mut wq = [_mm512_setzero_si512(); 8];
                            for (t, wq) in wq.iter_mut().enumerate() {
                                *wq = _mm512_loadu_si512(blk.add(HEAD + 64 * t).cast());
                            }
                            let a = x.q.as_ptr().add(b * TERMS * R);
                            let s = x.scales.as_ptr().add(b * R);
                            each_row!(R, k, {
                                let acc = &mut acc[k];
                                let a = a.add(TERMS * k);
                                let (mut i, mut j) = (c, c);
                                for (t, wq) in wq.iter().enumerate() {
                                    i = _mm512_dpbusd_epi32(i, quad(a.add(4 * t)), *wq);
                                    j = _mm512_dpbusd_epi32(j, quad(a.add(QK + 4 * t)), *wq);
                                }
                                let [s0, s1] = *s.add(k);
                                let f = _mm512_mul_ps(_mm512_cvtepi32_ps(i), _mm512_set1_ps(s0));
                                let f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(j), _mm512_set1_ps(s1), f);
                                *acc = _mm512_fmadd_ps(f, d, *acc);
                            });
                        }
                    }
                }
                for (k, a) in acc.iter().enumerate() {
                    _mm512_mask_storeu_ps(out.add(k * stride + first - range.start), lanes_mask, *a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_terms_hold_a_block_to_its_rounding_and_the_simd_path_equals_the_portable_one() {
        let mut state = 11u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for case in 0..200 {
            // Plain blocks, one with an outlier, evenly spaced values, and zeros.
            let mut block: Vec<f32> = (0..QK).map(|_| next()).collect();
            match case % 4 {
                1 => block[case % QK] = 40.0,
                2 => block.iter_mut().enumerate().for_each(|(i, v)| *v = (i as f32 - 16.0) * 0.5),
                3 => block.fill(0.0),
                _ => {}
            }
            for offset in [0u8, 0x80] {
                let mut bytes = [0u8; TERMS];
                let (s, sums) = quantise_portable(&block, offset, &mut bytes);
                let value = |i: usize| i32::from((bytes[i] ^ offset) as i8);
                for (i, &x) in block.iter().enumerate() {
                    let got = s[0] * value(i) as f32 + s[1] * value(QK + i) as f32;
                    let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                    assert!((got - x).abs() <= amax / 64_000.0 + 1e-7, "case {case}: {got} vs {x}");
                }
                assert_eq!(sums, [(0..QK).map(value).sum::<i32>(), (QK..TERMS).map(value).sum::<i32>()]);
                let mut fast = [0u8; TERMS];
                assert_eq!(quantise(&block, offset, &mut fast), (s, sums), "case {case}");
                assert_eq!(fast, bytes, "case {case}");
            }
        }
    }
}
