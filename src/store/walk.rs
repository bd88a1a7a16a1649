//! Hashing a directory into the store: every regular file becomes a blob, every directory a tree
//! object, bottom-up, and the root's tree digest names the whole. Symlinks are recorded, never
//! followed; anything else (fifo, socket, device) is refused. The rules are in `docs/store.md`.
//!
//! A source tree (the user's own files, trusted) can be hashed with a **stat cache**, as git's
//! index does: a file whose size, mtime, ctime, inode, device and mode are what they were when it
//! was last hashed, and whose mtime was more than a second older than that hashing, is not read
//! again. A file changed within the same second as the hashing (racy) is always re-read. A step's
//! `/out` is never hashed this way: it is untrusted, and read whole every time.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::digest::{ActionDigest, BlobDigest, TreeDigest};

use super::{Entry, EntryKind, Store, StoreError, TreeObject};

pub(super) fn add_tree(
    store: &Store,
    dir: &Path,
    exclude: &dyn Fn(&str) -> bool,
) -> Result<TreeDigest, StoreError> {
    walk(store, dir, exclude, None)
}

/// What the stat cache remembers of one file: its stat fields, and the blob it hashed to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stat {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    inode: u64,
    device: u64,
    mode: u32,
    blob: BlobDigest,
}

impl Stat {
    fn of(metadata: &fs::Metadata, blob: BlobDigest) -> Self {
        Stat {
            size: metadata.len(),
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
            ctime_ns: i128::from(metadata.ctime()) * 1_000_000_000
                + i128::from(metadata.ctime_nsec()),
            inode: metadata.ino(),
            device: metadata.dev(),
            mode: metadata.mode(),
            blob,
        }
    }
}

/// The stat cache of one source directory: `v1/stat-cache/<sha256 of its absolute path>`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct StatCache {
    /// When the hashing that wrote it started, in nanoseconds since the epoch.
    hashed_at_ns: i128,
    files: BTreeMap<String, Stat>,
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_nanos() as i128)
        .unwrap_or(0)
}

/// [`add_tree`] for a source directory, with its stat cache.
pub(super) fn add_source_tree(
    store: &Store,
    dir: &Path,
    exclude: &dyn Fn(&str) -> bool,
) -> Result<TreeDigest, StoreError> {
    add_source_tree_counting(store, dir, exclude).map(|(tree, _)| tree)
}

/// [`add_source_tree`], and how many files it read.
fn add_source_tree_counting(
    store: &Store,
    dir: &Path,
    exclude: &dyn Fn(&str) -> bool,
) -> Result<(TreeDigest, usize), StoreError> {
    let absolute = std::path::absolute(dir).map_err(|e| StoreError::io("resolving", dir, e))?;
    let key = ActionDigest::of(absolute.as_os_str().as_encoded_bytes());
    let path = store.version_dir().join("stat-cache").join(key.hex());
    // A cache that cannot be read is an empty one: everything is hashed.
    let old: StatCache = fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let started = now_ns();
    let cache = StatCacheUse {
        old,
        new: RefCell::new(BTreeMap::new()),
        read: std::cell::Cell::new(0),
    };
    let tree = walk(store, dir, exclude, Some(&cache))?;
    let new = StatCache {
        hashed_at_ns: started,
        files: cache.new.into_inner(),
    };
    // Rewritten when anything was read: a file re-read because it was racy is settled now, and
    // the new time says so (keeping the old one would keep it racy for ever).
    if cache.read.get() > 0 || new.files != cache.old.files {
        let bytes = serde_json::to_vec(&new).expect("stat caches serialize");
        // Best effort: a cache not written only costs the next build a re-read.
        let _ = crate::atomic::write(&path, &bytes, crate::atomic::Mode::Fixed(0o644));
    }
    Ok((tree, cache.read.get()))
}

struct StatCacheUse {
    old: StatCache,
    new: RefCell<BTreeMap<String, Stat>>,
    /// Files read (not known from the cache).
    read: std::cell::Cell<usize>,
}

impl StatCacheUse {
    /// The blob of the file at `relative` if it is known and certainly unchanged.
    fn known(&self, store: &Store, relative: &str, metadata: &fs::Metadata) -> Option<BlobDigest> {
        let known = self.old.files.get(relative)?;
        let now = Stat::of(metadata, known.blob);
        let settled = now.mtime_ns < self.old.hashed_at_ns - 1_000_000_000;
        (now == *known && settled && store.has_blob(&known.blob)).then_some(known.blob)
    }
}

fn walk(
    store: &Store,
    dir: &Path,
    exclude: &dyn Fn(&str) -> bool,
    cache: Option<&StatCacheUse>,
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
        cache,
    };
    walk.directory(dir, "")
}

