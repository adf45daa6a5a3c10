//! Pieces shared by the integration tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gflownet::replay::ReplayKind;
use gflownet::train::TrainConfig;

/// A small, fast HyperGrid run with replay, evaluation and checkpoints.
#[allow(dead_code)] // not every test file trains
pub fn small_grid() -> TrainConfig {
    let mut c = TrainConfig::hypergrid_default(2, 6);
    c.steps = 40;
    c.batch = 8;
    c.policy.hidden = vec![32, 32];
    c.replay.kind = ReplayKind::Prioritized;
    c.replay.batch = 4;
    c.eval.every = 10;
    c.eval.samples = 32;
    c.log_every = 1;
    c.checkpoint_every = 10;
    c
}

/// An example's binary: `cargo test` builds the examples next to the test binaries.
#[allow(dead_code)] // not every test file runs an example
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples").join(name)
}

/// A path under the temp dir named after this process and `name`, absent at
/// first, removed with whatever was written there when the test ends (or
/// fails), so that test runs leave nothing behind.
#[allow(dead_code)] // not every test file writes files
pub struct Scratch(PathBuf);

#[allow(dead_code)]
impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("gfn-test-{}-{name}", std::process::id()));
        remove(&p);
        Scratch(p)
    }
}

fn remove(p: &std::path::Path) {
    let _ = std::fs::remove_dir_all(p);
    let _ = std::fs::remove_file(p);
}

impl Drop for Scratch {
    fn drop(&mut self) {
        remove(&self.0);
    }
}

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for Scratch {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

/// A file's bytes, naming the file if it cannot be read.
#[allow(dead_code)] // not every test file reads files
pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every file under `dir` with its bytes, but those named in `skip`.
#[allow(dead_code)]
pub fn snapshot(dir: &Path, skip: &[&str]) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !skip.iter().any(|s| p.ends_with(s)) {
                out.insert(p.clone(), read(&p));
            }
        }
    }
    out
}
