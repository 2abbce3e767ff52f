//! The lab's error type.

use std::time::Duration;

/// Lab errors.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Not root.
    #[error("the lab needs root (network namespaces, veth, TUN); run it with sudo")]
    NotRoot,
    /// A tool is missing.
    #[error("missing tool {0}: run scripts/install-deps.sh")]
    Missing(String),
    /// A command failed.
    #[error("{cmd}: {detail}")]
    Command {
        /// The command line.
        cmd: String,
        /// stderr or the error.
        detail: String,
    },
    /// Something did not come up in time.
    #[error("{0} did not come up within {1:?}; logs in {2}")]
    Timeout(String, Duration, String),
    /// File system.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
