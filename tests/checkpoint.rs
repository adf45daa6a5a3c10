//! Tests for `checkpoint`: safetensors encoding, integrity checks, compat
//! checks and crash safety of the directory protocol.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use gflownet::checkpoint::{
    atomic_write, decode_safetensors, encode_safetensors, fnv1a64, read_checkpoint, try_encode_safetensors,
    write_checkpoint, write_checkpoint_steps, CheckpointError, Tensor, TensorData, MANIFEST_NAME,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A fresh directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        Scratch::under(std::env::temp_dir(), tag)
    }

    /// Under `/dev/shm` where available: for the tests that do hundreds of
    /// writes and only check the logic of the protocol, where fsync costs
    /// time and proves nothing (a simulated crash loses no cached data).
    fn fast(tag: &str) -> Scratch {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            Scratch::under(shm.to_path_buf(), tag)
        } else {
            Scratch::new(tag)
        }
    }

    fn under(root: PathBuf, tag: &str) -> Scratch {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = root.join(format!("ckpt-test-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Every entry under `root` (relative path -> file bytes, or None for a directory).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                out.insert(rel, None);
                walk(root, &path, out);
            } else {
                out.insert(rel, Some(fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn t32(name: &str, shape: &[usize], data: &[f32]) -> Tensor {
    Tensor {
        name: name.to_string(),
        shape: shape.to_vec(),
        data: TensorData::F32(data.to_vec()),
    }
}

fn t64(name: &str, shape: &[usize], data: &[f64]) -> Tensor {
    Tensor {
        name: name.to_string(),
        shape: shape.to_vec(),
        data: TensorData::F64(data.to_vec()),
    }
}

/// Comparable form of a tensor: floats as bit patterns (so NaN and -0.0 compare exactly).
fn bits(t: &Tensor) -> (String, Vec<usize>, &'static str, Vec<u64>) {
    let data = match &t.data {
        TensorData::F32(v) => v.iter().map(|x| u64::from(x.to_bits())).collect(),
        TensorData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
    };
    (t.name.clone(), t.shape.clone(), t.data.dtype(), data)
}

fn sorted_bits(ts: &[Tensor]) -> Vec<(String, Vec<usize>, &'static str, Vec<u64>)> {
    let mut v: Vec<_> = ts.iter().map(bits).collect();
    v.sort();
    v
}

fn sample_tensors() -> Vec<Tensor> {
    vec![
        t32("policy.w1", &[2, 3], &[1.0, -2.5, 3.25, f32::MIN_POSITIVE, -0.0, 1e30]),
        t64("log_z", &[], &[-0.125]),
        t32("policy.b1", &[1, 1], &[7.0]),
        t64("empty", &[0, 3], &[]),
        t32("odd", &[3], &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY]),
        t64("policy.w2", &[5], &[1.0, 2.0, f64::EPSILON, -1e300, 0.1]),
    ]
}

fn sample_metadata() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("format".to_string(), "pt".to_string());
    m.insert("step".to_string(), "1200".to_string());
    m.insert("note \"quoted\"".to_string(), "ünïcode\n\\".to_string());
    m
}

fn compat() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("config_hash".to_string(), "3f2a9c".to_string());
    m.insert("crate_version".to_string(), "0.1.0".to_string());
    m
}

/// A small but complete checkpoint: weights, a JSON config and an optimizer blob.
fn sample_files(tag: &str) -> Vec<(&'static str, Vec<u8>)> {
    let mut meta = BTreeMap::new();
    meta.insert("tag".to_string(), tag.to_string());
    let weights = encode_safetensors(
        &[t32("w", &[2, 2], &[1.0, 2.0, 3.0, 4.0]), t64("log_z", &[], &[0.5])],
        &meta,
    );
    vec![
        ("weights.safetensors", weights),
        (
            "config.json",
            format!("{{\"tag\":\"{tag}\",\"lr\":0.001}}").into_bytes(),
        ),
        ("optimizer.bin", tag.bytes().cycle().take(40).collect()),
    ]
}

fn as_map(files: &[(&str, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
    files.iter().map(|(n, b)| (n.to_string(), b.clone())).collect()
}

// ---------------------------------------------------------------------------
// safetensors
// ---------------------------------------------------------------------------

#[test]
fn safetensors_round_trip() {
    let tensors = sample_tensors();
    let metadata = sample_metadata();
    let bytes = encode_safetensors(&tensors, &metadata);
    let (decoded, meta) = decode_safetensors(&bytes).unwrap();
    assert_eq!(sorted_bits(&decoded), sorted_bits(&tensors));
    assert_eq!(meta, metadata);
    // Returned in name order.
    let names: Vec<&str> = decoded.iter().map(|t| t.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    // Input order does not matter.
    let mut reversed = tensors.clone();
    reversed.reverse();
    assert_eq!(encode_safetensors(&reversed, &metadata), bytes);
    // No tensors, no metadata.
    let empty = encode_safetensors(&[], &BTreeMap::new());
    assert_eq!(empty, b"\x08\0\0\0\0\0\0\0{}      ".to_vec());
    let (t, m) = decode_safetensors(&empty).unwrap();
    assert!(t.is_empty() && m.is_empty());
}

#[test]
fn safetensors_known_byte_layout() {
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    // "b" (F32) sorts before "x" by name, but F64 goes first, as in the reference writer.
    let bytes = encode_safetensors(&[t32("b", &[2], &[1.0, 2.0]), t64("x", &[], &[0.5])], &meta);
    let json = r#"{"__metadata__":{"format":"pt"},"x":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#;
    assert_eq!(json.len(), 138);
    // 138 rounded up to a multiple of 8 is 144: six spaces of padding.
    assert_eq!(&bytes[..8], &144u64.to_le_bytes());
    assert_eq!(&bytes[8..8 + 138], json.as_bytes());
    assert_eq!(&bytes[8 + 138..8 + 144], b"      ");
    let data = &bytes[8 + 144..];
    assert_eq!(data.len(), 16);
    assert_eq!(&data[..8], &0.5f64.to_le_bytes());
    assert_eq!(&data[8..12], &1.0f32.to_le_bytes());
    assert_eq!(&data[12..16], &2.0f32.to_le_bytes());
    assert_eq!(&data[..8], &[0, 0, 0, 0, 0, 0, 0xe0, 0x3f]);
    assert_eq!(&data[8..], &[0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]);

    // Without metadata the key is omitted; odd-sized F32 is padded nowhere but
    // F64 stays aligned because it comes first.
    let bytes = encode_safetensors(&[t32("a", &[1], &[1.0]), t64("z", &[1], &[2.0])], &BTreeMap::new());
    let json = r#"{"z":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#;
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0);
    assert!(n >= json.len() && n - json.len() < 8);
    assert_eq!(&bytes[8..8 + json.len()], json.as_bytes());
    assert!(bytes[8 + json.len()..8 + n].iter().all(|&b| b == b' '));
    assert_eq!(bytes.len(), 8 + n + 12);
}

#[test]
fn encoder_rejects_invalid_tensors() {
    let m = BTreeMap::new();
    let bad_shape = [t32("a", &[2, 2], &[1.0, 2.0, 3.0])];
    assert!(matches!(
        try_encode_safetensors(&bad_shape, &m),
        Err(CheckpointError::InvalidInput { .. })
    ));
    let dup = [t32("a", &[1], &[1.0]), t64("a", &[1], &[1.0])];
    assert!(matches!(
        try_encode_safetensors(&dup, &m),
        Err(CheckpointError::InvalidInput { .. })
    ));
    let reserved = [t32("__metadata__", &[1], &[1.0])];
    assert!(matches!(
        try_encode_safetensors(&reserved, &m),
        Err(CheckpointError::InvalidInput { .. })
    ));
    let r = std::panic::catch_unwind(|| encode_safetensors(&bad_shape, &BTreeMap::new()));
    assert!(r.is_err());
}

/// Builds a file from a raw header string and data buffer, padding nothing.
fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn decoder_rejects_malformed_files() {
    let ok = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    assert!(decode_safetensors(&raw_file(ok, &[0; 8])).is_ok());

    let corrupt: &[(&str, &str, usize)] = &[
        (
            "unknown dtype",
            r#"{"a":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}}"#,
            8,
        ),
        (
            "size mismatch",
            r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
            8,
        ),
        (
            "decreasing",
            r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#,
            8,
        ),
        (
            "overlap",
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            12,
        ),
        (
            "gap",
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
            12,
        ),
        (
            "not at zero",
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            8,
        ),
        ("trailing bytes", ok, 9),
        (
            "duplicate tensor",
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            8,
        ),
        (
            "duplicate field",
            r#"{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            8,
        ),
        (
            "unknown field",
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}"#,
            8,
        ),
        ("missing field", r#"{"a":{"dtype":"F32","shape":[2]}}"#, 8),
        (
            "three offsets",
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}"#,
            8,
        ),
        (
            "negative dim",
            r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
            8,
        ),
        (
            "overflowing shape",
            r#"{"a":{"dtype":"F64","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}"#,
            8,
        ),
        ("metadata not strings", r#"{"__metadata__":{"k":1}}"#, 0),
        ("duplicate metadata", r#"{"__metadata__":{"k":"a","k":"b"}}"#, 0),
        ("metadata twice", r#"{"__metadata__":{},"__metadata__":{}}"#, 0),
        ("not an object", r#"[1,2]"#, 0),
        ("leading space", r#" {}"#, 0),
        ("empty header", "", 0),
        ("trailing junk in header", r#"{} x"#, 0),
        ("bad json", r#"{"a":"#, 0),
    ];
    for (what, header, data_len) in corrupt {
        let r = decode_safetensors(&raw_file(header, &vec![0u8; *data_len]));
        assert!(matches!(r, Err(CheckpointError::Corrupt { .. })), "{what}: {r:?}");
    }
    // Invalid UTF-8 in the header.
    let mut bad = raw_file("{\"a\":1}", &[]);
    bad[10] = 0xff;
    assert!(matches!(decode_safetensors(&bad), Err(CheckpointError::Corrupt { .. })));
    // Header length beyond the file, including values near u64::MAX.
    for n in [9u64, 1 << 40, u64::MAX - 7, u64::MAX] {
        let mut f = n.to_le_bytes().to_vec();
        f.extend_from_slice(b"{}");
        assert!(
            matches!(decode_safetensors(&f), Err(CheckpointError::Truncated { .. })),
            "{n}"
        );
    }
    // Buffer shorter than the header says.
    assert!(matches!(
        decode_safetensors(&raw_file(ok, &[0; 7])),
        Err(CheckpointError::Truncated { .. })
    ));
    // Display names the cause and the (in-memory) source.
    let msg = decode_safetensors(&raw_file(ok, &[0; 9])).unwrap_err().to_string();
    assert!(msg.contains("trailing") && msg.contains("in-memory"), "{msg}");
}

#[test]
fn decoder_refuses_every_truncation() {
    let bytes = encode_safetensors(&sample_tensors(), &sample_metadata());
    for len in 0..bytes.len() {
        let r = decode_safetensors(&bytes[..len]);
        assert!(r.is_err(), "truncated to {len} of {} bytes was accepted", bytes.len());
    }
    // A file whose tensors are all empty ends right after the header; cutting it still fails.
    let bytes = encode_safetensors(&[t64("e", &[0], &[])], &BTreeMap::new());
    for len in 0..bytes.len() {
        assert!(decode_safetensors(&bytes[..len]).is_err(), "{len}");
    }
}

/// Case count of the reader fuzzers: `GFN_FUZZ_CASES` (scripts/reliability.sh) or the CI default.
fn fuzz_cases(default: u32) -> u32 {
    std::env::var("GFN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases(256)))]

    /// Random bytes never make the decoder panic.
    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_safetensors(&bytes);
    }

    /// Mutating a valid file (truncating, overwriting, inserting) never panics.
    #[test]
    fn decoder_never_panics_on_mutated_file(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = encode_safetensors(&sample_tensors(), &sample_metadata());
        for (at, b, kind) in edits {
            let i = at.index(bytes.len() + 1);
            match kind {
                0 => bytes.truncate(i),
                1 if i < bytes.len() => bytes[i] = b,
                _ => bytes.insert(i, b),
            }
        }
        let _ = decode_safetensors(&bytes);
    }

    /// Arbitrary tensors round trip.
    #[test]
    fn safetensors_round_trip_prop(
        specs in proptest::collection::btree_map(
            "[a-z.]{0,6}",
            (proptest::collection::vec(0usize..4, 0..3), any::<bool>(), any::<u64>()),
            0..5,
        )
    ) {
        let tensors: Vec<Tensor> = specs.iter().map(|(name, (shape, is64, seed))| {
            let n: usize = shape.iter().product();
            if *is64 {
                t64(name, shape, &(0..n).map(|i| f64::from_bits(seed.wrapping_mul(i as u64 + 1))).collect::<Vec<_>>())
            } else {
                t32(name, shape, &(0..n).map(|i| f32::from_bits((seed >> 7) as u32 ^ i as u32)).collect::<Vec<_>>())
            }
        }).collect();
        let bytes = encode_safetensors(&tensors, &BTreeMap::new());
        let (decoded, _) = decode_safetensors(&bytes).unwrap();
        prop_assert_eq!(sorted_bits(&decoded), sorted_bits(&tensors));
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        prop_assert_eq!(header_len % 8, 0);
    }
}

// ---------------------------------------------------------------------------
// Checksum
// ---------------------------------------------------------------------------

#[test]
fn fnv1a64_test_vectors() {
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

// ---------------------------------------------------------------------------
// Checkpoint directories
// ---------------------------------------------------------------------------

#[test]
fn checkpoint_round_trip_and_overwrite() {
    let s = Scratch::new("rt");
    let dir = s.path().join("ckpt");
    let a = sample_files("A");
    write_checkpoint(&dir, &a, &compat()).unwrap();
    assert_eq!(read_checkpoint(&dir, &compat()).unwrap(), as_map(&a));
    let b = sample_files("B");
    write_checkpoint(&dir, &b, &compat()).unwrap();
    assert_eq!(read_checkpoint(&dir, &compat()).unwrap(), as_map(&b));
    // Only the checkpoint remains: no staging or backup directories.
    let entries: Vec<_> = fs::read_dir(s.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("ckpt")]);
    let mut inside: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    inside.sort();
    assert_eq!(
        inside,
        ["config.json", "manifest.json", "optimizer.bin", "weights.safetensors"]
    );
    // The weights decode.
    let files = read_checkpoint(&dir, &compat()).unwrap();
    let (tensors, meta) = decode_safetensors(&files["weights.safetensors"]).unwrap();
    assert_eq!(tensors.len(), 2);
    assert_eq!(meta["tag"], "B");
    // An empty checkpoint and nested parent directories work too.
    let nested = s.path().join("x/y/empty");
    write_checkpoint(&nested, &[], &BTreeMap::new()).unwrap();
    assert!(read_checkpoint(&nested, &BTreeMap::new()).unwrap().is_empty());
}

#[test]
fn manifest_is_json_with_sizes_checksums_and_compat() {
    let s = Scratch::new("manifest");
    let dir = s.path().join("ckpt");
    let a = sample_files("A");
    write_checkpoint(&dir, &a, &compat()).unwrap();
    let raw = fs::read(dir.join(MANIFEST_NAME)).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let m = &v["manifest"];
    assert_eq!(m["format"], "gflownet-checkpoint");
    assert_eq!(m["version"], 1);
    assert_eq!(m["compat"]["config_hash"], "3f2a9c");
    let files = m["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for (f, (name, bytes)) in files.iter().zip(&a) {
        assert_eq!(f["name"], *name);
        assert_eq!(f["size"], bytes.len());
        assert_eq!(f["fnv1a64"], format!("{:016x}", fnv1a64(bytes)));
    }
    // The checksum covers the exact bytes of the body: `{"fnv1a64":"<16 hex>","manifest":<body>}`.
    let prefix = br#"{"fnv1a64":""#.len() + 16 + br#"","manifest":"#.len();
    let body = &raw[prefix..raw.len() - 1];
    assert_eq!(serde_json::from_slice::<serde_json::Value>(body).unwrap(), *m);
    assert_eq!(v["fnv1a64"], format!("{:016x}", fnv1a64(body)));
}

#[test]
fn write_rejects_bad_names_and_foreign_directories() {
    let s = Scratch::new("names");
    let dir = s.path().join("ckpt");
    for bad in ["manifest.json", "a/b", "", "..", "x.tmp"] {
        let r = write_checkpoint(&dir, &[(bad, vec![1])], &compat());
        assert!(matches!(r, Err(CheckpointError::InvalidInput { .. })), "{bad:?}: {r:?}");
    }
    let r = write_checkpoint(&dir, &[("a", vec![1]), ("a", vec![2])], &compat());
    assert!(matches!(r, Err(CheckpointError::InvalidInput { .. })));
    assert!(!dir.exists());
    // A directory that is not a checkpoint is never replaced.
    let foreign = s.path().join("data");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("precious.txt"), b"keep me").unwrap();
    let before = snapshot(s.path());
    let r = write_checkpoint(&foreign, &sample_files("A"), &compat());
    assert!(matches!(r, Err(CheckpointError::InvalidInput { .. })), "{r:?}");
    assert_eq!(snapshot(s.path()), before);
}

#[test]
fn incompatible_compat_is_refused_naming_the_key() {
    let s = Scratch::new("compat");
    let dir = s.path().join("ckpt");
    write_checkpoint(&dir, &sample_files("A"), &compat()).unwrap();
    let before = snapshot(s.path());

    let mut other = compat();
    other.insert("crate_version".to_string(), "0.2.0".to_string());
    let err = read_checkpoint(&dir, &other).unwrap_err();
    match &err {
        CheckpointError::Incompatible {
            key, expected, found, ..
        } => {
            assert_eq!(key, "crate_version");
            assert_eq!(expected.as_deref(), Some("0.2.0"));
            assert_eq!(found.as_deref(), Some("0.1.0"));
        }
        e => panic!("expected Incompatible, got {e:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("crate_version") && msg.contains("0.2.0") && msg.contains("0.1.0"),
        "{msg}"
    );
    assert!(msg.contains("manifest.json"), "{msg}");

    // A key the checkpoint lacks, and a key the caller does not expect.
    let mut extra = compat();
    extra.insert("objective".to_string(), "tb".to_string());
    let err = read_checkpoint(&dir, &extra).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Incompatible { key, found: None, .. } if key == "objective"),
        "{err:?}"
    );
    let mut fewer = compat();
    fewer.remove("config_hash");
    let err = read_checkpoint(&dir, &fewer).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Incompatible { key, expected: None, .. } if key == "config_hash"),
        "{err:?}"
    );
    assert_eq!(snapshot(s.path()), before);
}

#[test]
fn future_format_version_is_incompatible() {
    let s = Scratch::new("version");
    let dir = s.path().join("ckpt");
    fs::create_dir(&dir).unwrap();
    let body = br#"{"format":"gflownet-checkpoint","version":2,"compat":{},"files":[]}"#;
    let mut m = format!("{{\"fnv1a64\":\"{:016x}\",\"manifest\":", fnv1a64(body)).into_bytes();
    m.extend_from_slice(body);
    m.push(b'}');
    fs::write(dir.join(MANIFEST_NAME), &m).unwrap();
    let err = read_checkpoint(&dir, &BTreeMap::new()).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Incompatible { key, .. } if key == "format_version"),
        "{err:?}"
    );
    // The same body at version 1 is accepted (the hand-built framing is the real one).
    let body = br#"{"format":"gflownet-checkpoint","version":1,"compat":{},"files":[]}"#;
    let mut m = format!("{{\"fnv1a64\":\"{:016x}\",\"manifest\":", fnv1a64(body)).into_bytes();
    m.extend_from_slice(body);
    m.push(b'}');
    fs::write(dir.join(MANIFEST_NAME), &m).unwrap();
    assert!(read_checkpoint(&dir, &BTreeMap::new()).unwrap().is_empty());
}

/// A manifest with a correct checksum wrapped around `body`.
fn manifest_with_body(body: &[u8]) -> Vec<u8> {
    let mut m = format!("{{\"fnv1a64\":\"{:016x}\",\"manifest\":", fnv1a64(body)).into_bytes();
    m.extend_from_slice(body);
    m.push(b'}');
    m
}

#[test]
fn manifest_naming_files_outside_the_directory_is_refused() {
    let s = Scratch::new("escape");
    let dir = s.path().join("ckpt");
    fs::create_dir(&dir).unwrap();
    fs::write(s.path().join("escape"), b"").unwrap();
    for name in ["../escape", "/etc/hostname", "", "manifest.json"] {
        let body = format!(
            r#"{{"format":"gflownet-checkpoint","version":1,"compat":{{}},"files":[{{"name":{name:?},"size":0,"fnv1a64":"cbf29ce484222325"}}]}}"#
        );
        fs::write(dir.join(MANIFEST_NAME), manifest_with_body(body.as_bytes())).unwrap();
        let err = read_checkpoint(&dir, &BTreeMap::new()).unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt { .. }), "{name:?}: {err:?}");
    }
}

#[test]
fn manifest_listing_a_file_twice_is_refused() {
    let s = Scratch::new("twice");
    let dir = s.path().join("ckpt");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("a.bin"), b"x").unwrap();
    let entry = format!(r#"{{"name":"a.bin","size":1,"fnv1a64":"{:016x}"}}"#, fnv1a64(b"x"));
    let body = format!(r#"{{"format":"gflownet-checkpoint","version":1,"compat":{{}},"files":[{entry},{entry}]}}"#);
    fs::write(dir.join(MANIFEST_NAME), manifest_with_body(body.as_bytes())).unwrap();
    let err = read_checkpoint(&dir, &BTreeMap::new()).unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
}

/// A `.safetensors` file whose size and checksum match the manifest is still
/// checked for structure (the writer does not look inside the files it is given).
#[test]
fn malformed_safetensors_with_a_matching_checksum_is_refused() {
    let s = Scratch::new("badst");
    let dir = s.path().join("ckpt");
    let garbage = b"not a safetensors file".to_vec();
    write_checkpoint(&dir, &[("weights.safetensors", garbage.clone())], &compat()).unwrap();
    let err = read_checkpoint(&dir, &compat()).unwrap_err();
    assert!(err.to_string().contains("weights.safetensors"), "{err}");
    // The same bytes under another name are opaque and read back.
    write_checkpoint(&dir, &[("notes.bin", garbage.clone())], &compat()).unwrap();
    assert_eq!(read_checkpoint(&dir, &compat()).unwrap()["notes.bin"], garbage);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases(64)))]

    /// Arbitrary manifest contents (checksummed or not) never make the reader panic.
    #[test]
    fn reader_never_panics_on_arbitrary_manifest(body in proptest::collection::vec(any::<u8>(), 0..128), wrap: bool) {
        let s = Scratch::fast("anymanifest");
        let dir = s.path().join("ckpt");
        fs::create_dir(&dir).unwrap();
        let bytes = if wrap { manifest_with_body(&body) } else { body };
        fs::write(dir.join(MANIFEST_NAME), bytes).unwrap();
        prop_assert!(read_checkpoint(&dir, &BTreeMap::new()).is_err());
    }
}

