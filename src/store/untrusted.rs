//! Hashing a tree a container could touch (a step's `/out`, a fixed-output fetch's `/out`) into
//! the store, by descriptor.
//!
//! The container is gone when this runs, but anything it passed a descriptor of `/out` to (over
//! an abstract Unix socket, from a host-network fetch) can still rename, rewrite and swap entries
//! while sealroom reads. So nothing is looked up by path: the root is opened with
//! `O_NOFOLLOW | O_DIRECTORY`, every directory below it with `openat(parent, name, O_NOFOLLOW |
//! O_DIRECTORY)`, every file with `openat(parent, name, O_NOFOLLOW | O_NONBLOCK)` and checked
//! with `fstat` on the opened descriptor to be a regular file. Each file's bytes are read once,
//! and the blob is named by those very bytes as they are copied into the store, so what is
//! hashed is what is stored: a file rewritten meanwhile gives a tree with other digests, never a
//! tree whose digest names content it does not hold. A directory swapped for a symlink is either
//! recorded as the symlink it is when listed, or fails to open (`ELOOP`/`ENOTDIR`): a symlink is
//! never followed, so no host file is read.
//!
//! Every byte read counts against `limit` (the spec's `limits.output`): a tree over it stops
//! being read at the limit, and nothing more of it is stored.
use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::digest::TreeDigest;

use super::{Entry, EntryKind, Store, StoreError, TreeObject};

pub(super) fn add_untrusted_tree(
    store: &Store,
    dir: &Path,
    limit: Option<u64>,
) -> Result<TreeDigest, StoreError> {
    let root =
        rustix::fs::openat(CWD, dir, DIRECTORY_FLAGS, Mode::empty()).map_err(|e| match e {
            Errno::NOTDIR | Errno::LOOP => StoreError::NotADirectory {
                path: dir.to_path_buf(),
                found: "symlink or non-directory",
            },
            e => StoreError::io("opening", dir, e.into()),
        })?;
    let walk = Walk {
        store,
        root: dir,
        limit,
        read: Cell::new(0),
    };
    walk.directory(&root, "")
}

const DIRECTORY_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

struct Walk<'a> {
    store: &'a Store,
    root: &'a Path,
    limit: Option<u64>,
    /// Bytes of files read so far.
    read: Cell<u64>,
}

impl Walk<'_> {
    fn path(&self, relative: &str) -> PathBuf {
        if relative.is_empty() {
            self.root.to_path_buf()
        } else {
            self.root.join(relative)
        }
    }

    fn directory(&self, dir: &OwnedFd, relative: &str) -> Result<TreeDigest, StoreError> {
        let mut names = Vec::new();
        let mut listing = rustix::fs::Dir::read_from(dir)
            .map_err(|e| StoreError::io("listing", self.path(relative), e.into()))?;
        while let Some(item) = listing.read() {
            let item =
                item.map_err(|e| StoreError::io("listing", self.path(relative), e.into()))?;
            let name = item.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let child = super::join_relative(relative, &String::from_utf8_lossy(name.to_bytes()));
            let Ok(name) = name.to_str() else {
                return Err(StoreError::NonUtf8Name {
                    tree_root: self.root.to_path_buf(),
                    path: child.into(),
                });
            };
            names.push(name.to_string());
        }
        drop(listing);
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let child = super::join_relative(relative, &name);
            let kind = self.entry(dir, &name, &child)?;
            entries.push(Entry { name, kind });
        }
        let tree = TreeObject::new(entries).map_err(|source| StoreError::InvalidEntry {
            path: self.path(relative),
            source,
        })?;
        self.store.add_tree_object(&tree)
    }

    fn entry(&self, dir: &OwnedFd, name: &str, relative: &str) -> Result<EntryKind, StoreError> {
        let changed = |e: Errno| StoreError::io("reading", self.path(relative), e.into());
        let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(changed)?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name, Vec::new()).map_err(changed)?;
                let target =
                    target
                        .into_string()
                        .map_err(|_| StoreError::NonUtf8SymlinkTarget {
                            tree_root: self.root.to_path_buf(),
                            path: relative.into(),
                        })?;
                Ok(EntryKind::Symlink { target })
            }
            FileType::Directory => {
                // A swap since the `statat` fails here (`ELOOP`/`ENOTDIR`): never followed.
                let sub = rustix::fs::openat(dir, name, DIRECTORY_FLAGS, Mode::empty())
                    .map_err(changed)?;
                let digest = self.directory(&sub, relative)?;
                Ok(EntryKind::Directory { digest })
            }
            FileType::RegularFile => {
                let file =
                    rustix::fs::openat(dir, name, FILE_FLAGS, Mode::empty()).map_err(changed)?;
                // What was opened is what counts: a fifo or device swapped in since the `statat`
                // is refused before a byte is read.
                let opened = rustix::fs::fstat(&file).map_err(changed)?;
                let kind = FileType::from_raw_mode(opened.st_mode);
                if kind != FileType::RegularFile {
                    return Err(self.unsupported(relative, kind));
                }
                let exceeded = Cell::new(false);
                let reader = Counted {
                    file: File::from(file),
                    walk: self,
                    exceeded: &exceeded,
                };
                let origin = format!("`{}`", self.path(relative).display());
                match self.store.add_blob_from_reader(reader, &origin, None) {
                    Ok((digest, size)) => Ok(EntryKind::File {
                        digest,
                        size,
                        executable: opened.st_mode & 0o111 != 0,
                    }),
                    Err(_) if exceeded.get() => Err(StoreError::OutputLimit {
                        tree_root: self.root.to_path_buf(),
                        path: relative.into(),
                        limit: self.limit.unwrap_or(0),
                    }),
                    Err(error) => Err(error),
                }
            }
            kind => Err(self.unsupported(relative, kind)),
        }
    }

    fn unsupported(&self, relative: &str, kind: FileType) -> StoreError {
        StoreError::UnsupportedFileType {
            tree_root: self.root.to_path_buf(),
            path: relative.into(),
            found: match kind {
                FileType::Fifo => "fifo (named pipe)",
                FileType::Socket => "socket",
                FileType::CharacterDevice => "character device",
                FileType::BlockDevice => "block device",
                FileType::Directory => "directory",
                FileType::Symlink => "symlink",
                _ => "file of unknown type",
            },
        }
    }
}

