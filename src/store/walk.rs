//! Hashing a directory into the store: every regular file becomes a blob, every directory a tree
//! object, bottom-up, and the root's tree digest names the whole. Symlinks are recorded, never
//! followed; anything else (fifo, socket, device) is refused. The rules are in `docs/store.md`.
//!
//! A source tree (the user's own files, trusted) can be hashed with a **stat cache**, as git's
//! index does: a file whose size, mtime, ctime, inode, device and mode are what they were when it
//! was last hashed, and whose mtime was more than a second older than that hashing, is not read
//! again. A file changed within the same second as the hashing (racy) is always re-read. A step's
//! `/out` is never hashed this way: it is untrusted, and read whole every time.
//!
//! A file known from the cache is not looked up in the store either: its directory's tree object
//! is. The store keeps a tree object only with every blob and tree under it (they are written
//! bottom-up, and gc keeps what a kept tree references), so a directory whose tree object is
//! there needs nothing more; for one whose tree object is not, each known blob is checked, and a
//! missing one is read again.
use std::cell::{Cell, RefCell};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::digest::{ActionDigest, BlobDigest, TreeDigest};

use super::listing::{self, Listings};
use super::{Entry, EntryKind, Store, StoreError, TreeObject};

pub(super) fn add_tree(
    store: &Store,
    dir: &Path,
    exclude: &(dyn Fn(&str) -> bool + Sync),
) -> Result<TreeDigest, StoreError> {
    walk(store, dir, exclude, None)
}

/// What the stat cache remembers of one file: its stat fields, and the blob it hashed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// The stat fields, without the blob.
    fn same_file(&self, other: &Stat) -> bool {
        (
            self.size,
            self.mtime_ns,
            self.ctime_ns,
            self.inode,
            self.device,
            self.mode,
        ) == (
            other.size,
            other.mtime_ns,
            other.ctime_ns,
            other.inode,
            other.device,
            other.mode,
        )
    }
}

/// The stat cache of one source directory, `v1/stat-cache/<sha256 of its absolute path>`, in a
/// compact binary form (read on every build, so it is not JSON): the magic line, the time the
/// hashing that wrote it started (i128 nanoseconds since the epoch), the number of files (u32),
/// then per file its path (u16 length, UTF-8 bytes), size, mtime, ctime, inode, device, mode and
/// blob digest (u64, i128, i128, u64, u64, u32, 32 bytes); all integers little-endian.
#[derive(Debug, Default)]
struct StatCache<'a> {
    hashed_at_ns: i128,
    /// Sorted by path (as written), for binary search: no hashing, no allocation per file.
    files: Vec<(&'a str, Stat)>,
}

const STAT_CACHE_MAGIC: &[u8] = b"sealroom-stat-cache-v2\n";

impl<'a> StatCache<'a> {
    /// The cache in `bytes`, or `None` when they are not one (an older format, damage).
    fn parse(bytes: &'a [u8]) -> Option<Self> {
        let mut input = bytes.strip_prefix(STAT_CACHE_MAGIC)?;
        let mut take = |n: usize| -> Option<&'a [u8]> {
            let (head, rest) = input.split_at_checked(n)?;
            input = rest;
            Some(head)
        };
        let hashed_at_ns = i128::from_le_bytes(take(16)?.try_into().ok()?);
        let count = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let mut files = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let length = u16::from_le_bytes(take(2)?.try_into().ok()?);
            let path = std::str::from_utf8(take(usize::from(length))?).ok()?;
            let stat = Stat {
                size: u64::from_le_bytes(take(8)?.try_into().ok()?),
                mtime_ns: i128::from_le_bytes(take(16)?.try_into().ok()?),
                ctime_ns: i128::from_le_bytes(take(16)?.try_into().ok()?),
                inode: u64::from_le_bytes(take(8)?.try_into().ok()?),
                device: u64::from_le_bytes(take(8)?.try_into().ok()?),
                mode: u32::from_le_bytes(take(4)?.try_into().ok()?),
                blob: BlobDigest::from_bytes(take(32)?.try_into().ok()?),
            };
            files.push((path, stat));
        }
        input.is_empty().then_some(StatCache {
            hashed_at_ns,
            files,
        })
    }

    /// The encoding `parse` reads, of `files` sorted by path; paths longer than 65535 bytes are
    /// left out (they are read on every build).
    fn encode(hashed_at_ns: i128, mut files: Vec<(String, Stat)>) -> Vec<u8> {
        files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let files: Vec<_> = files
            .iter()
            .filter_map(|(path, stat)| Some((u16::try_from(path.len()).ok()?, path, stat)))
            .collect();
        let mut bytes = Vec::with_capacity(STAT_CACHE_MAGIC.len() + 20 + files.len() * 140);
        bytes.extend_from_slice(STAT_CACHE_MAGIC);
        bytes.extend_from_slice(&hashed_at_ns.to_le_bytes());
        let count = u32::try_from(files.len()).unwrap_or(u32::MAX);
        bytes.extend_from_slice(&count.to_le_bytes());
        for (length, path, stat) in files.into_iter().take(count as usize) {
            bytes.extend_from_slice(&length.to_le_bytes());
            bytes.extend_from_slice(path.as_bytes());
            bytes.extend_from_slice(&stat.size.to_le_bytes());
            bytes.extend_from_slice(&stat.mtime_ns.to_le_bytes());
            bytes.extend_from_slice(&stat.ctime_ns.to_le_bytes());
            bytes.extend_from_slice(&stat.inode.to_le_bytes());
            bytes.extend_from_slice(&stat.device.to_le_bytes());
            bytes.extend_from_slice(&stat.mode.to_le_bytes());
            bytes.extend_from_slice(stat.blob.as_bytes());
        }
        bytes
    }
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
    exclude: &(dyn Fn(&str) -> bool + Sync),
) -> Result<TreeDigest, StoreError> {
    add_source_tree_counting(store, dir, exclude).map(|(tree, _)| tree)
}

