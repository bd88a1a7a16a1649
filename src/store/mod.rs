//! The content-addressed store: blobs named by their sha256, canonical tree objects, and
//! read-only materializations of trees that steps mount as inputs.
//!
//! Layout (versioned; documented in `docs/store.md`):
//!
//! ```text
//! <root>/CACHEDIR.TAG
//! <root>/v1/blobs/sha256/<hex>        file contents, read-only
//! <root>/v1/trees/sha256/<hex>        canonical tree objects (see `tree`)
//! <root>/v1/checkouts/<tree hex>/     a tree materialized read-only, shared by steps
//! <root>/v1/tmp/                      temp files and dirs, renamed into place when complete
//! ```
//!
//! Every write goes to `tmp/` first and is renamed into place, so a crash leaves either nothing
//! or a whole, correct entry; an entry's name is always the digest of its content. This module
//! does no networking and knows nothing of specs or containers.

pub mod tree;

use std::path::{Path, PathBuf};

use crate::digest::{BlobDigest, TreeDigest};
use crate::error::ExitCode;

pub use tree::{Entry, EntryKind, TreeObject};

/// The store's default location: `$XDG_CACHE_HOME/sealroom`, else `~/.cache/sealroom`.
pub fn default_root() -> PathBuf {
    unimplemented!("store helper")
}

pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the store at `root`, creating the versioned layout and `CACHEDIR.TAG` if needed.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let _ = root;
        unimplemented!("store helper")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Hashes the directory tree at `dir` into the store (blobs and tree objects) and returns
    /// its digest. `exclude` is given each path relative to `dir` (with `/` separators).
    pub fn add_tree(&self, dir: &Path, exclude: &dyn Fn(&str) -> bool) -> Result<TreeDigest, StoreError> {
        let _ = (dir, exclude);
        unimplemented!("store helper")
    }

    /// A directory holding `tree`, read-only, made once and shared by every step that mounts it.
    pub fn materialize(&self, tree: &TreeDigest) -> Result<PathBuf, StoreError> {
        let _ = tree;
        unimplemented!("store helper")
    }

    /// The tree object stored under `digest`.
    pub fn read_tree(&self, digest: &TreeDigest) -> Result<TreeObject, StoreError> {
        let _ = digest;
        unimplemented!("store helper")
    }

    /// The entry at `path` (relative, `/`-separated) inside `root`, if there is one.
    pub fn lookup(&self, root: &TreeDigest, path: &str) -> Result<Option<Entry>, StoreError> {
        let _ = (root, path);
        unimplemented!("store helper")
    }

    /// Where the blob named `digest` lives (it may not exist).
    pub fn blob_path(&self, digest: &BlobDigest) -> PathBuf {
        let _ = digest;
        unimplemented!("store helper")
    }

    /// A fresh temporary directory inside the store (same filesystem, so it can be renamed in).
    pub fn temp_dir(&self) -> Result<tempfile::TempDir, StoreError> {
        unimplemented!("store helper")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O error: {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::BadInput
    }
}