struct Walk<'a> {
    store: &'a Store,
    root: &'a Path,
    exclude: &'a dyn Fn(&str) -> bool,
    cache: Option<&'a StatCacheUse>,
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
            let known = self
                .cache
                .and_then(|cache| cache.known(self.store, relative, &metadata));
            let (digest, size) = match known {
                Some(digest) => (digest, metadata.len()),
                None => {
                    if let Some(cache) = self.cache {
                        cache.read.set(cache.read.get() + 1);
                    }
                    self.store.add_blob_from_file(path)?
                }
            };
            if let Some(cache) = self.cache {
                // What was read, with the stat taken before reading: a change while it was
                // read moves the ctime, and the next build reads it again.
                let stat = Stat::of(&metadata, digest);
                cache.new.borrow_mut().insert(relative.to_string(), stat);
            }
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn set_mtime(path: &Path, time: SystemTime) {
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    /// A source tree of three files last modified an hour ago.
    fn settled_tree(dir: &Path) {
        fs::create_dir_all(dir.join("lib")).unwrap();
        for (name, text) in [
            ("a.c", "int a;\n"),
            ("lib/b.c", "int b;\n"),
            ("README", "hi\n"),
        ] {
            fs::write(dir.join(name), text).unwrap();
            set_mtime(
                &dir.join(name),
                SystemTime::now() - Duration::from_secs(3600),
            );
        }
    }

    /// A store and a settled source tree beside it, in a temp dir kept alive by the first value.
    fn settled_source() -> (tempfile::TempDir, Store, std::path::PathBuf) {
        let work = tempfile::tempdir().unwrap();
        let store = Store::open(&work.path().join("store")).unwrap();
        let src = work.path().join("src");
        settled_tree(&src);
        (work, store, src)
    }

    #[test]
    fn an_unchanged_source_is_not_read_again_and_gives_the_same_tree() {
        let (_work, store, src) = settled_source();
        let none = &|_: &str| false;
        let (first, read) = add_source_tree_counting(&store, &src, none).unwrap();
        assert_eq!(read, 3);
        let (second, read) = add_source_tree_counting(&store, &src, none).unwrap();
        assert_eq!((second, read), (first, 0));
        assert_eq!(
            add_tree(&store, &src, none).unwrap(),
            first,
            "as without the cache"
        );
    }

    #[test]
    fn an_edit_that_keeps_size_and_mtime_is_noticed_by_its_ctime() {
        let (_work, store, src) = settled_source();
        let none = &|_: &str| false;
        let (first, _) = add_source_tree_counting(&store, &src, none).unwrap();
        let file = src.join("lib/b.c");
        let mtime = fs::metadata(&file).unwrap().modified().unwrap();
        fs::write(&file, "int c;\n").unwrap();
        set_mtime(&file, mtime);
        let (second, read) = add_source_tree_counting(&store, &src, none).unwrap();
        assert_eq!(read, 1, "only the edited file");
        assert_ne!(second, first);
        assert_eq!(second, add_tree(&store, &src, none).unwrap());
    }

    #[test]
    fn a_file_changed_in_the_second_it_was_hashed_is_read_again_until_it_settles() {
        let (_work, store, src) = settled_source();
        fs::write(src.join("fresh.c"), "new\n").unwrap(); // mtime: now
        let none = &|_: &str| false;
        add_source_tree_counting(&store, &src, none).unwrap();
        let (_, read) = add_source_tree_counting(&store, &src, none).unwrap();
        assert_eq!(read, 1, "the racy file, not the settled ones");
        // More than a second later, the file is settled: read once more, then not again.
        std::thread::sleep(Duration::from_millis(1100));
        let (_, read) = add_source_tree_counting(&store, &src, none).unwrap();
        assert_eq!(read, 1);
        let (_, read) = add_source_tree_counting(&store, &src, none).unwrap();
        assert_eq!(read, 0, "hashed more than a second after its last change");
    }

    #[test]
    fn a_chmod_or_a_removed_blob_is_noticed() {
        let (_work, store, src) = settled_source();
        let none = &|_: &str| false;
        let (first, _) = add_source_tree_counting(&store, &src, none).unwrap();
        fs::set_permissions(src.join("a.c"), fs::Permissions::from_mode(0o755)).unwrap();
        let (second, read) = add_source_tree_counting(&store, &src, none).unwrap();
        assert_eq!(read, 1);
        assert_ne!(second, first, "the execute bit counts");
        let readme = BlobDigest::of(b"hi\n");
        fs::remove_file(store.blob_path(&readme)).unwrap();
        let (_, read) = add_source_tree_counting(&store, &src, none).unwrap();
        assert_eq!(
            read, 1,
            "a blob gone from the store is read and stored again"
        );
        assert!(store.has_blob(&readme));
    }
}
