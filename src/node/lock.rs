//! One node per data dir: `cityeye run` holds a lock on `node.data_dir` while it runs.
//!
//! Two nodes on one data dir share its outbox and, with one config, the broker's client id: they
//! knock each other off the broker and report every incident twice under different ids. The
//! first node takes an advisory lock (`flock`) on `cityeye.lock` in the data dir and writes its
//! PID there; a second one finds the lock taken and stops at once, naming the first's PID. The
//! kernel drops the lock when the holder's process ends, however it ends (SIGKILL, a crash, a
//! power cut), so the file left behind never blocks a restart.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file in the data dir.
pub const LOCK_FILE: &str = "cityeye.lock";

/// Why the node cannot have its data dir to itself.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("node.data_dir: cannot create {}: {source}", dir.display())]
    CreateDir { dir: PathBuf, source: std::io::Error },
    #[error("node.data_dir: cannot lock {}: {source}", path.display())]
    Lock { path: PathBuf, source: std::io::Error },
    /// Another process holds the lock: `pid` is what it wrote in the file, when readable.
    #[error(
        "node.data_dir: another cityeye{} is running on {}",
        pid.map(|p| format!(" (PID {p})")).unwrap_or_default(),
        dir.display()
    )]
    Taken { pid: Option<u32>, dir: PathBuf },
}

/// The data dir's lock, held until this is dropped (or the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    /// The lock belongs to this open file: closing it releases the lock.
    _file: File,
}

impl DataDirLock {
    /// Takes the lock on `dir` (created if missing) and writes this process's PID in it; fails
    /// at once, without waiting, when another process holds it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| LockError::CreateDir { dir: dir.to_path_buf(), source })?;
        let path = dir.join(LOCK_FILE);
        let error = |source| LockError::Lock { path: path.clone(), source };
        // Not truncated on open: until the lock is ours, the PID in it is the holder's.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Taken { pid: holder(&path), dir: dir.to_path_buf() });
            }
            Err(TryLockError::Error(e)) => return Err(error(e)),
        }
        file.set_len(0)
            .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .map_err(error)?;
        Ok(DataDirLock { _file: file })
    }
}

/// The PID the lock's holder wrote in `path`. It writes it just after taking the lock, so an
/// empty file is read again for a moment before giving up on it.
fn holder(path: &Path) -> Option<u32> {
    for _ in 0..10 {
        let pid = std::fs::read_to_string(path).ok().and_then(|text| text.trim().parse().ok());
        if pid.is_some() {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_data_dir_fails_naming_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let first = DataDirLock::acquire(&data_dir).expect("the first lock");
        let pid = std::process::id();
        let text = std::fs::read_to_string(data_dir.join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("{pid}\n"));
        // flock locks belong to the open file, so a second open in this process is refused too.
        let error = DataDirLock::acquire(&data_dir).expect_err("the data dir is taken");
        assert!(matches!(error, LockError::Taken { pid: Some(p), .. } if p == pid), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!(
                "node.data_dir: another cityeye (PID {pid}) is running on {}",
                data_dir.display()
            )
        );
        drop(first);
        DataDirLock::acquire(&data_dir).expect("free again once the first is dropped");
    }

    #[test]
    fn a_data_dir_that_cannot_be_made_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let error = DataDirLock::acquire(&file.join("data")).expect_err("under a file");
        assert!(matches!(error, LockError::CreateDir { .. }), "{error:?}");
        assert!(error.to_string().starts_with("node.data_dir: cannot create "), "{error}");
    }
}
