//! The build spec: the validated model, and `load`, which is the only way to make one.
//!
//! `raw.rs` mirrors the TOML with serde (with spans); `load` turns that mirror into the types
//! below and rejects anything a build could trip over later: an unpinned image, duplicate names,
//! an input naming nothing, a cycle, an absolute or escaping path, an empty `run`. Every error
//! carries the spec's path and the line and column of the offending value.
//!
//! This module reads the spec file only; it never touches the store, the network or Docker.
//! The format is documented in `docs/spec.md`.

mod diagnostics;
mod graph;
pub mod image;
pub mod limits;
pub mod raw;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::digest::{BlobDigest, ImageDigest, TreeDigest};
use crate::error::{ExitCode, Failure};
pub use limits::{ByteSize, Limits};

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
    /// Pinned dependencies, fetched with the network on before any step runs.
    pub fetches: Vec<Fetch>,
    pub steps: Vec<Step>,
    /// `[[image]]` tables: OCI images made from step outputs (see `image`).
    pub images: Vec<image::Image>,
    /// `[mirrors]`: URL prefixes rewritten for every download (`--mirror` adds to them).
    pub mirrors: crate::fetch::Mirrors,
}

/// A pinned dependency, fetched with the network on and mounted read-only at `/inputs/<name>`.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub name: Name,
    pub kind: FetchKind,
}

#[derive(Debug, Clone)]
pub enum FetchKind {
    /// A download, verified against `sha256` as it streams.
    Url(UrlFetch),
    /// A container step with the network on whose `/out` must have the pinned tree digest
    /// (like a Nix fixed-output derivation).
    Run(RunFetch),
    /// Every file a lock file pins, each downloaded and verified by the lock's own digest and
    /// laid out for the ecosystem's offline install.
    Lock(LockFetch),
}

#[derive(Debug, Clone)]
pub struct LockFetch {
    /// `lock` as written: relative to the spec's directory. Errors name it so.
    pub lock: RelativePath,
    /// The lock file's bytes, read once when the spec is loaded, and their sha256 (recorded in
    /// provenance, and part of the fetch's cache key).
    pub text: std::sync::Arc<str>,
    pub digest: BlobDigest,
    pub format: crate::lockfile::LockFormat,
    /// pip: the simple index; cargo: the registry index whose `config.json` gives the download
    /// URL (default: the lock's own source); go: the module proxy.
    pub index: Option<String>,
    /// What this fetch may put in the store, downloads and layout alike (`limits.output` of
    /// the fetch, else the sandbox's).
    pub output_limit: ByteSize,
}

#[derive(Debug, Clone)]
pub struct UrlFetch {
    /// `http`, `https` or `file`.
    pub url: String,
    /// The pin; `None` only until `sealroom pin` fills it in (a build refuses it).
    pub sha256: Option<BlobDigest>,
    /// Unpack the archive (tar, tar.gz, tar.xz, tar.bz2, zip) into the input tree; otherwise
    /// the input tree holds the one file, named `file_name`.
    pub unpack: bool,
    pub strip_components: usize,
    /// The name of the downloaded file in its input tree when not unpacked: `file_name`, else the
    /// last segment of the URL's path.
    pub file_name: String,
    /// What this fetch may put in the store (`limits.output` of the fetch, else the sandbox's):
    /// the downloaded bytes, and with `unpack` the unpacked bytes too, each counted as they are
    /// written.
    pub output_limit: ByteSize,
}

#[derive(Debug, Clone)]
pub struct RunFetch {
    pub run: Vec<String>,
    /// The pin; `None` only until `sealroom pin` fills it in (a build refuses it).
    pub output: Option<TreeDigest>,
    /// The image it runs in: its own `image`, else the spec's sandbox image.
    pub image: PinnedImage,
    pub env: BTreeMap<String, String>,
    pub network: FetchNetwork,
    pub limits: Limits,
}

/// The network a fixed-output fetch step gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchNetwork {
    /// The engine's default bridge network: the outside world, not the host's loopback.
    Bridge,
    /// The host's network, loopback included (e.g. a mirror or proxy on 127.0.0.1).
    Host,
}

