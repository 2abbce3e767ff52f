//! The validation of one signature entry (`parse_entry`) and the text its errors show:
//! entry labels, keys and values, shortened to one line.

use crate::types::Protocol;

use super::{
    DestinationKind, Signature, SignatureError, EXPECT_BOOL, EXPECT_DESTINATION, EXPECT_NAME,
    EXPECT_PORT, EXPECT_PORTS, EXPECT_PROTO, KEYS, MAX_APPLICATION, MAX_NAME, MAX_RANGES, MAX_TEXT,
    MAX_VALUE_SHOWN,
};

/// `signature 3 "ssdp"` (1-based), or `signature 3` without a usable name.
pub(super) fn entry_label(index: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("signature {} {:?}", index + 1, shorten(n)),
        None => format!("signature {}", index + 1),
    }
}

/// A key as written in TOML: bare when it can be, quoted and escaped otherwise.
pub(super) fn key_text(k: &str) -> String {
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        shorten(k)
    } else {
        format!("{:?}", shorten(k))
    }
}

/// `s` with control characters escaped, so a message stays on one line.
pub(super) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE_SHOWN {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(MAX_VALUE_SHOWN).collect();
        t.push('…');
        t
    }
}

/// A value on one line, TOML-like (strings quoted and escaped), shortened.
pub(super) fn show(v: &toml::Value) -> String {
    fn put(out: &mut String, v: &toml::Value) {
        // Enough to fill the shortened text; stop early on huge values.
        if out.len() > MAX_VALUE_SHOWN * 4 {
            return;
        }
        match v {
            toml::Value::String(s) => {
                let q = format!("{:?}", shorten(s));
                out.push_str(&q);
            }
            toml::Value::Table(t) => out.push_str(&format!("{{ {} keys }}", t.len())),
            toml::Value::Array(a) => {
                out.push('[');
                for (i, e) in a.iter().enumerate() {
                    if out.len() > MAX_VALUE_SHOWN * 4 {
                        break;
                    }
                    if i > 0 {
                        out.push_str(", ");
                    }
                    put(out, e);
                }
                out.push(']');
            }
            v => out.push_str(&v.to_string()),
        }
    }
    let mut out = String::new();
    put(&mut out, v);
    shorten(&out)
}

pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

pub(super) fn parse_entry(
    i: usize,
    v: &toml::Value,
    origin: &str,
) -> Result<Signature, SignatureError> {
    let toml::Value::Table(t) = v else {
        return Err(SignatureError::Invalid {
            origin: origin.to_owned(),
            entry: entry_label(i, None),
            key: "signature".to_owned(),
            value: show(v),
            expected: "a table ([[signature]] section)".to_owned(),
        });
    };
    let name_hint = t.get("name").and_then(toml::Value::as_str);
    let entry = entry_label(i, name_hint);
    let bad = |key: &str, value: String, expected: &str| SignatureError::Invalid {
        origin: origin.to_owned(),
        entry: entry.clone(),
        key: key.to_owned(),
        value,
        expected: expected.to_owned(),
    };
    const KNOWN: [&str; 8] = [
        "name",
        "application",
        "proto",
        "ports",
        "destination",
        "changing_source_ports",
        "advice",
        "source",
    ];
    if let Some((k, v)) = t.iter().find(|(k, _)| !KNOWN.contains(&k.as_str())) {
        return Err(bad(&key_text(k), show(v), KEYS));
    }
    let required = |key: &str, expected: &str| {
        t.get(key)
            .ok_or_else(|| bad(key, "(missing)".to_owned(), expected))
    };
    let text = |key: &str, max: usize, expected: &str| -> Result<String, SignatureError> {
        let v = required(key, expected)?;
        match v.as_str().map(str::trim) {
            Some(s)
                if !s.is_empty()
                    && s.chars().count() <= max
                    && !s.chars().any(char::is_control) =>
            {
                Ok(s.to_owned())
            }
            _ => Err(bad(key, show(v), expected)),
        }
    };

    let v = required("name", EXPECT_NAME)?;
    let name = match v.as_str() {
        Some(s)
            if !s.is_empty()
                && s.len() <= MAX_NAME
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            s.to_owned()
        }
        _ => return Err(bad("name", show(v), EXPECT_NAME)),
    };
    let application = text(
        "application",
        MAX_APPLICATION,
        "a non-empty one-line string of at most 128 characters: the application's name",
    )?;
    let v = required("proto", EXPECT_PROTO)?;
    let proto = match v.as_str() {
        Some("tcp") => Protocol::Tcp,
        Some("udp") => Protocol::Udp,
        Some("icmp") => Protocol::Icmp,
        _ => return Err(bad("proto", show(v), EXPECT_PROTO)),
    };
    let v = required("ports", EXPECT_PORTS)?;
    let ports = match v.as_array() {
        Some(a) if !a.is_empty() && a.len() <= MAX_RANGES => a
            .iter()
            .map(|p| port_range(p).ok_or_else(|| bad("ports", show(p), EXPECT_PORT)))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(bad("ports", show(v), EXPECT_PORTS)),
    };
    let v = required("destination", EXPECT_DESTINATION)?;
    let destination = v
        .as_str()
        .and_then(DestinationKind::parse)
        .ok_or_else(|| bad("destination", show(v), EXPECT_DESTINATION))?;
    let changing_source_ports = match t.get("changing_source_ports") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(v) => return Err(bad("changing_source_ports", show(v), EXPECT_BOOL)),
    };
    let advice = text(
        "advice",
        MAX_TEXT,
        "a non-empty one-line string of at most 512 characters: what a home user should do",
    )?;
    let source = text(
        "source",
        MAX_TEXT,
        "a non-empty one-line string of at most 512 characters: the URL of the vendor's \
         documentation, a standard or a public report",
    )?;
    Ok(Signature {
        name,
        application,
        proto,
        ports,
        destination,
        changing_source_ports,
        advice,
        source,
    })
}

/// `"N"`, `"LO-HI"` or a bare integer, each port 1-65535, LO <= HI.
fn port_range(v: &toml::Value) -> Option<(u16, u16)> {
    fn port(s: &str) -> Option<u16> {
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u16>().ok().filter(|&p| p != 0)
    }
    match v {
        toml::Value::Integer(n) => u16::try_from(*n).ok().filter(|&p| p != 0).map(|p| (p, p)),
        toml::Value::String(s) => {
            let (lo, hi) = match s.split_once('-') {
                Some((lo, hi)) => (port(lo)?, port(hi)?),
                None => {
                    let p = port(s)?;
                    (p, p)
                }
            };
            (lo <= hi).then_some((lo, hi))
        }
        _ => None,
    }
}
