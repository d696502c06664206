//! Products with weights kept in their file's quantisation (GGML blocks), on 16-bit integer
//! activations: a few rows (decoding) read ~4.5–8.5 bits per weight instead of the f32 copy's
//! 32, which is what bounds a decoding step. Each activation row is cut into blocks of 32,
//! each quantised to `i16` with one f32 scale (ggml's `Q8_0`/`Q8_1` idea at twice the bits); a
//! weight block's product with it is an integer dot product times the two scales. 16 bits and
//! not ggml's 8: with 8, SmolLM2's greedy answer to a chat question changed where the f32
//! products' top two tokens were 0.002 nats apart (docs/benchmarks.md); at 16 the activations'
//! rounding is 256 times smaller, for ~1.5× the integer work of 8 (AVX2's `madd_epi16` in place
//! of `maddubs_epi16`), still far below the cost of reading f32 weights.
//!
//! Q4_0, Q4_1 and Q8_0 blocks are repacked at load ([`Packed`]): their half-precision scales
//! widened to f32 and Q4_0's offset folded into a per-block minimum, so that a block's product
//! is one integer dot, one FMA and one scalar FMA, with AVX-512 VNNI (`avx512`, 4-bit blocks)
//! and AVX2 kernels chosen at run time (`avx2`) and a portable loop (`portable`); the K-quants
//! keep the file's bytes and the portable loop. Batches of more than four rows take another
//! path ([`QMatrix::product_tiled`]), band by band: the repacked blocks laid out a second
//! time, sixteen output rows side by side, for an AVX-512 VNNI kernel on activations of two
//! terms of bytes each, as fine as 16 bits (`lanes`); elsewhere, bands unpacked to f32 and a
//! GEMM.
//! Each activation row goes through the same arithmetic whether it is multiplied alone or
//! with others, so a batch's rows equal the rows alone bit for bit.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod lanes;
mod portable;
#[cfg(test)]
mod tests;

use rayon::prelude::*;

use super::disjoint::Disjoint;

use crate::error::{Error, Result};
use crate::quant::{GgmlType, f16_to_f32};

/// Elements per activation block.
const QK: usize = 32;

/// How a row's blocks are stored in a [`QMatrix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Packed {
    /// Q4_0 or Q4_1 repacked, 24 bytes a block, a row of `nb` blocks as three arrays: the
    /// scales `d` (`nb` f32), the minimums `m` (`nb` f32; Q4_0's is `-8·d`), then the nibbles
    /// (16 bytes a block: low nibbles elements 0–15, high ones 16–31): `w = d·q + m`.
    Q4,
    /// Q8_0 repacked, 36 bytes a block: the row's scales (`nb` f32), then its signed bytes
    /// (32 a block).
    Q8,
    /// The file's own blocks (the K-quants).
    File(GgmlType),
}

impl Packed {
    fn of(kind: GgmlType) -> Self {
        match kind {
            GgmlType::Q4_0 | GgmlType::Q4_1 => Packed::Q4,
            GgmlType::Q8_0 => Packed::Q8,
            other => Packed::File(other),
        }
    }

    /// Bytes per block of this layout.
    fn block_bytes(self) -> usize {
        match self {
            Packed::Q4 => 24,
            Packed::Q8 => 36,
            Packed::File(kind) => kind.block_bytes(),
        }
    }
}

/// A weight matrix `[rows, cols]` (a projection's `Wᵀ`: one row per output) as GGML blocks:
/// each row is `cols / block_len` blocks, rows one after the other, as a GGUF file stores a
/// tensor whose first dimension is `cols` (Q4_0, Q4_1 and Q8_0 repacked, see [`Packed`]).
#[derive(Clone)]
pub(crate) struct QMatrix {
    kind: GgmlType,
    packed: Packed,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Vec<u8>,
    /// The blocks side by side for batch products, made at the first (see [`lanes`]).
    lanes: std::sync::OnceLock<Option<lanes::Lanes>>,
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

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]]))
}

fn f32_at(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// One row of Q4_0, Q4_1 or Q8_0 file blocks in the layout of [`Packed`].
fn repack(kind: GgmlType, row: &[u8], out: &mut Vec<u8>) {
    let blocks = || row.chunks_exact(kind.block_bytes());
    for blk in blocks() {
        out.extend_from_slice(&f16_at(blk, 0).to_le_bytes());
    }
    match kind {
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            for blk in blocks() {
                let m = if kind == GgmlType::Q4_0 { -8.0 * f16_at(blk, 0) } else { f16_at(blk, 2) };
                out.extend_from_slice(&m.to_le_bytes());
            }
            for blk in blocks() {
                out.extend_from_slice(&blk[blk.len() - 16..]);
            }
        }
        GgmlType::Q8_0 => {
            for blk in blocks() {
                out.extend_from_slice(&blk[2..34]);
            }
        }
        _ => unreachable!("only Q4_0, Q4_1 and Q8_0 are repacked"),
    }
}