impl FetchNetwork {
    pub fn as_str(self) -> &'static str {
        match self {
            FetchNetwork::Bridge => "bridge",
            FetchNetwork::Host => "host",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// The image steps run in. Once a registry reference is resolved (`ops::sandbox_image`),
    /// its digest is the image id and `origin` says where it came from.
    pub image: PinnedImage,
    /// For an image pulled from a registry: the reference as written and the manifest.
    pub origin: Option<ImageOrigin>,
    /// The limits of a step that sets none of its own (`[sandbox.limits]` over the defaults).
    pub limits: Limits,
}

/// Where a sandbox image pinned by a registry reference came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOrigin {
    /// The reference as the spec writes it, `host/repository[:tag]@sha256:<digest>`.
    pub reference: String,
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
    /// The digest pinned: a manifest's, or an index's.
    pub pinned: BlobDigest,
    /// The image manifest the image came from: `pinned`, or the entry of the index for this
    /// platform.
    pub manifest: BlobDigest,
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
    /// The step's limits: its own `limits` over `[sandbox.limits]` over the defaults.
    pub limits: Limits,
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
    Fetch,
    Step,
}

/// A name of a source or step: `[a-z0-9][a-z0-9._-]*`, at most 64 characters, so it can be a
/// path segment (`/inputs/<name>`) and a container label value as it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// The longest name accepted.
    pub const MAX_LEN: usize = 64;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_valid(s: &str) -> bool {
        let mut bytes = s.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        first_ok
            && s.len() <= Self::MAX_LEN
            && bytes.all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
    }
}

impl FromStr for Name {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const FORM: &str = "a name of lower-case letters, digits, `.`, `_` and `-`, starting with a letter or digit";
        if Self::is_valid(s) {
            return Ok(Name(s.to_string()));
        }
        if s.is_empty() {
            return Err(InvalidValue::new(format!(
                "expected {FORM}, found an empty string"
            )));
        }
        if s.len() > Self::MAX_LEN {
            return Err(InvalidValue::new(format!(
                "expected a name of at most {} characters, found {} characters",
                Self::MAX_LEN,
                s.len()
            )));
        }
        // Offer the nearest valid spelling when there is an obvious one.
        let suggestion: String = s
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let suggestion = suggestion.trim_start_matches(['.', '_', '-']);
        let hint = Self::is_valid(suggestion).then(|| format!("try `{suggestion}`"));
        Err(InvalidValue {
            message: format!("expected {FORM}, found `{s}`"),
            hint,
        })
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A non-empty relative path with `/` separators that cannot escape its root: no leading `/`,
/// no `..`, no empty or `.` segments once normalized. The one exception is the root itself,
/// written `.` (a source's `path = "."`); it has no segments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelativePath(String);

/// Why a string is not a [`RelativePath`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelativePathError {
    #[error("the path is empty")]
    Empty,
    #[error("the path is absolute")]
    Absolute,
    #[error("the path escapes with `..`")]
    Escapes,
    #[error("the path contains a NUL character")]
    Nul,
}

impl RelativePath {
    /// The root itself, `.`.
    pub fn root() -> Self {
        RelativePath(".".to_string())
    }

    /// Whether this is the root, `.`.
    pub fn is_root(&self) -> bool {
        self.0 == "."
    }

    /// Normalizes `path`: drops empty and `.` segments. Rejects an absolute path, any `..`
    /// segment and a path that is empty once normalized (the root is not accepted here).
    pub fn parse(path: &str) -> Result<Self, RelativePathError> {
        if path.contains('\0') {
            return Err(RelativePathError::Nul);
        }
        if path.starts_with('/') {
            return Err(RelativePathError::Absolute);
        }
        let mut segments = Vec::new();
        for segment in path.split('/') {
            match segment {
                "" | "." => {}
                ".." => return Err(RelativePathError::Escapes),
                _ => segments.push(segment),
            }
        }
        if segments.is_empty() {
            return Err(RelativePathError::Empty);
        }
        Ok(RelativePath(segments.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments, in order (none for the root).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|segment| *segment != ".")
    }

    /// This path below `root` on the host.
    pub fn under(&self, root: &Path) -> PathBuf {
        self.segments()
            .fold(root.to_path_buf(), |path, segment| path.join(segment))
    }
}

impl fmt::Display for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An image reference pinned by digest: `name@sha256:<hex>`. For a name whose first component
/// is a registry host ([`PinnedImage::registry`]), the digest is the manifest's (or an index's),
/// as Docker, Kubernetes and cosign mean it; for a local name it is the image id (the digest of
/// the image's config), which is what a locally imported image is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedImage {
    pub name: String,
    pub digest: ImageDigest,
}

