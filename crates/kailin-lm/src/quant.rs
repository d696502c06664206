//! GGML tensor types and their dequantisation to `f32`.
//!
//! Block layouts follow ggml (`ggml-common.h`); values are reconstructed exactly as ggml's
//! reference `dequantize_row_*` functions do, and checked against the independent numpy
//! implementation of the `gguf` Python package (test vectors in `fixtures/gguf/`).

/// A GGML tensor element type this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
    /// 32 weights: f16 scale, 32 × 4-bit (offset 8).
    Q4_0,
    /// 32 weights: f16 scale and minimum, 32 × 4-bit.
    Q4_1,
    /// 32 weights: f16 scale, 32 × i8.
    Q8_0,
    /// 256 weights: super-block scale/min, 8 sub-blocks with 6-bit scales/mins, 4-bit values.
    Q4K,
    /// As `Q4K` with a fifth bit per value.
    Q5K,
    /// 256 weights: 16 sub-blocks with i8 scales, 6-bit values.
    Q6K,
}

impl GgmlType {
    /// The type of a GGML type id, if supported.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4K,
            13 => GgmlType::Q5K,
            14 => GgmlType::Q6K,
            30 => GgmlType::Bf16,
            _ => return None,
        })
    }

    /// Elements per block.
    pub fn block_len(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0 => 32,
            GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::Bf16 => 2,
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            GgmlType::Q8_0 => 34,
            GgmlType::Q4K => 144,
            GgmlType::Q5K => 176,
            GgmlType::Q6K => 210,
        }
    }

    /// Bytes holding `elements` values, or `None` if `elements` is not a whole number of
    /// blocks (or overflows).
    pub fn bytes_for(self, elements: u64) -> Option<u64> {
        let block = self.block_len() as u64;
        elements.is_multiple_of(block).then(|| (elements / block).checked_mul(self.block_bytes() as u64)).flatten()
    }
}

/// IEEE half to f32.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalise.
            let shift = frac.leading_zeros() - 21;
            let frac = (frac << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (frac << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]]))
}

/// The 6-bit scale and minimum of sub-block `j` of a Q4_K/Q5_K block (ggml's
/// `get_scale_min_k4`).
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (f32, f32) {
    let (d, m) = if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    };
    (f32::from(d), f32::from(m))
}

/// Dequantises `data` (a whole number of blocks of `kind`) into `out`, which it extends.
///
/// # Panics
/// If `data` is not a whole number of blocks: callers check sizes first (the GGUF parser does).
pub fn dequantize(kind: GgmlType, data: &[u8], out: &mut Vec<f32>) {
    let bb = kind.block_bytes();
    assert!(data.len().is_multiple_of(bb), "dequantize: {} bytes is not a whole number of {kind:?} blocks", data.len());
    out.reserve(data.len() / bb * kind.block_len());
    for b in data.chunks_exact(bb) {
        match kind {
            GgmlType::F32 => out.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            GgmlType::F16 => out.push(f16_at(b, 0)),
            GgmlType::Bf16 => out.push(f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)),
            GgmlType::Q8_0 => {
                let d = f16_at(b, 0);
                out.extend(b[2..34].iter().map(|&q| d * f32::from(q as i8)));
            }
            GgmlType::Q4_0 => {
                let d = f16_at(b, 0);
                let qs = &b[2..18];
                out.extend(qs.iter().map(|&q| d * (f32::from(q & 0xf) - 8.0)));
                out.extend(qs.iter().map(|&q| d * (f32::from(q >> 4) - 8.0)));
            }
            GgmlType::Q4_1 => {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                let qs = &b[4..20];
                out.extend(qs.iter().map(|&q| d * f32::from(q & 0xf) + m));
                out.extend(qs.iter().map(|&q| d * f32::from(q >> 4) + m));
            }
            GgmlType::Q4K => {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                let scales = &b[4..16];
                let qs = &b[16..144];
                for (chunk, q) in qs.chunks_exact(32).enumerate() {
                    let (sc1, m1) = scale_min_k4(2 * chunk, scales);
                    let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
                    out.extend(q.iter().map(|&v| d * sc1 * f32::from(v & 0xf) - dmin * m1));
                    out.extend(q.iter().map(|&v| d * sc2 * f32::from(v >> 4) - dmin * m2));
                }
            }
            GgmlType::Q5K => {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                let scales = &b[4..16];
                let qh = &b[16..48];
                let ql = &b[48..176];
                for (chunk, q) in ql.chunks_exact(32).enumerate() {
                    let (sc1, m1) = scale_min_k4(2 * chunk, scales);
                    let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
                    let (u1, u2) = (1u8 << (2 * chunk), 2u8 << (2 * chunk));
                    let hi = |h: u8, u: u8| if h & u != 0 { 16.0 } else { 0.0 };
                    out.extend(q.iter().zip(qh).map(|(&v, &h)| d * sc1 * (f32::from(v & 0xf) + hi(h, u1)) - dmin * m1));
                    out.extend(q.iter().zip(qh).map(|(&v, &h)| d * sc2 * (f32::from(v >> 4) + hi(h, u2)) - dmin * m2));
                }
            }
            GgmlType::Q6K => {
                let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
                let d = f16_at(b, 208);
                let start = out.len();
                out.resize(start + 256, 0.0);
                let y = &mut out[start..];
                for half in 0..2 {
                    let (ql, qh, sc, y) = (&ql[64 * half..], &qh[32 * half..], &sc[8 * half..], &mut y[128 * half..]);
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = i32::from((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32;
                        let q2 = i32::from((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                        let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                        let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                        let s = |k: usize| d * f32::from(sc[is + k] as i8);
                        y[l] = s(0) * q1 as f32;
                        y[l + 32] = s(2) * q2 as f32;
                        y[l + 64] = s(4) * q3 as f32;
                        y[l + 96] = s(6) * q4 as f32;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24), "smallest subnormal");
        assert_eq!(f16_to_f32(0x0200), 2f32.powi(-15), "a subnormal");
        assert!(f16_to_f32(0x7c00).is_infinite() && f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn q8_0_and_q4_1_by_hand() {
        let mut block = vec![0x00, 0x3c]; // d = 1.0
        block.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let mut out = Vec::new();
        dequantize(GgmlType::Q8_0, &block, &mut out);
        assert_eq!(out, (0..32).map(|i| (i - 16) as f32).collect::<Vec<_>>());

        let mut block = vec![0x00, 0x40, 0x00, 0xbc]; // d = 2.0, m = -1.0
        block.extend((0..16).map(|i| (i as u8) | ((15 - i as u8) << 4)));
        out.clear();
        dequantize(GgmlType::Q4_1, &block, &mut out);
        let want: Vec<f32> =
            (0..16).map(|i| 2.0 * i as f32 - 1.0).chain((0..16).map(|i| 2.0 * (15 - i) as f32 - 1.0)).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn sizes() {
        assert_eq!(GgmlType::Q4K.bytes_for(512), Some(288));
        assert_eq!(GgmlType::Q4_0.bytes_for(33), None);
        assert_eq!(GgmlType::F32.bytes_for(u64::MAX), None, "overflow is refused");
        assert_eq!(GgmlType::from_id(7), None, "Q5_1 is not supported");
    }
}
