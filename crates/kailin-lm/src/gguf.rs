//! GGUF v2/v3 model files (llama.cpp's format): header, metadata, tensor infos and data.
//!
//! A GGUF file is untrusted input. The parser checks every count, length and offset against
//! the bytes actually present before using or allocating for it; a truncated or lying file is
//! an [`Error::Gguf`] naming the byte offset, never a panic or an allocation of the claimed size.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::quant::{GgmlType, dequantize};

const MAGIC: &[u8; 4] = b"GGUF";
/// ggml's limit on tensor rank.
const MAX_DIMS: u32 = 4;
/// Nesting limit for arrays of arrays in metadata.
const MAX_DEPTH: u32 = 4;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// `u8`.
    U8(u8),
    /// `i8`.
    I8(i8),
    /// `u16`.
    U16(u16),
    /// `i16`.
    I16(i16),
    /// `u32`.
    U32(u32),
    /// `i32`.
    I32(i32),
    /// `u64`.
    U64(u64),
    /// `i64`.
    I64(i64),
    /// `f32`.
    F32(f32),
    /// `f64`.
    F64(f64),
    /// `bool`.
    Bool(bool),
    /// A UTF-8 string.
    String(String),
    /// An array (of one element type).
    Array(Vec<GgufValue>),
}

impl GgufValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The value as a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an array.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// Where a tensor's data lies and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// Tensor name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions, ggml order (innermost first).
    pub dims: Vec<u64>,
    /// Element type.
    pub kind: GgmlType,
    /// Absolute byte offset of the data in the file.
    pub offset: u64,
    /// Byte length of the data.
    pub bytes: u64,
}

impl GgufTensorInfo {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file: metadata and tensor infos, with the tensor data mapped (not read) from
/// disk.
pub struct Gguf {
    version: u32,
    metadata: BTreeMap<String, GgufValue>,
    tensors: Vec<GgufTensorInfo>,
    storage: Storage,
    origin: String,
}

impl std::fmt::Debug for Gguf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf")
            .field("origin", &self.origin)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// A bounds-checked reader over the file's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    origin: &'a str,
}

impl<'a> Cursor<'a> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::Gguf { origin: self.origin.to_owned(), offset: self.pos as u64, message: message.into() }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format!("{what} needs {n} bytes, {} left", self.remaining())));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let b = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        self.array::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        self.array::<8>(what).map(u64::from_le_bytes)
    }

    /// A length claimed by the file, checked against what could still follow it.
    fn count(&mut self, what: &str, min_item_bytes: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let limit = (self.remaining() / min_item_bytes.max(1)) as u64;
        if n > limit {
            return Err(self.err(format!("{what} claims {n} items, but at most {limit} fit in the file")));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.count(what, 1)?;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err(format!("{what} is not UTF-8")))
    }

    fn value(&mut self, kind: u32, depth: u32) -> Result<GgufValue> {
        Ok(match kind {
            0 => GgufValue::U8(self.array::<1>("u8")?[0]),
            1 => GgufValue::I8(self.array::<1>("i8")?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(self.array("u16")?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array("i16")?)),
            4 => GgufValue::U32(self.u32("u32")?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array("i32")?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array("f32")?)),
            7 => match self.array::<1>("bool")?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => return Err(self.err(format!("bool value {b}"))),
            },
            8 => GgufValue::String(self.string("string")?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(self.err("arrays nested too deeply"));
                }
                let elem = self.u32("array element type")?;
                let min = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8..=12 => 8,
                    other => return Err(self.err(format!("unknown metadata type {other}"))),
                };
                let n = self.count("array length", min)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(elem, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64("u64")?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array("i64")?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array("f64")?)),
            other => return Err(self.err(format!("unknown metadata type {other}"))),
        })
    }
}

impl Gguf {
    /// Maps and parses a GGUF file.
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf> {
        let path = path.as_ref();
        let io = |source| Error::Io { path: path.to_owned(), error: source };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: read-only map; the file must not be truncated by another process while the
        // map lives (as with any memory-mapped reader); every offset is checked against the
        // length seen here.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::parse(Storage::Mapped(map), path.display().to_string())
    }

