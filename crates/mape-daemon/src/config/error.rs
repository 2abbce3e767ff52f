//! The configuration's error type (`ConfigError`): the key, the value and what is expected.

use mape_nat::ConfigError as NatConfigError;

/// A configuration error, naming the key, the value and what is expected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax or type error (with line and column).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// toml's message, which names the key and the line.
        message: String,
    },
    /// A value that parses but is wrong.
    #[error("{key} = {value:?}: {expected}")]
    Value {
        /// Dotted key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is expected.
        expected: String,
    },
    /// A required key is missing.
    #[error("{key} is missing: {expected}")]
    Missing {
        /// Dotted key.
        key: &'static str,
        /// What to put there.
        expected: &'static str,
    },
    /// The MAP rule could not be provisioned.
    #[error("[map]: {0}")]
    Provision(#[from] mape_rules::ProvisionError),
    /// The NAT section is inconsistent.
    #[error("[nat]: {0}")]
    Nat(#[from] NatConfigError),
    /// HB46PP gave no usable rule (none fetched or stored yet, or none for the prefix).
    #[error("[provisioning] hb46pp: {0}")]
    Hb46pp(String),
    /// mape's DHCPv6 client gave no usable rule (no lease yet, no option 94, or no rule
    /// for the prefix).
    #[error("[provisioning] dhcpv6: {0}")]
    Dhcpv6(String),
}

pub(super) fn value_err(
    key: &'static str,
    value: impl ToString,
    expected: impl ToString,
) -> ConfigError {
    ConfigError::Value {
        key,
        value: value.to_string(),
        expected: expected.to_string(),
    }
}
