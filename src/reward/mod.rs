//! Reward models for peptide sequences.
//!
//! A GFlowNet samples terminal objects `x` with probability proportional to a
//! reward `R(x)`. This module defines the [`RewardModel`] trait through which
//! the trainer asks for rewards, and three ways to provide one:
//!
//! * [`peptide::PeptideReward`]: a built-in, dependency-free composite of
//!   classical physico-chemical descriptors (see [`peptide::composite`]);
//! * [`external::ExternalReward`]: any program speaking a one-line-JSON
//!   protocol over stdin/stdout (see `examples/score.py`);
//! * [`FnReward`]: any Rust closure.
//!
//! The trainer works with `log R(x)`, so it checks every batch with
//! [`validate_rewards`] before use.

use std::fmt;
use std::time::Duration;

mod adapter;
pub mod external;
pub mod peptide;

pub use adapter::PeptideLogReward;
pub use external::ExternalReward;
pub use peptide::PeptideReward;

/// The 20 standard amino acids, in alphabetical order of their one-letter codes.
pub const AMINO_ACIDS: &str = match std::str::from_utf8(crate::env::AMINO_ACIDS) {
    Ok(s) => s,
    Err(_) => panic!("the amino-acid alphabet is ASCII"),
};

/// Longest excerpt of a sequence, response line or stderr quoted in an error message.
pub(crate) const EXCERPT_CHARS: usize = 200;

/// Shortens `s` to at most `max` characters (on a char boundary) for an error message,
/// saying how long the original was when it had to be cut.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &s[..cut], s.len()),
    }
}

/// Errors from reward models. Every variant's `Display` names the cause: the offending
/// sequence, letter, response line, or the captured stderr of an external process.
#[derive(Debug, Clone, PartialEq)]
pub enum RewardError {
    /// A character outside [`AMINO_ACIDS`] (lower case included).
    InvalidResidue {
        /// The whole sequence.
        sequence: String,
        /// The first offending character.
        letter: char,
        /// Its 0-based character position.
        position: usize,
    },
    /// A descriptor was asked of the empty sequence, for which it is undefined.
    EmptySequence,
    /// A model returned a different number of rewards than sequences it was given.
    CountMismatch {
        /// Number of sequences scored.
        expected: usize,
        /// Number of rewards returned.
        got: usize,
    },
    /// A reward is NaN.
    NanReward {
        /// Index in the batch.
        index: usize,
        /// The sequence it belongs to.
        sequence: String,
    },
    /// A reward is `+inf` or `-inf`.
    InfiniteReward {
        /// Index in the batch.
        index: usize,
        /// The sequence it belongs to.
        sequence: String,
        /// The value (`inf` or `-inf`).
        value: f64,
    },
    /// A reward is below zero.
    NegativeReward {
        /// Index in the batch.
        index: usize,
        /// The sequence it belongs to.
        sequence: String,
        /// The value.
        value: f64,
    },
    /// A reward is exactly zero, whose logarithm is `-inf`.
    ZeroReward {
        /// Index in the batch.
        index: usize,
        /// The sequence it belongs to.
        sequence: String,
    },
    /// The external reward command could not be started.
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        message: String,
    },
    /// The external reward process exited or crashed (or closed its stdout).
    ProcessExited {
        /// The command line.
        command: String,
        /// Its exit status, as the OS reports it (`exit status: 1`, `signal: 9 (SIGKILL)`).
        status: String,
        /// The last few KiB it wrote to stderr.
        stderr: String,
    },
    /// The external reward process did not answer within the timeout; it was killed.
    Timeout {
        /// The command line.
        command: String,
        /// The timeout that elapsed.
        timeout: Duration,
        /// The last few KiB it wrote to stderr.
        stderr: String,
    },
    /// The external reward process answered with a line that breaks the protocol.
    BadResponse {
        /// The command line.
        command: String,
        /// What is wrong with it.
        problem: String,
        /// The offending line (truncated).
        line: String,
    },
    /// Reading from or writing to the external reward process failed.
    Io {
        /// The command line.
        command: String,
        /// The I/O error.
        message: String,
        /// The last few KiB it wrote to stderr.
        stderr: String,
    },
    /// The external reward process was shut down after an earlier failure.
    ProcessDead {
        /// The command line.
        command: String,
        /// The earlier failure.
        cause: String,
    },
    /// Any other failure, for user-written models.
    Other(String),
}

fn stderr_suffix(stderr: &str) -> String {
    let t = stderr.trim();
    if t.is_empty() {
        "; it wrote nothing to stderr".to_string()
    } else {
        format!("; its stderr ended with:\n{t}")
    }
}