#[test]
fn missing_manifest_file_or_directory_is_refused_without_touching_disk() {
    let s = Scratch::new("missing");
    let dir = s.path().join("ckpt");
    assert!(matches!(
        read_checkpoint(&dir, &compat()),
        Err(CheckpointError::Missing { .. })
    ));
    write_checkpoint(&dir, &sample_files("A"), &compat()).unwrap();

    fs::remove_file(dir.join("optimizer.bin")).unwrap();
    let before = snapshot(s.path());
    let err = read_checkpoint(&dir, &compat()).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Missing { path } if path.ends_with("optimizer.bin")),
        "{err:?}"
    );
    assert_eq!(snapshot(s.path()), before);

    fs::remove_file(dir.join(MANIFEST_NAME)).unwrap();
    let before = snapshot(s.path());
    let err = read_checkpoint(&dir, &compat()).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Missing { path } if path.ends_with(MANIFEST_NAME)),
        "{err:?}"
    );
    assert!(err.to_string().contains("manifest.json"));
    assert_eq!(snapshot(s.path()), before);
}

#[test]
fn every_truncation_of_every_file_is_refused() {
    let s = Scratch::new("trunc");
    let dir = s.path().join("ckpt");
    let files = sample_files("A");
    write_checkpoint(&dir, &files, &compat()).unwrap();
    let mut names: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
    names.push(MANIFEST_NAME.to_string());
    for name in &names {
        let path = dir.join(name);
        let original = fs::read(&path).unwrap();
        for len in 0..original.len() {
            fs::write(&path, &original[..len]).unwrap();
            let before = snapshot(s.path());
            let err = read_checkpoint(&dir, &compat()).unwrap_err();
            assert!(err.to_string().contains(name.as_str()), "{name} cut to {len}: {err}");
            if name == "weights.safetensors" {
                assert!(matches!(err, CheckpointError::Truncated { .. }), "{err:?}");
            }
            assert_eq!(snapshot(s.path()), before);
        }
        fs::write(&path, &original).unwrap();
        assert!(read_checkpoint(&dir, &compat()).is_ok());
    }
}

