//! The NAT session table on disk, so that a restart keeps every mapping (the external
//! ports the house's connections use): `<state dir>/<tun>.sessions`, in the format of
//! `mape_nat::persist`. Written on SIGTERM once the workers stopped and every `[state]
//! persist_interval_s`, restored on start before the workers start.
//!
//! Cost on the datapath: the copy is taken under the pipeline lock in one O(sessions) pass
//! with no encoding (`Nat::save`: the hold time is logged with every write); the encoding
//! and the write happen after the lock is released. The write is atomic: a temporary file
//! beside the table, fsync, rename over the old one, fsync of the directory, so a crash in
//! the middle leaves the previous table.
//!
//! What a `kill -9` (or power loss) can lose: what changed since the last periodic write,
//! at most `persist_interval_s` of it: sessions created since are gone (their connections
//! break as without persistence), sessions ended since come back until their timer ends
//! them, and the idle time of every session is the one of the last write (its remaining
//! lifetime is shorter by up to the interval).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mape_nat::{PersistError, RestoreReport, SavedTable};

use crate::clock::now_since;
use crate::config::Settings;
use crate::pipeline::{Pipeline, Shared};

/// The engine's clock starts at most this far back for a restored table (older sessions
/// are shown younger than they are; their timers are not affected).
const MAX_HISTORY: Duration = Duration::from_secs(30 * 86_400);

/// `<state dir>/<tun>.sessions`.
pub fn path(settings: &Settings) -> PathBuf {
    settings
        .state_dir
        .join(format!("{}.sessions", settings.tun.name))
}

/// The wall clock in milliseconds since the UNIX epoch (it measures the downtime between
/// a write and a restore; the engine's own clock is monotonic and per process).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why the saved table was not restored.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file exists but could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a table this build restores (damaged, truncated, another version).
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: String,
        /// Why.
        source: PersistError,
    },
}

/// Reads the saved table at `path`; `None` when there is none.
pub fn load(path: &Path) -> Result<Option<SavedTable>, LoadError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LoadError::Read {
                path: path.display().to_string(),
                source,
            })
        }
    };
    SavedTable::decode(&bytes)
        .map(Some)
        .map_err(|source| LoadError::Format {
            path: path.display().to_string(),
            source,
        })
}

/// Where the pipeline's clock starts: at the daemon's `start`, or far enough before it
/// that every restored session keeps its age and idle time (the engine's timestamps are
/// milliseconds since this origin and never negative).
pub fn clock_origin(start: Instant, table: Option<&SavedTable>) -> Instant {
    let back = table.map_or(Duration::ZERO, |t| {
        Duration::from_millis(t.history_ms(wall_ms()).saturating_add(1000)).min(MAX_HISTORY)
    });
    start.checked_sub(back).unwrap_or(start)
}

/// Restores `table` into the pipeline's NAT engine at the clock of `origin`; `None` for a
/// pipeline without one.
pub fn restore(
    pipeline: &mut dyn Pipeline,
    table: &SavedTable,
    origin: Instant,
) -> Option<Result<RestoreReport, PersistError>> {
    let nat = pipeline.nat_mut()?;
    Some(nat.restore(table, now_since(origin), wall_ms()))
}

/// A copy of the table and how long the pipeline lock was held to take it.
pub struct Taken {
    /// The copy.
    pub table: SavedTable,
    /// Time under the lock.
    pub held: Duration,
}

/// Takes a copy of the session table under the pipeline lock; `None` when the pipeline
/// keeps no sessions or the lock is poisoned (a worker panicked: the process is ending).
pub fn take(shared: &Shared, origin: Instant) -> Option<Taken> {
    let p = shared.lock().ok()?;
    let t0 = Instant::now();
    let table = p.nat()?.save(now_since(origin), wall_ms());
    let held = t0.elapsed();
    drop(p);
    Some(Taken { table, held })
}

/// Writes `table` to `path` atomically; returns the bytes written.
pub fn write(path: &Path, table: &SavedTable) -> std::io::Result<usize> {
    let bytes = table.encode();
    write_atomic(path, &bytes)?;
    Ok(bytes.len())
}

/// Writes `bytes` to `path` atomically, mode 0600: a temporary file beside it, fsync,
/// rename over the old one, fsync of the directory (a crash leaves the old or the new
/// file, never a torn one). Also the HB46PP answer's store (`crate::provisioning`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Takes and writes the table, logging the outcome (`why`: "periodic" or "stop").
pub fn save_logged(shared: &Shared, origin: Instant, path: &Path, why: &'static str) {
    let Some(taken) = take(shared, origin) else {
        return;
    };
    write_logged(path, &taken, why);
}

/// Writes a copy taken by [`take`], logging the outcome.
pub fn write_logged(path: &Path, taken: &Taken, why: &'static str) {
    let t0 = Instant::now();
    match write(path, &taken.table) {
        Ok(bytes) => {
            let (sessions, lock_held_us, write_ms) = (
                taken.table.session_count(),
                taken.held.as_micros() as u64,
                t0.elapsed().as_millis() as u64,
            );
            if why == "stop" {
                tracing::info!(file = %path.display(), sessions, bytes, lock_held_us, write_ms, "session table saved");
            } else {
                tracing::debug!(file = %path.display(), sessions, bytes, lock_held_us, write_ms, why, "session table saved");
            }
        }
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, why, "session table not saved")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::Path;

    use mape_nat::{Endpoint, OutboundPacket, OutboundVerdict, Protocol, TcpFlags};

    use super::*;
    use crate::config::tests::LAB;

    fn pipeline() -> Box<dyn Pipeline> {
        let s = Settings::parse(LAB, Path::new("test.toml")).unwrap();
        crate::pipeline::build(&s).unwrap()
    }

    fn flow() -> OutboundPacket {
        OutboundPacket {
            proto: Protocol::Tcp,
            src: Endpoint::new(Ipv4Addr::new(192, 168, 1, 2), 40000),
            dst: Endpoint::new(Ipv4Addr::new(8, 8, 8, 8), 443),
            flags: TcpFlags(0x02),
            seq: 0,
            ack: 0,
        }
    }

    #[test]
    fn a_written_table_restores_the_same_mapping_and_a_damaged_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("mape-sessions-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("mape0.sessions");
        assert!(
            load(&file).unwrap().is_none(),
            "no file: nothing to restore"
        );

        let start = Instant::now();
        let shared: Shared = std::sync::Arc::new(std::sync::Mutex::new(pipeline()));
        let ext = match shared
            .lock()
            .unwrap()
            .nat_mut()
            .unwrap()
            .outbound(now_since(start), &flow())
        {
            OutboundVerdict::Translate { external } => external,
            v => panic!("{v:?}"),
        };
        let taken = take(&shared, start).unwrap();
        assert_eq!(taken.table.session_count(), 1);
        write(&file, &taken.table).unwrap();
        assert!(
            !dir.join("mape0.sessions.tmp").exists(),
            "renamed into place"
        );

        let table = load(&file).unwrap().unwrap();
        let origin = clock_origin(Instant::now(), Some(&table));
        let mut fresh = pipeline();
        let r = restore(&mut *fresh, &table, origin).unwrap().unwrap();
        assert_eq!(r.restored, 1);
        let f = flow();
        assert_eq!(
            fresh.nat().unwrap().translation_of(f.proto, f.src, f.dst),
            Some(ext)
        );

        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let e = load(&file).unwrap_err();
        assert!(
            matches!(
                e,
                LoadError::Format {
                    source: PersistError::Checksum { .. },
                    ..
                }
            ),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
