//! Word tokens and hashed word n-grams, shared by decontamination and deduplication.

/// Lower-cased alphanumeric word tokens.
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Hashes of every window of `n` consecutive words, with the window's first word index.
pub(crate) fn ngram_hashes(words: &[String], n: usize) -> impl Iterator<Item = (usize, u64)> + '_ {
    let hashes: Vec<u64> = words.iter().map(|w| kailin_core::fnv1a(w.as_bytes())).collect();
    (0..(words.len() + 1).saturating_sub(n.max(1))).map(move |i| {
        let h = hashes[i..i + n.max(1)]
            .iter()
            .fold(0x9E37_79B9_7F4A_7C15u64, |acc, &w| (acc.rotate_left(5) ^ w).wrapping_mul(0x0100_0000_01b3));
        (i, h)
    })
}
