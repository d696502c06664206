//! Products with weights kept in their file's quantisation (GGML blocks), on 16-bit integer
//! activations: a few rows (decoding) read ~4.5–8.5 bits per weight instead of the f32 copy's
//! 32, which is what bounds a decoding step. Each activation row is cut into blocks of 32,
//! each quantised to `i16` with one f32 scale (ggml's `Q8_0`/`Q8_1` idea at twice the bits); a
//! weight block's product with it is an integer dot product times the two scales. 16 bits and
//! not ggml's 8: with 8, SmolLM2's greedy answer to a chat question changed where the f32
//! products' top two tokens were 0.002 nats apart (docs/benchmarks.md); at 16 the activations'
//! rounding is 256 times smaller, for ~1.5× the integer work of 8 (AVX2's `madd_epi16` in place
//! of `maddubs_epi16`), still far below the cost of reading f32 weights. AVX2 (with F16C for the
//! blocks' half-precision scales) is chosen at run time for Q4_0, Q4_1 and Q8_0; every type has
//! a portable loop.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::quant::{GgmlType, f16_to_f32, scale_min_k4};

/// Elements per activation block.
const QK: usize = 32;

/// A weight matrix `[rows, cols]` (a projection's `Wᵀ`: one row per output) as GGML blocks:
/// each row is `cols / block_len` blocks, rows one after the other, as a GGUF file stores a
/// tensor whose first dimension is `cols`.
#[derive(Clone)]
pub(crate) struct QMatrix {
    kind: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Vec<u8>,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QMatrix({:?}, {} × {})", self.kind, self.rows, self.cols)
    }
}

/// Whether products on `kind`'s blocks are implemented here.
pub(crate) fn supported(kind: GgmlType) -> bool {
    matches!(kind, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0 | GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K)
}

impl QMatrix {
    /// `data` as `rows` rows of `cols` weights of `kind`.
    ///
    /// Errors: a type without quantised products here (f32, f16, bf16: their f32 copy is
    /// already the fast path), `cols` not a whole number of blocks, or `data` of another size.
    pub(crate) fn new(kind: GgmlType, rows: usize, cols: usize, data: Vec<u8>) -> Result<Self> {
        let bad = |m: String| Error::Backend(format!("quantised weights: {m}"));
        if !supported(kind) {
            return Err(bad(format!("no quantised products for {kind:?}")));
        }
        if cols == 0 || !cols.is_multiple_of(kind.block_len()) {
            return Err(bad(format!("{cols} columns are not whole {kind:?} blocks")));
        }
        let row_bytes = cols / kind.block_len() * kind.block_bytes();
        if data.len() != rows * row_bytes {
            return Err(bad(format!("{} bytes for {rows} rows of {row_bytes}", data.len())));
        }
        Ok(QMatrix { kind, rows, cols, row_bytes, data })
    }

    /// Output rows.
    #[cfg(test)]
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// The rows reordered: row `i` of the result is row `order[i]` of `self`.
    pub(crate) fn reordered(&self, order: &[usize]) -> Self {
        let mut data = Vec::with_capacity(self.data.len());
        for &r in order {
            data.extend_from_slice(&self.data[r * self.row_bytes..(r + 1) * self.row_bytes]);
        }
        QMatrix { data, rows: order.len(), ..self.clone() }
    }

    /// Matrices of one type and width stacked row-wise (a fused projection's parts); `None`
    /// when they differ in either.
    pub(crate) fn stacked(parts: &[&QMatrix]) -> Option<Self> {
        let first = parts.first()?;
        if parts.iter().any(|p| p.kind != first.kind || p.cols != first.cols) {
            return None;
        }
        let data = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
        Some(QMatrix { data, rows: parts.iter().map(|p| p.rows).sum(), ..(*first).clone() })
    }