impl FromStr for PinnedImage {
    type Err = InvalidValue;

    /// Parses `name@sha256:<64 hex>`; `name` may carry a tag (`name:tag@sha256:...`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((name, digest)) = s.rsplit_once('@') else {
            return Err(InvalidValue {
                message: format!("expected an image pinned by digest, `name@sha256:<64 hex>`, found `{s}`"),
                hint: Some(
                    "run `sealroom image import ROOTFS --name NAME` and use the reference it prints, \
                     or use the `name@sha256:...` that the recipe in `sandbox/` printed"
                        .to_string(),
                ),
            });
        };
        let name_ok = !name.is_empty()
            && name.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'.' | b'_' | b'-' | b'/' | b':')
            });
        if !name_ok {
            return Err(InvalidValue::new(format!(
                "expected an image name of lower-case letters, digits, `.`, `_`, `-`, `/` and `:` before `@`, found `{name}`"
            )));
        }
        let digest = digest.parse::<ImageDigest>().map_err(|_| InvalidValue {
            message: format!(
                "expected `sha256:<64 lower-case hex>` after `@` in the image, found `{digest}`"
            ),
            hint: Some("copy the whole reference that `sealroom image import` printed".to_string()),
        })?;
        Ok(PinnedImage {
            name: name.to_string(),
            digest,
        })
    }
}

impl PinnedImage {
    /// The registry host (`host[:port]`) the name starts with, as in Docker's references: a
    /// first path component with a `.` or a `:`, or `localhost`. `None` for a local name.
    pub fn registry(&self) -> Option<&str> {
        let (first, _) = self.name.split_once('/')?;
        (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
    }
}

impl fmt::Display for PinnedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.digest)
    }
}

/// Which files of a source tree are left out, matched against the path relative to the source.
///
/// Patterns are globs (`*`, `?`, `[abc]`, `{a,b}`, `**`), where `*` never crosses a `/`.
/// A pattern without `/` matches a file or directory of that name at any depth; a pattern with a
/// `/` (or starting with one) is matched against the whole path from the source root. An
/// excluded directory takes everything below it along.
#[derive(Debug, Clone, Default)]
pub struct Exclude {
    patterns: Vec<String>,
    /// Patterns with a `/`, matched against the whole relative path.
    anchored: GlobSet,
    /// Patterns without a `/`, matched against one path segment.
    any_depth: GlobSet,
}

impl Exclude {
    /// Compiles the patterns; the error names the first pattern that is not a valid glob.
    pub fn new<I, S>(patterns: I) -> Result<Self, ExcludeError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let patterns: Vec<String> = patterns.into_iter().map(Into::into).collect();
        let mut anchored = GlobSetBuilder::new();
        let mut any_depth = GlobSetBuilder::new();
        for (index, pattern) in patterns.iter().enumerate() {
            let error = |problem: String| ExcludeError {
                index,
                pattern: pattern.clone(),
                problem,
            };
            if pattern.is_empty() {
                return Err(error("the pattern is empty".to_string()));
            }
            if pattern.len() > 1 && pattern.ends_with('/') {
                return Err(error(
                    "a pattern cannot end with `/`; an excluded directory excludes everything below it anyway"
                        .to_string(),
                ));
            }
            let (glob, is_anchored) = match pattern.strip_prefix('/') {
                Some(rest) => (rest, true),
                None => (pattern.as_str(), pattern.contains('/')),
            };
            if glob.is_empty() {
                return Err(error(
                    "`/` alone would exclude the whole source".to_string(),
                ));
            }
            if glob.split('/').any(|segment| segment == "..") {
                return Err(error("a pattern cannot contain `..`".to_string()));
            }
            let compiled = GlobBuilder::new(glob)
                .literal_separator(true)
                .build()
                .map_err(|e| error(e.kind().to_string()))?;
            if is_anchored {
                anchored.add(compiled);
            } else {
                any_depth.add(compiled);
            }
        }
        let build = |builder: GlobSetBuilder| {
            builder.build().map_err(|e| ExcludeError {
                index: 0,
                pattern: e.glob().unwrap_or_default().to_string(),
                problem: e.kind().to_string(),
            })
        };
        Ok(Self {
            anchored: build(anchored)?,
            any_depth: build(any_depth)?,
            patterns,
        })
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `relative` (with `/` separators) is excluded. A directory that is excluded takes
    /// everything below it along.
    pub fn is_excluded(&self, relative: &str) -> bool {
        let relative = relative.trim_start_matches("./").trim_matches('/');
        if relative.is_empty() || self.patterns.is_empty() {
            return false;
        }
        // Check the path and each of its ancestors, so that an excluded directory excludes
        // everything below it.
        let mut end = 0;
        for segment in relative.split('/') {
            let prefix = &relative[..end + segment.len()];
            end += segment.len() + 1;
            if segment.is_empty() || segment == "." {
                continue;
            }
            if self.any_depth.is_match(segment) || self.anchored.is_match(prefix) {
                return true;
            }
        }
        false
    }
}

