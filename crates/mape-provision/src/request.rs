//! The request (HB46PP §3.3): `GET <url>?vendorid=…&product=…&version=…&capability=…`
//! plus `token` and, under the spec's rules, `user`/`pass`.

use url::Url;

use crate::txt::Verify;

/// What the CE says about itself (§3.3; all MUST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    vendorid: String,
    product: String,
    version: String,
    capability: String,
}

/// `user`/`pass` (§3.3), with the server name the user gave with them, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    user: String,
    pass: String,
    server_name: Option<String>,
}

/// A request parameter outside the §3.3 grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// `vendorid` is not `<6 hex digits>[-<up to 24 of [0-9A-Za-z_]>]`.
    #[error("vendorid {0:?}: 6 hex digits of an OUI, optionally '-' and up to 24 of [0-9A-Za-z_]")]
    VendorId(String),
    /// `product` is not ≤ 32 of `[0-9A-Za-z_-]`.
    #[error("product {0:?}: at most 32 of [0-9A-Za-z_-]")]
    Product(String),
    /// `version` is not `[0-9_]{1,32}`.
    #[error("version {0:?}: 1 to 32 of [0-9_] (underscores for dots)")]
    Version(String),
    /// `user` or `pass` is not ≤ 32 of `[0-9A-Za-z_-]`.
    #[error("{0}: at most 32 of [0-9A-Za-z_-]")]
    Credential(&'static str),
}

