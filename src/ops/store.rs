//! `sealroom store ls|verify|gc`: inspect, re-hash and collect the local store. Each function
//! opens the store with the lock it needs and returns the store module's report; the CLI prints
//! it. `ls` only reads, so it shares the store with running builds; `verify` and `gc` move and
//! delete entries, so they wait (at most `wait`) for the store to be free. Before `verify` and
//! `gc`, [`remove_leftover_containers`] stops what killed builds left running (their `/out` is
//! in the store's `tmp/`), if the engine answers.

use std::path::Path;
use std::time::Duration;

use crate::store::{GcReport, Store, StoreError, StoreUsage, VerifyReport};

/// Removes the containers (and scratch volumes) of killed builds and those past their deadline,
/// when the container engine is reachable; an unreachable engine is not an error here (the
/// store commands do not need it). How many were removed, or `None` if the engine was not
/// asked.
pub async fn remove_leftover_containers() -> Option<usize> {
    crate::sandbox::docker::remove_leftovers_if_reachable().await
}

/// Entries and bytes of every kind the store holds.
pub fn ls(root: &Path) -> Result<StoreUsage, StoreError> {
    Store::open(root)?.usage()
}

/// Re-hashes everything, quarantines corrupt entries and removes what depended on them. The
/// report says what was found; `VerifyReport::failure` turns a non-healthy one into the error
/// the command exits with.
pub fn verify(root: &Path, wait: Duration) -> Result<VerifyReport, StoreError> {
    Store::open_exclusive(root, wait)?.verify()
}

/// Removes everything no action entry or checkout used within `keep_days` reaches.
pub fn gc(root: &Path, keep_days: u32, wait: Duration) -> Result<GcReport, StoreError> {
    let keep = Duration::from_secs(u64::from(keep_days) * 24 * 60 * 60);
    Store::open_exclusive(root, wait)?.gc(keep)
}