    /// The weights as f32 `[rows, cols]` (tests and checks).
    #[cfg(test)]
    pub(crate) fn dequantized(&self) -> Vec<f32> {
        let mut out = Vec::new();
        crate::quant::dequantize(self.kind, &self.data, &mut out);
        out
    }

    /// `dst = x · selfᵀ + b` for `n` rows of `x` `[n, cols]`: `dst` `[n, rows]`. Outputs are
    /// split over the pool's threads; a weight row is read from memory once for all `n`.
    pub(crate) fn product(&self, dst: &mut [f32], x: &[f32], bias: Option<&[f32]>, n: usize) {
        let q = ActRows::new(&x[..n * self.cols], n, self.cols);
        let (rows, kind) = (self.rows, self.kind);
        let fast = fast_kernels();
        const BAND: usize = 64;
        if n == 1 {
            // One row (a decoding step): each task writes its band of outputs in place.
            dst[..rows].par_chunks_mut(BAND).enumerate().for_each(|(band, out)| {
                for (j, d) in out.iter_mut().enumerate() {
                    let o = band * BAND + j;
                    *d = row_dot(kind, &self.data[o * self.row_bytes..(o + 1) * self.row_bytes], &q, 0, fast)
                        + bias.map_or(0.0, |b| b[o]);
                }
            });
            return;
        }
        // Each task writes a band of outputs for every input row into its own buffer.
        let bands: Vec<Vec<f32>> = (0..rows.div_ceil(BAND))
            .into_par_iter()
            .map(|band| {
                let (first, last) = (band * BAND, ((band + 1) * BAND).min(rows));
                let mut out = vec![0f32; n * (last - first)];
                for o in first..last {
                    let w = &self.data[o * self.row_bytes..(o + 1) * self.row_bytes];
                    for r in 0..n {
                        out[r * (last - first) + o - first] = row_dot(kind, w, &q, r, fast);
                    }
                }
                out
            })
            .collect();
        for (band, out) in bands.iter().enumerate() {
            let (first, width) = (band * BAND, out.len() / n.max(1));
            for r in 0..n {
                let row = &mut dst[r * rows + first..r * rows + first + width];
                row.copy_from_slice(&out[r * width..(r + 1) * width]);
                if let Some(b) = bias {
                    for (d, b) in row.iter_mut().zip(&b[first..first + width]) {
                        *d += b;
                    }
                }
            }
        }
    }
}

/// The largest activation value after scaling.
const A_MAX: f32 = 32767.0;

/// Activation rows as 16-bit blocks: per block of 32 a scale `d`, its values `q` (`x ≈ d·q`),
/// and the sums of `q` over each half (the offsets of Q4_0/Q4_1/Q4_K/Q5_K/Q6_K need them).
struct ActRows {
    cols: usize,
    d: Vec<f32>,
    sums: Vec<[i32; 2]>,
    q: Vec<i16>,
}

impl ActRows {
    fn new(x: &[f32], n: usize, cols: usize) -> Self {
        let blocks = n * cols / QK;
        let (mut d, mut sums, mut q) = (Vec::with_capacity(blocks), Vec::with_capacity(blocks), vec![0i16; n * cols]);
        for (block, out) in x.chunks_exact(QK).zip(q.chunks_exact_mut(QK)) {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = amax / A_MAX;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            for (o, v) in out.iter_mut().zip(block) {
                *o = (v * inv).round() as i16;
            }
            let half = |h: &[i16]| h.iter().map(|&v| i32::from(v)).sum::<i32>();
            sums.push([half(&out[..16]), half(&out[16..])]);
            d.push(scale);
        }
        ActRows { cols, d, sums, q }
    }

    /// Row `r`'s blocks: scales, half sums, values.
    fn row(&self, r: usize) -> (&[f32], &[[i32; 2]], &[i16]) {
        let per = self.cols / QK;
        (
            &self.d[r * per..(r + 1) * per],
            &self.sums[r * per..(r + 1) * per],
            &self.q[r * self.cols..(r + 1) * self.cols],
        )
    }
}