#[test]
fn every_single_bit_flip_of_every_file_is_refused() {
    let s = Scratch::fast("flipall");
    let dir = s.path().join("ckpt");
    let files = sample_files("A");
    write_checkpoint(&dir, &files, &compat()).unwrap();
    let mut names: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
    names.push(MANIFEST_NAME.to_string());
    let mut checked = 0;
    for name in &names {
        let path = dir.join(name);
        let original = fs::read(&path).unwrap();
        for pos in 0..original.len() {
            for bit in 0..8 {
                let mut bytes = original.clone();
                bytes[pos] ^= 1 << bit;
                fs::write(&path, &bytes).unwrap();
                let err = read_checkpoint(&dir, &compat()).unwrap_err();
                assert!(
                    err.to_string().contains(name.as_str()),
                    "{name}[{pos}] bit {bit}: {err}"
                );
                checked += 1;
            }
        }
        fs::write(&path, &original).unwrap();
    }
    assert!(checked > 2000, "{checked}");
    assert_eq!(read_checkpoint(&dir, &compat()).unwrap(), as_map(&files));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Flipping any bits of one byte of any checkpoint file is refused, naming the file.
    #[test]
    fn flipped_byte_is_refused(file in 0usize..4, at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let s = Scratch::new("flip");
        let dir = s.path().join("ckpt");
        let files = sample_files("A");
        write_checkpoint(&dir, &files, &compat()).unwrap();
        let name = if file < files.len() { files[file].0 } else { MANIFEST_NAME };
        let path = dir.join(name);
        let mut bytes = fs::read(&path).unwrap();
        let pos = at.index(bytes.len());
        bytes[pos] ^= mask;
        fs::write(&path, &bytes).unwrap();
        let before = snapshot(s.path());
        let err = read_checkpoint(&dir, &compat()).unwrap_err();
        prop_assert!(err.to_string().contains(name), "{} [{}]: {}", name, pos, err);
        prop_assert_eq!(err.path(), path.as_path());
        prop_assert_eq!(snapshot(s.path()), before);
    }

    /// Truncating the weights file anywhere is refused as a truncation of that file.
    #[test]
    fn truncated_weights_are_refused(at in any::<prop::sample::Index>()) {
        let s = Scratch::new("truncw");
        let dir = s.path().join("ckpt");
        write_checkpoint(&dir, &sample_files("A"), &compat()).unwrap();
        let path = dir.join("weights.safetensors");
        let bytes = fs::read(&path).unwrap();
        let len = at.index(bytes.len());
        fs::write(&path, &bytes[..len]).unwrap();
        let err = read_checkpoint(&dir, &compat()).unwrap_err();
        prop_assert!(matches!(err, CheckpointError::Truncated { .. }), "{:?}", err);
        prop_assert!(err.to_string().contains("weights.safetensors"));
    }
}

