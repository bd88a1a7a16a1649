//! The build spec: the validated model, and `load`, which is the only way to make one.
//!
//! `raw.rs` mirrors the TOML with serde (with spans); `load` turns that mirror into the types
//! below and rejects anything a build could trip over later: an unpinned image, duplicate names,
//! an input naming nothing, a cycle, an absolute or escaping path, an empty `run`. Every error
//! carries the spec's path and the line and column of the offending value.
//!
//! This module reads the spec file only; it never touches the store, the network or Docker.
//! The format is documented in `docs/spec.md`.

pub mod raw;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::digest::{BlobDigest, ImageDigest};

/// The one spec version this build of sealroom understands.
pub const SPEC_VERSION: u32 = 1;

/// A validated spec. Steps are in a topological order: every step comes after its inputs.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The spec file, as given (made absolute).
    pub path: PathBuf,
    /// The sha256 of the spec file's bytes; recorded in provenance.
    pub digest: BlobDigest,
    pub name: Name,
    pub sandbox: SandboxSettings,
    /// `SOURCE_DATE_EPOCH` for every step; defaults to 0 when the spec does not set it.
    pub source_date_epoch: u64,
    pub sources: Vec<Source>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct SandboxSettings {
    pub image: PinnedImage,
}

/// A local directory tree, hashed and mounted read-only at `/inputs/<name>`.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: Name,
    /// The directory, resolved against the spec's directory.
    pub path: PathBuf,
    /// The path as written in the spec (relative to the spec's directory), for provenance.
    pub declared_path: RelativePath,
    pub exclude: Exclude,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: Name,
    pub inputs: Vec<Input>,
    /// The argv; never empty.
    pub run: Vec<String>,
    /// Variables the spec sets, on top of the fixed environment.
    pub env: BTreeMap<String, String>,
    /// Files under `/out` that get provenance, relative to `/out`.
    pub artifacts: Vec<RelativePath>,
}

/// A step input: what it names and what kind of thing that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub name: Name,
    pub kind: InputKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Source,
    Step,
}

/// A name of a source or step: `[a-z0-9][a-z0-9._-]*`, at most 64 characters, so it can be a
/// path segment (`/inputs/<name>`) and a container label value as it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A non-empty relative path with `/` separators that cannot escape its root: no leading `/`,
/// no `..`, no empty or `.` segments once normalized.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelativePath(String);

impl RelativePath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// This path below `root` on the host.
    pub fn under(&self, root: &Path) -> PathBuf {
        self.segments().fold(root.to_path_buf(), |path, segment| path.join(segment))
    }
}

impl fmt::Display for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An image reference pinned by digest: `name@sha256:<hex>`. The digest is the image id (the
/// digest of the image's config), which is what a locally imported image is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedImage {
    pub name: String,
    pub digest: ImageDigest,
}

impl fmt::Display for PinnedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.digest)
    }
}

/// Which files of a source tree are left out, matched against the path relative to the source.
#[derive(Debug, Clone, Default)]
pub struct Exclude {
    patterns: Vec<String>,
}

impl Exclude {
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `relative` (with `/` separators) is excluded. A directory that is excluded takes
    /// everything below it along.
    pub fn is_excluded(&self, relative: &str) -> bool {
        let _ = relative;
        unimplemented!("spec helper")
    }
}

/// Where in the spec something is: file, line and column (both 1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Anything wrong with the spec's content, at a place in it.
    #[error("{location}: {message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Invalid {
        location: Location,
        message: String,
        hint: Option<String>,
    },
}

/// Reads, parses and validates the spec at `path`.
pub fn load(path: &Path) -> Result<Spec, SpecError> {
    let _ = path;
    unimplemented!("spec helper")
}
