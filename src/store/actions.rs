//! The action cache: a step's full definition, hashed into an [`ActionDigest`], mapped to the
//! output tree and log digest the step produced. An unchanged step is a cache hit and starts no
//! container.
//!
//! The key is the sha256 of a canonical, versioned JSON encoding of [`ActionKey`] (fields in
//! declaration order, maps sorted, no whitespace). Anything that can change a step's output
//! belongs in it; anything that cannot (the step's name, its artifact list) stays out, so that
//! renaming a step does not rebuild it. Entries live at `v1/actions/sha256/<hex>`, written
//! atomically. A hit is only trusted when the output tree it names is still in the store.
//!
//! An entry's modification time is its last use: `action_put` writes it and every hit touches
//! it, so `store gc --keep-days N` keeps exactly the entries some build used within N days.

use std::collections::BTreeMap;

use crate::digest::{ActionDigest, BlobDigest, ImageDigest, TreeDigest};

/// Bumped whenever the meaning of a key changes, so old entries stop matching. v2: the scratch
/// directories became executable and `/build` the working directory; inputs are 0644/0755 with
/// one fixed mtime.
pub const ACTION_KEY_VERSION: &str = "sealroom-action-v2";

/// Everything that goes into a step's action key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ActionKey<'a> {
    pub version: &'static str,
    pub image: ImageDigest,
    pub argv: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub workdir: &'a str,
    pub user: &'a str,
    pub network: &'static str,
    /// Input name (its mount point) to tree digest.
    pub inputs: BTreeMap<&'a str, TreeDigest>,
    /// Resource limits, as the sandbox applies them.
    pub limits: BTreeMap<&'a str, String>,
}

impl ActionKey<'_> {
    pub fn digest(&self) -> ActionDigest {
        ActionDigest::of(&serde_json::to_vec(self).expect("action keys serialize"))
    }
}

/// What the cache remembers of a step run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActionResult {
    pub output: TreeDigest,
    pub log: BlobDigest,
}

impl super::Store {
    /// Where the entry for `key` lives (it may not exist).
    pub fn action_path(&self, key: &ActionDigest) -> std::path::PathBuf {
        self.action_entries_dir().join(key.hex())
    }

    /// `<root>/v1/actions/sha256/`: one file per entry, named by the key's hex.
    pub(super) fn action_entries_dir(&self) -> std::path::PathBuf {
        self.actions_dir().join("sha256")
    }

    /// The cached result of the action `key`, if there is one whose output tree is still in
    /// the store. An entry that cannot be read or parsed counts as a miss (the step reruns and
    /// overwrites it). A hit touches the entry's modification time, which records its last use
    /// for `store gc`.
    pub fn action_get(&self, key: &ActionDigest) -> Option<ActionResult> {
        use std::io::Read;
        let mut file = std::fs::File::open(self.action_path(key)).ok()?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        let result: ActionResult = serde_json::from_slice(&bytes).ok()?;
        self.read_tree(&result.output).ok()?;
        // Best effort: a store shared read-only with another user still gives hits.
        let _ = file.set_modified(std::time::SystemTime::now());
        Some(result)
    }

    /// Records `result` for `key`, atomically (temp file, fsync, rename).
    pub fn action_put(
        &self,
        key: &ActionDigest,
        result: &ActionResult,
    ) -> Result<(), super::StoreError> {
        use std::io::Write;
        let path = self.action_path(key);
        let directory = path.parent().expect("action paths have a parent");
        let io_error = |action: &'static str, path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| super::StoreError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(directory).map_err(io_error("creating", directory))?;
        let tmp = self.root().join("v1/tmp");
        let mut file = tempfile::NamedTempFile::new_in(&tmp)
            .map_err(io_error("creating a temp file in", &tmp))?;
        file.write_all(&serde_json::to_vec(result).expect("action results serialize"))
            .and_then(|()| file.as_file().sync_all())
            .map_err(io_error("writing", &path))?;
        file.persist(&path).map_err(|error| super::StoreError::Io {
            action: "renaming into place",
            path: path.clone(),
            source: error.error,
        })?;
        Ok(())
    }
}