// ---------------------------------------------------------------------------
// Crash safety
// ---------------------------------------------------------------------------

/// Number of steps of an uninterrupted write of `files` over a checkpoint `A`.
fn step_count(files: &[(&str, Vec<u8>)]) -> usize {
    let mut k = 0;
    loop {
        let s = Scratch::fast("count");
        let d = s.path().join("ckpt");
        write_checkpoint(&d, &sample_files("A"), &compat()).unwrap();
        if write_checkpoint_steps(&d, files, &compat(), Some(k)).unwrap() {
            return k;
        }
        k += 1;
    }
}

#[test]
fn crash_at_any_step_leaves_old_or_new_checkpoint() {
    let a = sample_files("A");
    let b = sample_files("B");
    let c = sample_files("C");
    let total = step_count(&b);
    assert!(total >= 15, "only {total} steps");

    let mut saw_old = false;
    let mut saw_new = false;
    for k in 0..=total {
        let s = Scratch::new("crash");
        let dir = s.path().join("ckpt");
        write_checkpoint(&dir, &a, &compat()).unwrap();
        let completed = write_checkpoint_steps(&dir, &b, &compat(), Some(k)).unwrap();
        assert_eq!(completed, k == total, "step {k}");
        let got = read_checkpoint(&dir, &compat()).unwrap_or_else(|e| panic!("crash after step {k}: {e}"));
        if got == as_map(&a) {
            assert!(!saw_new, "step {k}: went back to A after B was visible");
            saw_old = true;
        } else {
            assert_eq!(got, as_map(&b), "crash after step {k}: neither A nor B");
            saw_new = true;
        }
        // A refused-free read changed nothing; a later write recovers completely.
        let before = snapshot(s.path());
        read_checkpoint(&dir, &compat()).unwrap();
        assert_eq!(snapshot(s.path()), before);
        write_checkpoint(&dir, &c, &compat()).unwrap();
        assert_eq!(
            read_checkpoint(&dir, &compat()).unwrap(),
            as_map(&c),
            "recovery after step {k}"
        );
        let left: Vec<_> = fs::read_dir(s.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("ckpt")],
            "leftovers after recovery from step {k}"
        );
    }
    assert!(saw_old && saw_new);
}

