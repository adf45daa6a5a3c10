//! Checkpoints: safetensors weight files, checksummed manifests and crash-safe
//! directory replacement.
//!
//! # safetensors
//!
//! [`encode_safetensors`] / [`decode_safetensors`] implement the
//! [safetensors](https://github.com/huggingface/safetensors) format for `F32`
//! and `F64` tensors, so weights can be opened with
//! `safetensors.torch.load_file` / `safetensors.numpy.load_file`:
//!
//! ```text
//! [8 bytes: u64 LE header length N][N bytes: UTF-8 JSON header, space padded to a multiple of 8][data buffer]
//! ```
//!
//! The header maps each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}`
//! (offsets relative to the start of the data buffer, little-endian, row-major)
//! plus an optional `"__metadata__"` string→string map. The writer lays
//! tensors out exactly as the reference writer does: by dtype size descending
//! (all `F64` before all `F32`), then by name, contiguously — so every tensor
//! is aligned to its element size within the file, and the output is byte for
//! byte what `safetensors.numpy.save_file` produces for the same tensors (and
//! at most one metadata entry; the reference orders metadata by hash).
//!
//! The reader validates everything: prefix and header length inside the file,
//! UTF-8 JSON object starting with `{`, no duplicate keys, no unknown fields,
//! known dtypes, `data_offsets` with `begin <= end` and
//! `end - begin == product(shape) * dtype size` (overflow-checked), the
//! tensors tiling the buffer exactly (no gap, no overlap, starting at 0) and
//! no trailing bytes. It never panics and never allocates more than the input
//! size justifies.
//!
//! # Integrity
//!
//! Every file of a checkpoint is covered by a 64-bit FNV-1a checksum
//! ([`fnv1a64`]: offset basis `0xcbf29ce484222325`, prime `0x100000001b3`,
//! per byte `h = (h ^ b) * prime mod 2^64`) stored in `manifest.json` together
//! with the file's size. For two inputs of equal length that differ in exactly
//! one byte the checksums always differ: the xor step maps the differing byte
//! to different values, and each later step (xor with a fixed byte, multiply
//! by an odd prime mod 2^64) is a bijection. Size differences (truncation,
//! appended bytes) are caught by the stored size. The manifest protects
//! itself the same way: the file is exactly
//! `{"fnv1a64":"<16 lowercase hex digits>","manifest":<body>}` where the
//! checksum covers the exact bytes of `<body>`; any other byte sequence is
//! refused. So any single flipped byte, and any truncation, of any checkpoint
//! file is refused by [`read_checkpoint`].
//!
//! # Crash-safety protocol (Linux/POSIX, single writer per directory)
//!
//! A checkpoint `D` is a directory holding the payload files plus
//! `manifest.json`. [`write_checkpoint`] never modifies `D` in place:
//!
//! 1. Remove any stale staging directory `D.tmp` left by an earlier crash, and
//!    create `D.tmp`.
//! 2. Write every payload file into `D.tmp` and fsync it; write
//!    `manifest.json.tmp`, fsync, rename it to `manifest.json`; fsync `D.tmp`
//!    and the parent directory. `D.tmp` is now complete and durable.
//! 3. If `D` exists: remove any stale `D.prev`, rename `D` → `D.prev`, fsync
//!    the parent.
//! 4. Rename `D.tmp` → `D`, fsync the parent. This rename is the commit point.
//! 5. Remove `D.prev`, fsync the parent.
//!
//! Every state a crash can leave is one of: `D` = old complete checkpoint
//! (crash in 1–3 before the rename of `D`), `D` missing and `D.prev` = old
//! checkpoint (crash between the renames of 3 and 4), or `D` = new complete
//! checkpoint (crash after 4, possibly with a `D.prev` still around).
//! [`read_checkpoint`] therefore reads `D` when it exists and falls back to
//! `D.prev` only when `D` does not exist. A `D` that exists but fails
//! validation is reported as an error, not silently replaced by `D.prev`: the
//! protocol never produces such a `D` (renames are atomic and the contents are
//! fsynced before), so it means corruption, which should be loud. Reading
//! never modifies anything on disk; the next successful write cleans up
//! `D.tmp`/`D.prev`. Steps run strictly in order and each rename is
//! preceded by the fsyncs of what it publishes.
//!
//! [`atomic_write`] is the single-file version: temp file in the same
//! directory, fsync, rename over the target, fsync the directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Name of the manifest file inside a checkpoint directory.
pub const MANIFEST_NAME: &str = "manifest.json";
/// Format name stored in the manifest.
pub const FORMAT_NAME: &str = "gflownet-checkpoint";
/// Version of the checkpoint directory format written by this module.
pub const FORMAT_VERSION: u32 = 1;