impl QMatrix {
    /// `data` as `rows` rows of `cols` weights of `kind`, as the file stores them.
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
        let blocks = cols / kind.block_len();
        if data.len() != rows * blocks * kind.block_bytes() {
            return Err(bad(format!("{} bytes for {rows} rows of {}", data.len(), blocks * kind.block_bytes())));
        }
        let packed = Packed::of(kind);
        let data = match packed {
            Packed::File(_) => data,
            _ => {
                let mut out = Vec::with_capacity(rows * blocks * packed.block_bytes());
                for row in data.chunks_exact(blocks * kind.block_bytes()) {
                    repack(kind, row, &mut out);
                }
                out
            }
        };
        Ok(QMatrix {
            kind,
            packed,
            rows,
            cols,
            row_bytes: blocks * packed.block_bytes(),
            data,
            lanes: Default::default(),
        })
    }

    /// Output rows.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// The rows reordered: row `i` of the result is row `order[i]` of `self`.
    pub(crate) fn reordered(&self, order: &[usize]) -> Self {
        let mut data = Vec::with_capacity(self.data.len());
        for &r in order {
            data.extend_from_slice(self.row(r));
        }
        self.with_rows(order.len(), data)
    }

    /// Matrices of one type and width stacked row-wise (a fused projection's parts); `None`
    /// when they differ in either.
    pub(crate) fn stacked(parts: &[&QMatrix]) -> Option<Self> {
        let first = parts.first()?;
        if parts.iter().any(|p| p.kind != first.kind || p.cols != first.cols) {
            return None;
        }
        let data = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
        Some(first.with_rows(parts.iter().map(|p| p.rows).sum(), data))
    }

    /// A matrix of `self`'s type and width holding `rows` rows of `data`.
    fn with_rows(&self, rows: usize, data: Vec<u8>) -> Self {
        QMatrix { data, rows, lanes: Default::default(), ..*self }
    }

    /// Row `o`'s blocks.
    fn row(&self, o: usize) -> &[u8] {
        &self.data[o * self.row_bytes..(o + 1) * self.row_bytes]
    }

    /// The weights as f32 `[rows, cols]` (tests and checks).
    #[cfg(test)]
    pub(crate) fn dequantized(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows * self.cols);
        self.dequantize_rows(0..self.rows, &mut out);
        out
    }

    /// `dst = x · selfᵀ + b` for `n` rows of `x` `[n, cols]`: `dst` `[n, rows]`. Outputs are
    /// split over the pool's threads by bands of weight rows; each weight row is read, and
    /// unpacked, once for up to four activation rows.
    pub(crate) fn product(&self, dst: &mut [f32], x: &[f32], bias: Option<&[f32]>, n: usize) {
        let q = ActRows::new(&x[..n * self.cols], n, self.cols);
        let rows = self.rows;
        const BAND: usize = 64;
        if n == 1 {
            // One row (a decoding step): each task writes its band of outputs in place.
            dst[..rows].par_chunks_mut(BAND).enumerate().for_each(|(band, out)| {
                let first = band * BAND;
                self.band(first..first + out.len(), &q, 0, 1, out, 0);
                if let Some(b) = bias {
                    out.iter_mut().zip(&b[first..]).for_each(|(d, b)| *d += b);
                }
            });
            return;
        }
        // Each task writes a band of outputs for every input row.
        self.by_bands(dst, bias, n, BAND, |range, out| self.product_range(out, &q, n, range));
    }

    /// Outputs `range` of [`product`](Self::product) for the `n` (at most [`QUANTISED_ROWS`](
    /// super::kernels::QUANTISED_ROWS)) rows quantised in `acts`, without bias, on the calling
    /// thread: `out[k·range.len() + j]` is output `range.start + j` of row `k`, the value
    /// `product` writes there.
    pub(crate) fn product_range(&self, out: &mut [f32], acts: &ActRows, n: usize, range: std::ops::Range<usize>) {
        let width = range.len();
        for r0 in (0..n).step_by(4) {
            let group = (n - r0).min(4);
            self.band(range.clone(), acts, r0, group, &mut out[r0 * width..], width);
        }
    }

    /// `dst` `[n, rows]` (plus `bias`) from bands of `band_rows` weight rows in parallel:
    /// `f(range, out)` writes weight rows `range` against all `n` activation rows into `out`
    /// `[n, range.len()]`, a buffer of the band's own.
    fn by_bands(
        &self,
        dst: &mut [f32],
        bias: Option<&[f32]>,
        n: usize,
        band_rows: usize,
        f: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync,
    ) {
        let rows = self.rows;
        let bands: Vec<Vec<f32>> = (0..rows.div_ceil(band_rows))
            .into_par_iter()
            .map(|band| {
                let (first, last) = (band * band_rows, ((band + 1) * band_rows).min(rows));
                let mut out = vec![0f32; n * (last - first)];
                f(first..last, &mut out);
                if let Some(b) = bias {
                    for row in out.chunks_exact_mut(last - first) {
                        row.iter_mut().zip(&b[first..last]).for_each(|(d, b)| *d += b);
                    }
                }
                out
            })
            .collect();
        for (band, out) in bands.iter().enumerate() {
            let (first, width) = (band * band_rows, out.len() / n);
            for r in 0..n {
                dst[r * rows + first..r * rows + first + width].copy_from_slice(&out[r * width..(r + 1) * width]);
            }
        }
    }

    /// `dst = x · selfᵀ + b` for `n` rows of `x` `[n, cols]` (a batch of a few dozen rows), in
    /// bands of [`TILE`] weight rows: the repacked blocks side by side through the AVX-512
    /// VNNI kernel of `lanes` where the CPU has it (on integer activations as fine as 16 bits;
    /// each row's outputs then do not depend on the rows beside it), otherwise each band
    /// unpacked to f32 into a buffer each thread keeps and multiplied with every row by a GEMM
    /// of its own. Against one GEMM over the f32 copy, the weights read from memory are the
    /// file's 4–8 bits instead of 32.
    pub(crate) fn product_tiled(&self, dst: &mut [f32], x: &[f32], bias: Option<&[f32]>, n: usize) {
        let rows = self.batch_rows(x, n);
        let dst = Disjoint::new(&mut dst[..n * self.rows]);
        (0..self.rows.div_ceil(TILE)).into_par_iter().for_each(|band| {
            let range = band * TILE..((band + 1) * TILE).min(self.rows);
            // SAFETY: `dst` holds `n` rows of `self.rows` outputs, and this band alone writes
            // outputs `range` of each.
            unsafe { self.tiled_band(&dst, &rows, range, bias) };
        });
    }

    /// Outputs `range` (one band of [`product_tiled`](Self::product_tiled)) of every row of
    /// `rows`, with `bias`, written into `dst` `[n, self.rows]` on the calling thread.
    ///
    /// # Safety
    /// No one else may read or write outputs `range` of `dst`'s rows meanwhile.
    pub(crate) unsafe fn tiled_band(
        &self,
        dst: &Disjoint<'_>,
        rows: &BatchRows<'_>,
        range: std::ops::Range<usize>,
        bias: Option<&[f32]>,
    ) {
        let stride = self.rows;
        // SAFETY: the caller's: outputs `range` of each of `dst`'s rows are this call's alone.
        unsafe {
            self.tile_range(dst.ptr().add(range.start), stride, rows, range.clone());
            if let Some(b) = bias {
                for k in 0..rows.n {
                    let out = dst.slice(k * stride + range.start..k * stride + range.end);
                    out.iter_mut().zip(&b[range.clone()]).for_each(|(d, b)| *d += b);
                }
            }
        }
    }

    /// The `n` rows of `x` `[n, cols]` prepared for [`tiled_band`](Self::tiled_band).
    pub(crate) fn batch_rows<'a>(&self, x: &'a [f32], n: usize) -> BatchRows<'a> {
        let x = &x[..n * self.cols];
        let bytes = self.lanes().map(|l| lanes::Bytes::new(l, x, n));
        BatchRows { x, n, bytes }
    }

    /// Whether [`product_tiled`](Self::product_tiled) multiplies this matrix's blocks side by
    /// side on this CPU, on integer activations as fine as 16 bits, at about twice the f32
    /// GEMM's rate here: then any number of rows is better multiplied that way (a prompt pass
    /// too) than by the f32 copy.
    pub(crate) fn batches_in_bytes(&self) -> bool {
        self.lanes().is_some()
    }

    /// The blocks side by side, where this CPU has their kernel and the layout has one.
    fn lanes(&self) -> Option<&lanes::Lanes> {
        if !lanes::available() {
            return None;
        }
        self.lanes.get_or_init(|| lanes::Lanes::new(self)).as_ref()
    }

    /// One band of [`product_tiled`](Self::product_tiled) (outputs `range`, [`TILE`] rows
    /// from a multiple of it) for `rows`, without bias, on the calling thread: output
    /// `range.start + j` of row `k` written at `out + k·stride + j`, the value `product_tiled`
    /// gives it.
    ///
    /// # Safety
    /// `out` must be valid for writes there, for every row `k < n` and `j < range.len()`, and
    /// nothing else may read or write those elements meanwhile.
    unsafe fn tile_range(&self, out: *mut f32, stride: usize, rows: &BatchRows<'_>, range: std::ops::Range<usize>) {
        #[cfg(target_arch = "x86_64")]
        if let (Some(l), Some(t)) = (self.lanes(), &rows.bytes)
            && range.start.is_multiple_of(lanes::LANES)
        {
            // SAFETY: `lanes()` is `Some` only where the CPU has the kernel's features; `out`
            // is the caller's.
            unsafe { lanes::tile(l, t, range, out, stride) };
            return;
        }
        let (x, n) = (rows.x, rows.n);
        let (cols, width) = (self.cols, range.len());
        let x = faer::MatRef::from_row_major_slice(&x[..n * cols], n, cols);
        TILE_BUFFER.with_borrow_mut(|tile| {
            tile.clear();
            self.dequantize_rows(range, tile);
            let w = faer::MatRef::from_row_major_slice(&tile[..], width, cols).transpose();
            // SAFETY: the caller's: `n` rows of `width` writable elements, `stride` apart.
            let dst = unsafe { faer::MatMut::from_raw_parts_mut(out, n, width, stride as isize, 1) };
            faer::linalg::matmul::matmul(dst, faer::Accum::Replace, x, w, 1.0, faer::Par::Seq);
        });
    }

    /// Weight rows `range` as f32, appended to `out`.
    fn dequantize_rows(&self, range: std::ops::Range<usize>, out: &mut Vec<f32>) {
        let nb = self.cols / QK;
        out.reserve(range.len() * self.cols);
        for o in range {
            let row = self.row(o);
            #[cfg(target_arch = "x86_64")]
            prefetch_ahead(row.as_ptr(), self.row_bytes);
            match self.packed {
                Packed::File(kind) => crate::quant::dequantize(kind, row, out),
                #[cfg(target_arch = "x86_64")]
                Packed::Q4 if avx512::available() => {
                    let start = out.len();
                    out.resize(start + self.cols, 0.0);
                    // SAFETY: `available()`: the CPU has the kernel's features.
                    unsafe { avx512::dequantize_q4(row, nb, &mut out[start..]) };
                }
                Packed::Q4 => {
                    let (d, m, qs) = (&row[..4 * nb], &row[4 * nb..8 * nb], &row[8 * nb..]);
                    for b in 0..nb {
                        let (d, m) = (f32_at(d, 4 * b), f32_at(m, 4 * b));
                        let qs = &qs[16 * b..16 * b + 16];
                        let mut block = [0f32; QK];
                        let (lo, hi) = block.split_at_mut(16);
                        for ((l, h), q) in lo.iter_mut().zip(hi.iter_mut()).zip(qs) {
                            *l = d * f32::from(q & 0xf) + m;
                            *h = d * f32::from(q >> 4) + m;
                        }
                        out.extend_from_slice(&block);
                    }
                }
                Packed::Q8 => {
                    let (d, qs) = (&row[..4 * nb], &row[4 * nb..]);
                    for b in 0..nb {
                        let d = f32_at(d, 4 * b);
                        out.extend(qs[32 * b..32 * b + 32].iter().map(|&q| d * f32::from(q as i8)));
                    }
                }
            }
        }
    }

    /// Weight rows `range` against activation rows `r0..r0 + n` (`n` at most 4): `out[k·stride
    /// + j]` is weight row `range.start + j` times activation row `r0 + k`.
    fn band(&self, range: std::ops::Range<usize>, q: &ActRows, r0: usize, n: usize, out: &mut [f32], stride: usize) {
        let w = &self.data[range.start * self.row_bytes..range.end * self.row_bytes];
        #[cfg(target_arch = "x86_64")]
        if self.packed == Packed::Q4 && avx512::available() {
            // SAFETY: `available()`: the CPU has the kernel's features.
            unsafe { avx512::band_q4(w, self.row_bytes, q, r0..r0 + n, out, stride) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if fast_kernels() && !matches!(self.packed, Packed::File(_)) {
            // SAFETY: `fast_kernels()`: the CPU has AVX2 and FMA.
            unsafe { avx2::band(self.packed, w, self.row_bytes, q, r0..r0 + n, out, stride) };
            return;
        }
        for (j, w) in w.chunks_exact(self.row_bytes).enumerate() {
            for k in 0..n {
                out[k * stride + j] = portable::dot(self.packed, w, q, r0 + k);
            }
        }
    }
}

/// A batch's activation rows for [`QMatrix::tiled_band`], made by [`QMatrix::batch_rows`].
pub(crate) struct BatchRows<'a> {
    x: &'a [f32],
    n: usize,
    bytes: Option<lanes::Bytes>,
}

