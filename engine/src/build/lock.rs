//! One build at a time per index: `quarry build` holds an exclusive lock on
//! `<index dir>.lock` (beside the folder, so it exists before the folder does)
//! for its whole run. A second build of the same index waits, then finds the
//! index built (or resumes what the first left), instead of re-encoding beside
//! it and deleting its temporary files. The lock is `flock(2)` through fd-lock:
//! the kernel drops it when the process dies, so a killed build never leaves a
//! stale lock behind.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;

use crate::error::{EngineError, Result};

/// The lock file of the index at `dir`.
pub fn lock_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    dir.with_file_name(name)
}

/// An open lock file; [`BuildLock::acquire`] hands out the held guard.
pub struct BuildLock {
    lock: fd_lock::RwLock<File>,
    path: PathBuf,
}

impl BuildLock {
    pub fn open(dir: &Path) -> Result<BuildLock> {
        let path = lock_path(dir);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| EngineError::io(&path, e))?;
        Ok(BuildLock {
            lock: fd_lock::RwLock::new(file),
            path,
        })
    }

    /// Takes the lock, waiting (and saying so on `progress`) while another
    /// build holds it.
    pub fn acquire(
        &mut self,
        progress: &ProgressBar,
    ) -> Result<fd_lock::RwLockWriteGuard<'_, File>> {
        let path = self.path.clone();
        let held_elsewhere = match self.lock.try_write() {
            Ok(_guard) => false,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            Err(e) => return Err(EngineError::io(&path, e)),
        };
        if held_elsewhere {
            let message = format!(
                "waiting for another quarry build of this index (lock {})",
                path.display()
            );
            progress.set_message(message.clone());
            if progress.is_hidden() {
                eprintln!("{message}");
            }
        }
        self.lock.write().map_err(|e| EngineError::io(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("m@d");
        let mut first = BuildLock::open(&index).unwrap();
        let guard = first.acquire(&ProgressBar::hidden()).unwrap();
        assert!(lock_path(&index).is_file());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut second = BuildLock::open(&index).unwrap();
            let _held = second.acquire(&ProgressBar::hidden()).unwrap();
            tx.send(()).unwrap();
        });
        // While the first holds it, the second does not get it.
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(300))
            .is_err());
        drop(guard);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        thread.join().unwrap();
    }
}