impl fmt::Display for RewardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RewardError::*;
        let seq = |s: &str| excerpt(s, EXCERPT_CHARS);
        match self {
            InvalidResidue {
                sequence,
                letter,
                position,
            } => write!(
                f,
                "invalid residue {letter:?} at position {position} (0-based) in sequence {:?}; \
                 allowed letters are {AMINO_ACIDS} (upper case)",
                seq(sequence)
            ),
            EmptySequence => write!(f, "the empty sequence has no such property"),
            CountMismatch { expected, got } => write!(
                f,
                "wrong number of rewards: expected {expected} (one per sequence), got {got}"
            ),
            NanReward { index, sequence } => write!(f, "reward {index} (sequence {:?}) is NaN", seq(sequence)),
            InfiniteReward { index, sequence, value } => {
                write!(f, "reward {index} (sequence {:?}) is infinite ({value})", seq(sequence))
            }
            NegativeReward { index, sequence, value } => write!(
                f,
                "reward {index} (sequence {:?}) is negative ({value}); rewards must be > 0",
                seq(sequence)
            ),
            ZeroReward { index, sequence } => write!(
                f,
                "reward {index} (sequence {:?}) is zero, so log R = -inf; rewards must be > 0 \
                 (add a small floor inside the model if zero is meant)",
                seq(sequence)
            ),
            Spawn { command, message } => {
                write!(f, "could not start reward command `{command}`: {message}")
            }
            ProcessExited {
                command,
                status,
                stderr,
            } => write!(
                f,
                "reward process `{command}` exited ({status}){}",
                stderr_suffix(stderr)
            ),
            Timeout {
                command,
                timeout,
                stderr,
            } => write!(
                f,
                "reward process `{command}` timed out: no answer within {:.3} s, so it was killed{}",
                timeout.as_secs_f64(),
                stderr_suffix(stderr)
            ),
            BadResponse { command, problem, line } => write!(
                f,
                "reward process `{command}` sent a bad response: {problem}; the line was: {}",
                excerpt(line, EXCERPT_CHARS)
            ),
            Io {
                command,
                message,
                stderr,
            } => write!(
                f,
                "I/O error talking to reward process `{command}`: {message}{}",
                stderr_suffix(stderr)
            ),
            ProcessDead { command, cause } => write!(
                f,
                "reward process `{command}` is no longer running after an earlier failure: {cause}"
            ),
            Other(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for RewardError {}

/// A user-pluggable reward for peptide sequences (strings over [`AMINO_ACIDS`]).
pub trait RewardModel: Send {
    /// Raw rewards `R(x) >= 0`, one per sequence, in order.
    ///
    /// The caller validates the result with [`validate_rewards`] (finite, `> 0`), but the
    /// implementations in this module never return NaN themselves.
    fn score(&mut self, seqs: &[&str]) -> Result<Vec<f64>, RewardError>;

    /// A short human-readable name, for logs.
    fn name(&self) -> String;
}

impl<M: RewardModel + ?Sized> RewardModel for Box<M> {
    fn score(&mut self, seqs: &[&str]) -> Result<Vec<f64>, RewardError> {
        (**self).score(seqs)
    }

    fn name(&self) -> String {
        (**self).name()
    }
}

/// Wraps any closure `FnMut(&[&str]) -> Result<Vec<f64>, RewardError> + Send` as a
/// [`RewardModel`] with a name.
///
/// ```
/// use gflownet::reward::{FnReward, RewardModel};
/// let mut m = FnReward::new("length", |seqs: &[&str]| {
///     Ok(seqs.iter().map(|s| 1.0 + s.len() as f64).collect())
/// });
/// assert_eq!(m.score(&["AC"]).unwrap(), vec![3.0]);
/// assert_eq!(m.name(), "length");
/// ```
pub struct FnReward<F> {
    name: String,
    f: F,
}

impl<F> FnReward<F>
where
    F: FnMut(&[&str]) -> Result<Vec<f64>, RewardError> + Send,
{
    /// Wraps `f` under the given name.
    pub fn new(name: impl Into<String>, f: F) -> Self {
        FnReward { name: name.into(), f }
    }
}

impl<F> RewardModel for FnReward<F>
where
    F: FnMut(&[&str]) -> Result<Vec<f64>, RewardError> + Send,
{
    fn score(&mut self, seqs: &[&str]) -> Result<Vec<f64>, RewardError> {
        (self.f)(seqs)
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

/// Checks that `rewards` holds exactly one finite, strictly positive reward per sequence.
///
/// Each way to fail is its own error naming the sequence and value: wrong count
/// ([`RewardError::CountMismatch`]), NaN, `+inf`/`-inf`, negative, and zero. Zero is refused
/// because the trainer works with `log R`, and `log 0 = -inf`; a user who wants a floor
/// (say `R = max(r, 1e-8)`, or `r + 1e-8`) adds it inside their own model, where its size
/// is a deliberate choice.
pub fn validate_rewards(seqs: &[&str], rewards: &[f64]) -> Result<(), RewardError> {
    if seqs.len() != rewards.len() {
        return Err(RewardError::CountMismatch {
            expected: seqs.len(),
            got: rewards.len(),
        });
    }
    for (index, (&s, &r)) in seqs.iter().zip(rewards).enumerate() {
        let sequence = || s.to_string();
        if r.is_nan() {
            return Err(RewardError::NanReward {
                index,
                sequence: sequence(),
            });
        }
        if r.is_infinite() {
            return Err(RewardError::InfiniteReward {
                index,
                sequence: sequence(),
                value: r,
            });
        }
        if r < 0.0 {
            return Err(RewardError::NegativeReward {
                index,
                sequence: sequence(),
                value: r,
            });
        }
        if r == 0.0 {
            return Err(RewardError::ZeroReward {
                index,
                sequence: sequence(),
            });
        }
    }
    Ok(())
}