/// Weight rows per band of [`QMatrix::product_tiled`]: a band of the widest projection
/// here (1,536 columns) unpacks to 768 KiB, inside a core's L2.
pub(crate) const TILE: usize = 128;

thread_local! {
    /// Each thread's band of unpacked weights, kept between calls.
    static TILE_BUFFER: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The largest activation value after scaling.
const A_MAX: f32 = 32767.0;

/// Activation rows as 16-bit blocks: per block of 32 a scale `d`, its values `q` (`x ≈ d·q`),
/// the sums of `q` over each half (the K-quants' offsets), and `d` times the whole block's
/// sum (the repacked blocks' minimum multiplies it).
pub(crate) struct ActRows {
    cols: usize,
    d: Vec<f32>,
    sums: Vec<[i32; 2]>,
    ds: Vec<f32>,
    q: Vec<i16>,
}

/// One activation row's blocks.
pub(super) struct ActRow<'a> {
    d: &'a [f32],
    sums: &'a [[i32; 2]],
    ds: &'a [f32],
    q: &'a [i16],
}

impl ActRows {
    pub(crate) fn new(x: &[f32], n: usize, cols: usize) -> Self {
        let blocks = n * cols / QK;
        let mut d = Vec::with_capacity(blocks);
        let (mut sums, mut ds) = (Vec::with_capacity(blocks), Vec::with_capacity(blocks));
        let mut q = vec![0i16; n * cols];
        for (block, out) in x.chunks_exact(QK).zip(q.chunks_exact_mut(QK)) {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = amax / A_MAX;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            for (o, v) in out.iter_mut().zip(block) {
                *o = (v * inv).round() as i16;
            }
            let half = |h: &[i16]| h.iter().map(|&v| i32::from(v)).sum::<i32>();
            let s = [half(&out[..16]), half(&out[16..])];
            sums.push(s);
            ds.push(scale * (s[0] + s[1]) as f32);
            d.push(scale);
        }
        ActRows { cols, d, sums, ds, q }
    }

