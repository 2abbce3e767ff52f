//! Zero-copy views over packet buffers (IPv4, IPv6, TCP, UDP, ICMPv4, ICMPv6) and checksums.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
