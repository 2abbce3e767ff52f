//! A catalogue of known port-burning flow patterns, as data: which application sends what
//! (protocol, destination ports, destination address kind), what a home user should do
//! about it, and where the facts come from.
//!
//! The catalogue is compiled in from `signatures/*.toml` (format in the comment block at the
//! top of each file and in `docs/signatures.md`) and can be extended with the user's own
//! files (`/etc/mape/signatures.d/*.toml`, [`Catalogue::with_dir`]). Every file is validated
//! when loaded; an error names the file, the entry, the key, the value and what is expected.
//! Nothing here reads a clock or panics on input; the sizes are bounded ([`MAX_FILE_BYTES`],
//! [`MAX_ENTRIES`], [`MAX_RANGES`]).
//!
//! Matching is first match in catalogue order: entries added by [`Catalogue::with_dir`] or
//! [`Catalogue::with_toml`] come before those already present, so the user's files are
//! consulted before the built-in ones. Names are unique across the whole catalogue: a user
//! file cannot reuse (and so cannot silently replace) a built-in name.

mod parse;

use core::fmt;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::types::{Endpoint, Protocol};

use parse::{entry_label, key_text, line_column, one_line, parse_entry, show};

/// Largest signature file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// Most signatures in one catalogue (built-in and user files together) and in one file.
pub const MAX_ENTRIES: usize = 1024;
/// Most port ranges in one signature.
pub const MAX_RANGES: usize = 64;
/// Where the daemon looks for the user's own signature files.
pub const DEFAULT_DIR: &str = "/etc/mape/signatures.d";

const MAX_NAME: usize = 64;
const MAX_APPLICATION: usize = 128;
const MAX_TEXT: usize = 512;
const MAX_VALUE_SHOWN: usize = 80;

/// The built-in files, in match order.
const BUILTIN_FILES: &[(&str, &str)] = &[
    (
        "applications.toml",
        include_str!("../signatures/applications.toml"),
    ),
    (
        "lan-discovery.toml",
        include_str!("../signatures/lan-discovery.toml"),
    ),
];

const KEYS: &str =
    "one of name, application, proto, ports, destination, changing_source_ports, advice, source";
const EXPECT_NAME: &str = "1-64 characters of a-z, 0-9 and \"-\"";
const EXPECT_PROTO: &str = "\"tcp\", \"udp\" or \"icmp\"";
const EXPECT_PORTS: &str = "an array of 1-64 ports or ranges, e.g. [\"1900\"] or [\"59866-59869\"]";
const EXPECT_PORT: &str =
    "a port 1-65535 or a range \"LO-HI\" with 1 <= LO <= HI <= 65535, e.g. \"59866-59869\"";
const EXPECT_DESTINATION: &str =
    "\"private\", \"multicast\", \"broadcast\", \"local\", \"public\" or \"any\"";
const EXPECT_BOOL: &str = "true or false";

/// The kind of destination address a signature applies to.
///
/// An address is classified as exactly one of `Private`, `Multicast`, `Broadcast` or `Public`
/// ([`DestinationKind::of`]); `Local` and `Any` are wider kinds a signature may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// Non-global unicast: RFC 1918 private, link-local 169.254/16, loopback 127/8 and the
    /// shared address space 100.64/10 (RFC 6598).
    Private,
    /// 224.0.0.0/4.
    Multicast,
    /// The limited broadcast 255.255.255.255 (a subnet's directed broadcast cannot be told
    /// from a unicast address without the netmask: it classifies as `Private`).
    Broadcast,
    /// Any of `Private`, `Multicast` and `Broadcast`: traffic meant for the local network.
    Local,
    /// None of the special kinds above.
    Public,
    /// Every destination.
    Any,
}

impl DestinationKind {
    /// The kind of `addr`: `Private`, `Multicast`, `Broadcast` or `Public`.
    pub fn of(addr: Ipv4Addr) -> DestinationKind {
        let shared = {
            let o = addr.octets();
            o[0] == 100 && (o[1] & 0xc0) == 64
        };
        if addr.is_broadcast() {
            DestinationKind::Broadcast
        } else if addr.is_multicast() {
            DestinationKind::Multicast
        } else if addr.is_private() || addr.is_link_local() || addr.is_loopback() || shared {
            DestinationKind::Private
        } else {
            DestinationKind::Public
        }
    }

    /// Whether a signature asking for `self` applies to a flow towards `addr`.
    pub fn admits(self, addr: Ipv4Addr) -> bool {
        let kind = DestinationKind::of(addr);
        match self {
            DestinationKind::Any => true,
            DestinationKind::Local => kind != DestinationKind::Public,
            k => k == kind,
        }
    }

