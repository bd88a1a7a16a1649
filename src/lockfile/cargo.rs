//! `Cargo.lock` (v3, v4) and the vendor directory `cargo build --offline` reads through a
//! source replacement. (To be written: the [J] cargo helper.)

use std::path::Path;

use super::{LayoutLimits, LockError, LockSource, LockedFile, Verified};

/// A registry package of the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crate {
    pub name: String,
    pub version: String,
    /// `registry+<index url>` or `sparse+<index url>`.
    pub source: String,
    /// The sha256 of the `.crate`.
    pub checksum: [u8; 32],
    pub line: usize,
}

pub fn parse(_lock: &LockSource<'_>) -> Result<Vec<Crate>, LockError> {
    todo!("[J] cargo helper")
}

/// The index URL of a `source` (without `registry+`/`sparse+`), ending in `/`.
pub fn index_url(_source: &str) -> String {
    todo!("[J] cargo helper")
}

/// Where the crate is downloaded from, by the index's `config.json` (`dl`, with or without
/// `{crate}`-style markers).
pub fn download_url(_config_json: &[u8], _krate: &Crate) -> Result<String, String> {
    todo!("[J] cargo helper")
}

pub fn locked_file(_krate: &Crate, _url: String) -> LockedFile {
    todo!("[J] cargo helper")
}

pub fn lay_out(
    _files: &[Verified<'_>],
    _root: &Path,
    _mount: &str,
    _limits: &LayoutLimits,
) -> Result<(), LockError> {
    todo!("[J] cargo helper")
}