/// A file's bytes, counted against the walk's limit as they are read.
struct Counted<'a> {
    file: File,
    walk: &'a Walk<'a>,
    exceeded: &'a Cell<bool>,
}

impl Read for Counted<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buffer)?;
        let read = self.walk.read.get().saturating_add(n as u64);
        if let Some(limit) = self.walk.limit
            && read > limit
        {
            self.exceeded.set(true);
            return Err(io::Error::other(format!("more than {limit} bytes")));
        }
        self.walk.read.set(read);
        Ok(n)
    }
}

impl Store {
    /// Hashes a tree a container could have touched (a step's or fixed-output fetch's `/out`)
    /// into the store, by descriptor (see this module); at most `limit` bytes of files.
    pub fn add_untrusted_tree(
        &self,
        dir: &Path,
        limit: Option<u64>,
    ) -> Result<TreeDigest, StoreError> {
        add_untrusted_tree(self, dir, limit)
    }

    /// Moves `tree` and everything under it from `private` (a scratch store of sealroom's own
    /// on the same filesystem, which nothing else can reach) into this store: its files are
    /// renamed, not copied, so this store holds the very inodes that were hashed.
    ///
    /// Every blob and tree this store lacks is moved, even under a tree object it has: a tree
    /// whose blob was lost (a damaged disk) is made whole again.
    pub fn adopt_tree(&self, private: &Store, tree: &TreeDigest) -> Result<(), StoreError> {
        // Moved already: the same directory twice in one tree.
        if !private.has_tree(tree) && self.has_tree(tree) {
            return Ok(());
        }
        let object = private.read_tree(tree)?;
        for entry in &object.entries {
            match &entry.kind {
                EntryKind::File { digest, .. } => {
                    let dest = self.blob_path(digest);
                    if !dest.is_file() {
                        move_file(&private.blob_path(digest), &dest)?;
                    }
                }
                EntryKind::Directory { digest } => self.adopt_tree(private, digest)?,
                EntryKind::Symlink { .. } => {}
            }
        }
        // Last, so that a tree object is only ever there with everything under it.
        let dest = self.tree_path(tree);
        if dest.is_file() {
            return Ok(());
        }
        move_file(&private.tree_path(tree), &dest)
    }
}

