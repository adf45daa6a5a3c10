//! HyperGrid (Bengio et al. 2021; Malkin et al. 2022).

use serde::{Deserialize, Serialize};

use super::{Environment, LogReward};
use crate::error::{Error, Result};
use crate::nn::Csr;

/// A point of the grid; `done` after the exit action.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HyperGridState {
    pub coords: Vec<usize>,
    pub done: bool,
}

/// `ndim` coordinates in `0..height`, starting at the origin. Actions
/// `0..ndim` increment a coordinate (invalid at `height - 1`); action `ndim`
/// exits. Backward action `i` decrements coordinate `i`. Features: K-hot,
/// `ndim * height` inputs with `x[i * height + coords[i]] = 1`.
#[derive(Clone, Debug)]
pub struct HyperGrid {
    pub ndim: usize,
    pub height: usize,
}

impl HyperGrid {
    /// Forward action `a` applied to `s` in place.
    fn apply(&self, s: &mut HyperGridState, a: usize) {
        if a == self.ndim {
            s.done = true;
        } else {
            s.coords[a] += 1;
        }
    }

    pub fn new(ndim: usize, height: usize) -> Result<Self> {
        if !(1..=16).contains(&ndim) {
            return Err(Error::config("ndim", format!("must be in [1, 16], got {ndim}")));
        }
        if !(2..=1024).contains(&height) {
            return Err(Error::config("height", format!("must be in [2, 1024], got {height}")));
        }
        Ok(HyperGrid { ndim, height })
    }

    /// Number of grid points (= number of terminal objects).
    pub fn n_points(&self) -> usize {
        self.height.pow(self.ndim as u32)
    }
}

impl Environment for HyperGrid {
    type State = HyperGridState;

    fn n_actions(&self) -> usize {
        self.ndim + 1
    }
    fn n_backward_actions(&self) -> usize {
        self.ndim
    }
    fn feature_dim(&self) -> usize {
        self.ndim * self.height
    }
    fn initial_state(&self) -> HyperGridState {
        HyperGridState {
            coords: vec![0; self.ndim],
            done: false,
        }
    }
    fn is_initial(&self, s: &HyperGridState) -> bool {
        !s.done && s.coords.iter().all(|&c| c == 0)
    }
    fn is_terminal(&self, s: &HyperGridState) -> bool {
        s.done
    }
    fn forward_mask(&self, s: &HyperGridState, mask: &mut [bool]) {
        for (m, &c) in mask.iter_mut().zip(&s.coords) {
            *m = !s.done && c + 1 < self.height;
        }
        mask[self.ndim] = !s.done;
    }
    fn step(&self, s: &HyperGridState, a: usize) -> HyperGridState {
        let mut next = s.clone();
        self.apply(&mut next, a);
        next
    }
    fn step_into(&self, s: &HyperGridState, a: usize, next: &mut HyperGridState) {
        next.coords.clone_from(&s.coords);
        next.done = s.done;
        self.apply(next, a);
    }
    fn backward_mask(&self, s: &HyperGridState, mask: &mut [bool]) {
        for (m, &c) in mask.iter_mut().zip(&s.coords) {
            *m = c > 0;
        }
    }
    fn backward_step(&self, s: &HyperGridState, b: usize) -> (HyperGridState, usize) {
        let mut parent = s.clone();
        parent.coords[b] -= 1;
        (parent, b)
    }
    fn backward_step_into(&self, s: &HyperGridState, b: usize, parent: &mut HyperGridState) -> usize {
        parent.coords.clone_from(&s.coords);
        parent.done = s.done;
        parent.coords[b] -= 1;
        b
    }
    fn backward_action(&self, _parent: &HyperGridState, a: usize) -> usize {
        a
    }
    fn unterminate(&self, x: &HyperGridState) -> (HyperGridState, usize) {
        (
            HyperGridState {
                coords: x.coords.clone(),
                done: false,
            },
            self.ndim,
        )
    }
    fn encode(&self, s: &HyperGridState, out: &mut [f32]) {
        for (i, &c) in s.coords.iter().enumerate() {
            out[i * self.height + c] = 1.0;
        }
    }
    fn encode_sparse(&self, s: &HyperGridState, out: &mut Csr) {
        out.push_row(
            s.coords
                .iter()
                .enumerate()
                .map(|(i, &c)| ((i * self.height + c) as u32, 1.0)),
        );
    }
    fn describe(&self, x: &HyperGridState) -> String {
        x.coords.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",")
    }
    fn all_states(&self) -> Option<Vec<HyperGridState>> {
        if self.n_points() > 1 << 22 {
            return None;
        }
        let mut states: Vec<HyperGridState> = (0..self.n_points())
            .map(|mut k| {
                let coords = (0..self.ndim)
                    .map(|_| {
                        let c = k % self.height;
                        k /= self.height;
                        c
                    })
                    .collect();
                HyperGridState { coords, done: false }
            })
            .collect();
        // parents have a smaller coordinate sum
        states.sort_by_key(|s| (s.coords.iter().sum::<usize>(), s.coords.clone()));
        Some(states)
    }
}

/// `R(x) = R0 + R1 * prod_i 1[0.25 < |x_i/(H-1) - 0.5|] + R2 * prod_i 1[0.3 < |x_i/(H-1) - 0.5| < 0.4]`.
#[derive(Clone, Debug)]
pub struct HyperGridReward {
    pub height: usize,
    pub r0: f64,
    pub r1: f64,
    pub r2: f64,
}

impl HyperGridReward {
    /// The standard rewards `R0 = 0.1, R1 = 0.5, R2 = 2.0`.
    pub fn standard(height: usize) -> Self {
        HyperGridReward {
            height,
            r0: 0.1,
            r1: 0.5,
            r2: 2.0,
        }
    }

    pub fn reward(&self, coords: &[usize]) -> f64 {
        let d = |c: usize| (c as f64 / (self.height - 1) as f64 - 0.5).abs();
        let outer = coords.iter().all(|&c| 0.25 < d(c));
        let ring = coords.iter().all(|&c| 0.3 < d(c) && d(c) < 0.4);
        self.r0 + self.r1 * outer as u8 as f64 + self.r2 * ring as u8 as f64
    }
}

impl LogReward<HyperGridState> for HyperGridReward {
    fn log_rewards(&mut self, xs: &[HyperGridState]) -> Result<Vec<f64>> {
        Ok(xs.iter().map(|x| self.reward(&x.coords).ln()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_reward_takes_its_documented_values() {
        // H = 8: |c/7 - 1/2| is 0.5 at c = 0, 0.357 at c = 1 (outer and ring), 0.071 at c = 3
        let r = HyperGridReward::standard(8);
        assert_eq!(r.reward(&[0, 0]), 0.1 + 0.5);
        assert_eq!(r.reward(&[1, 6]), 0.1 + 0.5 + 2.0);
        assert_eq!(r.reward(&[3, 3]), 0.1);
        // every coordinate must qualify: one central one removes both bonuses
        assert_eq!(r.reward(&[1, 1, 3]), 0.1);
        assert_eq!(r.reward(&[0, 1]), 0.1 + 0.5);
        // the bounds are strict: 0.25 at c = 1 of H = 5 is not outer
        assert_eq!(HyperGridReward::standard(5).reward(&[1, 1]), 0.1);
        // 0.417 at c = 1 of H = 13 is outer but past the ring
        assert_eq!(HyperGridReward::standard(13).reward(&[1, 1]), 0.1 + 0.5);
    }
}
