//! Replay of terminal objects: uniform, or prioritized (Shen et al., ICML 2023, arXiv 2305.07170).
//!
//! The buffer holds distinct terminal objects with their `log R` (after the
//! reward exponent). Eviction rule: first in, first out: when the buffer is
//! full, a new object takes the slot of the oldest one. An object already in
//! the buffer is not added twice.
//!
//! Prioritized Replay Training draws a replay batch in which a fraction
//! `alpha` comes from objects at or above the `beta`-th percentile of reward
//! and the rest from below it (uniformly within each part, with
//! replacement). The trainer then gives the replayed objects fresh
//! trajectories by backward sampling with the current `P_B`.

use std::collections::HashMap;
use std::hash::Hash;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{in_range, Error, Result};

/// Which replay to mix into each training batch.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReplayKind {
    #[default]
    None,
    Uniform,
    Prioritized,
}

/// Replay settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    pub kind: ReplayKind,
    /// Maximum number of distinct objects kept.
    pub capacity: usize,
    /// Replayed objects per training step (added to the on-policy batch).
    pub batch: usize,
    /// Fraction of the replay batch drawn from the high-reward part.
    pub alpha: f64,
    /// Reward percentile (0-100) that separates the high-reward part.
    pub beta: f64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            kind: ReplayKind::None,
            capacity: 10_000,
            batch: 32,
            alpha: 0.5,
            beta: 90.0,
        }
    }
}

impl ReplayConfig {
    pub fn validate(&self) -> Result<()> {
        if self.kind == ReplayKind::None {
            return Ok(());
        }
        if self.capacity == 0 || self.capacity > 100_000_000 {
            return Err(Error::config(
                "replay.capacity",
                format!("must be in [1, 1e8], got {}", self.capacity),
            ));
        }
        if self.batch == 0 || self.batch > 1 << 20 {
            return Err(Error::config(
                "replay.batch",
                format!("must be in [1, 1048576], got {}", self.batch),
            ));
        }
        in_range("replay.alpha", self.alpha, 0.0, 1.0)?;
        in_range("replay.beta", self.beta, 0.0, 100.0)
    }
}

/// Distinct terminal objects and their log-rewards, FIFO-evicted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(bound(serialize = "S: Serialize", deserialize = "S: Deserialize<'de> + Eq + Hash"))]
pub struct ReplayBuffer<S: Eq + Hash> {
    capacity: usize,
    items: Vec<(S, f64)>,
    /// Slot the next new object goes to once the buffer is full.
    next: usize,
    #[serde(skip)]
    index: HashMap<S, usize>,
}

impl<S: Clone + Eq + Hash> ReplayBuffer<S> {
    pub fn new(capacity: usize) -> Self {
        ReplayBuffer {
            capacity,
            items: Vec::new(),
            next: 0,
            index: HashMap::new(),
        }
    }

    /// Rebuilds the lookup after deserialization.
    pub fn reindex(&mut self) {
        self.index = self
            .items
            .iter()
            .enumerate()
            .map(|(i, (s, _))| (s.clone(), i))
            .collect();
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn items(&self) -> &[(S, f64)] {
        &self.items
    }

    /// Adds objects not already present; returns how many were new.
    pub fn add(&mut self, objects: &[S], log_r: &[f64]) -> usize {
        let mut added = 0;
        for (s, &l) in objects.iter().zip(log_r) {
            if self.index.contains_key(s) {
                continue;
            }
            added += 1;
            if self.items.len() < self.capacity {
                self.index.insert(s.clone(), self.items.len());
                self.items.push((s.clone(), l));
            } else {
                let old = std::mem::replace(&mut self.items[self.next], (s.clone(), l));
                self.index.remove(&old.0);
                self.index.insert(s.clone(), self.next);
                self.next = (self.next + 1) % self.capacity;
            }
        }
        added
    }

    /// `n` objects drawn uniformly with replacement.
    pub fn sample_uniform<R: Rng>(&self, n: usize, rng: &mut R) -> Vec<(S, f64)> {
        if self.items.is_empty() {
            return Vec::new();
        }
        (0..n)
            .map(|_| self.items[rng.gen_range(0..self.items.len())].clone())
            .collect()
    }

    /// `n` objects: `round(alpha n)` from those at or above the `beta`-th
    /// reward percentile, the rest from below it (all from one part if the
    /// other is empty).
    pub fn sample_prioritized<R: Rng>(&self, n: usize, alpha: f64, beta: f64, rng: &mut R) -> Vec<(S, f64)> {
        if self.items.is_empty() {
            return Vec::new();
        }
        let threshold = self.percentile(beta);
        let (high, low): (Vec<usize>, Vec<usize>) = (0..self.items.len()).partition(|&i| self.items[i].1 >= threshold);
        let n_high = if low.is_empty() {
            n
        } else {
            ((alpha * n as f64).round() as usize).min(n)
        };
        let pick = |from: &[usize], k: usize, rng: &mut R| -> Vec<(S, f64)> {
            (0..k)
                .map(|_| self.items[from[rng.gen_range(0..from.len())]].clone())
                .collect()
        };
        let mut out = pick(&high, n_high, rng);
        out.extend(pick(&low, n - n_high, rng));
        out
    }

    /// The `q`-th percentile (0-100) of the stored log-rewards, nearest rank.
    pub fn percentile(&self, q: f64) -> f64 {
        let mut v: Vec<f64> = self.items.iter().map(|(_, l)| *l).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let rank = ((q / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
}