/// Renames `from` to `to` (the same content, so a `to` that appeared meanwhile is as good).
fn move_file(from: &Path, to: &Path) -> Result<(), StoreError> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        // Already moved: the same blob twice in one tree.
        Err(e) if e.kind() == io::ErrorKind::NotFound && to.is_file() => Ok(()),
        Err(e) => Err(StoreError::io("moving into the store", to, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        (dir, store)
    }

    #[test]
    fn the_same_tree_as_the_path_walk() {
        let (dir, store) = store();
        let tree = dir.path().join("out");
        fs::create_dir_all(tree.join("a/b")).unwrap();
        fs::write(tree.join("a/b/file"), "content\n").unwrap();
        fs::write(tree.join("tool"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(tree.join("tool"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("a/b/file", tree.join("link")).unwrap();
        fs::create_dir(tree.join("empty")).unwrap();
        let by_descriptor = store.add_untrusted_tree(&tree, None).unwrap();
        assert_eq!(by_descriptor, store.add_tree(&tree, &|_| false).unwrap());
    }

    #[test]
    fn a_symlinked_root_is_refused_not_followed() {
        let (dir, store) = store();
        fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("out")).unwrap();
        let error = store
            .add_untrusted_tree(&dir.path().join("out"), None)
            .unwrap_err();
        assert!(matches!(error, StoreError::NotADirectory { .. }), "{error}");
    }

    #[test]
    fn a_fifo_is_refused_without_being_opened() {
        let (dir, store) = store();
        let tree = dir.path().join("out");
        fs::create_dir(&tree).unwrap();
        rustix::fs::mknodat(
            CWD,
            tree.join("pipe"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let error = store.add_untrusted_tree(&tree, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "unsupported file type at `pipe` (in `{}`): expected a regular file, directory or symlink, found a fifo (named pipe)",
                tree.display()
            )
        );
    }

    #[test]
    fn more_bytes_than_the_limit_stop_at_it_and_store_no_blob_of_them() {
        let (dir, store) = store();
        let tree = dir.path().join("out");
        fs::create_dir(&tree).unwrap();
        fs::write(tree.join("small"), vec![b'a'; 1000]).unwrap();
        fs::write(tree.join("big"), vec![b'b'; 300_000]).unwrap();
        let error = store.add_untrusted_tree(&tree, Some(200_000)).unwrap_err();
        assert!(
            matches!(&error, StoreError::OutputLimit { limit: 200_000, .. }),
            "{error}"
        );
        assert!(!store.has_blob(&crate::digest::BlobDigest::of(&vec![b'b'; 300_000])));
        // At the limit exactly is within it.
        assert!(store.add_untrusted_tree(&tree, Some(301_000)).is_ok());
    }

    #[test]
    fn an_adopted_tree_is_in_the_store_whole() {
        let (dir, store) = store();
        let private = Store::open(&dir.path().join("private")).unwrap();
        let tree = dir.path().join("out");
        fs::create_dir_all(tree.join("d")).unwrap();
        fs::write(tree.join("d/f"), "same").unwrap();
        fs::write(tree.join("g"), "same").unwrap();
        // The same directory twice: one tree object, moved once.
        fs::create_dir_all(tree.join("e")).unwrap();
        fs::write(tree.join("e/f"), "same").unwrap();
        let digest = private.add_untrusted_tree(&tree, None).unwrap();
        store.adopt_tree(&private, &digest).unwrap();
        assert!(store.has_tree(&digest));
        let checkout = dir.path().join("checkout");
        store.checkout(&digest, &checkout).unwrap();
        assert_eq!(fs::read_to_string(checkout.join("d/f")).unwrap(), "same");
        assert_eq!(fs::read_to_string(checkout.join("e/f")).unwrap(), "same");
        assert_eq!(store.missing_below(&digest).unwrap(), None);
    }

    /// The attack of review item 1 at the store: while the tree is read, whoever holds a
    /// descriptor of it swaps its directories for symlinks to a host directory. No host file's
    /// content may reach the store.
    #[test]
    fn directories_swapped_for_symlinks_to_the_host_mid_walk_never_bring_host_files_in() {
        let (dir, store) = store();
        let host = dir.path().join("host");
        fs::create_dir(&host).unwrap();
        for n in 0..4 {
            fs::write(host.join(format!("f{n}")), "HOST-SECRET\n").unwrap();
        }
        const PAIRS: usize = 8;
        for round in 0..300 {
            let tree = dir.path().join(format!("out{round}"));
            fs::create_dir(&tree).unwrap();
            for pair in 0..PAIRS {
                let sub = tree.join(format!("d{pair}"));
                fs::create_dir(&sub).unwrap();
                for n in 0..4 {
                    fs::write(sub.join(format!("f{n}")), "pinned\n").unwrap();
                }
                std::os::unix::fs::symlink(&host, tree.join(format!("l{pair}"))).unwrap();
            }
            let stored = crate::store::tests::while_swapping(&tree, PAIRS, || {
                store.add_untrusted_tree(&tree, None)
            });
            // Failing is fine (a directory turned into a symlink while it was opened); a tree
            // holding the host's file is not.
            if let Ok(digest) = stored {
                let checkout = dir.path().join(format!("checkout{round}"));
                store.checkout(&digest, &checkout).unwrap();
                for pair in 0..PAIRS {
                    for name in [format!("d{pair}"), format!("l{pair}")] {
                        let path = checkout.join(&name);
                        let metadata = fs::symlink_metadata(&path).unwrap();
                        if metadata.is_symlink() {
                            continue;
                        }
                        for n in 0..4 {
                            assert_eq!(
                                fs::read_to_string(path.join(format!("f{n}"))).unwrap(),
                                "pinned\n",
                                "round {round}: {name}/f{n} came from the host"
                            );
                        }
                    }
                }
            }
        }
    }
}
