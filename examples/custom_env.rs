//! A custom environment in a few lines: binary strings of length `n`, built
//! by appending bits, rewarded by how many ones they hold.
//!
//! `cargo run --release --example custom_env` trains TB on it and compares
//! the learned distribution with the exact target `R(x) / Z`.

use gflownet::env::{Environment, LogReward};
use gflownet::metrics::exact_terminal_distribution;
use gflownet::train::{TrainConfig, Trainer};
use serde::{Deserialize, Serialize};

/// Bits appended left to right; `done` once the string is complete.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Bits {
    bits: Vec<u8>,
    done: bool,
}

struct BitStrings {
    n: usize,
}

impl Environment for BitStrings {
    type State = Bits;

    // actions 0 and 1 append a bit; action 2 terminates a full string
    fn n_actions(&self) -> usize {
        3
    }
    fn n_backward_actions(&self) -> usize {
        1
    }
    // one-hot per position: [position * 2 + bit]
    fn feature_dim(&self) -> usize {
        2 * self.n
    }
    fn initial_state(&self) -> Bits {
        Bits {
            bits: vec![],
            done: false,
        }
    }
    fn is_terminal(&self, s: &Bits) -> bool {
        s.done
    }
    fn forward_mask(&self, s: &Bits, mask: &mut [bool]) {
        let full = s.bits.len() == self.n;
        mask[0] = !s.done && !full;
        mask[1] = !s.done && !full;
        mask[2] = !s.done && full;
    }
    fn step(&self, s: &Bits, a: usize) -> Bits {
        let mut next = s.clone();
        match a {
            2 => next.done = true,
            bit => next.bits.push(bit as u8),
        }
        next
    }
    fn backward_mask(&self, s: &Bits, mask: &mut [bool]) {
        mask[0] = !s.bits.is_empty();
    }
    fn backward_step(&self, s: &Bits, _b: usize) -> (Bits, usize) {
        let mut parent = s.clone();
        let bit = parent.bits.pop().expect("a non-initial state");
        (parent, bit as usize)
    }
    fn backward_action(&self, _parent: &Bits, _a: usize) -> usize {
        0
    }
    fn unterminate(&self, x: &Bits) -> (Bits, usize) {
        (
            Bits {
                bits: x.bits.clone(),
                done: false,
            },
            2,
        )
    }
    fn encode(&self, s: &Bits, out: &mut [f32]) {
        for (p, &b) in s.bits.iter().enumerate() {
            out[2 * p + b as usize] = 1.0;
        }
    }
    // a tree: every state has one parent, so log P_B = 0
    fn is_tree(&self) -> bool {
        true
    }
    fn all_states(&self) -> Option<Vec<Bits>> {
        let mut out = vec![self.initial_state()];
        let mut i = 0;
        while i < out.len() {
            if out[i].bits.len() < self.n {
                for b in 0..2 {
                    out.push(self.step(&out[i].clone(), b));
                }
            }
            i += 1;
        }
        Some(out)
    }
}

/// `R(x) = 1 + number of ones`, as log-rewards.
struct CountOnes;
impl LogReward<Bits> for CountOnes {
    fn log_rewards(&mut self, xs: &[Bits]) -> gflownet::error::Result<Vec<f64>> {
        Ok(xs
            .iter()
            .map(|x| (1.0 + x.bits.iter().map(|&b| b as f64).sum::<f64>()).ln())
            .collect())
    }
}

fn main() -> gflownet::error::Result<()> {
    let env = BitStrings { n: 6 };
    // the HyperGrid defaults are a sensible start for any small task
    let mut config = TrainConfig::hypergrid_default(2, 2);
    config.policy.hidden = vec![64, 64];
    let mut trainer = Trainer::new(config, env, CountOnes)?;
    for _ in 0..500 {
        trainer.train_step()?;
    }
    let exact = exact_terminal_distribution(&trainer.env, &trainer.policy, &trainer.store, &mut CountOnes)?
        .expect("the bit strings enumerate");
    let m = exact.metrics();
    println!(
        "{} strings; exact L1 to the target {:.4} (sum convention), learned log Z {:.3}, true log Z {:.3}",
        exact.terminals.len(),
        m.l1_sum,
        trainer.log_z(),
        exact.true_log_z
    );
    Ok(())
}
