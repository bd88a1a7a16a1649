//! The canonical tree object: what a directory is, as bytes, so that its digest is stable.
//! Documented in `docs/store.md`.
use crate::digest::{BlobDigest, TreeDigest};

/// One directory level: its entries sorted by name (byte order).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TreeObject {
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub name: String,
    #[serde(flatten)]
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EntryKind {
    File {
        digest: BlobDigest,
        size: u64,
        executable: bool,
    },
    Symlink {
        target: String,
    },
    Directory {
        digest: TreeDigest,
    },
}
