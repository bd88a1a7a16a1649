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
//!
//! A shared checkout that is already there is not trusted as it is (root, or anything with the
//! store's owner's rights, can change its files between builds): the first time a process uses
//! it, it is compared with its tree, every file re-hashed ([`verify_checkout`]); one that differs
//! is moved aside and made again. Later uses in the same process trust that check.
use std::collections::HashSet;
use std::fs::{self, FileTimes, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::digest::{Blob, HashingReader, TreeDigest};

use super::{EntryKind, Store, StoreError};

/// The checkouts this process has made or verified: (store root, tree).
static TRUSTED: Mutex<Option<HashSet<(PathBuf, TreeDigest)>>> = Mutex::new(None);

fn is_trusted(store: &Store, tree: &TreeDigest) -> bool {
    let trusted = TRUSTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    trusted
        .as_ref()
        .is_some_and(|set| set.contains(&(store.root().to_path_buf(), *tree)))
}

/// As if this were a new process: every checkout is verified again on its next use.
#[cfg(test)]
fn forget_trusted() {
    *TRUSTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
}

fn trust(store: &Store, tree: &TreeDigest) {
    let mut trusted = TRUSTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    trusted
        .get_or_insert_with(HashSet::new)
        .insert((store.root().to_path_buf(), *tree));
}

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
    if touch_checkout(store, tree) {
        if is_trusted(store, tree) {
            return Ok(dest);
        }
        match verify_checkout(store, tree, &dest)? {
            None => {
                trust(store, tree);
                return Ok(dest);
            }
            Some(difference) => {
                tracing::warn!(
                    "checkout {} differs from its tree {tree}: {difference}; making it again",
                    dest.display()
                );
                let aside = store.temp_dir()?;
                let stale = aside.path().join("stale");
                match fs::rename(&dest, &stale) {
                    Ok(()) => {}
                    // Another process moved it first.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io("moving aside", &dest, e)),
                }
                // Left in `tmp/` (for `store gc`/`verify`, after an hour): a step of another
                // build may still have it mounted.
                let _ = aside.keep();
            }
        }
    }
    let staging = store.temp_dir()?;
    let work = staging.path().join("tree");
    let result = write_tree(store, tree, &work).and_then(|()| {
        // Before the move: once in place, the checkout may already be mounted by a step.
        finish_directory(&work)?;
        match fs::rename(&work, &dest) {
            Ok(()) => Ok(true),
            // Another process materialized the same tree first; theirs is checked below.
            Err(_) if dest.is_dir() => Ok(false),
            Err(e) => Err(StoreError::io("renaming into place", &dest, e)),
        }
    });
    let cleanup = remove_tree_force(staging.path());
    let ours = result?;
    cleanup?;
    if !ours && let Some(difference) = verify_checkout(store, tree, &dest)? {
        return Err(StoreError::CheckoutDiffers {
            path: dest,
            tree: *tree,
            difference,
        });
    }
    // Ours was written from blobs re-hashed as they were copied.
    trust(store, tree);
    Ok(dest)
}

/// Whether the shared checkout of `tree` exists; if so, records its use for `store gc` in its
/// access time (its modification time is fixed: steps see it). Nothing is verified. Best
/// effort: a store shared read-only with another user still works.
pub(super) fn touch_checkout(store: &Store, tree: &TreeDigest) -> bool {
    let dest = store.checkout_path(tree);
    if !dest.is_dir() {
        return false;
    }
    if let Ok(directory) = fs::File::open(&dest) {
        let _ = directory.set_times(FileTimes::new().set_accessed(SystemTime::now()));
    }
    true
}

/// The first difference between the directory `dir` and `tree` as `materialize` writes it
/// (the same names, types, modes, modification times, symlink targets, and every file's
/// content re-hashed), described for a person; `None` when there is none. Nothing is followed:
/// a symlink where a directory or file belongs is a difference.
pub fn verify_checkout(
    store: &Store,
    tree: &TreeDigest,
    dir: &Path,
) -> Result<Option<String>, StoreError> {
    verify_directory(store, tree, dir, "")
}