    /// Row `r`'s blocks.
    pub(super) fn row(&self, r: usize) -> ActRow<'_> {
        let per = self.cols / QK;
        ActRow {
            d: &self.d[r * per..(r + 1) * per],
            sums: &self.sums[r * per..(r + 1) * per],
            ds: &self.ds[r * per..(r + 1) * per],
            q: &self.q[r * self.cols..(r + 1) * self.cols],
        }
    }
}

/// How far ahead of the weight row being multiplied the kernels ask for the bytes of another:
/// a decoding step reads ~100 MB of weights once, and the hardware's prefetching alone left one
/// thread at 4.9–6.6 GB/s on a large matrix of 4-bit blocks where it reads 9–10 GB/s with this
/// (the Xeon of docs/benchmarks.md's issue 27 sections, 576 columns; 2–16 KiB measured).
const PREFETCH_BYTES: usize = 4096;

/// Asks the cache for the row that lies [`PREFETCH_BYTES`] (at least one row) after `row`, a
/// weight row of `row_bytes` bytes. Past the band, it fetches what another thread
/// multiplies, or nothing: a prefetch never faults.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_ahead(row: *const u8, row_bytes: usize) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    let ahead = row.wrapping_add((PREFETCH_BYTES / row_bytes).max(1) * row_bytes);
    for line in (0..row_bytes).step_by(64) {
        // SAFETY: SSE is part of x86_64; a prefetch reads nothing the program sees and never
        // faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line).cast()) };
    }
}

/// Whether the AVX2 kernels may run.
fn fast_kernels() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        kailin_core::simd::avx2_fma()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
