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
    /// Its content holds a PEM private key (see [`PemScan`]).
    private_key: bool,
}

impl Stat {
    fn of(metadata: &fs::Metadata, blob: BlobDigest, private_key: bool) -> Self {
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
            private_key,
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
/// then per file its path (u16 length, UTF-8 bytes), size, mtime, ctime, inode, device, mode,
/// blob digest (u64, i128, i128, u64, u64, u32, 32 bytes) and whether it holds a PEM private key
/// (one byte, 0 or 1); all integers little-endian. (v2 had no private-key byte: a v2 cache is
/// no cache, so every file is read, and checked, once more.)
#[derive(Debug, Default)]
struct StatCache<'a> {
    hashed_at_ns: i128,
    /// Sorted by path (as written), for binary search: no hashing, no allocation per file.
    files: Vec<(&'a str, Stat)>,
}

const STAT_CACHE_MAGIC: &[u8] = b"sealroom-stat-cache-v3\n";

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
                private_key: match take(1)? {
                    [0] => false,
                    [1] => true,
                    _ => return None,
                },
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
        let mut bytes = Vec::with_capacity(STAT_CACHE_MAGIC.len() + 20 + files.len() * 141);
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
            bytes.push(u8::from(stat.private_key));
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

/// [`add_tree`] for a source directory, with its stat cache. A source holding `signing_key`
/// (the same file: device and inode) or any file with a PEM private key in it is refused, after
/// the stat cache is written (it remembers which files hold keys, so an unchanged file is not
/// read again to know).
pub(super) fn add_source_tree(
    store: &Store,
    dir: &Path,
    exclude: &(dyn Fn(&str) -> bool + Sync),
    signing_key: Option<&Path>,
) -> Result<TreeDigest, StoreError> {
    add_source_tree_checked(store, dir, exclude, signing_key).map(|(tree, _)| tree)
}

/// [`add_source_tree`] without a signing key, and how many files it read.
#[cfg(test)]
fn add_source_tree_counting(
    store: &Store,
    dir: &Path,
    exclude: &(dyn Fn(&str) -> bool + Sync),
) -> Result<(TreeDigest, usize), StoreError> {
    add_source_tree_checked(store, dir, exclude, None)
}

/// [`add_source_tree`], and how many files it read.
fn add_source_tree_checked(
    store: &Store,
    dir: &Path,
    exclude: &(dyn Fn(&str) -> bool + Sync),
    signing_key: Option<&Path>,
) -> Result<(TreeDigest, usize), StoreError> {
    let signing_key = match signing_key {
        Some(key) => {
            let metadata =
                fs::metadata(key).map_err(|e| StoreError::io("reading metadata of", key, e))?;
            Some((metadata.dev(), metadata.ino()))
        }
        None => None,
    };
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
        signing_key,
        keys: RefCell::new(Vec::new()),
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
    let mut keys = cache.keys.into_inner();
    keys.sort();
    if let Some((path, what)) = keys.into_iter().next() {
        return Err(StoreError::PrivateKeyInSource {
            tree_root: dir.to_path_buf(),
            path: path.into(),
            what,
        });
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
    /// The `--key` file's device and inode.
    signing_key: Option<(u64, u64)>,
    /// Files that are private keys: the path inside the root, and what they are.
    keys: RefCell<Vec<(String, &'static str)>>,
}

impl StatCacheUse<'_> {
    /// What the cache knows of the file at `relative` if it is certainly unchanged.
    fn known(&self, relative: &str, metadata: &fs::Metadata) -> Option<Stat> {
        let files = &self.old.files;
        let index = files
            .binary_search_by(|(path, _)| (*path).cmp(relative))
            .ok()?;
        let known = &files[index].1;
        let now = Stat::of(metadata, known.blob, known.private_key);
        let settled = now.mtime_ns < self.old.hashed_at_ns - 1_000_000_000;
        (now.same_file(known) && settled).then_some(*known)
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
        // A source with a key in it is refused: no tree object of it is stored (it would name
        // a blob that is not).
        if self
            .cache
            .is_some_and(|cache| !cache.keys.borrow().is_empty())
        {
            return Ok(tree.digest());
        }
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
            let signing_key = self
                .cache
                .is_some_and(|cache| cache.signing_key == Some((metadata.dev(), metadata.ino())));
            let (digest, size, private_key) = match (known, self.cache) {
                (Some(known), _) => (known.blob, metadata.len(), known.private_key),
                // Never read, never stored.
                (None, Some(_)) if signing_key => (BlobDigest::of(b""), metadata.len(), true),
                // A source file: checked for a private key as it is read.
                (None, Some(_)) => read_source_file(self.store, path)?,
                (None, None) => {
                    let (digest, size) = self.store.add_blob_from_file(path)?;
                    (digest, size, false)
                }
            };
            let mut cached = None;
            if let Some(cache) = self.cache {
                let counter = if known.is_some() {
                    &cache.known
                } else {
                    &cache.read
                };
                counter.set(counter.get() + 1);
                if signing_key {
                    cache
                        .keys
                        .borrow_mut()
                        .push((relative.clone(), "the --key file"));
                } else if private_key {
                    cache
                        .keys
                        .borrow_mut()
                        .push((relative.clone(), "a PEM private key"));
                }
                // What was read, with the stat taken before reading: a change while it was
                // read moves the ctime, and the next build reads it again.
                let stat = Stat::of(metadata, digest, private_key);
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

/// Stores the source file at `path`, as [`Store::add_blob_from_file`] does (hashed first, copied
/// only when the store lacks it), and says whether it holds a PEM private key: every byte read
/// is scanned on the way, so a changed file costs no extra read. A key found while hashing is
/// not stored (its digest is returned, for the stat cache).
fn read_source_file(store: &Store, path: &Path) -> Result<(BlobDigest, u64, bool), StoreError> {
    let mut scan = PemScan::default();
    let file = fs::File::open(path).map_err(|e| StoreError::io("opening", path, e))?;
    let mut reader = crate::digest::HashingReader::new(Scanned {
        inner: file,
        scan: &mut scan,
    });
    std::io::copy(&mut reader, &mut std::io::sink())
        .map_err(|e| StoreError::io("reading", path, e))?;
    let (_, digest, size): (_, BlobDigest, u64) = reader.finish();
    if scan.found || store.has_blob(&digest) {
        return Ok((digest, size, scan.found));
    }
    let file = fs::File::open(path).map_err(|e| StoreError::io("opening", path, e))?;
    let (digest, size) = store.add_blob_from_reader(
        Scanned {
            inner: file,
            scan: &mut scan,
        },
        &format!("`{}`", path.display()),
        None,
    )?;
    Ok((digest, size, scan.found))
}

/// Looks for the armour line of a PEM private key, `-----BEGIN <LABEL>PRIVATE KEY-----`, in
/// the bytes it is fed in pieces: PKCS#8 (`PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`), the
/// traditional `RSA`/`EC`/`DSA` forms, `OPENSSH PRIVATE KEY`, cosign's `ENCRYPTED SIGSTORE
/// PRIVATE KEY`. A line split between two pieces is found too.
#[derive(Default)]
struct PemScan {
    /// The end of the last piece (a marker may start there).
    carry: Vec<u8>,
    window: Vec<u8>,
    found: bool,
}

/// Enough for `-----BEGIN ` (11), a label of up to 64 bytes and `-----` (5).
const PEM_CARRY: usize = 80;

impl PemScan {
    fn feed(&mut self, piece: &[u8]) {
        if self.found || piece.is_empty() {
            return;
        }
        self.window.clear();
        self.window.extend_from_slice(&self.carry);
        self.window.extend_from_slice(piece);
        self.found = memchr::memmem::find_iter(&self.window, b"-----BEGIN ")
            .any(|at| is_private_key_label(&self.window[at + 11..]));
        let keep = self.window.len().min(PEM_CARRY);
        self.carry.clear();
        self.carry
            .extend_from_slice(&self.window[self.window.len() - keep..]);
    }
}

/// Whether `rest` (what follows `-----BEGIN `) starts with a label ending in `PRIVATE KEY`
/// and then `-----`.
fn is_private_key_label(rest: &[u8]) -> bool {
    let label = rest
        .iter()
        .take(64)
        .take_while(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit() || **byte == b' ')
        .count();
    rest[..label].ends_with(b"PRIVATE KEY") && rest[label..].starts_with(b"-----")
}

/// A reader whose bytes are fed to a [`PemScan`] as they pass.
struct Scanned<'a, R> {
    inner: R,
    scan: &'a mut PemScan,
}

impl<R: std::io::Read> std::io::Read for Scanned<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.scan.feed(&buffer[..n]);
        Ok(n)
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

    /// Review item 5: the README flow put `release.key` next to the spec, in a source at
    /// `path = "."`, so the signing key became a world-readable blob mounted in every step.
    #[test]
    fn a_source_holding_a_pem_private_key_is_refused_naming_it_until_it_is_excluded() {
        for label in [
            "PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
            "RSA PRIVATE KEY",
            "EC PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
            "ENCRYPTED SIGSTORE PRIVATE KEY",
        ] {
            let (_work, store, src) = settled_source();
            fs::create_dir(src.join("config")).unwrap();
            fs::write(
                src.join("config/deploy.pem"),
                format!("-----BEGIN {label}-----\nMIGHAgEAMBMGByqGSM49\n-----END {label}-----\n"),
            )
            .unwrap();
            let none = &|_: &str| false;
            let error = add_source_tree(&store, &src, none, None).unwrap_err();
            let stored = |dir: std::path::PathBuf| fs::read_dir(dir).unwrap().count();
            assert_eq!(stored(store.trees_dir()), 0, "{label}: tree objects stored");
            let key = fs::read(src.join("config/deploy.pem")).unwrap();
            assert!(
                !store.has_blob(&BlobDigest::of(&key)),
                "{label}: the key's blob"
            );
            assert_eq!(
                error.to_string(),
                format!(
                    "source `{}` holds a PEM private key at `config/deploy.pem`: a private key must never be hashed into the store or mounted in a step\n  hint: move `config/deploy.pem` out of the source directory, or add it to the source's `exclude`",
                    src.display()
                ),
                "{label}"
            );
            let excluded = &|relative: &str| relative == "config/deploy.pem";
            add_source_tree(&store, &src, excluded, None).unwrap();
        }
    }

    #[test]
    fn public_keys_and_mere_mentions_of_private_keys_are_not_refused() {
        let (_work, store, src) = settled_source();
        fs::write(
            src.join("release.pub"),
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYI\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        fs::write(
            src.join("notes.md"),
            "keys start with `-----BEGIN <label>` and a PRIVATE KEY label\n",
        )
        .unwrap();
        add_source_tree(&store, &src, &|_| false, None).unwrap();
    }

    #[test]
    fn the_signing_key_file_is_refused_under_any_name_and_content() {
        let (work, store, src) = settled_source();
        let key = work.path().join("outside.key");
        fs::write(&key, "not even PEM").unwrap();
        fs::hard_link(&key, src.join("innocent.txt")).unwrap();
        let error = add_source_tree(&store, &src, &|_| false, Some(&key)).unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "source `{}` holds the --key file at `innocent.txt`",
                src.display()
            )),
            "{error}"
        );
        // The same key kept outside the source is fine.
        fs::remove_file(src.join("innocent.txt")).unwrap();
        add_source_tree(&store, &src, &|_| false, Some(&key)).unwrap();
    }

    #[test]
    fn the_stat_cache_remembers_a_private_key_and_older_caches_are_checked_again() {
        let (_work, store, src) = settled_source();
        fs::write(
            src.join("id_ed25519"),
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        )
        .unwrap();
        set_mtime(
            &src.join("id_ed25519"),
            SystemTime::now() - Duration::from_secs(3600),
        );
        let none = &|_: &str| false;
        assert!(add_source_tree(&store, &src, none, None).is_err());
        let caches: Vec<_> = fs::read_dir(store.stat_cache_dir())
            .unwrap()
            .map(|item| item.unwrap().path())
            .collect();
        let bytes = fs::read(&caches[0]).unwrap();
        let cache = StatCache::parse(&bytes).unwrap();
        let remembered: Vec<_> = cache
            .files
            .iter()
            .map(|(path, stat)| (*path, stat.private_key))
            .collect();
        assert_eq!(
            remembered,
            [
                ("README", false),
                ("a.c", false),
                ("id_ed25519", true),
                ("lib/b.c", false)
            ]
        );
        // Known from the cache, and still refused.
        assert!(matches!(
            add_source_tree(&store, &src, none, None),
            Err(StoreError::PrivateKeyInSource { .. })
        ));
        // A v2 cache (no private-key byte) is no cache: every file is read and checked again.
        let mut old = b"sealroom-stat-cache-v2\n".to_vec();
        old.extend_from_slice(&bytes[STAT_CACHE_MAGIC.len()..]);
        assert!(StatCache::parse(&old).is_none());
    }

    #[test]
    fn a_private_key_line_split_between_reads_is_found() {
        let text = b"junk\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n";
        for piece in [1, 3, 7, 11, 20] {
            let mut scan = PemScan::default();
            for chunk in text.chunks(piece) {
                scan.feed(chunk);
            }
            assert!(scan.found, "pieces of {piece} bytes");
        }
        let mut scan = PemScan::default();
        scan.feed(b"-----BEGIN CERTIFICATE-----\n-----BEGIN PRIVATE KEY");
        scan.feed(b" INFO-----\n");
        assert!(!scan.found);
    }
}