fn verify_directory(
    store: &Store,
    tree: &TreeDigest,
    dir: &Path,
    relative: &str,
) -> Result<Option<String>, StoreError> {
    let shown = |name: &str| super::join_relative(relative, name);
    let here = if relative.is_empty() { "." } else { relative };
    let object = store.read_tree(tree)?;
    let mut seen = 0usize;
    for item in fs::read_dir(dir).map_err(|e| StoreError::io("listing", dir, e))? {
        let item = item.map_err(|e| StoreError::io("listing", dir, e))?;
        let name = item.file_name();
        if name.to_str().and_then(|name| object.get(name)).is_none() {
            return Ok(Some(format!(
                "`{}` is there, but its tree has no such entry",
                shown(&name.to_string_lossy())
            )));
        }
        seen += 1;
    }
    if seen != object.entries.len() {
        let missing = object
            .entries
            .iter()
            .find(|entry| fs::symlink_metadata(dir.join(&entry.name)).is_err())
            .map_or_else(
                || "an entry".to_string(),
                |entry| format!("`{}`", shown(&entry.name)),
            );
        return Ok(Some(format!("{missing} is missing")));
    }
    for entry in &object.entries {
        let path = dir.join(&entry.name);
        let name = shown(&entry.name);
        let metadata = fs::symlink_metadata(&path)
            .map_err(|e| StoreError::io("reading metadata of", &path, e))?;
        match &entry.kind {
            EntryKind::File {
                digest,
                size,
                executable,
            } => {
                if !metadata.file_type().is_file() {
                    return Ok(Some(format!(
                        "`{name}` is {}, not a file",
                        describe(&metadata)
                    )));
                }
                let mode = if *executable {
                    EXECUTABLE_MODE
                } else {
                    FILE_MODE
                };
                if let Some(difference) = check_common(&metadata, mode) {
                    return Ok(Some(format!("`{name}` {difference}")));
                }
                if metadata.len() != *size {
                    return Ok(Some(format!(
                        "`{name}` has {} bytes, its tree says {size}",
                        metadata.len()
                    )));
                }
                let file =
                    fs::File::open(&path).map_err(|e| StoreError::io("opening", &path, e))?;
                // The file opened is the one looked at, not what a swapped-in symlink names.
                let opened = file
                    .metadata()
                    .map_err(|e| StoreError::io("reading metadata of", &path, e))?;
                if (opened.dev(), opened.ino()) != (metadata.dev(), metadata.ino()) {
                    return Ok(Some(format!("`{name}` changed while it was checked")));
                }
                let mut reader = HashingReader::new(file);
                io::copy(&mut reader, &mut io::sink())
                    .map_err(|e| StoreError::io("reading", &path, e))?;
                let (_, found, _) = reader.finish::<Blob>();
                if found != *digest {
                    return Ok(Some(format!(
                        "`{name}` has content {found}, its tree says {digest}"
                    )));
                }
            }
            EntryKind::Symlink { target } => {
                if !metadata.file_type().is_symlink() {
                    return Ok(Some(format!(
                        "`{name}` is {}, not a symlink",
                        describe(&metadata)
                    )));
                }
                let found = fs::read_link(&path)
                    .map_err(|e| StoreError::io("reading the symlink", &path, e))?;
                if found.as_os_str() != target.as_str() {
                    return Ok(Some(format!(
                        "`{name}` points at `{}`, its tree says `{target}`",
                        found.display()
                    )));
                }
                if metadata.mtime() != MATERIALIZED_MTIME as i64 {
                    return Ok(Some(format!("`{name}` has another modification time")));
                }
            }
            EntryKind::Directory { digest } => {
                if !metadata.file_type().is_dir() {
                    return Ok(Some(format!(
                        "`{name}` is {}, not a directory",
                        describe(&metadata)
                    )));
                }
                if let Some(difference) = verify_directory(store, digest, &path, &name)? {
                    return Ok(Some(difference));
                }
            }
        }
    }
    // Last: adding or removing an entry also changes it.
    let metadata =
        fs::symlink_metadata(dir).map_err(|e| StoreError::io("reading metadata of", dir, e))?;
    if let Some(difference) = check_common(&metadata, DIRECTORY_MODE) {
        return Ok(Some(format!("`{here}` {difference}")));
    }
    Ok(None)
}