    /// The lower-case name used in files, JSON and messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            DestinationKind::Private => "private",
            DestinationKind::Multicast => "multicast",
            DestinationKind::Broadcast => "broadcast",
            DestinationKind::Local => "local",
            DestinationKind::Public => "public",
            DestinationKind::Any => "any",
        }
    }

    fn parse(s: &str) -> Option<DestinationKind> {
        Some(match s {
            "private" => DestinationKind::Private,
            "multicast" => DestinationKind::Multicast,
            "broadcast" => DestinationKind::Broadcast,
            "local" => DestinationKind::Local,
            "public" => DestinationKind::Public,
            "any" => DestinationKind::Any,
            _ => return None,
        })
    }
}

impl fmt::Display for DestinationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One known flow pattern that burns ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signature {
    /// Short id, `[a-z0-9-]{1,64}`, unique in a catalogue.
    pub name: String,
    /// What the user knows it as, e.g. "Logitech Options+ Flow".
    pub application: String,
    /// Transport protocol.
    pub proto: Protocol,
    /// Destination port ranges, inclusive, in file order (at most [`MAX_RANGES`]).
    pub ports: Vec<(u16, u16)>,
    /// The destination address kind.
    pub destination: DestinationKind,
    /// Whether the pattern uses a new source port per flow.
    pub changing_source_ports: bool,
    /// What a home user should do, in plain words.
    pub advice: String,
    /// Where the facts come from (vendor documentation, a standard, a public report).
    pub source: String,
}

impl Signature {
    /// Whether a flow of `proto` towards `dst` fits this signature.
    pub fn matches(&self, proto: Protocol, dst: Endpoint) -> bool {
        self.proto == proto
            && self
                .ports
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&dst.port))
            && self.destination.admits(dst.addr)
    }

    /// The ports as written in a file: `"1900"`, `"137-138, 5353"`.
    pub fn ports_text(&self) -> String {
        self.ports
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a signature file was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The directory or a file in it could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The directory or file.
        path: String,
        /// Why.
        message: String,
    },
    /// A file larger than [`MAX_FILE_BYTES`].
    #[error("{origin}: more than {max} bytes: expected a signature file of at most {max} bytes")]
    TooLarge {
        /// The file.
        origin: String,
        /// The limit.
        max: usize,
    },
    /// A file that is not UTF-8 text.
    #[error("{origin}: invalid UTF-8 at byte {offset}: expected UTF-8 text")]
    NotUtf8 {
        /// The file.
        origin: String,
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// Not TOML.
    #[error("{origin}: line {line}, column {column}: {message}")]
    Syntax {
        /// The file.
        origin: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column (in characters) of the problem.
        column: usize,
        /// The TOML parser's message.
        message: String,
    },
    /// A key with a bad value, missing, or unknown.
    #[error("{origin}: {entry}: {key} = {value}: expected {expected}")]
    Invalid {
        /// The file.
        origin: String,
        /// Which entry: `signature 3 "ssdp"` (1-based), or `top level`.
        entry: String,
        /// The key.
        key: String,
        /// The offending value as TOML (shortened), or `(missing)`.
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// A name used twice (in one file, across files, or by a user file and a built-in one).
    #[error(
        "{origin}: {entry}: name = \"{name}\": expected a name not used before \
         (already defined in {first})"
    )]
    Duplicate {
        /// The file of the second definition.
        origin: String,
        /// Which entry, as in [`SignatureError::Invalid`].
        entry: String,
        /// The name.
        name: String,
        /// The file of the first definition.
        first: String,
    },
    /// More than [`MAX_ENTRIES`] signatures.
    #[error("{origin}: {count} signatures: expected at most {max} in the whole catalogue")]
    TooMany {
        /// The file that went over.
        origin: String,
        /// How many there would be.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// A validated set of signatures, in match order.
#[derive(Clone, Default)]
pub struct Catalogue {
    entries: Vec<Signature>,
    /// Where each entry was defined (same index as `entries`).
    origins: Vec<String>,
    /// Per protocol, one bit per destination port: some entry covers it. Empty when there
    /// are no entries. A fast "no" for the common flow that matches nothing.
    ports: Vec<u64>,
}

impl fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalogue")
            .field("entries", &self.entries)
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}

const WORDS_PER_PROTO: usize = 65536 / 64;

