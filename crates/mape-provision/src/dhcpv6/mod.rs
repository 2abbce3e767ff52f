//! A DHCPv6 client (RFC 8415) for the delegated prefix (IA_PD) and the MAP-E options
//! (RFC 7598 OPTION_S46_CONT_MAPE): a sans-IO core and a thin UDP shell.
//!
//! - [`message`]: client messages built and server messages read (framing by `dhcproto`);
//! - [`retrans`]: RFC 8415 §15 retransmission (IRT/MRT/MRC/MRD, RAND ±0.1);
//! - [`machine`]: Solicit/Advertise/Request/Reply/Renew/Rebind, T1/T2, expiry; or, on a
//!   line that delegates no prefix, Information-request and its refresh (stateless);
//! - [`s46`]: the lease's option 94 to MAP parameters through mape-rules' S46 codec;
//! - [`shell`]: the socket on port 546 of one interface, and a one-shot run.
//!
//! ```
//! use mape_provision::dhcpv6::{Client, Config, Duid};
//! use rand::SeedableRng;
//! let mut c = Client::new(
//!     Config { duid: Duid::link_layer([2, 0, 0, 0, 0, 1]), iaid: 1, hint: None },
//!     rand::rngs::StdRng::seed_from_u64(1),
//! );
//! c.start(std::time::Duration::ZERO);
//! let first = c.next_timer().unwrap(); // at most SOL_MAX_DELAY (1 s) away
//! let solicit = c.on_timer(first).send.unwrap();
//! assert_eq!(solicit[0], 1); // Solicit
//! ```

pub mod machine;
pub mod message;
pub mod retrans;
pub mod s46;
#[cfg(feature = "shell")]
pub mod shell;

pub use machine::{
    Change, Client, Config, Discard, Duid, DuidError, Event, Failure, FailureClass, Information,
    Lease, Step, INFINITY,
};
pub use message::{Delegated, StatusInfo, ALL_SERVERS, CLIENT_PORT, SERVER_PORT};
