//! The content-addressed store: blobs named by their sha256, canonical tree objects, and
//! materializations of trees that steps mount (read-only) as inputs.
//!
//! Layout (versioned; documented in `docs/store.md`):
//!
//! ```text
//! <root>/CACHEDIR.TAG
//! <root>/v1/blobs/sha256/<hex>        file contents, read-only
//! <root>/v1/trees/sha256/<hex>        canonical tree objects (see `tree`)
//! <root>/v1/inputs/<tree hex>/        a tree checked out as steps see it, shared by steps
//! <root>/v1/actions/sha256/<hex>      the action cache (see `actions`)
//! <root>/v1/records/<hex>             each step's last record, for `sealroom explain`
//! <root>/v1/stat-cache/<hex>          per source directory, the stat of each file last hashed
//! <root>/v1/tmp/                      temp files and dirs, renamed into place when complete
//! <root>/v1/quarantine/<kind>/        entries `store verify` found corrupt, kept for inspection
//! <root>/v1/lock                      the store lock (see `lock`)
//! ```
//!
//! Every write goes to `tmp/` first and is renamed into place, so a crash leaves either nothing
//! or a whole, correct entry; an entry's name is always the digest of its content. Every handle
//! holds the store lock shared ([`Store::open`]); maintenance that deletes entries (`verify`,
//! `gc`) needs it exclusive ([`Store::open_exclusive`]). This module does no networking and knows
//! nothing of specs or containers.
//!
//! - `blob`: adding blobs (from a file or a reader, hashed while streaming) and copying them out.
//! - `walk`: hashing a directory into blobs and tree objects (`add_tree`).
//! - `checkout`: writing trees back out (shared checkouts, copies), all with the same modes and
//!   one fixed mtime, and removing read-only trees.
//! - `tree`: the canonical tree object and its encoding.
//! - `tar`: the one writer of deterministic tars (image layers, a remote engine's inputs).
//! - `actions`: the action cache, step definitions to output trees.
//! - `lock`: the shared/exclusive store lock.
//! - `usage`: counting entries and bytes (`store ls`).
//! - `verify`: re-hashing everything, quarantining what is corrupt (`store verify`).
//! - `gc`: removing what no recently used action entry or checkout reaches (`store gc`).

pub mod actions;
mod blob;
mod checkout;
pub mod gc;
mod listing;
pub mod lock;
pub mod tar;
pub mod tree;
mod untrusted;
pub mod usage;
pub mod verify;
mod walk;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::digest::{BlobDigest, TreeDigest};
use crate::error::{ExitCode, Failure};

pub use checkout::{MATERIALIZED_MTIME, remove_tree_force, verify_checkout};
pub use gc::GcReport;
pub use lock::{LockMode, StoreLock};
pub use tree::{Entry, EntryKind, TreeObject, TreeObjectError};
pub use usage::StoreUsage;
pub use verify::VerifyReport;

/// The directory under the root that holds this version of the layout.
pub const LAYOUT_VERSION: &str = "v1";

/// The standard cache directory tag (<https://bford.info/cachedir/>), so backup tools skip us.
const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by sealroom.\n\
# For information about cache directory tags, see https://bford.info/cachedir/\n";

/// The store's default location: `$XDG_CACHE_HOME/sealroom`, else `~/.cache/sealroom`.
pub fn default_root() -> PathBuf {
    default_root_from(std::env::var_os("XDG_CACHE_HOME"), std::env::home_dir())
}

/// `default_root` without the environment. The XDG spec says a relative `XDG_CACHE_HOME` is
/// invalid and must be ignored; without any home directory we fall back to the current one.
fn default_root_from(xdg_cache_home: Option<std::ffi::OsString>, home: Option<PathBuf>) -> PathBuf {
    match xdg_cache_home.map(PathBuf::from) {
        Some(cache) if cache.is_absolute() => cache.join("sealroom"),
        _ => home.unwrap_or_default().join(".cache").join("sealroom"),
    }
}

/// A store on disk. Cheap to clone; every method may be called from several threads and
/// several processes at once (writes are rename-into-place, and losing a race is not an error).
///
/// A handle holds the store lock (shared, or exclusive for maintenance) until its last clone is
/// dropped, so a build keeps `store gc` out for exactly as long as it uses the store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    lock: Arc<StoreLock>,
}

