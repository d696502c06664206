//! The compact binary cache: the hierarchy's tables as little-endian arrays, memory-mapped on
//! load and validated (bounds, UTF-8, checksum) before use.
//!
//! Layout: `MAGIC`, a `u64` checksum of everything after it, then sections in a fixed order,
//! each a `u64` byte length followed by the bytes, padded to 8 bytes.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::builder::{build_graph, finish};
use crate::error::{Error, Result};
use crate::mesh::{Mesh, NONE, Span, Tables};

/// First bytes of every cache file (format version 1).
pub(crate) const MAGIC: &[u8] = b"KAILIN-MESH-CACHE-v1\n\0\0\0";

/// A fast checksum of the payload (detects truncation and corruption, not tampering).
fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        h = (h ^ w).wrapping_mul(0x0100_0000_01B3).rotate_left(23);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
    }
    h
}

struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(&(b.len() as u64).to_le_bytes());
        self.0.extend_from_slice(b);
        while !self.0.len().is_multiple_of(8) {
            self.0.push(0);
        }
    }
    fn u32s(&mut self, v: &[u32]) {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.bytes(&b);
    }
    fn spans(&mut self, v: &[Span]) {
        let flat: Vec<u32> = v.iter().flat_map(|s| [s.start, s.len]).collect();
        self.u32s(&flat);
    }
}

