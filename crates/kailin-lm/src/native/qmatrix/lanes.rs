//! The repacked 4-bit and 8-bit blocks ([`Packed::Q4`], [`Packed::Q8`]) a second time, sixteen
//! output rows side by side ([`Lanes`]), for products with a batch's rows in f32 (5–64 rows: a
//! batch's decoding step): one 512-bit load unpacks one input's weights for sixteen outputs,
//! which multiply every activation row's value there, broadcast, in one FMA each. Nothing is
//! unpacked to memory and nothing is packed again per call, where the path it replaces
//! unpacked each band of weights to f32 and had a GEMM pack it once more (the two took half of
//! a batch step's time, the products a fifth; docs/benchmarks.md).
//!
//! Each output of each activation row is one chain of FMAs in a fixed order (blocks in turn;
//! within a block, for 4-bit weights, element `p` then `p + 16`), so a row's values do not
//! depend on how many rows share the call, how the outputs are cut, or the thread count.

use super::{Packed, QMatrix, f32_at};

/// Output rows side by side.
pub(super) const LANES: usize = 16;

/// Activation rows multiplied at once (the kernel's accumulators).
pub(super) const MAX_ROWS: usize = 16;

/// A matrix's blocks in groups of [`LANES`] output rows: group `g` holds, for each block `b`
/// in turn, the sixteen rows' scales, (4-bit) their minimums, then their quantised values
/// input by input, sixteen bytes each (4-bit: the byte of input pair `p` holds element `p` in
/// its low nibble and `p + 16` in its high one, as a row's block does). Rows past the matrix's
/// last (its last group's padding) are zeros.
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
        let nb = m.cols / 32;
        let (scalars, values) = shape(m.packed)?;
        let block = LANES * (4 * scalars + values);
        let groups = m.rows.div_ceil(LANES);
        let mut data = vec![0u8; groups * nb * block];
        for (o, row) in m.data.chunks_exact(m.row_bytes).enumerate() {
            let (g, j) = (o / LANES, o % LANES);
            let (quants, per) = (&row[4 * scalars * nb..], values);
            for b in 0..nb {
                let at = (g * nb + b) * block;
                for s in 0..scalars {
                    let v = f32_at(row, 4 * (s * nb + b));
                    data[at + 4 * (s * LANES + j)..][..4].copy_from_slice(&v.to_le_bytes());
                }
                let at = at + LANES * 4 * scalars;
                for (i, &q) in quants[b * per..(b + 1) * per].iter().enumerate() {
                    data[at + i * LANES + j] = q;
                }
            }
        }
        Some(Lanes { packed: m.packed, nb, groups, data })
    }

    /// Bytes of one group's block.
    fn block_bytes(&self) -> usize {
        let (scalars, values) = shape(self.packed).unwrap_or_default();
        LANES * (4 * scalars + values)
    }

    /// Group `g`'s blocks.
    fn group(&self, g: usize) -> &[u8] {
        let len = self.nb * self.block_bytes();
        &self.data[g * len..(g + 1) * len]
    }
}

/// A layout's f32 scalars per row and block (scale, and minimum for 4-bit) and bytes of
/// quantised values per row and block; `None` for a layout without this kernel.
fn shape(packed: Packed) -> Option<(usize, usize)> {
    match packed {
        Packed::Q4 => Some((2, 16)),
        Packed::Q8 => Some((1, 32)),
        Packed::File(_) => None,
    }
}

/// Whether this CPU runs [`tile`].
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A batch's activation rows for [`tile`]: cut into chunks of at most [`MAX_ROWS`] rows (as
/// even as can be: more rows per weight unpacked), each transposed (`[cols, len]`), so that
/// the kernel reads one input of every row of a chunk side by side.
#[derive(Debug)]
pub(super) struct Transposed {
    cols: usize,
    /// `(first row, rows)` of each chunk; chunk `c`'s values start at `first · cols`.
    chunks: Vec<(usize, usize)>,
    values: Vec<f32>,
}

impl Transposed {
    /// The `n` rows of `x` `[n, cols]`.
    pub(super) fn new(x: &[f32], n: usize, cols: usize) -> Self {
        let count = n.div_ceil(MAX_ROWS);
        let mut chunks = Vec::with_capacity(count);
        let mut values = vec![0f32; n * cols];
        let mut r0 = 0;
        for c in 0..count {
            let len = (n - r0) / (count - c);
            let t = &mut values[r0 * cols..(r0 + len) * cols];
            let x = &x[r0 * cols..(r0 + len) * cols];
            for (i, t) in t.chunks_exact_mut(len).enumerate() {
                for (r, t) in t.iter_mut().enumerate() {
                    *t = x[r * cols + i];
                }
            }
            chunks.push((r0, len));
            r0 += len;
        }
        Transposed { cols, chunks, values }
    }
}

