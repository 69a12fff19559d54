//! The one error type: where (file, line, job, key) and why, on one line.

use std::fmt;

/// Where a bad value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A config file, with the 1-based line when known.
    File {
        /// The file as given.
        path: String,
        /// 1-based line.
        line: Option<usize>,
    },
    /// An environment variable.
    Env(String),
    /// The caller's flags.
    Flag,
    /// Not tied to one place (a job that is missing, a missing repository key).
    None,
}

/// A config that cannot be used. `Display` is one line naming the file, line, job and key;
/// it never contains a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Where.
    pub origin: Origin,
    /// The job (`None` for `[defaults]` and file-level problems).
    pub job: Option<String>,
    /// The key (`keep_daily`, `drill.max_rto`).
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error at `origin`.
    pub fn new(origin: Origin, message: impl Into<String>) -> Self {
        Self {
            origin,
            job: None,
            key: None,
            message: message.into(),
        }
    }

    /// Names the job.
    #[must_use]
    pub fn job(mut self, job: Option<&str>) -> Self {
        self.job = job.map(str::to_owned);
        self
    }

    /// Names the key.
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File {
                path,
                line: Some(l),
            } => write!(f, "{path}:{l}: ")?,
            Origin::File { path, line: None } => write!(f, "{path}: ")?,
            Origin::Env(var) => write!(f, "environment variable {var}: ")?,
            Origin::Flag => f.write_str("flags: ")?,
            Origin::None => {}
        }
        match (&self.job, &self.key) {
            (Some(j), Some(k)) => write!(f, "job {j:?}, key {k:?}: ")?,
            (Some(j), None) => write!(f, "job {j:?}: ")?,
            // A key without a job is one of `[defaults]` (every job reads it).
            (None, Some(k)) => write!(f, "[defaults], key {k:?}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}
