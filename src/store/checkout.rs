//! Writing trees back out of the store: shared read-only checkouts that steps mount as inputs,
//! writable copies for artifacts, and removing read-only trees (which `remove_dir_all` cannot do
//! without write permission on every directory).
//!
//! Every tree is built in a temp directory on the destination's filesystem and renamed into place,
//! so a checkout is either absent or complete. Blobs are re-hashed as they are copied.
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::digest::TreeDigest;

use super::{EntryKind, Store, StoreError};

/// Modes a written tree gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Modes {
    /// Files 0444 (0555 if executable), directories 0555: world-readable (a step runs as a
    /// non-root user), writable by no one.
    Shared,
    /// Files 0644 (0755 if executable), directories 0755.
    Writable,
}

impl Modes {
    fn file(self, executable: bool) -> u32 {
        match (self, executable) {
            (Modes::Shared, false) => 0o444,
            (Modes::Shared, true) => 0o555,
            (Modes::Writable, false) => 0o644,
            (Modes::Writable, true) => 0o755,
        }
    }

    fn directory(self) -> u32 {
        match self {
            Modes::Shared => 0o555,
            Modes::Writable => 0o755,
        }
    }
}

pub(super) fn materialize(store: &Store, tree: &TreeDigest) -> Result<PathBuf, StoreError> {
    let dest = store.checkout_path(tree);
    if dest.is_dir() {
        // The checkout's modification time records its last use, for `store gc`. Best effort:
        // a store shared read-only with another user still works.
        if let Ok(directory) = fs::File::open(&dest) {
            let _ = directory.set_modified(std::time::SystemTime::now());
        }
        return Ok(dest);
    }
    let staging = store.temp_dir()?;
    let work = staging.path().join("tree");
    let result = write_tree(store, tree, &work, Modes::Shared).and_then(|()| {
        match fs::rename(&work, &dest) {
            Ok(()) => Ok(true),
            // Another process materialized the same tree first; theirs is as good as ours.
            Err(_) if dest.is_dir() => Ok(false),
            Err(e) => Err(StoreError::io("renaming into place", &dest, e)),
        }
    });
    // Our copy is read-only inside: `TempDir`'s own removal would fail on it.
    let cleanup = remove_tree_force(staging.path());
    if result? {
        // Only now: moving a directory to another parent needs write permission on it.
        set_mode(&dest, Modes::Shared.directory())?;
    }
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
    write_tree(store, tree, &work, Modes::Writable)?;
    set_mode(&work, Modes::Writable.directory())?;
    fs::rename(&work, dest).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty => {
            StoreError::DestinationExists {
                path: dest.to_path_buf(),
            }
        }
        _ => StoreError::io("renaming into place", dest, e),
    })
}

/// Creates `dest` and writes `tree` into it. Subdirectories get their final mode once filled;
/// `dest` itself keeps its creation mode, for the caller to set after moving it.
fn write_tree(
    store: &Store,
    tree: &TreeDigest,
    dest: &Path,
    modes: Modes,
) -> Result<(), StoreError> {
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
                file.set_permissions(fs::Permissions::from_mode(modes.file(executable)))
                    .map_err(|e| StoreError::io("setting permissions of", &path, e))?;
            }
            EntryKind::Symlink { target } => {
                std::os::unix::fs::symlink(&target, &path)
                    .map_err(|e| StoreError::io("creating the symlink", &path, e))?;
            }
            EntryKind::Directory { digest } => {
                write_tree(store, &digest, &path, modes)?;
                set_mode(&path, modes.directory())?;
            }
        }
    }
    Ok(())
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