/// Outputs `range` (starting at a multiple of [`LANES`]) of `lanes`' matrix times the rows of
/// `x` (`n` of them): `out[k·range.len() + j]` is output `range.start + j` of row `k`.
///
/// # Safety
/// The CPU must have what [`available`] checks.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn tile(lanes: &Lanes, x: &Transposed, range: std::ops::Range<usize>, out: &mut [f32]) {
    let width = range.len();
    let n: usize = x.chunks.iter().map(|c| c.1).sum();
    assert!(range.start.is_multiple_of(LANES) && x.cols == lanes.nb * 32 && out.len() >= n * width);
    assert!(range.end <= lanes.groups * LANES);
    for &(r0, len) in &x.chunks {
        let xt = &x.values[r0 * x.cols..(r0 + len) * x.cols];
        // SAFETY: the caller's CPU; `xt` holds `cols · len` values, `out` `len` rows of
        // `width` from row `r0`, and `range` lies within the groups (checked above).
        unsafe { rows_at_once(lanes, xt, len, range.clone(), &mut out[r0 * width..], width) };
    }
}

/// `avx512::rows` for `len` (1 to [`MAX_ROWS`]) rows.
#[cfg(target_arch = "x86_64")]
unsafe fn rows_at_once(
    lanes: &Lanes,
    xt: &[f32],
    len: usize,
    range: std::ops::Range<usize>,
    out: &mut [f32],
    stride: usize,
) {
    macro_rules! dispatch {
        ($($r:literal)*) => {
            match len {
                $($r => avx512::rows::<$r>(lanes, xt, range, out, stride),)*
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

    use super::{LANES, Lanes, Packed};

    /// `R` rows (`xt` `[cols, R]`) against the groups of outputs `range`: `out[k·stride + j]`
    /// is output `range.start + j` of row `k`.
    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn rows<const R: usize>(
        lanes: &Lanes,
        xt: &[f32],
        range: std::ops::Range<usize>,
        out: &mut [f32],
        stride: usize,
    ) {
        let nb = lanes.nb;
        assert!(xt.len() >= nb * 32 * R && (R - 1) * stride + range.len() <= out.len());
        let block_bytes = lanes.block_bytes();
        for g in range.start / LANES..range.end.div_ceil(LANES) {
            let first = g * LANES;
            let valid = (range.end - first).min(LANES);
            let lanes_mask = if valid == LANES { u16::MAX } else { (1u16 << valid) - 1 };
            let group = lanes.group(g);
            // SAFETY: the features (the caller); `group` holds `nb` blocks of `block_bytes`,
            // `xt` `nb · 32` inputs of `R` values, `out` `R` rows of `stride` from its start,
            // the last up to `range.len()` (checked above).
            unsafe {
                let mut acc = [_mm512_setzero_ps(); R];
                let w = group.as_ptr();
                match lanes.packed {
                    Packed::Q4 => {
                        let mask = _mm512_set1_epi32(0x0f);
                        for b in 0..nb {
                            let blk = w.add(b * block_bytes);
                            let (d, m) = (_mm512_loadu_ps(blk.cast()), _mm512_loadu_ps(blk.add(64).cast()));
                            let x = xt.as_ptr().add(b * 32 * R);
                            for p in 0..16 {
                                let v = _mm512_cvtepu8_epi32(_mm_loadu_si128(blk.add(128 + 16 * p).cast()));
                                let lo = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v, mask)), d, m);
                                let hi = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(v)), d, m);
                                for (k, a) in acc.iter_mut().enumerate() {
                                    *a = _mm512_fmadd_ps(lo, _mm512_set1_ps(*x.add(p * R + k)), *a);
                                    *a = _mm512_fmadd_ps(hi, _mm512_set1_ps(*x.add((p + 16) * R + k)), *a);
                                }
                            }
                        }
                    }
                    _ => {
                        for b in 0..nb {
                            let blk = w.add(b * block_bytes);
                            let d = _mm512_loadu_ps(blk.cast());
                            let x = xt.as_ptr().add(b * 32 * R);
                            for i in 0..32 {
                                let v = _mm512_cvtepi8_epi32(_mm_loadu_si128(blk.add(64 + 16 * i).cast()));
                                let wv = _mm512_mul_ps(_mm512_cvtepi32_ps(v), d);
                                for (k, a) in acc.iter_mut().enumerate() {
                                    *a = _mm512_fmadd_ps(wv, _mm512_set1_ps(*x.add(i * R + k)), *a);
                                }
                            }
                        }
                    }
                }
                for (k, a) in acc.iter().enumerate() {
                    _mm512_mask_storeu_ps(out.as_mut_ptr().add(k * stride + first - range.start), lanes_mask, *a);
                }
            }
        }
    }
}
