//! FNV-1a digests of training data: name the data a cache or a checkpoint belongs to.

use crate::encode::Row;

/// A running FNV-1a (64-bit) hash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub(crate) fn u32(&mut self, x: u32) {
        self.bytes(&x.to_le_bytes());
    }

    /// A row's length, ids, weights and segments.
    pub(crate) fn row(&mut self, row: &Row) {
        self.u32(row.ids.len() as u32);
        row.ids.iter().for_each(|&t| self.u32(t));
        row.weights.iter().for_each(|&w| self.u32(w.to_bits()));
        if let Some(segments) = &row.segments {
            segments.iter().for_each(|&s| self.u32(s));
        }
    }

    pub(crate) fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}
