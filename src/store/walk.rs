//! Hashing a directory into the store: every regular file becomes a blob, every directory a tree
//! object, bottom-up, and the root's tree digest names the whole. Symlinks are recorded, never
//! followed; anything else (fifo, socket, device) is refused. The rules are in `docs/store.md`.
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use crate::digest::TreeDigest;

use super::{Entry, EntryKind, Store, StoreError, TreeObject};

pub(super) fn add_tree(
    store: &Store,
    dir: &Path,
    exclude: &dyn Fn(&str) -> bool,
) -> Result<TreeDigest, StoreError> {
    let metadata = fs::metadata(dir).map_err(|e| StoreError::io("reading metadata of", dir, e))?;
    if !metadata.is_dir() {
        return Err(StoreError::NotADirectory {
            path: dir.to_path_buf(),
            found: describe(metadata.file_type()),
        });
    }
    let walk = Walk {
        store,
        root: dir,
        exclude,
    };
    walk.directory(dir, "")
}

struct Walk<'a> {
    store: &'a Store,
    root: &'a Path,
    exclude: &'a dyn Fn(&str) -> bool,
}

impl Walk<'_> {
    /// Stores the directory `dir` (at `relative` inside the root, `""` for the root itself) and
    /// everything under it that is not excluded.
    fn directory(&self, dir: &Path, relative: &str) -> Result<TreeDigest, StoreError> {
        let mut entries = Vec::new();
        for item in fs::read_dir(dir).map_err(|e| StoreError::io("listing", dir, e))? {
            let item = item.map_err(|e| StoreError::io("listing", dir, e))?;
            let path = item.path();
            let Ok(name) = item.file_name().into_string() else {
                return Err(StoreError::NonUtf8Name {
                    tree_root: self.root.to_path_buf(),
                    path: path.strip_prefix(self.root).unwrap_or(&path).to_path_buf(),
                });
            };
            let relative = if relative.is_empty() {
                name.clone()
            } else {
                format!("{relative}/{name}")
            };
            if (self.exclude)(&relative) {
                continue;
            }
            let kind = self.entry(&path, &relative)?;
            entries.push(Entry { name, kind });
        }
        let tree = TreeObject::new(entries).map_err(|source| StoreError::InvalidEntry {
            path: dir.to_path_buf(),
            source,
        })?;
        self.store.add_tree_object(&tree)
    }

    fn entry(&self, path: &Path, relative: &str) -> Result<EntryKind, StoreError> {
        let metadata = fs::symlink_metadata(path)
            .map_err(|e| StoreError::io("reading metadata of", path, e))?;
        let file_type = metadata.file_type();
        if file_type.is_symlink() {
            let target =
                fs::read_link(path).map_err(|e| StoreError::io("reading the symlink", path, e))?;
            let target = target.into_os_string().into_string().map_err(|_| {
                StoreError::NonUtf8SymlinkTarget {
                    tree_root: self.root.to_path_buf(),
                    path: relative.into(),
                }
            })?;
            Ok(EntryKind::Symlink { target })
        } else if file_type.is_dir() {
            Ok(EntryKind::Directory {
                digest: self.directory(path, relative)?,
            })
        } else if file_type.is_file() {
            let (digest, size) = self.store.add_blob_from_file(path)?;
            Ok(EntryKind::File {
                digest,
                size,
                executable: metadata.permissions().mode() & 0o111 != 0,
            })
        } else {
            Err(StoreError::UnsupportedFileType {
                tree_root: self.root.to_path_buf(),
                path: relative.into(),
                found: describe(file_type),
            })
        }
    }
}

/// A file type as an error message names it ("found a {}").
fn describe(file_type: fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_file() {
        "regular file"
    } else if file_type.is_symlink() {
        "symlink"
    } else if file_type.is_fifo() {
        "fifo (named pipe)"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else {
        "file of unknown type"
    }
}
