//! The client's DUID (RFC 8415 §11) and the hex form it is shown in.

/// A client DUID (RFC 8415 §11).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Duid(Vec<u8>);

/// Why bytes are not a DUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DuidError {
    /// §11.1: a 2-byte type and 1 to 128 bytes.
    #[error("a DUID is 3 to 130 bytes (RFC 8415 §11.1), not {0}")]
    Length(usize),
    /// Not hex.
    #[error("DUID: {0}")]
    Hex(String),
}

/// Seconds from the Unix epoch to 2000-01-01 00:00 UTC, DUID-LLT's origin (§11.2).
const Y2K: u64 = 946_684_800;

impl Duid {
    /// DUID-LL (§11.4) of an Ethernet MAC: type 3, hardware type 1, the address.
    pub fn link_layer(mac: [u8; 6]) -> Self {
        let mut d = vec![0, 3, 0, 1];
        d.extend_from_slice(&mac);
        Self(d)
    }

    /// DUID-LLT (§11.2) of an Ethernet MAC made at `unix` seconds: type 1, hardware type
    /// 1, the time since 2000-01-01 modulo 2³², the address. It must be stored: it is the
    /// client's identity from then on, whatever the MAC becomes.
    pub fn link_layer_time(mac: [u8; 6], unix: u64) -> Self {
        let t = (unix.saturating_sub(Y2K) & 0xffff_ffff) as u32;
        let mut d = vec![0, 1, 0, 1];
        d.extend_from_slice(&t.to_be_bytes());
        d.extend_from_slice(&mac);
        Self(d)
    }

    /// A DUID as stored or configured.
    pub fn from_bytes(b: Vec<u8>) -> Result<Self, DuidError> {
        if (3..=130).contains(&b.len()) {
            Ok(Self(b))
        } else {
            Err(DuidError::Length(b.len()))
        }
    }

    /// From hex text (as [`Duid::to_hex`] writes it).
    pub fn from_hex(s: &str) -> Result<Self, DuidError> {
        Self::from_bytes(mape_rules::provision::parse_hex(s).map_err(DuidError::Hex)?)
    }

    /// Lower-case hex, `:`-separated.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Bytes as lower-case hex, `:`-separated (DUIDs in logs and JSON).
pub fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
