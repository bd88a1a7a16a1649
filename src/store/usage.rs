//! Counting what the store holds (`sealroom store ls`): entries and bytes per kind. Reads only;
//! safe while builds run (a count taken during a build is a snapshot, not a promise).
//!
//! Also home to the small listing helpers that `verify` and `gc` share.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{Store, StoreError};

/// How many entries of one kind, and the bytes of the regular files in them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub entries: u64,
    pub bytes: u64,
}

impl Usage {
    pub(super) fn add(&mut self, bytes: u64) {
        self.entries += 1;
        self.bytes += bytes;
    }
}

/// What `store ls` reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreUsage {
    pub root: PathBuf,
    pub blobs: Usage,
    pub trees: Usage,
    /// One entry per checked-out tree; bytes of all the files in it.
    pub checkouts: Usage,
    pub actions: Usage,
    /// Top-level entries of `tmp/` (work in progress or leftovers of a crash).
    pub tmp: Usage,
    pub quarantine: Usage,
    pub total_bytes: u64,
}

impl Store {
    /// Counts the entries and bytes of every kind.
    pub fn usage(&self) -> Result<StoreUsage, StoreError> {
        let flat = |dir: &Path| -> Result<Usage, StoreError> {
            let mut usage = Usage::default();
            for item in list(dir)? {
                usage.add(size_of(&item.path)?);
            }
            Ok(usage)
        };
        let blobs = flat(&self.blobs_dir())?;
        let trees = flat(&self.trees_dir())?;
        let checkouts = flat(&self.checkouts_dir())?;
        let actions = flat(&self.action_entries_dir())?;
        let tmp = flat(&self.tmp_dir())?;
        let mut quarantine = Usage::default();
        for kind in list(&self.quarantine_dir())? {
            let usage = flat(&kind.path)?;
            quarantine.entries += usage.entries;
            quarantine.bytes += usage.bytes;
        }
        let total_bytes = [blobs, trees, checkouts, actions, tmp, quarantine]
            .iter()
            .map(|usage| usage.bytes)
            .sum();
        Ok(StoreUsage {
            root: self.root.clone(),
            blobs,
            trees,
            checkouts,
            actions,
            tmp,
            quarantine,
            total_bytes,
        })
    }
}

/// One entry of a store directory.
pub(super) struct Item {
    pub name: String,
    pub path: PathBuf,
    pub metadata: fs::Metadata,
}

/// The entries of `dir`, sorted by name, without following symlinks; a directory that does not
/// exist is empty. Entries that vanish while we list them (a racing rename) are skipped.
pub(super) fn list(dir: &Path) -> Result<Vec<Item>, StoreError> {
    let reader = match fs::read_dir(dir) {
        Ok(reader) => reader,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("listing", dir, e)),
    };
    let mut items = Vec::new();
    for entry in reader {
        let entry = entry.map_err(|e| StoreError::io("listing", dir, e))?;
        let path = entry.path();
        let metadata = match fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io("reading metadata of", &path, e)),
        };
        items.push(Item {
            name: entry.file_name().to_string_lossy().into_owned(),
            path,
            metadata,
        });
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(items)
}

/// The bytes of the regular files at or below `path` (symlinks are not followed).
pub(super) fn size_of(path: &Path) -> Result<u64, StoreError> {
    let mut bytes = 0;
    for entry in walkdir::WalkDir::new(path) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.io_error().map(io::Error::kind) == Some(io::ErrorKind::NotFound) => {
                continue;
            }
            Err(e) => {
                let at = e.path().unwrap_or(path).to_path_buf();
                return Err(StoreError::io("measuring", at, e.into()));
            }
        };
        if entry.file_type().is_file() {
            bytes += entry
                .metadata()
                .map_err(|e| StoreError::io("reading metadata of", entry.path(), e.into()))?
                .len();
        }
    }
    Ok(bytes)
}