impl Catalogue {
    /// The compiled-in catalogue (`crates/mape-nat/signatures/*.toml`), parsed once.
    ///
    /// # Panics
    ///
    /// Never in a released build: the built-in files are checked by this module's tests.
    #[allow(
        clippy::expect_used,
        reason = "compiled-in input, checked by this module's tests"
    )]
    pub fn builtin() -> Catalogue {
        static BUILTIN: OnceLock<Catalogue> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                BUILTIN_FILES
                    .iter()
                    .rev()
                    .try_fold(Catalogue::default(), |c, (file, text)| {
                        c.with_toml(text, &format!("built-in {file}"))
                    })
                    .expect("the built-in signature files are valid")
            })
            .clone()
    }

    /// Parses and validates one signature file; `origin` names it in errors. Names must be
    /// unique within the file; [`Catalogue::with_toml`] and [`Catalogue::with_dir`] also
    /// check them against the catalogue.
    pub fn from_toml(text: &str, origin: &str) -> Result<Vec<Signature>, SignatureError> {
        if text.len() > MAX_FILE_BYTES {
            return Err(SignatureError::TooLarge {
                origin: origin.to_owned(),
                max: MAX_FILE_BYTES,
            });
        }
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
            SignatureError::Syntax {
                origin: origin.to_owned(),
                line,
                column,
                message: one_line(e.message()),
            }
        })?;
        let invalid =
            |entry: &str, key: &str, value: String, expected: &str| SignatureError::Invalid {
                origin: origin.to_owned(),
                entry: entry.to_owned(),
                key: key.to_owned(),
                value,
                expected: expected.to_owned(),
            };
        let mut list: &[toml::Value] = &[];
        for (key, value) in &table {
            match (key.as_str(), value) {
                ("signature", toml::Value::Array(a)) => list = a,
                ("signature", v) => {
                    return Err(invalid(
                        "top level",
                        key,
                        show(v),
                        "an array of tables ([[signature]] sections)",
                    ))
                }
                (_, v) => {
                    return Err(invalid(
                        "top level",
                        &key_text(key),
                        show(v),
                        "only [[signature]] sections",
                    ))
                }
            }
        }
        if list.len() > MAX_ENTRIES {
            return Err(SignatureError::TooMany {
                origin: origin.to_owned(),
                count: list.len(),
                max: MAX_ENTRIES,
            });
        }
        let mut out: Vec<Signature> = Vec::with_capacity(list.len());
        for (i, v) in list.iter().enumerate() {
            let s = parse_entry(i, v, origin)?;
            if out.iter().any(|o| o.name == s.name) {
                return Err(SignatureError::Duplicate {
                    origin: origin.to_owned(),
                    entry: entry_label(i, Some(&s.name)),
                    name: s.name,
                    first: origin.to_owned(),
                });
            }
            out.push(s);
        }
        Ok(out)
    }

    /// Adds the signatures of one file's text, consulted before the entries already present.
    pub fn with_toml(self, text: &str, origin: &str) -> Result<Catalogue, SignatureError> {
        let new = Catalogue::from_toml(text, origin)?
            .into_iter()
            .map(|s| (s, origin.to_owned()))
            .collect();
        self.prepend(new)
    }

    /// Adds every `*.toml` file of `dir` (e.g. [`DEFAULT_DIR`]) in file-name order, consulted
    /// before the entries already present. A missing directory adds nothing; an unreadable
    /// or invalid file is an error naming it.
    pub fn with_dir(self, dir: &Path) -> Result<Catalogue, SignatureError> {
        let io = |path: &Path, e: std::io::Error| SignatureError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let listing = match std::fs::read_dir(dir) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(self),
            Err(e) => return Err(io(dir, e)),
        };
        let mut files = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|e| io(dir, e))?;
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "toml") {
                files.push(path);
            }
        }
        files.sort();
        let mut new = Vec::new();
        for path in files {
            let origin = path.display().to_string();
            let text = read_bounded(&path).map_err(|e| match e {
                Bounded::Io(e) => io(&path, e),
                Bounded::TooLarge => SignatureError::TooLarge {
                    origin: origin.clone(),
                    max: MAX_FILE_BYTES,
                },
                Bounded::NotUtf8(offset) => SignatureError::NotUtf8 {
                    origin: origin.clone(),
                    offset,
                },
            })?;
            for s in Catalogue::from_toml(&text, &origin)? {
                new.push((s, origin.clone()));
            }
            // Stop at the file that goes over, before reading any more.
            if self.entries.len() + new.len() > MAX_ENTRIES {
                return Err(SignatureError::TooMany {
                    origin,
                    count: self.entries.len() + new.len(),
                    max: MAX_ENTRIES,
                });
            }
        }
        self.prepend(new)
    }

    fn prepend(self, new: Vec<(Signature, String)>) -> Result<Catalogue, SignatureError> {
        if new.is_empty() {
            return Ok(self);
        }
        let total = self.entries.len() + new.len();
        if total > MAX_ENTRIES {
            let origin = new.last().map(|(_, o)| o.clone()).unwrap_or_default();
            return Err(SignatureError::TooMany {
                origin,
                count: total,
                max: MAX_ENTRIES,
            });
        }
        let mut entries = Vec::with_capacity(total);
        let mut origins = Vec::with_capacity(total);
        for (s, origin) in new {
            let first = entries
                .iter()
                .zip(&origins)
                .chain(self.entries.iter().zip(&self.origins))
                .find(|(e, _)| e.name == s.name)
                .map(|(_, o)| o.clone());
            if let Some(first) = first {
                // Its index within its own file: the entries of that file before it.
                let index = origins.iter().filter(|o| **o == origin).count();
                return Err(SignatureError::Duplicate {
                    entry: entry_label(index, Some(&s.name)),
                    name: s.name,
                    origin,
                    first,
                });
            }
            entries.push(s);
            origins.push(origin);
        }
        entries.extend(self.entries);
        origins.extend(self.origins);
        let ports = port_index(&entries);
        Ok(Catalogue {
            entries,
            origins,
            ports,
        })
    }

    /// The first signature a flow of `proto` towards `dst` fits: protocol, a port in one of
    /// its ranges, and the destination address kind.
    pub fn matches(&self, proto: Protocol, dst: Endpoint) -> Option<&Signature> {
        let bit = proto.index() * WORDS_PER_PROTO * 64 + usize::from(dst.port);
        let covered = self
            .ports
            .get(bit / 64)
            .is_some_and(|w| w & (1 << (bit % 64)) != 0);
        if !covered {
            return None;
        }
        self.entries.iter().find(|s| s.matches(proto, dst))
    }

    /// Every signature, in match order.
    pub fn entries(&self) -> &[Signature] {
        &self.entries
    }

    /// The signature called `name`.
    pub fn get(&self, name: &str) -> Option<&Signature> {
        self.entries.iter().find(|s| s.name == name)
    }

    /// Where the signature called `name` was defined (`built-in FILE` or a path).
    pub fn origin_of(&self, name: &str) -> Option<&str> {
        let i = self.entries.iter().position(|s| s.name == name)?;
        self.origins.get(i).map(String::as_str)
    }

    /// How many signatures.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn port_index(entries: &[Signature]) -> Vec<u64> {
    let mut words = vec![0u64; Protocol::ALL.len() * WORDS_PER_PROTO];
    for s in entries {
        let base = s.proto.index() * WORDS_PER_PROTO * 64;
        for &(lo, hi) in &s.ports {
            let (mut b, end) = (base + usize::from(lo), base + usize::from(hi));
            while b <= end {
                if b % 64 == 0 && b + 63 <= end {
                    words[b / 64] = u64::MAX;
                    b += 64;
                } else {
                    words[b / 64] |= 1 << (b % 64);
                    b += 1;
                }
            }
        }
    }
    words
}

