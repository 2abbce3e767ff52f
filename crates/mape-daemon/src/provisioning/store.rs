//! The last good HB46PP answer on disk (HB46PP §3.5: kept and used while the server is
//! unreachable): `<state dir>/<tun>.hb46pp.json`, the body as received with its URL and
//! time, written atomically (`crate::sessions_file::write_atomic`), re-validated by the
//! answer parser when read. `mape provision erase` deletes it.

use std::path::{Path, PathBuf};

use mape_provision::LastGood;

/// `<state dir>/<tun>.hb46pp.json`.
pub fn path(state_dir: &Path, tun: &str) -> PathBuf {
    state_dir.join(format!("{tun}.hb46pp.json"))
}

/// Why the stored answer was not read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a stored answer, or its body no longer parses.
    #[error("{path}: {detail}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

/// A stored file's text; `None` when there is none.
pub fn read(path: &Path) -> Result<Option<String>, StoreError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// The stored answer, if there is one; an answer that no longer validates is refused.
pub fn load(path: &Path) -> Result<Option<LastGood>, StoreError> {
    let Some(text) = read(path)? else {
        return Ok(None);
    };
    let format = |detail: String| StoreError::Format {
        path: path.display().to_string(),
        detail,
    };
    let lg: LastGood = serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
    lg.offer().map_err(|e| format(e.to_string()))?;
    Ok(Some(lg))
}

/// Writes `lg` atomically (mode 0600: it may hold the server's token).
pub fn save(path: &Path, lg: &LastGood) -> Result<(), StoreError> {
    write(path, &serde_json::to_string(lg).unwrap_or_default())
}

/// Writes `text` atomically (mode 0600), creating the directory.
pub fn write(path: &Path, text: &str) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    crate::sessions_file::write_atomic(path, text.as_bytes()).map_err(io)
}

/// Deletes the stored answer; `false` when there was none.
pub fn erase(path: &Path) -> Result<bool, StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StoreError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"ttl": 3600, "order": ["map_e"], "map_e": {"version": 1,
        "br": "2001:db8:ffff::1", "rules": [{"ipv6": "2001:db8::/40",
        "ipv4": "192.0.2.0/24", "ea_length": 16, "psid_offset": 6}]}}"#;

    #[test]
    fn saved_answer_loads_back_erase_removes_it_and_a_bad_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("mape-store-{}", std::process::id()));
        let p = path(&dir, "mape0");
        assert_eq!(p.file_name().unwrap(), "mape0.hb46pp.json");
        assert!(load(&p).unwrap().is_none());
        let lg = LastGood {
            url: "http://[2001:db8::80]/config".into(),
            fetched_at: 1_700_000_000,
            body: BODY.into(),
        };
        save(&p, &lg).unwrap();
        assert_eq!(load(&p).unwrap(), Some(lg.clone()));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A body the parser refuses (ttl over 7 days) is not used.
        let bad = LastGood {
            body: BODY.replace("3600", "604801"),
            ..lg
        };
        std::fs::write(&p, serde_json::to_string(&bad).unwrap()).unwrap();
        assert!(matches!(load(&p), Err(StoreError::Format { .. })));
        assert!(erase(&p).unwrap());
        assert!(!erase(&p).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
