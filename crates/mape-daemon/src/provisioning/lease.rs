//! The DHCPv6 lease on disk: `<state dir>/<tun>.dhcpv6.json` (the delegated prefix, its
//! lifetimes, T1/T2, the server's DUID, when it was obtained and the OPTION_S46_CONT_MAPE
//! option area as hex), written atomically at every Reply and read at start, so that a
//! restart uses the lease while the server does not answer yet — until its valid lifetime
//! is over (RFC 8415 §18.2.5: the client stops using the prefix then). Next to it the
//! client's DUID (`<tun>.dhcpv6.duid`, RFC 8415 §11: one identity across restarts).

use std::path::{Path, PathBuf};
use std::time::Duration;

use mape_provision::dhcpv6::machine::hex;
use mape_provision::dhcpv6::{Delegated, Information, Lease};
use mape_rules::provision::parse_hex;
use serde::{Deserialize, Serialize};

use super::store::{self, StoreError};

/// `<state dir>/<tun>.dhcpv6.json`.
pub fn path(state_dir: &Path, tun: &str) -> PathBuf {
    state_dir.join(format!("{tun}.dhcpv6.json"))
}

/// `<state dir>/<tun>.dhcpv6.duid`.
pub fn duid_path(state_dir: &Path, tun: &str) -> PathBuf {
    state_dir.join(format!("{tun}.dhcpv6.duid"))
}

/// The file's form of a [`Lease`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    prefix: String,
    preferred: u32,
    valid: u32,
    t1: u32,
    t2: u32,
    server_id: String,
    /// Seconds since the UNIX epoch.
    obtained: u64,
    s46: String,
    #[serde(default)]
    dns: Vec<std::net::Ipv6Addr>,
}

/// Writes the lease (its `obtained` is a time since the UNIX epoch).
pub fn save(path: &Path, l: &Lease) -> Result<(), StoreError> {
    let s = Stored {
        prefix: l.prefix.prefix.to_string(),
        preferred: l.prefix.preferred,
        valid: l.prefix.valid,
        t1: l.t1,
        t2: l.t2,
        server_id: hex(&l.server_id),
        obtained: l.obtained.as_secs(),
        s46: hex(&l.s46),
        dns: l.dns.clone(),
    };
    store::write(path, &serde_json::to_string(&s).unwrap_or_default())
}

/// The stored lease, if there is one and its valid lifetime is not over at `now` (seconds
/// since the UNIX epoch).
pub fn load(path: &Path, now: u64) -> Result<Option<Lease>, StoreError> {
    let Some(s) = read_json::<Stored>(path)? else {
        return Ok(None);
    };
    let format = |detail: String| format_error(path, detail);
    let bytes = |h: &str| hex_bytes(path, h);
    let lease = Lease {
        prefix: Delegated {
            prefix: s
                .prefix
                .parse()
                .map_err(|e| format(format!("prefix: {e}")))?,
            preferred: s.preferred,
            valid: s.valid,
        },
        t1: s.t1,
        t2: s.t2,
        server_id: bytes(&s.server_id)?,
        obtained: Duration::from_secs(s.obtained),
        s46: bytes(&s.s46)?,
        dns: s.dns,
    };
    if lease
        .expires_at()
        .is_some_and(|e| e <= Duration::from_secs(now))
    {
        tracing::info!(path = %path.display(), prefix = %lease.prefix.prefix, "stored DHCPv6 lease is over: not used");
        return Ok(None);
    }
    Ok(Some(lease))
}

fn format_error(path: &Path, detail: String) -> StoreError {
    StoreError::Format {
        path: path.display().to_string(),
        detail,
    }
}

/// The file at `path` as `T` (None: there is none).
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    let Some(text) = store::read(path)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format_error(path, e.to_string()))
}

/// A stored hex field ("" = no bytes).
fn hex_bytes(path: &Path, h: &str) -> Result<Vec<u8>, StoreError> {
    if h.is_empty() {
        Ok(Vec::new())
    } else {
        parse_hex(h).map_err(|e| format_error(path, e))
    }
}

/// `<state dir>/<tun>.dhcpv6-info.json`: what the stateless client holds.
pub fn info_path(state_dir: &Path, tun: &str) -> PathBuf {
    state_dir.join(format!("{tun}.dhcpv6-info.json"))
}