enum Bounded {
    Io(std::io::Error),
    TooLarge,
    NotUtf8(usize),
}

fn read_bounded(path: &Path) -> Result<String, Bounded> {
    let file = std::fs::File::open(path).map_err(Bounded::Io)?;
    let meta = file.metadata().map_err(Bounded::Io)?;
    if !meta.is_file() {
        return Err(Bounded::Io(std::io::Error::other(
            "not a regular file: expected a signature file",
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(Bounded::Io)?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Bounded::TooLarge);
    }
    String::from_utf8(bytes).map_err(|e| Bounded::NotUtf8(e.utf8_error().valid_up_to()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(a: [u8; 4], port: u16) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(a), port)
    }

    const GOOD: &str = r#"
[[signature]]
name = "my-app"
application = "My App"
proto = "udp"
ports = ["4000", "5000-5002", 6000]
destination = "private"
advice = "Turn it off."
source = "https://example.com/doc"
"#;

    fn err(text: &str) -> String {
        Catalogue::from_toml(text, "x.toml")
            .unwrap_err()
            .to_string()
    }

    /// GOOD with `key = value` replaced (or removed when `value` is None).
    fn with(key: &str, value: Option<&str>) -> String {
        let mut out = String::new();
        let mut done = false;
        for line in GOOD.lines() {
            if line.starts_with(&format!("{key} = ")) {
                if let Some(v) = value {
                    out.push_str(&format!("{key} = {v}\n"));
                }
                done = true;
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        if !done {
            if let Some(v) = value {
                out.push_str(&format!("{key} = {v}\n"));
            }
        }
        out
    }

    #[test]
    fn builtin_parses_and_every_entry_is_sourced() {
        let c = Catalogue::builtin();
        assert!(c.len() >= 8, "{c:?}");
        for s in c.entries() {
            assert!(!s.source.trim().is_empty(), "{}", s.name);
            assert!(s.source.contains("https://"), "{}: {}", s.name, s.source);
            assert!(!s.advice.trim().is_empty(), "{}", s.name);
            assert!(c.origin_of(&s.name).unwrap().starts_with("built-in "));
        }
        // Every built-in file alone parses too, and each has the format comment block.
        for (file, text) in BUILTIN_FILES {
            Catalogue::from_toml(text, file).unwrap();
            assert!(text.starts_with("# mape signature catalogue"), "{file}");
            assert!(text.contains("Signature format"), "{file}");
        }
    }

    #[test]
    fn logitech_flow_matches_udp_to_a_private_address_only() {
        let c = Catalogue::builtin();
        let s = c.get("logi-options-flow").unwrap();
        assert_eq!(s.application, "Logitech Options+ Flow");
        assert!(s.changing_source_ports);
        for port in [59870, 59781] {
            let hit = c
                .matches(Protocol::Udp, ep([192, 168, 1, 211], port))
                .unwrap();
            assert_eq!(hit.name, "logi-options-flow");
            assert!(c
                .matches(Protocol::Udp, ep([198, 51, 100, 99], port))
                .is_none());
            assert!(c.matches(Protocol::Udp, ep([8, 8, 8, 8], port)).is_none());
            assert!(c
                .matches(Protocol::Tcp, ep([192, 168, 1, 211], port))
                .is_none());
        }
        // Only the ports in the file, not the old unsourced 59780-59870 range.
        assert!(c
            .matches(Protocol::Udp, ep([192, 168, 1, 211], 59800))
            .is_none());
        assert_eq!(s.ports_text(), "59781, 59870");
    }

    #[test]
    fn lan_discovery_matches_multicast_and_broadcast_but_not_public() {
        let c = Catalogue::builtin();
        let name = |a, p| c.matches(Protocol::Udp, ep(a, p)).map(|s| s.name.as_str());
        assert_eq!(name([239, 255, 255, 250], 1900), Some("ssdp"));
        assert_eq!(name([224, 0, 0, 251], 5353), Some("mdns"));
        assert_eq!(name([224, 0, 0, 252], 5355), Some("llmnr"));
        assert_eq!(name([239, 255, 255, 250], 3702), Some("ws-discovery"));
        assert_eq!(name([255, 255, 255, 255], 137), Some("netbios"));
        assert_eq!(name([192, 168, 1, 255], 138), Some("netbios"));
        assert_eq!(name([255, 255, 255, 255], 17500), Some("dropbox-lan-sync"));
        assert_eq!(
            name([10, 0, 0, 255], 27036),
            Some("steam-remote-play-discovery")
        );
        assert_eq!(name([93, 184, 216, 34], 1900), None);
        assert_eq!(name([93, 184, 216, 34], 5353), None);
        assert_eq!(name([192, 168, 1, 1], 53), None);
        assert!(c
            .matches(Protocol::Tcp, ep([224, 0, 0, 251], 5353))
            .is_none());
    }

    #[test]
    fn destination_kinds() {
        use DestinationKind as K;
        let of = |a: [u8; 4]| K::of(Ipv4Addr::from(a));
        assert_eq!(of([192, 168, 1, 211]), K::Private);
        assert_eq!(of([10, 1, 2, 3]), K::Private);
        assert_eq!(of([172, 31, 0, 1]), K::Private);
        assert_eq!(of([169, 254, 1, 1]), K::Private);
        assert_eq!(of([127, 0, 0, 1]), K::Private);
        assert_eq!(of([100, 64, 0, 1]), K::Private);
        assert_eq!(of([100, 127, 255, 255]), K::Private);
        assert_eq!(of([100, 128, 0, 1]), K::Public);
        assert_eq!(of([172, 32, 0, 1]), K::Public);
        assert_eq!(of([224, 0, 0, 251]), K::Multicast);
        assert_eq!(of([239, 255, 255, 250]), K::Multicast);
        assert_eq!(of([255, 255, 255, 255]), K::Broadcast);
        assert_eq!(of([198, 51, 100, 99]), K::Public);
        assert_eq!(of([1, 1, 1, 1]), K::Public);
        let p = Ipv4Addr::new(8, 8, 8, 8);
        assert!(K::Any.admits(p) && K::Public.admits(p) && !K::Local.admits(p));
        let m = Ipv4Addr::new(224, 0, 0, 1);
        assert!(K::Local.admits(m) && K::Multicast.admits(m) && !K::Private.admits(m));
        assert_eq!(
            toml::Value::try_from(K::Local).unwrap().as_str(),
            Some("local")
        );
    }

    #[test]
    fn a_good_file_parses_with_its_ports() {
        let v = Catalogue::from_toml(GOOD, "x.toml").unwrap();
        assert_eq!(v.len(), 1);
        let s = &v[0];
        assert_eq!(s.ports, vec![(4000, 4000), (5000, 5002), (6000, 6000)]);
        assert_eq!(s.destination, DestinationKind::Private);
        assert!(!s.changing_source_ports);
        assert_eq!(s.ports_text(), "4000, 5000-5002, 6000");
        assert_eq!(Catalogue::from_toml("", "x.toml").unwrap(), vec![]);
        assert_eq!(
            Catalogue::from_toml("# nothing\n", "x.toml").unwrap(),
            vec![]
        );
        let v = toml::Value::try_from(s).unwrap();
        assert_eq!(v["proto"].as_str(), Some("udp"));
        assert_eq!(v["destination"].as_str(), Some("private"));
        assert_eq!(v["ports"][1], toml::Value::try_from([5000, 5002]).unwrap());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert_eq!(
            err(&with("colour", Some("\"red\""))),
            format!("x.toml: signature 1 \"my-app\": colour = \"red\": expected {KEYS}")
        );
        assert_eq!(
            err(&format!("title = \"x\"\n{GOOD}")),
            "x.toml: top level: title = \"x\": expected only [[signature]] sections"
        );
        assert_eq!(
            err(&with("\"a\\nb\"", Some("1"))),
            format!("x.toml: signature 1 \"my-app\": \"a\\nb\" = 1: expected {KEYS}")
        );
        assert_eq!(
            err("signature = 3\n"),
            "x.toml: top level: signature = 3: expected an array of tables ([[signature]] sections)"
        );
        assert_eq!(
            err("signature = [1]\n"),
            "x.toml: signature 1: signature = 1: expected a table ([[signature]] section)"
        );
    }

    #[test]
    fn missing_and_empty_texts_are_rejected() {
        assert_eq!(
            err(&with("advice", None)),
            "x.toml: signature 1 \"my-app\": advice = (missing): expected a non-empty \
             one-line string of at most 512 characters: what a home user should do"
        );
        assert_eq!(
            err(&with("advice", Some("\"  \""))),
            "x.toml: signature 1 \"my-app\": advice = \"  \": expected a non-empty \
             one-line string of at most 512 characters: what a home user should do"
        );
        assert_eq!(
            err(&with("source", Some("\"\""))),
            "x.toml: signature 1 \"my-app\": source = \"\": expected a non-empty one-line \
             string of at most 512 characters: the URL of the vendor's documentation, a \
             standard or a public report"
        );
        assert_eq!(
            err(&with("application", Some("\"two\\nlines\""))),
            "x.toml: signature 1 \"my-app\": application = \"two\\nlines\": expected a \
             non-empty one-line string of at most 128 characters: the application's name"
        );
        assert_eq!(
            err(&with("name", None)),
            format!("x.toml: signature 1: name = (missing): expected {EXPECT_NAME}")
        );
        assert_eq!(
            err(&with("name", Some("\"\""))),
            format!("x.toml: signature 1 \"\": name = \"\": expected {EXPECT_NAME}")
        );
        assert_eq!(
            err(&with("name", Some("\"My App\""))),
            format!("x.toml: signature 1 \"My App\": name = \"My App\": expected {EXPECT_NAME}")
        );
        assert_eq!(
            err(&with("name", Some("7"))),
            format!("x.toml: signature 1: name = 7: expected {EXPECT_NAME}")
        );
    }

    #[test]
    fn bad_ports_are_rejected() {
        let e = |v: &str, shown: &str| {
            assert_eq!(
                err(&with("ports", Some(v))),
                format!("x.toml: signature 1 \"my-app\": ports = {shown}: expected {EXPECT_PORT}"),
                "{v}"
            );
        };
        e("[\"0\"]", "\"0\"");
        e("[0]", "0");
        e("[\"70000\"]", "\"70000\"");
        e("[65536]", "65536");
        e("[-5]", "-5");
        e("[\"5002-5000\"]", "\"5002-5000\"");
        e("[\"0-10\"]", "\"0-10\"");
        e("[\"59866 - 59869\"]", "\"59866 - 59869\"");
        e("[\"+80\"]", "\"+80\"");
        e("[\"80-\"]", "\"80-\"");
        e("[\"1-2-3\"]", "\"1-2-3\"");
        e("[\"http\"]", "\"http\"");
        e("[\"1900\", true]", "true");
        let list = |v: &str, shown: &str| {
            assert_eq!(
                err(&with("ports", Some(v))),
                format!("x.toml: signature 1 \"my-app\": ports = {shown}: expected {EXPECT_PORTS}")
            );
        };
        list("[]", "[]");
        list("\"1900\"", "\"1900\"");
        let many = format!("[{}]", vec!["1"; MAX_RANGES + 1].join(", "));
        let e = err(&with("ports", Some(&many)));
        assert!(
            e.contains("ports = [1, 1, 1") && e.ends_with(EXPECT_PORTS),
            "{e}"
        );
        // The limit itself is fine; 65535 and full ranges are fine.
        let ok = format!("[{}]", vec!["\"1-65535\""; MAX_RANGES].join(", "));
        Catalogue::from_toml(&with("ports", Some(&ok)), "x.toml").unwrap();
    }

    #[test]
    fn missing_ports_key_names_it() {
        assert_eq!(
            err(&with("ports", None)),
            format!("x.toml: signature 1 \"my-app\": ports = (missing): expected {EXPECT_PORTS}")
        );
    }

    #[test]
    fn bad_proto_destination_and_flag_are_rejected() {
        assert_eq!(
            err(&with("proto", Some("\"UDP\""))),
            format!("x.toml: signature 1 \"my-app\": proto = \"UDP\": expected {EXPECT_PROTO}")
        );
        assert_eq!(
            err(&with("destination", Some("\"lan\""))),
            format!(
                "x.toml: signature 1 \"my-app\": destination = \"lan\": expected \
                 {EXPECT_DESTINATION}"
            )
        );
        assert_eq!(
            err(&with("changing_source_ports", Some("\"yes\""))),
            "x.toml: signature 1 \"my-app\": changing_source_ports = \"yes\": expected true or false"
        );
        let v = Catalogue::from_toml(&with("changing_source_ports", Some("true")), "x").unwrap();
        assert!(v[0].changing_source_ports);
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = err("[[signature]]\nname = \"a\"\nports = [\n");
        assert!(e.starts_with("x.toml: line 3, column "), "{e}");
        let e = err("[[signature]]\nname = \"a\"\nname = \"b\"\n");
        assert!(e.starts_with("x.toml: line 3, column 1: "), "{e}");
        assert!(e.contains("duplicate key"), "{e}");
    }

    #[test]
    fn duplicate_names_are_rejected_in_a_file_and_across_files() {
        let two = format!("{GOOD}\n{}", GOOD.replace("4000", "4001"));
        assert_eq!(
            err(&two),
            "x.toml: signature 2 \"my-app\": name = \"my-app\": expected a name not used \
             before (already defined in x.toml)"
        );
        let c = Catalogue::default().with_toml(GOOD, "a.toml").unwrap();
        let e = c.clone().with_toml(GOOD, "b.toml").unwrap_err().to_string();
        assert_eq!(
            e,
            "b.toml: signature 1 \"my-app\": name = \"my-app\": expected a name not used \
             before (already defined in a.toml)"
        );
        // A user file cannot reuse a built-in name.
        let clash = GOOD.replace("my-app", "mdns");
        let e = Catalogue::builtin()
            .with_toml(&clash, "/etc/mape/signatures.d/mine.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/mape/signatures.d/mine.toml: signature 1 \"mdns\": name = \"mdns\": expected \
             a name not used before (already defined in built-in lan-discovery.toml)"
        );
    }

    #[test]
    fn sizes_are_bounded() {
        let big = format!("# {}\n", "x".repeat(MAX_FILE_BYTES));
        assert_eq!(
            err(&big),
            format!(
                "x.toml: more than {MAX_FILE_BYTES} bytes: expected a signature file of at most \
                 {MAX_FILE_BYTES} bytes"
            )
        );
        let one = |i: usize| GOOD.replace("my-app", &format!("app-{i}"));
        let many: String = (0..=MAX_ENTRIES).map(one).collect();
        assert_eq!(
            err(&many),
            format!(
                "x.toml: {} signatures: expected at most {MAX_ENTRIES} in the whole catalogue",
                MAX_ENTRIES + 1
            )
        );
        let full: String = (0..MAX_ENTRIES).map(one).collect();
        let e = Catalogue::builtin()
            .with_toml(&full, "y.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("y.toml: ") && e.contains("expected at most 1024"),
            "{e}"
        );
        let name = format!("\"{}\"", "a".repeat(MAX_NAME + 1));
        assert!(err(&with("name", Some(&name))).contains("expected 1-64 characters"));
    }

    #[test]
    fn deep_nesting_and_garbage_do_not_panic() {
        for text in [
            format!("a = {}", "[".repeat(10_000)),
            format!("a = {}1{}", "[".repeat(2_000), "]".repeat(2_000)),
            format!("a = {}1{}", "[".repeat(50_000), "]".repeat(50_000)),
            format!(
                "[[signature]]\nports = {}1{}",
                "[".repeat(50_000),
                "]".repeat(50_000)
            ),
            format!("a = {}1{}", "{ b = ".repeat(50_000), " }".repeat(50_000)),
            format!("a = {}", "{ b = ".repeat(5_000)),
            "\u{0}\u{1}[[[".to_owned(),
            "[[signature]]\nports = [\"\u{1F600}-9\"]".to_owned(),
        ] {
            let _ = Catalogue::from_toml(&text, "x.toml");
        }
    }

    #[test]
    fn long_values_are_shortened_on_char_boundaries() {
        let v = format!("\"{}\"", "é".repeat(300));
        let e = err(&with("proto", Some(&v)));
        assert!(e.contains('…') && e.chars().count() < 300, "{e}");
    }

    #[test]
    fn user_entries_come_first_and_first_match_wins() {
        let mine = r#"
[[signature]]
name = "my-speaker"
application = "Kitchen speaker app"
proto = "udp"
ports = [5353]
destination = "multicast"
advice = "It is the kitchen speaker; nothing to do."
source = "my own capture"
"#;
        let c = Catalogue::builtin().with_toml(mine, "mine.toml").unwrap();
        assert_eq!(c.entries()[0].name, "my-speaker");
        assert_eq!(c.len(), Catalogue::builtin().len() + 1);
        let hit = c
            .matches(Protocol::Udp, ep([224, 0, 0, 251], 5353))
            .unwrap();
        assert_eq!(hit.name, "my-speaker");
        // Where the user's entry does not apply, the built-in one still does.
        let hit = c
            .matches(Protocol::Udp, ep([192, 168, 1, 9], 5353))
            .unwrap();
        assert_eq!(hit.name, "mdns");
        assert_eq!(c.origin_of("my-speaker"), Some("mine.toml"));
    }

    #[test]
    fn the_port_index_agrees_with_a_scan() {
        let text = r#"
[[signature]]
name = "wide"
application = "Wide"
proto = "tcp"
ports = ["1-65535"]
destination = "any"
advice = "x"
source = "y"

[[signature]]
name = "edges"
application = "Edges"
proto = "icmp"
ports = ["63-64", "127-129", "65535", "1"]
destination = "public"
advice = "x"
source = "y"
"#;
        let c = Catalogue::default().with_toml(text, "t.toml").unwrap();
        let dst = |p| ep([8, 8, 8, 8], p);
        for proto in Protocol::ALL {
            for port in 0..=u16::MAX {
                let scan = c.entries().iter().find(|s| s.matches(proto, dst(port)));
                assert_eq!(c.matches(proto, dst(port)), scan, "{proto} {port}");
            }
        }
        assert!(c.matches(Protocol::Udp, dst(53)).is_none());
        assert!(Catalogue::default()
            .matches(Protocol::Udp, dst(53))
            .is_none());
    }

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "mape-signatures-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn with_dir_names_the_bad_file() {
        let d = temp_dir("bad");
        std::fs::write(d.join("10-good.toml"), GOOD).unwrap();
        std::fs::write(d.join("20-bad.toml"), with("proto", Some("\"sctp\""))).unwrap();
        std::fs::write(d.join("README"), "not toml, ignored").unwrap();
        let e = Catalogue::builtin().with_dir(&d).unwrap_err();
        let bad = d.join("20-bad.toml").display().to_string();
        assert_eq!(
            e.to_string(),
            format!("{bad}: signature 1 \"my-app\": proto = \"sctp\": expected {EXPECT_PROTO}")
        );
        // The good file alone loads, before the built-in entries.
        std::fs::remove_file(d.join("20-bad.toml")).unwrap();
        let c = Catalogue::builtin().with_dir(&d).unwrap();
        assert_eq!(c.entries()[0].name, "my-app");
        assert_eq!(
            c.origin_of("my-app"),
            Some(d.join("10-good.toml").display().to_string().as_str())
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn with_dir_reads_files_in_name_order_and_checks_names_across_them() {
        let d = temp_dir("order");
        std::fs::write(d.join("b.toml"), GOOD.replace("my-app", "second")).unwrap();
        std::fs::write(d.join("a.toml"), GOOD.replace("my-app", "first")).unwrap();
        let c = Catalogue::default().with_dir(&d).unwrap();
        let names: Vec<_> = c.entries().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["first", "second"]);
        std::fs::write(d.join("c.toml"), GOOD.replace("my-app", "first")).unwrap();
        let e = Catalogue::default().with_dir(&d).unwrap_err();
        assert_eq!(
            e,
            SignatureError::Duplicate {
                origin: d.join("c.toml").display().to_string(),
                entry: "signature 1 \"first\"".to_owned(),
                name: "first".to_owned(),
                first: d.join("a.toml").display().to_string(),
            }
        );
        std::fs::write(d.join("c.toml"), [0xffu8, 0xfe, b'\n']).unwrap();
        let e = Catalogue::default().with_dir(&d).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: invalid UTF-8 at byte 0: expected UTF-8 text",
                d.join("c.toml").display()
            )
        );
        std::fs::remove_file(d.join("c.toml")).unwrap();
        std::fs::create_dir(d.join("d.toml")).unwrap();
        let e = Catalogue::default().with_dir(&d).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: ", d.join("d.toml").display())),
            "{e}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn with_dir_on_a_missing_dir_gives_the_builtin_unchanged() {
        let d = std::env::temp_dir().join("mape-signatures-does-not-exist-3f1c");
        let c = Catalogue::builtin().with_dir(&d).unwrap();
        assert_eq!(c.entries(), Catalogue::builtin().entries());
        let f = temp_dir("file").join("plain");
        std::fs::write(&f, "x").unwrap();
        let e = Catalogue::builtin().with_dir(&f).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: ", f.display())), "{e}");
    }
}
