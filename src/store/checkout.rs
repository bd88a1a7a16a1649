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
use std::os::unix::ffi::OsStrExt;
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
///
/// The tree may be one a container could still touch (a step's `/out`, through a descriptor
/// passed out of it), so it is walked by descriptor: each directory is opened with
/// `O_NOFOLLOW | O_DIRECTORY` relative to its parent's descriptor, its mode changed through that
/// descriptor, its entries removed with `unlinkat` relative to it. A directory swapped for a
/// symlink mid-walk is removed as the symlink it now is; nothing outside the tree is chmod-ed,
/// listed or removed.
pub fn remove_tree_force(path: &Path) -> Result<(), StoreError> {
    use rustix::fs::{AtFlags, CWD, Mode, OFlags};
    use rustix::io::Errno;
    let opened = rustix::fs::openat(
        CWD,
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    );
    let root = match opened {
        Ok(root) => root,
        Err(Errno::NOENT) => return Ok(()),
        // A symlink or a file: removed itself.
        Err(Errno::NOTDIR | Errno::LOOP) => {
            return match rustix::fs::unlinkat(CWD, path, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(StoreError::io("removing", path, e.into())),
            };
        }
        Err(e) => return Err(StoreError::io("opening", path, e.into())),
    };
    let root = open_writable(root, path)?;
    empty_directory(&root, path)?;
    drop(root);
    match rustix::fs::unlinkat(CWD, path, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(StoreError::io("removing", path, e.into())),
    }
}

/// How many times a directory is listed and emptied before its removal gives up: entries
/// appear in it only while something else writes there.
const REMOVE_PASSES: usize = 8;

/// The directory `pathfd` (an `O_PATH` descriptor) given mode 0700 if it lacks any owner bit,
/// through the descriptor, and opened for listing. `path` is for messages only.
fn open_writable(
    pathfd: rustix::fd::OwnedFd,
    path: &Path,
) -> Result<rustix::fd::OwnedFd, StoreError> {
    use rustix::fs::{Mode, OFlags};
    let stat = rustix::fs::fstat(&pathfd)
        .map_err(|e| StoreError::io("reading metadata of", path, e.into()))?;
    if stat.st_mode & 0o700 != 0o700 {
        // `fchmod` does not take an `O_PATH` descriptor; its `/proc/self/fd` link names the very
        // inode the descriptor holds, whatever the path now points at.
        let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&pathfd));
        rustix::fs::chmod(link.as_str(), Mode::from_raw_mode(0o700))
            .map_err(|e| StoreError::io("setting permissions of", path, e.into()))?;
    }
    rustix::fs::openat(
        &pathfd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| StoreError::io("opening", path, e.into()))
}

