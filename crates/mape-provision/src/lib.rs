//! HB46PP, the Japanese domestic-standard provisioning of IPv4 over IPv6 ("IPv6
//! migration technologies' domestic standard provisioning", IPv6 Promotion Council,
//! v1.0/1.1): a sans-IO core and a thin IO shell.
//!
//! - [`txt`]: discovery, the TXT record of `4over6.info` (§3.1);
//! - [`request`]: the GET's parameters (§3.3);
//! - [`answer`]: the JSON answer as typed structs, validated into `mape_rules` rules (§3.4);
//! - [`machine`]: the access sequence (§3.6): time in, actions out, seeded randomness;
//! - [`shell`]: DNS (hickory-resolver) and HTTP(S) (ureq + rustls) for the machine;
//! - [`dhcpv6`]: the other source of the rule, a DHCPv6 client for the delegated prefix
//!   and RFC 7598's option 94 (sans-IO machine and UDP shell).
//!
//! ```
//! use mape_provision::answer;
//! let offer = answer::parse(br#"{"ttl": 3600, "order": ["map_e", "dslite"],
//!   "map_e": {"version": 1, "br": "2001:db8:ffff::1", "rules": [{"ipv6": "2001:db8::/40",
//!   "ipv4": "192.0.2.0/24", "ea_length": 16, "psid_offset": 6}]}}"#).unwrap();
//! let p = offer.provision(&"2001:db8:12:3400::/56".parse().unwrap()).unwrap();
//! // RFC 7597 Appendix A, example 1.
//! assert_eq!(p.mapping.ce_ipv6.to_string(), "2001:db8:12:3400:0:c000:212:34");
//! assert_eq!(offer.unsupported()[0].as_str(), "dslite");
//! ```
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod answer;
pub mod dhcpv6;
pub mod machine;
pub mod request;
#[cfg(feature = "shell")]
pub mod shell;
pub mod txt;

pub use answer::{AnswerError, Offer, Technology};
pub use machine::{Action, Client, Config, Failure, FailureClass, LastGood, Outcome, Time};