/// An exclude pattern that is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid exclude pattern `{pattern}`: {problem}")]
pub struct ExcludeError {
    /// The pattern's position in the list.
    pub index: usize,
    pub pattern: String,
    pub problem: String,
}

/// A value that does not have the form its type requires. `load` adds where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidValue {
    pub message: String,
    pub hint: Option<String>,
}

impl InvalidValue {
    fn new(message: String) -> Self {
        Self {
            message,
            hint: None,
        }
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

impl Failure for SpecError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::BadInput
    }
}

/// Reads, parses and validates the spec at `path`.
///
/// Locations in errors use `path` as given; `Spec::path` is made absolute.
pub fn load(path: &Path) -> Result<Spec, SpecError> {
    let read_error = |source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(read_error)?;
    let absolute = std::path::absolute(path).map_err(read_error)?;
    validate::spec(path, absolute, &bytes)
}

impl Spec {
    /// The directory that holds the spec; source paths are relative to it.
    pub fn directory(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }

    pub fn source(&self, name: &Name) -> Option<&Source> {
        self.sources.iter().find(|source| &source.name == name)
    }

    pub fn step(&self, name: &Name) -> Option<&Step> {
        self.steps.iter().find(|step| &step.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_form() {
        assert!("a".parse::<Name>().is_ok());
        assert!("zlib-1.3.1_x".parse::<Name>().is_ok());
        assert!("0day".parse::<Name>().is_ok());
        assert!("a".repeat(64).parse::<Name>().is_ok());
        for bad in ["", "-a", ".a", "_a", "A", "a b", "a/b", "é"] {
            assert!(bad.parse::<Name>().is_err(), "{bad:?}");
        }
        assert!("a".repeat(65).parse::<Name>().is_err());
    }

    #[test]
    fn relative_paths_are_normalized_and_cannot_escape() {
        let path = RelativePath::parse("./a//b/./c/").unwrap();
        assert_eq!(path.as_str(), "a/b/c");
        assert_eq!(path.segments().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(path.under(Path::new("/out")), Path::new("/out/a/b/c"));
        assert_eq!(RelativePath::parse(""), Err(RelativePathError::Empty));
        assert_eq!(RelativePath::parse("./."), Err(RelativePathError::Empty));
        assert_eq!(RelativePath::parse("/a"), Err(RelativePathError::Absolute));
        assert_eq!(
            RelativePath::parse("a/../b"),
            Err(RelativePathError::Escapes)
        );
        assert_eq!(RelativePath::parse("a\0b"), Err(RelativePathError::Nul));

        let root = RelativePath::root();
        assert!(root.is_root());
        assert_eq!(root.segments().count(), 0);
        assert_eq!(root.under(Path::new("/src")), Path::new("/src"));
    }

    #[test]
    fn pinned_images_parse_and_show_the_same() {
        let text = format!("registry:5000/team/gcc:12@sha256:{}", "ab".repeat(32));
        let image: PinnedImage = text.parse().unwrap();
        assert_eq!(image.name, "registry:5000/team/gcc:12");
        assert_eq!(image.to_string(), text);
        assert!("busybox".parse::<PinnedImage>().is_err());
        assert!(
            format!("@sha256:{}", "ab".repeat(32))
                .parse::<PinnedImage>()
                .is_err()
        );
        assert!(
            format!("busybox@sha256:{}", "AB".repeat(32))
                .parse::<PinnedImage>()
                .is_err()
        );
    }
}