/// A store opened for maintenance: the lock is held exclusive, so no other sealroom process is
/// reading or adding entries, and `verify` and `gc` may move and delete them.
#[derive(Debug)]
pub struct ExclusiveStore {
    store: Store,
}

impl ExclusiveStore {
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl Store {
    /// Opens the store at `root`, creating the versioned layout and `CACHEDIR.TAG` if needed,
    /// and takes the store lock shared (waiting while `store gc` or `store verify` runs).
    /// The root is made absolute (checkouts are bind-mounted, which needs absolute paths).
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        Store::open_locked(root, StoreLock::shared)
    }

    /// Opens the store at `root` with the lock exclusive, waiting at most `wait` for the
    /// processes that hold it shared (running builds) to finish.
    pub fn open_exclusive(root: &Path, wait: Duration) -> Result<ExclusiveStore, StoreError> {
        let store = Store::open_locked(root, |path| StoreLock::exclusive(path, wait))?;
        Ok(ExclusiveStore { store })
    }

    /// How this handle holds the store lock.
    pub fn lock_mode(&self) -> LockMode {
        self.lock.mode()
    }

    fn open_locked(
        root: &Path,
        lock: impl FnOnce(&Path) -> Result<StoreLock, StoreError>,
    ) -> Result<Store, StoreError> {
        let root = std::path::absolute(root).map_err(|e| StoreError::io("resolving", root, e))?;
        create_private_root(&root)?;
        let version_dir = root.join(LAYOUT_VERSION);
        fs::create_dir_all(&version_dir)
            .map_err(|e| StoreError::io("creating", &version_dir, e))?;
        let lock = Arc::new(lock(&version_dir.join("lock"))?);
        let store = Store { root, lock };
        for dir in [
            store.blobs_dir(),
            store.trees_dir(),
            store.checkouts_dir(),
            store.actions_dir(),
            store.tmp_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(|e| StoreError::io("creating", &dir, e))?;
        }
        store.write_cachedir_tag()?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Hashes the directory tree at `dir` into the store (blobs and tree objects) and returns
    /// its digest. `exclude` is given each path relative to `dir` (with `/` separators).
    pub fn add_tree(
        &self,
        dir: &Path,
        exclude: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<TreeDigest, StoreError> {
        walk::add_tree(self, dir, exclude)
    }

    /// [`Store::add_tree`] for a source directory (the user's own, trusted files), with a stat
    /// cache: a file unchanged since it was last hashed (size, mtime, ctime, inode, device, mode)
    /// is not read again. Never for a step's output.
    ///
    /// A source holding the `signing_key` file (the same device and inode) or any file with a
    /// PEM private key in it (after `exclude`) is refused: its blob would be world-readable in
    /// the store and mounted in every step that names the source.
    pub fn add_source_tree(
        &self,
        dir: &Path,
        exclude: &(dyn Fn(&str) -> bool + Sync),
        signing_key: Option<&Path>,
    ) -> Result<TreeDigest, StoreError> {
        walk::add_source_tree(self, dir, exclude, signing_key)
    }

    /// A directory holding `tree` (files 0644/0755, one fixed mtime), made once and shared by
    /// every step that mounts it (read-only).
    pub fn materialize(&self, tree: &TreeDigest) -> Result<PathBuf, StoreError> {
        checkout::materialize(self, tree)
    }

    /// Writes `tree` to `dest`, which must not exist yet, as `materialize` does (files 0644 or
    /// 0755, directories 0755, one fixed mtime). For copying outputs out of the store.
    pub fn checkout(&self, tree: &TreeDigest, dest: &Path) -> Result<(), StoreError> {
        checkout::checkout(self, tree, dest)
    }

    /// Stores `tree` (already validated by `TreeObject::new`) and returns its digest.
    pub fn add_tree_object(&self, tree: &TreeObject) -> Result<TreeDigest, StoreError> {
        let bytes = tree.canonical_bytes();
        let digest = TreeDigest::of(&bytes);
        let dest = self.tree_path(&digest);
        if dest.is_file() {
            return Ok(digest);
        }
        let mut temp = self.temp_file("tree-")?;
        temp.write_all(&bytes)
            .map_err(|e| StoreError::io("writing", temp.path(), e))?;
        self.commit(temp, &dest)?;
        Ok(digest)
    }

    /// Stores the empty tree (a directory with nothing in it) and returns its digest: the
    /// output of an action-cache entry whose result is all in its record blob.
    pub fn add_empty_tree(&self) -> Result<TreeDigest, StoreError> {
        let empty = TreeObject::new(Vec::new()).expect("a tree with no entries is valid");
        self.add_tree_object(&empty)
    }

    /// The tree object stored under `digest`, checked against its name.
    pub fn read_tree(&self, digest: &TreeDigest) -> Result<TreeObject, StoreError> {
        let path = self.tree_path(digest);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::MissingTree {
                    digest: *digest,
                    path,
                });
            }
            Err(e) => return Err(StoreError::io("reading", &path, e)),
        };
        let found = TreeDigest::of(&bytes);
        if found != *digest {
            return Err(StoreError::CorruptTree {
                path,
                expected: *digest,
                found,
            });
        }
        TreeObject::from_canonical_bytes(&bytes)
            .map_err(|source| StoreError::InvalidTreeObject { path, source })
    }

    /// The entry at `path` (relative, `/`-separated) inside `root`, if there is one.
    ///
    /// Empty and `.` segments are ignored; `..` and absolute paths are an error. Symlinks are
    /// not followed: a path that goes through one (or through a file) has no entry. The empty
    /// path names `root` itself, as a directory entry with an empty name.
    pub fn lookup(&self, root: &TreeDigest, path: &str) -> Result<Option<Entry>, StoreError> {
        let segments: Vec<&str> = path
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        if path.starts_with('/') || segments.contains(&"..") {
            return Err(StoreError::InvalidLookupPath {
                path: path.to_string(),
            });
        }
        let mut current = Entry {
            name: String::new(),
            kind: EntryKind::Directory { digest: *root },
        };
        for segment in segments {
            let EntryKind::Directory { digest } = current.kind else {
                return Ok(None);
            };
            match self.read_tree(&digest)?.get(segment) {
                Some(entry) => current = entry.clone(),
                None => return Ok(None),
            }
        }
        Ok(Some(current))
    }

    /// Where the blob named `digest` lives (it may not exist).
    pub fn blob_path(&self, digest: &BlobDigest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Where the tree object named `digest` lives (it may not exist).
    pub fn tree_path(&self, digest: &TreeDigest) -> PathBuf {
        self.trees_dir().join(digest.hex())
    }

    /// Where `materialize` puts `tree` (it may not exist yet).
    pub fn checkout_path(&self, tree: &TreeDigest) -> PathBuf {
        self.checkouts_dir().join(tree.hex())
    }

    pub fn has_blob(&self, digest: &BlobDigest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn has_tree(&self, digest: &TreeDigest) -> bool {
        self.tree_path(digest).is_file()
    }

    /// A fresh temporary directory inside the store (same filesystem, so it can be renamed in).
    /// Dropping it removes it, unless it holds read-only directories: use `remove_tree_force`.
    pub fn temp_dir(&self) -> Result<tempfile::TempDir, StoreError> {
        let tmp = self.tmp_dir();
        tempfile::Builder::new()
            .prefix("dir-")
            .tempdir_in(&tmp)
            .map_err(|e| StoreError::io("creating a temporary directory in", &tmp, e))
    }

    /// `<root>/v1/actions/`: the action cache (see `actions`).
    pub fn actions_dir(&self) -> PathBuf {
        self.version_dir().join("actions")
    }

    fn version_dir(&self) -> PathBuf {
        self.root.join(LAYOUT_VERSION)
    }

    /// The stat caches of source directories (see `walk`).
    fn stat_cache_dir(&self) -> PathBuf {
        self.version_dir().join("stat-cache")
    }

    fn blobs_dir(&self) -> PathBuf {
        self.version_dir().join("blobs").join("sha256")
    }

    fn trees_dir(&self) -> PathBuf {
        self.version_dir().join("trees").join("sha256")
    }

    /// Shared checkouts. (`v1/checkouts/` held them before they had fixed modes and mtimes;
    /// `store gc` removes it.)
    fn checkouts_dir(&self) -> PathBuf {
        self.version_dir().join("inputs")
    }

    fn legacy_checkouts_dir(&self) -> PathBuf {
        self.version_dir().join("checkouts")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.version_dir().join("tmp")
    }

    fn quarantine_dir(&self) -> PathBuf {
        self.version_dir().join("quarantine")
    }

    /// A temp file in `tmp/`, removed when dropped unless committed.
    fn temp_file(&self, prefix: &str) -> Result<tempfile::NamedTempFile, StoreError> {
        let tmp = self.tmp_dir();
        tempfile::Builder::new()
            .prefix(prefix)
            .tempfile_in(&tmp)
            .map_err(|e| StoreError::io("creating a temporary file in", &tmp, e))
    }

    /// Makes a fully written temp file read-only, syncs it and renames it to `dest`. If `dest`
    /// appeared meanwhile (another process stored the same content), the rename replaces it
    /// with identical bytes, which is harmless.
    fn commit(&self, temp: tempfile::NamedTempFile, dest: &Path) -> Result<(), StoreError> {
        crate::atomic::commit(temp, dest, crate::atomic::Mode::Fixed(0o444))
            .map_err(|error| StoreError::io(error.action, error.path, error.source))
    }

    fn write_cachedir_tag(&self) -> Result<(), StoreError> {
        let dest = self.root.join("CACHEDIR.TAG");
        if dest.is_file() {
            return Ok(());
        }
        let mut temp = self.temp_file("cachedir-tag-")?;
        temp.write_all(CACHEDIR_TAG.as_bytes())
            .map_err(|e| StoreError::io("writing", temp.path(), e))?;
        self.commit(temp, &dest)
    }
}

/// Creates the store's root, if it is not there, with mode 0700: the store holds every source,
/// fetched tree and output as world-readable (0444) files, and steps need no path to it (their
/// inputs and `/out` are bind mounts, which the engine makes as root). An existing root keeps its
/// mode: a store shared read-only with another user is made so on purpose.
fn create_private_root(root: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    if root.is_dir() {
        return Ok(());
    }
    if let Some(parent) = root.parent() {
        fs::create_dir_all(parent).map_err(|e| StoreError::io("creating", parent, e))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(root) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && root.is_dir() => Ok(()),
        Err(e) => Err(StoreError::io("creating", root, e)),
    }
}

/// The path of `name` inside the directory at `relative` (both `/`-separated, relative to a
/// tree's root; `""` is the root itself).
fn join_relative(relative: &str, name: &str) -> String {
    if relative.is_empty() {
        name.to_string()
    } else {
        format!("{relative}/{name}")
    }
}

/// Everything that can go wrong in the store. Each variant says where, and what was expected
/// and found.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O error: {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something in a tree being added that a tree object cannot hold.
    #[error(
        "unsupported file type at `{path}` (in `{tree_root}`): expected a regular file, directory or symlink, found a {found}"
    )]
    UnsupportedFileType {
        tree_root: PathBuf,
        /// Relative to `tree_root`.
        path: PathBuf,
        found: &'static str,
    },
    #[error(
        "file name at `{path}` (in `{tree_root}`) is not valid UTF-8: tree entries must have UTF-8 names"
    )]
    NonUtf8Name { tree_root: PathBuf, path: PathBuf },
    #[error(
        "symlink target of `{path}` (in `{tree_root}`) is not valid UTF-8: tree entries must have UTF-8 symlink targets"
    )]
    NonUtf8SymlinkTarget { tree_root: PathBuf, path: PathBuf },
    /// A source tree holds a private key: the `--key` file, or a PEM private key.
    #[error(
        "source `{tree_root}` holds {what} at `{path}`: a private key must never be hashed into the store or mounted in a step\n  hint: move `{path}` out of the source directory, or add it to the source's `exclude`"
    )]
    PrivateKeyInSource {
        tree_root: PathBuf,
        /// Relative to `tree_root`.
        path: PathBuf,
        what: &'static str,
    },
    /// A tree a container wrote holds more bytes of files than its limit; reading stopped at
    /// the limit.
    #[error(
        "`{tree_root}` holds more than {limit} bytes of files (reading stopped at the limit, in `{path}`)"
    )]
    OutputLimit {
        tree_root: PathBuf,
        /// Relative to `tree_root`: the file being read when the limit was passed.
        path: PathBuf,
        limit: u64,
    },
    #[error("expected a directory at `{path}`, found a {found}")]
    NotADirectory { path: PathBuf, found: &'static str },
    #[error("invalid entry in `{path}`: {source}")]
    InvalidEntry {
        path: PathBuf,
        #[source]
        source: TreeObjectError,
    },
    #[error(
        "tree {digest} is not in the store (expected `{path}`); hint: run `sealroom store verify`"
    )]
    MissingTree { digest: TreeDigest, path: PathBuf },
    #[error(
        "blob {digest} is not in the store (expected `{path}`); hint: run `sealroom store verify`"
    )]
    MissingBlob { digest: BlobDigest, path: PathBuf },
    #[error(
        "corrupt tree object `{path}`: expected content with digest {expected}, found {found}; hint: run `sealroom store verify`"
    )]
    CorruptTree {
        path: PathBuf,
        expected: TreeDigest,
        found: TreeDigest,
    },
    #[error(
        "the checkout `{path}` of tree {tree} differs from its tree right after it was made: {difference}; hint: something changes the store's checkouts while sealroom runs; run `sealroom store verify`"
    )]
    CheckoutDiffers {
        path: PathBuf,
        tree: TreeDigest,
        difference: String,
    },
    #[error(
        "corrupt blob `{path}`: expected content with digest {expected}, found {found}; hint: run `sealroom store verify`"
    )]
    CorruptBlob {
        path: PathBuf,
        expected: BlobDigest,
        found: BlobDigest,
    },
    #[error("corrupt tree object `{path}`: {source}; hint: run `sealroom store verify`")]
    InvalidTreeObject {
        path: PathBuf,
        #[source]
        source: TreeObjectError,
    },
    /// Content added with an expected digest (a pinned download) hashed to something else.
    /// Nothing was stored.
    #[error(
        "content of {origin} does not match its pinned digest: expected {expected}, found {found} ({size} bytes)"
    )]
    DigestMismatch {
        origin: String,
        expected: BlobDigest,
        found: BlobDigest,
        size: u64,
    },
    /// Reading the source of a blob failed (a download, an archive member, ...).
    #[error("reading {origin}: {source}")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot check out into `{path}`: expected a path that does not exist yet, found an existing entry"
    )]
    DestinationExists { path: PathBuf },
    #[error(
        "cannot look up `{path}` in a tree: expected a relative `/`-separated path without `..`"
    )]
    InvalidLookupPath { path: String },
    /// The exclusive lock could not be taken in time (see `lock`).
    #[error(
        "the store is in use by another sealroom process (a running build); try again when it finishes (waited {waited_seconds}s for the lock `{lock}`)"
    )]
    Busy { lock: PathBuf, waited_seconds: u64 },
    /// `store verify` found corrupt or dangling entries (and has already quarantined them).
    #[error("{summary}")]
    VerificationFailed { summary: String },
}