#[test]
fn two_consecutive_crashes_never_lose_the_last_complete_checkpoint() {
    let a = sample_files("A");
    let b = sample_files("B");
    let c = sample_files("C");
    let total = step_count(&b);
    for k1 in 0..total {
        for k2 in 0..total + 4 {
            let s = Scratch::fast("crash2");
            let dir = s.path().join("ckpt");
            write_checkpoint(&dir, &a, &compat()).unwrap();
            write_checkpoint_steps(&dir, &b, &compat(), Some(k1)).unwrap();
            let after_first = read_checkpoint(&dir, &compat()).unwrap();
            let done = write_checkpoint_steps(&dir, &c, &compat(), Some(k2)).unwrap();
            let got = read_checkpoint(&dir, &compat()).unwrap_or_else(|e| panic!("crashes at {k1}, {k2}: {e}"));
            assert!(
                got == after_first || got == as_map(&c),
                "crashes at {k1}, {k2}: unexpected contents"
            );
            if done {
                assert_eq!(got, as_map(&c));
            }
        }
    }
}

#[test]
fn crash_during_first_ever_write_leaves_nothing_or_the_new_checkpoint() {
    let b = sample_files("B");
    let mut k = 0;
    loop {
        let s = Scratch::new("first");
        let dir = s.path().join("ckpt");
        let done = write_checkpoint_steps(&dir, &b, &compat(), Some(k)).unwrap();
        match read_checkpoint(&dir, &compat()) {
            Ok(got) => assert_eq!(got, as_map(&b), "step {k}"),
            Err(e) => {
                assert!(!done);
                assert!(matches!(e, CheckpointError::Missing { .. }), "step {k}: {e:?}");
            }
        }
        if done {
            break;
        }
        k += 1;
    }
}

