//! The canonical tree object: what a directory is, as bytes, so that its digest is stable.
//! Documented in `docs/store.md` (with a worked example checked by `tests/store_docs.rs`).
//!
//! A tree object is one directory level. Its canonical encoding is compact JSON with the entries
//! sorted by name in byte order and the fields in the order declared below; the tree digest is
//! the sha256 of those bytes. This module owns the encoding and the rules an entry name must
//! follow; it does no I/O (walking a directory and storing objects is `store`'s job).
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

impl TreeObject {
    /// A tree object from entries in any order; they are sorted by name (byte order).
    /// Fails on a name that is not a single path segment or that appears twice.
    pub fn new(mut entries: Vec<Entry>) -> Result<TreeObject, TreeObjectError> {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let tree = TreeObject { entries };
        tree.validate()?;
        Ok(tree)
    }

    /// The canonical encoding: compact JSON, entries sorted, fields in declaration order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a tree object always serializes")
    }

    /// The sha256 of the canonical encoding.
    pub fn digest(&self) -> TreeDigest {
        TreeDigest::of(&self.canonical_bytes())
    }

    /// Parses a stored tree object and checks the rules `new` enforces, so that a tree read back
    /// can be materialized without a name escaping its directory.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<TreeObject, TreeObjectError> {
        let tree: TreeObject =
            serde_json::from_slice(bytes).map_err(|e| TreeObjectError::Malformed(e.to_string()))?;
        tree.validate()?;
        if tree.canonical_bytes() != bytes {
            return Err(TreeObjectError::NotCanonical);
        }
        Ok(tree)
    }

    /// The entry named `name` at this level.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|entry| entry.name.as_str().cmp(name))
            .ok()
            .map(|index| &self.entries[index])
    }

    fn validate(&self) -> Result<(), TreeObjectError> {
        for entry in &self.entries {
            check_entry_name(&entry.name)?;
        }
        for pair in self.entries.windows(2) {
            match pair[0].name.cmp(&pair[1].name) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    return Err(TreeObjectError::DuplicateName(pair[0].name.clone()));
                }
                std::cmp::Ordering::Greater => {
                    return Err(TreeObjectError::Unsorted(pair[1].name.clone()));
                }
            }
        }
        Ok(())
    }
}

/// An entry name is one path segment: not empty, not `.` or `..`, no `/` and no NUL byte.
pub fn check_entry_name(name: &str) -> Result<(), TreeObjectError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(TreeObjectError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// Why a tree object is not valid. Wrapped by `StoreError`, which adds where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeObjectError {
    #[error(
        "invalid entry name `{0}`: expected a single path segment (not empty, `.` or `..`, no `/` or NUL)"
    )]
    InvalidName(String),
    #[error("entry name `{0}` appears twice")]
    DuplicateName(String),
    #[error("entries are not sorted by name in byte order (at `{0}`)")]
    Unsorted(String),
    #[error("not a tree object: {0}")]
    Malformed(String),
    #[error("not in canonical form (compact JSON, fields in the documented order)")]
    NotCanonical,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content: &[u8], executable: bool) -> Entry {
        Entry {
            name: name.to_string(),
            kind: EntryKind::File {
                digest: BlobDigest::of(content),
                size: content.len() as u64,
                executable,
            },
        }
    }

    #[test]
    fn encoding_is_compact_sorted_and_in_declared_field_order() {
        let tree = TreeObject::new(vec![
            Entry {
                name: "link".to_string(),
                kind: EntryKind::Symlink {
                    target: "a".to_string(),
                },
            },
            file("a", b"", false),
        ])
        .unwrap();
        let text = String::from_utf8(tree.canonical_bytes()).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"entries":[{"name":"a","type":"file","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0,"executable":false},"#,
                r#"{"name":"link","type":"symlink","target":"a"}]}"#
            )
        );
        assert_eq!(
            TreeObject::from_canonical_bytes(text.as_bytes()).unwrap(),
            tree
        );
    }

    #[test]
    fn names_sort_by_bytes_not_by_locale() {
        let tree = TreeObject::new(vec![
            file("b", b"", false),
            file("B", b"", false),
            file("é", b"", false),
        ])
        .unwrap();
        let names: Vec<&str> = tree.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["B", "b", "é"]);
        assert!(tree.get("b").is_some());
        assert!(tree.get("c").is_none());
    }

    #[test]
    fn rejects_names_that_are_not_one_segment_and_duplicates() {
        for bad in ["", ".", "..", "a/b", "nul\0"] {
            assert_eq!(
                TreeObject::new(vec![file(bad, b"", false)]).unwrap_err(),
                TreeObjectError::InvalidName(bad.to_string())
            );
        }
        assert_eq!(
            TreeObject::new(vec![file("a", b"", false), file("a", b"x", false)]).unwrap_err(),
            TreeObjectError::DuplicateName("a".to_string())
        );
    }

    #[test]
    fn parsing_rejects_unsorted_and_non_canonical_bytes() {
        let unsorted = br#"{"entries":[{"name":"b","type":"symlink","target":"x"},{"name":"a","type":"symlink","target":"x"}]}"#;
        assert_eq!(
            TreeObject::from_canonical_bytes(unsorted).unwrap_err(),
            TreeObjectError::Unsorted("a".to_string())
        );
        let spaced = br#"{"entries": []}"#;
        assert_eq!(
            TreeObject::from_canonical_bytes(spaced).unwrap_err(),
            TreeObjectError::NotCanonical
        );
        let escaping = br#"{"entries":[{"name":"../x","type":"symlink","target":"x"}]}"#;
        assert_eq!(
            TreeObject::from_canonical_bytes(escaping).unwrap_err(),
            TreeObjectError::InvalidName("../x".to_string())
        );
    }
}
