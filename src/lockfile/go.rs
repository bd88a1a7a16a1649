//! `go.sum` and a GOPROXY directory (`file://`) for `go build` with the network off.
//! (To be written: the [J] go helper.)

use std::path::Path;

use super::{LayoutLimits, LockError, LockSource, LockedFile, Verified};

/// Every `h1:` line of `go.sum`, each a file under `proxy` (a GOPROXY URL).
pub fn parse(_lock: &LockSource<'_>, _proxy: &str) -> Result<Vec<LockedFile>, LockError> {
    todo!("[J] go helper")
}

/// Checks a downloaded zip or go.mod against its `h1:` (Go's dirhash Hash1).
pub fn verify(_file: &LockedFile, _path: &Path, _limits: &LayoutLimits) -> Result<(), LockError> {
    todo!("[J] go helper")
}

pub fn lay_out(
    _files: &[Verified<'_>],
    _root: &Path,
    _limits: &LayoutLimits,
) -> Result<(), LockError> {
    todo!("[J] go helper")
}
