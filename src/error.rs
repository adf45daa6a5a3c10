//! The crate's error type: every public fallible function returns [`Error`].

use std::fmt;

/// Everything that can go wrong with user input, files or reward models.
/// Each variant's message names the cause.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An option value outside its allowed range: names the option and the range.
    Config { option: String, message: String },
    /// A malformed object (e.g. a peptide with a letter outside the alphabet).
    Parse(String),
    /// A reward that is not usable (NaN, infinite, negative, zero, wrong count, failed model).
    Reward(String),
    /// A file could not be read or written.
    Io { path: String, source: std::io::Error },
    /// A checkpoint that is truncated, corrupted or from an incompatible run.
    Checkpoint(String),
    /// Numbers went non-finite where they must not.
    Numeric(String),
}

impl Error {
    /// Shorthand for [`Error::Config`].
    pub fn config(option: &str, message: impl Into<String>) -> Self {
        Error::Config {
            option: option.to_string(),
            message: message.into(),
        }
    }

    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { option, message } => write!(f, "invalid `{option}`: {message}"),
            Error::Parse(m) => write!(f, "parse error: {m}"),
            Error::Reward(m) => write!(f, "reward error: {m}"),
            Error::Io { path, source } => write!(f, "{path}: {source}"),
            Error::Checkpoint(m) => write!(f, "checkpoint refused: {m}"),
            Error::Numeric(m) => write!(f, "numeric error: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that a number is finite and strictly positive (learning rates, temperatures...).
pub fn positive_finite(option: &str, x: f64) -> Result<()> {
    if x.is_finite() && x > 0.0 {
        Ok(())
    } else {
        Err(Error::config(option, format!("must be positive and finite, got {x}")))
    }
}

/// Checks that a number lies in `[lo, hi]`.
pub fn in_range(option: &str, x: f64, lo: f64, hi: f64) -> Result<()> {
    if x.is_finite() && x >= lo && x <= hi {
        Ok(())
    } else {
        Err(Error::config(option, format!("must be in [{lo}, {hi}], got {x}")))
    }
}