/// Removes everything in the directory `dir` (open for listing), by descriptor.
fn empty_directory(dir: &rustix::fd::OwnedFd, path: &Path) -> Result<(), StoreError> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    use rustix::io::Errno;
    for _ in 0..REMOVE_PASSES {
        let mut names = Vec::new();
        let mut listing = rustix::fs::Dir::read_from(dir)
            .map_err(|e| StoreError::io("listing", path, e.into()))?;
        while let Some(entry) = listing.read() {
            let entry = entry.map_err(|e| StoreError::io("listing", path, e.into()))?;
            let name = entry.file_name();
            if name != c"." && name != c".." {
                names.push(name.to_owned());
            }
        }
        if names.is_empty() {
            return Ok(());
        }
        for name in names {
            let child = path.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
            match rustix::fs::unlinkat(dir, &name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => continue,
                Err(Errno::ISDIR | Errno::PERM) => {}
                Err(e) => return Err(StoreError::io("removing", &child, e.into())),
            }
            let opened = rustix::fs::openat(
                dir,
                &name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            );
            match opened {
                Ok(pathfd) => {
                    let sub = open_writable(pathfd, &child)?;
                    empty_directory(&sub, &child)?;
                }
                // Gone, or no longer a directory: the next pass sees what it is now.
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(StoreError::io("opening", &child, e.into())),
            }
            match rustix::fs::unlinkat(dir, &name, AtFlags::REMOVEDIR) {
                // Swapped for something else, or refilled: the next pass sees it.
                Ok(()) | Err(Errno::NOENT | Errno::NOTDIR | Errno::NOTEMPTY) => {}
                Err(e) => return Err(StoreError::io("removing", &child, e.into())),
            }
        }
    }
    Err(StoreError::io(
        "removing",
        path,
        io::Error::other(format!(
            "entries kept appearing in it while it was emptied ({REMOVE_PASSES} passes)"
        )),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// The attack of review item 4: while sealroom (root) cleans a tree, whoever still holds a
    /// descriptor of it swaps its read-only directories for symlinks to a host directory and to
    /// a setuid file. No host mode may change and nothing outside the tree may go.
    #[test]
    fn removing_a_tree_whose_directories_turn_into_symlinks_touches_nothing_outside() {
        let host = tempfile::tempdir().unwrap();
        let victim = host.path().join("victim");
        fs::create_dir(&victim).unwrap();
        fs::create_dir(victim.join("sub")).unwrap();
        fs::write(victim.join("sub/keep"), "host file\n").unwrap();
        fs::write(victim.join("setuid-tool"), "#!/bin/sh\n").unwrap();
        set_mode(&victim.join("setuid-tool"), 0o4755).unwrap();
        set_mode(&victim.join("sub"), 0o555).unwrap();
        set_mode(&victim, 0o555).unwrap();
        const PAIRS: usize = 8;
        for round in 0..200 {
            let scratch = tempfile::tempdir().unwrap();
            let tree = scratch.path().join("tree");
            fs::create_dir(&tree).unwrap();
            for pair in 0..PAIRS {
                let dir = tree.join(format!("d{pair}"));
                for inner in 0..16 {
                    let inner = dir.join(format!("inner{inner}"));
                    fs::create_dir_all(&inner).unwrap();
                    fs::write(inner.join("f"), "x").unwrap();
                    set_mode(&inner, 0o555).unwrap();
                }
                set_mode(&dir, 0o555).unwrap();
                let target = if pair % 2 == 0 {
                    victim.clone()
                } else {
                    victim.join("setuid-tool")
                };
                std::os::unix::fs::symlink(&target, tree.join(format!("l{pair}"))).unwrap();
            }
            let stop = AtomicBool::new(false);
            let started = std::sync::Barrier::new(2);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    let root = fs::File::open(&tree).unwrap();
                    started.wait();
                    while !stop.load(Ordering::Relaxed) {
                        for pair in 0..PAIRS {
                            let _ = rustix::fs::renameat_with(
                                &root,
                                format!("d{pair}"),
                                &root,
                                format!("l{pair}"),
                                rustix::fs::RenameFlags::EXCHANGE,
                            );
                        }
                    }
                });
                started.wait();
                // An error is fine (the tree changed under it); touching the host is not.
                let _ = remove_tree_force(&tree);
                stop.store(true, Ordering::Relaxed);
            });
            assert_eq!(mode_of(&victim), 0o555, "round {round}: the host directory");
            assert_eq!(
                mode_of(&victim.join("sub")),
                0o555,
                "round {round}: its subdirectory"
            );
            assert_eq!(
                mode_of(&victim.join("setuid-tool")),
                0o4755,
                "round {round}: the setuid file"
            );
            assert_eq!(
                fs::read_to_string(victim.join("sub/keep")).unwrap(),
                "host file\n",
                "round {round}"
            );
            // Once nothing races it, the rest goes.
            remove_tree_force(&tree).unwrap();
            assert!(fs::symlink_metadata(&tree).is_err(), "round {round}");
        }
        set_mode(&victim.join("sub"), 0o755).unwrap();
        set_mode(&victim, 0o755).unwrap();
    }
}
