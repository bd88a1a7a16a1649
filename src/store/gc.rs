//! `store gc`: remove everything that no recently used action entry or checkout reaches.
//!
//! Roots, by last use (an action entry's modification time, a checkout's access time; see
//! `actions` and `checkout`):
//! - action entries used (hit or written) within the last `keep` duration: their output trees,
//!   everything below them, and their log blobs when stored;
//! - checkouts used (materialized or mounted) within `keep`: their trees and everything below.
//!   Every input a step mounts is a checkout, so the source trees of recent builds stay.
//!
//! Everything else goes: older action entries and checkouts, unreachable blobs and trees,
//! `tmp/` leftovers older than an hour (all of `tmp/` when `keep` is zero) and quarantined
//! entries older than `keep`. With `keep` zero nothing is recent, so the store is emptied.
//!
//! Runs only on an [`ExclusiveStore`]: no build is running, so nothing a build is about to use
//! can be collected under it.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::digest::{BlobDigest, TreeDigest};

use super::actions::ActionResult;
use super::usage::{Usage, list, size_of};
use super::verify::{STALE_TMP_AGE, unix_seconds};
use super::{EntryKind, ExclusiveStore, Store, StoreError, remove_tree_force};

/// What `store gc` removed and kept.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GcReport {
    pub root: PathBuf,
    pub keep_days: u64,
    pub removed: Removed,
    pub kept: Kept,
    pub bytes_freed: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Removed {
    pub blobs: Usage,
    pub trees: Usage,
    pub checkouts: Usage,
    pub actions: Usage,
    pub tmp: Usage,
    pub quarantine: Usage,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Kept {
    /// Roots: entries used within `keep_days`.
    pub actions: u64,
    pub checkouts: u64,
    /// Reachable from the roots.
    pub trees: u64,
    pub blobs: u64,
}

impl ExclusiveStore {
    /// Collects everything not reachable from an action entry or checkout used within `keep`
    /// (see the module documentation).
    pub fn gc(&self, keep: Duration) -> Result<GcReport, StoreError> {
        let store = &self.store;
        let now = SystemTime::now();
        let cutoff = now.checked_sub(keep).unwrap_or(SystemTime::UNIX_EPOCH);
        let recent_time = |time: std::io::Result<SystemTime>| {
            keep > Duration::ZERO && time.is_ok_and(|time| time >= cutoff)
        };
        let recent = |metadata: &std::fs::Metadata| recent_time(metadata.modified());
        let mut removed = Removed::default();
        let mut kept = Kept::default();
        let mut root_trees = Vec::new();
        let mut live_blobs: HashSet<BlobDigest> = HashSet::new();

        for item in list(&store.action_entries_dir())? {
            let result = recent(&item.metadata)
                .then(|| std::fs::read(&item.path).ok())
                .flatten()
                .and_then(|bytes| serde_json::from_slice::<ActionResult>(&bytes).ok());
            match result {
                Some(result) => {
                    kept.actions += 1;
                    root_trees.push(result.output);
                    live_blobs.insert(result.log);
                }
                None => {
                    removed.actions.add(size_of(&item.path)?);
                    remove_tree_force(&item.path)?;
                }
            }
        }
        // Checkouts of an older sealroom (read-only modes, the time they were written).
        for item in list(&store.legacy_checkouts_dir())? {
            removed.checkouts.add(size_of(&item.path)?);
            remove_tree_force(&item.path)?;
        }
        let _ = std::fs::remove_dir(store.legacy_checkouts_dir());
        for item in list(&store.checkouts_dir())? {
            match TreeDigest::from_hex(&item.name) {
                Ok(tree) if item.metadata.is_dir() && recent_time(item.metadata.accessed()) => {
                    kept.checkouts += 1;
                    root_trees.push(tree);
                }
                _ => {
                    removed.checkouts.add(size_of(&item.path)?);
                    remove_tree_force(&item.path)?;
                }
            }
        }

        let live_trees = mark(store, root_trees, &mut live_blobs);
        for item in list(&store.trees_dir())? {
            match TreeDigest::from_hex(&item.name) {
                Ok(tree) if live_trees.contains(&tree) => kept.trees += 1,
                _ => {
                    removed.trees.add(size_of(&item.path)?);
                    remove_tree_force(&item.path)?;
                }
            }
        }
        for item in list(&store.blobs_dir())? {
            match BlobDigest::from_hex(&item.name) {
                Ok(blob) if live_blobs.contains(&blob) => kept.blobs += 1,
                _ => {
                    removed.blobs.add(size_of(&item.path)?);
                    remove_tree_force(&item.path)?;
                }
            }
        }

        removed.tmp = store.remove_stale_tmp(if keep.is_zero() {
            Duration::ZERO
        } else {
            STALE_TMP_AGE
        })?;
        // A quarantined entry's change time is when it was moved there.
        let cutoff_seconds = unix_seconds(cutoff);
        for kind in list(&store.quarantine_dir())? {
            for item in list(&kind.path)? {
                let quarantined_on = u64::try_from(item.metadata.ctime()).unwrap_or(0);
                if keep.is_zero() || quarantined_on < cutoff_seconds {
                    removed.quarantine.add(size_of(&item.path)?);
                    remove_tree_force(&item.path)?;
                }
            }
        }

        let bytes_freed = [
            removed.blobs,
            removed.trees,
            removed.checkouts,
            removed.actions,
            removed.tmp,
            removed.quarantine,
        ]
        .iter()
        .map(|usage| usage.bytes)
        .sum();
        Ok(GcReport {
            root: store.root.clone(),
            keep_days: keep.as_secs() / (24 * 60 * 60),
            removed,
            kept,
            bytes_freed,
        })
    }
}

/// Every tree reachable from `roots` (that is in the store), adding the blobs they reference
/// to `blobs`. A tree that cannot be read (missing or corrupt) is kept by name if present, but
/// its children are unknown: `store verify` deals with it.
fn mark(
    store: &Store,
    roots: Vec<TreeDigest>,
    blobs: &mut HashSet<BlobDigest>,
) -> HashSet<TreeDigest> {
    let mut live = HashSet::new();
    let mut stack = roots;
    while let Some(tree) = stack.pop() {
        if !live.insert(tree) {
            continue;
        }
        let Ok(object) = store.read_tree(&tree) else {
            continue;
        };
        for entry in object.entries {
            match entry.kind {
                EntryKind::File { digest, .. } => {
                    blobs.insert(digest);
                }
                EntryKind::Directory { digest } => stack.push(digest),
                EntryKind::Symlink { .. } => {}
            }
        }
    }
    live
}

impl Store {
    /// Removes the `tmp/` entries last modified more than `age` ago; returns what was removed.
    /// Only safe under the exclusive lock (a shared holder may be writing there).
    pub(super) fn remove_stale_tmp(&self, age: Duration) -> Result<Usage, StoreError> {
        let cutoff = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut removed = Usage::default();
        for item in list(&self.tmp_dir())? {
            let stale = age.is_zero() || item.metadata.modified().is_ok_and(|time| time < cutoff);
            if stale {
                removed.add(size_of(&item.path)?);
                remove_tree_force(&item.path)?;
            }
        }
        Ok(removed)
    }
}
