//! The action cache: a step's action key, mapped to the output tree and log digest the step
//! produced. An unchanged step is a cache hit and starts no container.
//!
//! The key is the digest of the step's record (`sandbox::record::StepRecord::action_key`): the
//! store only keeps entries by it and knows nothing of what is in it. Entries live at
//! `v1/actions/sha256/<hex>`, written atomically. A hit is only trusted when the output tree it
//! names is still in the store.
//!
//! An entry's modification time is its last use: `action_put` writes it and every hit touches
//! it, so `store gc --keep-days N` keeps exactly the entries some build used within N days.

use crate::digest::{ActionDigest, BlobDigest, TreeDigest};

/// What the cache remembers of a step run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActionResult {
    pub output: TreeDigest,
    pub log: BlobDigest,
    /// The build (its invocation id) that ran the step and wrote this entry; absent in entries
    /// of older versions and of downloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation: Option<String>,
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
        let mut file = self.temp_file("action-")?;
        file.write_all(&serde_json::to_vec(result).expect("action results serialize"))
            .map_err(io_error("writing", &path))?;
        crate::atomic::commit(file, &path, crate::atomic::Mode::Fixed(0o644)).map_err(|error| {
            super::StoreError::Io {
                action: error.action,
                path: error.path,
                source: error.source,
            }
        })
    }
}

/// The record each step of each spec last ran with (or was found cached with), for
/// `sealroom explain`: `v1/records/<hex>`, named by the sha256 of the spec's and the step's
/// names, holding the record's canonical bytes. Advisory: a lost or damaged one only means
/// explain has no earlier record to compare with.
impl super::Store {
    fn last_record_path(&self, spec: &str, step: &str) -> std::path::PathBuf {
        let name = ActionDigest::of(format!("{spec}\0{step}").as_bytes());
        self.version_dir().join("records").join(name.hex())
    }

    /// The canonical bytes of the record `step` of `spec` last had, if any.
    pub fn last_record(&self, spec: &str, step: &str) -> Option<Vec<u8>> {
        std::fs::read(self.last_record_path(spec, step)).ok()
    }

    /// Remembers `record` (canonical bytes) as the last record of `step` of `spec`. Writes only
    /// when it differs from the one remembered, so an unchanged rebuild writes nothing.
    pub fn set_last_record(
        &self,
        spec: &str,
        step: &str,
        record: &[u8],
    ) -> Result<(), super::StoreError> {
        if self.last_record(spec, step).as_deref() == Some(record) {
            return Ok(());
        }
        let path = self.last_record_path(spec, step);
        crate::atomic::write(&path, record, crate::atomic::Mode::Fixed(0o644))
            .map_err(|error| super::StoreError::io(error.action, error.path, error.source))
    }
}
