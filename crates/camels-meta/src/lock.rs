//! One writer per run directory: an exclusive advisory lock on `DIR/.lock`, held for the life of a
//! [`RunLock`], with the holder (process id, start time, command line) written into the file so that
//! a second writer is refused with a message naming it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{MetaError, Result};

/// The name of the lock file inside a run directory.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a run directory; released when dropped (or when the process dies: the
/// operating system drops the lock with the file descriptor, so a killed run never leaves a stale one).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Creates `dir` if needed and locks it, or fails with [`MetaError::Locked`] naming the process
    /// that holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| MetaError::Io { path: dir.into(), source })?;
        let path = dir.join(LOCK_FILE);
        let io = |source| MetaError::Io { path: path.clone(), source };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "another process (starting up)".to_string()
                } else {
                    holder.replace('\n', ", ")
                };
                return Err(MetaError::Locked { path: dir.into(), holder });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        let started =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let command: Vec<String> = std::env::args().collect();
        let holder =
            format!("pid {}\nstarted {started} (unix time)\ncommand {}\n", std::process::id(), command.join(" "));
        file.set_len(0).and_then(|_| file.rewind()).and_then(|_| file.write_all(holder.as_bytes())).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { _file: file, path })
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
    fn a_second_writer_is_refused_with_the_holder_named_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("camels-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = RunLock::acquire(&dir).expect("the first writer locks");
        let err = RunLock::acquire(&dir).expect_err("a second writer is refused");
        let message = err.to_string();
        assert!(message.contains(&dir.display().to_string()), "{message}");
        assert!(message.contains(&format!("pid {}", std::process::id())), "{message}");
        drop(first);
        let again = RunLock::acquire(&dir).expect("free again once dropped");
        assert!(again.path().ends_with(LOCK_FILE));
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
