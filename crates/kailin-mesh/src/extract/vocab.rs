//! The dictionary's token vocabulary.

use rustc_hash::FxHashMap;

use super::normalize::normalize;

/// Token → id map, tuned for the hot path: keys of at most 16 bytes (nearly all) are packed
/// into a `u128` (tokens never contain NUL, so zero padding is unambiguous), so a lookup
/// hashes and compares one integer. Values carry [`FIXED`] when the key is its own normal
/// form, which lets the extractor skip normalisation for tokens found as written.
#[derive(Debug, Clone, Default)]
pub(super) struct Vocab {
    /// Keys of at most 8 bytes (most tokens): a table small enough to stay in cache.
    word: FxHashMap<u64, u32>,
    /// Keys of 9 to 16 bytes.
    short: FxHashMap<u128, u32>,
    long: FxHashMap<Box<str>, u32>,
}

/// Flag bit of a [`Vocab`] value: the key is a fixed point of [`normalize`].
pub(super) const FIXED: u32 = 1 << 31;

fn pack(key: &str) -> Option<u128> {
    let b = key.as_bytes();
    (b.len() <= 16).then(|| {
        let mut buf = [0u8; 16];
        buf[..b.len()].copy_from_slice(b);
        u128::from_le_bytes(buf)
    })
}

impl Vocab {
    pub(super) fn len(&self) -> usize {
        self.word.len() + self.short.len() + self.long.len()
    }
    /// Looks up a packed key of `len` bytes.
    #[inline]
    pub(super) fn get_packed(&self, packed: u128, len: usize) -> Option<u32> {
        if len <= 8 { self.word.get(&(packed as u64)).copied() } else { self.short.get(&packed).copied() }
    }
    #[inline]
    pub(super) fn get(&self, key: &str) -> Option<u32> {
        match pack(key) {
            Some(k) => self.get_packed(k, key.len()),
            None => self.long.get(key).copied(),
        }
    }
    /// The id of `key` (a normal form), added if new.
    pub(super) fn intern(&mut self, key: &str) -> u32 {
        let next = self.len() as u32;
        let mut probe = String::new();
        normalize(key, &mut probe);
        let value = next | if probe == key { FIXED } else { 0 };
        let v = match pack(key) {
            Some(k) if key.len() <= 8 => *self.word.entry(k as u64).or_insert(value),
            Some(k) => *self.short.entry(k).or_insert(value),
            None => *self.long.entry(key.into()).or_insert(value),
        };
        v & !FIXED
    }
}