const METADATA_KEY: &str = "__metadata__";
const MANIFEST_PREFIX: &[u8] = b"{\"fnv1a64\":\"";
const MANIFEST_MIDDLE: &[u8] = b"\",\"manifest\":";
const MANIFEST_SUFFIX: &[u8] = b"}";

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a checkpoint could not be written or read.
///
/// Every variant carries the path of the file (or directory) concerned. For
/// [`decode_safetensors`], which works on bytes, the path is empty and shown
/// as `<in-memory safetensors buffer>`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointError {
    /// An operating-system call failed.
    Io {
        /// File or directory the call was about.
        path: PathBuf,
        /// The operation and the OS error.
        message: String,
    },
    /// A file the checkpoint needs does not exist.
    Missing {
        /// The missing file or directory.
        path: PathBuf,
    },
    /// A file is shorter than its header or manifest says.
    Truncated {
        /// The truncated file.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
    /// A file's bytes are not a valid file of its kind or fail their checksum.
    Corrupt {
        /// The corrupt file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The checkpoint is intact but was written for something else: a
    /// different format version or a different `compat` value.
    Incompatible {
        /// The manifest that was read.
        path: PathBuf,
        /// The differing key (`format_version` for the format itself).
        key: String,
        /// Value the caller expected (`None`: key not expected).
        expected: Option<String>,
        /// Value found in the checkpoint (`None`: key absent).
        found: Option<String>,
    },
    /// The caller asked for something that cannot be written.
    InvalidInput {
        /// Target file or directory.
        path: PathBuf,
        /// What is wrong with the request.
        what: String,
    },
}

impl CheckpointError {
    /// The file or directory the error is about (empty for in-memory decoding).
    pub fn path(&self) -> &Path {
        match self {
            CheckpointError::Io { path, .. }
            | CheckpointError::Missing { path }
            | CheckpointError::Truncated { path, .. }
            | CheckpointError::Corrupt { path, .. }
            | CheckpointError::Incompatible { path, .. }
            | CheckpointError::InvalidInput { path, .. } => path,
        }
    }
}

struct ShowPath<'a>(&'a Path);

impl fmt::Display for ShowPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.as_os_str().is_empty() {
            f.write_str("<in-memory safetensors buffer>")
        } else {
            write!(f, "{}", self.0.display())
        }
    }
}

fn show_opt(v: &Option<String>) -> String {
    match v {
        Some(s) => format!("{s:?}"),
        None => "<absent>".to_string(),
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { path, message } => write!(f, "I/O error on {}: {message}", ShowPath(path)),
            CheckpointError::Missing { path } => write!(f, "checkpoint file missing: {}", ShowPath(path)),
            CheckpointError::Truncated { path, what } => write!(f, "{} is truncated: {what}", ShowPath(path)),
            CheckpointError::Corrupt { path, what } => write!(f, "{} is corrupt: {what}", ShowPath(path)),
            CheckpointError::Incompatible {
                path,
                key,
                expected,
                found,
            } => write!(
                f,
                "{} is incompatible: key {key:?} expected {} but checkpoint has {}",
                ShowPath(path),
                show_opt(expected),
                show_opt(found)
            ),
            CheckpointError::InvalidInput { path, what } => write!(f, "cannot write {}: {what}", ShowPath(path)),
        }
    }
}

impl std::error::Error for CheckpointError {}

