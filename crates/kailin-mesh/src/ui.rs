//! UI → descriptor lookup for batch scoring, which looks up two UIs per pair.
//!
//! MeSH descriptor UIs are one letter and digits (`D009369`, `D000068877`), their numbers
//! below 10⁵: such a UI is found by its number in a flat table (400 KB for MeSH, which stays
//! in a core's cache) with no string hashed or compared. Any other UI — another shape, a
//! number far beyond the hierarchy's size, or two UIs with one number written with different
//! zero padding — goes to a hash map, so every hierarchy is served, only the common shape fast.

use rustc_hash::FxHashMap;

/// Digits a table UI may have (so its number fits any `usize`).
const MAX_DIGITS: usize = 9;
/// Low bits of a table entry: descriptor id + 1 (0: empty); the bits above hold the digit count.
const ID_BITS: u32 = 27;

#[derive(Debug, Clone, Default)]
pub(crate) struct UiLookup {
    /// The letter the table's UIs share.
    letter: u8,
    /// By the UI's number: `digits << ID_BITS | (id + 1)`, 0 when no UI has the number.
    table: Vec<u32>,
    /// UIs outside the table.
    rest: FxHashMap<Box<str>, u32>,
}

/// `ui`'s number and digit count when it is `letter` then 1 to [`MAX_DIGITS`] ASCII digits.
#[inline]
fn number(ui: &[u8], letter: u8) -> Option<(usize, u32)> {
    let (&first, digits) = ui.split_first()?;
    if first != letter || digits.is_empty() || digits.len() > MAX_DIGITS {
        return None;
    }
    let mut n = 0usize;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + usize::from(d);
    }
    Some((n, digits.len() as u32))
}

impl UiLookup {
    /// The lookup of `(ui, id)` pairs (UIs unique).
    pub(crate) fn new<'a>(uis: impl Iterator<Item = (&'a str, u32)> + Clone) -> Self {
        // The commonest first byte is the table's letter ('D' for MeSH descriptors).
        let mut counts = [0usize; 256];
        let mut n = 0;
        for (ui, _) in uis.clone() {
            n += 1;
            if let Some(&b) = ui.as_bytes().first() {
                counts[usize::from(b)] += 1;
            }
        }
        let letter = (0..=255u8).max_by_key(|&b| counts[usize::from(b)]).unwrap_or(b'D');
        // Numbers past this stay out of the table, which keeps it a few times the hierarchy's size.
        let cap = 8 * n + (1 << 16);
        let mut lookup = UiLookup { letter, table: Vec::new(), rest: FxHashMap::default() };
        for (ui, id) in uis {
            match number(ui.as_bytes(), letter) {
                Some((k, digits)) if k < cap && id < (1 << ID_BITS) - 1 => {
                    if lookup.table.len() <= k {
                        lookup.table.resize(k + 1, 0);
                    }
                    if lookup.table[k] == 0 {
                        lookup.table[k] = digits << ID_BITS | (id + 1);
                        continue;
                    }
                    // Same number, other padding: the first keeps the slot.
                    lookup.rest.insert(ui.into(), id);
                }
                _ => {
                    lookup.rest.insert(ui.into(), id);
                }
            }
        }
        lookup
    }

    /// The id of `ui`, exactly as written.
    #[inline]
    pub(crate) fn get(&self, ui: &str) -> Option<u32> {
        if let Some((k, digits)) = number(ui.as_bytes(), self.letter)
            && let Some(&e) = self.table.get(k)
            && e != 0
            && e >> ID_BITS == digits
        {
            return Some((e & ((1 << ID_BITS) - 1)) - 1);
        }
        if self.rest.is_empty() { None } else { self.rest.get(ui).copied() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(uis: &[&str]) -> UiLookup {
        UiLookup::new(uis.iter().enumerate().map(|(i, u)| (*u, i as u32)))
    }

    #[test]
    fn finds_every_ui_exactly_as_written() {
        let uis = ["D000001", "D009369", "D000068877", "D068877", "C000123", "Neoplasms", "D", "D99999999999", "D5"];
        let l = lookup(&uis);
        for (i, u) in uis.iter().enumerate() {
            assert_eq!(l.get(u), Some(i as u32), "{u}");
        }
        for missing in ["D000002", "D0009369", "D9369", "d009369", "", "D00000A", " D009369", "D00006887", "C000124"] {
            assert_eq!(l.get(missing), None, "{missing:?}");
        }
        // The two paddings of 68877 are told apart (one in the table, one in the map).
        assert_ne!(l.get("D000068877"), l.get("D068877"));
    }

    #[test]
    fn table_stays_small_for_huge_numbers() {
        let l = lookup(&["D1", "D999999999"]);
        assert!(l.table.len() <= 2, "{}", l.table.len());
        assert_eq!(l.get("D999999999"), Some(1));
        assert_eq!(l.get("D1"), Some(0));
    }

    #[test]
    fn empty_hierarchy_finds_nothing() {
        let l = lookup(&[]);
        assert_eq!(l.get("D000001"), None);
    }
}