pub(crate) fn save(mesh: &Mesh, path: &Path) -> Result<()> {
    let t = &mesh.tables;
    let mut w = Writer(Vec::with_capacity(t.strings.len() * 3));
    // The source's file name only: a cache is a file to copy between machines, and must not
    // carry the directory layout of the one that wrote it.
    let source =
        Path::new(&mesh.origin).file_name().map_or_else(|| mesh.origin.clone(), |n| n.to_string_lossy().into_owned());
    w.bytes(source.as_bytes());
    w.bytes(t.strings.as_bytes());
    w.spans(&t.ui);
    w.spans(&t.name);
    w.u32s(&t.entry_off);
    w.spans(&t.entries);
    w.u32s(&t.tree_off);
    w.spans(&t.tree);
    w.u32s(&t.tree_parent);
    w.u32s(&t.tree_owner);
    w.u32s(&t.anc_off);
    w.u32s(&t.anc);
    w.u32s(&t.ui_index);
    w.bytes(t.keys.as_bytes());
    w.spans(&t.key_span);
    w.u32s(&t.key_desc);
    w.bytes(&t.key_is_name);
    let payload = w.0;

    Ok(kailin_core::write_atomic_with(path, |f| {
        f.write_all(MAGIC)?;
        f.write_all(&checksum(&payload).to_le_bytes())?;
        f.write_all(&payload)
    })?)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn bad(&self, message: impl Into<String>) -> Error {
        Error::Cache { path: self.path.to_owned(), message: message.into() }
    }
    fn bytes(&mut self, what: &str) -> Result<&'a [u8]> {
        let len_end = self.pos + 8;
        let len = self
            .buf
            .get(self.pos..len_end)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
            .ok_or_else(|| self.bad(format!("truncated before section `{what}`")))?;
        let end = len_end.checked_add(len).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| self.bad(format!("section `{what}` runs past the end of the file")))?;
        let out = &self.buf[len_end..end];
        self.pos = end.next_multiple_of(8);
        Ok(out)
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let b = self.bytes(what)?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| self.bad(format!("section `{what}` is not UTF-8")))
    }
    fn u32s(&mut self, what: &str) -> Result<Vec<u32>> {
        let b = self.bytes(what)?;
        if b.len() % 4 != 0 {
            return Err(self.bad(format!("section `{what}` is not a u32 array")));
        }
        Ok(b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
    fn spans(&mut self, what: &str, arena: &str) -> Result<Vec<Span>> {
        let flat = self.u32s(what)?;
        if flat.len() % 2 != 0 {
            return Err(self.bad(format!("section `{what}` is not a span array")));
        }
        let spans: Vec<Span> = flat.chunks_exact(2).map(|c| Span { start: c[0], len: c[1] }).collect();
        for s in &spans {
            let (a, b) = (s.start as usize, s.start as usize + s.len as usize);
            if arena.get(a..b).is_none() {
                return Err(self.bad(format!("section `{what}` points outside its string data")));
            }
        }
        Ok(spans)
    }
}

pub(crate) fn load(path: &Path) -> Result<Mesh> {
    let started = std::time::Instant::now();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is read-only and dropped before this function returns; every value
    // read from it is copied and validated. A concurrent truncation of the file by another
    // process could fault (SIGBUS), as with any memory-mapped reader.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let bad = |m: &str| Error::Cache { path: path.to_owned(), message: m.to_owned() };
    if !map.starts_with(MAGIC) {
        return Err(bad("not a kailin MeSH cache of this version (magic mismatch)"));
    }
    let body = &map[MAGIC.len()..];
    let (sum, payload) = body.split_at_checked(8).ok_or_else(|| bad("truncated header"))?;
    if u64::from_le_bytes(sum.try_into().unwrap_or([0; 8])) != checksum(payload) {
        return Err(bad("checksum mismatch: the file is truncated or corrupt"));
    }
    let mut r = Reader { buf: payload, pos: 0, path };
    // The source's file name, kept for the record; errors name the cache the user gave.
    let _source = r.string("origin")?;
    let origin = path.display().to_string();
    let strings = r.string("strings")?;
    let mut t = Tables {
        ui: r.spans("ui", &strings)?,
        name: r.spans("name", &strings)?,
        entry_off: r.u32s("entry_off")?,
        entries: r.spans("entries", &strings)?,
        tree_off: r.u32s("tree_off")?,
        tree: r.spans("tree", &strings)?,
        tree_parent: r.u32s("tree_parent")?,
        tree_owner: r.u32s("tree_owner")?,
        anc_off: r.u32s("anc_off")?,
        anc: r.u32s("anc")?,
        ui_index: r.u32s("ui_index")?,
        ..Tables::default()
    };
    t.keys = r.string("keys")?;
    t.key_span = r.spans("key_span", &t.keys)?;
    t.key_desc = r.u32s("key_desc")?;
    t.key_is_name = r.bytes("key_is_name")?.to_vec();
    t.strings = strings;
    drop(map);
    validate(&t).map_err(|m| bad(&m))?;
    let graph = build_graph(&t);
    let mesh = finish(t, graph, origin)?;
    tracing::debug!(path = %path.display(), elapsed = ?started.elapsed(), "loaded MeSH cache");
    Ok(mesh)
}

/// Structural checks that make every later index into the tables safe.
fn validate(t: &Tables) -> std::result::Result<(), String> {
    let n = t.ui.len();
    if n == 0 {
        return Err("no descriptors".into());
    }
    let csr = |name: &str, off: &[u32], len: usize| -> std::result::Result<(), String> {
        let ok = off.len() == n + 1
            && off.first() == Some(&0)
            && off.last().map(|&l| l as usize) == Some(len)
            && off.windows(2).all(|w| w[0] <= w[1]);
        if ok { Ok(()) } else { Err(format!("offsets `{name}` are inconsistent")) }
    };
    if t.name.len() != n || t.ui_index.len() != n {
        return Err("descriptor tables disagree in length".into());
    }
    csr("entry_off", &t.entry_off, t.entries.len())?;
    csr("tree_off", &t.tree_off, t.tree.len())?;
    csr("anc_off", &t.anc_off, t.anc.len())?;
    let rows = t.tree.len();
    if t.tree_parent.len() != rows || t.tree_owner.len() != rows {
        return Err("tree tables disagree in length".into());
    }
    if t.tree_owner.iter().chain(&t.anc).chain(&t.ui_index).chain(&t.key_desc).any(|&d| d as usize >= n) {
        return Err("a descriptor index is out of range".into());
    }
    for d in 0..n {
        if Tables::range(&t.tree_off, d).any(|row| t.tree_owner[row] as usize != d) {
            return Err(format!("tree numbers of descriptor {d} name another owner"));
        }
    }
    for (row, &p) in t.tree_parent.iter().enumerate() {
        // A parent must be a strict dot-prefix: this also rules out cycles.
        if p != NONE {
            let child = t.tree[row].get(&t.strings);
            let parent = t.tree.get(p as usize).map(|s| s.get(&t.strings));
            if !parent.is_some_and(|pa| child.len() > pa.len() && child.starts_with(pa)) {
                return Err(format!("tree number row {row} has an invalid parent"));
            }
        }
    }
    if t.key_span.len() != t.key_desc.len() || t.key_is_name.len() != t.key_desc.len() {
        return Err("lookup tables disagree in length".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Corrupt caches whose checksum was recomputed (a crafted file, or a writer bug) must be
    /// rejected by validation or load consistently, never panic.
    #[test]
    fn validation_survives_corruption_past_the_checksum() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mesh/mini.tsv");
        let mesh = Mesh::load(root).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.cache");
        mesh.save_cache(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let header = MAGIC.len() + 8;
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut rejected = 0;
        for _ in 0..3000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bytes = good.clone();
            let at = header + (state as usize % (bytes.len() - header));
            bytes[at] = (state >> 40) as u8;
            let sum = checksum(&bytes[header..]);
            bytes[MAGIC.len()..header].copy_from_slice(&sum.to_le_bytes());
            let bad = dir.path().join("bad.cache");
            std::fs::write(&bad, &bytes).unwrap();
            match Mesh::load(&bad) {
                Ok(m) => {
                    // Whatever loaded must answer queries without panicking.
                    for d in m.ids() {
                        let _ = m.descriptor(d).ui();
                        let _ = m.intrinsic_ic().resnik(d, d);
                    }
                }
                Err(_) => rejected += 1,
            }
        }
        assert!(rejected > 100, "validation rejected only {rejected} corrupt caches");
    }
}