    /// Parses GGUF bytes held in memory.
    pub fn from_bytes(bytes: Vec<u8>, origin: impl Into<String>) -> Result<Gguf> {
        Self::parse(Storage::Owned(bytes), origin.into())
    }

    fn parse(storage: Storage, origin: String) -> Result<Gguf> {
        let bytes = storage.bytes();
        let mut c = Cursor { bytes, pos: 0, origin: &origin };
        if c.take(4, "magic")? != MAGIC {
            return Err(Error::Gguf {
                origin: origin.clone(),
                offset: 0,
                message: "not a GGUF file (bad magic)".into(),
            });
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(c.err(format!("unsupported GGUF version {version} (2 and 3 are read)")));
        }
        // Minimal encoded sizes bound the counts: a tensor info is at least 8+4+4+8 bytes, a
        // metadata entry at least 8+4+1.
        let n_tensors = c.count("tensor count", 24)?;
        let n_kv = c.count("metadata count", 13)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = c.string("metadata key")?;
            let kind = c.u32("metadata type")?;
            let value = c.value(kind, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(c.err(format!("metadata key {key:?} appears twice")));
            }
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= 1 << 20 => a,
                _ => return Err(c.err(format!("general.alignment {v:?} is not a power of two"))),
            },
        };
        let mut raw = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = c.string("tensor name")?;
            let n_dims = c.u32("tensor rank")?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(c.err(format!("tensor {name:?} has rank {n_dims} (1 to {MAX_DIMS})")));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                let d = c.u64("tensor dimension")?;
                if d == 0 {
                    return Err(c.err(format!("tensor {name:?} has a zero dimension")));
                }
                dims.push(d);
            }
            let kind_id = c.u32("tensor type")?;
            let offset = c.u64("tensor offset")?;
            raw.push((name, dims, kind_id, offset, c.pos));
        }
        let data_start = (c.pos as u64).next_multiple_of(alignment);
        let file_len = bytes.len() as u64;
        let mut tensors = Vec::with_capacity(raw.len());
        let mut names = std::collections::HashSet::new();
        for (name, dims, kind_id, offset, at) in raw {
            let bad = |message: String| Error::Gguf { origin: origin.clone(), offset: at as u64, message };
            let kind = GgmlType::from_id(kind_id)
                .ok_or_else(|| Error::UnsupportedType { tensor: name.clone(), kind: kind_id })?;
            let elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
            let size = elements.and_then(|e| kind.bytes_for(e));
            let Some(size) = size else {
                return Err(bad(format!("tensor {name:?}: {dims:?} is not a whole number of {kind:?} blocks")));
            };
            if offset % alignment != 0 {
                return Err(bad(format!("tensor {name:?}: offset {offset} is not aligned to {alignment}")));
            }
            let end = data_start.checked_add(offset).and_then(|s| s.checked_add(size));
            if end.is_none_or(|e| e > file_len) {
                return Err(bad(format!(
                    "tensor {name:?}: data ({size} bytes at {offset}) runs past the end of the file"
                )));
            }
            if !names.insert(name.clone()) {
                return Err(bad(format!("tensor {name:?} appears twice")));
            }
            tensors.push(GgufTensorInfo { name, dims, kind, offset: data_start + offset, bytes: size });
        }
        Ok(Gguf { version, metadata, tensors, storage, origin })
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// All metadata.
    pub fn metadata(&self) -> &BTreeMap<String, GgufValue> {
        &self.metadata
    }

    /// One metadata value.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// The tensor infos, in file order.
    pub fn tensors(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    /// The info of one tensor.
    pub fn tensor(&self, name: &str) -> Result<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name).ok_or_else(|| Error::MissingTensor(name.to_owned()))
    }

    /// The raw (quantised) bytes of a tensor.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let t = self.tensor(name)?;
        // Offsets were checked against the file length when parsing.
        Ok(&self.storage.bytes()[t.offset as usize..(t.offset + t.bytes) as usize])
    }

    /// A tensor dequantised to `f32`, ggml element order.
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.tensor(name)?;
        let mut out = Vec::new();
        dequantize(t.kind, self.tensor_bytes(name)?, &mut out);
        Ok(out)
    }
}
