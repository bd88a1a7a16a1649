//! Writing trees back out of the store: the shared checkouts that steps mount as inputs, writable
//! copies for artifacts, and removing trees that may be read-only (which `remove_dir_all` cannot
//! do without write permission on every directory).
//!
//! Every tree is written the same way, so that a step sees the same files on every machine and
//! every run: files 0644 (0755 if executable), directories 0755, owned by whoever runs sealroom,
//! and every file, directory and symlink with the modification time [`MATERIALIZED_MTIME`]. A
//! shared checkout is protected by how it is used, not by its modes: steps mount it read-only and
//! run as another user. So `cp -a /inputs/src /build/src` gives a step a tree it can build in, and
//! make sees no file newer than another (an automake `Makefile.in` never looks older than its
//! `Makefile.am`).
//!
//! Every tree is built in a temp directory on the destination's filesystem and renamed into place,
//! so a checkout is either absent or complete. Blobs are re-hashed as they are copied.
use std::fs::{self, FileTimes, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::digest::TreeDigest;

use super::{EntryKind, Store, StoreError};

/// The modification time of everything sealroom writes out of the store, in seconds since the
/// epoch: 1980-01-01T00:00:00Z, the earliest time a zip archive can hold, so that tools which
/// pack their inputs into zips (wheels, jars) accept it. Not the spec's `SOURCE_DATE_EPOCH`: a
/// checkout is shared by every spec that mounts the same tree.
pub const MATERIALIZED_MTIME: u64 = 315_532_800;

const FILE_MODE: u32 = 0o644;
const EXECUTABLE_MODE: u32 = 0o755;
const DIRECTORY_MODE: u32 = 0o755;

fn materialized_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(MATERIALIZED_MTIME)
}

pub(super) fn materialize(store: &Store, tree: &TreeDigest) -> Result<PathBuf, StoreError> {
    let dest = store.checkout_path(tree);
    if dest.is_dir() {
        // The checkout's access time records its last use, for `store gc` (its modification
        // time is fixed: steps see it). Best effort: a store shared read-only with another user
        // still works.
        if let Ok(directory) = fs::File::open(&dest) {
            let _ = directory.set_times(FileTimes::new().set_accessed(SystemTime::now()));
        }
        return Ok(dest);
    }
    let staging = store.temp_dir()?;
    let work = staging.path().join("tree");
    let result = write_tree(store, tree, &work).and_then(|()| {
        // Before the move: once in place, the checkout may already be mounted by a step.
        finish_directory(&work)?;
        match fs::rename(&work, &dest) {
            Ok(()) => Ok(()),
            // Another process materialized the same tree first; theirs is as good as ours.
            Err(_) if dest.is_dir() => Ok(()),
            Err(e) => Err(StoreError::io("renaming into place", &dest, e)),
        }
    });
    let cleanup = remove_tree_force(staging.path());
    result?;
    cleanup?;
    Ok(dest)
}

pub(super) fn checkout(store: &Store, tree: &TreeDigest, dest: &Path) -> Result<(), StoreError> {
    if dest.symlink_metadata().is_ok() {
        return Err(StoreError::DestinationExists {
            path: dest.to_path_buf(),
        });
    }
    let parent = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).map_err(|e| StoreError::io("creating", parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".sealroom-checkout-")
        .tempdir_in(parent)
        .map_err(|e| StoreError::io("creating a temporary directory in", parent, e))?;
    let work = staging.path().join("tree");
    write_tree(store, tree, &work)?;
    finish_directory(&work)?;
    fs::rename(&work, dest).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty => {
            StoreError::DestinationExists {
                path: dest.to_path_buf(),
            }
        }
        _ => StoreError::io("renaming into place", dest, e),
    })
}

/// Creates `dest` and writes `tree` into it. Subdirectories get their final mode and time once
/// filled; `dest` itself is for the caller to finish.
fn write_tree(store: &Store, tree: &TreeDigest, dest: &Path) -> Result<(), StoreError> {
    fs::create_dir(dest).map_err(|e| StoreError::io("creating", dest, e))?;
    // Names were checked when the tree object was read: each is one segment, so `join` stays
    // inside `dest`.
    for entry in store.read_tree(tree)?.entries {
        let path = dest.join(&entry.name);
        match entry.kind {
            EntryKind::File {
                digest, executable, ..
            } => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| StoreError::io("creating", &path, e))?;
                store.copy_blob(&digest, &mut file)?;
                let mode = if executable {
                    EXECUTABLE_MODE
                } else {
                    FILE_MODE
                };
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(|e| StoreError::io("setting permissions of", &path, e))?;
                file.set_modified(materialized_time())
                    .map_err(|e| StoreError::io("setting the modification time of", &path, e))?;
            }
            EntryKind::Symlink { target } => {
                std::os::unix::fs::symlink(&target, &path)
                    .map_err(|e| StoreError::io("creating the symlink", &path, e))?;
                // The link itself, never what it points at.
                let time = filetime::FileTime::from_system_time(materialized_time());
                filetime::set_symlink_file_times(&path, time, time)
                    .map_err(|e| StoreError::io("setting the modification time of", &path, e))?;
            }
            EntryKind::Directory { digest } => {
                write_tree(store, &digest, &path)?;
                finish_directory(&path)?;
            }
        }
    }
    Ok(())
}

/// Gives a written directory its final mode and time, once everything inside it is written
/// (each entry created changes the directory's modification time).
fn finish_directory(path: &Path) -> Result<(), StoreError> {
    set_mode(path, DIRECTORY_MODE)?;
    fs::File::open(path)
        .and_then(|directory| directory.set_modified(materialized_time()))
        .map_err(|e| StoreError::io("setting the modification time of", path, e))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), StoreError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| StoreError::io("setting permissions of", path, e))
}

/// Removes `path` and everything under it, first giving its owner write permission on every
/// directory (a checkout or a step's `/out` may be read-only). Symlinks are removed, never
/// followed. A path that does not exist is not an error.
pub fn remove_tree_force(path: &Path) -> Result<(), StoreError> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("reading metadata of", path, e)),
    };
    if !metadata.is_dir() {
        return fs::remove_file(path).map_err(|e| StoreError::io("removing", path, e));
    }
    make_directories_writable(path, metadata.permissions().mode())?;
    fs::remove_dir_all(path).map_err(|e| StoreError::io("removing", path, e))
}

fn make_directories_writable(dir: &Path, mode: u32) -> Result<(), StoreError> {
    if mode & 0o700 != 0o700 {
        set_mode(dir, (mode & 0o7777) | 0o700)?;
    }
    for item in fs::read_dir(dir).map_err(|e| StoreError::io("listing", dir, e))? {
        let item = item.map_err(|e| StoreError::io("listing", dir, e))?;
        let file_type = item
            .file_type()
            .map_err(|e| StoreError::io("reading metadata of", item.path(), e))?;
        if file_type.is_dir() {
            let path = item.path();
            let metadata = fs::symlink_metadata(&path)
                .map_err(|e| StoreError::io("reading metadata of", &path, e))?;
            make_directories_writable(&path, metadata.permissions().mode())?;
        }
    }
    Ok(())
}
