//! FNV-1a (64-bit): the one stable, platform-independent hash of the workspace, for shard
//! assignment, n-gram fingerprints and the digests that name the data a cache or checkpoint
//! belongs to. Not for security: it is fast and stable, not collision-resistant.

/// A running FNV-1a (64-bit) hash. Its values are a contract: shards of existing runs and the
/// digests stored in caches and checkpoints depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// A fresh hash.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
        self
    }

    /// Feeds a `u32` as its four little-endian bytes.
    pub fn u32(&mut self, x: u32) -> &mut Self {
        self.bytes(&x.to_le_bytes())
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }

    /// The hash so far as 16 lower-case hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// FNV-1a (64-bit) of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    Fnv64::new().bytes(bytes).finish()
}

/// A file's digest: its length and the FNV-1a of its bytes (`LEN:HEX`), read in blocks; what
/// caches, checkpoints and resumable outputs record to name the files they were made from.
pub fn digest_file(path: impl AsRef<std::path::Path>) -> crate::Result<String> {
    use std::io::Read;
    let path = path.as_ref();
    let io = |source| crate::Error::Io { path: path.to_owned(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut h = Fnv64::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.bytes(&buf[..n]);
        len += n as u64;
    }
    Ok(format!("{len}:{}", h.hex()))
}

/// A directory's digest: the [`digest_file`] of each file directly in it whose name `keep`
/// accepts, with its name, in name order (`dir:COUNT:HEX`); what names a model directory.
pub fn digest_dir(dir: impl AsRef<std::path::Path>, keep: impl Fn(&str) -> bool) -> crate::Result<String> {
    let dir = dir.as_ref();
    let entries = std::fs::read_dir(dir).map_err(|source| crate::Error::Io { path: dir.to_owned(), source })?;
    let mut names: Vec<String> =
        entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| keep(n)).collect();
    names.sort();
    let mut h = Fnv64::new();
    for name in &names {
        h.bytes(name.as_bytes()).bytes(&[0]).bytes(digest_file(dir.join(name))?.as_bytes());
    }
    Ok(format!("dir:{}:{}", names.len(), h.hex()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_digests_are_length_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"foobar").unwrap();
        assert_eq!(digest_file(&p).unwrap(), "6:85944171f73967e8");
        assert!(digest_file(dir.path().join("missing")).is_err());
    }

    #[test]
    fn published_test_vectors() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(Fnv64::new().bytes(b"foo").bytes(b"bar").hex(), "85944171f73967e8");
        assert_eq!(Fnv64::new().u32(1).finish(), fnv1a(&[1, 0, 0, 0]));
    }
}
