//! Heap allocations of a steady-state training step: none per transition.
//!
//! A counting allocator (this test binary's own) counts the allocations made
//! on the calling thread over training steps with one thread. A step
//! allocates a fixed number of times (the tape's nodes, the assembled
//! batch's arrays) and once per trajectory (its terminal state, the object
//! handed out); sampling (forward, and backward from replayed objects) and
//! training allocate nothing per transition, so the count does not grow with
//! trajectory length, and grows with the batch by about one allocation per
//! trajectory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use gflownet::env::{Environment, HyperGrid, HyperGridReward, LogReward, Peptide};
use gflownet::reward::{PeptideLogReward, PeptideReward};
use gflownet::train::{objective_from_flags, TrainConfig, Trainer};

struct Counting;

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Mean allocations per training step over `n` steps, after `warm` steps.
fn per_step<E: Environment, R: LogReward<E::State>>(t: &mut Trainer<E, R>, warm: usize, n: usize) -> f64 {
    for _ in 0..warm {
        t.train_step().unwrap();
    }
    let before = COUNT.with(Cell::get);
    for _ in 0..n {
        t.train_step().unwrap();
    }
    (COUNT.with(Cell::get) - before) as f64 / n as f64
}

fn hypergrid(batch: usize, height: usize) -> f64 {
    let mut cfg = TrainConfig::hypergrid_default(4, height);
    cfg.batch = batch;
    cfg.threads = 1;
    cfg.objective = objective_from_flags("tb", "squared", None, None, "none").unwrap();
    let mut t = Trainer::new(
        cfg,
        HyperGrid::new(4, height).unwrap(),
        HyperGridReward::standard(height),
    )
    .unwrap();
    per_step(&mut t, 30, 20)
}

fn peptide(batch: usize, max_len: usize, replay: bool) -> f64 {
    let mut cfg = TrainConfig::peptide_default();
    cfg.batch = batch;
    cfg.threads = 1;
    if !replay {
        cfg.replay.kind = gflownet::replay::ReplayKind::None;
    }
    cfg.policy.hidden = vec![64, 64];
    let env = Peptide::new(5, max_len).unwrap();
    let reward = PeptideLogReward {
        env: env.clone(),
        model: Box::new(PeptideReward::new()),
    };
    let mut t = Trainer::new(cfg, env, reward).unwrap();
    per_step(&mut t, 10, 10)
}

#[test]
fn hypergrid_steps_allocate_once_per_trajectory_and_never_per_transition() {
    let (small, large) = (hypergrid(16, 8), hypergrid(64, 8));
    // one allocation per extra trajectory (its terminal state), and a few spare
    let per_trajectory = (large - small) / 48.0;
    assert!(
        per_trajectory < 1.5,
        "b=16: {small}, b=64: {large} allocations per step"
    );
    // a taller grid: trajectories twice as long, the same allocations
    let tall = hypergrid(16, 16);
    assert!(
        tall < small * 1.1 + 5.0,
        "height 8: {small}, height 16: {tall} allocations per step"
    );
}

#[test]
fn peptide_steps_allocate_once_per_trajectory_and_never_per_transition() {
    let (short, long) = (peptide(16, 10, false), peptide(16, 40, false));
    assert!(
        long < short * 1.1 + 5.0,
        "max length 10: {short}, 40: {long} allocations per step"
    );
    // with replay (the default): trajectories drawn backward from stored objects too
    let (short_replay, long_replay) = (peptide(16, 10, true), peptide(16, 40, true));
    assert!(
        long_replay < short_replay * 1.1 + 5.0,
        "with replay, max length 10: {short_replay}, 40: {long_replay} allocations per step"
    );
    let large = peptide(48, 10, false);
    // the terminal state and its scoring (the reward model reads text)
    let per_trajectory = (large - short) / 32.0;
    assert!(
        per_trajectory < 2.5,
        "b=16: {short}, b=48: {large} allocations per step"
    );
}
