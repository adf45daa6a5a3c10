//! Property-based fuzzing of the readers that take outside input: the JSON
//! config parser and the checkpoint reader (the external-reward line parser is
//! fuzzed next to it, in `src/reward/external.rs`, where it is private).
//! Each reader must return `Ok` or a typed `Err`, never panic, on any input.
//!
//! CI runs a few hundred cases each; `GFN_FUZZ_CASES=200000 cargo test
//! --release --test fuzz` (what `scripts/fuzz.sh` runs) is the long run whose
//! result RELIABILITY.md records.

use std::collections::BTreeMap;
use std::path::PathBuf;

use gflownet::checkpoint::{read_checkpoint, write_checkpoint};
use gflownet::train::TrainConfig;
use proptest::prelude::*;
use serde_json::Value;

fn cases(default: u32) -> u32 {
    std::env::var("GFN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn configs() -> Vec<Value> {
    let mut grid = TrainConfig::hypergrid_default(3, 5);
    grid.objective.objective = "subtb".parse().unwrap();
    grid.policy.log_f = true;
    [TrainConfig::peptide_default(), grid]
        .iter()
        .map(|c| serde_json::from_str(&c.to_json()).unwrap())
        .collect()
}

/// A JSON value of any kind, leaning on the edges (zero, negative, huge,
/// fractional where integers go, wrong types).
fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(i64::MAX),
            Just(i64::MIN),
            any::<i64>()
        ]
        .prop_map(Value::from),
        prop_oneof![
            Just(0.0f64),
            Just(-0.5),
            Just(1e308),
            Just(-1e-308),
            Just(0.999),
            any::<f64>()
        ]
        .prop_filter_map("JSON has no NaN or infinity", |x| serde_json::Number::from_f64(x)
            .map(Value::Number)),
        "[a-z_:.0-9-]{0,12}".prop_map(Value::String),
        Just(Value::Array(vec![])),
        Just(Value::Object(Default::default())),
    ]
}

/// Every path to a leaf (object key or array index) in `v`.
fn leaves(v: &Value, path: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                path.push(Value::String(k.clone()));
                leaves(x, path, out);
                path.pop();
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                path.push(Value::from(i));
                leaves(x, path, out);
                path.pop();
            }
        }
        _ => out.push(path.clone()),
    }
}

fn at<'a>(v: &'a mut Value, path: &[Value]) -> &'a mut Value {
    path.iter().fold(v, |v, k| match k {
        Value::String(k) => &mut v[k.as_str()],
        _ => &mut v[k.as_u64().unwrap() as usize],
    })
}

/// The parser's contract on one text: no panic; what it accepts validates,
/// and writes back to the same config.
fn check_config_text(text: &str) -> Result<(), TestCaseError> {
    let _ = TrainConfig::parse_json(text);
    if let Ok(c) = TrainConfig::from_json(text) {
        prop_assert!(c.validate().is_ok());
        let again = TrainConfig::from_json(&c.to_json());
        prop_assert_eq!(again.ok(), Some(c));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn config_parser_on_arbitrary_text(text in ".{0,200}") {
        check_config_text(&text)?;
    }

    /// Valid configs with up to three leaves replaced by values of any kind:
    /// exercises every range check and type error.
    #[test]
    fn config_parser_on_mutated_configs(
        which in 0usize..2,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any_value()), 1..4),
        drop_key in any::<Option<prop::sample::Index>>(),
    ) {
        let mut v = configs().swap_remove(which);
        for (i, x) in edits {
            let mut all = Vec::new();
            leaves(&v, &mut Vec::new(), &mut all);
            *at(&mut v, &all[i.index(all.len())]) = x;
        }
        if let (Some(i), Value::Object(m)) = (drop_key, &mut v) {
            let keys: Vec<String> = m.keys().cloned().collect();
            m.remove(&keys[i.index(keys.len())]);
        }
        check_config_text(&serde_json::to_string_pretty(&v).unwrap())?;
    }

    /// Valid config texts cut short or with one byte changed.
    #[test]
    fn config_parser_on_damaged_text(
        which in 0usize..2,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let mut bytes = serde_json::to_string_pretty(&configs()[which]).unwrap().into_bytes();
        let i = at.index(bytes.len());
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] = byte;
        }
        check_config_text(&String::from_utf8_lossy(&bytes))?;
    }
}

struct Scratch(PathBuf);
impl Scratch {
    fn new() -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "gfn-fuzz-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn compat() -> BTreeMap<String, String> {
    BTreeMap::from([("config".to_string(), "fuzz".to_string())])
}

/// The files of a checkpoint directory written once (the writer fsyncs,
/// which is slow), by name, and the contents written; each case damages a copy.
type Template = (Vec<(std::ffi::OsString, Vec<u8>)>, BTreeMap<String, Vec<u8>>);

fn template() -> &'static Template {
    static T: std::sync::OnceLock<Template> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let s = Scratch::new();
        let dir = s.0.join("template");
        let weights: Vec<u8> = (0..48u8).map(|i| i.wrapping_mul(37)).collect();
        let files = vec![("weights.bin", weights), ("state.json", b"{\"step\": 3}".to_vec())];
        write_checkpoint(&dir, &files, &compat()).unwrap();
        let on_disk = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name(), std::fs::read(e.path()).unwrap())
            })
            .collect();
        (on_disk, files.into_iter().map(|(n, b)| (n.to_string(), b)).collect())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// A checkpoint directory with bytes of any of its files flipped, cut or
    /// appended: read it back, never panic, and never accept content that
    /// differs from what was written.
    #[test]
    fn checkpoint_reader_on_damaged_directories(
        edits in proptest::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u8>(), 0u8..3),
            1..4,
        ),
    ) {
        let (template, want) = template();
        let s = Scratch::new();
        let dir = s.0.join("ck");
        std::fs::create_dir_all(&dir).unwrap();
        let mut names: Vec<PathBuf> = template
            .iter()
            .map(|(name, bytes)| {
                let to = dir.join(name);
                std::fs::write(&to, bytes).unwrap();
                to
            })
            .collect();
        names.sort();
        for (file, pos, byte, kind) in edits {
            let p = &names[file.index(names.len())];
            let mut b = std::fs::read(p).unwrap();
            match kind {
                0 if !b.is_empty() => {
                    let i = pos.index(b.len());
                    b[i] ^= byte.max(1);
                }
                1 => b.truncate(pos.index(b.len() + 1)),
                _ => b.push(byte),
            }
            std::fs::write(p, b).unwrap();
        }
        if let Ok(got) = read_checkpoint(&dir, &compat()) {
            prop_assert_eq!(&got, want, "damaged content was accepted");
        }
    }
}

/// The case the fuzzer found: serde_json's default float parser is not
/// round-trip exact, so a saved config read back to different bits.
#[test]
fn config_floats_read_back_to_the_same_bits() {
    let mut c = TrainConfig::hypergrid_default(2, 4);
    for x in [
        2.1994632713105438e274,
        0.1 + 0.2,
        3e-4 * 3.0,
        f64::MIN_POSITIVE,
        1.0 - f64::EPSILON,
    ] {
        c.objective.entropy_weight = x;
        let back = TrainConfig::parse_json(&c.to_json()).unwrap();
        assert_eq!(back.objective.entropy_weight.to_bits(), x.to_bits(), "{x:e}");
    }
}
