//! Discovery (HB46PP §3.1): the TXT record of `4over6.info`,
//! `v=v6mig-1 url=<URL> t=<a|b>`, parsed into where to ask and whether to verify TLS.

use std::fmt;

use url::Url;

/// The fixed name whose TXT record points at the provisioning server (§3.1).
pub const DISCOVERY_NAME: &str = "4over6.info.";

/// The only version the record may carry (§3.1 `v`).
pub const VERSION: &str = "v6mig-1";

/// Whether the server's certificate is verified (§3.1 `t`, §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verify {
    /// `t=a`: do not verify (mandatory for http).
    No,
    /// `t=b`: verify the server certificate.
    Yes,
}

impl Verify {
    /// The letter of the record.
    pub fn letter(self) -> char {
        match self {
            Verify::No => 'a',
            Verify::Yes => 'b',
        }
    }
}

/// A usable discovery record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The provisioning server (http or https).
    pub url: Url,
    /// `t=`.
    pub verify: Verify,
}

/// Why a TXT record is not a usable discovery record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxtError {
    /// Several TXT records (§3.1: a single answer, never several).
    #[error("{0} TXT records for 4over6.info (HB46PP §3.1 allows exactly one)")]
    Several(usize),
    /// The record is not UTF-8.
    #[error("TXT record is not text")]
    NotText,
    /// `v=` missing or not `v6mig-1`.
    #[error("TXT record {0:?}: no v=v6mig-1")]
    Version(String),
    /// `url=` missing or unusable.
    #[error("TXT record {record:?}: url: {detail}")]
    Url {
        /// The record.
        record: String,
        /// What is wrong.
        detail: String,
    },
    /// `t=` missing or not `a`/`b`.
    #[error("TXT record {0:?}: t= must be a or b")]
    Verify(String),
    /// `t=b` with an http URL: nothing to verify (§3.1: http needs t=a).
    #[error("TXT record {0:?}: t=b with an http url")]
    HttpVerified(String),
}

impl fmt::Display for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v={VERSION} url={} t={}", self.url, self.verify.letter())
    }
}

/// Parses the TXT answer: `records` are the records, each the concatenation of its
/// character-strings (RFC 1035 §3.3.14).
pub fn parse_records(records: &[Vec<u8>]) -> Result<Discovery, TxtError> {
    match records {
        [one] => parse(std::str::from_utf8(one).map_err(|_| TxtError::NotText)?),
        many => Err(TxtError::Several(many.len())),
    }
}

/// Parses one record's text (§3.1): space-separated `key=value` fields, unknown keys
/// ignored.
pub fn parse(record: &str) -> Result<Discovery, TxtError> {
    let field = |key: &str| {
        record
            .split_ascii_whitespace()
            .find_map(|f| f.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    };
    if field("v") != Some(VERSION) {
        return Err(TxtError::Version(record.into()));
    }
    let url_err = |detail: String| TxtError::Url {
        record: record.into(),
        detail,
    };
    let raw = field("url").ok_or_else(|| url_err("missing".into()))?;
    let url = Url::parse(raw).map_err(|e| url_err(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(url_err(format!("{raw} is not an http(s) URL with a host")));
    }
    let verify = match field("t") {
        Some("a") => Verify::No,
        Some("b") => Verify::Yes,
        _ => return Err(TxtError::Verify(record.into())),
    };
    if verify == Verify::Yes && url.scheme() == "http" {
        return Err(TxtError::HttpVerified(record.into()));
    }
    Ok(Discovery { url, verify })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example() {
        // §3.1's example record.
        let d = parse("v=v6mig-1 url=https://vne.example.jp/rule.cgi t=b").unwrap();
        assert_eq!(d.url.as_str(), "https://vne.example.jp/rule.cgi");
        assert_eq!(d.verify, Verify::Yes);
        let d =
            parse_records(&[b"v=v6mig-1 url=http://[2001:db8::53]/config t=a".to_vec()]).unwrap();
        assert_eq!(d.url.host_str(), Some("[2001:db8::53]"));
        assert_eq!(d.verify, Verify::No);
        assert_eq!(
            d.to_string(),
            "v=v6mig-1 url=http://[2001:db8::53]/config t=a"
        );
        // Order and unknown keys do not matter.
        assert!(parse("t=a x=1 url=http://a.example/ v=v6mig-1").is_ok());
    }

    #[test]
    fn bad_records() {
        assert!(matches!(
            parse("v=v6mig-2 url=http://a.example/ t=a"),
            Err(TxtError::Version(_))
        ));
        assert!(matches!(parse("v=v6mig-1 t=a"), Err(TxtError::Url { .. })));
        assert!(matches!(
            parse("v=v6mig-1 url=ftp://a.example/ t=a"),
            Err(TxtError::Url { .. })
        ));
        assert!(matches!(
            parse("v=v6mig-1 url=http://a.example/ t=c"),
            Err(TxtError::Verify(_))
        ));
        assert!(matches!(
            parse("v=v6mig-1 url=http://a.example/ t=b"),
            Err(TxtError::HttpVerified(_))
        ));
        assert_eq!(parse_records(&[]), Err(TxtError::Several(0)));
        assert_eq!(
            parse_records(&[b"v=v6mig-1".to_vec(), b"v=v6mig-1".to_vec()]),
            Err(TxtError::Several(2))
        );
        assert_eq!(parse_records(&[vec![0xff]]), Err(TxtError::NotText));
    }
}