/// [`add_source_tree`], and how many files it read.
fn add_source_tree_counting(
    store: &Store,
    dir: &Path,
    exclude: &(dyn Fn(&str) -> bool + Sync),
) -> Result<(TreeDigest, usize), StoreError> {
    let absolute = std::path::absolute(dir).map_err(|e| StoreError::io("resolving", dir, e))?;
    let key = ActionDigest::of(absolute.as_os_str().as_encoded_bytes());
    let path = store.stat_cache_dir().join(key.hex());
    // A cache that cannot be read is an empty one: everything is hashed.
    let bytes = fs::read(&path).unwrap_or_default();
    let old = StatCache::parse(&bytes).unwrap_or_default();
    let started = now_ns();
    let cache = StatCacheUse {
        old,
        new: RefCell::new(Vec::new()),
        read: Cell::new(0),
        known: Cell::new(0),
    };
    let tree = walk(store, dir, exclude, Some(&cache))?;
    let read = cache.read.get();
    // Rewritten when anything was read (a file re-read because it was racy is settled now, and
    // the new time says so; keeping the old one would keep it racy for ever) or a file is gone.
    if read > 0 || cache.known.get() != cache.old.files.len() {
        let bytes = StatCache::encode(started, cache.new.into_inner());
        // Best effort: a cache not written only costs the next build a re-read.
        let _ = crate::atomic::write(&path, &bytes, crate::atomic::Mode::Fixed(0o644));
    }
    Ok((tree, read))
}

struct StatCacheUse<'a> {
    old: StatCache<'a>,
    /// What the cache will hold: every file hashed or known this time.
    new: RefCell<Vec<(String, Stat)>>,
    /// Files read (not known from the cache).
    read: Cell<usize>,
    /// Files known from the cache.
    known: Cell<usize>,
}

impl StatCacheUse<'_> {
    /// The blob of the file at `relative` if it is known and certainly unchanged.
    fn known(&self, relative: &str, metadata: &fs::Metadata) -> Option<BlobDigest> {
        let files = &self.old.files;
        let index = files
            .binary_search_by(|(path, _)| (*path).cmp(relative))
            .ok()?;
        let known = &files[index].1;
        let now = Stat::of(metadata, known.blob);
        let settled = now.mtime_ns < self.old.hashed_at_ns - 1_000_000_000;
        (now.same_file(known) && settled).then_some(known.blob)
    }
}

fn walk(
    store: &Store,
    dir: &Path,
    exclude: &(dyn Fn(&str) -> bool + Sync),
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
        listings: RefCell::new(listing::list_tree(dir, exclude)),
        cache,
    };
    walk.directory(dir, "")
}

struct Walk<'a> {
    store: &'a Store,
    root: &'a Path,
    /// Every directory's entries, taken out as each is stored.
    listings: RefCell<Listings>,
    cache: Option<&'a StatCacheUse<'a>>,
}

/// A file of the directory being stored whose blob came from the stat cache.
struct Known {
    /// Its index in the new stat cache.
    cached: usize,
    path: std::path::PathBuf,
}