/// The file's form of an [`Information`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredInfo {
    refresh: u32,
    server_id: String,
    /// Seconds since the UNIX epoch.
    obtained: u64,
    s46: String,
    #[serde(default)]
    dns: Vec<std::net::Ipv6Addr>,
}

/// Writes a stateless client's configuration (its `obtained` is a time since the UNIX
/// epoch).
pub fn save_info(path: &Path, i: &Information) -> Result<(), StoreError> {
    let s = StoredInfo {
        refresh: i.refresh,
        server_id: hex(&i.server_id),
        obtained: i.obtained.as_secs(),
        s46: hex(&i.s46),
        dns: i.dns.clone(),
    };
    store::write(path, &serde_json::to_string(&s).unwrap_or_default())
}

/// The stored configuration of the stateless client, if any. It has no lifetime (RFC 8415
/// §21.23 only says when to ask again), so it is used until a Reply replaces it.
pub fn load_info(path: &Path) -> Result<Option<Information>, StoreError> {
    let Some(s) = read_json::<StoredInfo>(path)? else {
        return Ok(None);
    };
    let bytes = |h: &str| hex_bytes(path, h);
    Ok(Some(Information {
        refresh: s.refresh,
        server_id: bytes(&s.server_id)?,
        obtained: Duration::from_secs(s.obtained),
        s46: bytes(&s.s46)?,
        dns: s.dns,
    }))
}

/// The lab's lease for tests: `prefix` delegated at 1 700 000 000 (valid 600 s, T1 100,
/// T2 200) with RFC 7598 §5 OPTION_S46_CONT_MAPE hand-encoded: S46_RULE (flags 0, EA 16,
/// 192.0.2.0/24, 2001:db8::/40) holding S46_PORTPARAMS (offset 4), and S46_BR
/// 2001:db8:ffff::1.
#[cfg(test)]
pub(crate) fn lab_lease(prefix: &str) -> Lease {
    Lease {
        prefix: Delegated {
            prefix: prefix.parse().expect("prefix"),
            preferred: 300,
            valid: 600,
        },
        t1: 100,
        t2: 200,
        server_id: vec![0, 3, 0, 1, 10, 0, 0, 0, 0, 1],
        obtained: Duration::from_secs(1_700_000_000),
        s46: parse_hex(
            "005e 002d
             0059 0015 00 10 18 c0000200 28 20010db800 005d 0004 04 00 0000
             005a 0010 20010db8ffff0000 0000000000000001",
        )
        .expect("hex"),
        dns: vec!["2001:db8:0:1::53".parse().expect("address")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_lease_loads_back_until_its_valid_lifetime_is_over() {
        let dir = std::env::temp_dir().join(format!("mape-lease-{}", std::process::id()));
        let p = path(&dir, "mape0");
        assert_eq!(p.file_name().unwrap(), "mape0.dhcpv6.json");
        assert!(load(&p, 0).unwrap().is_none());
        let l = lab_lease("2001:db8:12:3400::/56");
        save(&p, &l).unwrap();
        assert_eq!(load(&p, 1_700_000_599).unwrap(), Some(l));
        // Obtained + valid (600 s): over, not used.
        assert_eq!(load(&p, 1_700_000_600).unwrap(), None);
        std::fs::write(&p, "{}").unwrap();
        assert!(matches!(load(&p, 0), Err(StoreError::Format { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn saved_information_loads_back() {
        let dir = std::env::temp_dir().join(format!("mape-info-{}", std::process::id()));
        let p = info_path(&dir, "mape0");
        assert_eq!(p.file_name().unwrap(), "mape0.dhcpv6-info.json");
        assert!(load_info(&p).unwrap().is_none());
        let l = lab_lease("2001:db8:12:3400::/56");
        let i = Information {
            server_id: l.server_id,
            obtained: l.obtained,
            refresh: 600,
            s46: l.s46,
            dns: l.dns,
        };
        save_info(&p, &i).unwrap();
        assert_eq!(load_info(&p).unwrap(), Some(i));
        std::fs::write(&p, "{\"refresh\": 1}").unwrap();
        assert!(matches!(load_info(&p), Err(StoreError::Format { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
