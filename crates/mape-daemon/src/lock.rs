//! One daemon per state: an exclusive flock(2) on `<state dir>/<tun>.lock`, taken before
//! anything else is touched and held for the daemon's lifetime. flock(2): the lock belongs
//! to the open file description, so the kernel drops it when the process dies, `kill -9`
//! included; the file is opened close-on-exec so event hooks do not inherit it. The file
//! holds the owner's PID, for the error message only (the lock, not the PID, decides).
//! The file is never removed: unlinking a lock file races with a process about to lock it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds it.
    #[error("{path} is held by a running mape daemon{}", .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held {
        /// The lock file.
        path: String,
        /// The owner's PID as it wrote it.
        pid: Option<u32>,
    },
    /// The file could not be created or locked.
    #[error("lock file {path}: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The held lock; dropping it (or dying) releases it.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock at `path` (creating its directory, mode 0700, and the file, mode
    /// 0600) without waiting.
    pub fn acquire(path: &Path) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        // SAFETY: flock(2) takes a file descriptor and flags only; `file` keeps the fd
        // open for the duration of the call (and for the lock's lifetime).
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    path: path.display().to_string(),
                    pid: text.trim().parse().ok(),
                });
            }
            return Err(io(e));
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_names_the_owner() {
        let dir = std::env::temp_dir().join(format!("mape-lock-{}", std::process::id()));
        let path = dir.join("sub/mape0.lock");
        let first = InstanceLock::acquire(&path).expect("first");
        // flock locks belong to the open file description: a second open in the same
        // process conflicts like another process would.
        match InstanceLock::acquire(&path) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("second lock: {other:?}"),
        }
        drop(first);
        let again = InstanceLock::acquire(&path).expect("after release");
        assert_eq!(again.path(), path.as_path());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