fn word(s: &str, max: usize, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

impl ClientInfo {
    /// Checks each value against §3.3. `capability` is sent as given, comma-joined.
    pub fn new(
        vendorid: &str,
        product: &str,
        version: &str,
        capability: &[&str],
    ) -> Result<Self, RequestError> {
        let (oui, rest) = vendorid.split_once('-').unwrap_or((vendorid, ""));
        let oui_ok = oui.len() == 6 && oui.bytes().all(|c| c.is_ascii_hexdigit());
        let rest_ok = !vendorid.contains('-') || word(rest, 24, b"_");
        if !oui_ok || !rest_ok {
            return Err(RequestError::VendorId(vendorid.into()));
        }
        if !word(product, 32, b"_-") {
            return Err(RequestError::Product(product.into()));
        }
        if version.is_empty()
            || version.len() > 32
            || !version.bytes().all(|c| c.is_ascii_digit() || c == b'_')
        {
            return Err(RequestError::Version(version.into()));
        }
        Ok(Self {
            vendorid: vendorid.into(),
            product: product.into(),
            version: version.into(),
            capability: capability.join(","),
        })
    }

    /// mape's own: the IEEE example OUI `acde48` (§3.3's example; mape has no OUI of its
    /// own), product `mape`, this crate's version, MAP-E in both modes.
    pub fn mape() -> Self {
        Self {
            vendorid: "acde48-mape".into(),
            product: "mape".into(),
            version: env!("CARGO_PKG_VERSION").replace('.', "_"),
            capability: "map_e,hubspoke,mesh".into(),
        }
    }
}

impl Credentials {
    /// `user` and `pass` (both or neither, §3.3), and the server name entered with them.
    pub fn new(user: &str, pass: &str, server_name: Option<&str>) -> Result<Self, RequestError> {
        if !word(user, 32, b"_-") {
            return Err(RequestError::Credential("user"));
        }
        if !word(pass, 32, b"_-") {
            return Err(RequestError::Credential("pass"));
        }
        Ok(Self {
            user: user.into(),
            pass: pass.into(),
            server_name: server_name.map(str::to_ascii_lowercase),
        })
    }

    /// §3.3 `user`: with a server name, only over https with verification (t=b) and only
    /// when the URL's host is that name (MUST NOT otherwise); without one, always.
    pub fn may_send_to(&self, url: &Url, verify: Verify) -> bool {
        match &self.server_name {
            None => true,
            Some(name) => {
                url.scheme() == "https"
                    && verify == Verify::Yes
                    && url
                        .host_str()
                        .is_some_and(|h| bare(h).eq_ignore_ascii_case(bare(name)))
            }
        }
    }
}

/// A host without the brackets of an IPv6 literal.
fn bare(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The request URL: `base` with the §3.3 parameters appended to its own query.
pub fn url(
    base: &Url,
    verify: Verify,
    info: &ClientInfo,
    token: Option<&str>,
    credentials: Option<&Credentials>,
) -> Url {
    let mut u = base.clone();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("vendorid", &info.vendorid)
            .append_pair("product", &info.product)
            .append_pair("version", &info.version)
            .append_pair("capability", &info.capability);
        if let Some(t) = token {
            q.append_pair("token", t);
        }
        if let Some(c) = credentials.filter(|c| c.may_send_to(base, verify)) {
            q.append_pair("user", &c.user).append_pair("pass", &c.pass);
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_follow_the_grammar() {
        // §3.3's examples.
        let info = ClientInfo::new(
            "acde48-v6pc_swg_hgw",
            "V6MIG-ROUTER",
            "1_32",
            &["map_e", "dslite"],
        )
        .unwrap();
        let base = Url::parse("http://[2001:db8::53]/config?x=1").unwrap();
        assert_eq!(
            url(&base, Verify::No, &info, None, None).as_str(),
            "http://[2001:db8::53]/config?x=1&vendorid=acde48-v6pc_swg_hgw&product=V6MIG-ROUTER&version=1_32&capability=map_e%2Cdslite"
        );
        assert!(ClientInfo::new("acde48", "p", "1", &[]).is_ok());
        for bad in [
            "acde4",
            "acde4g",
            "acde48-",
            "acde48-a.b",
            &format!("acde48-{}", "a".repeat(25)),
        ] {
            assert!(
                matches!(
                    ClientInfo::new(bad, "p", "1", &[]),
                    Err(RequestError::VendorId(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            ClientInfo::new("acde48", "a b", "1", &[]),
            Err(RequestError::Product(_))
        ));
        assert!(matches!(
            ClientInfo::new("acde48", "p", "1.32", &[]),
            Err(RequestError::Version(_))
        ));
        assert!(matches!(
            ClientInfo::new("acde48", "p", "", &[]),
            Err(RequestError::Version(_))
        ));
        let m = ClientInfo::mape();
        assert!(ClientInfo::new(&m.vendorid, &m.product, &m.version, &[]).is_ok());
    }

    #[test]
    fn user_and_pass_only_where_allowed() {
        let info = ClientInfo::mape();
        let https = Url::parse("https://prov.example.jp/rule.cgi").unwrap();
        let other = Url::parse("https://other.example.jp/rule.cgi").unwrap();
        let http = Url::parse("http://prov.example.jp/rule.cgi").unwrap();
        let pinned = Credentials::new("u_1", "p-2", Some("Prov.Example.JP")).unwrap();
        let sends = |u: &Url, v, c: &Credentials| {
            url(u, v, &info, None, Some(c))
                .as_str()
                .contains("&user=u_1&pass=p-2")
        };
        assert!(sends(&https, Verify::Yes, &pinned));
        assert!(!sends(&https, Verify::No, &pinned));
        assert!(!sends(&other, Verify::Yes, &pinned));
        assert!(!sends(&http, Verify::No, &pinned));
        let literal = Url::parse("https://[2001:db8::443]/config").unwrap();
        let by_addr = Credentials::new("u_1", "p-2", Some("2001:db8::443")).unwrap();
        assert!(sends(&literal, Verify::Yes, &by_addr));
        let free = Credentials::new("u_1", "p-2", None).unwrap();
        assert!(sends(&http, Verify::No, &free));
        assert_eq!(
            Credentials::new("", "p", None),
            Err(RequestError::Credential("user"))
        );
        assert_eq!(
            Credentials::new("u", "p&x", None),
            Err(RequestError::Credential("pass"))
        );
        let t = "ab".repeat(32);
        assert!(url(&http, Verify::No, &info, Some(&t), None)
            .as_str()
            .ends_with(&format!("&token={t}")));
    }
}