#[test]
fn reader_falls_back_to_prev_only_when_dir_is_missing() {
    let s = Scratch::new("prev");
    let dir = s.path().join("ckpt");
    let prev = s.path().join("ckpt.prev");
    write_checkpoint(&prev, &sample_files("A"), &compat()).unwrap();
    assert_eq!(read_checkpoint(&dir, &compat()).unwrap(), as_map(&sample_files("A")));
    // Writing `dir` cleans up the stale `dir.prev`.
    write_checkpoint(&dir, &sample_files("B"), &compat()).unwrap();
    assert!(!prev.exists());
    // An existing but corrupt `dir` is reported, not silently rolled back to a valid `dir.prev`.
    write_checkpoint(&prev, &sample_files("A"), &compat()).unwrap();
    fs::write(dir.join("optimizer.bin"), b"garbage").unwrap();
    let err = read_checkpoint(&dir, &compat()).unwrap_err();
    assert!(err.to_string().contains("optimizer.bin"), "{err}");
}

// ---------------------------------------------------------------------------
// atomic_write
// ---------------------------------------------------------------------------

#[test]
fn atomic_write_creates_and_replaces() {
    let s = Scratch::new("atomic");
    let path = s.path().join("config.json");
    atomic_write(&path, b"{\"a\":1}").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"{\"a\":1}");
    atomic_write(&path, b"{}").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"{}");
    let entries: Vec<_> = fs::read_dir(s.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("config.json")]);
    // Missing parent directory: an I/O error naming the path, no panic.
    let err = atomic_write(&s.path().join("nope/config.json"), b"x").unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(matches!(
        atomic_write(Path::new("/"), b"x"),
        Err(CheckpointError::InvalidInput { .. })
    ));
    // A failed rename (over a non-empty directory) leaves no temp file behind.
    fs::create_dir(s.path().join("taken")).unwrap();
    fs::write(s.path().join("taken/x"), b"").unwrap();
    assert!(atomic_write(&s.path().join("taken"), b"x").is_err());
    let mut names: Vec<_> = fs::read_dir(s.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["config.json", "taken"].map(std::ffi::OsString::from));
}

