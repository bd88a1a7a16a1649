//! pip's hashed `requirements.txt` and the simple index (PEP 503 HTML, PEP 691 JSON) its files
//! are found in; the flat directory `pip install --no-index --find-links` reads (shared by the
//! uv and pylock formats). (To be written: the [J] pip helper.)

use std::path::Path;

use super::{LockError, LockSource, LockedFile, Verified};

/// One `name==version --hash=sha256:...` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The PEP 503 normalized name (`Foo_Bar` is `foo-bar`).
    pub name: String,
    pub version: String,
    pub hashes: Vec<[u8; 32]>,
    /// The 1-based line where the requirement starts.
    pub line: usize,
    /// The requirement as written, without its options: `six==1.16.0`.
    pub text: String,
}

/// A file a project page of the index lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFile {
    pub filename: String,
    /// Absolute: relative links are resolved against the page's URL.
    pub url: String,
    pub sha256: Option<[u8; 32]>,
}

/// The `Accept` header for a project page: PEP 691 JSON first, PEP 503 HTML as a fall-back.
pub const INDEX_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.latest+json;q=0.9, text/html;q=0.1";

pub fn parse_requirements(_lock: &LockSource<'_>) -> Result<Vec<Requirement>, LockError> {
    todo!("[J] pip helper")
}

/// `<index>/<normalized name>/`, the index URL given with or without its trailing slash.
pub fn project_page_url(_index: &str, _name: &str) -> String {
    todo!("[J] pip helper")
}

pub fn parse_index_page(
    _body: &[u8],
    _content_type: &str,
    _page_url: &str,
) -> Result<Vec<IndexFile>, String> {
    todo!("[J] pip helper")
}

pub fn choose(
    _requirement: &Requirement,
    _files: &[IndexFile],
    _lock: &LockSource<'_>,
) -> Result<Vec<LockedFile>, LockError> {
    todo!("[J] pip helper")
}

pub fn lay_out(_files: &[Verified<'_>], _root: &Path) -> Result<(), LockError> {
    todo!("[J] pip helper")
}
