//! The store lock: one file, `<root>/v1/lock`, that every sealroom process using the store
//! holds with an advisory `flock` for as long as it uses the store.
//!
//! Ordinary users (a build, a fetch, `store ls`) hold it *shared*: any number of them may add
//! blobs, trees, checkouts and action entries at once, which is safe because every write is a
//! rename of complete content into place. `store gc` and `store verify` hold it *exclusive*:
//! they delete and move entries, which is only safe while nobody is reading or adding them.
//!
//! Locks are per open file description, so two `Store` handles in one process exclude each
//! other like two processes do (tests rely on this). The kernel drops a lock when its holder
//! exits, however it exits: a crashed build never leaves the store locked.
//!
//! This module only takes and releases the lock; it decides nothing about what the holder may do.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::StoreError;

/// How often a waiting exclusive locker tries again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

/// A held lock on the store; released when dropped (or when the process exits).
#[derive(Debug)]
pub struct StoreLock {
    /// Holds the lock: dropping the file closes its descriptor, which releases it.
    _file: File,
    mode: LockMode,
}

impl StoreLock {
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Takes the lock shared, waiting as long as an exclusive holder (`store gc`, `store verify`)
    /// keeps it. Says so on stderr when it has to wait, like cargo does for its package cache.
    pub fn shared(path: &Path) -> Result<StoreLock, StoreError> {
        let file = open_lock_file(path)?;
        match file.try_lock_shared() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                tracing::info!(
                    "waiting for the store lock `{}`: another sealroom process (store gc or store verify) is using the store",
                    path.display()
                );
                file.lock_shared()
                    .map_err(|e| StoreError::io("locking", path, e))?;
            }
            Err(TryLockError::Error(e)) => return Err(StoreError::io("locking", path, e)),
        }
        Ok(StoreLock {
            _file: file,
            mode: LockMode::Shared,
        })
    }

    /// Takes the lock exclusive, waiting at most `wait` for the shared holders (running builds)
    /// to finish; then fails with [`StoreError::Busy`].
    pub fn exclusive(path: &Path, wait: Duration) -> Result<StoreLock, StoreError> {
        let file = open_lock_file(path)?;
        let started = Instant::now();
        let mut said_so = false;
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(StoreLock {
                        _file: file,
                        mode: LockMode::Exclusive,
                    });
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(StoreError::io("locking", path, e)),
            }
            let waited = started.elapsed();
            if waited >= wait {
                return Err(StoreError::Busy {
                    lock: path.to_path_buf(),
                    waited_seconds: waited.as_secs(),
                });
            }
            if !said_so && !wait.is_zero() {
                tracing::info!(
                    "waiting up to {}s for the store lock `{}`: a sealroom build is using the store",
                    wait.as_secs(),
                    path.display()
                );
                said_so = true;
            }
            std::thread::sleep(POLL_INTERVAL.min(wait - waited));
        }
    }
}

fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StoreError::io("opening the store lock", PathBuf::from(path), e))
}