impl Walk<'_> {
    /// Stores the directory `dir` (at `relative` inside the root, `""` for the root itself) and
    /// everything under it that is not excluded.
    fn directory(&self, dir: &Path, relative: &str) -> Result<TreeDigest, StoreError> {
        let listed = self
            .listings
            .borrow_mut()
            .remove(relative)
            .expect("every directory under the root is listed")?;
        // Each entry, with where its file is when its blob came from the stat cache.
        let mut entries: Vec<(Entry, Option<Known>)> = Vec::with_capacity(listed.len());
        for item in listed {
            let path = dir.join(&item.name);
            let (kind, cached) = self.entry(&path, item.relative, &item.metadata)?;
            let known = cached.map(|cached| Known { cached, path });
            entries.push((
                Entry {
                    name: item.name,
                    kind,
                },
                known,
            ));
        }
        entries.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let (entries, known): (Vec<Entry>, Vec<Option<Known>>) = entries.into_iter().unzip();
        let mut tree = TreeObject::new(entries).map_err(|source| StoreError::InvalidEntry {
            path: dir.to_path_buf(),
            source,
        })?;
        if known.iter().all(Option::is_none) {
            return self.store.add_tree_object(&tree);
        }
        let digest = tree.digest();
        if self.store.has_tree(&digest) {
            return Ok(digest);
        }
        // Not stored as a whole: the blobs the cache named may be gone (gc), so each is checked.
        let cache = self.cache.expect("known files come from a cache");
        for (entry, known) in tree.entries.iter_mut().zip(&known) {
            let (EntryKind::File { digest, .. }, Some(known)) = (&mut entry.kind, known) else {
                continue;
            };
            if !self.store.has_blob(digest) {
                let (stored, _) = self.store.add_blob_from_file(&known.path)?;
                cache.read.set(cache.read.get() + 1);
                cache.new.borrow_mut()[known.cached].1.blob = stored;
                *digest = stored;
            }
        }
        self.store.add_tree_object(&tree)
    }

    /// The entry for `path`, and for a file whose blob came from the stat cache, its index in
    /// the new cache.
    fn entry(
        &self,
        path: &Path,
        relative: String,
        metadata: &fs::Metadata,
    ) -> Result<(EntryKind, Option<usize>), StoreError> {
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
            Ok((EntryKind::Symlink { target }, None))
        } else if file_type.is_dir() {
            let digest = self.directory(path, &relative)?;
            Ok((EntryKind::Directory { digest }, None))
        } else if file_type.is_file() {
            let known = self
                .cache
                .and_then(|cache| cache.known(&relative, metadata));
            let (digest, size) = match known {
                Some(digest) => (digest, metadata.len()),
                None => self.store.add_blob_from_file(path)?,
            };
            let mut cached = None;
            if let Some(cache) = self.cache {
                let counter = if known.is_some() {
                    &cache.known
                } else {
                    &cache.read
                };
                counter.set(counter.get() + 1);
                // What was read, with the stat taken before reading: a change while it was
                // read moves the ctime, and the next build reads it again.
                let stat = Stat::of(metadata, digest);
                let mut new = cache.new.borrow_mut();
                cached = known.map(|_| new.len());
                new.push((relative, stat));
            }
            let kind = EntryKind::File {
                digest,
                size,
                executable: metadata.permissions().mode() & 0o111 != 0,
            };
            Ok((kind, cached))
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
    fn a_chmod_is_noticed() {
        let (_work, store, src) = settled_source();
        let none = &|_: &str| false;
        let (first, _) = add_source_tree_counting(&store, &src, none).unwrap();
        fs::set_permissions(src.join("a.c"), fs::Permissions::from_mode(0o755)).unwrap();
        let (second, read) = add_source_tree_counting(&store, &src, none).unwrap();
        assert_eq!(read, 1);
        assert_ne!(second, first, "the execute bit counts");
    }

    #[test]
    fn blobs_collected_by_gc_are_read_and_stored_again() {
        let (work, store, src) = settled_source();
        drop(store);
        let exclusive = Store::open_exclusive(&work.path().join("store"), Duration::ZERO).unwrap();
        let store = exclusive.store();
        let none = &|_: &str| false;
        let (first, _) = add_source_tree_counting(store, &src, none).unwrap();
        // Nothing refers to a source's tree but a build's steps: gc takes all of it.
        exclusive.gc(Duration::ZERO).unwrap();
        let readme = BlobDigest::of(b"hi\n");
        assert!(!store.has_blob(&readme) && !store.has_tree(&first));
        let (second, read) = add_source_tree_counting(store, &src, none).unwrap();
        assert_eq!((second, read), (first, 3), "every file read again");
        assert!(store.has_blob(&readme) && store.has_tree(&first));
        assert!(store.lookup(&first, "lib/b.c").unwrap().is_some());
        let (_, read) = add_source_tree_counting(store, &src, none).unwrap();
        assert_eq!(read, 0);
    }

    #[test]
    fn a_damaged_stat_cache_is_an_empty_one() {
        let (_work, store, src) = settled_source();
        let none = &|_: &str| false;
        let (first, _) = add_source_tree_counting(&store, &src, none).unwrap();
        let caches: Vec<_> = fs::read_dir(store.stat_cache_dir())
            .unwrap()
            .map(|item| item.unwrap().path())
            .collect();
        assert_eq!(caches.len(), 1);
        let bytes = fs::read(&caches[0]).unwrap();
        for cut in [0, STAT_CACHE_MAGIC.len(), bytes.len() / 2, bytes.len() - 1] {
            fs::write(&caches[0], &bytes[..cut]).unwrap();
            let (tree, read) = add_source_tree_counting(&store, &src, none).unwrap();
            assert_eq!((tree, read), (first, 3), "cache cut at {cut} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        fs::write(&caches[0], &longer).unwrap();
        assert_eq!(add_source_tree_counting(&store, &src, none).unwrap().1, 3);
        assert_eq!(add_source_tree_counting(&store, &src, none).unwrap().1, 0);
    }
}