/// Mode and modification time as `materialize` sets them.
fn check_common(metadata: &fs::Metadata, mode: u32) -> Option<String> {
    let found = metadata.permissions().mode() & 0o7777;
    if found != mode {
        return Some(format!("has mode {found:o}, want {mode:o}"));
    }
    if metadata.mtime() != MATERIALIZED_MTIME as i64 || metadata.mtime_nsec() != 0 {
        return Some("has another modification time".to_string());
    }
    None
}

fn describe(metadata: &fs::Metadata) -> &'static str {
    let kind = metadata.file_type();
    if kind.is_symlink() {
        "a symlink"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_file() {
        "a file"
    } else {
        "a special file"
    }
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
mod removal_tests {
    use super::*;

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
            // An error is fine (the tree changed under it); touching the host is not.
            let _ = crate::store::tests::while_swapping(&tree, PAIRS, || remove_tree_force(&tree));
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

impl Store {
    /// The first object the tree `root` names, at any depth, that the store lacks (a tree
    /// object missing or not matching its name, or a blob missing), described for a person;
    /// `None` when the whole tree is there. What a cache hit checks before it is used: blobs
    /// are looked for, not re-hashed (`store verify` does that).
    pub fn missing_below(&self, root: &TreeDigest) -> Result<Option<String>, StoreError> {
        let mut seen = HashSet::new();
        let mut pending = vec![(*root, String::new())];
        while let Some((tree, at)) = pending.pop() {
            if !seen.insert(tree) {
                continue;
            }
            let here = if at.is_empty() {
                ".".to_string()
            } else {
                at.clone()
            };
            let object = match self.read_tree(&tree) {
                Ok(object) => object,
                Err(
                    error @ (StoreError::MissingTree { .. }
                    | StoreError::CorruptTree { .. }
                    | StoreError::InvalidTreeObject { .. }),
                ) => return Ok(Some(format!("the tree of `{here}`: {error}"))),
                Err(error) => return Err(error),
            };
            for entry in object.entries {
                let path = if at.is_empty() {
                    entry.name.clone()
                } else {
                    format!("{at}/{}", entry.name)
                };
                match entry.kind {
                    EntryKind::File { digest, .. } if !self.has_blob(&digest) => {
                        return Ok(Some(format!("the blob {digest} of `{path}` is missing")));
                    }
                    EntryKind::Directory { digest } => pending.push((digest, path)),
                    _ => {}
                }
            }
        }
        Ok(None)
    }

    /// Records a use of the shared checkout of `tree` for `store gc`, if there is one (nothing
    /// is made or verified): for a step answered by the cache, which mounts nothing.
    pub fn touch_checkout(&self, tree: &TreeDigest) -> bool {
        touch_checkout(self, tree)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn store_with_tree() -> (tempfile::TempDir, Store, TreeDigest) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("data")).unwrap();
        fs::write(src.join("data/answer.txt"), "forty-two\n").unwrap();
        fs::write(src.join("README"), "a library\n").unwrap();
        symlink("data/answer.txt", src.join("link")).unwrap();
        let tree = store.add_tree(&src, &|_| false).unwrap();
        (dir, store, tree)
    }

    /// What root can do to a 0644 checkout file without changing its size, mode or mtime.
    fn overwrite_keeping_metadata(path: &Path, content: &str) {
        let mut permissions = fs::metadata(path).unwrap().permissions();
        permissions.set_mode(0o644);
        fs::write(path, content).unwrap();
        fs::set_permissions(path, permissions).unwrap();
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(materialized_time())
            .unwrap();
    }

    #[test]
    fn a_tampered_checkout_is_made_again_in_a_new_process() {
        let (_dir, store, tree) = store_with_tree();
        let checkout = store.materialize(&tree).unwrap();
        let answer = checkout.join("data/answer.txt");
        overwrite_keeping_metadata(&answer, "forty-six\n");
        assert_eq!(
            verify_checkout(&store, &tree, &checkout)
                .unwrap()
                .as_deref(),
            Some(
                format!(
                    "`data/answer.txt` has content {}, its tree says {}",
                    crate::digest::BlobDigest::of(b"forty-six\n"),
                    crate::digest::BlobDigest::of(b"forty-two\n")
                )
                .as_str()
            )
        );
        forget_trusted();
        let again = store.materialize(&tree).unwrap();
        assert_eq!(again, checkout);
        assert_eq!(fs::read_to_string(&answer).unwrap(), "forty-two\n");
        assert_eq!(verify_checkout(&store, &tree, &again).unwrap(), None);
    }

    #[test]
    fn every_kind_of_change_to_a_checkout_is_found() {
        let (_dir, store, tree) = store_with_tree();
        let checkout = store.materialize(&tree).unwrap();
        type Change = Box<dyn Fn(&Path)>;
        let cases: Vec<(&str, Change, &str)> = vec![
            (
                "extra file",
                Box::new(|c: &Path| fs::write(c.join("data/extra"), "x").unwrap()),
                "`data/extra` is there, but its tree has no such entry",
            ),
            (
                "removed file",
                Box::new(|c: &Path| fs::remove_file(c.join("README")).unwrap()),
                "`README` is missing",
            ),
            (
                "mode",
                Box::new(|c: &Path| {
                    fs::set_permissions(c.join("README"), fs::Permissions::from_mode(0o755))
                        .unwrap()
                }),
                "`README` has mode 755, want 644",
            ),
            (
                "symlink target",
                Box::new(|c: &Path| {
                    fs::remove_file(c.join("link")).unwrap();
                    symlink("/etc/passwd", c.join("link")).unwrap();
                }),
                "`link` points at `/etc/passwd`, its tree says `data/answer.txt`",
            ),
            (
                "file swapped for a symlink",
                Box::new(|c: &Path| {
                    fs::remove_file(c.join("README")).unwrap();
                    symlink("/etc/hostname", c.join("README")).unwrap();
                }),
                "`README` is a symlink, not a file",
            ),
            (
                "mtime",
                Box::new(|c: &Path| {
                    fs::File::options()
                        .write(true)
                        .open(c.join("README"))
                        .unwrap()
                        .set_modified(SystemTime::now())
                        .unwrap();
                }),
                "`README` has another modification time",
            ),
            (
                "size",
                Box::new(|c: &Path| fs::write(c.join("README"), "longer than before\n").unwrap()),
                "`README` has",
            ),
        ];
        for (what, change, expected) in cases {
            forget_trusted();
            let checkout = store.materialize(&tree).unwrap();
            assert_eq!(
                verify_checkout(&store, &tree, &checkout).unwrap(),
                None,
                "{what}: clean first"
            );
            change(&checkout);
            let found = verify_checkout(&store, &tree, &checkout).unwrap();
            assert!(
                found
                    .as_deref()
                    .is_some_and(|found| found.starts_with(expected)),
                "{what}: {found:?}"
            );
        }
        let _ = checkout;
    }

    #[test]
    fn a_cache_hit_with_a_blob_or_tree_gone_is_incomplete() {
        let (_dir, store, tree) = store_with_tree();
        assert_eq!(store.missing_below(&tree).unwrap(), None);
        let answer = crate::digest::BlobDigest::of(b"forty-two\n");
        let blob = store.blob_path(&answer);
        let mut permissions = fs::metadata(&blob).unwrap().permissions();
        permissions.set_mode(0o644);
        fs::set_permissions(&blob, permissions).unwrap();
        fs::remove_file(&blob).unwrap();
        assert_eq!(
            store.missing_below(&tree).unwrap(),
            Some(format!("the blob {answer} of `data/answer.txt` is missing"))
        );
        let EntryKind::Directory { digest: data } =
            store.lookup(&tree, "data").unwrap().unwrap().kind
        else {
            panic!("data is a directory");
        };
        fs::remove_file(store.tree_path(&data)).unwrap();
        let missing = store.missing_below(&tree).unwrap().unwrap();
        assert!(missing.starts_with("the tree of `data`: "), "{missing}");
    }
}
