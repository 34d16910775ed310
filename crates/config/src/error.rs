//! Configuration errors that name key, value, source and rule.

use std::fmt;
use std::path::PathBuf;

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A config file named explicitly could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A config file is not valid TOML.
    #[error("{}: {message}", location(path, *line))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line, when the parser says.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// One or more values are wrong; every problem is listed.
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The individual problems (empty for read and syntax errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(p) => p,
            _ => &[],
        }
    }
}

fn location(path: &std::path::Path, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{}:{l}", path.display()),
        None => path.display().to_string(),
    }
}

fn list(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// One wrong value: which key, what value, where it came from and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `video.fps`.
    pub key: String,
    /// The offending value as written (absent for unknown keys and type errors without one).
    pub value: Option<String>,
    /// Where the value came from: `config/livekit.toml:12`, `environment variable WAVECAST_VIDEO__FPS`,
    /// `command-line flag --fps` or `default`.
    pub origin: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{} = {v} ({}): {}", self.key, self.origin, self.message),
            None => write!(f, "{} ({}): {}", self.key, self.origin, self.message),
        }
    }
}