fn io_err(path: &Path, op: &str, e: io::Error) -> CheckpointError {
    CheckpointError::Io {
        path: path.to_path_buf(),
        message: format!("{op}: {e}"),
    }
}

fn corrupt(path: &Path, what: impl Into<String>) -> CheckpointError {
    CheckpointError::Corrupt {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

fn truncated(path: &Path, what: impl Into<String>) -> CheckpointError {
    CheckpointError::Truncated {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

fn invalid(path: &Path, what: impl Into<String>) -> CheckpointError {
    CheckpointError::InvalidInput {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

// ---------------------------------------------------------------------------
// Checksum
// ---------------------------------------------------------------------------

/// 64-bit FNV-1a of `bytes` (offset basis `0xcbf29ce484222325`, prime
/// `0x100000001b3`). Detects every single-byte change of equal-length input.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn hex16(v: u64) -> String {
    format!("{v:016x}")
}

fn parse_hex16(s: &[u8]) -> Option<u64> {
    if s.len() != 16 || !s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
}

// ---------------------------------------------------------------------------
// safetensors
// ---------------------------------------------------------------------------

/// A named tensor: row-major `data` with the given `shape` (`[]` is a scalar).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Tensor name (the key in the safetensors header).
    pub name: String,
    /// Dimensions; the element count is their product (1 for `[]`).
    pub shape: Vec<usize>,
    /// Elements, row-major.
    pub data: TensorData,
}

/// Elements of a [`Tensor`]; the variant is the safetensors dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// dtype `"F32"`.
    F32(Vec<f32>),
    /// dtype `"F64"`.
    F64(Vec<f64>),
}

impl TensorData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The safetensors dtype string (`"F32"` or `"F64"`).
    pub fn dtype(&self) -> &'static str {
        self.kind().name()
    }

    fn kind(&self) -> Dtype {
        match self {
            TensorData::F32(_) => Dtype::F32,
            TensorData::F64(_) => Dtype::F64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F32,
    F64,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
        }
    }

    fn parse(s: &str) -> Option<Dtype> {
        match s {
            "F32" => Some(Dtype::F32),
            "F64" => Some(Dtype::F64),
            _ => None,
        }
    }
}

fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Encodes `tensors` and `metadata` as a safetensors file (see the module
/// docs for the layout). The order of `tensors` does not matter.
///
/// # Panics
///
/// When [`try_encode_safetensors`] would return an error: duplicate or
/// reserved (`__metadata__`) names, or data length != product(shape).
pub fn encode_safetensors(tensors: &[Tensor], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    match try_encode_safetensors(tensors, metadata) {
        Ok(bytes) => bytes,
        Err(e) => panic!("encode_safetensors: {e}"),
    }
}

/// Like [`encode_safetensors`] but returns [`CheckpointError::InvalidInput`]
/// instead of panicking on invalid tensors.
pub fn try_encode_safetensors(
    tensors: &[Tensor],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, CheckpointError> {
    let here = Path::new("");
    let mut names = BTreeSet::new();
    for t in tensors {
        if t.name == METADATA_KEY {
            return Err(invalid(here, format!("tensor name {METADATA_KEY:?} is reserved")));
        }
        if !names.insert(t.name.as_str()) {
            return Err(invalid(here, format!("duplicate tensor name {:?}", t.name)));
        }
        match numel(&t.shape) {
            Some(n) if n == t.data.len() => {}
            _ => {
                return Err(invalid(
                    here,
                    format!(
                        "tensor {:?}: shape {:?} does not match {} elements",
                        t.name,
                        t.shape,
                        t.data.len()
                    ),
                ))
            }
        }
    }
    // Reference layout: larger dtypes first, then by name.
    let mut order: Vec<&Tensor> = tensors.iter().collect();
    order.sort_by(|a, b| {
        b.data
            .kind()
            .size()
            .cmp(&a.data.kind().size())
            .then_with(|| a.name.cmp(&b.name))
    });

    let json_str = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string());
    let mut header = String::from("{");
    let mut first = true;
    if !metadata.is_empty() {
        header.push_str(&json_str(METADATA_KEY));
        header.push_str(":{");
        for (i, (k, v)) in metadata.iter().enumerate() {
            if i > 0 {
                header.push(',');
            }
            header.push_str(&json_str(k));
            header.push(':');
            header.push_str(&json_str(v));
        }
        header.push('}');
        first = false;
    }
    let mut offset = 0usize;
    for t in &order {
        let nbytes = t.data.len() * t.data.kind().size();
        if !first {
            header.push(',');
        }
        first = false;
        let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        header.push_str(&format!(
            "{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            json_str(&t.name),
            t.data.dtype(),
            shape.join(","),
            offset,
            offset + nbytes
        ));
        offset += nbytes;
    }
    header.push('}');
    let mut header = header.into_bytes();
    let pad = (8 - header.len() % 8) % 8;
    header.resize(header.len() + pad, b' ');

    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for t in &order {
        match &t.data {
            TensorData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::F64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
    }
    Ok(out)
}

/// `{"dtype", "shape", "data_offsets"}` of one header entry, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInfo {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// A JSON object whose keys must be unique, kept in file order.
struct UniqueMap<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut seen = BTreeSet::new();
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    if !seen.insert(k.clone()) {
                        return Err(de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    let v = map.next_value::<V>()?;
                    out.push((k, v));
                }
                Ok(UniqueMap(out))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}

/// The parsed safetensors header.
struct Header {
    metadata: Vec<(String, String)>,
    tensors: Vec<(String, RawInfo)>,
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis;
        impl<'de> Visitor<'de> for Vis {
            type Value = Header;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a safetensors header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
                let mut seen = BTreeSet::new();
                let mut header = Header {
                    metadata: Vec::new(),
                    tensors: Vec::new(),
                };
                while let Some(k) = map.next_key::<String>()? {
                    if !seen.insert(k.clone()) {
                        return Err(de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    if k == METADATA_KEY {
                        header.metadata = map.next_value::<UniqueMap<String>>()?.0;
                    } else {
                        let info = map.next_value::<RawInfo>()?;
                        header.tensors.push((k, info));
                    }
                }
                Ok(header)
            }
        }
        d.deserialize_map(Vis)
    }
}

struct Entry {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

struct Layout {
    metadata: BTreeMap<String, String>,
    entries: Vec<Entry>,
    data_start: usize,
}

/// Validates the whole file structure without copying tensor data.
fn parse_layout(bytes: &[u8], path: &Path) -> Result<Layout, CheckpointError> {
    let Some((prefix, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(truncated(
            path,
            format!("{} bytes, shorter than the 8-byte header length prefix", bytes.len()),
        ));
    };
    let n = u64::from_le_bytes(*prefix);
    if n > rest.len() as u64 {
        return Err(truncated(
            path,
            format!("header length {n} exceeds the {} bytes after the prefix", rest.len()),
        ));
    }
    let n = n as usize; // <= rest.len()
    let (header, buffer) = rest.split_at(n);
    let text = std::str::from_utf8(header).map_err(|e| corrupt(path, format!("header is not UTF-8: {e}")))?;
    if !text.starts_with('{') {
        return Err(corrupt(path, "header does not start with '{'"));
    }
    let parsed: Header =
        serde_json::from_str(text).map_err(|e| corrupt(path, format!("header is not a valid JSON header: {e}")))?;

    let mut entries = Vec::with_capacity(parsed.tensors.len());
    for (name, info) in parsed.tensors {
        let dtype = Dtype::parse(&info.dtype)
            .ok_or_else(|| corrupt(path, format!("tensor {name:?}: unsupported dtype {:?}", info.dtype)))?;
        let shape = info
            .shape
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<usize>, _>>()
            .map_err(|_| corrupt(path, format!("tensor {name:?}: dimension does not fit in usize")))?;
        let [b, e] = info.data_offsets;
        let (Ok(begin), Ok(end)) = (usize::try_from(b), usize::try_from(e)) else {
            return Err(corrupt(path, format!("tensor {name:?}: data_offsets out of range")));
        };
        if begin > end {
            return Err(corrupt(
                path,
                format!("tensor {name:?}: data_offsets [{begin}, {end}] decreasing"),
            ));
        }
        let nbytes = numel(&shape)
            .and_then(|n| n.checked_mul(dtype.size()))
            .ok_or_else(|| corrupt(path, format!("tensor {name:?}: shape {shape:?} overflows")))?;
        if end - begin != nbytes {
            return Err(corrupt(
                path,
                format!(
                    "tensor {name:?}: data_offsets [{begin}, {end}] hold {} bytes but {} {shape:?} needs {nbytes}",
                    end - begin,
                    dtype.name()
                ),
            ));
        }
        entries.push(Entry {
            name,
            dtype,
            shape,
            begin,
            end,
        });
    }

    let mut spans: Vec<(usize, usize, &str)> = entries.iter().map(|e| (e.begin, e.end, e.name.as_str())).collect();
    spans.sort_unstable();
    let mut expected = 0usize;
    for &(begin, end, name) in &spans {
        if begin != expected {
            let what = if begin < expected {
                "overlaps the previous tensor"
            } else {
                "leaves a gap"
            };
            return Err(corrupt(
                path,
                format!("tensor {name:?}: data_offsets [{begin}, {end}] {what} (expected begin {expected})"),
            ));
        }
        expected = end;
    }
    if expected > buffer.len() {
        return Err(truncated(
            path,
            format!("data buffer has {} bytes but the header needs {expected}", buffer.len()),
        ));
    }
    if expected < buffer.len() {
        return Err(corrupt(
            path,
            format!("{} trailing bytes after the last tensor", buffer.len() - expected),
        ));
    }

    let metadata: BTreeMap<String, String> = parsed.metadata.into_iter().collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Layout {
        metadata,
        entries,
        data_start: 8 + n,
    })
}

/// Decodes and fully validates a safetensors file (see the module docs).
/// Tensors are returned sorted by name.
pub fn decode_safetensors(bytes: &[u8]) -> Result<(Vec<Tensor>, BTreeMap<String, String>), CheckpointError> {
    let layout = parse_layout(bytes, Path::new(""))?;
    let mut tensors = Vec::with_capacity(layout.entries.len());
    for e in layout.entries {
        let raw = bytes
            .get(layout.data_start + e.begin..layout.data_start + e.end)
            .ok_or_else(|| corrupt(Path::new(""), "internal: validated span out of bounds"))?;
        let data = match e.dtype {
            Dtype::F32 => TensorData::F32(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::F64 => TensorData::F64(
                raw.chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
        };
        tensors.push(Tensor {
            name: e.name,
            shape: e.shape,
            data,
        });
    }
    Ok((tensors, layout.metadata))
}

// ---------------------------------------------------------------------------
// Manifest
// ---------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestBody {
    format: String,
    version: u32,
    compat: BTreeMap<String, String>,
    files: Vec<ManifestFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    name: String,
    size: u64,
    fnv1a64: String,
}

fn encode_manifest(body: &ManifestBody) -> Vec<u8> {
    // Serializing plain strings, integers and maps cannot fail.
    let body = serde_json::to_vec(body).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + 64);
    out.extend_from_slice(MANIFEST_PREFIX);
    out.extend_from_slice(hex16(fnv1a64(&body)).as_bytes());
    out.extend_from_slice(MANIFEST_MIDDLE);
    out.extend_from_slice(&body);
    out.extend_from_slice(MANIFEST_SUFFIX);
    out
}

fn decode_manifest(bytes: &[u8], path: &Path) -> Result<ManifestBody, CheckpointError> {
    let min = MANIFEST_PREFIX.len() + 16 + MANIFEST_MIDDLE.len() + MANIFEST_SUFFIX.len();
    if bytes.len() < min {
        return Err(truncated(
            path,
            format!("{} bytes, a manifest has at least {min}", bytes.len()),
        ));
    }
    let (prefix, rest) = bytes.split_at(MANIFEST_PREFIX.len());
    let (hex, rest) = rest.split_at(16);
    let (middle, rest) = rest.split_at(MANIFEST_MIDDLE.len());
    let (body, suffix) = rest.split_at(rest.len() - MANIFEST_SUFFIX.len());
    if prefix != MANIFEST_PREFIX || middle != MANIFEST_MIDDLE || suffix != MANIFEST_SUFFIX {
        return Err(corrupt(path, "not a checkpoint manifest (unexpected framing bytes)"));
    }
    let stored = parse_hex16(hex).ok_or_else(|| corrupt(path, "manifest checksum is not 16 lowercase hex digits"))?;
    let actual = fnv1a64(body);
    if stored != actual {
        return Err(corrupt(
            path,
            format!(
                "manifest checksum mismatch: stored {}, computed {}",
                hex16(stored),
                hex16(actual)
            ),
        ));
    }
    let body: ManifestBody =
        serde_json::from_slice(body).map_err(|e| corrupt(path, format!("manifest body is invalid: {e}")))?;
    if body.format != FORMAT_NAME {
        return Err(corrupt(
            path,
            format!("format is {:?}, not {FORMAT_NAME:?}", body.format),
        ));
    }
    Ok(body)
}

fn check_file_name(dir: &Path, name: &str) -> Result<(), CheckpointError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\\')
        || name.contains('\0')
        || name == MANIFEST_NAME
        || name.ends_with(".tmp");
    if bad {
        return Err(invalid(
            dir,
            format!("{name:?} is not a valid checkpoint file name (plain name, not {MANIFEST_NAME:?}, not *.tmp)"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Filesystem helpers
// ---------------------------------------------------------------------------

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn sibling(dir: &Path, suffix: &str) -> Option<PathBuf> {
    let name = dir.file_name()?;
    let mut s = name.to_os_string();
    s.push(suffix);
    Some(parent_of(dir).join(s))
}

fn fsync_dir(dir: &Path) -> Result<(), CheckpointError> {
    #[cfg(unix)]
    {
        let f = fs::File::open(dir).map_err(|e| io_err(dir, "open directory for fsync", e))?;
        f.sync_all().map_err(|e| io_err(dir, "fsync directory", e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// `fs::read`, reporting a missing file as [`CheckpointError::Missing`].
fn read_file(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CheckpointError::Missing {
            path: path.to_path_buf(),
        },
        _ => io_err(path, "read", e),
    })
}

fn exists(path: &Path) -> Result<bool, CheckpointError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path, "stat", e)),
    }
}

fn remove_tree_if_exists(path: &Path) -> Result<(), CheckpointError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, "remove directory", e)),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), CheckpointError> {
    fs::rename(from, to).map_err(|e| io_err(from, &format!("rename to {}", to.display()), e))
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory is
/// written and fsynced, renamed over `path`, and the directory is fsynced. A
/// crash leaves either the old file or the new one.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let name = path.file_name().ok_or_else(|| invalid(path, "path has no file name"))?;
    let dir = parent_of(path);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}-{unique}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(|e| io_err(&tmp, "create", e))?;
        f.write_all(bytes).map_err(|e| io_err(&tmp, "write", e))?;
        f.sync_all().map_err(|e| io_err(&tmp, "fsync", e))?;
        drop(f);
        rename(&tmp, path)?;
        fsync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

// ---------------------------------------------------------------------------
// Writing checkpoints
// ---------------------------------------------------------------------------

/// Counts protocol steps so tests can simulate a crash after any of them.
struct Steps {
    stop_after: Option<usize>,
    done: usize,
}

impl Steps {
    /// Whether the next step may run (false: simulated crash here).
    fn go(&mut self) -> bool {
        if self.stop_after == Some(self.done) {
            return false;
        }
        self.done += 1;
        true
    }
}

/// Writes a checkpoint directory `dir` holding `files` plus a `manifest.json`
/// with each file's size and FNV-1a 64 checksum, the format version and the
/// caller's `compat` map (e.g. config hash, crate version), replacing any
/// previous checkpoint at `dir` crash-safely (see the module docs).
///
/// File names must be plain names (no `/`), unique, not `manifest.json` and
/// not ending in `.tmp`. If `dir` exists it must be a directory that is empty
/// or holds a `manifest.json`, so that an unrelated directory is never
/// replaced. One writer per `dir` at a time.
pub fn write_checkpoint(
    dir: &Path,
    files: &[(&str, Vec<u8>)],
    compat: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    write_checkpoint_steps(dir, files, compat, None).map(|_| ())
}

/// [`write_checkpoint`] that runs only the first `stop_after` filesystem
/// steps and then returns without cleanup, as if the process had died there
/// (`None`: run to completion). Returns whether the write completed. Test
/// support only.
#[doc(hidden)]
pub fn write_checkpoint_steps(
    dir: &Path,
    files: &[(&str, Vec<u8>)],
    compat: &BTreeMap<String, String>,
    stop_after: Option<usize>,
) -> Result<bool, CheckpointError> {
    let mut names = BTreeSet::new();
    for (name, _) in files {
        check_file_name(dir, name)?;
        if !names.insert(*name) {
            return Err(invalid(dir, format!("duplicate file name {name:?}")));
        }
    }
    let staging = sibling(dir, ".tmp").ok_or_else(|| invalid(dir, "checkpoint path has no directory name"))?;
    let prev = sibling(dir, ".prev").ok_or_else(|| invalid(dir, "checkpoint path has no directory name"))?;
    let parent = parent_of(dir);
    let dir_exists = exists(dir)?;
    if dir_exists {
        if !fs::symlink_metadata(dir).map_err(|e| io_err(dir, "stat", e))?.is_dir() {
            return Err(invalid(dir, "exists and is not a directory"));
        }
        let empty = fs::read_dir(dir).map_err(|e| io_err(dir, "list", e))?.next().is_none();
        if !empty && !exists(&dir.join(MANIFEST_NAME))? {
            return Err(invalid(
                dir,
                "exists but is not a checkpoint (no manifest.json); refusing to replace it",
            ));
        }
    }

    if !exists(&parent)? {
        fs::create_dir_all(&parent).map_err(|e| io_err(&parent, "create directory", e))?;
    }

    let mut st = Steps { stop_after, done: 0 };
    macro_rules! step {
        ($e:expr) => {{
            if !st.go() {
                return Ok(false);
            }
            $e
        }};
    }

    // 1. Fresh staging directory.
    if exists(&staging)? {
        step!(remove_tree_if_exists(&staging)?);
    }
    step!(fs::create_dir(&staging).map_err(|e| io_err(&staging, "create directory", e))?);

    // 2. Payload files, then the manifest, all fsynced.
    let mut entries = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        let path = staging.join(name);
        let half = bytes.len() / 2;
        let mut f = step!({
            let mut f = fs::File::create(&path).map_err(|e| io_err(&path, "create", e))?;
            f.write_all(&bytes[..half]).map_err(|e| io_err(&path, "write", e))?;
            f
        });
        step!(f.write_all(&bytes[half..]).map_err(|e| io_err(&path, "write", e))?);
        step!(f.sync_all().map_err(|e| io_err(&path, "fsync", e))?);
        entries.push(ManifestFile {
            name: name.to_string(),
            size: bytes.len() as u64,
            fnv1a64: hex16(fnv1a64(bytes)),
        });
    }
    let manifest = encode_manifest(&ManifestBody {
        format: FORMAT_NAME.to_string(),
        version: FORMAT_VERSION,
        compat: compat.clone(),
        files: entries,
    });
    let manifest_tmp = staging.join(format!("{MANIFEST_NAME}.tmp"));
    let f = step!({
        let mut f = fs::File::create(&manifest_tmp).map_err(|e| io_err(&manifest_tmp, "create", e))?;
        f.write_all(&manifest).map_err(|e| io_err(&manifest_tmp, "write", e))?;
        f
    });
    step!(f.sync_all().map_err(|e| io_err(&manifest_tmp, "fsync", e))?);
    drop(f);
    step!(rename(&manifest_tmp, &staging.join(MANIFEST_NAME))?);
    step!(fsync_dir(&staging)?);
    step!(fsync_dir(&parent)?);

    // 3. Move the current checkpoint aside.
    if dir_exists {
        if exists(&prev)? {
            step!(remove_tree_if_exists(&prev)?);
        }
        step!(rename(dir, &prev)?);
        step!(fsync_dir(&parent)?);
    }

    // 4. Commit.
    step!(rename(&staging, dir)?);
    step!(fsync_dir(&parent)?);

    // 5. Clean up.
    if exists(&prev)? {
        step!(remove_tree_if_exists(&prev)?);
        step!(fsync_dir(&parent)?);
    }
    Ok(true)
}

// ---------------------------------------------------------------------------
// Reading checkpoints
// ---------------------------------------------------------------------------

/// Reads the checkpoint at `dir` (or at `dir.prev` when `dir` does not exist,
/// the state a crash mid-replacement leaves), verifying the manifest's own
/// checksum, the format version, that the manifest's `compat` map equals
/// `expected_compat` exactly, and every listed file's size and checksum
/// (`*.safetensors` files are also structurally validated). Returns the file
/// contents by name (the manifest excluded). Never modifies anything on disk.
pub fn read_checkpoint(
    dir: &Path,
    expected_compat: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Vec<u8>>, CheckpointError> {
    if !exists(dir)? {
        if let Some(prev) = sibling(dir, ".prev") {
            if exists(&prev)? {
                return read_checkpoint_dir(&prev, expected_compat);
            }
        }
        return Err(CheckpointError::Missing {
            path: dir.to_path_buf(),
        });
    }
    read_checkpoint_dir(dir, expected_compat)
}

fn read_checkpoint_dir(
    dir: &Path,
    expected_compat: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Vec<u8>>, CheckpointError> {
    let manifest_path = dir.join(MANIFEST_NAME);
    let raw = read_file(&manifest_path)?;
    let body = decode_manifest(&raw, &manifest_path)?;
    if body.version != FORMAT_VERSION {
        return Err(CheckpointError::Incompatible {
            path: manifest_path,
            key: "format_version".to_string(),
            expected: Some(FORMAT_VERSION.to_string()),
            found: Some(body.version.to_string()),
        });
    }
    let keys: BTreeSet<&String> = expected_compat.keys().chain(body.compat.keys()).collect();
    for key in keys {
        let (expected, found) = (expected_compat.get(key), body.compat.get(key));
        if expected != found {
            return Err(CheckpointError::Incompatible {
                path: manifest_path,
                key: key.clone(),
                expected: expected.cloned(),
                found: found.cloned(),
            });
        }
    }

    let mut out = BTreeMap::new();
    for entry in &body.files {
        check_file_name(dir, &entry.name).map_err(|_| {
            corrupt(
                &manifest_path,
                format!("manifest lists invalid file name {:?}", entry.name),
            )
        })?;
        let path = dir.join(&entry.name);
        let stored = parse_hex16(entry.fnv1a64.as_bytes())
            .ok_or_else(|| corrupt(&manifest_path, format!("bad checksum for {:?}", entry.name)))?;
        let bytes = read_file(&path)?;
        let size = bytes.len() as u64;
        if size < entry.size {
            return Err(truncated(&path, format!("{size} bytes, manifest says {}", entry.size)));
        }
        if size > entry.size {
            return Err(corrupt(&path, format!("{size} bytes, manifest says {}", entry.size)));
        }
        let actual = fnv1a64(&bytes);
        if actual != stored {
            return Err(corrupt(
                &path,
                format!(
                    "FNV-1a 64 checksum mismatch: manifest {}, file {}",
                    hex16(stored),
                    hex16(actual)
                ),
            ));
        }
        if entry.name.ends_with(".safetensors") {
            parse_layout(&bytes, &path)?;
        }
        if out.insert(entry.name.clone(), bytes).is_some() {
            return Err(corrupt(
                &manifest_path,
                format!("manifest lists {:?} twice", entry.name),
            ));
        }
    }
    Ok(out)
}