// ---------------------------------------------------------------------------
// Python interoperability (needs `pip install safetensors numpy`)
// ---------------------------------------------------------------------------

const PY_CHECK: &str = r#"
import sys, numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file
rust_path, py_path = sys.argv[1], sys.argv[2]
t = load_file(rust_path)
assert sorted(t) == ["a.scalar", "b.mat", "c.empty", "d.vec"], sorted(t)
assert t["a.scalar"].dtype == np.float64 and t["a.scalar"].shape == () and t["a.scalar"] == -0.125
assert t["b.mat"].dtype == np.float32 and t["b.mat"].shape == (2, 3)
assert (t["b.mat"] == np.array([[1, 2, 3], [4, 5, 6.5]], dtype=np.float32)).all()
assert t["c.empty"].dtype == np.float64 and t["c.empty"].shape == (0, 3)
assert t["d.vec"].dtype == np.float32 and t["d.vec"].shape == (1, 1) and t["d.vec"][0, 0] == 7
with safe_open(rust_path, framework="np") as f:
    assert f.metadata() == {"format": "pt"}, f.metadata()
save_file(t, py_path, metadata={"format": "pt"})
print("python ok")
"#;

fn py_tensors() -> Vec<Tensor> {
    vec![
        t32("b.mat", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]),
        t64("a.scalar", &[], &[-0.125]),
        t64("c.empty", &[0, 3], &[]),
        t32("d.vec", &[1, 1], &[7.0]),
    ]
}

/// Writes a file with this encoder, reads it with Python's `safetensors.numpy`,
/// writes the same tensors from Python and checks the two files are identical.
/// Run with `CKPT_PYTHON=/path/to/python cargo test --release -- --ignored python`.
#[test]
#[ignore = "needs python3 with safetensors and numpy"]
fn python_safetensors_round_trip() {
    let s = Scratch::new("python");
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let ours = encode_safetensors(&py_tensors(), &meta);
    let rust_path = s.path().join("rust.safetensors");
    let py_path = s.path().join("python.safetensors");
    fs::write(&rust_path, &ours).unwrap();
    let python = std::env::var("CKPT_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(PY_CHECK)
        .arg(&rust_path)
        .arg(&py_path)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = fs::read(&py_path).unwrap();
    let (decoded, m) = decode_safetensors(&theirs).unwrap();
    assert_eq!(sorted_bits(&decoded), sorted_bits(&py_tensors()));
    assert_eq!(m, meta);
    assert_eq!(theirs, ours, "byte-for-byte identical to the reference writer");
}