/// Whether the AVX2 kernels may run.
fn fast_kernels() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        kailin_core::simd::avx2_fma() && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]]))
}

/// One weight row (its blocks' bytes) against activation row `r`.
fn row_dot(kind: GgmlType, w: &[u8], q: &ActRows, r: usize, fast: bool) -> f32 {
    let (d, sums, x) = q.row(r);
    #[cfg(target_arch = "x86_64")]
    if fast {
        // SAFETY: `fast` is `fast_kernels()`: the CPU has AVX2, FMA and F16C.
        match kind {
            GgmlType::Q4_0 | GgmlType::Q4_1 => return unsafe { avx2::q4(kind, w, d, sums, x) },
            GgmlType::Q8_0 => return unsafe { avx2::q8_0(w, d, x) },
            _ => {}
        }
    }
    let _ = fast;
    portable(kind, w, d, sums, x)
}

/// `Σ w[i]·x[i]` over 32 unsigned weights and 32 signed activations, per half.
#[inline(always)]
fn idot(w: &[u8; 32], x: &[i16]) -> [i32; 2] {
    let half = |h: usize| (h * 16..h * 16 + 16).map(|i| i32::from(w[i]) * i32::from(x[i])).sum::<i32>();
    [half(0), half(1)]
}

/// Every supported type, block by block, in plain integer arithmetic.
fn portable(kind: GgmlType, w: &[u8], d: &[f32], sums: &[[i32; 2]], x: &[i16]) -> f32 {
    let mut acc = 0f32;
    let mut u = [0u8; 32];
    match kind {
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let bb = kind.block_bytes();
            for (b, blk) in w.chunks_exact(bb).enumerate() {
                let qs = &blk[bb - 16..];
                for i in 0..16 {
                    (u[i], u[i + 16]) = (qs[i] & 0xf, qs[i] >> 4);
                }
                let [a, c] = idot(&u, &x[b * QK..]);
                let s = sums[b][0] + sums[b][1];
                let dw = f16_at(blk, 0);
                acc += if kind == GgmlType::Q4_0 {
                    dw * d[b] * (a + c - 8 * s) as f32
                } else {
                    dw * d[b] * (a + c) as f32 + f16_at(blk, 2) * d[b] * s as f32
                };
            }
        }
        GgmlType::Q8_0 => {
            for (b, blk) in w.chunks_exact(34).enumerate() {
                let dot: i32 = blk[2..]
                    .iter()
                    .zip(&x[b * QK..(b + 1) * QK])
                    .map(|(&w, &x)| i32::from(w as i8) * i32::from(x))
                    .sum();
                acc += f16_at(blk, 0) * d[b] * dot as f32;
            }
        }
        GgmlType::Q4K | GgmlType::Q5K => {
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
                        let [a, c] = idot(&u, &x[b * QK..]);
                        acc += dw * sc * d[b] * (a + c) as f32 - dmin * m * d[b] * (sums[b][0] + sums[b][1]) as f32;
                    }
                }
            }
        }
        GgmlType::Q6K => {
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
        GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16 => unreachable!("QMatrix::new refuses {kind:?}"),
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::quant::GgmlType;

    #[inline(always)]
    unsafe fn half(b: &[u8]) -> f32 {
        let h = u16::from_le_bytes([b[0], b[1]]);
        // SAFETY (callers): F16C is enabled on every function that inlines this.
        unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h)))) }
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
        }
    }

    /// Q4_0 or Q4_1 blocks (16 bytes of nibbles at the block's end: low nibbles are elements
    /// 0–15, high ones 16–31) against 16-bit activations.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn q4(kind: GgmlType, w: &[u8], d: &[f32], sums: &[[i32; 2]], x: &[i16]) -> f32 {
        let bb = kind.block_bytes();
        let blocks = w.len() / bb;
        assert!(d.len() >= blocks && sums.len() >= blocks && x.len() >= blocks * 32);
        let offset = kind == GgmlType::Q4_0;
        unsafe {
            let mask = _mm_set1_epi8(0x0f);
            // Two accumulators, even and odd blocks: the FMA's latency is not a serial chain.
            let mut acc = [_mm256_setzero_ps(); 2];
            let mut rest = [0f32; 2];
            for b in 0..blocks {
                let blk = &w[b * bb..(b + 1) * bb];
                let qs = _mm_loadu_si128(blk[bb - 16..].as_ptr().cast());
                let lo = _mm_and_si128(qs, mask);
                let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask);
                let x0 = _mm256_loadu_si256(x[b * 32..].as_ptr().cast());
                let x1 = _mm256_loadu_si256(x[b * 32 + 16..].as_ptr().cast());
                let p = _mm256_add_epi32(
                    _mm256_madd_epi16(_mm256_cvtepu8_epi16(lo), x0),
                    _mm256_madd_epi16(_mm256_cvtepu8_epi16(hi), x1),
                );
                let p = _mm256_cvtepi32_ps(p);
                let dw = half(blk);
                let s = (sums[b][0] + sums[b][1]) as f32;
                acc[b & 1] = _mm256_fmadd_ps(_mm256_set1_ps(dw * d[b]), p, acc[b & 1]);
                rest[b & 1] += if offset { -8.0 * dw * d[b] * s } else { half(&blk[2..]) * d[b] * s };
            }
            hsum(_mm256_add_ps(acc[0], acc[1])) + rest[0] + rest[1]
        }
    }

    /// Q8_0 blocks against 16-bit activations.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn q8_0(w: &[u8], d: &[f32], x: &[i16]) -> f32 {
        let blocks = w.len() / 34;
        assert!(d.len() >= blocks && x.len() >= blocks * 32);
        unsafe {
            let mut acc = _mm256_setzero_ps();
            for b in 0..blocks {
                let blk = &w[b * 34..(b + 1) * 34];
                let w0 = _mm_loadu_si128(blk[2..].as_ptr().cast());
                let w1 = _mm_loadu_si128(blk[18..].as_ptr().cast());
                let x0 = _mm256_loadu_si256(x[b * 32..].as_ptr().cast());
                let x1 = _mm256_loadu_si256(x[b * 32 + 16..].as_ptr().cast());
                let p = _mm256_add_epi32(
                    _mm256_madd_epi16(_mm256_cvtepi8_epi16(w0), x0),
                    _mm256_madd_epi16(_mm256_cvtepi8_epi16(w1), x1),
                );
                let p = _mm256_cvtepi32_ps(p);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(half(blk) * d[b]), p, acc);
            }
            hsum(acc)
        }
    }
}

#[cfg(test)]
mod tests {
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
                            let wr = &m.data[o * m.row_bytes..(o + 1) * m.row_bytes];
                            let (d, sums, xq) = q.row(r);
                            got[r * rows + o] = portable(kind, wr, d, sums, xq) + bias[o];
                        }
                    }
                }
                for r in 0..n {
                    for o in 0..rows {
                        let wr = &w[o * cols..(o + 1) * cols];
                        let xr = &x[r * cols..(r + 1) * cols];
                        let exact: f64 = wr.iter().zip(xr).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>()
                            + f64::from(bias[o]);
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
        for kind in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
            let m = blocks(kind, 8, 256, 3);
            let x: Vec<f32> = (0..256).map(|i| (i as f32 * 0.37).sin()).collect();
            let q = ActRows::new(&x, 1, 256);
            for o in 0..8 {
                let w = &m.data[o * m.row_bytes..(o + 1) * m.row_bytes];
                let (a, b) = (row_dot(kind, w, &q, 0, true), row_dot(kind, w, &q, 0, false));
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{kind:?}: {a} vs {b}");
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
}