impl StoreError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> StoreError {
        StoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl Failure for StoreError {
    /// Content the user gave us (a source tree, a step's output, a path) that the store cannot
    /// hold is bad input (1); so is a store whose files are missing or corrupt, since that is a
    /// damaged file on the user's disk rather than a bug, and `store verify` repairs it. A pinned
    /// digest that does not match is a failed verification (4).
    fn exit_code(&self) -> ExitCode {
        match self {
            StoreError::DigestMismatch { .. } | StoreError::VerificationFailed { .. } => {
                ExitCode::VerificationFailed
            }
            StoreError::Io { .. }
            | StoreError::UnsupportedFileType { .. }
            | StoreError::OutputLimit { .. }
            | StoreError::PrivateKeyInSource { .. }
            | StoreError::NonUtf8Name { .. }
            | StoreError::NonUtf8SymlinkTarget { .. }
            | StoreError::NotADirectory { .. }
            | StoreError::InvalidEntry { .. }
            | StoreError::MissingTree { .. }
            | StoreError::MissingBlob { .. }
            | StoreError::CorruptTree { .. }
            | StoreError::CheckoutDiffers { .. }
            | StoreError::CorruptBlob { .. }
            | StoreError::InvalidTreeObject { .. }
            | StoreError::Read { .. }
            | StoreError::DestinationExists { .. }
            | StoreError::InvalidLookupPath { .. }
            | StoreError::Busy { .. } => ExitCode::BadInput,
        }
    }
}

#[cfg(test)]
mod tests;
